"""Learned denoisers: architectures (``nets``), training (``train``) and shipped weights."""

from .nets import EDMDenoiser, GSDenoiser, load, save

__all__ = ["EDMDenoiser", "GSDenoiser", "load", "save"]
