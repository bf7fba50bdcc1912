"""Unrolled inference against blind PnP reaching its best PSNR, on one 128x128 case, in one run.

    python benchmarks/unrolled_vs_pnp.py [--size 128] [--n-iter 100] [--threads N]

Camera crop, Gaussian blur theta* = 1.5, sigma = 0.01. Blind PnP (each variant, from (delta, y)) runs
``--n-iter`` iterations; its PSNR is tracked after every iteration, and its cost is counted up to the
iteration of its best PSNR (an oracle stop: the most favourable accounting for PnP). The unrolled
network (``unrolled-gaussian``) runs once. The floor of each is its network calls times the measured
time of one call of the UNet on this image.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import landscape as ls
from landscape import data, kernels, priors
from landscape.estimators import pnp
from landscape.estimators.unrolled import load_unrolled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--n-iter", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    img = data.center_crop(data.load("camera"), args.size)
    prob = ls.BlindDeblur.synthetic(img, kernels.Gaussian(15), 1.5, 0.01, rng=0, dtype=torch.float32)
    psnr = lambda x: float(10 * np.log10(1 / np.mean((x.double().numpy() - img) ** 2)))
    model = load_unrolled("unrolled-gaussian")
    with torch.no_grad():
        model(prob.y[None], 0.01)                                   # warm-up
        t0 = time.perf_counter()
        out = model(prob.y[None], 0.01)
        t_unrolled = time.perf_counter() - t0
        den = priors.load_model("denoiser-gray")
        den(prob.y, 0.02)
        t0 = time.perf_counter()
        for _ in range(5):
            den(prob.y, 0.02)
        t_call = (time.perf_counter() - t0) / 5
    print(f"{args.size}x{args.size} camera, Gaussian theta* = 1.5, sigma = 0.01; one UNet call {1e3 * t_call:.1f} ms")
    print(f"{'method':<26}{'PSNR':>8}{'calls':>8}{'wall (s)':>10}{'floor (s)':>10}{'vs unrolled':>13}")
    print(f"{'unrolled':<26}{psnr(out['x'][0]):8.2f}{model.iterations:8d}{t_unrolled:10.3f}"
          f"{model.iterations * t_call:10.3f}{1.0:12.1f}x")
    for variant in ("fixed", "continuation", "gradient-step"):
        name = "denoiser-gray" if variant != "gradient-step" else "gs-denoiser-gray"
        prior = priors.load(name, s=0.02)
        opts = pnp.PnPOptions(variant=variant, n_iter=1)
        th, x, step = torch.zeros(1, 1), prob.y[None].clone(), torch.ones(1)
        post = ls.Posterior(prob, prior)
        levels = pnp.PnPOptions(variant=variant, n_iter=args.n_iter).levels()
        best, best_k, t_best, c_best, t0, c0 = -np.inf, 0, 0.0, 0, time.perf_counter(), getattr(prior, "n_calls", 0)
        for k, s in enumerate(levels):
            x, _ = pnp._iteration(prob, prior, prob.family(th), x, float(s), opts)
            th, step = ls.descent.theta_step(post, th, x, step)
            p = psnr(x[0])
            if p > best:
                best, best_k, t_best, c_best = p, k + 1, time.perf_counter() - t0, getattr(prior, "n_calls", 0) - c0
        print(f"{'blind PnP ' + variant:<26}{best:8.2f}{c_best:8d}{t_best:10.3f}{c_best * t_call:10.3f}"
              f"{t_best / t_unrolled:12.1f}x   (best at iteration {best_k}/{args.n_iter}, theta {float(th):.3f} at the end)")


if __name__ == "__main__":
    main()
