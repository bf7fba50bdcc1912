"""What studies share: the options that define a blind-deblurring problem, and their reading."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import data, kernels
from .._checks import InputError, choice, positive


@dataclass
class ProblemConfig:
    """Image, kernel family, true parameter, grid and noise (base of study configurations)."""

    image: str = field(default="camera", metadata={"help": "image name (data.names())"})
    image_file: str = field(default="", metadata={"help": "your own grayscale image (.png/.npy); overrides --image"})
    kernel_file: str = field(default="", metadata={"help": "a measured kernel (.npy/text) as h*: scan t in h=(1-t)δ+t h*"})
    crop: int = field(default=64, metadata={"help": "central crop size"})
    family: str = field(default="gaussian", metadata={"help": "kernel family: " + ", ".join(kernels.FAMILIES)})
    kernel_size: int = field(default=15, metadata={"help": "odd kernel size"})
    theta_true: str = field(default="1.5", metadata={"help": "true parameter(s), comma-separated"})
    theta_max: float = field(default=3.0, metadata={"help": "grid upper end for the first parameter"})
    n_theta: int = field(default=25, metadata={"help": "grid points from 0 to theta_max"})
    noise: float = field(default=0.01, metadata={"help": "noise standard deviation sigma"})

    def validate_problem(self, min_points: int = 3) -> None:
        if not self.kernel_file:
            choice("family", self.family, kernels.FAMILIES)
        positive("noise", self.noise)
        positive("theta_max", self.theta_max)
        if self.n_theta < min_points:
            raise InputError("n_theta", f"at least {min_points} grid points", self.n_theta)


def split(text: str) -> list[str]:
    """Comma-separated names, blanks dropped."""
    return [t.strip() for t in str(text).split(",") if t.strip()]


def floats(name: str, text: str) -> np.ndarray:
    """Comma-separated numbers."""
    try:
        return np.array([float(t) for t in split(text)])
    except ValueError:
        raise InputError(name, "comma-separated numbers", repr(text)) from None


def family_and_truth(cfg: ProblemConfig) -> tuple[kernels.KernelFamily, np.ndarray, float]:
    """The family, the checked true parameter and the grid's upper end (``Path`` family for a kernel file)."""
    if cfg.kernel_file:
        return kernels.Path(kernels.load(cfg.kernel_file), name="kernel_file"), np.array([1.0]), 1.0
    fam = kernels.get(cfg.family, cfg.kernel_size)
    theta = floats("theta_true", cfg.theta_true)
    if theta.size != fam.n_params:
        raise InputError("theta_true", f"{fam.n_params} value(s) for family {fam.name!r}", theta.size)
    fam.check(theta)
    return fam, theta, cfg.theta_max


def theta_grid(theta_true: np.ndarray, grid_max: float, n: int, include_truth: bool = False) -> np.ndarray:
    """``(n, p)`` grid: the first parameter from 0 to ``grid_max``, the others at their true values."""
    g = np.linspace(0.0, grid_max, n)
    if include_truth:
        g = np.unique(np.concatenate([g, theta_true[:1]]))
    grid = np.tile(theta_true, (len(g), 1))
    grid[:, 0] = g
    return grid


def load_image(cfg: ProblemConfig, special: dict[str, Callable[[], np.ndarray]] | None = None) -> np.ndarray:
    """The central ``crop`` of the image file or named image (or of a ``special`` generator)."""
    if cfg.image_file:
        img = data.load_file(cfg.image_file)
        return data.center_crop(img, min(cfg.crop, *img.shape))
    if special and cfg.image in special:
        return special[cfg.image]()
    return data.center_crop(data.load(cfg.image), cfg.crop)
