r"""Batched smooth minimisation: many independent problems solved side by side.

``lbfgs`` minimises :math:`f_b(x_b)` for every batch item :math:`b` at once (e.g. the inner
problem :math:`\min_x E(\theta_b, x)` for a grid of :math:`\theta_b`). Each item has its own
L-BFGS memory, step length and stopping test. Items that stop are written out and the working
arrays are compacted, so the cost of an iteration follows the number of items still running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm

#: ``fg(x, idx) -> (f, g)`` for the items ``idx`` (indices into the batch) at iterates ``x``
FG = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: ``precond(v, idx) -> M v`` for the items ``idx``
PRECOND = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: energies closer than ``ETOL_MARGIN * etol`` are not told apart: the Newton decrement only
#: estimates the gap to the minimum (``benchmarks/learned_profile.py`` measures gaps below 10 etol)
ETOL_MARGIN = 10.0


@dataclass
class SolveInfo:
    """What a batched solve did, per item (``n_iter``, ``converged``, ``f``, ``grad_norm``) and
    in total (``n_calls`` batched calls of ``fg``, ``n_item_evals`` items evaluated)."""

    n_iter: torch.Tensor
    converged: torch.Tensor
    f: torch.Tensor
    grad_norm: torch.Tensor
    n_calls: int = 0
    n_item_evals: int = 0


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vecdot(a.flatten(1), b.flatten(1))          # fused: no product temporary


def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *[1] * (like.ndim - 1))


def lbfgs(fg: FG, x0: torch.Tensor, *, max_iter: int = 500, ftol: float = 1e-13, gtol: float = 1e-10,
          etol: float = 0.0, memory: int = 10, precond: PRECOND | None = None, progress: bool = False,
          desc: str = "L-BFGS") -> tuple[torch.Tensor, SolveInfo]:
    r"""Batched L-BFGS with per-item Armijo backtracking.

    Parameters
    ----------
    fg : callable ``(x, idx) -> (f, g)``
        Energies ``(n,)`` and gradients ``(n, ...)`` of the items ``idx`` (a LongTensor into
        the batch) at ``x`` (``(n, ...)``, those items' iterates). The same ``idx`` object is
        passed again as long as the set of items is unchanged, so callers may cache on it.
    x0 : Tensor ``(B, ...)``
        Starting points.
    ftol : float
        An item stops when an iteration lowers its energy by at most ``ftol * max(1, |f|)``,
    gtol : float
        or when its gradient norm falls to ``gtol``, or when no step along its direction
        lowers the energy (converged to round-off),
    etol : float
        or when its estimated distance to the minimum energy, the preconditioned Newton
        decrement :math:`\tfrac12 g^\top M g` (exact, :math:`f - f^\star`, for a quadratic whose
        inverse Hessian is :math:`M`), falls to ``etol`` (in the units of ``f``; 0: not used).
    memory : int
        Number of curvature pairs kept.
    precond : callable ``(v, idx) -> M v``, optional
        A symmetric positive-definite approximation of the inverse Hessian, used as the
        initial L-BFGS matrix :math:`H_0 = \gamma M`, :math:`\gamma = s^\top y / y^\top M y`.

    Returns
    -------
    x : Tensor ``(B, ...)``
    info : SolveInfo
    """
    B = x0.shape[0]
    dev = x0.device
    M = precond if precond is not None else (lambda v, idx: v)
    act = torch.arange(B, device=dev)
    xw = x0.detach().clone()
    fw, gw = (t.detach() for t in fg(xw, act))
    x_out, f_out, g_norm = xw.clone(), fw.clone(), gw.flatten(1).norm(dim=1)
    info = SolveInfo(torch.zeros(B, dtype=torch.long, device=dev), torch.zeros(B, dtype=torch.bool, device=dev), f_out,
                     g_norm, 1, B)
    S: list[torch.Tensor] = []
    Y: list[torch.Tensor] = []
    R: list[torch.Tensor] = []

    def decrement(g, idx):                                   # g^T M g / 2, the estimate of f - f*
        return 0.5 * _dot(g, M(g, idx))

    keep = g_norm > gtol
    if etol > 0:
        keep &= decrement(gw, act) > etol
    info.converged |= ~keep
    bar = tqdm(total=max_iter, desc=desc, disable=not progress, leave=False)
    for _ in range(max_iter):
        if not keep.all():                                   # compact the working set
            act, xw, fw, gw = act[keep], xw[keep], fw[keep], gw[keep]
            S, Y, R = [s[keep] for s in S], [y[keep] for y in Y], [r[keep] for r in R]
        n = act.numel()
        if n == 0:
            break
        # two-loop recursion
        q = -gw
        alphas = []
        for s, y, rho in zip(reversed(S), reversed(Y), reversed(R)):
            a = rho * _dot(s, q)
            q.addcmul_(y, _col(-a, q))                       # in place: q is this iteration's own
            alphas.append(a)
        r = M(q, act)
        if S:
            s, y = S[-1], Y[-1]
            gamma = torch.where(R[-1] > 0, _dot(s, y) / _dot(y, M(y, act)).clamp_min(1e-300),
                                torch.ones_like(R[-1]))
            r = _col(gamma, r) * r
        for s, y, rho, a in zip(S, Y, R, reversed(alphas)):
            b = rho * _dot(y, r)
            r.addcmul_(s, _col(a - b, r))
        d = r
        slope = _dot(gw, d)
        bad = slope >= 0                                     # not a descent direction: reset
        if bad.any():
            d = torch.where(_col(bad, d), -M(gw, act), d)
            slope = _dot(gw, d)
        if not S:                                            # first step: at most unit size
            scale = torch.clamp(1.0 / d.flatten(1).abs().amax(1).clamp_min(1e-300), max=1.0)
            d = _col(scale, d) * d
            slope = slope * scale
        # Armijo backtracking, per item
        step = torch.ones(n, dtype=xw.dtype, device=dev)
        fnew, gnew = fw.clone(), gw.clone()
        pending = torch.ones(n, dtype=torch.bool, device=dev)
        for _ in range(40):
            if pending.all():
                p, idx, xt = None, act, xw + _col(step, xw) * d
            else:
                p = pending.nonzero().flatten()
                idx, xt = act[p], xw[p] + _col(step[p], xw) * d[p]
            ft, gt = fg(xt, idx)
            info.n_calls += 1
            info.n_item_evals += idx.numel()
            ok = torch.isfinite(ft) & (ft <= (fw if p is None else fw[p]) + 1e-4 * (step * slope if p is None else step[p] * slope[p]))
            okp = ok.nonzero().flatten() if p is None else p[ok]
            fnew[okp], gnew[okp] = ft[ok].detach(), gt[ok].detach()
            pending[okp] = False
            step[pending] *= 0.5
            if not pending.any():
                break
        failed = pending
        step = torch.where(failed, torch.zeros_like(step), step)
        s_new = _col(step, d) * d
        y_new = gnew - gw
        sy = _dot(s_new, y_new)
        S.append(s_new)
        Y.append(y_new)
        R.append(torch.where(sy > 0, 1.0 / sy.clamp_min(1e-300), torch.zeros_like(sy)))
        if len(S) > memory:
            S.pop(0), Y.pop(0), R.pop(0)
        decrease = fw - fnew
        xw, fw, gw = xw + s_new, fnew, gnew
        info.n_iter[act] += 1
        gn = gw.flatten(1).norm(dim=1)
        done = failed | (decrease <= ftol * fw.abs().clamp_min(1.0)) | (gn <= gtol)
        if etol > 0:
            done |= decrement(gw, act) <= etol
        # a failed line search is convergence to round-off when the predicted decrease is nil
        stalled = failed & (slope.abs() > 1e-10 * fw.abs().clamp_min(1.0))
        if done.any():
            ids = act[done]
            x_out[ids], f_out[ids], g_norm[ids] = xw[done], fw[done], gn[done]
            info.converged[ids] = ~stalled[done]
        keep = ~done
        bar.update(1)
        bar.set_postfix(active=int(keep.sum()))
    bar.close()
    if act.numel() and keep.any():                          # ran out of iterations
        ids = act[keep]
        x_out[ids], f_out[ids], g_norm[ids] = xw[keep], fw[keep], gw[keep].flatten(1).norm(dim=1)
    return x_out, info
