"""Argument validation shared by every layer.

Every check raises :class:`InputError`, a ``ValueError`` whose message names the offending
argument and what was expected; the CLI turns it into a one-line message and exit code 2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


class InputError(ValueError):
    """Bad user input: the message names the argument and what was expected."""

    def __init__(self, argument: str, expected: str, got: Any = None):
        self.argument = argument
        self.expected = expected
        msg = f"{argument}: expected {expected}"
        if got is not None:
            msg += f", got {got}"
        super().__init__(msg)


def positive(name: str, value: float) -> float:
    """Return ``float(value)`` if finite and > 0, else raise :class:`InputError`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(name, "a positive number", repr(value)) from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(name, "a positive finite number", value)
    return v


def image2d(name: str, image: Any) -> np.ndarray:
    """Validate a single-channel image: 2-D, real, finite, at least 4x4."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim != 2:
        raise InputError(name, "a 2-D grayscale image", f"an array of shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(name, "a real-valued image", f"dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise InputError(name, "finite pixel values", "NaN or inf")
    if min(arr.shape) < 4:
        raise InputError(name, "an image at least 4x4", f"shape {arr.shape}")
    return arr


def kernel2d(name: str, kernel: Any, atol: float = 1e-6) -> np.ndarray:
    """Validate a blur kernel: 2-D, finite, non-negative, summing to 1 within ``atol``."""
    arr = kernel.detach().cpu().numpy() if isinstance(kernel, torch.Tensor) else np.asarray(kernel)
    if arr.ndim != 2:
        raise InputError(name, "a 2-D kernel", f"an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(name, "finite kernel values", "NaN or inf")
    if arr.min() < 0:
        raise InputError(name, "a non-negative kernel", f"minimum {arr.min():.3g}")
    s = float(arr.sum())
    if abs(s - 1.0) > atol:
        raise InputError(name, "a kernel summing to 1", f"sum {s:.6g}")
    return arr


def choice(name: str, value: str, options: Any) -> str:
    """Return ``value`` if it is one of ``options``."""
    opts = list(options)
    if value not in opts:
        raise InputError(name, "one of " + ", ".join(map(str, opts)), repr(value))
    return value
