r"""Langevin samplers of :math:`p(x \mid \theta, y) \propto \exp(-E(\theta, x))`, many chains in one batch.

With :math:`\nabla_x E = H^\top(Hx - y)/\sigma^2 + \lambda\nabla q(x)` and a step :math:`\delta`:

* ``ula`` — :math:`x_{k+1} = x_k - \delta\nabla_x E(x_k) + \sqrt{2\delta}\,\xi_k`. With a Tweedie score at
  a fixed level :math:`s` this is PnP-ULA (Laumont et al. 2022): it samples the posterior of the prior
  smoothed at level :math:`s`, with a bias of order :math:`\delta`. Step rule: :math:`\delta = \gamma / L`,
  :math:`L = \max|\hat h|^2/\sigma^2 + \lambda L_q` (:math:`L_q = 1/s^2` for a Tweedie score, the
  prior's curvature bound otherwise), :math:`\gamma = 1/3` by default (Laumont et al.'s
  :math:`\delta < 1/(3L)`).
* ``mala`` — the same proposal with a Metropolis–Hastings correction on the energy: exact in the limit
  (needs a prior with an energy); the reference sampler of the exact checks.
* ``annealed`` — annealed Langevin (Song & Ermon 2019): levels :math:`s_1 > \dots > s_L`, at each
  ``steps_per_level`` ULA steps with the denoiser's score at :math:`s_l`, the likelihood's variance
  widened to :math:`\sigma^2 + s_l^2` and :math:`\delta_l \propto s_l^2`; approximate by design, its bias
  is measured against the exact posterior (``tests/test_sampling.py``).

Every sampler returns the draws after ``burn_in``, thinned, with per-chain statistics; a chain whose
state turns non-finite stops with an error naming the chain and the step, the draws before kept
(:class:`ChainDiverged`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import Check, InputError, integer, number, one_of, option, validate, torch_generator
from ..io import host
from ..posterior import Posterior

METHODS = ("ula", "mala", "annealed")


class ChainDiverged(RuntimeError):
    """A chain's state became non-finite; ``draws`` holds what was drawn before (``(C, n, H, W)``)."""

    def __init__(self, chain: int, step: int, draws: torch.Tensor):
        self.chain, self.step, self.draws = chain, step, draws
        super().__init__(f"chain {chain} diverged (non-finite state) at step {step}; {draws.shape[1]} draws kept")


def _decreasing_levels(v: Any) -> bool:
    lv = np.asarray(v, dtype=float)
    return lv.ndim == 1 and lv.size >= 1 and bool(np.all(np.isfinite(lv)) and (lv > 0).all() and (np.diff(lv) <= 0).all())


@dataclass(frozen=True)
class LangevinOptions:
    """Options of the Langevin samplers, validated on creation.

    Parameters
    ----------
    method : {"ula", "mala", "annealed"}
    n_steps : int
        Steps per chain (``annealed``: per level, ``steps_per_level``; ``n_steps`` is then ignored).
    burn_in : int
        Steps discarded (must be below ``n_steps``).
    thin : int
        Keep every ``thin``-th draw after burn-in.
    step_factor : float
        :math:`\\gamma` in :math:`\\delta = \\gamma / L`.
    step : float or None
        An explicit :math:`\\delta` (overrides ``step_factor``).
    chains : int
    levels : tuple of float
        ``annealed``: the levels :math:`s_l`, decreasing.
    steps_per_level : int
    """

    method: str = option("ula", "ula, mala or annealed", one_of(METHODS))
    n_steps: int = option(2000, "steps per chain", integer(1))
    burn_in: int = option(500, "steps discarded", integer(0))
    thin: int = option(1, "keep every thin-th draw", integer(1))
    step_factor: float = option(1 / 3, "gamma in delta = gamma / L", number(0.0, 1.0, lo_open=True))
    step: float | None = option(None, "explicit step delta", Check(
        "a positive finite step size, or None",
        lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0),
        (0.0, -1.0, float("inf"), "0.1")))
    chains: int = option(4, "chains, run as one batch", integer(1))
    levels: tuple = option((0.2, 0.1, 0.05, 0.02, 0.01), "annealed levels, decreasing", Check(
        "positive, finite, decreasing noise levels", _decreasing_levels, ((), (0.1, 0.2), (0.1, -0.1), (float("nan"),))))
    steps_per_level: int = option(100, "annealed: steps per level", integer(1))

    def __post_init__(self):
        validate(self)
        total = self.total_steps()
        if self.burn_in >= total:
            raise InputError("burn_in", f"fewer steps than the run ({total})", self.burn_in)

    def total_steps(self) -> int:
        return len(self.levels) * self.steps_per_level if self.method == "annealed" else self.n_steps


def lipschitz(post: Posterior, theta: torch.Tensor, s: float | None = None) -> float:
    r""":math:`L = \max|\hat h|^2/\sigma^2 + \lambda L_q`: :math:`L_q = 1/s^2` for a score at level
    :math:`s` (a non-expansive denoiser), else the prior's ``lipschitz()`` when it has one, else its
    curvature along a random direction (``solvers.prior_curvature``)."""
    from ..solvers import prior_curvature
    blur = post.problem.blur(theta)
    data = float((blur.otf.abs() ** 2).max()) / post.problem.noise ** 2
    s = s if s is not None else post.prior.s
    if s:
        lq = 1 / s ** 2
    elif post.prior.lipschitz() is not None:
        lq = float(post.prior.lipschitz())
    else:
        lq = prior_curvature(post, post.default_start()) / post.prior_weight
    return data + post.prior_weight * lq


def _grad(post: Posterior, blur, x: torch.Tensor, score_level: float | None, widen: float = 0.0) -> torch.Tensor:
    score = None if score_level is None else (x - post.prior.denoise(x, score_level)) / score_level ** 2
    return post.x_gradient(blur, x, prior_grad=score, noise_var=post.problem.noise ** 2 + widen)


def sample_x(post: Posterior, theta: Any, options: LangevinOptions | None = None, *, x0: torch.Tensor | None = None,
             rng: Any = None, progress: bool = False) -> dict[str, Any]:
    r"""Draws of :math:`x \mid \theta, y` by the chosen Langevin method, ``chains`` chains in one batch.

    Parameters
    ----------
    post : Posterior
    theta : array ``(p,)``
    options : LangevinOptions, optional
    x0 : Tensor, optional
        Start: one image (the problem's image shape: ``(H, W)``, or ``(3, H, W)`` for a colour problem) for
        every chain, or one per chain ``(chains, *image shape)`` (default ``y``, edge-padded for the valid
        boundary).
    rng : seed or ``torch.Generator``
    progress : bool

    Returns
    -------
    dict
        ``draws`` ``(chains, n, *image shape)``; ``step`` :math:`\delta` (per level for ``annealed``); ``acceptance``
        ``(C,)`` (``mala``; NaN otherwise); ``energy`` ``(C, n)`` when the prior has one (``mala``);
        ``calls`` (prior gradient or denoiser calls).
    """
    from tqdm.auto import tqdm
    opts = options or LangevinOptions()
    th = post.problem.family.check(np.asarray(theta, dtype=float).reshape(1, -1), dtype=post.problem.dtype,
                                   device=post.problem.device)
    if opts.method == "mala" and post.prior.capabilities.get("energy") not in ("exact", "exact up to a constant"):
        raise InputError("method", "ula or annealed for a prior without an energy (mala needs one)", opts.method)
    gen = torch_generator(rng)
    C = opts.chains
    shape = post.problem.event_shape
    x = (post.default_start() if x0 is None else torch.as_tensor(x0, dtype=post.problem.dtype,
                                                                  device=post.problem.device))
    x = x.expand(C, *shape).clone() if x.ndim == len(shape) else x.clone()
    blur = post.problem.blur(th)
    calls0 = post.prior.calls
    if opts.method == "annealed":
        levels = np.asarray(opts.levels, dtype=float)
        L = [lipschitz(post, th, float(s)) for s in levels]
        steps = [opts.step_factor / Lk if opts.step is None else opts.step * (s / levels[-1]) ** 2
                 for Lk, s in zip(L, levels)]
        schedule = [(float(s), d) for s, d in zip(levels, steps) for _ in range(opts.steps_per_level)]
    else:
        d = opts.step if opts.step is not None else opts.step_factor / lipschitz(post, th)
        schedule = [(None, d)] * opts.n_steps
        steps = [d]
    draws, energies = [], []
    state = MalaState(None, None, torch.zeros(C, dtype=post.problem.dtype, device=post.problem.device))
    for k, (s, d) in enumerate(tqdm(schedule, desc=f"langevin ({opts.method}, {C} chains)", disable=not progress,
                                    leave=False)):
        x = transition(post, blur, x, d, opts.method, gen, state, level=s)
        e_cur = state.energy
        bad = ~torch.isfinite(x).flatten(1).all(1)
        if bad.any():
            kept = torch.stack(draws, 1) if draws else x.new_zeros(C, 0, *shape)
            raise ChainDiverged(int(bad.nonzero()[0]), k, kept)
        if k >= opts.burn_in and (k - opts.burn_in) % opts.thin == 0:
            draws.append(x.clone())
            if e_cur is not None:
                energies.append(e_cur.clone())
    out = {"draws": torch.stack(draws, 1), "step": np.array(steps), "calls": post.prior.calls - calls0,
           "acceptance": host(state.accepted / len(schedule)) if opts.method == "mala" else np.full(C, np.nan)}
    if energies:
        out["energy"] = torch.stack(energies, 1)
    return out


@dataclass
class MalaState:
    """Energy and gradient at the current states (``mala``), and the accepted-move counts."""

    energy: torch.Tensor | None
    grad: torch.Tensor | None
    accepted: torch.Tensor


def transition(post: Posterior, blur, x: torch.Tensor, step: Any, method: str, gen: torch.Generator,
               state: MalaState, level: float | None = None) -> torch.Tensor:
    """One Langevin move of every chain (``x`` ``(C, *image shape)``, ``blur`` with one kernel per chain or one
    for all); ``step`` a float or ``(C,)``; ``level``: the denoiser level of an annealed step (the
    likelihood's variance widened by its square), None for the prior's own gradient."""
    C = x.shape[0]
    d = torch.as_tensor(step, dtype=x.dtype, device=x.device).reshape(-1).expand(C)
    dv = d.reshape(C, *[1] * (x.ndim - 1))
    # drawn where the generator lives, then moved: the same draws on every device
    noise = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=gen.device).to(x.device)
    if method != "mala":
        widen = 0.0 if level is None else level ** 2
        return x - dv * _grad(post, blur, x, level, widen) + torch.sqrt(2 * dv) * noise
    if state.energy is None:
        state.energy, state.grad = energy_grad(post, blur, x)
    prop = x - dv * state.grad + torch.sqrt(2 * dv) * noise
    e_p, g_p = energy_grad(post, blur, prop)
    fwd = ((prop - x + dv * state.grad) ** 2).flatten(1).sum(1) / (4 * d)
    bwd = ((x - prop + dv * g_p) ** 2).flatten(1).sum(1) / (4 * d)
    log_a = -e_p + state.energy - bwd + fwd
    acc = torch.log(torch.rand(C, generator=gen, dtype=x.dtype, device=gen.device).to(x.device)) < log_a
    state.energy = torch.where(acc, e_p, state.energy)
    keep = acc.reshape(C, *[1] * (x.ndim - 1))
    state.grad = torch.where(keep, g_p, state.grad)
    state.accepted += acc.to(x.dtype)
    return torch.where(keep, prop, x)


def energy_grad(post: Posterior, blur, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`E` and :math:`\nabla_x E` per chain (``blur`` batched like ``x``)."""
    return post.x_energy_and_gradient(blur, x)
