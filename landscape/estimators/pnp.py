r"""Plug-and-play baselines: a denoiser used as a prior inside half-quadratic splitting.

One iteration at level :math:`s_k`, for a kernel :math:`h` (circular boundary):

.. math::
    x_k = \arg\min_x \tfrac{1}{2\sigma^2}\|h\star x - y\|^2 + \tfrac{1}{2 s_k^2}\|x - z_{k-1}\|^2
    \ (\text{exact, by FFT}), \qquad z_k = D(x_k, s_k).

Variants (``PnPOptions.variant``):

* ``"fixed"`` — :math:`s_k = s` (vanilla PnP-HQS; its fixed points are the critical points of
  :math:`E(\theta, \cdot)` for the Tweedie prior at level :math:`s`, so it approximates a MAP);
* ``"continuation"`` — :math:`s_k` decreasing geometrically from ``s_max`` to ``s_min``;
* ``"gradient-step"`` — a gradient-step denoiser :math:`D_s = \mathrm{Id} - \nabla g_s` (Hurault et
  al. 2022) in proximal-gradient form, :math:`x_{k+1} = \mathrm{prox}_{\tau f}(x_k - \tau\lambda\nabla q(x_k))`
  with :math:`q = g_s/s^2`, :math:`\tau = s^2` (so the inner point is :math:`D_s(x_k)`), halving
  :math:`\tau` until :math:`F = f + \lambda q` decreases: the energy is monotone, and recorded.

Blind (``pnp_blind``): each iteration is followed by a projected, backtracked gradient step on
:math:`\theta` for the data term (``descent.theta_step``); started from :math:`(\delta, y)` as a
practitioner would, or from near the truth. Every network call is counted. Tests:
``tests/test_estimators.py`` (with the exact GMM denoiser, fixed-level PnP's fixed point is the
minimiser of the data term plus the smoothed GMM energy at level s, in gray and in colour; the GS energy
never increases). Colour problems (``(C, H, W)`` images) take a colour denoiser, the same kernel on every
channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import InputError, integer, number, one_of, option, positive_number, validate
from ..descent import theta_step
from ..io import host
from ..operators import Blur
from ..posterior import BlindDeblur, Posterior
from ..priors.base import EXACT, UP_TO_CONSTANT, Prior

VARIANTS = ("fixed", "continuation", "gradient-step")


@dataclass(frozen=True)
class PnPOptions:
    """Options of the PnP baselines (validated on creation).

    Parameters
    ----------
    variant : {"fixed", "continuation", "gradient-step"}
    s : float
        Denoiser level of ``fixed`` and ``gradient-step``.
    s_max, s_min : float
        Levels of ``continuation`` (geometric, first to last iteration).
    n_iter : int
        Iterations.
    theta_steps : int
        Kernel steps after each iteration (blind only).
    weight : float
        :math:`\\lambda`, the prior's weight (``gradient-step``'s energy).
    """

    variant: str = option("fixed", "fixed, continuation or gradient-step", one_of(VARIANTS))
    s: float = option(0.02, "denoiser level (fixed, gradient-step)", positive_number())
    s_max: float = option(0.2, "first level of continuation", positive_number())
    s_min: float = option(0.01, "last level of continuation", positive_number())
    n_iter: int = option(60, "iterations", integer(1))
    theta_steps: int = option(1, "kernel steps per iteration (blind)", integer(1))
    weight: float = option(1.0, "prior weight lambda", number(0.0, lo_open=True))

    def __post_init__(self):
        validate(self)
        if self.s_min > self.s_max:
            raise InputError("s_min", f"at most s_max ({self.s_max})", self.s_min)

    def levels(self) -> np.ndarray:
        """:math:`s_k` for every iteration."""
        if self.variant == "continuation":
            return np.geomspace(self.s_max, self.s_min, self.n_iter)
        return np.full(self.n_iter, self.s)


def _check(problem: BlindDeblur, prior: Prior, opts: PnPOptions) -> None:
    if problem.boundary != "circular":
        raise InputError("problem", "a circular-boundary problem (the PnP data step is solved by FFT)",
                         problem.boundary)
    if opts.variant == "gradient-step" and prior.capabilities.get("energy") not in (EXACT, UP_TO_CONSTANT):
        raise InputError("prior", "a prior with an energy for the gradient-step variant (e.g. priors.load("
                         "'gs-denoiser-gray'))", prior.name)


def _calls(prior: Prior) -> int:
    return int(prior.calls)


def _iteration(problem: BlindDeblur, prior: Prior, h: torch.Tensor, x: torch.Tensor, s: float,
               opts: PnPOptions) -> tuple[torch.Tensor, float]:
    """One PnP iteration from ``x`` (``(B, *problem.event_shape)``: gray or colour, the same kernel on every
    channel) with kernels ``h`` ``(B, k, k)``; returns the new iterate and, for ``gradient-step``, the energy
    F there (else NaN)."""
    y = problem.y.expand_as(x)
    B = x.shape[0]
    sig = torch.full((B,), problem.noise, dtype=x.dtype, device=x.device)
    blur = Blur(h, problem.image_shape, channels=problem.channels)   # one operator (and OTF) for every step
    if opts.variant != "gradient-step":
        z = prior.denoise(x, s)
        return blur.data_prox(y, z, sig, torch.full((B,), s, dtype=x.dtype, device=x.device)), float("nan")
    # proximal gradient on F = data + lambda q with backtracking on tau (monotone F)
    data = lambda v: ((blur(v) - y) ** 2).flatten(1).sum(-1) / (2 * problem.noise ** 2)
    F = lambda v: data(v) + opts.weight * prior.energy(v)
    q0, gq = prior.energy_and_grad(x)              # one network evaluation gives q and its gradient at x
    f0 = data(x) + opts.weight * q0
    tau = s ** 2
    for _ in range(30):
        v = x - tau * opts.weight * gq
        xn = blur.data_prox(y, v, sig, torch.full((B,), math.sqrt(tau), dtype=x.dtype, device=x.device))
        f1 = F(xn)
        if (f1 <= f0).all():
            return xn, float(f1.sum())
        tau /= 2
    return x, float(f0.sum())               # no decrease at any step: a stationary point


def pnp_nonblind(problem: BlindDeblur, prior: Prior, theta: Any, options: PnPOptions | None = None,
                 x0: torch.Tensor | None = None) -> dict[str, Any]:
    """PnP with the kernel :math:`h(\\theta)` known.

    Parameters
    ----------
    problem : BlindDeblur
        Circular boundary.
    prior : Prior
        Its ``denoise(z, s)`` is the plug-in denoiser (``energy_and_grad`` for ``gradient-step``).
    theta : array ``(p,)``
    options : PnPOptions, optional
    x0 : Tensor ``(H, W)`` (``(C, H, W)`` for a colour problem), optional
        Start (default ``y``).

    Returns
    -------
    dict
        ``x`` (the problem's image shape), ``calls`` (network calls), ``energy`` (``gradient-step``: F per iteration).
    """
    opts = options or PnPOptions()
    _check(problem, prior, opts)
    on = dict(dtype=problem.dtype, device=problem.device)
    th = problem.family.check(np.asarray(theta, dtype=float).reshape(1, -1), **on)
    h = problem.family(th)
    x = (problem.y if x0 is None else torch.as_tensor(x0, **on))[None].clone()
    c0, energy = _calls(prior), []
    for s in opts.levels():
        x, f = _iteration(problem, prior, h, x, float(s), opts)
        energy.append(f)
    return {"x": x[0], "calls": _calls(prior) - c0, "energy": np.array(energy)}


def pnp_blind(problem: BlindDeblur, prior: Prior, theta0: Any, x0: torch.Tensor | None = None,
              options: PnPOptions | None = None) -> dict[str, Any]:
    """Blind PnP: each PnP iteration followed by ``theta_steps`` backtracked gradient steps on
    :math:`\\theta` for the data term (the prior does not depend on :math:`\\theta`).

    Parameters
    ----------
    problem : BlindDeblur
    prior : Prior
    theta0 : array ``(p,)``
        Starting kernel parameter (``family.zero()``: the Dirac, as a practitioner would start).
    x0 : Tensor ``(H, W)`` (``(C, H, W)`` for a colour problem), optional
        Starting image (default ``y``).
    options : PnPOptions, optional

    Returns
    -------
    dict
        ``x`` (the problem's image shape), ``theta`` ``(p,)``, ``theta_path`` ``(n_iter + 1, p)``, ``calls``,
        ``energy`` (``gradient-step`` only).
    """
    opts = options or PnPOptions()
    _check(problem, prior, opts)
    fam = problem.family
    on = dict(dtype=problem.dtype, device=problem.device)
    th = fam.check(np.asarray(theta0, dtype=float).reshape(1, -1), **on)
    x = (problem.y if x0 is None else torch.as_tensor(x0, **on))[None].clone()
    post = Posterior(problem, prior)
    step = torch.ones(1, **on)
    c0, energy, path = _calls(prior), [], [host(th[0]).copy()]
    for s in opts.levels():
        x, f = _iteration(problem, prior, fam(th), x, float(s), opts)
        energy.append(f)
        for _ in range(opts.theta_steps):
            th, step = theta_step(post, th, x, step)
        path.append(host(th[0]).copy())
    return {"x": x[0], "theta": th[0].detach(), "theta_path": np.stack(path), "calls": _calls(prior) - c0,
            "energy": np.array(energy)}


__all__ = ["PnPOptions", "VARIANTS", "pnp_nonblind", "pnp_blind"]
