"""Shipped learned priors, loaded from the package with no network.

======================  ===========================================================
name                    what
======================  ===========================================================
``denoiser-gray``       EDM noise-conditional UNet denoiser, natural grayscale images
``gs-denoiser-gray``    gradient-step (explicit potential) version of the same
``denoiser-gmm16``      EDM denoiser trained on samples of the 16x16 natural-crop GMM
``denoiser-color``      EDM denoiser on colour (RGB) images ``(..., 3, H, W)``, ``data.COLOR_TRAIN``
``gs-denoiser-color``   gradient-step version on colour images (explicit potential)
======================  ===========================================================

Each was produced by ``landscape train-prior NAME ...`` (the options are stored in the file's
metadata and listed in the README).
"""

from __future__ import annotations

from typing import Any

import torch

from .._checks import InputError, choice
from ..resources import weights_path
from .base import Prior
from .learned import DiffusionPrior, GradientStepPrior, TweediePrior

SHIPPED = {"denoiser-gray": "tweedie", "gs-denoiser-gray": "gs", "denoiser-gmm16": "tweedie", "denoiser-color": "tweedie",
           "gs-denoiser-color": "gs"}


def available() -> list[str]:
    """Shipped names whose weights are present."""
    return [n for n in SHIPPED if weights_path(n).exists()]


def load_model(name: str, dtype: torch.dtype = torch.float32, device: Any = None) -> torch.nn.Module:
    """The network behind a shipped prior."""
    from ..denoisers import load as load_net
    choice("prior", name, SHIPPED)
    path = weights_path(name)
    if not path.exists():
        raise InputError("prior", f"shipped weights at {path} (train them: landscape train-prior {name})", "missing")
    return load_net(path, dtype=dtype, device=device)


def load(name: str, evaluator: str | None = None, *, s: float = 0.01, dtype: torch.dtype = torch.float32,
         device: Any = None, **kw: Any) -> Prior:
    """A shipped learned prior behind the ``Prior`` protocol.

    ``evaluator``: ``"tweedie"`` (score at level ``s``), ``"diffusion"`` (PF-ODE log-density) or
    ``"gs"`` (explicit potential; gradient-step models only). Default: ``"gs"`` for gradient-step
    models, ``"tweedie"`` otherwise.
    """
    kind = SHIPPED.get(name)
    model = load_model(name, dtype=dtype, device=device)
    ev = evaluator or ("gs" if kind == "gs" else "tweedie")
    choice("evaluator", ev, ("tweedie", "diffusion", "gs"))
    if ev == "gs":
        if kind != "gs":
            raise InputError("evaluator", f"'tweedie' or 'diffusion' for {name!r} (not a gradient-step model)", ev)
        return GradientStepPrior(model, s, name=name)
    mdt = next(model.parameters()).dtype
    color = getattr(model, "image_channels", 1) > 1

    def den(x, lvl):                      # any input dtype: computed in the weights' dtype
        out = model(x.to(mdt), lvl, create_graph=torch.is_grad_enabled()) if kind == "gs" else model(x.to(mdt), lvl)
        return out.to(x.dtype)

    if ev == "tweedie":
        return TweediePrior(den, s, name=name, color=color, **kw)
    return DiffusionPrior(den, name=name, color=color, **kw)
