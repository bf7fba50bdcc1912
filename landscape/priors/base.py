r"""The ``Prior`` protocol: everything a caller may use of a prior, with defaults where a general answer exists.

A prior on images :math:`p_X` is used through its energy :math:`q = -\log p_X` (nats, one value
per batch item), the gradient :math:`\nabla q`, the MMSE denoiser at noise level :math:`s`,
:math:`D_s(z) = \mathbb E[x \mid x + s n = z]`, Hessian-vector products :math:`\nabla^2 q\,v`, an assembled
Hessian where one exists, and a curvature bound. Each prior states in ``capabilities`` (a :class:`Capability`
per key ``energy``, ``grad``, ``denoise``, ``hessian``) whether each is exact, exact up to a constant (improper
priors: differences of ``energy`` are exact), approximate or unavailable. A score prior (Tweedie) has a
smoothing level ``s`` (``None`` otherwise). ``calls`` counts the prior's evaluations of its network (or model);
callers read it, never write it.

Images are tensors ``(..., H, W)``; leading dimensions are batch dimensions. ``tests/test_priors.py`` checks every
registered prior and every adapter against the protocol's promises (gradient against finite differences of the
energy, Hessian-vector products against finite differences of the gradient, the assembled Hessian against the
products, the denoiser against :math:`x - s^2\nabla q` for a score prior).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Callable

import torch


class Capability(str, Enum):
    """How a prior provides a quantity (a ``str``: ``Capability.EXACT == "exact"``)."""

    EXACT = "exact"
    UP_TO_CONSTANT = "exact up to a constant"
    APPROXIMATE = "approximate"
    UNAVAILABLE = "unavailable"

    def __str__(self) -> str:
        return self.value


EXACT = Capability.EXACT
UP_TO_CONSTANT = Capability.UP_TO_CONSTANT
APPROXIMATE = Capability.APPROXIMATE
UNAVAILABLE = Capability.UNAVAILABLE
#: energies whose differences are exact
EXPLICIT = (EXACT, UP_TO_CONSTANT)


class Prior:
    """Base class of image priors; subclasses override what they provide."""

    name: str = "prior"
    capabilities: dict[str, Capability] = {"energy": UNAVAILABLE, "grad": UNAVAILABLE, "denoise": UNAVAILABLE}
    #: image shape the prior is defined on, or ``None`` for any shape
    shape: tuple[int, int] | None = None
    #: where the prior came from (a user prior's spec and source hash), kept in ``describe()``
    provenance: dict[str, Any] = {}
    #: smoothing level of a score prior (its Tweedie level), ``None`` for a prior on clean images
    s: float | None = None
    _calls: int = 0

    def capability(self, key: str) -> Capability:
        """``capabilities[key]``, :data:`UNAVAILABLE` where the prior does not say."""
        return Capability(self.capabilities.get(key, UNAVAILABLE))

    #: trailing dimensions of one image: 2 for gray ``(H, W)``, 3 for colour ``(C, H, W)``
    event_ndim: int = 2

    @property
    def calls(self) -> int:
        """Evaluations of the prior's network or model so far (read-only)."""
        return self._calls

    @property
    def n_calls(self) -> int:
        """Alias of :attr:`calls` (read-only)."""
        return self._calls

    def _count(self, n: int = 1) -> None:
        self._calls = self._calls + n

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`q(x) = -\log p_X(x)` in nats, one value per image (``x.shape[:-event_ndim]``)."""
        raise NotImplementedError(f"{self.name}: energy is {self.capability('energy')}")

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla q(x)`, same shape as ``x``."""
        raise NotImplementedError(f"{self.name}: grad is {self.capability('grad')}")

    def energy_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both at once (subclasses share work where they can)."""
        return self.energy(x), self.grad(x)

    def energy_difference(self, x0: torch.Tensor, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`q(x_1) - q(x_0)` per batch item and an error estimate (zero for an explicit energy; a score prior
        integrates its gradient along the segment)."""
        if self.capability("energy") not in EXPLICIT:
            raise NotImplementedError(f"{self.name}: energy differences are {self.capability('energy')}")
        d = self.energy(x1) - self.energy(x0)
        return d, torch.zeros_like(d)

    def denoise(self, z: torch.Tensor, s: float, differentiable: bool = False) -> torch.Tensor:
        r"""MMSE denoiser :math:`D_s(z)` for :math:`z = x + s n`, :math:`n \sim N(0, I)`; ``differentiable``: keep the
        autograd graph (a network's), else an answer without one."""
        raise NotImplementedError(f"{self.name}: denoise is {self.capability('denoise')}")

    def hvp_operator(self, x: torch.Tensor, symmetric: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
        r""":math:`V \mapsto \nabla^2 q(x) V` for a batch ``V`` ``(B, *x.shape)``: autograd twice through
        ``energy`` (an explicit energy), or, for a score prior, the Jacobian-vector product of its denoiser,
        :math:`(V - J_D V)/s^2` (``symmetric``: :math:`(V - \tfrac12(J_D + J_D^\top)V)/s^2`, the symmetric part)."""
        x = x.detach()
        if self.capability("energy") not in EXPLICIT and self.s is not None and self.capability("denoise") != UNAVAILABLE:
            s = float(self.s)

            def batched(V: torch.Tensor) -> torch.Tensor:
                X = x.expand_as(V).contiguous()
                D = lambda z: self.denoise(z, s, differentiable=True)
                _, jv = torch.func.jvp(D, (X,), (V,))
                if symmetric:
                    _, vjp = torch.func.vjp(D, X)
                    jv = 0.5 * (jv + vjp(V)[0])
                return (V - jv) / s ** 2
            return batched
        if self.capability("energy") == UNAVAILABLE:
            raise NotImplementedError(f"{self.name}: no energy and no score level for Hessian-vector products")

        def batched(V: torch.Tensor) -> torch.Tensor:
            X = x.expand_as(V).clone().requires_grad_(True)
            with torch.enable_grad():
                (g,) = torch.autograd.grad(self.energy(X).sum(), X, create_graph=True)
                (hv,) = torch.autograd.grad((g * V).sum(), X)
            return hv.detach()
        return batched

    def hessian_matrix(self, x: torch.Tensor) -> torch.Tensor:
        r"""The assembled Hessian :math:`\nabla^2 q(x)` ``(..., HW, HW)`` (``capabilities["hessian"]`` says whether
        the prior has one)."""
        raise NotImplementedError(f"{self.name}: no assembled Hessian")

    def lipschitz(self) -> float | None:
        r"""An upper bound on the curvature of :math:`q` (the Lipschitz constant of :math:`\nabla q`), or ``None``."""
        return None

    def check_shape(self, x: torch.Tensor) -> None:
        from .._checks import InputError
        n = len(self.shape) if self.shape is not None else 0
        if self.shape is not None and tuple(x.shape[-n:]) != tuple(self.shape):
            raise InputError("x", f"images of shape {tuple(self.shape)} for prior {self.name!r}",
                             tuple(x.shape))

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description, stored in results' attrs."""
        return {"name": self.name, "capabilities": {k: str(v) for k, v in self.capabilities.items()}, **self.provenance}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
