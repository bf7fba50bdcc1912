"""Samplers: network calls and wall time per effective sample, and their bias where it is known, in one run.

    python benchmarks/samplers.py [--size 64] [--steps 600] [--chains 4]

Part 1 (speed): camera crop, Gaussian blur theta* = 1.5, sigma = 0.01, the shipped ``denoiser-gray``.
PnP-ULA (Tweedie score at s = 0.02, step 1/(3L)), annealed Langevin (levels 0.2 .. 0.01), DPS (guided
reverse diffusion, ``--dps-levels`` levels from 10 to 0.005, one call + one vector-Jacobian product per
level; its chains are independent, so its ESS is the number of chains), and Gibbs over (theta, x) (theta on
a 13-point grid, 3 ULA moves per sweep). ESS by ArviZ (bulk) of theta and of the central pixel; calls and
seconds per effective sample. The floor column: the calls times one batched denoiser call, timed here.

Part 3 (em): Monte Carlo EM for MAP_theta with an exact, a MALA and a DPS E-step against the exact marginal.

Part 2 (bias, exact answer known): the tiny GMM sandbox of ``tests/test_sampling.py``; the mean and the
standard deviation of each sampler's draws against E[x | y, theta] and the exact sd, in units of the
exact sd (median over pixels), beside the Monte Carlo error of that comparison.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import landscape as ls
from landscape import data, kernels, priors
from landscape.estimators.bayes import GMMPosterior
from landscape.sampling import gibbs as G
from landscape.sampling.diffusion import DiffusionOptions, dps
from landscape.sampling.langevin import LangevinOptions, sample_x


def ess(a: np.ndarray) -> float:
    import arviz as az
    return float(az.ess(az.convert_to_dataset(a), method="bulk")["x"])


def speed(args) -> None:
    img = data.center_crop(data.load("camera"), args.size)
    prob = ls.BlindDeblur.synthetic(img, kernels.Gaussian(15), 1.5, 0.01, rng=0, dtype=torch.float32)
    c = args.size // 2
    print(f"{args.size}x{args.size} camera, theta* = 1.5, sigma = 0.01; {args.chains} chains, {args.steps} steps")
    z = torch.rand(args.chains, args.size, args.size)

    def one_call(probe) -> float:
        """One batched call of the sampler's own network (warmed up), timed just before it runs."""
        for _ in range(3):
            probe.denoise(z, 0.02)
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            probe.denoise(z, 0.02)
            times.append(time.perf_counter() - t0)
        return min(times)
    print(f"floor: the sampler's calls x one batched forward call ({args.chains} x {args.size}x{args.size}), "
          f"timed before it (DPS: x {args.dps_chains} / {args.chains} chains; its backward passes are not in the floor)")
    print(f"{'sampler':<27}{'wall (s)':>9}{'floor (s)':>10}{'calls':>7}{'ESS theta':>10}{'ESS pixel':>10}"
          f"{'calls/ESS px':>13}{'s/ESS px':>9}{'s/ESS theta':>12}")
    runs = {
        "PnP-ULA (s = 0.02)": lambda p: sample_x(ls.Posterior(prob, p), [1.5], LangevinOptions(
            method="ula", n_steps=args.steps, burn_in=args.steps // 4, chains=args.chains), rng=0),
        "annealed Langevin": lambda p: sample_x(ls.Posterior(prob, p), [1.5], LangevinOptions(
            method="annealed", steps_per_level=args.steps // 5, burn_in=4 * args.steps // 5, chains=args.chains), rng=0),
        f"DPS ({args.dps_levels} levels)": lambda p: dps(ls.Posterior(prob, p), [1.5], DiffusionOptions(
            levels=args.dps_levels, chains=args.dps_chains), rng=0),
        "Gibbs (ULA x, grid theta)": lambda p: G.gibbs(ls.Posterior(prob, p), np.linspace(0, 3, 13),
                                                        sweeps=args.steps // 3, burn_in=args.steps // 12, x_steps=3,
                                                        method="ula", chains=args.chains, rng=0),
    }
    for name, fn in runs.items():
        prior = priors.load("denoiser-gray", "tweedie", s=0.02)
        one = one_call(prior)
        prior.n_calls = 0
        t0 = time.perf_counter()
        out = fn(prior)
        wall = time.perf_counter() - t0
        x = (out["draws"] if "draws" in out else out["x"]).double().numpy()
        # DPS: one independent draw per chain (ESS = chains); the chains' floor is one batch of dps_chains
        e_px = float(x.shape[0]) if name.startswith("DPS") else ess(x[:, :, c, c])
        e_th = ess(out["theta"][..., 0].double().numpy()) if "theta" in out else float("nan")
        floor = prior.n_calls * one * (args.dps_chains / args.chains if name.startswith("DPS") else 1)
        print(f"{name:<27}{wall:9.1f}{floor:10.1f}{prior.n_calls:7d}{e_th:10.1f}{e_px:10.1f}"
              f"{prior.n_calls / e_px:13.1f}{wall / e_px:9.2f}{wall / e_th:12.2f}")


def two_component_gmm(shape: tuple[int, int], scale: float) -> priors.GMMPrior:
    """The sandboxes' whole-image GMM: weights 0.4 / 0.6, random means in [0.3, 0.7], covariances
    A Aᵀ + 0.002 I with A of entries N(0, scale²) (seed 1234; ``tests/test_sampling.py`` uses the 4x4 one)."""
    rng = np.random.default_rng(1234)
    d = shape[0] * shape[1]
    A = rng.normal(size=(2, d, d)) * scale
    cov = A @ A.transpose(0, 2, 1) + 0.002 * np.eye(d)
    return priors.GMMPrior([0.4, 0.6], 0.3 + 0.4 * rng.random((2, d)), cov, shape)


def bias(args) -> None:
    gmm = two_component_gmm((4, 4), 0.04)
    prob = ls.BlindDeblur.synthetic(gmm.sample(1, rng=3)[0].numpy(), kernels.Gaussian(3), 1.0, 0.05, rng=4)
    ex = GMMPosterior(prob, gmm, [1.0]).mmse()
    m, sd = ex["x_mmse"].reshape(-1).numpy(), ex["x_std"].reshape(-1).numpy()
    post = ls.Posterior(prob, gmm)
    pool = gmm.sample(20000, rng=5)                      # DPS's start N(m, s_max^2 + v) and r_i^2 use the data's m, v
    start = {"mean": float(pool.mean()), "data_var": float(pool.var())}
    print("\nbias on the 4x4 GMM sandbox (median over pixels, in exact posterior sds)")
    print(f"{'sampler':<34}{'|mean - exact|':>15}{'|sd - exact sd|':>17}{'MC error':>10}")
    cases = {"MALA (exact in the limit)": LangevinOptions(method="mala", n_steps=4000, burn_in=500, chains=16, step_factor=1.0),
             "ULA, step 1/L": LangevinOptions(method="ula", n_steps=4000, burn_in=500, chains=16, step_factor=1.0),
             "ULA, step 1/(3L)": LangevinOptions(method="ula", n_steps=4000, burn_in=500, chains=16),
             "annealed (exact GMM denoiser)": LangevinOptions(method="annealed", steps_per_level=800, burn_in=3200,
                                                              chains=16, levels=(0.2, 0.1, 0.05, 0.02, 0.005)),
             "DPS (exact GMM denoiser, 300 levels)": DiffusionOptions(levels=300, chains=4000, **start),
             "DPS, guidance 2": DiffusionOptions(levels=300, chains=4000, guidance=2.0, **start)}
    for name, opts in cases.items():
        if isinstance(opts, DiffusionOptions):          # independent chains: one draw each, ESS = chains
            d = dps(post, [1.0], opts, rng=0)["draws"].reshape(1, -1, 16).double().numpy()
            e = np.full(16, d.shape[1])
        else:
            d = sample_x(post, [1.0], opts, rng=0)["draws"].reshape(16, -1, 16).double().numpy()
            e = np.array([ess(d[:, :, i]) for i in range(16)])
        dm = np.median(np.abs(d.mean((0, 1)) - m) / sd)
        ds = np.median(np.abs(d.std((0, 1)) - sd) / sd)
        print(f"{name:<34}{dm:15.3f}{ds:17.3f}{np.median(1 / np.sqrt(e)):10.3f}")


def em(args) -> None:
    """Monte Carlo EM for MAP_theta on an 8x8 GMM sandbox (theta* = 2, sigma = 0.01, 6 widths on [0, 2.5]),
    from both ends of the grid, with three E-steps: exact draws of x | theta_t, y (GMMPosterior), MALA, DPS.
    Prints each path and the exact -log p(y | theta) at its end, against the exact maximiser."""
    from landscape.sampling.gibbs import data_energies
    gmm = two_component_gmm((8, 8), 0.03)
    grid = np.linspace(0, 2.5, 6)
    prob = ls.BlindDeblur.synthetic(gmm.sample(1, rng=3)[0].numpy(), kernels.Gaussian(5), 2.0, 0.01, rng=4)
    post = ls.Posterior(prob, gmm)
    nll = GMMPosterior(prob, gmm, grid).marginal_nll().numpy()
    nll = nll - nll.min()
    pool = gmm.sample(20000, rng=5)
    print(f"\nEM for MAP_theta, 8x8 GMM sandbox, theta* = 2, sigma = 0.01; exact -log p(y|theta) - min on {grid}:")
    print("  " + " ".join(f"{v:.2f}" for v in nll) + f"  (maximiser {grid[np.argmin(nll)]:g})")
    g = torch.as_tensor(grid)[:, None]

    def exact_em(j: int) -> list[float]:
        path = [grid[j]]
        for it in range(6):
            _, xs = GMMPosterior(prob, gmm, grid[j:j + 1]).sample(400, rng=it)
            j = int(torch.argmax(-data_energies(post, g, xs.reshape(-1, 8, 8)).mean(0)))
            path.append(grid[j])
        return path
    steps = {"MALA": LangevinOptions(method="mala", n_steps=600, burn_in=200, chains=4, step_factor=1.0),
             "DPS": DiffusionOptions(levels=200, chains=32, mean=float(pool.mean()), data_var=float(pool.var()))}
    for start in (0, len(grid) - 1):
        rows = {"exact": exact_em(start)}
        for name, opts in steps.items():
            rows[name] = list(G.em_theta(post, grid, grid[start], n_iter=6, options=opts, rng=0)["theta_path"][:, 0])
        for name, path in rows.items():
            end = int(np.argmin(np.abs(grid - path[-1])))
            print(f"  from {grid[start]:g}, {name:<6} E-step: path {' '.join(f'{v:g}' for v in path)}; "
                  f"-log p(y|theta) at the end {nll[end]:.2f} (start {nll[start]:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--dps-levels", type=int, default=200)
    ap.add_argument("--dps-chains", type=int, default=16)
    ap.add_argument("--part", choices=("speed", "bias", "em", "both"), default="both")
    args = ap.parse_args()
    if args.part in ("speed", "both"):
        speed(args)
    if args.part in ("bias", "both"):
        bias(args)
    if args.part in ("em", "both"):
        em(args)


if __name__ == "__main__":
    main()
