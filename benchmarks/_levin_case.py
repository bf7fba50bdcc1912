"""The case the MAP_k benchmarks share: a measured kernel blurring the central camera crop, sigma = 0.01 (circular,
seed 0)."""

from __future__ import annotations

import argparse

import numpy as np
import torch

from landscape import data, kernels
from landscape.posterior import BlindDeblur


def measured_shake_case(kernel: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(h_true, y)``: ``kernels.load(kernel)`` and the ``size x size`` camera crop it blurs, plus noise 0.01."""
    h_true = kernels.load(kernel)
    fam = kernels.Free(h_true.shape[0])
    img = data.center_crop(data.load("camera"), size)
    return h_true, BlindDeblur.synthetic(img, fam, fam.theta_of(h_true), 0.01, rng=0).y.numpy()


def parse_case(ap: argparse.ArgumentParser) -> tuple[argparse.Namespace, np.ndarray, np.ndarray]:
    """``ap`` with the case's options (``--kernel``, ``--size``, ``--threads``) added, parsed, torch's threads set:
    ``(args, h_true, y)``."""
    ap.add_argument("--kernel", default="levin4")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return (args, *measured_shake_case(args.kernel, args.size))
