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
    (:math:`\\log \\pi_k + \\log p(y \\mid \\theta, k)`), means ``(K, D)`` and the per-pixel variances
    ``(K, D)``."""

    log_evidence: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor


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
    def at(self, j: int) -> ThetaSlice:
        """The exact posterior at grid point ``j``: component evidences, means and per-pixel variances (cached)."""
        if j in self._cache:
            return self._cache[j]
        ev = self._evidence(j)
        A, HA, L = self._sqrt, ev["HA"], ev["chol"]                     # A: (K, D, D), columns a_i
        a = torch.cholesky_solve(ev["residual"][..., None], L)[..., 0]    # S^-1 r, (K, M)
        SigHt = A @ HA                                                  # Sigma_k H^T = A_k (H A_k)^T, (K, D, M)
        means = self._mu + (SigHt @ a[..., None])[..., 0]
        Linv = torch.linalg.solve_triangular(L, SigHt.transpose(1, 2), upper=False)   # L^-1 H Sigma, (K, M, D)
        var = (A ** 2).sum(-1) - (Linv ** 2).sum(1)
        out = ThetaSlice(ev["log_evidence"], means, var.clamp_min(0))
        self._cache[j] = out
        return out

    def _evidence(self, j: int) -> dict[str, torch.Tensor]:
        return gmm_evidence(self.problem, self.problem.blur(self.theta[j:j + 1]), self._w, self._mu, self._sqrt)

    def conditional(self, j: int) -> "ConditionalDraws":
        r"""Exact draws of :math:`x \mid y, \theta_j` (a Gaussian mixture) by perturbation, with no
        :math:`D \times D` factorisation beyond the evidences' own Cholesky factors of :math:`S_k`: for
        :math:`x_0 = \mu_k + A_k e_1 \sim N(\mu_k, \Sigma_k)` and :math:`n_0 = \sigma e_2`,

        .. math:: x = x_0 + \Sigma_k H^\top S_k^{-1}(y - H x_0 - n_0)
                    = \mu_k + A_k\big(e_1 + (H A_k)^\top S_k^{-1}(r_k - H A_k e_1 - \sigma e_2)\big)

        is distributed as :math:`N(m_{\theta k}, C_{\theta k})` (Hoffman & Ribak 1991; "Matheron's rule"):
        :math:`x - m` is linear in :math:`(e_1, e_2)` with covariance
        :math:`\Sigma - \Sigma H^\top S^{-1} H \Sigma`."""
        ev = self._evidence(j)
        return ConditionalDraws(torch.softmax(ev["log_evidence"], 0), self._mu, self._sqrt, ev["HA"], ev["chol"],
                                ev["residual"], float(self.problem.noise))

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
        D, M = self._mu.shape[1], self.problem.y.numel()
        on = dict(dtype=out.dtype, device=out.device)
        e1, e2 = (torch.as_tensor(g.standard_normal((n, m)), **on) for m in (D, M))
        for j in np.unique(pick // K):
            i = np.flatnonzero(pick // K == j)
            ks = torch.as_tensor(pick[i] % K, device=out.device)
            it = torch.as_tensor(i, device=out.device)
            out[it] = self.conditional(int(j)).draw(ks, e1[it], e2[it]).reshape(-1, *self.problem.event_shape)
        return torch.as_tensor(pick // K, device="cpu"), out


@dataclass
class ConditionalDraws:
    r"""The parts of exact draws from :math:`x \mid y, \theta` (``GMMPosterior.conditional``): component
    probabilities ``weights`` ``(K,)``, prior means ``(K, D)``, square roots ``sqrt_cov`` :math:`A_k` ``(K, D, D)``,
    ``HA`` :math:`(H A_k)^\top` ``(K, D, M)``, ``chol`` of :math:`S_k` ``(K, M, M)``, residuals
    :math:`r_k = y - H\mu_k` ``(K, M)`` and the noise level."""

    weights: torch.Tensor
    means: torch.Tensor
    sqrt_cov: torch.Tensor
    HA: torch.Tensor
    chol: torch.Tensor
    residual: torch.Tensor
    noise: float

    def draw(self, components: torch.Tensor, e_prior: torch.Tensor, e_noise: torch.Tensor) -> torch.Tensor:
        r"""Draws ``(n, D)`` of components ``(n,)`` from standard normals ``e_prior`` ``(n, D)`` and ``e_noise``
        ``(n, M)``: :math:`\mu_k + A_k(e_1 + (HA_k)^\top S_k^{-1}(r_k - HA_k e_1 - \sigma e_2))`."""
        out = torch.empty_like(e_prior)
        for k in torch.unique(components).tolist():          # one component's factors at a time: no (n, D, M) copies
            i = components == k
            e1, HA = e_prior[i].T, self.HA[k]                           # (D, m), (D, M)
            u = self.residual[k][:, None] - HA.T @ e1 - self.noise * e_noise[i].T
            v = torch.cholesky_solve(u, self.chol[k])                   # S^-1 u, (M, m)
            out[i] = (self.means[k][:, None] + self.sqrt_cov[k] @ (e1 + HA @ v)).T
        return out
