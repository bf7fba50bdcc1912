"""Why HQS solves with the shipped Tweedie prior stall: the denoiser is expansive.

    python benchmarks/denoiser_expansiveness.py [--theta 1.5] [--iters 300]

On the main study's problem (64x64 camera, Gaussian blur theta* = 1.5, sigma = 0.01, denoiser-gray at
s = 0.01), solve argmin_x by HQS from y (at most --iters iterations), then print at the kept x:
||J_D|| (largest singular value of the denoiser's Jacobian, power iteration on J^T J with
forward/reverse-mode products) and rho(J_T), the spectral radius of the HQS map
(solvers.fixed_point_rate). ||J_D|| > 1 where the blur leaves x unconstrained gives rho >= 1.
"""

from __future__ import annotations

import argparse

import torch

import landscape as ls
from landscape import data, kernels, priors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--theta", type=float, default=1.5)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--power", type=int, default=40)
    args = ap.parse_args()
    img = data.center_crop(data.load("camera"), 64)
    prob = ls.BlindDeblur.synthetic(img, kernels.Gaussian(15), 1.5, 0.01, rng=0, dtype=torch.float32)
    prior = priors.load("denoiser-gray", "tweedie", s=0.01)
    post = ls.Posterior(prob, prior)
    x, _, info = post.argmin_x([args.theta], None, method="hqs", xtol=1e-6, max_iter=args.iters, energies=False)
    D = lambda z: prior.denoiser(z, prior.s)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    v = v / v.norm()
    for _ in range(args.power):                       # power iteration on J^T J
        _, jv = torch.func.jvp(D, (x,), (v,))
        _, vjp = torch.func.vjp(D, x)
        (w,) = vjp(jv)
        sigma = float(w.norm()) ** 0.5
        v = w / w.norm()
    rho = float(ls.solvers.fixed_point_rate(post, [[args.theta]], x)[0])
    print(f"theta = {args.theta:g}: HQS {int(info.n_iter[0])} iterations, converged {bool(info.converged[0])}; "
          f"||J_D|| = {sigma:.3f} ({args.power} power steps); rho(J_T) = {rho:.4f}")


if __name__ == "__main__":
    main()
