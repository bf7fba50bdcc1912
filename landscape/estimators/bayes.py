r"""Exact Bayes posterior of the GMM sandbox: :math:`p(\theta, x \mid y)` in closed form.

With a whole-image GMM prior :math:`p(x) = \sum_k \pi_k N(x; \mu_k, \Sigma_k)`, a prior
:math:`p(\theta)` on a grid :math:`\{\theta_j\}` and :math:`y = H_\theta x + \sigma n`:

.. math::
    p(y \mid \theta, k) &= N(y;\ H_\theta\mu_k,\ S_{\theta k}),\quad S_{\theta k} = H_\theta\Sigma_k H_\theta^\top + \sigma^2 I, \\
    p(\theta_j, k \mid y) &\propto p(\theta_j)\,\pi_k\, p(y \mid \theta_j, k), \\
    x \mid y, \theta, k &\sim N(m_{\theta k}, C_{\theta k}),\quad
    m_{\theta k} = \mu_k + \Sigma_k H^\top S^{-1}(y - H\mu_k),\quad
    C_{\theta k} = \Sigma_k - \Sigma_k H^\top S^{-1} H \Sigma_k,

so :math:`p(x \mid y, \theta)` is a Gaussian mixture and :math:`p(x \mid y)` a mixture over
:math:`(\theta_j, k)`. From these: :math:`E[x \mid y] = \sum_{jk} w_{jk} m_{jk}` (the MMSE),
the per-pixel variance :math:`\sum_{jk} w_{jk}(\operatorname{diag} C_{jk} + m_{jk}^2) - E[x\mid y]^2`,
:math:`E[\theta \mid y]`, and the MMSE kernel :math:`E[h(\theta) \mid y]`. :math:`H_\theta` is the
problem's own operator (either boundary), applied to the columns of :math:`\Sigma_k^{1/2}`, so no
:math:`D \times D` operator matrix is formed. The marginal
:math:`-\log p(y \mid \theta) = -\log\sum_k \pi_k p(y\mid\theta,k)` equals ``marginal.marginal_nll``.

Tests (``tests/test_bayes.py``): self-normalised importance sampling from the prior on a tiny case
(within its Monte Carlo error), the one-component case against the Wiener filter, and Bayes
optimality over draws from the sandbox's own generative model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import InputError
from ..marginal import gmm_evidence
from ..posterior import BlindDeblur
from ..priors.gmm import GMMPrior


@dataclass
class ThetaSlice:
    """The exact posterior at one :math:`\\theta`: component log-evidences ``log_evidence`` ``(K,)``
    (:math:`\\log \\pi_k + \\log p(y \\mid \\theta, k)`), means ``(K, D)``, and either the variances
    ``(K, D)`` or full covariances ``(K, D, D)``."""

    log_evidence: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor | None = None
    covariances: torch.Tensor | None = None


class GMMPosterior:
    r"""Exact :math:`p(\theta, x \mid y)` for a ``GMMPrior`` on whole images and a grid of :math:`\theta`.

    Parameters
    ----------
    problem : BlindDeblur
        The observation, family, noise and boundary; the prior's shape must be its image shape.
    prior : GMMPrior
    theta : array ``(T, p)`` or ``(T,)``
        The grid (checked against the family's domain).
    theta_prior : array ``(T,)``, optional
        Prior probabilities of the grid points (normalised here); default uniform, a uniform prior
        on the family's range discretised on an even grid.

    Examples
    --------
    >>> post = GMMPosterior(problem, gmm, np.linspace(0, 3, 31))     # doctest: +SKIP
    >>> mmse = post.mmse()          # dict: x_mmse, x_std, theta_posterior, theta_mean, kernel_mmse
    """

    def __init__(self, problem: BlindDeblur, prior: GMMPrior, theta: Any, theta_prior: Any = None):
        if not isinstance(prior, GMMPrior):
            raise InputError("prior", "a GMMPrior on whole images", type(prior).__name__)
        if tuple(prior.shape) != tuple(problem.event_shape):
            raise InputError("prior", f"a GMM on images of shape {problem.event_shape}", tuple(prior.shape))
        self.problem, self.prior = problem, prior
        self.theta = problem.family.check(theta, dtype=problem.dtype, device=problem.device)
        T = self.theta.shape[0]
        if theta_prior is None:
            lp = torch.full((T,), -math.log(T), dtype=problem.dtype, device=problem.device)
        else:
            tp = torch.as_tensor(np.asarray(theta_prior, dtype=float), dtype=problem.dtype, device=problem.device)
            if tp.shape != (T,) or not torch.isfinite(tp).all() or (tp < 0).any() or tp.sum() <= 0:
                raise InputError("theta_prior", f"{T} non-negative prior probabilities, not all zero", tuple(tp.shape))
            lp = torch.log(tp / tp.sum())
        self.log_theta_prior = lp
        dt, dev = problem.dtype, problem.device
        self._w, self._mu, lam, U = (t.to(dtype=dt, device=dev) for t in
                                     (prior.weights, prior.means, prior.eigvals, prior.eigvecs))
        self._sqrt = U * lam.sqrt()[:, None, :]                         # A_k = U_k Lambda_k^1/2, (K, D, D)
        self._cache: dict[int, ThetaSlice] = {}

    # -- one theta ---------------------------------------------------------------------------
    def at(self, j: int, *, full: bool = False) -> ThetaSlice:
        """The exact posterior at grid point ``j``: component evidences, means and variances
        (``full=True``: full covariances ``(K, D, D)``, for sampling)."""
        if not full and j in self._cache:
            return self._cache[j]
        A = self._sqrt                                                  # (K, D, D): columns a_i
        ev = gmm_evidence(self.problem, self.problem.blur(self.theta[j:j + 1]), self._w, self._mu, A)
        HA, L, log_ev = ev["HA"], ev["chol"], ev["log_evidence"]
        a = torch.cholesky_solve(ev["residual"][..., None], L)[..., 0]    # S^-1 r, (K, M)
        SigHt = A @ HA                                                  # Sigma_k H^T = A_k (H A_k)^T, (K, D, M)
        means = self._mu + (SigHt @ a[..., None])[..., 0]
        Linv = torch.linalg.solve_triangular(L, SigHt.transpose(1, 2), upper=False)   # L^-1 H Sigma, (K, M, D)
        if full:
            cov = A @ A.transpose(1, 2) - Linv.transpose(1, 2) @ Linv
            return ThetaSlice(log_ev, means, torch.diagonal(cov, dim1=-2, dim2=-1), 0.5 * (cov + cov.transpose(1, 2)))
        var = (A ** 2).sum(-1) - (Linv ** 2).sum(1)
        out = ThetaSlice(log_ev, means, var.clamp_min(0))
        self._cache[j] = out
        return out

    # -- the whole grid ------------------------------------------------------------------------
    def log_joint(self) -> torch.Tensor:
        r""":math:`\log p(\theta_j) + \log \pi_k + \log p(y \mid \theta_j, k)`, ``(T, K)``."""
        return torch.stack([self.at(j).log_evidence for j in range(self.theta.shape[0])]) + self.log_theta_prior[:, None]

    def marginal_nll(self) -> torch.Tensor:
        r""":math:`-\log p(y \mid \theta_j)` per grid point, ``(T,)`` (equals ``marginal.marginal_nll``)."""
        return -torch.logsumexp(self.log_joint() - self.log_theta_prior[:, None], dim=1)

    def theta_posterior(self) -> torch.Tensor:
        r""":math:`p(\theta_j \mid y)`, ``(T,)`` (sums to 1)."""
        return torch.softmax(torch.logsumexp(self.log_joint(), dim=1), dim=0)

    def mmse(self) -> dict[str, Any]:
        r"""The posterior summaries.

        Returns
        -------
        dict
            ``x_mmse`` :math:`E[x\mid y]` and ``x_std`` (per-pixel posterior standard deviation), both
            ``(H, W)``; ``theta_posterior`` ``(T,)``; ``theta_mean`` :math:`E[\theta\mid y]` ``(p,)``;
            ``kernel_mmse`` :math:`E[h(\theta)\mid y]` ``(k, k)``; ``x_given_theta`` :math:`E[x\mid y,\theta_j]`
            ``(T, H, W)``; ``log_joint`` ``(T, K)``; ``marginal_nll`` ``(T,)``.
        """
        lj = self.log_joint()
        w = torch.softmax(lj.reshape(-1), 0).reshape(lj.shape)          # p(theta_j, k | y)
        T = lj.shape[0]
        means = torch.stack([self.at(j).means for j in range(T)])       # (T, K, D)
        var = torch.stack([self.at(j).variances for j in range(T)])
        ex = (w[..., None] * means).sum((0, 1))
        ex2 = (w[..., None] * (var + means ** 2)).sum((0, 1))
        wt = w.sum(1)
        wk = torch.softmax(lj, dim=1)                                   # p(k | y, theta_j)
        x_theta = (wk[..., None] * means).sum(1)
        kernels = self.problem.family(self.theta)
        shape = self.problem.event_shape
        return {"x_mmse": ex.reshape(shape), "x_std": (ex2 - ex ** 2).clamp_min(0).sqrt().reshape(shape),
                "theta_posterior": wt, "theta_mean": (wt[:, None] * self.theta).sum(0),
                "kernel_mmse": (wt[:, None, None] * kernels).sum(0), "x_given_theta": x_theta.reshape(T, *shape),
                "log_joint": lj, "marginal_nll": -torch.logsumexp(lj - self.log_theta_prior[:, None], dim=1)}

    def sample(self, n: int, rng: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Exact draws from :math:`p(\theta, x \mid y)`: grid indices ``(n,)`` and images ``(n, H, W)``."""
        if not (isinstance(n, int) and n >= 1):
            raise InputError("n", "a number of draws >= 1", n)
        g = np.random.default_rng(rng)
        lj = self.log_joint()
        w = torch.softmax(lj.reshape(-1), 0).double().cpu().numpy()
        pick = g.choice(w.size, size=n, p=w / w.sum())
        K = lj.shape[1]
        out = torch.empty(n, *self.problem.event_shape, dtype=self.problem.dtype, device=self.problem.device)
        D = self._mu.shape[1]
        e = torch.as_tensor(g.standard_normal((n, D)), dtype=out.dtype, device=out.device)
        for j in np.unique(pick // K):
            sl = self.at(int(j), full=True)
            # C = V diag(l) V^T (PSD up to round-off): x = m + V sqrt(l) e
            lam, V = torch.linalg.eigh(sl.covariances)
            root = V * lam.clamp_min(0).sqrt()[:, None, :]
            for k in np.unique(pick[pick // K == j] % K):
                i = torch.as_tensor(np.flatnonzero(pick == j * K + k), device=out.device)
                out[i] = (sl.means[k] + e[i] @ root[k].T).reshape(-1, *self.problem.event_shape)
        return torch.as_tensor(pick // K, device="cpu"), out
