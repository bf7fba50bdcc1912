"""The near-zero count of a learned prior's Hessian (the Morse-Bott check): the d-product dense spectrum
against an iterative eigensolver that computes only the smallest eigenvalues, in one run.

    python benchmarks/near_zero_count.py [--sizes 32,64] [--prior gs] [--threshold 1e-3]

For each size: descend q from the central crop of camera (morse_bott.descend_q, 300 steps), then count
the eigenvalues with |lambda| <= t lambda_max of the Hessian there (hessian.prior_hvp, float64):
  dense     -- d Hessian-vector products, the matrix, eigh (the paper's approach: d JVPs);
  iterative -- lambda_max by Lanczos (eigsh 'LA'), then Lanczos for the k largest of lambda_max I - H (the
               k smallest of H) to the accuracy the count needs, Krylov space 6k, k doubled from max(16, d/128)
               until the k-th is above the threshold (the count is then complete).
Prints products, wall time and the count of each, and the ratio of products.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

from landscape import data, hessian
from landscape.priors import PriorSettings, make_prior
from landscape.studies import morse_bott


def counted(prior, x):
    """The study's Hessian operator of q at ``x`` (``morse_bott._operator``), counting its products."""
    op = morse_bott._operator(prior, x)
    n = {"products": 0}

    def mv(v):
        n["products"] += 1
        return op.matvec(v)
    return LinearOperator(op.shape, matvec=mv, dtype=np.float64), n


def iterative_count(prior, x, t: float) -> tuple[int, int, float]:
    """lambda_max by Lanczos, then the k largest eigenvalues of B = lambda_max I - H (the smallest of H),
    Ritz values to 0.1 t lambda_max (all the count needs), k doubled until the k-th smallest is above
    the threshold (k from max(16, d/128): a restarted first pass that falls short costs more than it saves)."""
    op, n = counted(prior, x)
    v0 = np.random.default_rng(0).standard_normal(x.numel())
    lam_max = morse_bott._largest(op) * 1.01           # Lanczos from the same v0, tol 1e-3
    shifted = LinearOperator(op.shape, matvec=lambda v: lam_max * np.ravel(v) - op.matvec(v), dtype=np.float64)
    k = max(16, x.numel() // 128)
    while True:          # a wide Krylov space (ncv = 6k) converges in far fewer products than ARPACK's 2k + 1
        mu = eigsh(shifted, k=k, which="LA", tol=0.1 * t, v0=v0, ncv=min(x.numel() - 1, 6 * k),
                   return_eigenvectors=False)
        lam = np.sort(lam_max - mu)
        cnt = int((np.abs(lam) <= t * lam_max).sum())
        if lam[-1] > t * lam_max or k >= x.numel() // 2:
            return cnt, n["products"], lam_max
        k *= 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--prior", default="gs", choices=("gs", "tweedie"))
    ap.add_argument("--threshold", type=float, default=1e-3)
    ap.add_argument("--descent-steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"prior {args.prior}, count of |lambda| <= {args.threshold:g} lambda_max, {args.threads} torch thread(s)")
    print(f"{'size':>6}{'d':>7}{'dense products':>16}{'dense s':>9}{'count':>7}"
          f"{'iterative products':>20}{'iter s':>8}{'count':>7}{'fewer products':>16}")
    for size in (int(v) for v in args.sizes.split(",")):
        prior = make_prior(args.prior, (size, size), PriorSettings(dtype=torch.float64))
        x0 = torch.as_tensor(data.center_crop(data.load("camera"), size), dtype=torch.float64)
        lip = morse_bott._largest(morse_bott._operator(prior, x0))
        x, _, _ = morse_bott.descend_q(prior, x0, lip, 1.0, 0.0, args.descent_steps)
        t0 = time.perf_counter()
        ci, pi, _ = iterative_count(prior, x, args.threshold)
        ti = time.perf_counter() - t0
        op, n = counted(prior, x)
        t0 = time.perf_counter()
        sp = hessian.spectrum(op, k=x.numel(), method="dense")
        lam = sp["eigenvalues"]
        cd = int((np.abs(lam) <= args.threshold * np.abs(lam).max()).sum())
        td = time.perf_counter() - t0
        print(f"{size:>6}{x.numel():>7}{n['products']:>16}{td:>9.1f}{cd:>7}{pi:>20}{ti:>8.1f}{ci:>7}"
              f"{n['products'] / pi:>15.1f}x")


if __name__ == "__main__":
    main()
