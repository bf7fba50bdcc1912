r"""The ``Prior`` protocol.

A prior on images :math:`p_X` is used through its energy :math:`q = -\log p_X` (nats, one value
per batch item), the gradient :math:`\nabla q`, and the MMSE denoiser at noise level :math:`s`,
:math:`D_s(z) = \mathbb E[x \mid x + s n = z]`. Each prior states in ``capabilities`` whether
each of these is ``"exact"``, ``"exact up to a constant"`` (improper priors: differences of
``energy`` are exact), ``"approximate"`` or ``"unavailable"``.

Images are tensors ``(..., H, W)``; leading dimensions are batch dimensions.
"""

from __future__ import annotations

from typing import Any

import torch

EXACT = "exact"
UP_TO_CONSTANT = "exact up to a constant"
APPROXIMATE = "approximate"
UNAVAILABLE = "unavailable"


class Prior:
    """Base class of image priors; subclasses override what they provide."""

    name: str = "prior"
    capabilities: dict[str, str] = {"energy": UNAVAILABLE, "grad": UNAVAILABLE, "denoise": UNAVAILABLE}
    #: image shape the prior is defined on, or ``None`` for any shape
    shape: tuple[int, int] | None = None
    #: where the prior came from (a user prior's spec and source hash), kept in ``describe()``
    provenance: dict[str, Any] = {}

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`q(x) = -\log p_X(x)` in nats, shape ``x.shape[:-2]``."""
        raise NotImplementedError(f"{self.name}: energy is {self.capabilities['energy']}")

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla q(x)`, same shape as ``x``."""
        raise NotImplementedError(f"{self.name}: grad is {self.capabilities['grad']}")

    def energy_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both at once (subclasses share work where they can)."""
        return self.energy(x), self.grad(x)

    def denoise(self, z: torch.Tensor, s: float) -> torch.Tensor:
        r"""MMSE denoiser :math:`D_s(z)` for :math:`z = x + s n`, :math:`n \sim N(0, I)`."""
        raise NotImplementedError(f"{self.name}: denoise is {self.capabilities['denoise']}")

    def check_shape(self, x: torch.Tensor) -> None:
        from .._checks import InputError
        if self.shape is not None and tuple(x.shape[-2:]) != tuple(self.shape):
            raise InputError("x", f"images of shape {tuple(self.shape)} for prior {self.name!r}",
                             tuple(x.shape[-2:]))

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description, stored in results' attrs."""
        return {"name": self.name, "capabilities": dict(self.capabilities), **self.provenance}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
