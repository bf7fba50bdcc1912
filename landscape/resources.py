"""Files shipped inside the package (package data), found through :mod:`importlib.resources`.

============================  =====================================================================
what                          where
============================  =====================================================================
network weights (``*.pt``)    ``landscape/denoisers/weights/``: priors and unrolled models
measured kernels (``*.txt``)  ``landscape/measured_kernels/levin09/``: Levin, Weiss, Durand &
                              Freeman (CVPR 2009), six of their eight camera-shake kernels
============================  =====================================================================

Every module reads these through this one, so an installed wheel finds the same files as an editable
checkout (``tests/test_resources.py`` builds the wheel and checks that each one is inside it).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

#: measured camera-shake kernels by name -> file (Levin et al. 2009's numbering)
MEASURED_KERNELS = {f"levin{i}": f"levin09_kernel{i}.txt" for i in (2, 3, 4, 5, 7, 8)}


def _package_dir(*parts: str) -> Path:
    # the package is installed as files (setuptools, editable or wheel), so the traversable is a path
    return Path(str(importlib.resources.files("landscape").joinpath(*parts)))


def weights_dir() -> Path:
    """The folder of the shipped network weights (where ``landscape train-*`` writes by default)."""
    return _package_dir("denoisers", "weights")


def weights_path(name: str) -> Path:
    """The file of shipped weights ``name`` (it may not exist: the caller says how to train it)."""
    return weights_dir() / f"{name}.pt"


def shipped_weights() -> list[Path]:
    """Every weights file the package holds."""
    return sorted(weights_dir().glob("*.pt"))


def measured_kernel_path(name: str) -> Path:
    """The file of the measured kernel ``name`` (one of :data:`MEASURED_KERNELS`)."""
    return _package_dir("measured_kernels", "levin09") / MEASURED_KERNELS[name]
