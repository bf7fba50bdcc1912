r"""Symmetric eigensolvers for operators given by their products (``scipy.sparse.linalg.LinearOperator``).

* ``spectrum(op, k)`` — the ``k`` smallest eigenvalues with their residual norms
  :math:`\|Av - \lambda v\|` (error bounds for a symmetric operator): dense (``eigvalsh`` of the matrix
  built from ``d`` products, for small ``d``), Lanczos (``scipy.sparse.linalg.eigsh``) or LOBPCG.
* ``near_zero_count(op, thresholds)`` — how many eigenvalues have :math:`|\lambda| \le t\,\lambda_{\max}`:
  Lanczos (full reorthogonalisation) stopped as soon as the Ritz intervals
  :math:`[\theta_i - \rho_i, \theta_i + \rho_i]` put every eigenvalue near the threshold on one side of it.
* ``largest_eigenvalue(op)``, ``dense_matrix(op)``, ``columns(op)``.

Nothing here knows about images or priors: the operators come from :mod:`landscape.hessian`.
Checks (``tests/test_hessian.py``): Lanczos against the dense spectrum to 1e-6 relative.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import InputError


def largest_eigenvalue(op) -> float:
    """The largest eigenvalue of a symmetric operator, to 1e-3 relative (``eigsh``, seeded start vector):
    a Lipschitz constant for a descent's step."""
    from scipy.sparse.linalg import eigsh
    return float(eigsh(op, k=1, which="LA", tol=1e-3, return_eigenvectors=False,
                       v0=np.random.default_rng(0).standard_normal(op.shape[0]))[0])


#: columns per batched application when a dense matrix is built from products. On this 2-core CPU (64
#: columns of the learned priors' Hessians, 2 threads): 8 per call is 1.4x (gs) and 2.3x (tweedie) faster
#: than one at a time at 32x32, even (gs) or 17 % slower (tweedie) at 64x64; 64 per call is 3x slower
#: at 64x64 (memory). A GPU wants larger batches.
BATCH = 8


def counting(op) -> tuple[Any, dict[str, int]]:
    """``op`` as a ``LinearOperator`` that counts its products: ``(operator, counter)``, the count in
    ``counter["products"]`` (a ``matmat`` of ``m`` columns counts ``m``)."""
    from scipy.sparse.linalg import LinearOperator
    counter = {"products": 0}

    def mv(v):
        counter["products"] += 1
        return op.matvec(v)

    def mm(V):
        counter["products"] += V.shape[1]
        return op.matmat(V)
    return LinearOperator(op.shape, matvec=mv, matmat=mm, dtype=np.float64), counter


def columns(op, batch: int = BATCH) -> np.ndarray:
    """The matrix of a ``LinearOperator``: its own when it carries one (``aslinearoperator(M)``), else
    from ``d`` products, ``batch`` columns per ``matmat`` (one batched call where the operator batches)."""
    if isinstance(getattr(op, "A", None), np.ndarray):
        return op.A
    eye = np.eye(op.shape[0])
    return np.concatenate([op.matmat(eye[:, i:i + batch]) for i in range(0, eye.shape[0], batch)], axis=1)


def dense_matrix(op) -> np.ndarray:
    """The matrix of a ``LinearOperator`` from ``d`` products (symmetrised)."""
    A = columns(op)
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
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh
    d = op.shape[0]
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= d):
        raise InputError("k", f"a number of eigenvalues between 1 and the dimension {d}", k)
    counted, count = counting(op)
    if method not in ("auto", "dense", "lanczos", "lobpcg"):
        raise InputError("method", "auto, dense, lanczos or lobpcg", method)
    has_matrix = isinstance(getattr(op, "A", None), np.ndarray)          # aslinearoperator(M): no products
    if method == "dense" or (method == "auto" and (d <= dense_max or has_matrix)):
        raw = columns(op if has_matrix else counted)
        lam, V = np.linalg.eigh(0.5 * (raw + raw.T))
        lam, V = lam[:k], V[:, :k]
        # residuals against the operator itself (its matrix: no further products)
        res = np.linalg.norm(raw @ V - V * lam, axis=0)
        return {"eigenvalues": lam, "residuals": res, "products": count["products"],
                "method": "dense" if count["products"] else "assembled"}
    elif method in ("auto", "lobpcg"):
        from scipy.sparse.linalg import lobpcg
        X = np.random.default_rng(0).standard_normal((d, min(d, k + 4)))
        lam, V = lobpcg(counted, X, largest=False, tol=max(tol, 1e-7), maxiter=maxiter or 200)
        order = np.argsort(lam)[:k]
        lam, V = lam[order], V[:, order]
        res = _residuals(op, lam, V)
        if not np.all(res <= max(1e3 * tol, 1e-6) * max(1.0, np.abs(lam).max())):
            raise NotConverged("LOBPCG", lam, res, count["products"], f"residual {res.max():.3g} after {count['products']} products")
        return {"eigenvalues": lam, "residuals": res, "products": count["products"], "method": "lobpcg"}
    else:
        try:
            lam, V = eigsh(counted, k=k, which="SA", tol=tol, maxiter=maxiter or 20 * d,
                           v0=np.random.default_rng(0).standard_normal(d))
        except ArpackNoConvergence as exc:
            res = _residuals(op, exc.eigenvalues, exc.eigenvectors)
            raise NotConverged("Lanczos, eigsh 'SA'", np.asarray(exc.eigenvalues), res, count["products"],
                               f"{len(exc.eigenvalues)} of {k} eigenvalues, last residual "
                               f"{res[-1] if len(res) else float('nan'):.3g}") from None
        order = np.argsort(lam)
        lam, V = lam[order], V[:, order]
        return {"eigenvalues": lam, "residuals": _residuals(op, lam, V), "products": count["products"], "method": "lanczos"}


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
