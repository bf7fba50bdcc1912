r"""Diffusion posterior sampling of :math:`x \mid \theta, y` with a noise-conditional denoiser
(DPS-type guidance), many chains in one batch.

A denoiser :math:`D(x, s)` trained at every level is a variance-exploding diffusion model:
:math:`p_s = p_X * N(0, s^2 I)` has the score :math:`(D(x, s) - x)/s^2` (Tweedie). Reverse it from
:math:`s_1` (large) to :math:`s_N` (small) on geometric levels with ancestral steps
(:math:`\Delta_i = s_i^2 - s_{i+1}^2`)

.. math::

    x_{i+1} = x_i + \Delta_i\,\big[(D(x_i, s_i) - x_i)/s_i^2 + \zeta\,\nabla_{x_i}\log\tilde p(y \mid x_i)\big]
              + \frac{s_{i+1}}{s_i}\sqrt{\Delta_i}\;\xi_i ,

(the mean and variance of :math:`x_{i+1} \mid x_i, x_0` with :math:`x_0` replaced by its posterior
mean; exact for the prior when :math:`x_0 \mid x_i` is sharp). The guidance is DPS's (Chung et al.
2023): the likelihood evaluated at the denoised estimate, here with the isotropic variance of
ΠGDM (Song et al. 2023),

.. math::

    \log\tilde p(y \mid x_i) = -\frac{\|y - h(\theta)\star D(x_i, s_i)\|^2}{2(\sigma^2 + r_i^2)},\qquad
    r_i^2 = \frac{s_i^2 v}{s_i^2 + v},

:math:`v` the data's per-pixel variance (:math:`r_i^2` is the posterior variance of :math:`x_0` given
:math:`x_i` for Gaussian data). Its gradient goes back through the denoiser (one vector-Jacobian
product per step). The true :math:`\nabla\log p(y \mid x_i)` integrates over
:math:`x_0 \mid x_i`; replacing that by a point makes the sampler approximate *by design*: its bias
against the exact GMM posterior is measured in ``benchmarks/samplers.py --part bias``. With
:math:`\zeta = 0` it samples the prior (exact in the limit of many levels; ``tests/test_sampling.py``).
The chains start from :math:`N(m, (s_1^2 + v) I)`, :math:`p_{s_1}`'s Gaussian limit.

A learned denoiser is not the exact posterior mean at high levels, and its Jacobian there can be far
larger than the exact :math:`\mathrm{Cov}(x_0 \mid x_i)/s_i^2`; the explicit guided step then blows
up (measured: ``denoiser-gray`` on a 32x32 crop, width 2.5, :math:`\sigma = 0.02`, diverges from
:math:`s \approx 7`). So the guided move :math:`\Delta_i\zeta\nabla\log\tilde p` of each chain is
limited to ``max_move`` times the step's own noise (RMS per pixel, :math:`\frac{s_{i+1}}{s_i}\sqrt{\Delta_i}`),
a trust region that an exact denoiser does not reach in the tests; the steps where it acted are counted
(``limited``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from .._checks import integer, number, option, positive_number, validate, InputError, torch_generator
from ..io import host
from ..posterior import Posterior
from .langevin import ChainDiverged


@dataclass(frozen=True)
class DiffusionOptions:
    """Options of :func:`dps`, validated on creation.

    Parameters
    ----------
    levels : int
        Noise levels from ``s_max`` down to ``s_min`` (geometric); one denoiser call and one
        vector-Jacobian product each. The guided step is explicit: with few levels it is unstable
        unless ``max_move`` limits it (measured on the 16x16 GMM sandbox, width 2.5, sigma = 0.02,
        without the limit: 66 levels blow up to 4e5, 200 and 600 give posterior means of 25.2 and 25.5 dB;
        with it, 66 levels give 24.7 dB).
    s_max, s_min : float
        Top and last level (image units).
    guidance : float
        :math:`\\zeta` (1: the likelihood at the denoised estimate; 0: prior samples).
    chains : int
        Independent samples, run as one batch.
    mean, data_var : float
        :math:`m` and :math:`v`: the start's mean and the data variance of :math:`r_i^2`.
    max_move : float
        Largest guided move per step, in units of the step's noise (RMS per pixel).
    """

    levels: int = option(200, "noise levels, geometric from s_max to s_min", integer(2))
    s_max: float = option(10.0, "top noise level", positive_number())
    s_min: float = option(0.005, "last noise level", positive_number())
    guidance: float = option(1.0, "zeta: weight of the likelihood guidance", number(0.0))
    chains: int = option(16, "independent chains, one batch", integer(1))
    mean: float = option(0.45, "start mean m", number())
    data_var: float = option(0.06, "data variance v (start, r_i^2)", positive_number())
    max_move: float = option(1.0, "largest guided move per step, in units of the step's noise", positive_number())

    def __post_init__(self):
        validate(self)
        if self.s_min >= self.s_max:
            raise InputError("s_min", f"a level below s_max = {self.s_max}", self.s_min)

    def schedule(self) -> np.ndarray:
        """The levels :math:`s_1 > \\dots > s_N`."""
        return np.geomspace(self.s_max, self.s_min, self.levels)


def differentiable_denoiser(prior: Any) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """:math:`D(x, s)` through which autograd can go back: a learned prior's network (its
    ``denoiser`` or gradient-step ``model``), else the prior's own ``denoise`` (exact priors' closed
    forms are torch expressions)."""
    return lambda z, s: prior.denoise(z, s, differentiable=True)


def guided_denoise(post: Posterior, blur, x: torch.Tensor, s: float, guidance: float, data_var: float,
                   denoiser: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`D(x, s)` and :math:`\zeta\nabla_x\log\tilde p(y \mid x)` per chain (``x`` ``(C, *image shape)``)."""
    D = denoiser or differentiable_denoiser(post.prior)
    if guidance == 0:
        with torch.no_grad():
            return D(x, s), torch.zeros_like(x)
    r2 = s ** 2 * data_var / (s ** 2 + data_var)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        x0 = D(xg, s)
        ll = -((blur(x0) - post.problem.y) ** 2).sum() / (2 * (post.problem.noise ** 2 + r2))
        (g,) = torch.autograd.grad(ll, xg)
    return x0.detach(), guidance * g


def dps(post: Posterior, theta: Any, options: DiffusionOptions | None = None, *, rng: Any = None,
        progress: bool = False) -> dict[str, Any]:
    r"""Draws of :math:`x \mid \theta, y` by guided reverse diffusion (module docstring).

    Parameters
    ----------
    post : Posterior
        Its prior must denoise at every level of the schedule (a noise-conditional network, or an
        exact prior); ``post.prior_weight`` is not used (the diffusion model is the prior).
    theta : array ``(p,)``
    options : DiffusionOptions, optional
    rng : seed or ``torch.Generator``
    progress : bool

    Returns
    -------
    dict
        ``draws`` ``(C, 1, *image shape)`` (one independent draw per chain, the state at ``s_min``; colour
        problems: ``(C, 1, 3, H, W)``), ``denoised`` ``(C, *image shape)`` (:math:`D` at the last level), ``levels``, ``limited`` ``(C,)`` (steps
        whose guided move the trust region shortened), ``calls`` (denoiser calls, each with one
        vector-Jacobian product when guided).
    """
    from tqdm.auto import tqdm
    opts = options or DiffusionOptions()
    th = post.problem.family.check(np.asarray(theta, dtype=float).reshape(1, -1), dtype=post.problem.dtype,
                                   device=post.problem.device)
    gen = torch_generator(rng)
    C, shape, dtype = opts.chains, post.problem.event_shape, post.problem.dtype
    blur = post.problem.blur(th)
    D = differentiable_denoiser(post.prior)
    s = opts.schedule()
    x = opts.mean + math.sqrt(s[0] ** 2 + opts.data_var) * torch.randn((C, *shape), generator=gen, dtype=dtype,
                                                                       device=gen.device).to(post.problem.device)
    calls0 = post.prior.calls
    limited = torch.zeros(C, dtype=torch.long, device=post.problem.device)
    for i in tqdm(range(len(s)), desc=f"dps ({C} chains)", disable=not progress, leave=False):
        x0, g = guided_denoise(post, blur, x, float(s[i]), opts.guidance, opts.data_var, D)
        if i == len(s) - 1:
            break
        delta = s[i] ** 2 - s[i + 1] ** 2
        noise_sd = (s[i + 1] / s[i]) * math.sqrt(delta)
        move = delta * g
        rms = move.flatten(1).pow(2).mean(1).sqrt()
        over = rms > opts.max_move * noise_sd                      # the trust region (module docstring)
        limited += over.to(limited.dtype)
        move = move * torch.where(over, opts.max_move * noise_sd / rms, torch.ones_like(rms)).reshape(C, *[1] * len(shape))
        x = x + delta * (x0 - x) / s[i] ** 2 + move + noise_sd * torch.randn(x.shape, generator=gen, dtype=dtype,
                                                                             device=gen.device).to(x.device)
        bad = ~torch.isfinite(x).flatten(1).all(1)
        if bad.any():
            raise ChainDiverged(int(bad.nonzero()[0]), i, x.new_zeros(C, 0, *shape))
    return {"draws": x[:, None].detach(), "denoised": x0, "levels": s, "limited": host(limited),
            "calls": post.prior.calls - calls0}
