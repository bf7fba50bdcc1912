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


#: values (items × item size) an L-BFGS block works on: its vectors (iterates, gradients, the memory's pairs)
#: then stay in cache. The solver is memory-bound on large batches: at 64 items of 128² a block of 8 ran the
#: profile scan in 3.2 s instead of 4.5 s on one thread (``docs/benchmarks.md``).
VALUES_PER_BLOCK = 2 ** 17


def lbfgs(fg: FG, x0: torch.Tensor, *, max_iter: int = 500, ftol: float = 1e-13, gtol: float = 1e-10,
          etol: float = 0.0, memory: int = 10, precond: PRECOND | None = None, progress: bool = False,
          desc: str = "L-BFGS", block: int | None = None) -> tuple[torch.Tensor, SolveInfo]:
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
        It must be linear and fixed during the run: it is applied once per iteration, to the new
        gradient. Every other product follows by linearity: :math:`M y_k = M g_{k+1} - M g_k` is
        kept beside each pair, and the two-loop's :math:`M q`, :math:`q = -g - \sum_k a_k y_k`, is
        :math:`-M g - \sum_k a_k M y_k`; the Newton decrement reuses :math:`M g`.

    block : int, optional
        Items solved together (default: ``VALUES_PER_BLOCK`` values' worth, at least one). The items are
        independent, so the blocks run one after the other and give each item the same iterates as one
        batch would, up to the rounding of batched FFTs; ``fg`` and ``precond`` see indices into the
        whole batch.

    Returns
    -------
    x : Tensor ``(B, ...)``
    info : SolveInfo
    """
    B = x0.shape[0]
    size = max(1, block if block is not None else VALUES_PER_BLOCK // max(1, x0[0].numel()))
    M = precond if precond is not None else (lambda v, idx: v)
    kw = dict(max_iter=max_iter, ftol=ftol, gtol=gtol, etol=etol, memory=memory, progress=progress, desc=desc)
    if B <= size:
        return _lbfgs_block(fg, M, x0, 0, **kw)
    parts = [_lbfgs_block(fg, M, x0[i:i + size], i, **kw) for i in range(0, B, size)]
    infos = [p[1] for p in parts]
    return torch.cat([p[0] for p in parts]), SolveInfo(
        *(torch.cat([getattr(i, k) for i in infos]) for k in ("n_iter", "converged", "f", "grad_norm")),
        sum(i.n_calls for i in infos), sum(i.n_item_evals for i in infos))


def _lbfgs_block(fg: FG, M: PRECOND, x0: torch.Tensor, offset: int, *, max_iter: int, ftol: float, gtol: float,
                 etol: float, memory: int, progress: bool, desc: str) -> tuple[torch.Tensor, SolveInfo]:
    """:func:`lbfgs` on the items ``offset .. offset + len(x0) - 1`` of the batch (``act``: positions in
    this block; ``gact``: the batch's indices, what ``fg`` and ``M`` see, remade only when the set changes)."""
    B = x0.shape[0]
    dev = x0.device
    act = torch.arange(B, device=dev)
    gact = act + offset if offset else act
    xw = x0.detach().clone()
    fw, gw = (t.detach() for t in fg(xw, gact))
    mg = M(gw, gact)                                         # M g, once per iteration (see precond)
    x_out, f_out, g_norm = xw.clone(), fw.clone(), gw.flatten(1).norm(dim=1)
    info = SolveInfo(torch.zeros(B, dtype=torch.long, device=dev), torch.zeros(B, dtype=torch.bool, device=dev), f_out,
                     g_norm, 1, B)
    S: list[torch.Tensor] = []
    Y: list[torch.Tensor] = []
    MY: list[torch.Tensor] = []
    R: list[torch.Tensor] = []

    def decrement(g, Mg):                                    # g^T M g / 2, the estimate of f - f*
        return 0.5 * _dot(g, Mg)

    keep = g_norm > gtol
    if etol > 0:
        keep &= decrement(gw, mg) > etol
    info.converged |= ~keep
    bar = tqdm(total=max_iter, desc=desc, disable=not progress, leave=False)
    for _ in range(max_iter):
        if not keep.all():                                   # compact the working set
            act, xw, fw, gw, mg = act[keep], xw[keep], fw[keep], gw[keep], mg[keep]
            gact = act + offset if offset else act
            S, Y, MY, R = ([v[keep] for v in S], [v[keep] for v in Y], [v[keep] for v in MY],
                           [v[keep] for v in R])
        n = act.numel()
        if n == 0:
            break
        # two-loop recursion
        q, r = -gw, -mg                                      # q and M q, updated together
        alphas = []
        for s, y, my, rho in zip(reversed(S), reversed(Y), reversed(MY), reversed(R)):
            a = rho * _dot(s, q)
            q.addcmul_(y, _col(-a, q))                       # in place: q and r are this iteration's own
            r.addcmul_(my, _col(-a, r))
            alphas.append(a)
        if S:
            s, y = S[-1], Y[-1]
            gamma = torch.where(R[-1] > 0, _dot(s, y) / _dot(y, MY[-1]).clamp_min(1e-300),
                                torch.ones_like(R[-1]))
            r.mul_(_col(gamma, r))
        for s, y, rho, a in zip(S, Y, R, reversed(alphas)):
            b = rho * _dot(y, r)
            r.addcmul_(s, _col(a - b, r))
        d = r
        slope = _dot(gw, d)
        bad = slope >= 0                                     # not a descent direction: reset
        if bad.any():
            d = torch.where(_col(bad, d), -mg, d)
            slope = _dot(gw, d)
        if not S:                                            # first step: at most unit size
            scale = torch.clamp(1.0 / d.flatten(1).abs().amax(1).clamp_min(1e-300), max=1.0)
            d = _col(scale, d) * d
            slope = slope * scale
        # Armijo backtracking, per item
        step = torch.ones(n, dtype=xw.dtype, device=dev)
        pending = torch.ones(n, dtype=torch.bool, device=dev)
        unit = True                                          # every item at step 1 (the usual case)
        for trial in range(40):
            if pending.all():
                p, idx, xt = None, gact, (xw + d if trial == 0 else xw + _col(step, xw) * d)
            else:
                p = pending.nonzero().flatten()
                idx, xt = gact[p], xw[p] + _col(step[p], xw) * d[p]
            ft, gt = fg(xt, idx)
            info.n_calls += 1
            info.n_item_evals += idx.numel()
            ok = torch.isfinite(ft) & (ft <= (fw if p is None else fw[p]) + 1e-4 * (step * slope if p is None else step[p] * slope[p]))
            if trial == 0 and bool(ok.all()):                # all accepted at once: no copies
                fnew, gnew = ft.detach(), gt.detach()
                pending[:] = False
                break
            if trial == 0:
                fnew, gnew = fw.clone(), gw.clone()
            unit = False
            okp = ok.nonzero().flatten() if p is None else p[ok]
            fnew[okp], gnew[okp] = ft[ok].detach(), gt[ok].detach()
            pending[okp] = False
            step[pending] *= 0.5
            if not pending.any():
                break
        failed = pending
        step = torch.where(failed, torch.zeros_like(step), step)
        s_new = d if unit else _col(step, d) * d
        y_new = gnew - gw
        mg_new = M(gnew, gact)
        sy = _dot(s_new, y_new)
        S.append(s_new)
        Y.append(y_new)
        MY.append(mg_new - mg)
        R.append(torch.where(sy > 0, 1.0 / sy.clamp_min(1e-300), torch.zeros_like(sy)))
        if len(S) > memory:
            S.pop(0), Y.pop(0), MY.pop(0), R.pop(0)
        decrease = fw - fnew
        xw, fw, gw, mg = (xt if unit else xw + s_new), fnew, gnew, mg_new     # xt = xw + d: the same sum
        info.n_iter[act] += 1
        gn = gw.flatten(1).norm(dim=1)
        done = failed | (decrease <= ftol * fw.abs().clamp_min(1.0)) | (gn <= gtol)
        if etol > 0:
            done |= decrement(gw, mg) <= etol
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
