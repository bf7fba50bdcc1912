r"""Exact answers over :math:`\theta` for exact priors.

* ``profile_closed_form``: :math:`E^*(\theta) = \min_x E(\theta, x)` for the stationary
  Gaussian prior and circular boundary. Per unitary Fourier coefficient,
  :math:`\min_X |\hat h X - Y|^2/2\sigma^2 + |X - M|^2/2P = |Y - \hat h M|^2 / 2(\sigma^2 + |\hat h|^2 P)`, so

  .. math::
      E^*(\theta) = \sum_\omega \frac{|Y - \hat h M|^2}{2(\sigma^2 + |\hat h|^2 P)}
      + \tfrac12 \sum_\omega \log 2\pi P + r(\theta),

  attained at :math:`X^* = M + P \bar{\hat h}(Y - \hat h M)/(\sigma^2 + |\hat h|^2 P)`.

* ``gaussian_posterior`` and ``gaussian_posterior_draws``: the posterior of :math:`x` given :math:`\theta` for
  that prior, per coefficient (mean :math:`X^*`, variance :math:`\sigma^2 P/(\sigma^2 + |\hat h|^2 P)`), and exact
  draws from it.

* ``marginal_nll``: :math:`-\log p(y \mid \theta)` (nats), with :math:`x` integrated out.
  Gaussian prior: :math:`y \mid \theta \sim N(H\mu, H C H^\top + \sigma^2 I)`, diagonal in
  Fourier:

  .. math::
      -\log p(y\mid\theta) = \sum_\omega \frac{|Y - \hat h M|^2}{2(|\hat h|^2 P + \sigma^2)}
      + \tfrac12 \sum_\omega \log 2\pi(|\hat h|^2 P + \sigma^2).

  GMM on whole images: :math:`p(y\mid\theta) = \sum_k \pi_k N(y; H\mu_k, H\Sigma_k H^\top + \sigma^2 I)`
  with dense :math:`H` (small images), any boundary.

The kernel term :math:`r(\theta)` is not included in ``marginal_nll`` (it is the likelihood of
:math:`\theta`); add ``posterior.kernel_term`` for MAP over :math:`\theta`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tqdm.auto import tqdm

from ._checks import InputError, torch_generator
from .posterior import BlindDeblur, Posterior
from .priors import GaussianPrior, GMMPrior

_LOG2PI = math.log(2 * math.pi)


def _gaussian_parts(problem: BlindDeblur, prior: GaussianPrior, theta: Any):
    r"""Per unitary Fourier coefficient (full grid) of the prior's components (the colour basis's for a
    colour prior): :math:`|R|^2 = |Y - \hat h M|^2`, :math:`|\hat h|^2`, :math:`P`, :math:`\hat h`, :math:`Y`,
    :math:`M`; colour arrays carry the component axis before ``(H, W)``, the kernel's a 1 there."""
    if problem.boundary != "circular":
        raise InputError("boundary", "'circular' for the Fourier-diagonal Gaussian closed forms", repr(problem.boundary))
    if tuple(prior.shape) != tuple(problem.event_shape):
        raise InputError("prior", f"a GaussianPrior on images of shape {problem.event_shape}", tuple(prior.shape))
    blur = problem.blur(theta)
    y = prior.rotate(problem.y)                                # A^T y: the components decouple (A orthonormal)
    Hk = torch.fft.fft2(torch.fft.irfft2(blur.otf, s=blur.image_shape))   # full-grid OTF
    P = prior.spectrum.to(dtype=y.dtype, device=y.device)
    Y = torch.fft.fft2(y, norm="ortho")
    M = torch.fft.fft2(torch.zeros_like(y) + prior.component_mean(y), norm="ortho")
    R = Y - Hk * M
    absH2 = Hk.real ** 2 + Hk.imag ** 2
    return R.real ** 2 + R.imag ** 2, absH2, P, Hk, Y, M


def _event_sum(t: torch.Tensor, problem: BlindDeblur) -> torch.Tensor:
    return t.sum(dim=tuple(range(-problem.event_ndim, 0)))


def profile_closed_form(post: Posterior, theta: Any) -> torch.Tensor:
    r""":math:`E^*(\theta) = \min_x E(\theta, x)` for a ``GaussianPrior`` posterior (circular boundary).

    Parameters
    ----------
    post : Posterior
        With a ``GaussianPrior`` and a circular-boundary problem.
    theta : array ``(B, p)`` or ``(B,)``

    Returns
    -------
    Tensor ``(B,)``
        Profile energies in nats (module docstring for the formula).
    """
    if not isinstance(post.prior, GaussianPrior):
        raise InputError("prior", "a GaussianPrior for the closed-form profile", type(post.prior).__name__)
    lam = post.prior_weight
    R2, absH2, P, *_ = _gaussian_parts(post.problem, post.prior, theta)
    s2 = post.problem.noise ** 2
    Pl = P / lam                                             # lambda q  <=>  spectrum P / lambda
    quad = _event_sum(R2 / (2 * (s2 + absH2 * Pl)), post.problem)
    return quad + lam * post.prior.log_normaliser(quad.dtype) + post.kernel_term(theta)


def argmin_closed_form(post: Posterior, theta: Any) -> torch.Tensor:
    r""":math:`\hat x(\theta) = \arg\min_x E(\theta, x)` for a ``GaussianPrior`` posterior (circular boundary):
    the Wiener filter :math:`X^* = M + P\bar{\hat h}(Y - \hat h M)/(\sigma^2 + |\hat h|^2 P)`.

    Parameters
    ----------
    post : Posterior
    theta : array ``(B, p)`` or ``(B,)``

    Returns
    -------
    Tensor ``(B, H, W)`` (``(B, C, H, W)`` for colour)
    """
    return post.prior.unrotate(torch.fft.ifft2(gaussian_posterior(post, theta)[0], norm="ortho").real)


def gaussian_posterior(post: Posterior, theta: Any) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The Gaussian posterior of :math:`x` given :math:`\theta` per unitary Fourier coefficient (full grid),
    for a ``GaussianPrior`` posterior (circular boundary; prior weight :math:`\lambda`, :math:`P_\lambda = P/\lambda`):
    mean :math:`X^* = M + P_\lambda\bar{\hat h}(Y - \hat h M)/(\sigma^2 + |\hat h|^2 P_\lambda)` (the minimiser
    above) and variance :math:`\sigma^2 P_\lambda/(\sigma^2 + |\hat h|^2 P_\lambda)`, each ``(B, H, W)`` (colour:
    ``(B, C, H, W)``, per component of the prior's colour basis)."""
    if not isinstance(post.prior, GaussianPrior):
        raise InputError("prior", "a GaussianPrior for the closed-form minimiser", type(post.prior).__name__)
    _, absH2, P, Hk, Y, M = _gaussian_parts(post.problem, post.prior, theta)
    Pl = P / post.prior_weight
    s2 = post.problem.noise ** 2
    denom = s2 + absH2 * Pl
    return M + Pl * Hk.conj() * (Y - Hk * M) / denom, s2 * Pl / denom


def gaussian_posterior_draws(post: Posterior, theta: Any, n: int, *, rng: Any = None) -> torch.Tensor:
    r"""Exact draws of :math:`x \mid \theta, y` for a ``GaussianPrior`` posterior (circular boundary): per unitary
    Fourier coefficient :math:`X = X^* + \sqrt{v}\,(\mathcal F w)`, :math:`w \sim N(0, I)` real white noise, with the
    mean :math:`X^*` and variance :math:`v` of :func:`gaussian_posterior`. :math:`v` is symmetric in frequency
    (:math:`\hat h` and :math:`P` are the transforms of real images), so the draws are real and their covariance is
    :math:`\mathcal F^* \mathrm{diag}(v)\, \mathcal F`. The sampler every approximate one (Langevin, DPS) can be
    checked against, and the E-step of ``kernel_estimation.gaussian_sampler``.

    Parameters
    ----------
    post : Posterior
    theta : array ``(B, p)`` or ``(B,)``
    n : int
        Draws per kernel.
    rng : seed or ``torch.Generator``

    Returns
    -------
    Tensor ``(n, B, *image shape)`` (the layout of ``sampling.diffusion.dps``'s ``draws``)
    """
    mean, var = gaussian_posterior(post, theta)
    gen = torch_generator(rng)
    w = torch.randn((int(n), *mean.shape), generator=gen, dtype=var.dtype).to(var.device)
    X = mean + var.sqrt() * torch.fft.fft2(w, norm="ortho")
    return post.prior.unrotate(torch.fft.ifft2(X, norm="ortho").real)


def marginal_nll(problem: BlindDeblur, prior: Any, theta: Any, *, chunk: int = 8,
                 progress: bool = False) -> torch.Tensor:
    r""":math:`-\log p(y \mid \theta)` in nats for each :math:`\theta`, with :math:`x` integrated out.

    Parameters
    ----------
    problem : BlindDeblur
    prior : GaussianPrior or GMMPrior
        Gaussian: closed form in Fourier (circular boundary); GMM on whole images: dense, any boundary.
    theta : array ``(B, p)`` or ``(B,)``
    chunk : int
        GMM: grid points per progress step.
    progress : bool

    Returns
    -------
    Tensor ``(B,)``

    Examples
    --------
    >>> nll = marginal_nll(problem, GaussianPrior.fit(data.TRAIN, (128, 128)), np.linspace(0, 3, 61))  # doctest: +SKIP
    """
    if isinstance(prior, GaussianPrior):
        R2, absH2, P, *_ = _gaussian_parts(problem, prior, theta)
        v = absH2 * P + problem.noise ** 2
        return _event_sum(R2 / (2 * v) + 0.5 * torch.log(2 * math.pi * v), problem)
    if isinstance(prior, GMMPrior):
        return _gmm_marginal(problem, prior, theta, chunk, progress)
    raise InputError("prior", "a GaussianPrior or GMMPrior for the exact marginal", type(prior).__name__)


def gmm_evidence(problem: BlindDeblur, blur: Any, weights: torch.Tensor, means: torch.Tensor,
                 sqrt_cov: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""The component evidences of a whole-image GMM at one kernel: with
    :math:`S_k = H A_k A_k^\top H^\top + \sigma^2 I` (:math:`A_k = U_k \Lambda_k^{1/2}` the columns of
    ``sqrt_cov`` ``(K, D, D)``) and :math:`r_k = y - H\mu_k`,
    :math:`\log \pi_k + \log N(y; H\mu_k, S_k)` per component ``(K,)``. :math:`H` is ``blur`` (one kernel,
    the problem's boundary) applied to the columns of :math:`A_k`, so no :math:`D \times D` operator is formed.
    The one home of this computation: ``marginal_nll`` sums it over components and
    ``estimators.bayes.GMMPosterior`` builds the posterior means and covariances from its parts.

    Returns
    -------
    dict
        ``log_evidence`` ``(K,)``, ``HA`` ``(K, D, M)`` (row :math:`i`: :math:`(H a_i)^\top`), ``chol`` the
        Cholesky factors of :math:`S_k` ``(K, M, M)``, ``residual`` :math:`r_k` ``(K, M)``.
    """
    K, D = means.shape
    img = problem.event_shape
    y = problem.y.reshape(-1)
    HA = blur(sqrt_cov.transpose(1, 2).reshape(K * D, *img)).reshape(K, D, -1)
    M = HA.shape[-1]
    S = HA.transpose(1, 2) @ HA + problem.noise ** 2 * torch.eye(M, dtype=y.dtype, device=y.device)
    L = torch.linalg.cholesky(S)
    r = y - blur(means.reshape(K, *img)).reshape(K, M)
    z = torch.linalg.solve_triangular(L, r[..., None], upper=False)[..., 0]
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    log_ev = torch.log(weights) - 0.5 * (z ** 2).sum(-1) - 0.5 * logdet - 0.5 * M * _LOG2PI
    return {"log_evidence": log_ev, "HA": HA, "chol": L, "residual": r}


def _gmm_marginal(problem: BlindDeblur, prior: GMMPrior, theta: Any, chunk: int, progress: bool) -> torch.Tensor:
    if tuple(prior.shape) != tuple(problem.event_shape):
        raise InputError("prior", f"a GMM on images of shape {problem.event_shape}", tuple(prior.shape))
    th = problem.family.as_theta(theta, dtype=problem.dtype, device=problem.device)
    dt, dev = problem.dtype, problem.device
    w, mu, lam, U = (t.to(dtype=dt, device=dev) for t in (prior.weights, prior.means, prior.eigvals, prior.eigvecs))
    A = U * lam.sqrt()[:, None, :]                             # A_k = U_k Lambda_k^{1/2}
    out = []
    for i in tqdm(range(0, th.shape[0], chunk), desc="GMM marginal", disable=not progress, leave=False):
        for t in th[i:i + chunk]:
            ev = gmm_evidence(problem, problem.blur(t[None]), w, mu, A)["log_evidence"]
            out.append(-torch.logsumexp(ev, dim=0))
    return torch.stack(out)
