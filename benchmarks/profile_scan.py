"""Profile-scan speed: batched scan vs per-theta loop vs its FFT floor (one run prints all).

    python benchmarks/profile_scan.py [--n-theta 64] [--size 128] [--dtype float64] [--threads N]

* batched : ``Posterior.argmin_x`` on all theta at once (one L-BFGS run, per-item memory/steps)
* loop    : the same solver called once per theta (a Python loop)
* floor   : what the batched scan cannot avoid, run alone: for every item-evaluation it made, the data
            term's misfit and adjoint (``Blur.misfit``: one forward and one inverse FFT) and the prior's
            energy and gradient (here the Gaussian's two FFTs), replayed on the whole batch and in the
            solver's blocks (``optim.VALUES_PER_BLOCK``); the faster of the two is the floor.
            ``H, H^T floor`` is the older, narrower floor (H and H^T applied separately, four FFTs,
            no prior), printed for comparison with earlier measurements.
Also times the circular convolution of one image by 64 kernels in chunks of various sizes.
``--profile``: where the batched scan's time goes, from one more scan under ``cProfile``: its FFTs split by
caller (the data misfit, the prior, the solver's preconditioner), the L-BFGS memory's vector passes (dot
products and axpys), and the rest.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
import torch

import landscape as ls
from landscape import data, kernels, optim, priors
from landscape.operators import Blur


def best_of(fn, repeat=3):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return min(ts), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-theta", type=int, default=64)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    ap.add_argument("--profile", action="store_true", help="break the batched scan's time down (cProfile)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dt = getattr(torch, args.dtype)
    img = data.center_crop(data.load("camera"), args.size)
    fam = kernels.Gaussian(15)
    prob = ls.BlindDeblur.synthetic(img, fam, 1.5, 0.01, rng=0, dtype=dt)
    prior = priors.GaussianPrior.fit(data.TRAIN, (args.size, args.size))
    post = ls.Posterior(prob, prior)
    theta = np.linspace(0, 3, args.n_theta)
    T = args.n_theta
    print(f"profile scan: {T} theta, {args.size}x{args.size} camera, Gaussian prior, {args.dtype}, "
          f"{torch.get_num_threads()} threads")

    t_batch, (x, terms, info) = best_of(lambda: post.argmin_x(theta))
    evals = info.n_item_evals

    def loop():
        out, n = [], 0
        for t in theta:
            _, tt, inf = post.argmin_x([t])
            out.append(tt["energy"])
            n += inf.n_item_evals
        return torch.cat(out), n

    t_loop, (e_loop, evals_loop) = best_of(loop)
    assert torch.allclose(e_loop, terms["energy"], rtol=1e-10), "loop and batch disagree"

    blur = prob.blur(theta)
    xs = x.clone()
    y = torch.zeros_like(xs)
    n_batches = evals / T

    def old_floor():
        for _ in range(int(round(n_batches))):
            blur.adjoint(blur(xs) - y)

    def floor():
        for _ in range(int(round(n_batches))):
            blur.misfit(xs, prob.y)
            prior.energy_and_grad(xs)

    per_block = max(1, optim.VALUES_PER_BLOCK // xs[0].numel())
    blocks = [(prob.blur(theta[i:i + per_block]), xs[i:i + per_block]) for i in range(0, T, per_block)]

    def floor_blocks():                       # the same calls in the solver's blocks (their arrays stay in cache)
        for b, xb in blocks:
            for _ in range(int(round(n_batches))):
                b.misfit(xb, prob.y)
                prior.energy_and_grad(xb)

    t_full, _ = best_of(floor)
    t_blocks, _ = best_of(floor_blocks)
    t_floor = min(t_full, t_blocks)
    t_old, _ = best_of(old_floor)
    print(f"  item-evaluations (energy+gradient): batched {evals} ({evals / T:.1f}/theta), loop {evals_loop}")
    print(f"  {'batched scan':<28}{t_batch * 1e3:9.1f} ms  {t_batch / T * 1e6:9.0f} us/theta")
    print(f"  {'per-theta loop':<28}{t_loop * 1e3:9.1f} ms  {t_loop / T * 1e6:9.0f} us/theta")
    print(f"  {'floor: misfit + prior calls':<28}{t_floor * 1e3:9.1f} ms  {t_floor / T * 1e6:9.0f} us/theta"
          f"   (the faster of: whole batch {t_full * 1e3:.0f} ms, blocks of {per_block} {t_blocks * 1e3:.0f} ms)")
    print(f"  {'H, H^T floor (older)':<28}{t_old * 1e3:9.1f} ms  {t_old / T * 1e6:9.0f} us/theta")
    print(f"  loop / batched = {t_loop / t_batch:.2f}x    batched / floor = {t_batch / t_floor:.2f}x"
          f"    batched / H, H^T floor = {t_batch / t_old:.2f}x")

    if args.profile:
        breakdown(lambda: post.argmin_x(theta), t_floor)

    # chunking of one big kernel batch
    h = fam(torch.as_tensor(theta, dtype=dt))
    xi = prob.y
    print(f"\n  H x for one {args.size}^2 image and {T} kernels (per kernel):")
    t_loop1, _ = best_of(lambda: [Blur(h[i], xi.shape)(xi) for i in range(T)], 5)
    print(f"    {'python loop':<16}{t_loop1 / T * 1e6:8.1f} us")
    for chunk in (None, 4, 8, 16, 32):
        op = Blur(h, xi.shape, chunk=chunk)
        t_c, _ = best_of(lambda: op(xi), 5)
        print(f"    chunk={str(chunk):<10}{t_c / T * 1e6:8.1f} us")


def breakdown(scan, t_floor: float) -> None:
    """One more scan under cProfile: FFT time by caller, the L-BFGS vector passes, everything else."""
    pr = cProfile.Profile()
    pr.enable()
    scan()
    pr.disable()
    st = pstats.Stats(pr)
    total = st.total_tt
    fft = {"misfit": 0.0, "energy_and_grad": 0.0, "_fourier": 0.0}
    vector = 0.0
    for (file, line, name), (_, _, tt, _, callers) in st.stats.items():
        if name in ("<built-in method torch._C._fft.fft_rfft2>", "<built-in method torch._C._fft.fft_irfft2>"):
            for (cfile, cline, cname), cstat in callers.items():
                key = cname if cname in fft else "energy_and_grad" if "prior" in cfile else None
                if key:
                    fft[key] += cstat[2]
        elif name in ("<built-in method torch._C._linalg.linalg_vecdot>", "<method 'addcmul_' of "
                      "'torch._C.TensorBase' objects>"):
            vector += tt
    print(f"\n  where the batched scan's {total * 1e3:.0f} ms go (cProfile, one more scan; floor {t_floor * 1e3:.0f} ms):")
    for label, v in (("FFTs of the data misfit", fft["misfit"]), ("FFTs of the prior", fft["energy_and_grad"]),
                     ("FFTs of the preconditioner", fft["_fourier"]),
                     ("L-BFGS vector passes (dots, axpys)", vector)):
        print(f"    {label:<38}{v * 1e3:8.0f} ms  {v / total:6.1%}")
    rest = total - sum(fft.values()) - vector
    print(f"    {'the rest (elementwise work, Python)':<38}{rest * 1e3:8.0f} ms  {rest / total:6.1%}")


if __name__ == "__main__":
    main()
