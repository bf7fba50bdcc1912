"""What the main study's pipeline costs from 32^2 to 256^2: each phase's time, its floor, and the growth.

    python benchmarks/scale.py [--sizes 32,64,128,256] [--prior gs] [--n-theta 5] [--n-outer 5] [--threads 1]
                               [--dtype float32]

For each image size (a centre crop of ``camera``, Gaussian blur theta* = 1.5, sigma = 0.01) it runs the
phases of ``trivial-minimizer`` with the library calls the study makes:

* profile     -- ``scan.profile`` over ``n_theta`` kernels, warm-started from both ends;
* descents    -- ``descent.descend`` (alternating, ``n_outer`` steps) from the study's initialisations;
  both in ``--dtype`` (the problem and the prior; default float32, the study's default ``dtype``);
* polish      -- ``certify.local_minimiser`` from the profile's point nearest theta* (float64);
* certificate -- ``certify.certificate`` at the polished point: the smallest eigenvalue of the joint
                 Hessian, at most ``--cert-products`` products.

The floor of a phase is the work it cannot avoid, replayed with nothing else: every forward-model call
(FFT convolution) and every prior call it made, tallied by shape while the phase ran and timed again one
signature at a time (the certificate: its energy-gradient evaluations and Hessian products, each timed
alone). ``ratio`` = time / floor: what the solvers' own arithmetic, Python and bookkeeping add. The growth
exponent is the slope of log(time) against log(pixels) over the sizes (1: linear in the pixel count; FFTs
are n log n, about 1.1 over this range). After each size it prints the process's peak resident memory so
far (the 256² run was once killed at 24 GB; the denoiser now splits its batches, ``nets.PIXELS_PER_CALL``).
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import Counter
from contextlib import contextmanager

import numpy as np
import torch

import landscape as ls
from landscape import certify, data, descent, kernels, scan
from landscape.hessian import joint_hvp
from landscape.operators import Blur
from landscape.priors import PriorSettings, make_prior
from landscape.solvers import SolverOptions


@contextmanager
def tally(prior):
    """Count forward-model and prior calls by (what, input shape) while the block runs."""
    seen: Counter = Counter()
    patched = []

    def wrap(owner, name, key):
        orig = getattr(owner, name)

        def counted(*a, **k):
            x = a[1] if owner is Blur else a[0]
            seen[(key, tuple(x.shape))] += 1
            return orig(*a, **k)
        patched.append((owner, name, orig))
        setattr(owner, name, counted)

    wrap(Blur, "__call__", "H")
    wrap(Blur, "adjoint", "Ht")
    depth = [0]                   # a prior method called by another (energy -> grad) is counted once, outermost
    for name in ("energy_and_grad", "grad", "energy", "denoise"):
        if hasattr(prior, name):
            orig = getattr(prior, name)

            def counted(x, *a, _orig=orig, _name=name, **k):
                if depth[0] == 0:
                    seen[(_name, tuple(x.shape))] += 1
                depth[0] += 1
                try:
                    return _orig(x, *a, **k)
                finally:
                    depth[0] -= 1
            patched.append((prior, name, None))
            setattr(prior, name, counted)
    try:
        yield seen
    finally:
        for owner, name, orig in patched:
            if orig is None:
                delattr(owner, name)                  # the instance attribute: back to the class's method
            else:
                setattr(owner, name, orig)


def prior_items(seen: Counter) -> int:
    """Images the prior was called on (a batch of B counts B)."""
    return sum(c * (shape[0] if len(shape) > 2 else 1) for (what, shape), c in seen.items() if what not in ("H", "Ht"))


def replay(seen: Counter, post, repeat: int = 2) -> float:
    """Seconds the tallied calls take alone: each (what, shape) timed on a random input, times its count."""
    prob, prior = post.problem, post.prior
    total = 0.0
    for (what, shape), count in seen.items():
        x = torch.rand(shape, dtype=prob.dtype)
        if what in ("H", "Ht"):
            B = shape[0] if len(shape) > 2 else 1
            blur = prob.blur(torch.full((B, 1), 1.5, dtype=prob.dtype))
            fn = (lambda: blur(x)) if what == "H" else (lambda: blur.adjoint(x))
        elif what == "denoise":
            fn = lambda: prior.denoise(x, prior.s)
        else:
            fn = lambda: getattr(prior, what)(x)
        best = np.inf
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        total += best * count
    return total


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def one_size(n: int, args) -> dict[str, tuple[float, float]]:
    img = data.center_crop(data.load("chelsea", color=True), n) if args.color else \
        data.center_crop(data.load("camera"), n)
    dtype = getattr(torch, args.dtype)
    prob = ls.BlindDeblur.synthetic(img, kernels.Gaussian(9), 1.5, 0.01, rng=0, dtype=dtype)
    prior = make_prior(args.prior, prob.event_shape, PriorSettings(s=0.01, dtype=dtype))
    post = ls.Posterior(prob, prior)
    solver = SolverOptions(xtol=1e-4, max_iter=args.max_iter)
    grid = np.linspace(0, 3, args.n_theta)
    out = {}
    with tally(prior) as seen:
        t, prof = timed(lambda: scan.profile(post, grid, warm_start=True, store_images=True, solver=solver,
                                             progress=False))
    out["profile"] = (t, replay(seen, post), prior_items(seen))
    th0, x0, labels = descent.initialisations(post, rng=0)
    with tally(prior) as seen:
        t, _ = timed(lambda: descent.descend(post, th0, x0, labels=labels, n_outer=args.n_outer, solver=solver,
                                             progress=False))
    out["descents"] = (t, replay(seen, post), prior_items(seen))
    if prior.capability("energy") != "approximate":        # a score prior has no energy to polish
        i = int(np.argmin(np.abs(grid - 1.5)))
        b = int(np.argmin(prof.profile_energy_branch.values[:, i]))
        pb = ls.BlindDeblur(prob.y.double(), prob.family, prob.noise, x_true=prob.x_true.double(),
                            theta_true=prob.theta_true, dtype=torch.float64)
        p64 = make_prior(args.prior, prob.event_shape, PriorSettings(s=0.01, dtype=torch.float64))
        post64 = ls.Posterior(pb, p64)
        x = torch.as_tensor(prof.x_hat.values[b, i], dtype=torch.float64)
        calls0 = p64.n_calls
        t, pol = timed(lambda: certify.local_minimiser(post64, [[grid[i]]], x, gtol=1e-4))
        th = torch.tensor([[float(pol["theta"][0])]], dtype=torch.float64)

        def fg():
            t_, x_ = th.clone().requires_grad_(True), pol["x"][None].clone().requires_grad_(True)
            return torch.autograd.grad(post64.energy(t_, x_).sum(), (t_, x_))
        t_fg, _ = timed(fg)
        out["polish"] = (t, (p64.n_calls - calls0) * t_fg, p64.n_calls - calls0)
        # the certificate at the polished point (whatever its gradient): the eigensolver's products
        t, ce = timed(lambda: certify.certificate(post64, th, pol["x"], k=1, gtol=1e-2, method=args.cert_method,
                                                  maxiter=args.cert_products))
        op = joint_hvp(post64, th, pol["x"])
        v = np.random.default_rng(0).standard_normal(op.shape[0])
        t_hvp, _ = timed(lambda: op.matvec(v))
        out["certificate"] = (t, ce["products"] * t_hvp, int(ce["products"]))
        out["_note"] = (f"polish {pol['iterations']} iterations, |grad| {pol['grad_norm']:.2g}; certificate "
                        f"{int(ce['products'])} products: {ce['verdict'][:48]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="32,64,128,256")
    ap.add_argument("--prior", default="gs", help="a registry prior (gs: every phase; tweedie: no certificate)")
    ap.add_argument("--n-theta", type=int, default=5)
    ap.add_argument("--n-outer", type=int, default=5)
    ap.add_argument("--max-iter", type=int, default=100, help="inner solver iterations at most")
    ap.add_argument("--cert-products", type=int, default=100, help="eigensolver products at most")
    ap.add_argument("--cert-method", default="lanczos", choices=["auto", "dense", "lanczos", "lobpcg"],
                    help="the certificate's eigensolver (auto: dense, d products, up to d = 1200)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                    help="the profile's and the descents' dtype (trivial-minimizer's default: float32); the polish and "
                         "the certificate run in float64, as the study's verdicts do")
    ap.add_argument("--color", action="store_true", help="colour crops of chelsea (3, n, n) and the prior's colour version")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"scale: trivial-minimizer's phases, prior {args.prior}, {'chelsea colour' if args.color else 'camera'} "
          f"crops, Gaussian blur, {args.n_theta} theta, "
          f"{args.n_outer} descent steps, {torch.get_num_threads()} threads, profile and descents in {args.dtype}")
    print(f"  {'size':>6} {'phase':<12} {'time s':>9} {'floor s':>9} {'ratio':>6} {'prior items':>12}")
    rows = {}
    for n in sizes:
        r = one_size(n, args)
        note = r.pop("_note", "")
        rows[n] = r
        for ph, (t, f, items) in r.items():
            print(f"  {n:>4}^2 {ph:<12} {t:9.2f} {f:9.2f} {t / f if f else float('nan'):6.2f} {items:12d}"
                  + (f"   ({note})" if ph == "certificate" else ""), flush=True)
        # the process's peak over everything run so far (Linux reports KB)
        print(f"  {n:>4}^2 peak resident memory so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB",
              flush=True)
    if len(sizes) > 1:
        px = np.log(np.array(sizes, dtype=float) ** 2)
        print("  growth exponent (slope of log time against log pixels):")
        for ph in rows[sizes[0]]:
            ts = np.array([rows[n][ph][0] for n in sizes])
            fs = np.array([rows[n][ph][1] for n in sizes])
            its = np.array([max(rows[n][ph][2], 1) for n in sizes], dtype=float)
            print(f"    {ph:<12} time {np.polyfit(px, np.log(ts), 1)[0]:5.2f}   floor {np.polyfit(px, np.log(fs), 1)[0]:5.2f}"
                  f"   prior items {np.polyfit(px, np.log(its), 1)[0]:5.2f}"
                  f"   {sizes[-1]}^2 / {sizes[0]}^2 time = {ts[-1] / ts[0]:.1f}x")
        if 64 in rows and 256 in rows:
            tot = lambda n: sum(r[0] for r in rows[n].values())
            print(f"  256^2 / 64^2, all phases: {tot(256) / tot(64):.1f}x (aim: within 20x)")


if __name__ == "__main__":
    main()
