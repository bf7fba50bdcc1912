"""Cost of one MAP_k ascent under the diffusion prior (Monte Carlo EM, DPS E-steps) against a baseline and its floor.

    python benchmarks/map_k_diffusion.py [--kernel levin4] [--size 128] [--n-em 4] [--levels 30] [--chains 2]
                                         [--threads N]

* shipped  : ``kernel_estimation.map_k_diffusion`` with the study's settings: every E-step one batched diffusion
             posterior sampling run of ``--chains`` draws (``sampling.diffusion.dps``), the M-step the draws'
             moment quadratic and FISTA on the simplex, coarse to fine;
* baseline : the same EM with the draws made one at a time (a loop of single-chain DPS runs, what one writes
             around a sampler that returns one draw), the same M-step;
* floor    : the network work every E-step needs whatever the code around it: per DPS level one forward call of
             the denoiser on the batch of draws and one vector-Jacobian product through it, at each pyramid
             level's image size, timed alone and multiplied by the calls the ascent makes.
Prints the time of each, the shipped run's M-steps alone, and the kernel errors (the two ascents draw different
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
from landscape.posterior import Posterior
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

    m_time = [0.0]
    fista = ke._fista_simplex

    def timed_fista(*a):                      # the shipped run's M-step solves (FISTA on the simplex), clocked
        t0 = time.perf_counter()
        out = fista(*a)
        m_time[0] += time.perf_counter() - t0
        return out
    ke._fista_simplex = timed_fista
    t = time.perf_counter()
    h_ship = ke.map_k_diffusion(y, 0.01, K, prior=prior, n_em=args.n_em, options=opts, rng=0)["kernel"]
    t_ship = time.perf_counter() - t
    ke._fista_simplex = fista

    def one_at_a_time(y_, noise, prior_, h0, n_em, n_inner, options, seeds, dtype, device, on_iter=None):
        size = h0.shape[0]
        single = replace(options, chains=1)
        prob = ke.kernel_problem(y_, noise, size, dtype=dtype)
        post = Posterior(prob, prior_)
        y64 = prob.y.to(torch.float64)
        h = torch.as_tensor(h0, dtype=torch.float64).reshape(-1)
        for t_ in range(n_em):
            theta = prob.family.theta_of(h.reshape(size, size).to(dtype))
            draws = torch.cat([dps(post, theta, single, rng=int(seeds[t_]) + j)["draws"][:, 0]
                               for j in range(options.chains)])
            A, b, _ = ke.draws_m_step(y64, draws, size)
            h = fista(A, b, h, n_inner)
        return h.reshape(size, size).numpy(), []
    level_fn = ke._diffusion_em_level           # the same pyramid, its levels' E-steps one draw at a time
    ke._diffusion_em_level = one_at_a_time
    t = time.perf_counter()
    h_base = ke.map_k_diffusion(y, 0.01, K, prior=prior, n_em=args.n_em, options=opts, rng=0)["kernel"]
    t_base = time.perf_counter() - t
    ke._diffusion_em_level = level_fn

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
    print(f"  {'shipped (batched draws)':<36}{t_ship:8.2f} s  ({m_time[0]:.2f} s of it in the M-steps' FISTA)")
    print(f"  {'baseline (one draw at a time)':<36}{t_base:8.2f} s")
    print(f"  {'floor (network forward + VJP)':<36}{t_floor:8.2f} s  ({calls} calls on {args.chains} draws)")
    print(f"  baseline / shipped = {t_base / t_ship:.2f}x    shipped / floor = {t_ship / t_floor:.2f}x")
    err = lambda h: ke.kernel_error(h, h_true)                               # noqa: E731
    print(f"  kernel error: shipped {err(h_ship):.3f}, baseline {err(h_base):.3f}"
          f" (the Dirac: {ke.kernel_error(np.ones((1, 1)), h_true):.3f})")


if __name__ == "__main__":
    main()
