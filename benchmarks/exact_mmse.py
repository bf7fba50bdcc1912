"""Exact sandbox MMSE: time of ``GMMPosterior.mmse`` on a 32x32 image with a 64-point theta grid, against
its floor (the T*K Cholesky factorisations of the M x M evidence covariances it cannot avoid).

    python benchmarks/exact_mmse.py [--size 32] [--n-theta 64] [--components 10] [--samples 4000]

The GMM is fitted to random ``size``-square crops of ``data.TRAIN`` (cached after the first run; the fit's
time is printed separately and not part of the comparison).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import landscape as ls
from landscape import kernels, priors
from landscape.estimators.bayes import GMMPosterior


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--n-theta", type=int, default=64)
    ap.add_argument("--components", type=int, default=10)
    ap.add_argument("--samples", type=int, default=4000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    gmm = priors.fit_natural_gmm((args.size, args.size), args.components, args.samples, progress=False)
    t_fit = time.perf_counter() - t0
    img = gmm.sample(1, rng=123)[0].numpy()
    prob = ls.BlindDeblur.synthetic(img, kernels.Gaussian(15), 1.5, 0.01, rng=0)
    grid = np.linspace(0, 3, args.n_theta)
    t0 = time.perf_counter()
    out = GMMPosterior(prob, gmm, grid).mmse()
    t_mmse = time.perf_counter() - t0
    M, K = args.size ** 2, args.components
    A = torch.randn(K, M, M, dtype=torch.float64) / M ** 0.5
    S = A @ A.transpose(1, 2) + torch.eye(M, dtype=torch.float64)
    t0 = time.perf_counter()
    for _ in range(args.n_theta):
        torch.linalg.cholesky(S)
    t_floor = time.perf_counter() - t0
    err = float(np.sqrt(((out["x_mmse"].numpy() - img) ** 2).mean()))
    print(f"GMM fit ({args.samples} crops of {args.size}^2, K = {K}): {t_fit:.1f} s (cached afterwards)")
    print(f"exact MMSE, {args.size}x{args.size}, {args.n_theta} theta x {K} components: {t_mmse:.2f} s "
          f"({1e3 * t_mmse / args.n_theta:.1f} ms per theta)")
    print(f"floor ({args.n_theta * K} Cholesky factorisations of {M}x{M}): {t_floor:.2f} s -> {t_mmse / t_floor:.2f}x the floor")
    print(f"E[theta|y] = {float(out['theta_mean'][0]):.3f} (theta* = 1.5); RMSE of E[x|y] {err:.4f}")


if __name__ == "__main__":
    main()
