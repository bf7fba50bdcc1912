"""The near-zero count of a learned prior's Hessian (the Morse-Bott check): the d-product dense spectrum
against a Lanczos count that stops as soon as the count is decided, in one run.

    python benchmarks/near_zero_count.py [--sizes 32,64] [--prior gs] [--thresholds 1e-3]

For each size: descend q from the central crop of camera (critical.critical_point, 300 iterations), then count
the eigenvalues with |lambda| <= t lambda_max of the Hessian there (hessian.prior_hvp, float64):
  dense     -- d Hessian-vector products (eigen.BATCH per call), the matrix, eigh (the paper's approach: d JVPs);
  iterative -- eigen.near_zero_count: Lanczos with full reorthogonalisation, stopped when the Ritz
               intervals put every eigenvalue near each threshold on one side of it (lambda_max is its
               largest Ritz value: no separate run).
Prints products, wall time and the count of each, and the ratio of products.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from landscape import critical, data, eigen, hessian
from landscape.priors import PriorSettings, make_prior


def counted(prior, x):
    """The study's Hessian operator of q at ``x`` (``hessian.prior_operator``), counting its products."""
    return eigen.counting(hessian.prior_operator(prior, x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--prior", default="gs", choices=("gs", "tweedie"))
    ap.add_argument("--thresholds", default="1e-3", help="comma-separated; all counted by one Lanczos run")
    ap.add_argument("--descent-steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    thr = [float(t) for t in args.thresholds.split(",")]
    print(f"prior {args.prior}, counts of |lambda| <= t lambda_max for t = {thr}, {args.threads} torch thread(s)")
    print(f"{'size':>6}{'d':>7}{'dense products':>16}{'dense s':>9}{'counts':>14}"
          f"{'iterative products':>20}{'iter s':>8}{'counts':>14}{'fewer products':>16}")
    for size in (int(v) for v in args.sizes.split(",")):
        prior = make_prior(args.prior, (size, size), PriorSettings(dtype=torch.float64))
        x0 = torch.as_tensor(data.center_crop(data.load("camera"), size), dtype=torch.float64)
        x = critical.critical_point(prior, x0, max_iter=args.descent_steps)["x"]
        op, n = counted(prior, x)
        t0 = time.perf_counter()
        ci = eigen.near_zero_count(op, thr)["counts"]
        ti, pi = time.perf_counter() - t0, n["products"]
        op, n = counted(prior, x)
        t0 = time.perf_counter()
        lam = eigen.spectrum(op, k=x.numel(), method="dense")["eigenvalues"]
        cd = [int((np.abs(lam) <= t * np.abs(lam).max()).sum()) for t in thr]
        td = time.perf_counter() - t0
        print(f"{size:>6}{x.numel():>7}{n['products']:>16}{td:>9.1f}{str(cd):>14}{pi:>20}{ti:>8.1f}{str([int(c) for c in ci]):>14}"
              f"{n['products'] / pi:>15.1f}x")


if __name__ == "__main__":
    main()
