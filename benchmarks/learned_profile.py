"""Profile scan with a shipped learned prior: warm-started continuation vs a cold per-theta loop.

    python benchmarks/learned_profile.py [--prior gs|tweedie] [--n-theta 64] [--size 128] [--etol 0.01]

All runs use the same inner solver for the prior (``gs``: the explicit potential, L-BFGS on the
true energy; ``tweedie``: the score only, HQS with one denoiser call per iteration), stopped on
the energy: when the preconditioned Newton decrement, the solver's estimate of
E(theta, x) - min_x E(theta, .), falls to ``--etol`` nats (``--xtol`` > 0 adds the relative-change
stop), at most ``--max-iter`` iterations. One continuation branch from the
Dirac end, started from the previous solution (``warm``) or from the secant prediction
(``warm+secant``), against every theta started from y (``cold``). Printed from one run: wall
time, prior calls per theta (a call is one network evaluation: the potential and its gradient for
``gs``, the denoiser for ``tweedie``), the floor (those calls alone: the calls the warm+secant run
made, times the mean time of one such call on the same batch, measured over ``--floor-calls``
calls), how many solves met the tolerance, the calls at each theta, and the final energies of the warm runs against the
cold run at every theta: equal to ETOL_MARGIN (10) etol (the decrement is an estimate: measured gaps reach a few
etol; 1e-4 relative when etol is 0), or not, and then whether the two solutions differ (different local minima of x -> E(theta, x)).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import landscape as ls
from landscape import data, kernels, priors
from landscape.optim import ETOL_MARGIN


def scan(post, theta, mode, solver):
    prior = post.prior
    prior.n_calls = 0
    t0 = time.perf_counter()
    x, prev, xs, conv, calls = post.default_start(), None, [], [], []
    for k, t in enumerate(theta):
        c0 = prior.n_calls
        if mode == "cold":
            start = None
        elif mode == "warm+secant" and k >= 2:
            start = x + (theta[k] - theta[k - 1]) / (theta[k - 1] - theta[k - 2]) * (x - prev)
        else:
            start = x
        sol, _, info = post.argmin_x([t], start, solver, energies=False)
        prev, x = x, sol[0]
        xs.append(x)
        conv.append(bool(info.converged[0]))
        calls.append(prior.n_calls - c0)
    wall = time.perf_counter() - t0
    return wall, prior.n_calls, torch.stack(xs), int(sum(conv)), calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", choices=("gs", "tweedie"), default="gs")
    ap.add_argument("--n-theta", type=int, default=64)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--etol", type=float, default=0.01)
    ap.add_argument("--xtol", type=float, default=0.0)
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--floor-calls", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    img = data.center_crop(data.load("camera"), args.size)
    prob = ls.BlindDeblur.synthetic(img, kernels.Gaussian(15), 1.5, 0.01, rng=0, dtype=torch.float32, device=dev)
    name = "gs-denoiser-gray" if args.prior == "gs" else "denoiser-gray"
    prior = priors.load(name, args.prior, s=0.01, device=dev)
    post = ls.Posterior(prob, prior)
    theta = np.linspace(0, 3, args.n_theta)
    T = args.n_theta
    solver = ls.solvers.SolverOptions(method="lbfgs" if args.prior == "gs" else "hqs", etol=args.etol,
                                      xtol=args.xtol, max_iter=args.max_iter)
    z = post.default_start()[None].clone()
    call = (lambda: prior.energy_and_grad(z)) if args.prior == "gs" else (lambda: prior.grad(z))
    for _ in range(3):                       # warm-up: allocations, kernel selection
        call()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(args.floor_calls):        # the floor's unit: one call, same batch, nothing else
        call()
    sync()
    per_call = (time.perf_counter() - t0) / args.floor_calls

    print(f"learned-prior profile scan: {T} theta in [0, 3], {args.size}^2 camera, {name} ({args.prior}, s=0.01), "
          f"{solver.method} (etol {args.etol:g} nats, xtol {args.xtol:g}, max {args.max_iter} iterations), "
          f"{torch.get_num_threads()} threads, {dev}; one call {per_call * 1e3:.1f} ms", flush=True)
    print(f"  {'':<14}{'wall (s)':>10}{'calls/theta':>13}{'converged':>11}{'cold calls / calls':>20}{'wall / floor':>14}",
          flush=True)
    runs = {}
    for m in ("cold", "warm", "warm+secant"):  # each row printed as soon as its run ends
        runs[m] = wall, n, _, conv, _ = scan(post, theta, m, solver)
        print(f"  {m:<14}{wall:10.1f}{n / T:13.1f}{conv:>8d}/{T:<3d}{runs['cold'][1] / max(n, 1):19.2f}x"
              f"{wall / (per_call * n):13.2f}x", flush=True)
    print(f"  floor (calls x one call): the warm+secant run's {runs['warm+secant'][1]} calls alone: "
          f"{per_call * runs['warm+secant'][1]:.1f} s")
    for m, r in runs.items():
        print(f"  calls at each theta, {m}: {' '.join(map(str, r[4]))}")
    with torch.no_grad():
        e = {m: post.energy(theta, r[2]).double().cpu().numpy() for m, r in runs.items()}
    for m in ("warm", "warm+secant"):
        d = e[m] - e["cold"]
        tol = ETOL_MARGIN * args.etol if args.etol > 0 else 1e-4 * np.abs(e["cold"])
        same = np.abs(d) <= tol
        rel = ((runs[m][2] - runs["cold"][2]).flatten(1).norm(dim=1) / runs["cold"][2].flatten(1).norm(dim=1)).numpy()
        print(f"  {m} - cold final energy: within {f'{ETOL_MARGIN:g} etol' if args.etol > 0 else '1e-4 relative'} at {int(same.sum())}/{T} theta"
              + (f" (largest {np.abs(d[same]).max():.3g} nats)" if same.any() else "")
              + (f"; elsewhere from theta = {theta[np.flatnonzero(~same)[0]]:.2f} on: {int((d[~same] < 0).sum())} lower, "
                 f"{int((d[~same] > 0).sum())} higher, [{d[~same].min():+.2f}, {d[~same].max():+.2f}] nats, "
                 f"median ||x - x_cold|| / ||x_cold|| {np.median(rel[~same]):.3f}"
                 + (f" ({np.median(rel[same]):.2g} where equal)" if same.any() else "") if (~same).any() else ""))


if __name__ == "__main__":
    main()
