"""Cost of one MAP_k ascent under the diffusion prior (Monte Carlo EM, DPS E-steps) against a baseline and its floor.

    python benchmarks/map_k_diffusion.py [--kernel levin4] [--size 128] [--n-em 4] [--levels 30] [--chains 2]
                                         [--threads N]

* shipped  : ``kernel_estimation.map_k_diffusion`` with the study's settings: every E-step one batched diffusion
             posterior sampling run of ``--chains`` draws (``sampling.diffusion.dps``), the M-step the draws'
             moment quadratic and FISTA on the simplex, coarse to fine;
* baseline : the same EM with the draws made one at a time (its ``sampler``: a loop of single-chain DPS runs, what
             one writes around a sampler that returns one draw), the same M-step;
* floor    : the network work every E-step needs whatever the code around it: per DPS level one forward call of
             the denoiser on the batch of draws and one vector-Jacobian product through it, at each pyramid
             level's image size, timed alone and multiplied by the calls the ascent makes.
Prints the time of each, the shipped run's time outside its sampler (M-steps, pyramid), and the kernel errors (the two ascents draw different
noise, so their kernels differ by Monte Carlo error).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from _levin_case import parse_case
from landscape import kernel_estimation as ke
from landscape.sampling.diffusion import dps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-em", type=int, default=4)
    ap.add_argument("--levels", type=int, default=ke.DIFFUSION_E_STEP.levels)
    ap.add_argument("--chains", type=int, default=ke.DIFFUSION_E_STEP.chains)
    args, h_true, y = parse_case(ap)
    K = h_true.shape[0]
    levels = ke.pyramid(y.shape, K)
    priors = {shape: ke.tweedie_prior(shape) for shape, _, _ in levels}   # loaded outside the timings
    prior = lambda shape: priors[tuple(shape)]                             # noqa: E731
    opts = replace(ke.DIFFUSION_E_STEP, levels=args.levels, chains=args.chains)
    calls = len(levels) * args.n_em * args.levels
    print(f"MAP_k under the diffusion prior: {args.kernel} ({K}x{K}), camera {args.size}x{args.size}, sigma 0.01, "
          f"{len(levels)} levels x {args.n_em} EM iterations x {args.levels} DPS levels x {args.chains} draws, "
          f"{torch.get_num_threads()} threads")

    def timed(sampler, clock):                # the E-steps' sampler, clocked: the rest is the M-steps and the pyramid
        def draw(post, theta, rng):
            t0 = time.perf_counter()
            out = sampler(post, theta, rng)
            clock[0] += time.perf_counter() - t0
            return out
        return draw
    e_time = [0.0]
    t = time.perf_counter()
    h_ship = ke.map_k_diffusion(y, 0.01, K, prior=prior, n_em=args.n_em, sampler=timed(ke.dps_sampler(opts), e_time),
                                rng=0)["kernel"]
    t_ship = time.perf_counter() - t

    single = replace(opts, chains=1)

    def one_at_a_time(post, theta, rng):     # the baseline's E-step: a loop of single-draw DPS runs
        return torch.cat([dps(post, theta, single, rng=rng + j)["draws"][:, 0] for j in range(opts.chains)])
    t = time.perf_counter()
    h_base = ke.map_k_diffusion(y, 0.01, K, prior=prior, n_em=args.n_em, sampler=one_at_a_time, rng=0)["kernel"]
    t_base = time.perf_counter() - t

    t_floor = 0.0
    for shape, _, _ in levels:
        net = priors[tuple(shape)]
        z = torch.randn((args.chains, *shape), generator=torch.Generator().manual_seed(0))
        v = torch.randn_like(z)

        def call():
            zg = z.detach().requires_grad_(True)
            out = net.denoise(zg, 0.1, differentiable=True)
            torch.autograd.grad((out * v).sum(), zg)
        call()                                                # warm-up
        reps = 5
        t = time.perf_counter()
        for _ in range(reps):
            call()
        t_floor += (time.perf_counter() - t) / reps * args.n_em * args.levels
    print(f"  {'shipped (batched draws)':<36}{t_ship:8.2f} s  ({t_ship - e_time[0]:.2f} s of it outside the sampler: "
          "M-steps, pyramid)")
    print(f"  {'baseline (one draw at a time)':<36}{t_base:8.2f} s")
    print(f"  {'floor (network forward + VJP)':<36}{t_floor:8.2f} s  ({calls} calls on {args.chains} draws)")
    print(f"  baseline / shipped = {t_base / t_ship:.2f}x    shipped / floor = {t_ship / t_floor:.2f}x")
    err = lambda h: ke.kernel_error(h, h_true)                               # noqa: E731
    print(f"  kernel error: shipped {err(h_ship):.3f}, baseline {err(h_base):.3f}"
          f" (the Dirac: {ke.kernel_error(np.ones((1, 1)), h_true):.3f})")


if __name__ == "__main__":
    main()
