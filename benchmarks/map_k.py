"""Cost of one MAP_k ascent (EM on the simplex, coarse to fine) against a baseline and its FFT floor.

    python benchmarks/map_k.py [--kernel levin4] [--size 128] [--n-em 15] [--threads N]

* shipped  : ``kernel_estimation.map_k``: each M-step assembles the quadratic Q(h) = h^T A h - 2 b^T h on the
             kernel's support from two FFTs (A from the lags of fft2(|mu|^2 + c)) and runs FISTA with dense
             k^2 x k^2 products;
* baseline : the same EM with the M-step's FISTA gradients taken through the FFT definition of Q (autograd
             through the OTF: two image-sized FFTs per inner iteration), what one writes without the dense form;
* floor    : the image-sized FFTs every EM iteration needs whatever the M-step (the E-step's OTF, fft2 of y and
             the posterior mean, the two FFTs that give A and b, the marginal's evaluation), timed alone.
Both ascents run the same EM iterations from the Dirac on the same pyramid; their kernels agree to the FISTA
tolerance (printed).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from _levin_case import parse_case
from landscape import kernels, marginal
from landscape import kernel_estimation as ke
from landscape.kernels import project_simplex
from landscape.operators import otf


def fft_m_step(y, mu, c, h0, n_iter):
    """FISTA on Q(h) = sum |H mu - Y|^2 + |H|^2 c with gradients through the OTF (the baseline)."""
    shape = tuple(y.shape)
    Y = torch.fft.fft2(y, norm="ortho")
    size = h0.shape[0]

    def Q(h):
        Hk = torch.fft.fft2(torch.fft.irfft2(otf(h, shape), s=shape))
        return ((Hk * mu - Y).abs() ** 2 + Hk.abs() ** 2 * c).sum()

    A, _, _ = ke.m_step_quadratic(y, mu, c, size)            # only for the same exact step 1/L
    n = A.shape[0]
    P = torch.eye(n, dtype=A.dtype) - 1.0 / n
    L = 2 * float(torch.linalg.eigvalsh(P @ A @ P)[-1])
    h, z, t = h0.reshape(-1).clone(), h0.reshape(-1).clone(), 1.0
    for _ in range(n_iter):
        zz = z.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(Q(zz.reshape(size, size)), zz)
        h_new = project_simplex((z - g / L)[None])[0]
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = h_new + (t - 1) / t_new * (h_new - h)
        h, t = h_new, t_new
    return h.reshape(size, size)


def em(y, noise, size, n_em, n_inner, m_step):
    levels = ke.pyramid(y.shape, size)
    h = kernels.dirac(levels[0][1]).numpy()
    for shape, k, r in levels:
        h = ke.upsample_kernel(h, k)
        yl = torch.as_tensor(ke._resize(y, shape))
        prior = ke.gaussian_prior(shape)
        prob = ke.kernel_problem(yl.numpy(), noise * r, k)
        ht = torch.as_tensor(h)
        for _ in range(n_em):
            marginal.marginal_nll(prob, prior, prob.family.theta_of(ht.numpy()))
            mu, c = ke.e_step(yl, ht, prior, noise * r)
            ht = m_step(yl, mu, c, ht)
        h = ht.numpy()
    return h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-em", type=int, default=15)
    ap.add_argument("--n-inner", type=int, default=100)
    args, h_true, y = parse_case(ap)
    K = h_true.shape[0]
    levels = ke.pyramid(y.shape, K)
    for shape, _, _ in levels:                              # fit (and cache) the Gaussian priors outside the timings
        ke.gaussian_prior(shape)
    n_it = args.n_em * len(levels)
    print(f"MAP_k: {args.kernel} ({K}x{K}), camera {args.size}x{args.size}, sigma 0.01, {len(levels)} levels x "
          f"{args.n_em} EM iterations x {args.n_inner} FISTA steps, {torch.get_num_threads()} threads")

    def dense(yl, mu, c, ht):
        A, b, _ = ke.m_step_quadratic(yl, mu, c, ht.shape[0])
        return ke._fista_simplex(A, b, ht.reshape(-1), args.n_inner).reshape(ht.shape)

    t = time.perf_counter()
    h_ship = em(y, 0.01, K, args.n_em, args.n_inner, dense)
    t_ship = time.perf_counter() - t
    t = time.perf_counter()
    h_base = em(y, 0.01, K, args.n_em, args.n_inner, lambda yl, mu, c, ht: fft_m_step(yl, mu, c, ht, args.n_inner))
    t_base = time.perf_counter() - t

    def floor():
        for shape, k, _ in levels:
            yl = torch.as_tensor(ke._resize(y, shape))
            h = kernels.dirac(k, dtype=torch.float64)
            for _ in range(args.n_em):
                for _ in range(2):                            # the E-step's and the marginal's OTF
                    torch.fft.fft2(torch.fft.irfft2(otf(h, shape), s=shape))
                Y = torch.fft.fft2(yl, norm="ortho")
                mu = torch.fft.ifft2(Y, norm="ortho")
                torch.fft.fft2(mu.abs() ** 2)
                torch.fft.fft2(mu * Y.conj())
    t = time.perf_counter()
    floor()
    t_floor = time.perf_counter() - t
    print(f"  {'shipped (dense M-step)':<34}{t_ship:8.2f} s  {t_ship / n_it * 1e3:8.1f} ms/EM iteration")
    print(f"  {'baseline (FFT M-step, autograd)':<34}{t_base:8.2f} s  {t_base / n_it * 1e3:8.1f} ms/EM iteration")
    print(f"  {'floor (its image-sized FFTs)':<34}{t_floor:8.2f} s  {t_floor / n_it * 1e3:8.1f} ms/EM iteration")
    print(f"  baseline / shipped = {t_base / t_ship:.1f}x    shipped / floor = {t_ship / t_floor:.1f}x")
    print(f"  kernels agree: max |h_shipped - h_baseline| = {np.abs(h_ship - h_base).max():.2e}; kernel error "
          f"{ke.kernel_error(h_ship, h_true):.3f} (the Dirac: {ke.kernel_error(np.ones((1, 1)), h_true):.3f})")


if __name__ == "__main__":
    main()
