r"""Is a point a local minimiser of the joint energy? Polish, Newton steps and a second-order certificate.

* ``polish(post, theta, x)`` — a local joint L-BFGS-B descent to a stationary point, inside a box
  around the candidate (a point that leaves the box was not near a minimiser).
* ``newton_refine`` — Newton steps with the assembled Hessian, for priors that have one.
* ``certificate(post, theta, x)`` — "not stationary" when :math:`\|\nabla E\|` is above ``gtol`` (a
  point with a gradient is neither a minimiser nor a saddle; the curvature is still reported), else
  "local minimiser" when the smallest eigenvalue minus its residual is positive, "saddle" when it plus
  its residual is negative, else "undecided"; at the lower boundary of the family's domain (:math:`\theta = 0`, the
  Dirac) the constrained version: the :math:`x`-Hessian positive definite when :math:`\partial_\theta E > 0`
  there, or when the kernel is exactly the Dirac for small :math:`\theta` (``kernel_flat_at``: then
  :math:`E` does not depend on :math:`\theta` near the boundary; a non-strict minimiser, flat in
  :math:`\theta`); else, as inside, the joint Hessian.
* ``local_minimiser`` (polish, then Newton where the prior assembles its Hessian) and ``certify``
  (that, then the certificate): the pipeline the studies run on their candidate minimisers.

Checks: ``tests/test_hessian.py`` (certificates of exact minima and saddles, Newton against the GMM
mode), ``tests/test_local_recovery.py`` (the certificate's eigenvalue against the Gauss–Newton matrix).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._checks import InputError
from .eigen import NotConverged, spectrum
from .hessian import _finite, assembles, joint_gradient, joint_hessian_matrix, joint_hvp
from .io import host
from .posterior import Posterior
from .priors.base import APPROXIMATE


def polish(post: Posterior, theta: Any, x: torch.Tensor, *, box: float = 0.25, gtol: float = 1e-4,
           max_iter: int = 3000) -> dict[str, Any]:
    r"""Descend :math:`E(\theta, x)` jointly from a candidate minimiser to a stationary point, locally.

    L-BFGS-B (scipy) on the flattened pair with :math:`\theta` boxed to the family's domain intersected
    with :math:`[\theta_0 - b, \theta_0 + b]` (``b = box`` times the domain's width, per parameter):
    a point that converges strictly inside that artificial box is a stationary point of the
    unconstrained problem (then :func:`certificate` decides its type); one that ends on the box's edge
    left the candidate's neighbourhood (``left_box``: the candidate was not near a minimiser).

    Requires a prior with an energy (autograd through :math:`E`).

    Returns
    -------
    dict
        ``theta`` ``(p,)``, ``x``, ``energy``, ``grad_norm`` (projected gradient, sup norm), ``iterations``,
        ``converged``, ``left_box``, ``message``.
    """
    import scipy.optimize as so
    if post.prior.capabilities.get("energy") == APPROXIMATE:
        raise InputError("prior", "a prior with an energy (polish descends E itself)", post.prior.name)
    fam = post.problem.family
    th0 = host(post.theta(theta)[0].double())
    x0 = x.detach().double()
    _finite("x", x0)
    p, shape = th0.size, tuple(x0.shape)
    width = np.asarray(fam.upper, dtype=float) - np.asarray(fam.lower, dtype=float)
    width = np.where(np.isfinite(width), width, 1.0)
    lo = np.maximum(fam.lower, th0 - box * width)
    hi = np.minimum(fam.upper, th0 + box * width)
    dt, dev = post.problem.dtype, post.problem.device

    def fg(z: np.ndarray):
        t = torch.tensor(z[:p], dtype=dt, device=dev, requires_grad=True)
        xx = torch.tensor(z[p:].reshape(shape), dtype=dt, device=dev, requires_grad=True)
        with torch.enable_grad():
            e = post.energy(t[None], xx[None])[0]
            gt, gx = torch.autograd.grad(e, (t, xx))
        g = np.concatenate([host(gt.double()), host(gx.double()).ravel()])
        if not (np.isfinite(e.item()) and np.isfinite(g).all()):
            raise InputError("x", "a point where the energy and its gradient are finite", "NaN or inf during polish")
        return e.item(), g

    r = so.minimize(fg, np.concatenate([th0, host(x0).ravel()]), jac=True, method="L-BFGS-B",
                    bounds=list(zip(lo, hi)) + [(None, None)] * x0.numel(),
                    options={"maxiter": max_iter, "gtol": gtol, "ftol": 0.0, "maxcor": 20})
    th = r.x[:p]
    e, g = fg(r.x)
    proj = g.copy()                     # the projected gradient: components pushing out of the box vanish
    proj[:p] = np.where((th <= lo + 1e-12) & (g[:p] > 0) | (th >= hi - 1e-12) & (g[:p] < 0), 0.0, g[:p])
    inner_edge = ((th <= lo + 1e-9) & (lo > np.asarray(fam.lower))) | ((th >= hi - 1e-9) & (hi < np.asarray(fam.upper)))
    return {"theta": th, "x": torch.as_tensor(r.x[p:].reshape(shape), dtype=dt, device=dev), "energy": e,
            "grad_norm": float(np.abs(proj).max()), "iterations": int(r.nit),
            "converged": bool(np.abs(proj).max() <= gtol), "left_box": bool(inner_edge.any()),
            "message": str(r.message)}


#: relative step (of the domain's width) at which :func:`kernel_flat_at` compares the kernel
FLAT_STEP = 1e-3


def kernel_flat_at(family: Any, theta: torch.Tensor) -> bool:
    r"""Is :math:`h(\theta)` unchanged when every parameter at its lower bound moves up by
    ``FLAT_STEP`` of the domain's width? Pixel-integrated families are exactly the Dirac below a
    width of a fraction of a pixel, so :math:`E(\theta, x) = E(0, x)` there: a strict local minimiser
    in :math:`x` at :math:`\theta = 0` is then a (non-strict, flat in :math:`\theta`) local minimiser."""
    th = theta.detach().double().reshape(-1)
    lo, hi = (torch.tensor(b, dtype=torch.float64, device=th.device) for b in (family.lower, family.upper))
    width = torch.where(torch.isfinite(hi - lo), hi - lo, torch.ones_like(lo))
    at = th <= lo + 1e-12
    if not bool(at.any()):
        return False
    up = th + torch.where(at, FLAT_STEP * width, torch.zeros_like(th))
    h0, h1 = family(torch.stack([th, up]))
    return bool((h0 - h1).abs().max() <= 1e-12)


def _constrained(post: Posterior, th: torch.Tensor, gt: torch.Tensor, gtol: float) -> tuple[bool, bool, bool]:
    r"""``(at_lower, constrained, flat)``: on the lower boundary of the family's domain, is the problem the
    constrained one in :math:`x` alone (the :math:`\theta`-derivative points into the domain, or the kernel
    does not change for small :math:`\theta`, ``kernel_flat_at``)?"""
    fam = post.problem.family
    lo = torch.tensor(fam.lower, dtype=th.dtype, device=th.device)
    at = th <= lo + 1e-12
    at_lower = bool(at.any())
    inward_strict = at_lower and bool((gt[at] > gtol).all())
    flat = at_lower and kernel_flat_at(fam, th)
    return at_lower, inward_strict or flat, flat


def _hessian_operator(post: Posterior, th: torch.Tensor, x: torch.Tensor, constrained: bool):
    """The joint Hessian (or its :math:`x` block when ``constrained``) as a ``LinearOperator``: the
    assembled matrix when the prior has one and the size allows (:data:`landscape.hessian.ASSEMBLED_MAX`), else products."""
    from scipy.sparse.linalg import LinearOperator, aslinearoperator
    p, n = th.numel(), x.numel()
    if assembles(post.prior, p + n):
        M = joint_hessian_matrix(post, th[None], x)
        return aslinearoperator(np.ascontiguousarray(M[p:, p:] if constrained else M))
    full = joint_hvp(post, th[None], x)
    if not constrained:
        return full
    return LinearOperator((n, n), matvec=lambda v: full.matvec(np.concatenate([np.zeros(p), np.ravel(v)]))[p:],
                          dtype=np.float64)


def newton_refine(post: Posterior, theta: Any, x: torch.Tensor, *, gtol: float = 1e-3, steps: int = 10
                  ) -> dict[str, Any]:
    r"""Newton steps on :math:`E` from a polished point, with the assembled Hessian
    (``joint_hessian_matrix``): :math:`z \leftarrow z - t\,\nabla^2 E(z)^{-1} \nabla E(z)`, :math:`t` halved
    until :math:`E` falls; in :math:`x` alone (``theta`` fixed) on the lower boundary where the problem is
    the constrained one (the rule of :func:`certificate`), else in :math:`(\theta, x)`, stopping at a step
    that would leave the domain. Stops when the gradient norm is below ``gtol`` (that of the certificate,
    so the verdict does not fail on a stationarity a first-order polish could not reach), after ``steps``,
    or where the Hessian is not positive definite (Cholesky fails: Newton is then no descent method, and
    the point is returned as it came).

    Returns
    -------
    dict
        ``theta`` ``(p,)``, ``x``, ``energy``, ``grad_norm``, ``steps`` (Newton steps taken).
    """
    import scipy.linalg as sl
    th = post.theta(theta)[0].detach().double().clone()
    x = x.detach().double().clone()
    p = th.numel()
    lower = np.asarray(post.problem.family.lower, dtype=float)

    def state(t, z):
        gt, gx = joint_gradient(post, t[None], z)
        _, constrained, _ = _constrained(post, t, gt, gtol)
        g = gx.reshape(-1) if constrained else torch.cat([gt.reshape(-1), gx.reshape(-1)])
        return float(post.energy(t[None], z[None])[0]), host(g.double()), constrained

    e, g, constrained = state(th, x)
    done = 0
    while done < steps and np.linalg.norm(g) > gtol:
        M = joint_hessian_matrix(post, th[None], x)
        M = M[p:, p:] if constrained else M
        try:
            step = sl.cho_solve(sl.cho_factor(M), g)
        except np.linalg.LinAlgError:
            break
        t_len, accepted = 1.0, False
        while t_len > 1e-6:
            dt = np.zeros(p) if constrained else t_len * step[:p]
            tn = th - torch.as_tensor(dt, device=th.device)
            if np.any(host(tn) < lower):
                t_len *= 0.5
                continue
            xn = x - t_len * torch.as_tensor(step[-x.numel():].reshape(x.shape), device=x.device)
            en, gn, cn = state(tn, xn)
            if en <= e:
                th, x, e, g, constrained, accepted = tn, xn, en, gn, cn, True
                break
            t_len *= 0.5
        if not accepted:
            break
        done += 1
    return {"theta": host(th), "x": x, "energy": e, "grad_norm": float(np.linalg.norm(g)), "steps": done}


def certificate(post: Posterior, theta: Any, x: torch.Tensor, *, k: int = 3, gtol: float = 1e-3,
                method: str = "auto", maxiter: int | None = None) -> dict[str, Any]:
    r"""Is :math:`(\theta, x)` a local minimiser of :math:`E`? (module docstring for the rules)

    ``k``, ``method``, ``maxiter`` go to :func:`spectrum`; an eigensolver that stops short gives an
    ``undecided`` verdict with the values it reached, not an exception. A prior that assembles its
    Hessian (``hessian_matrix``) is decomposed densely from that matrix (no products) up to
    :data:`landscape.hessian.ASSEMBLED_MAX` unknowns.

    Returns
    -------
    dict
        ``verdict`` (``"certified local minimiser"``, ``"saddle"``, ``"not stationary (...)"`` when
        :math:`\|\nabla E\| >` ``gtol``, or ``"undecided"``; ``"undecided (... did not converge: ...)"``
        when the eigensolver stopped short), ``grad_norm``,
        ``eigenvalues`` and ``residuals`` of the operator analysed (the joint Hessian, or the
        :math:`x`-Hessian at the domain's lower boundary), ``boundary`` (bool), ``dtheta``, ``method``.
    """
    th = post.theta(theta)[0]
    gt, gx = joint_gradient(post, th[None], x)
    at_lower, constrained, flat = _constrained(post, th, gt, gtol)
    # constrained, first order in theta: the derivative points into the domain, or the kernel does not
    # change at all for small theta (E is then constant in theta there); the x-Hessian must be positive
    # definite (with a merely vanishing theta-derivative the joint Hessian decides)
    op = _hessian_operator(post, th.detach(), x.detach().to(post.problem.dtype), constrained)
    gnorm = float(gx.norm()) if constrained else float(torch.cat([gt.reshape(-1), gx.reshape(-1)]).norm())
    note = ""
    try:
        sp = spectrum(op, k=min(k, op.shape[0]), method=method, maxiter=maxiter)
    except NotConverged as exc:
        # an unconverged smallest Ritz value need not be the smallest eigenvalue: nothing is certified
        order = np.argsort(exc.eigenvalues)
        sp = {"eigenvalues": exc.eigenvalues[order], "residuals": exc.residuals[order], "products": exc.products,
              "method": method}
        note = f" ({exc.solver} did not converge: {exc.detail})"
    lam, r = (sp["eigenvalues"][0], sp["residuals"][0]) if len(sp["eigenvalues"]) else (np.nan, np.nan)
    if gnorm > gtol:
        verdict = f"not stationary (|grad E| = {gnorm:.3g} > gtol {gtol:.3g})"
    elif note:
        verdict = "undecided" + note
    elif lam - r > 0:
        verdict = "certified local minimiser"
    elif lam + r < 0:
        verdict = "saddle"
    else:
        verdict = "undecided"
    return {"verdict": verdict, "grad_norm": gnorm, "boundary": at_lower, "flat_in_theta": flat,
            "dtheta": host(gt), "method": sp.get("method", method),
            "eigenvalues": sp["eigenvalues"], "residuals": sp["residuals"], "products": sp["products"]}


def local_minimiser(post: Posterior, theta: Any, x: torch.Tensor, *, box: float = 0.25, gtol: float = 1e-4,
                    newton_gtol: float = 1e-6) -> dict[str, Any]:
    r"""The stationary point of :math:`E` near a candidate: :func:`polish`, then, where the prior assembles
    its Hessian and the point stayed in its box, :func:`newton_refine` down to ``newton_gtol`` (far below
    a certificate's ``gtol``, so that a verdict never fails on a stationarity the first-order polish could
    not reach).

    Returns
    -------
    dict
        :func:`polish`'s keys, its ``theta``, ``x``, ``energy`` (and ``grad_norm``) replaced by Newton's
        where it ran, and ``newton_steps`` (NaN where Newton did not run).
    """
    pol = polish(post, theta, x, box=box, gtol=gtol)
    pol["newton_steps"] = float("nan")
    if not pol["left_box"] and assembles(post.prior, pol["x"].numel() + pol["theta"].size):
        nr = newton_refine(post, pol["theta"][None], pol["x"], gtol=newton_gtol)
        pol.update(theta=nr["theta"], x=nr["x"], energy=nr["energy"], newton_steps=nr["steps"])
    return pol


def certify(post: Posterior, theta: Any, x: torch.Tensor, *, k: int = 3, box: float = 0.25,
            polish_gtol: float = 1e-4, newton_gtol: float = 1e-6, gtol: float = 1e-2,
            maxiter: int | None = None) -> dict[str, Any]:
    r"""Is there a local minimiser of :math:`E` at the candidate :math:`(\theta, x)`? :func:`local_minimiser`
    (polish + Newton), then, unless the polish left its box (``"not a minimiser (left its box)"``),
    :func:`certificate` with ``k``, ``gtol`` and ``maxiter`` at the polished point. Requires a prior with
    an energy (the polish descends :math:`E`).

    Returns
    -------
    dict
        ``verdict`` (the certificate's, suffixed ``" (boundary)"`` or ``" (boundary, flat in θ)"`` on the
        domain's lower boundary), ``theta`` ``(p,)``, ``x``, ``energy``, ``grad_norm``, ``eig_min`` and
        ``eig_residual`` (NaN when no certificate ran), ``products``, ``newton_steps``, ``left_box``.
    """
    pol = local_minimiser(post, theta, x, box=box, gtol=polish_gtol, newton_gtol=newton_gtol)
    out = {"theta": pol["theta"], "x": pol["x"], "energy": pol["energy"], "newton_steps": pol["newton_steps"],
           "left_box": pol["left_box"], "grad_norm": pol["grad_norm"], "eig_min": np.nan, "eig_residual": np.nan,
           "products": np.nan}
    if pol["left_box"]:
        return {**out, "verdict": "not a minimiser (left its box)"}
    ce = certificate(post, pol["theta"][None], pol["x"], k=k, gtol=gtol, maxiter=maxiter)
    suffix = " (boundary, flat in θ)" if ce["flat_in_theta"] else " (boundary)" if ce["boundary"] else ""
    return {**out, "verdict": ce["verdict"] + suffix, "grad_norm": ce["grad_norm"], "eig_min": ce["eigenvalues"][0],
            "eig_residual": ce["residuals"][0], "products": ce["products"]}
