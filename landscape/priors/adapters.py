r"""Adapters: a researcher's own network as a :class:`~landscape.priors.base.Prior`.

The toolkit's images are ``(..., H, W)`` tensors with intensities in :math:`[0, 1]` and noise levels
:math:`s` in those units. The field's libraries (deepinv's ``Denoiser.forward(x, sigma)``) take
``(B, C, H, W)`` batches, ``sigma`` a float or a ``(B,)`` tensor, and data in :math:`[0, 1]` or
:math:`[-1, 1]`. An adapter converts both ways: with data range :math:`[a, b]` a toolkit image
:math:`x` is :math:`u = a + (b - a) x` for the network and a noise level :math:`s` is
:math:`(b - a) s`; the network's answer comes back through the inverse map.

==========================  ======================================================================
adapter                     what it gives
==========================  ======================================================================
``from_denoiser(D, s)``     Tweedie score prior :math:`\nabla q_s = (x - D(x, s))/s^2` (energy
                            differences by line integrals); with ``diffusion=True`` the PF-ODE
                            log-density of a noise-conditional ``D`` (:class:`DiffusionPrior`)
``from_potential(g, s)``    explicit potential (gradient-step denoisers, :math:`D = x - \nabla g`):
                            :math:`q = g(x, s)/s^2` up to a constant, gradient by autograd
``from_score(score, s)``    the same evaluators from a score network, :math:`D = x + s^2\,\mathrm{score}`
``from_epsilon(e, ᾱ, s)``   the same from an epsilon-prediction diffusion network and its schedule
                            :math:`\bar\alpha_t` (the diffusers convention), :math:`D` by Tweedie in VP form
==========================  ======================================================================

Checks (``tests/test_adapters.py``): the exact Gaussian prior's MMSE denoiser, written as a plain
user module in :math:`[-1, 1]` units, reproduces through ``from_denoiser`` the exact score of the
smoothed prior :math:`p_s` (spectrum :math:`P + s^2`) and its energy differences, and a potential
module reproduces its energy and gradient; the Gaussian's exact epsilon-predictor on a DDPM schedule reproduces
the exact score at a schedule level.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from .._checks import InputError, positive
from ..io import host
from .base import EXACT, UNAVAILABLE, UP_TO_CONSTANT, Prior
from .learned import DiffusionPrior, TweediePrior


class Units:
    """The network's conventions: data range ``(a, b)`` and channels ``C``. A gray image is repeated over
    the channels and the answer averaged back; with ``color`` the toolkit's images are ``(..., C, H, W)``
    colour images and pass through channel for channel."""

    def __init__(self, data_range: tuple[float, float] = (0.0, 1.0), channels: int = 1, color: bool = False):
        a, b = (float(v) for v in data_range)
        if not b > a:
            raise InputError("data_range", "(low, high) with high > low", data_range)
        if int(channels) < 1:
            raise InputError("channels", "an integer >= 1", channels)
        if color and int(channels) < 2:
            raise InputError("channels", "the colour network's channels (>= 2) with color=True", channels)
        self.a, self.scale, self.channels, self.color = a, b - a, int(channels), bool(color)

    @property
    def event_ndim(self) -> int:
        return 3 if self.color else 2

    def to_net(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        if self.color:
            if x.ndim < 3 or x.shape[-3] != self.channels:
                raise InputError("x", f"colour images (..., {self.channels}, H, W)", tuple(x.shape))
            return (self.a + self.scale * x).reshape(-1, *x.shape[-3:]), tuple(x.shape[:-3])
        lead = tuple(x.shape[:-2])
        u = (self.a + self.scale * x).reshape(-1, 1, *x.shape[-2:])
        return u.expand(-1, self.channels, -1, -1), lead

    def from_net(self, u: torch.Tensor, lead: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """The network's answer ``u`` back in the toolkit's units, on ``like``'s device and dtype."""
        if u.ndim != 4 or u.shape[1] != self.channels or tuple(u.shape[-2:]) != tuple(like.shape[-2:]):
            raise InputError("prior", f"a network answering (B, {self.channels}, H, W) for (B, {self.channels}, H, W)",
                             f"output of shape {tuple(u.shape)}")
        back = (u.to(device=like.device, dtype=like.dtype) - self.a) / self.scale
        if self.color:
            return back.reshape(*lead, *like.shape[-3:])
        return back.mean(dim=1).reshape(*lead, *like.shape[-2:])

    def sigma(self, s: float) -> float:
        return self.scale * float(s)

    def describe(self) -> dict[str, Any]:
        return {"data_range": [self.a, self.a + self.scale], "channels": self.channels, "color": self.color}


def _placed(net: Callable, device: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Move a module with weights to ``device`` (if given) and return the map that brings its inputs to its
    weights' device and dtype; a plain callable receives the caller's tensors as they are (on the problem's
    device) and its answer is brought back by :meth:`Units.from_net`."""
    if not isinstance(net, torch.nn.Module):
        return lambda u: u
    if device is not None:
        net.to(torch.device(device))
    w = next(iter(net.parameters()), None)
    if w is None:
        return lambda u: u
    return lambda u: u.to(device=w.device, dtype=w.dtype)


def _denoiser(net: Callable, units: Units, device: Any = None) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """``D(x, s)`` in the toolkit's units from ``net(u, sigma)`` in the network's: a module computes on its
    weights' device and in their dtype (moved to ``device`` first, if given), the answer comes back to the
    caller's device and dtype."""
    place = _placed(net, device)

    def den(x: torch.Tensor, s: float) -> torch.Tensor:
        u, lead = units.to_net(x)
        return units.from_net(net(place(u), units.sigma(s)), lead, x)
    return den


def from_denoiser(net: Callable, s: float = 0.01, *, data_range: tuple[float, float] = (0.0, 1.0),
                  channels: int = 1, color: bool = False, diffusion: bool = False, name: str = "user-denoiser",
                  device: Any = None, **kw: Any) -> Prior:
    r"""A denoiser ``net(x, sigma)`` (deepinv's convention) as a prior.

    Parameters
    ----------
    net : callable or torch.nn.Module
        ``net(u, sigma) -> (B, C, H, W)`` for ``u`` of shape ``(B, C, H, W)`` in ``data_range`` and
        ``sigma`` the noise standard deviation in the same units (a float).
    s : float
        The level of the Tweedie score, in the toolkit's :math:`[0, 1]` units.
    data_range : (float, float)
        The intensities the network was trained on: ``(0, 1)`` or ``(-1, 1)``.
    channels : int
        Input channels the network expects (a gray image is repeated over them).
    color : bool
        The prior is on colour images ``(..., channels, H, W)``: they reach the network as they are.
    diffusion : bool
        Return the PF-ODE log-density of a noise-conditional denoiser (:class:`DiffusionPrior`;
        ``**kw`` go to it) instead of the Tweedie score.
    device : torch.device or str, optional
        Move a ``torch.nn.Module`` there (the problem's device). A module always receives its inputs on its
        weights' device and dtype, and its answers come back to the caller's; a plain callable receives the
        caller's tensors as they are.

    Returns
    -------
    Prior
        :class:`TweediePrior` (``grad`` = :math:`(x - D(x, s))/s^2`) or :class:`DiffusionPrior`.

    Examples
    --------
    >>> import torch
    >>> p = from_denoiser(lambda u, sigma: 0.9 * u, s=0.1, data_range=(-1, 1))
    >>> round(float(p.grad(torch.ones(1, 4, 4, dtype=torch.float64))[0, 0, 0]), 6)  # (x - D(x))/s^2, [0, 1] units
    5.0
    """
    units = Units(data_range, channels, color)
    den = _denoiser(net, units, device)
    prior = DiffusionPrior(den, name=name, color=color, **kw) if diffusion else \
        TweediePrior(den, positive("s", s), name=name, color=color, **kw)
    prior.provenance = units.describe()          # the network's conventions, in the results' description
    return prior


def from_score(score: Callable, s: float = 0.01, *, data_range: tuple[float, float] = (0.0, 1.0),
               channels: int = 1, color: bool = False, diffusion: bool = False, name: str = "user-score",
               device: Any = None, **kw: Any) -> Prior:
    r"""A score network ``score(u, sigma)`` :math:`= \nabla_u \log p_\sigma(u)` (network units) as a
    prior, through :math:`D(u, \sigma) = u + \sigma^2\,\mathrm{score}(u, \sigma)`; as :func:`from_denoiser`."""
    place = _placed(score, device)

    def den(u: torch.Tensor, sigma: float) -> torch.Tensor:
        v = place(u)
        return v + sigma ** 2 * score(v, sigma)
    return from_denoiser(den, s, data_range=data_range, channels=channels, color=color, diffusion=diffusion,
                         name=name, **kw)


class PotentialPrior(Prior):
    r"""An explicit potential ``g(u, sigma)`` (network units; one value per batch item) as
    :math:`q(x) = g(u(x), \sigma)/\sigma^2` up to a constant, :math:`\sigma` the level in network units
    (the scaling of a gradient-step denoiser :math:`D = \mathrm{Id} - \nabla g`); gradient by autograd."""

    capabilities = {"energy": UP_TO_CONSTANT, "grad": EXACT, "denoise": UNAVAILABLE}

    def __init__(self, potential: Callable, s: float, units: Units, name: str = "user-potential", device: Any = None):
        self.potential, self.s, self.units, self.name = potential, positive("s", s), units, name
        self.event_ndim = units.event_ndim
        self._place = _placed(potential, device)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        u, lead = self.units.to_net(x)
        sig = self.units.sigma(self.s)
        self._count()
        # a graph only where the caller asks for one (autograd Hessians, joint gradients), as the shipped
        # gradient-step prior: a user module's weights require grad, and no caller wants their graph
        with torch.set_grad_enabled(torch.is_grad_enabled() and x.requires_grad):
            g = self.potential(self._place(u), sig)
        if g.shape != (u.shape[0],):
            raise InputError("prior", f"a potential answering one value per image ({u.shape[0]},)",
                             f"shape {tuple(g.shape)}")
        return (g.to(device=x.device, dtype=x.dtype) / sig ** 2).reshape(lead)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(xx).sum(), xx)
        return g

    def energy_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            e = self.energy(xx)
            (g,) = torch.autograd.grad(e.sum(), xx)
        return e.detach(), g

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "s": self.s, **self.units.describe()}


def from_potential(potential: Callable, s: float = 0.01, *, data_range: tuple[float, float] = (0.0, 1.0),
                   channels: int = 1, color: bool = False, name: str = "user-potential",
                   device: Any = None) -> PotentialPrior:
    r"""An explicit potential ``potential(u, sigma) -> (B,)`` (a gradient-step denoiser's :math:`g`) as
    a :class:`PotentialPrior` at level ``s`` (toolkit units; ``color`` and ``device`` as :func:`from_denoiser`)."""
    return PotentialPrior(potential, s, Units(data_range, channels, color), name=name, device=device)


def from_epsilon(eps: Callable, alphas_cumprod: Any, s: float = 0.01, *, data_range: tuple[float, float] = (-1.0, 1.0),
                 channels: int = 1, color: bool = False, diffusion: bool = False, name: str = "user-epsilon",
                 device: Any = None, **kw: Any) -> Prior:
    r"""An epsilon-prediction diffusion network (the diffusers convention) as a prior.

    The network predicts the noise of :math:`x_t = \sqrt{\bar\alpha_t}\,u + \sqrt{1 - \bar\alpha_t}\,\varepsilon`
    (``u`` in ``data_range``). A variance-exploding level :math:`\sigma` (network units) is the variance-preserving
    :math:`\bar\alpha = 1/(1 + \sigma^2)`, so :math:`x_t = \sqrt{\bar\alpha}\,u_\sigma` and Tweedie's denoiser is

    .. math:: D(u_\sigma, \sigma) = \big(x_t - \sqrt{1 - \bar\alpha}\;\varepsilon(x_t, t)\big)/\sqrt{\bar\alpha},

    with the timestep :math:`t` where the schedule's :math:`\sigma_t = \sqrt{(1 - \bar\alpha_t)/\bar\alpha_t}`
    equals :math:`\sigma` (a float, interpolated in :math:`\log\sigma_t` between the schedule's integer steps: exact
    at them, an approximation between them for a network that only knows integer steps).

    Parameters
    ----------
    eps : callable or torch.nn.Module
        ``eps(x_t, t) -> (B, C, H, W)``, ``t`` a ``(B,)`` float tensor of timesteps.
    alphas_cumprod : array ``(T,)``
        The schedule :math:`\bar\alpha_t`, decreasing in ``t`` (diffusers' ``scheduler.alphas_cumprod``).
    s, data_range, channels, color, diffusion, name, device, **kw
        As :func:`from_denoiser` (``data_range`` defaults to diffusers' :math:`[-1, 1]`).
    """
    ab = np.asarray(host(alphas_cumprod), dtype=np.float64).reshape(-1)
    if ab.size < 2 or not np.isfinite(ab).all() or (ab <= 0).any() or (ab >= 1).any() or (np.diff(ab) >= 0).any():
        raise InputError("alphas_cumprod", "a decreasing schedule of values in (0, 1)", f"{ab.size} values")
    log_sig = 0.5 * np.log((1 - ab) / ab)          # the schedule on the host: the timestep is a number

    def timestep(sigma: float) -> float:
        ls = math.log(sigma)
        if not log_sig[0] - 1e-12 <= ls <= log_sig[-1] + 1e-12:
            raise InputError("s", f"a level inside the schedule's range [{math.exp(log_sig[0]):.3g}, "
                             f"{math.exp(log_sig[-1]):.3g}] (network units)", sigma)
        i = min(max(int(np.searchsorted(log_sig, ls)), 1), ab.size - 1)
        f = (ls - log_sig[i - 1]) / (log_sig[i] - log_sig[i - 1])
        return i - 1 + min(max(float(f), 0.0), 1.0)

    place = _placed(eps, device)

    def den(u: torch.Tensor, sigma: float) -> torch.Tensor:
        a = 1.0 / (1.0 + float(sigma) ** 2)
        xt = math.sqrt(a) * place(u)
        t = torch.full((u.shape[0],), timestep(float(sigma)), dtype=xt.dtype, device=xt.device)
        return (xt - math.sqrt(1 - a) * eps(xt, t)) / math.sqrt(a)
    prior = from_denoiser(den, s, data_range=data_range, channels=channels, color=color, diffusion=diffusion,
                          name=name, **kw)
    prior.provenance = {**prior.provenance, "convention": "epsilon-prediction", "schedule_steps": int(ab.size)}
    return prior
