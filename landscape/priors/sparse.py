r"""Sparse-gradient prior (Levin et al. 2007, 2009).

.. math::
    q(x) = \lambda \sum_{i} \sum_{d \in \{h, v\}} \big((D_d x)_i^2 + \varepsilon^2\big)^{\alpha/2},

with :math:`D_h, D_v` circular forward differences, :math:`\alpha \in (0, 1]` and a smoothing
:math:`\varepsilon > 0` that makes :math:`q` differentiable. The prior is improper (invariant to
adding a constant to :math:`x`): ``energy`` is exact up to an additive constant, so energy
*differences* are exact. :math:`\nabla q = \lambda \sum_d D_d^\top\, \alpha\, D_d x\,
((D_d x)^2 + \varepsilon^2)^{\alpha/2 - 1}`.

On colour images :math:`(C, H, W)` (``color=True``) the differences are taken within each channel and
:math:`q` sums over the channels, :math:`q(x) = \sum_c q_{\mathrm{gray}}(x_c)`: Levin's prior with independent
channels, so a colour image whose three channels are equal has three times the gray energy.
"""

from __future__ import annotations

import torch

from .._checks import InputError, positive
from .base import EXACT, UNAVAILABLE, UP_TO_CONSTANT, Prior


def _diffs(x):
    return (torch.roll(x, -1, dims=-1) - x, torch.roll(x, -1, dims=-2) - x)


def _diffs_adjoint(gh, gv):
    return (torch.roll(gh, 1, dims=-1) - gh) + (torch.roll(gv, 1, dims=-2) - gv)


class SparseGradientPrior(Prior):
    """Levin's :math:`\\lambda \\sum |\\nabla x|^\\alpha`, smoothed by ``eps``."""

    name = "sparse-gradient"
    capabilities = {"energy": UP_TO_CONSTANT, "grad": EXACT, "denoise": UNAVAILABLE}

    def __init__(self, alpha: float = 0.8, scale: float = 1.0, eps: float = 1e-3, color: bool = False):
        a = positive("alpha", alpha)
        if a > 1:
            raise InputError("alpha", "an exponent in (0, 1]", alpha)
        self.alpha, self.scale, self.eps = a, positive("scale", scale), positive("eps", eps)
        self.color = bool(color)
        self.event_ndim = 3 if self.color else 2            # colour: images (..., C, H, W), summed over C

    def energy(self, x):
        event = tuple(range(-self.event_ndim, 0))
        e = sum(((d ** 2 + self.eps ** 2) ** (self.alpha / 2)).sum(dim=event) for d in _diffs(x))
        return self.scale * e

    def grad(self, x):
        gh, gv = (self.alpha * d * (d ** 2 + self.eps ** 2) ** (self.alpha / 2 - 1) for d in _diffs(x))
        return self.scale * _diffs_adjoint(gh, gv)

    def describe(self):
        return {**super().describe(), "alpha": self.alpha, "scale": self.scale, "eps": self.eps,
                **({"color": True} if self.color else {})}
