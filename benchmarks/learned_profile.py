"""Profile scan with the shipped learned prior: warm-started continuation vs a cold per-theta loop.

    python benchmarks/learned_profile.py [--n-theta 32] [--size 64]

(the issue's 64 theta on 128^2 is --n-theta 64 --size 128: about 4x longer on 2 cores)

Both use the same gradient-only inner solver (HQS: exact FFT data step, one denoiser call per
iteration, stop at relative change 1e-4, at most 300 iterations). Printed from one run: wall time, denoiser calls per theta,
the time of those calls alone (the floor: the same number of calls, same batch size, nothing else),
and the largest difference of the final profile energies between the two.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import landscape as ls
from landscape import data, kernels, priors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-theta", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--xtol", type=float, default=1e-4)
    args = ap.parse_args()
    img = data.center_crop(data.load("camera"), args.size)
    prob = ls.BlindDeblur.synthetic(img, kernels.Gaussian(15), 1.5, 0.01, rng=0, dtype=torch.float32)
    prior = priors.load("denoiser-gray", "tweedie", s=0.01)
    post = ls.Posterior(prob, prior)
    theta = np.linspace(0, 3, args.n_theta)
    T = args.n_theta
    solver = dict(method="hqs", xtol=args.xtol, max_iter=300, energies=False)

    # warm start: one continuation branch from the Dirac end (the batched API runs two; use one here)
    prior.n_calls = 0
    t0 = time.perf_counter()
    x = post.default_start()
    calls_warm = []
    for t in theta:
        c0 = prior.n_calls
        xs, _, info = post.argmin_x([t], x, **solver)
        x = xs[0]
        calls_warm.append(prior.n_calls - c0)
    t_warm_solve = time.perf_counter() - t0
    xw = x

    prior.n_calls = 0
    t0 = time.perf_counter()
    calls_cold = []
    for t in theta:
        c0 = prior.n_calls
        post.argmin_x([t], None, **solver)
        calls_cold.append(prior.n_calls - c0)
    t_cold_solve = time.perf_counter() - t0

    n_warm, n_cold = sum(calls_warm), sum(calls_cold)
    z = xw[None].clone()
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(n_warm):
            prior.denoiser(z, prior.s)
    t_floor = time.perf_counter() - t0
    # final energies of both at equal solver tolerance, on a few theta (energies cost line integrals)
    idx = np.linspace(0, T - 1, 5).astype(int)
    xs_w, xs_c = [], []
    x = post.default_start()
    for i, t in enumerate(theta):
        xw_i, _, _ = post.argmin_x([t], x, **solver)
        x = xw_i[0]
        if i in idx:
            xs_w.append(x)
            xs_c.append(post.argmin_x([t], None, **solver)[0][0])
    th_sel = theta[idx]
    ew = post.energy(th_sel, torch.stack(xs_w))
    ec = post.energy(th_sel, torch.stack(xs_c))
    print(f"learned-prior profile scan: {T} theta, {args.size}^2 camera, denoiser-gray (Tweedie, s=0.01), "
          f"HQS xtol={args.xtol:g}, {torch.get_num_threads()} threads")
    print(f"  {'':<30}{'wall (s)':>10}{'denoiser calls/theta':>22}")
    print(f"  {'warm-started continuation':<30}{t_warm_solve:10.1f}{n_warm / T:22.1f}")
    print(f"  {'cold per-theta loop':<30}{t_cold_solve:10.1f}{n_cold / T:22.1f}")
    print(f"  {'floor: the warm calls alone':<30}{t_floor:10.1f}")
    print(f"  calls cold / warm = {n_cold / max(n_warm, 1):.2f}x   warm wall / floor = {t_warm_solve / t_floor:.2f}x")
    rel = ((ew - ec).abs() / ec.abs()).max()
    print(f"  final energies at 5 theta: max |E_warm - E_cold| / |E| = {float(rel):.2e} "
          f"(E_warm - E_cold: {', '.join(f'{v:+.2f}' for v in (ew - ec).tolist())} nats)")


if __name__ == "__main__":
    main()
