"""The sandbox's estimators against the exact Bayes MMSE over draws from its own generative model.

    python benchmarks/bayes_optimality.py [--draws 48] [--sigma 0.02] [--color]

x ~ the 16x16 natural-crop GMM, theta uniform on a 7-point grid of Gaussian widths in [0, 3], y = h * x +
sigma n. Prints each estimator's mean squared error and PSNR of the mean MSE, its excess over the exact
MMSE with the paired standard error, and the time per draw: the exact MMSE, MAP_theta then E[x | y,
theta_hat], the joint MAP (global minimiser of the profile on the grid), blind PnP with the exact GMM
denoiser from (delta, y), and the shipped unrolled-gmm16 network (the same computation as
tests/test_bayes.py::test_exact_mmse_is_bayes_optimal_over_draws_from_the_sandbox, with more draws).
``--color``: x ~ the (3, 16, 16) GMM fitted to colour crops (d = 768), one kernel on the three channels, and
the network unrolled-gmm16-color.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from landscape import priors
from landscape.estimators import sandbox
from landscape.estimators.train_unrolled import gmm_shape
from landscape.estimators.unrolled import COLOR_MODELS, MODELS, load_unrolled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=48)
    ap.add_argument("--sigma", type=float, default=0.02)
    ap.add_argument("--color", action="store_true", help="the colour sandbox")
    args = ap.parse_args()
    gmm = priors.fit_natural_gmm(gmm_shape(args.color), 10, 10000, progress=False)
    model = load_unrolled((COLOR_MODELS if args.color else MODELS)["sandbox"], dtype=torch.float64)
    grid = np.linspace(0, 3, 7)
    g = np.random.default_rng(11)
    err = {n: [] for n in sandbox.NAMES}
    wall = {n: 0.0 for n in sandbox.NAMES}
    for d in range(args.draws):
        x, prob = sandbox.draw(gmm, grid, args.sigma, d, g)
        for n, (xh, t) in sandbox.estimates(prob, gmm, grid, model).items():
            err[n].append(float(((xh - x) ** 2).mean()))
            wall[n] += t
    e0 = np.array(err["mmse"])
    print(f"{'colour ' if args.color else ''}{args.draws} draws, sigma = {args.sigma}; MSE per pixel (x1e4), PSNR of the mean MSE, excess over the exact MMSE")
    print(f"{'estimator':<12}{'MSE':>10}{'PSNR':>8}{'excess':>10}{'+- SE':>9}{'ms/draw':>9}")
    for n in sandbox.NAMES:
        e = np.array(err[n])
        diff = e - e0
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if n != "mmse" else 0.0
        print(f"{n:<12}{1e4 * e.mean():10.3f}{10 * np.log10(1 / e.mean()):8.2f}{1e4 * diff.mean():10.3f}{1e4 * se:9.3f}"
              f"{1e3 * wall[n] / args.draws:9.1f}")


if __name__ == "__main__":
    main()
