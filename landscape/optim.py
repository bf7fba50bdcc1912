r"""Batched smooth minimisation: many independent problems solved side by side.

``lbfgs`` minimises :math:`f_b(x_b)` for every batch item :math:`b` at once (e.g. the inner
problem :math:`\min_x E(\theta_b, x)` for a grid of :math:`\theta_b`). Each item has its own
L-BFGS memory, step length and stopping test; converged items drop out of the evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

FG = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class SolveInfo:
    """What a batched solve did, per item."""

    n_iter: torch.Tensor
    converged: torch.Tensor
    f: torch.Tensor
    grad_norm: torch.Tensor
    n_calls: int = 0              # batched calls of fg
    n_item_evals: int = 0         # sum over calls of the items evaluated
    history: list = field(default_factory=list)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1)


def lbfgs(fg: FG, x0: torch.Tensor, *, max_iter: int = 500, ftol: float = 1e-13, gtol: float = 1e-10,
          memory: int = 10, precond: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          progress: bool = False, desc: str = "L-BFGS") -> tuple[torch.Tensor, SolveInfo]:
    r"""Batched L-BFGS with per-item Armijo backtracking.

    Parameters
    ----------
    fg : callable ``(x, idx) -> (f, g)``
        Energies ``(n,)`` and gradients ``(n, ...)`` of the items ``idx`` (a LongTensor into
        the batch) at ``x`` (``(n, ...)``, those items' iterates).
    x0 : Tensor ``(B, ...)``
        Starting points.
    ftol : float
        An item stops when an iteration lowers its energy by at most
        ``ftol * max(1, |f|)`` ...
    gtol : float
        ... or when its gradient norm falls to ``gtol``.
    memory : int
        Number of curvature pairs kept.
    precond : callable ``(v, idx) -> M v``, optional
        A symmetric positive-definite approximation of the inverse Hessian, used as the
        initial L-BFGS matrix :math:`H_0 = \gamma M` with :math:`\gamma = s^\top y / y^\top M y`.

    Returns
    -------
    x : Tensor ``(B, ...)``
    info : SolveInfo
    """
    B = x0.shape[0]
    dev = x0.device
    M = precond if precond is not None else (lambda v, idx: v)
    x = x0.detach().clone()
    all_idx = torch.arange(B, device=dev)
    f, g = fg(x, all_idx)
    f, g = f.detach(), g.detach()
    info = SolveInfo(torch.zeros(B, dtype=torch.long), torch.zeros(B, dtype=torch.bool), f.clone(),
                     g.flatten(1).norm(dim=1), 1, B)
    S: list[torch.Tensor] = []
    Y: list[torch.Tensor] = []
    R: list[torch.Tensor] = []
    active = info.grad_norm > gtol
    info.converged |= ~active
    bar = tqdm(total=max_iter, desc=desc, disable=not progress, leave=False)
    for it in range(max_iter):
        idx = active.nonzero().flatten()
        if idx.numel() == 0:
            break
        xa, ga, fa = x[idx], g[idx], f[idx]
        # two-loop recursion on the active items
        q = -ga
        alphas = []
        for s, y, rho in zip(reversed(S), reversed(Y), reversed(R)):
            sa, ya, ra = s[idx], y[idx], rho[idx]
            a = ra * _dot(sa, q)
            q = q - a.view(-1, *[1] * (q.ndim - 1)) * ya
            alphas.append(a)
        r = M(q, idx)
        if S:
            # scaling from the newest pair with curvature, per item
            gamma = torch.ones(len(idx), dtype=x.dtype, device=dev)
            for s, y, rho in zip(reversed(S), reversed(Y), reversed(R)):
                sa, ya, ra = s[idx], y[idx], rho[idx]
                ok = (ra > 0) & (gamma == 1)
                if ok.any():
                    gy = _dot(sa, ya) / _dot(ya, M(ya, idx)).clamp_min(1e-300)
                    gamma = torch.where(ok, gy, gamma)
            r = gamma.view(-1, *[1] * (r.ndim - 1)) * r
        for (s, y, rho), a in zip(zip(S, Y, R), reversed(alphas)):
            sa, ya, ra = s[idx], y[idx], rho[idx]
            b = ra * _dot(ya, r)
            r = r + (a - b).view(-1, *[1] * (r.ndim - 1)) * sa
        d = r
        slope = _dot(ga, d)
        bad = slope >= 0                                    # not a descent direction: reset
        if bad.any():
            d = torch.where(bad.view(-1, *[1] * (d.ndim - 1)), -M(ga, idx), d)
            slope = _dot(ga, d)
        if not S:                                           # first step: keep it modest
            scale = torch.clamp(1.0 / d.flatten(1).abs().amax(1).clamp_min(1e-300), max=1.0)
            d = d * scale.view(-1, *[1] * (d.ndim - 1))
            slope = slope * scale
        # Armijo backtracking, per item
        step = torch.ones(len(idx), dtype=x.dtype, device=dev)
        fnew, gnew = fa.clone(), ga.clone()
        pending = torch.ones(len(idx), dtype=torch.bool, device=dev)
        for _ in range(40):
            p = pending.nonzero().flatten()
            xt = xa[p] + step[p].view(-1, *[1] * (xa.ndim - 1)) * d[p]
            ft, gt = fg(xt, idx[p])
            info.n_calls += 1
            info.n_item_evals += len(p)
            ok = torch.isfinite(ft) & (ft <= fa[p] + 1e-4 * step[p] * slope[p])
            okp = p[ok]
            fnew[okp], gnew[okp] = ft[ok].detach(), gt[ok].detach()
            pending[okp] = False
            step[p[~ok]] *= 0.5
            if not pending.any():
                break
        failed = pending
        moved = ~failed
        xnew = xa + torch.where(moved, step, torch.zeros_like(step)).view(-1, *[1] * (xa.ndim - 1)) * d
        s_new = torch.zeros_like(x)
        y_new = torch.zeros_like(x)
        s_new[idx] = xnew - xa
        y_new[idx] = gnew - ga
        sy = _dot(s_new, y_new)
        rho = torch.where(sy > 1e-300, 1.0 / sy.clamp_min(1e-300), torch.zeros_like(sy))
        S.append(s_new)
        Y.append(y_new)
        R.append(rho)
        if len(S) > memory:
            S.pop(0), Y.pop(0), R.pop(0)
        decrease = fa - fnew
        x[idx], f[idx], g[idx] = xnew, fnew, gnew
        info.n_iter[idx] += 1
        gn = gnew.flatten(1).norm(dim=1)
        info.grad_norm[idx] = gn
        done = failed | (decrease <= ftol * fnew.abs().clamp_min(1.0)) | (gn <= gtol)
        info.converged[idx[done & ~failed]] = True
        active[idx[done]] = False
        bar.update(1)
        bar.set_postfix(active=int(active.sum()))
    bar.close()
    info.f = f
    return x, info
