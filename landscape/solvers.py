r"""Inner solvers: :math:`\hat x(\theta) = \arg\min_x E(\theta, x)`, batched over :math:`\theta`.

Two methods share one preconditioner, the data term's Fourier-diagonal Hessian plus a scalar
prior curvature :math:`c`,

.. math::
    M = \mathcal F^* \operatorname{diag}\!\big(1 / (|\hat h|^2/\sigma^2 + c)\big)\, \mathcal F,

which is the exact inverse Hessian of :math:`E(\theta, \cdot)` for a white Gaussian prior of
precision :math:`c` on the circular boundary (for the valid boundary it is the circulant
approximation: still a preconditioner, no longer exact):

* ``"lbfgs"`` — batched L-BFGS on the true energy (``optim.lbfgs``), for priors with an energy;
* ``"hqs"`` — :math:`x_{k+1} = x_k - M\nabla_x E(x_k)`, gradient-only, for priors known through
  their score. With :math:`c = \lambda/s^2` and a Tweedie score this is half-quadratic splitting
  (plug-and-play) with one denoiser call per iteration; its data step is exact only for the
  circular boundary.

All options are one frozen :class:`SolverOptions`, created once, stored once in a result's
attributes (``SolverOptions.attrs``) and passed down whole. ``fixed_point_rate`` measures the
spectral radius of the HQS map at a point, i.e. whether an unconverged solve *can* converge.
Tests: ``tests/test_solvers.py`` (closed forms of the Gaussian prior, a dense solve for the valid
boundary, the Newton decrement against the exact gap).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from ._checks import Check, InputError, choice, integer, number, one_of, option, validate
from .operators import BlurSubset
from .optim import SolveInfo, lbfgs

if TYPE_CHECKING:
    from .posterior import Posterior

METHODS = ("auto", "lbfgs", "hqs")


@dataclass(frozen=True)
class SolverOptions:
    r"""Options of the inner solver, validated on creation.

    Parameters
    ----------
    method : {"auto", "lbfgs", "hqs"}
        ``"auto"``: ``"hqs"`` for priors whose energy is only approximate (score-only), else
        ``"lbfgs"`` (``method_for``).
    max_iter : int
        Iteration cap per item (>= 1); an item that reaches it is reported unconverged.
    ftol, gtol : float
        L-BFGS: relative energy change and gradient-norm tolerances (>= 0).
    etol : float
        Both methods: stop an item once the preconditioned Newton decrement
        :math:`\tfrac12 \nabla_x E^\top M \nabla_x E` (an estimate of
        :math:`E(\theta, x) - \min_x E(\theta, \cdot)` in nats; exact for a Gaussian prior of
        curvature :math:`c`) falls to ``etol`` (0: not used).
    xtol : float
        HQS: stop when :math:`\|x_{k+1} - x_k\| \le` ``xtol`` :math:`\|x_k\|` (>= 0).
    memory : int
        L-BFGS curvature pairs (4 measured fastest at equal accuracy, ``benchmarks/profile_scan.py``).
    curvature : float or None
        The scalar :math:`c` of :math:`M`; default ``default_curvature``.
    accelerate : bool or None
        Nesterov momentum with adaptive restart for HQS (default: only for priors with an exact
        energy; learned scores get the plain, safeguarded iteration).
    """

    method: str = option("auto", "auto, lbfgs or hqs", one_of(METHODS))
    max_iter: int = option(1000, "iteration cap per item", integer(1))
    ftol: float = option(1e-14, "L-BFGS relative energy-change tolerance", number(0.0))
    gtol: float = option(1e-9, "L-BFGS gradient-norm tolerance", number(0.0))
    etol: float = option(0.0, "Newton-decrement tolerance in nats (0: not used)", number(0.0))
    xtol: float = option(1e-6, "HQS relative step tolerance", number(0.0))
    memory: int = option(4, "L-BFGS curvature pairs", integer(1))
    curvature: float | None = option(None, "the preconditioner's scalar prior curvature c (None: default_curvature)",
                                     Check("a positive finite prior curvature, or None",
                                           lambda v: v is None or (number(0.0, lo_open=True).accepts(v)), (0.0, -1.0)))
    accelerate: bool | None = option(None, "HQS momentum (None: only for priors with an exact energy)",
                                     Check("True, False or None", lambda v: v is None or isinstance(v, bool), (1, "yes")))

    def __post_init__(self):
        validate(self)                  # validated on construction, like every options object

    def replace(self, **changes: Any) -> "SolverOptions":
        """A copy with ``changes`` (unknown names raise :class:`InputError`)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InputError("solver option", "one of " + ", ".join(f.name for f in dataclasses.fields(self)),
                             ", ".join(sorted(unknown)))
        return dataclasses.replace(self, **changes)

    def attrs(self) -> dict[str, Any]:
        """``solver_<name>`` attributes for a netCDF file (None stored as ``"default"``)."""
        return {f"solver_{k}": ("default" if v is None else (int(v) if isinstance(v, bool) else v))
                for k, v in dataclasses.asdict(self).items()}


def options(solver: SolverOptions | None = None, **overrides: Any) -> SolverOptions:
    """``solver`` (default ``SolverOptions()``) with ``overrides``."""
    base = SolverOptions() if solver is None else solver
    if not isinstance(base, SolverOptions):
        raise InputError("solver", "a landscape.solvers.SolverOptions", type(base).__name__)
    return base.replace(**overrides) if overrides else base


def method_for(post: "Posterior", method: str = "auto") -> str:
    """The method ``argmin_x`` uses: ``"auto"`` is ``"hqs"`` for priors whose energy is only
    approximate (known through their score), else ``"lbfgs"``."""
    choice("method", method, METHODS)
    if method != "auto":
        return method
    return "hqs" if post.prior.capabilities.get("energy") == "approximate" else "lbfgs"


def prior_curvature(post: "Posterior", x: torch.Tensor, rng: int = 0) -> float:
    r"""Rayleigh quotient :math:`v^\top \nabla^2 (\lambda q)(x) v / \|v\|^2` along a random
    white direction, by a central difference of gradients (a scale for preconditioning)."""
    g = torch.Generator(device="cpu").manual_seed(rng)
    ev = post.problem.event_shape
    v = torch.randn(ev, generator=g, dtype=x.dtype, device="cpu").to(x.device)
    x1 = x.reshape(-1, *ev)[:1]
    eps = 1e-4 * max(float(x1.abs().max()), 1.0) / float(v.abs().max())
    gp = post.prior.grad(x1 + eps * v) - post.prior.grad(x1 - eps * v)
    c = float((gp * v).sum() / (2 * eps * (v * v).sum())) * post.prior_weight
    return max(c, 1e-6)


def default_curvature(post: "Posterior", method: str, x: torch.Tensor) -> float:
    r"""Scalar prior curvature :math:`c` of the preconditioner: :math:`\lambda/s^2` for HQS with a
    prior defined at a noise level ``s`` (one denoiser step per iteration), else
    ``prior_curvature(post, x)``."""
    s = post.prior.s
    return post.prior_weight / s ** 2 if (method == "hqs" and s) else prior_curvature(post, x)


def _fourier(v: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
    """:math:`\\mathcal F^{-1}(\\mathcal F v / d)`: the preconditioner applied to ``v``."""
    return torch.fft.irfft2(torch.fft.rfft2(v) / denom, s=v.shape[-2:])


def argmin_x(post: "Posterior", theta: Any, x0: torch.Tensor | None = None, solver: SolverOptions | None = None, *,
             energies: bool = True, progress: bool = False
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor], SolveInfo]:
    r"""Solve :math:`\hat x(\theta_b) = \arg\min_x E(\theta_b, x)` for every :math:`\theta_b`.

    Parameters
    ----------
    post : Posterior
    theta : array ``(B, p)`` (or ``(B,)`` for one-parameter families)
    x0 : Tensor ``(B, H, W)`` or ``(H, W)``, optional
        Start; default the observation (edge-padded for the valid boundary).
    solver : SolverOptions, optional
    energies : bool
        Evaluate the terms at the solution (for score-only priors a line integral per item).
    progress : bool
        Show a progress bar over iterations.

    Returns
    -------
    x : Tensor ``(B, H, W)``
    terms : dict
        ``data_term``, ``prior_term``, ``kernel_term``, ``energy`` (empty when ``energies=False``).
    info : optim.SolveInfo
        Iterations, convergence and calls, per item.

    Notes
    -----
    ``"lbfgs"`` preconditions by :math:`M` and stops on ``ftol``/``gtol``/``etol``. ``"hqs"``
    iterates :math:`(H^\top H/\sigma^2 + c)\,x_{k+1} = H^\top y/\sigma^2 + c\,x_k - \lambda\nabla q(x_k)`
    (exact data step for the circular boundary only), with Nesterov momentum, adaptive restart and
    a safeguard against expansive scores; it stops on ``xtol``/``etol``.

    Examples
    --------
    >>> x, terms, info = argmin_x(post, [[0.0], [1.5]], solver=SolverOptions(etol=0.01))  # doctest: +SKIP
    """
    opts = options(solver)
    th = post.theta(theta)
    B = th.shape[0]
    method = method_for(post, opts.method)
    blur = post.problem.blur(th)
    x0 = post.default_start() if x0 is None else x0
    x0 = x0.to(dtype=post.problem.dtype, device=post.problem.device)
    ev = tuple(post.problem.event_shape)
    if x0.ndim == len(ev):
        x0 = x0.expand(B, *x0.shape)
    if tuple(x0.shape[1:]) != ev or x0.shape[0] != B:
        raise InputError("x0", "a start of shape (" + ", ".join(map(str, (B, *ev))) + ")", tuple(x0.shape))
    x0 = x0.contiguous()
    curvature = opts.curvature if opts.curvature is not None else default_curvature(post, method, x0)
    data_curv = (blur.otf.real ** 2 + blur.otf.imag ** 2) / post.problem.noise ** 2
    if method == "lbfgs":
        fg, _ = post.x_objective(th, blur)
        denom = data_curv + curvature
        cache: dict[str, Any] = {}

        def precond(v, idx):
            if cache.get("idx") is not idx:
                cache["idx"], cache["d"] = idx, denom if idx.numel() == B else denom[idx]
            return _fourier(v, cache["d"])

        x, info = lbfgs(fg, x0, max_iter=opts.max_iter, ftol=opts.ftol, gtol=opts.gtol, etol=opts.etol,
                        memory=opts.memory, precond=precond, progress=progress, desc="argmin_x")
    else:
        accelerate = opts.accelerate
        if accelerate is None:
            accelerate = post.prior.capabilities.get("energy") != "approximate"
        x, info = _hqs(post, x0, blur, data_curv, curvature, opts.max_iter, opts.xtol, opts.etol, accelerate, progress)
    t: dict[str, torch.Tensor] = {}
    if energies:
        with torch.no_grad():
            t = post.terms(th, x)
    return x, t, info


def _hqs(post, x0, blur, data_curv, curvature, max_iter, xtol, etol, accelerate, progress):
    """Preconditioned gradient steps with Nesterov momentum and adaptive restart
    (O'Donoghue & Candes 2015: restart when the momentum points uphill). Safeguard for
    learned scores, whose Jacobians need not lie in [0, I]: when an item's momentum-free step
    grows twice in a row, its momentum is reset and its curvature c doubled (halving the prior
    step), so the iteration cannot run away; the stopping test rescales the step by c/c0."""
    from tqdm.auto import tqdm

    B = x0.shape[0]
    x = x0.clone()
    act = torch.arange(B, device=x.device)
    info = SolveInfo(*(torch.zeros(B, dtype=t, device=x.device) for t in (torch.long, torch.bool, x.dtype, x.dtype)))
    sub = BlurSubset(blur)
    xa, za = x0.clone(), x0.clone()
    tk = torch.ones(B, dtype=x.dtype, device=x.device)
    c = torch.full((B,), float(curvature), dtype=x.dtype, device=x.device)
    prev = torch.full((B,), float("inf"), dtype=x.dtype, device=x.device)
    grow = torch.zeros(B, dtype=torch.long, device=x.device)
    plain = torch.ones(B, dtype=torch.bool, device=x.device)
    dc = data_curv if data_curv.ndim > 2 else data_curv.expand(B, *data_curv.shape)
    per_item = (-1,) + (1,) * post.problem.event_ndim               # a per-item scalar over one image
    for _ in tqdm(range(max_iter), desc="argmin_x (hqs)", disable=not progress, leave=False):
        op = sub(act)
        g = post.x_gradient(op, za)
        info.n_calls += 1
        info.n_item_evals += act.numel()
        dca = dc[act] if act.numel() < B else dc
        xn = za - _fourier(g, dca + c.view(per_item))
        info.n_iter[act] += 1
        step = xn - xa
        nrm = step.flatten(1).norm(dim=1)
        # growth only counts between plain (momentum-free) steps: accelerated steps may grow
        grow = torch.where(plain, torch.where(nrm > 1.01 * prev, grow + 1, torch.zeros_like(grow)), grow)
        unstable = grow >= 2
        restart = (((za - xn) * step).flatten(1).sum(1) > 0) | unstable | (not accelerate)
        c = torch.where(unstable, 2 * c, c)
        grow = torch.where(unstable, torch.zeros_like(grow), grow)
        tn = (1 + torch.sqrt(1 + 4 * tk ** 2)) / 2
        beta = torch.where(restart, torch.zeros_like(tk), (tk - 1) / tn)
        plain = beta == 0
        tk = torch.where(restart, torch.ones_like(tk), tn)
        za = xn + beta.view(per_item) * step
        # relative change, rescaled by c / c0 so that a shortened step is not taken for convergence
        change = nrm * (c / float(curvature)) / xa.flatten(1).norm(dim=1).clamp_min(1e-30)
        prev = nrm
        info.grad_norm[act] = g.flatten(1).norm(dim=1)
        done = change <= xtol
        if etol > 0:                    # Newton-decrement estimate of E - E*, with c0 (not c)
            done |= 0.5 * (g * _fourier(g, dca + float(curvature))).flatten(1).sum(1) <= etol
        x[act] = xn
        xa = xn
        if done.any():
            info.converged[act[done]] = True
            keep = ~done
            act, xa, za, tk, c, prev, grow, plain = (
                v[keep] for v in (act, xa, za, tk, c, prev, grow, plain))
            if act.numel() == 0:
                break
    return x, info


def hqs_map(post: "Posterior", theta: Any, curvature: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The preconditioned gradient map of the ``"hqs"`` method,
    :math:`T(x) = x - M \nabla_x E(\theta, x)`, batched over ``theta`` ``(B, p)`` and ``x``
    ``(B, H, W)``; ``curvature`` :math:`c` as in ``argmin_x``."""
    th = post.theta(theta)
    blur = post.problem.blur(th)
    if curvature is None:
        curvature = default_curvature(post, "hqs", post.default_start())
    denom = (blur.otf.real ** 2 + blur.otf.imag ** 2) / post.problem.noise ** 2 + curvature

    def T(x: torch.Tensor) -> torch.Tensor:
        g = post.x_gradient(blur, x)
        return x - _fourier(g, denom)

    return T


def fixed_point_rate(post: "Posterior", theta: Any, x: torch.Tensor, *, eps: float = 1e-3, tol: float = 1e-4,
                     ncv: int = 20, max_matvecs: int = 2000, curvature: float | None = None,
                     rng: Any = 0) -> torch.Tensor:
    r"""Spectral radius :math:`\rho(J_T(x))` of the HQS map ``hqs_map(post, theta)`` at ``x``, per item.

    Parameters
    ----------
    post : Posterior
    theta : array ``(B, p)``
    x : Tensor ``(B, H, W)`` or ``(H, W)``
        The points (typically the kept solutions of a profile).
    eps : float
        Central-difference step, relative to :math:`\|x\|`.
    tol, ncv, max_matvecs : Arnoldi's relative tolerance, Krylov vectors and product budget.
    curvature : float, optional
        :math:`c` of the map (default as in ``argmin_x``).
    rng : seed of the starting vector.

    Returns
    -------
    Tensor ``(B,)``
        Moduli of the largest eigenvalue (the best Ritz value when Arnoldi stops at
        ``max_matvecs`` products before ``tol``; NaN when it has none).

    Notes
    -----
    The iteration :math:`x_{k+1} = T(x_k)` converges locally to a fixed point when
    :math:`\rho < 1`, at the rate :math:`\rho^k`; at :math:`\rho \ge 1` the fixed point repels along
    some direction and no number of iterations reaches it. For a conservative prior
    :math:`J_T = I - M\nabla^2_x E`; for a Tweedie prior :math:`J_T = (H^\top H/\sigma^2 + c)^{-1} c\, J_D`
    with :math:`c = \lambda/s^2`, so an expansive denoiser (:math:`\|J_D\| > 1`) gives
    :math:`\rho > 1` wherever the data do not constrain :math:`x`. The eigenvalue is found by
    implicitly restarted Arnoldi (``scipy.sparse.linalg.eigs``) on central differences
    :math:`J_T v \approx (T(x + \epsilon v) - T(x - \epsilon v)) / 2\epsilon` (two gradient
    evaluations per product; any prior). The test compares it with the Gaussian closed form
    :math:`\max_\omega |1 - (|\hat h|^2/\sigma^2 + 1/P)/(|\hat h|^2/\sigma^2 + c)|`.
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs
    th = post.theta(theta)
    x = x.to(dtype=post.problem.dtype, device=post.problem.device)
    shape = tuple(post.problem.event_shape)
    x = x.expand(th.shape[0], *shape) if x.ndim == len(shape) else x
    g = np.random.default_rng(rng)
    n = int(np.prod(shape))
    out = torch.zeros(th.shape[0], dtype=torch.float64, device="cpu")          # a record: on the host
    for b in range(th.shape[0]):
        T = hqs_map(post, th[b:b + 1], curvature)
        xb = x[b:b + 1]
        e = eps * max(float(xb.norm()), 1e-12)

        def matvec(v: np.ndarray) -> np.ndarray:
            w = torch.as_tensor(np.real(v).reshape(1, *shape), dtype=x.dtype, device=x.device)
            w = w / max(float(w.norm()), 1e-300)
            nv = float(np.linalg.norm(np.real(v)))
            with torch.no_grad():
                jv = (T(xb + e * w) - T(xb - e * w)) / (2 * e)
            return jv.reshape(-1).double().cpu().numpy() * nv

        op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        try:
            vals = eigs(op, k=1, which="LM", v0=g.standard_normal(n), ncv=min(ncv, n - 1), tol=tol,
                        maxiter=max(1, max_matvecs // ncv), return_eigenvectors=False)
        except ArpackNoConvergence as exc:      # the best Ritz value so far, else unknown
            vals = exc.eigenvalues if len(exc.eigenvalues) else np.array([np.nan])
        out[b] = float(np.abs(vals).max())
    return out
