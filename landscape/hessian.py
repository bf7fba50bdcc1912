r"""Second-order views: Hessian-vector products, spectra, and certificates of local minima.

* ``prior_hvp(prior, x)`` — :math:`v \mapsto \nabla^2 q(x)\,v`: double backward through an explicit
  energy (exact, GMM, gradient-step potential), or for a Tweedie prior the Jacobian-vector product
  of its score, :math:`\nabla^2 q\,v = (v - J_D v)/s^2`. A learned denoiser's Jacobian need not be
  symmetric: ``symmetric=True`` uses :math:`\tfrac12(J + J^\top)` (a JVP and a VJP), and
  ``priors.jacobian_asymmetry`` reports :math:`\|J - J^\top\|/\|J\|` beside every spectrum.
* ``joint_hvp(post, theta, x)`` — the Hessian of :math:`E(\theta, x)` in :math:`(\theta, x)` together,
  as a ``scipy.sparse.linalg.LinearOperator`` on the flattened pair (autograd; any prior with an energy,
  or a score prior's HVP in the :math:`x` block).
* ``spectrum(op, k)`` — the ``k`` smallest eigenvalues with their residual norms
  :math:`\|Av - \lambda v\|` (error bounds for a symmetric operator): dense (``eigvalsh`` of the matrix
  built from ``d`` products, for small ``d``) or Lanczos (``scipy.sparse.linalg.eigsh``).
* ``near_zero_count(op, thresholds)`` — how many eigenvalues have :math:`|\lambda| \le t\,\lambda_{\max}`:
  Lanczos (full reorthogonalisation) stopped as soon as the Ritz intervals
  :math:`[\theta_i - \rho_i, \theta_i + \rho_i]` put every eigenvalue near the threshold on one side of it.
* ``certificate(post, theta, x)`` — "not stationary" when :math:`\|\nabla E\|` is above ``gtol`` (a
  point with a gradient is neither a minimiser nor a saddle; the curvature is still reported), else
  "local minimiser" when the smallest eigenvalue minus its residual is positive, "saddle" when it plus
  its residual is negative, else "undecided"; at the lower boundary of the family's domain (:math:`\theta = 0`, the
  Dirac) the constrained version: the :math:`x`-Hessian positive definite when :math:`\partial_\theta E > 0`
  there, or when the kernel is exactly the Dirac for small :math:`\theta` (``kernel_flat_at``: then
  :math:`E` does not depend on :math:`\theta` near the boundary; a non-strict minimiser, flat in
  :math:`\theta`); else, as inside, the joint Hessian.

Checks (``tests/test_hessian.py``): the GMM Hessian in closed form,
:math:`\nabla^2 q = \sum_k \gamma_k \Sigma_k^{-1} - \big(\sum_k \gamma_k g_k g_k^\top - \bar g \bar g^\top\big)`,
:math:`g_k = \Sigma_k^{-1}(x - \mu_k)`; the joint Hessian of a Gaussian-prior problem against
``torch.autograd.functional.hessian``; Lanczos against the dense spectrum to 1e-6 relative.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ._checks import InputError
from .posterior import Posterior
from .priors.base import APPROXIMATE, EXACT, Prior


def _finite(name: str, t: torch.Tensor) -> None:
    if not torch.isfinite(t).all():
        raise InputError(name, "a point where the energy and its gradient are finite", "NaN or inf")


def prior_hvp(prior: Prior, x: torch.Tensor, *, symmetric: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    r""":math:`v \mapsto \nabla^2 q(x)\,v` at one image ``x`` ``(H, W)``, for one ``v`` ``(H, W)`` or a batch
    ``(B, H, W)`` at once (the batch goes through the prior as ``B`` copies of ``x``: one batched double
    backward, or one batched JVP and VJP of the denoiser, instead of ``B`` calls).

    Parameters
    ----------
    prior : Prior
        An explicit energy (autograd twice), or a Tweedie prior (its ``denoiser`` and level ``s``).
    x : Tensor ``(H, W)``
    symmetric : bool
        Tweedie priors: the symmetric part :math:`(v - \tfrac12(J + J^\top)v)/s^2` (else :math:`(v - Jv)/s^2`).

    Returns
    -------
    callable ``v (H, W) or (B, H, W) -> same shape``
    """
    x = x.detach()
    _finite("x", x)
    batched = prior.hvp_operator(x, symmetric)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return batched(v[None])[0] if v.dim() == x.dim() else batched(v)
    return hvp


def prior_operator(prior: Prior, x: torch.Tensor):
    """The Hessian of q at ``x`` as a scipy ``LinearOperator`` (``hessian.prior_hvp``; ``matmat`` batched)."""
    from scipy.sparse.linalg import LinearOperator
    hv = prior_hvp(prior, x)

    def matmat(V: np.ndarray) -> np.ndarray:
        V = torch.as_tensor(np.asarray(V).reshape(x.numel(), -1).T.reshape(-1, *x.shape), dtype=torch.float64)
        return hv(V).reshape(V.shape[0], -1).numpy().T

    return LinearOperator((x.numel(),) * 2, dtype=np.float64, matmat=matmat,
                          matvec=lambda v: matmat(np.asarray(v).reshape(-1, 1))[:, 0])


def largest_eigenvalue(op) -> float:
    """The largest eigenvalue of a symmetric operator, to 1e-3 relative (``eigsh``, seeded start vector):
    a Lipschitz constant for a descent's step."""
    from scipy.sparse.linalg import eigsh
    return float(eigsh(op, k=1, which="LA", tol=1e-3, return_eigenvectors=False,
                       v0=np.random.default_rng(0).standard_normal(op.shape[0]))[0])


def joint_hvp(post: Posterior, theta: Any, x: torch.Tensor, *, prior: bool = True):
    r"""The Hessian of :math:`E(\theta, x)` in :math:`(\theta, x)` as a ``LinearOperator`` of size
    :math:`p + HW` (float64 products; the :math:`\theta` block first). ``matmat`` applies it to a block of
    vectors in one batched double backward (``B`` copies of the pair). ``prior=False``: the data and
    kernel terms alone."""
    from scipy.sparse.linalg import LinearOperator
    th = post.theta(theta)[0].detach()
    x = x.detach().to(post.problem.dtype)
    p, n = th.numel(), x.numel()
    score_prior = post.prior.capabilities.get("energy") == APPROXIMATE
    qh = prior_hvp(post.prior, x) if score_prior and prior else None

    def data_and_kernel(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return post.data_term(t, z) + post.kernel_term(t)

    def energy(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return data_and_kernel(t, z) + post.prior_term(z)

    f = energy if prior and not score_prior else data_and_kernel

    def matmat(W: np.ndarray) -> np.ndarray:
        W = torch.as_tensor(np.asarray(W).reshape(p + n, -1).T, dtype=x.dtype)     # (B, p + n)
        B = W.shape[0]
        wt, wx = W[:, :p].reshape(B, *th.shape), W[:, p:].reshape(B, *x.shape)
        t_ = th.expand(B, *th.shape).clone().requires_grad_(True)
        z_ = x.expand(B, *x.shape).clone().requires_grad_(True)
        with torch.enable_grad():                   # double backward: H w = d/de grad E(. + e w), per copy
            gt, gx = torch.autograd.grad(f(t_, z_).sum(), (t_, z_), create_graph=True)
            ht, hx = torch.autograd.grad((gt * wt).sum() + (gx * wx).sum(), (t_, z_), allow_unused=True)
        ht = torch.zeros_like(t_) if ht is None else ht
        hx = torch.zeros_like(z_) if hx is None else hx
        if qh is not None:
            hx = hx + post.prior_weight * qh(wx)
        return torch.cat([ht.reshape(B, -1), hx.reshape(B, -1)], 1).double().numpy().T

    def matvec(w: np.ndarray) -> np.ndarray:
        return matmat(np.asarray(w).reshape(-1, 1))[:, 0]

    return LinearOperator((p + n, p + n), matvec=matvec, rmatvec=matvec, matmat=matmat, dtype=np.float64)


def joint_gradient(post: Posterior, theta: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`(\partial_\theta E, \nabla_x E)` at one pair (the prior's gradient for a score prior)."""
    th = post.theta(theta)[0].detach().clone().requires_grad_(True)
    z = x.detach().to(post.problem.dtype).clone().requires_grad_(True)
    with torch.enable_grad():
        e = (post.data_term(th[None], z[None]) + post.kernel_term(th[None]))[0]
        gt, gx = torch.autograd.grad(e, (th, z))
    gx = gx + post.prior_weight * post.prior.grad(z.detach()[None])[0]
    _finite("energy gradient", torch.cat([gt.reshape(-1), gx.reshape(-1)]))
    return gt, gx


#: largest dimension p + HW for which a prior's assembled Hessian (``prior.hessian_matrix``) is used
#: (a dense float64 matrix of 8192^2 is 0.5 GB)
ASSEMBLED_MAX = 8192
#: columns per call for the data and kernel terms' Hessian (FFT convolutions; at 64x64 on this CPU 64 per
#: call builds the 4097^2 matrix in 3.4 s, 512 per call in 5.7 s)
DATA_BATCH = 64


def assembles(prior: Prior, dimension: int) -> bool:
    """Does ``prior`` assemble its Hessian (``hessian_matrix``) and does a dense matrix of ``dimension``
    unknowns fit (:data:`ASSEMBLED_MAX`)? Then certificates and Newton steps use the matrix."""
    return prior.capability("hessian") == EXACT and dimension <= ASSEMBLED_MAX


def joint_hessian_matrix(post: Posterior, theta: Any, x: torch.Tensor) -> np.ndarray:
    r"""The Hessian of :math:`E(\theta, x)` as a dense matrix ``(p + HW, p + HW)`` (:math:`\theta` first),
    for a prior that assembles its own (``prior.hessian_matrix``, e.g. the exact and patch GMMs):
    the data and kernel terms by batched double-backward products (``joint_hvp(..., prior=False)``: cheap
    FFT convolutions), plus
    ``prior_weight`` times the prior's matrix in the :math:`x` block. Equals ``dense_matrix(joint_hvp(...))``
    without a single product through the prior (``tests/test_hessian.py``)."""
    if post.prior.capability("hessian") != EXACT:
        raise InputError("prior", "a prior with hessian_matrix (exact GMM, patch GMM)", post.prior.name)
    x = x.detach().to(post.problem.dtype)
    _finite("x", x)
    p = post.theta(theta)[0].numel()
    H = _columns(joint_hvp(post, theta, x, prior=False), batch=DATA_BATCH)
    H[p:, p:] += post.prior_weight * post.prior.hessian_matrix(x[None])[0].double().numpy()
    _finite("Hessian", torch.as_tensor(H))
    return 0.5 * (H + H.T)


#: columns per batched application when a dense matrix is built from products. On this 2-core CPU (64
#: columns of the learned priors' Hessians, 2 threads): 8 per call is 1.4x (gs) and 2.3x (tweedie) faster
#: than one at a time at 32x32, even (gs) or 17 % slower (tweedie) at 64x64; 64 per call is 3x slower
#: at 64x64 (memory). A GPU wants larger batches.
BATCH = 8


def _columns(op, batch: int = BATCH) -> np.ndarray:
    """The matrix of a ``LinearOperator``: its own when it carries one (``aslinearoperator(M)``), else
    from ``d`` products, ``batch`` columns per ``matmat`` (one batched call where the operator batches)."""
    if isinstance(getattr(op, "A", None), np.ndarray):
        return op.A
    eye = np.eye(op.shape[0])
    return np.concatenate([op.matmat(eye[:, i:i + batch]) for i in range(0, eye.shape[0], batch)], axis=1)


def dense_matrix(op) -> np.ndarray:
    """The matrix of a ``LinearOperator`` from ``d`` products (symmetrised)."""
    A = _columns(op)
    return 0.5 * (A + A.T)


def _residuals(op, lam: np.ndarray, V: np.ndarray) -> np.ndarray:
    r""":math:`\|A v - \lambda v\|` of each eigenpair (one product each, not counted)."""
    return np.array([np.linalg.norm(op.matvec(v) - l * v) for l, v in zip(lam, V.T)])


class NotConverged(InputError):
    """The eigensolver stopped before its residuals met the tolerance. A subclass of
    :class:`InputError` (the command line reports it in one line, exit 2); ``eigenvalues``,
    ``residuals`` and ``products`` hold what it reached, so a caller can record an unconverged
    spectrum (a certificate is then ``undecided``) instead of losing it."""

    def __init__(self, solver: str, eigenvalues: np.ndarray, residuals: np.ndarray, products: int, got: str):
        super().__init__("eigensolver", f"convergence ({solver})", got)
        self.solver, self.detail = solver, got
        self.eigenvalues, self.residuals, self.products = eigenvalues, residuals, products


def spectrum(op, k: int = 6, *, method: str = "auto", dense_max: int = 1200, tol: float = 1e-10,
             maxiter: int | None = None) -> dict[str, np.ndarray]:
    r"""The ``k`` smallest eigenvalues of a symmetric operator, with residual norms.

    Parameters
    ----------
    op : LinearOperator ``(d, d)``
    k : int
        ``1 <= k <= d``.
    method : {"auto", "dense", "lanczos", "lobpcg"}
        ``auto``: dense when ``d <= dense_max`` or the operator carries its matrix (``op.A``, no
        products), else LOBPCG (a block method: it resolves repeated
        eigenvalues, which single-vector Lanczos (``eigsh``) can miss; stationary priors have them in pairs).
    tol, maxiter : Lanczos (``eigsh``) tolerance and iteration cap.

    Returns
    -------
    dict
        ``eigenvalues`` ``(k,)`` ascending, ``residuals`` ``(k,)`` (:math:`\|Av - \lambda v\|`),
        ``products`` (operator applications), ``method``.
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
    d = op.shape[0]
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= d):
        raise InputError("k", f"a number of eigenvalues between 1 and the dimension {d}", k)
    count = {"n": 0}

    def mv(v):
        count["n"] += 1
        return op.matvec(v)

    def mm(V):
        count["n"] += V.shape[1]
        return op.matmat(V)
    counted = LinearOperator(op.shape, matvec=mv, matmat=mm, dtype=np.float64)
    if method not in ("auto", "dense", "lanczos", "lobpcg"):
        raise InputError("method", "auto, dense, lanczos or lobpcg", method)
    has_matrix = isinstance(getattr(op, "A", None), np.ndarray)          # aslinearoperator(M): no products
    if method == "dense" or (method == "auto" and (d <= dense_max or has_matrix)):
        raw = _columns(op if has_matrix else counted)
        lam, V = np.linalg.eigh(0.5 * (raw + raw.T))
        lam, V = lam[:k], V[:, :k]
        # residuals against the operator itself (its matrix: no further products)
        res = np.linalg.norm(raw @ V - V * lam, axis=0)
        return {"eigenvalues": lam, "residuals": res, "products": count["n"],
                "method": "dense" if count["n"] else "assembled"}
    elif method in ("auto", "lobpcg"):
        from scipy.sparse.linalg import lobpcg
        X = np.random.default_rng(0).standard_normal((d, min(d, k + 4)))
        lam, V = lobpcg(counted, X, largest=False, tol=max(tol, 1e-7), maxiter=maxiter or 200)
        order = np.argsort(lam)[:k]
        lam, V = lam[order], V[:, order]
        res = _residuals(op, lam, V)
        if not np.all(res <= max(1e3 * tol, 1e-6) * max(1.0, np.abs(lam).max())):
            raise NotConverged("LOBPCG", lam, res, count["n"], f"residual {res.max():.3g} after {count['n']} products")
        return {"eigenvalues": lam, "residuals": res, "products": count["n"], "method": "lobpcg"}
    else:
        try:
            lam, V = eigsh(counted, k=k, which="SA", tol=tol, maxiter=maxiter or 20 * d,
                           v0=np.random.default_rng(0).standard_normal(d))
        except ArpackNoConvergence as exc:
            res = _residuals(op, exc.eigenvalues, exc.eigenvectors)
            raise NotConverged("Lanczos, eigsh 'SA'", np.asarray(exc.eigenvalues), res, count["n"],
                               f"{len(exc.eigenvalues)} of {k} eigenvalues, last residual "
                               f"{res[-1] if len(res) else float('nan'):.3g}") from None
        order = np.argsort(lam)
        lam, V = lam[order], V[:, order]
        return {"eigenvalues": lam, "residuals": _residuals(op, lam, V), "products": count["n"], "method": "lanczos"}


def _decide(theta: np.ndarray, rho: np.ndarray, ref: float, ref_bound: float, t: float) -> int | None:
    r"""The count of eigenvalues in :math:`[-t\lambda_{ref}, t\lambda_{ref}]` when the Ritz intervals
    :math:`[\theta_i - \rho_i, \theta_i + \rho_i]` (ascending) decide it, else ``None``: every interval up to
    the first one wholly above the threshold (the sentinel) must lie wholly inside or wholly below it,
    with the threshold itself known to within :math:`t\rho_{ref}` (:math:`\lambda_{ref}` is a Ritz value too)."""
    lo_t, hi_t = t * ref, t * (ref + ref_bound)
    count = 0
    for th, r in zip(theta, rho):
        if th - r > hi_t:
            return count
        if -lo_t <= th - r and th + r <= lo_t:
            count += 1
        elif not th + r < -hi_t:
            return None
    return None


#: :func:`near_zero_count` never stops before this many products (or the dimension): an isolated small
#: eigenvalue whose eigenvector the start vector barely meets took 30 products to appear (16x16, gs)
MIN_PRODUCTS = 100


def near_zero_count(op, thresholds: Any, *, maxiter: int | None = None, check_every: int = 10,
                    rng: Any = 0) -> dict[str, Any]:
    r"""How many eigenvalues of a symmetric operator satisfy :math:`|\lambda| \le t\,\lambda_{\max}`, for
    each ``t`` in ``thresholds``, by Lanczos with a stopping rule that asks only what the count needs.

    Lanczos with full reorthogonalisation builds an orthonormal basis :math:`V_m` of the Krylov space
    :math:`\mathcal K_m(A, v_0)` and the tridiagonal :math:`T_m = V_m^\top A V_m`; an eigenpair
    :math:`(\theta_i, s_i)` of :math:`T_m` gives a Ritz pair whose residual is
    :math:`\rho_i = \|A V_m s_i - \theta_i V_m s_i\| = \beta_{m+1} |s_{mi}|` (no extra product), and each
    interval :math:`[\theta_i - \rho_i, \theta_i + \rho_i]` holds an eigenvalue of :math:`A`. The largest
    Ritz value is :math:`\lambda_{\max}` (:math:`\theta_{\max} \le \lambda_{\max} \le \theta_{\max} + \rho_{\max}`).
    Every ``check_every`` products the count is read from the intervals, from the smallest up: each must
    lie wholly inside :math:`[-t\lambda_{\max}, t\lambda_{\max}]` or wholly below it, up to the first one
    wholly above it. The run stops when every threshold's count, once decided at :math:`m` products, is
    still the same at every check up to :math:`2m` and at least :data:`MIN_PRODUCTS` (the Krylov space
    doubled without meeting another eigenvalue near a threshold: an isolated small eigenvalue whose
    eigenvector the start vector barely meets can take a few dozen products to appear,
    ``tests/test_studies.py``).

    This asks each eigenvalue only for the side of the threshold it is on, not for full accuracy, and
    needs no separate :math:`\lambda_{\max}` run. As for any Krylov method, completeness rests on the start
    vector: an eigenvalue whose eigenvector the Krylov space has not yet met cannot be counted (for a
    random start this is the slow convergence of a tight cluster, which the doubling rule guards against;
    ``benchmarks/near_zero_count.py`` compares with the dense spectrum). A single start vector sees one
    copy of an eigenvalue repeated exactly until the Krylov space is exhausted (each breakdown restarts
    from a fresh direction, which meets the next copy): an operator with exact multiplicities (a
    stationary prior's Fourier pairs) wants the dense spectrum or a block method (``spectrum``).

    Parameters
    ----------
    op : LinearOperator ``(d, d)``
        Symmetric.
    thresholds : sequence of float
        Each in ``(0, 1)``.
    maxiter : int, optional
        Products at most (default ``d``: the Krylov space is then the whole space and the count exact).
    check_every : int
        Products between two reads of the count.
    rng : seed or ``numpy.random.Generator``
        The random start vector.

    Returns
    -------
    dict
        ``counts`` ``(len(thresholds),)``, ``lambda_max`` and its bound ``lambda_max_residual``, ``ritz`` and
        ``residuals`` (every Ritz value, ascending, with its :math:`\rho_i`), ``products``.

    Raises
    ------
    NotConverged
        When ``maxiter`` products do not decide every count (with the Ritz values and bounds reached).
    """
    t = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if t.size == 0 or not np.all((t > 0) & (t < 1)):
        raise InputError("thresholds", "numbers in (0, 1)", thresholds)
    d = op.shape[0]
    maxiter = d if maxiter is None else maxiter
    if not (isinstance(maxiter, (int, np.integer)) and 2 <= maxiter <= d):
        raise InputError("maxiter", f"an integer from 2 to the dimension {d}", maxiter)
    if not (isinstance(check_every, (int, np.integer)) and check_every >= 1):
        raise InputError("check_every", "a positive integer", check_every)
    gen = np.random.default_rng(rng)
    V = np.zeros((d, maxiter + 1))
    v = gen.standard_normal(d)
    V[:, 0] = v / np.linalg.norm(v)
    alpha, beta = np.zeros(maxiter), np.zeros(maxiter)
    previous, since = None, 0
    theta = rho = np.zeros(0)
    for j in range(maxiter):
        w = np.asarray(op.matvec(V[:, j]), dtype=float).ravel()
        if not np.all(np.isfinite(w)):
            raise InputError("op", "finite Hessian-vector products", f"NaN or inf at product {j + 1}")
        alpha[j] = V[:, j] @ w
        for _ in range(2):                                  # full reorthogonalisation, twice
            w -= V[:, :j + 1] @ (V[:, :j + 1].T @ w)
        beta[j] = np.linalg.norm(w)
        m = j + 1
        if beta[j] <= 1e-12 * max(np.abs(alpha[:m]).max(), 1e-300) and m < d:
            # an invariant subspace: continue from a fresh direction (T then splits, beta = 0)
            w = gen.standard_normal(d)
            for _ in range(2):
                w -= V[:, :m] @ (V[:, :m].T @ w)
            beta[j], V[:, m] = 0.0, w / np.linalg.norm(w)
        else:
            V[:, m] = w / max(beta[j], 1e-300)
        if m % check_every and m != maxiter:
            continue
        T = np.diag(alpha[:m]) + np.diag(beta[:m - 1], 1) + np.diag(beta[:m - 1], -1)
        theta, S = np.linalg.eigh(T)
        rho = beta[j] * np.abs(S[-1])
        top = int(np.argmax(np.abs(theta)))
        counts = [_decide(theta, rho, abs(theta[top]), rho[top], ti) for ti in t]
        decided = None not in counts
        if decided and counts != previous:
            since = m
        if decided and ((counts == previous and m >= max(2 * since, MIN_PRODUCTS)) or m == d):
            return {"counts": np.array(counts), "lambda_max": abs(float(theta[top])),
                    "lambda_max_residual": float(rho[top]), "ritz": theta, "residuals": rho, "products": m}
        previous = counts if decided else None
    raise NotConverged("Lanczos count", theta, rho, maxiter,
                       f"counts not decided after {maxiter} products (largest residual among the 20 smallest "
                       f"Ritz values {rho[:20].max() if rho.size else float('nan'):.3g})")


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
    th0 = post.theta(theta)[0].detach().double().numpy()
    x0 = x.detach().double()
    _finite("x", x0)
    p, shape = th0.size, tuple(x0.shape)
    width = np.asarray(fam.upper, dtype=float) - np.asarray(fam.lower, dtype=float)
    width = np.where(np.isfinite(width), width, 1.0)
    lo = np.maximum(fam.lower, th0 - box * width)
    hi = np.minimum(fam.upper, th0 + box * width)
    dt = post.problem.dtype

    def fg(z: np.ndarray):
        t = torch.tensor(z[:p], dtype=dt, requires_grad=True)
        xx = torch.tensor(z[p:].reshape(shape), dtype=dt, requires_grad=True)
        with torch.enable_grad():
            e = post.energy(t[None], xx[None])[0]
            gt, gx = torch.autograd.grad(e, (t, xx))
        g = np.concatenate([gt.double().numpy(), gx.double().numpy().ravel()])
        if not (np.isfinite(e.item()) and np.isfinite(g).all()):
            raise InputError("x", "a point where the energy and its gradient are finite", "NaN or inf during polish")
        return e.item(), g

    r = so.minimize(fg, np.concatenate([th0, x0.numpy().ravel()]), jac=True, method="L-BFGS-B",
                    bounds=list(zip(lo, hi)) + [(None, None)] * x0.numel(),
                    options={"maxiter": max_iter, "gtol": gtol, "ftol": 0.0, "maxcor": 20})
    th = r.x[:p]
    e, g = fg(r.x)
    proj = g.copy()                     # the projected gradient: components pushing out of the box vanish
    proj[:p] = np.where((th <= lo + 1e-12) & (g[:p] > 0) | (th >= hi - 1e-12) & (g[:p] < 0), 0.0, g[:p])
    inner_edge = ((th <= lo + 1e-9) & (lo > np.asarray(fam.lower))) | ((th >= hi - 1e-9) & (hi < np.asarray(fam.upper)))
    return {"theta": th, "x": torch.as_tensor(r.x[p:].reshape(shape), dtype=dt), "energy": e,
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
    lo, hi = torch.tensor(family.lower, dtype=torch.float64), torch.tensor(family.upper, dtype=torch.float64)
    th = theta.detach().double().reshape(-1)
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
    lo = torch.tensor(fam.lower, dtype=th.dtype)
    at = th <= lo + 1e-12
    at_lower = bool(at.any())
    inward_strict = at_lower and bool((gt[at] > gtol).all())
    flat = at_lower and kernel_flat_at(fam, th)
    return at_lower, inward_strict or flat, flat


def _hessian_operator(post: Posterior, th: torch.Tensor, x: torch.Tensor, constrained: bool):
    """The joint Hessian (or its :math:`x` block when ``constrained``) as a ``LinearOperator``: the
    assembled matrix when the prior has one and the size allows (:data:`ASSEMBLED_MAX`), else products."""
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
        return float(post.energy(t[None], z[None])[0]), g.double().numpy(), constrained

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
            tn = th - torch.as_tensor(dt)
            if np.any(tn.numpy() < lower):
                t_len *= 0.5
                continue
            xn = x - t_len * torch.as_tensor(step[-x.numel():].reshape(x.shape))
            en, gn, cn = state(tn, xn)
            if en <= e:
                th, x, e, g, constrained, accepted = tn, xn, en, gn, cn, True
                break
            t_len *= 0.5
        if not accepted:
            break
        done += 1
    return {"theta": th.numpy(), "x": x, "energy": e, "grad_norm": float(np.linalg.norm(g)), "steps": done}


def certificate(post: Posterior, theta: Any, x: torch.Tensor, *, k: int = 3, gtol: float = 1e-3,
                method: str = "auto", maxiter: int | None = None) -> dict[str, Any]:
    r"""Is :math:`(\theta, x)` a local minimiser of :math:`E`? (module docstring for the rules)

    ``k``, ``method``, ``maxiter`` go to :func:`spectrum`; an eigensolver that stops short gives an
    ``undecided`` verdict with the values it reached, not an exception. A prior that assembles its
    Hessian (``hessian_matrix``) is decomposed densely from that matrix (no products) up to
    :data:`ASSEMBLED_MAX` unknowns.

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
            "dtheta": gt.detach().numpy(), "method": sp.get("method", method),
            "eigenvalues": sp["eigenvalues"], "residuals": sp["residuals"], "products": sp["products"]}
