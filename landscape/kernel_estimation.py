r"""Free-kernel estimation as the blind-deblurring literature runs it on measured camera shake.

* :func:`map_k` — MAP over the kernel with the image integrated out (Levin, Weiss, Durand & Freeman 2011),
  under the stationary Gaussian prior :math:`x \sim N(\mu, \mathcal F^*\mathrm{diag}(P)\mathcal F)`, by
  expectation–maximisation on the simplex, coarse to fine. Per unitary Fourier coefficient the posterior of
  :math:`x` given :math:`h` has mean and variance

  .. math::
      \hat\mu = M + \frac{P\,\bar{\hat h}\,(Y - \hat h M)}{\sigma^2 + |\hat h|^2 P}, \qquad
      c = \frac{\sigma^2 P}{\sigma^2 + |\hat h|^2 P},

  and the M-step minimises the expected misfit :math:`Q(h) = \sum_\omega |\hat h\hat\mu - Y|^2 + |\hat h|^2 c`
  over the simplex. :math:`Q(h) = h^\top A h - 2 b^\top h + \|Y\|^2` on the kernel's support, with
  :math:`A_{ab} = \mathrm{Re}\,\mathcal W(a - b)`, :math:`\mathcal W = \mathrm{fft2}(|\hat\mu|^2 + c)`, and
  :math:`b_a = \mathrm{Re}\,\mathrm{fft2}(\hat\mu \bar Y)(a)` (offsets :math:`a` from the kernel's centre);
  a convex quadratic, solved by FISTA with the exact step :math:`1/2\lambda_{\max}(A)` on the simplex's
  tangent space. EM cannot increase :math:`-\log p(y \mid h)` (``marginal.marginal_nll``, the
  closed form); ``tests/test_kernel_estimation.py`` checks that, the dense :math:`Q` against its Fourier
  definition, and the marginal's gradient against finite differences.
* Colour ``(C, H, W)`` data, one kernel for every channel: :func:`map_k` sums the M-step quadratics of the colour
  Gaussian prior's independent components (:math:`u = A^\top y`, :math:`A` its orthonormal colour basis), so it
  maximises the colour marginal; :func:`map_k_mog` puts the difference mixture on every channel; :func:`map_xk`
  takes a prior built for colour images. Three identical channels give the gray kernel
  (``tests/test_kernel_estimation.py``).
* :func:`map_k_diffusion` — MAP over the kernel with the image integrated out under a *learned* prior, by Monte
  Carlo EM: the E-step draws :math:`x \mid h, y` by diffusion posterior sampling with a noise-conditional denoiser,
  the M-step is :func:`map_k`'s quadratic built from the draws' Fourier moments (exact for their empirical
  distribution: :func:`draws_m_step`), coarse to fine. The E-step is an argument (``sampler``, :data:`Sampler`):
  :func:`dps_sampler` by default, :func:`gaussian_sampler` for exact draws under a Gaussian prior (then the
  iteration is a Monte Carlo version of :func:`map_k`'s, which ``tests/test_kernel_estimation.py`` checks), or a
  researcher's own posterior sampler.
* :func:`map_xk` — the joint MAP over :math:`(x, h)` from :math:`(\delta, y)`, alternating with delayed
  normalisation (Perrone & Favaro 2014; ``descent.descend(scheme="pam")``), coarse to fine, for any prior; or at
  full size from a given pair (``start``: the truth, or another estimator's kernel); ``scheme="alternating"``
  takes the exact simplex projection for the kernel step instead, a descent of the joint energy.
* :func:`nonblind` — the non-blind step every estimate shares: :math:`\arg\min_x E(h, x)`.
* :func:`least_squares_kernel` — the simplex least-squares kernel for a known image (the oracle kernel step).
* :func:`kernel_error` — :math:`\|\hat h - h^\star\|_2` with both centred on a common support (a kernel is
  only defined up to a translation, the image moving the other way).

Coarse to fine (:func:`pyramid`): the kernel support shrinks by ``factor`` per level down to 3×3, the
image with it (anti-aliased), the noise level as the image (:math:`\sigma_\ell = \sigma r_\ell`); each level
starts from the previous one's kernel, upsampled, clipped at zero and renormalised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch

from . import marginal
from ._checks import InputError, choice, integer, positive
from .kernels import Free, centre, dirac, project_simplex
from .io import host
from .operators import otf
from .posterior import BlindDeblur, Posterior
from .priors import GaussianPrior, Prior, PriorSettings, make_prior
from .sampling.diffusion import DiffusionOptions, dps
from .priors.sparse import _diffs
from .solvers import SolverOptions

#: shrink factor of the kernel support between pyramid levels
FACTOR = 2 ** 0.5
#: :func:`map_xk`'s kernel steps: PAM's delayed normalisation, or the exact simplex projection
MAP_XK_SCHEMES = ("pam", "alternating")
#: :func:`map_k_diffusion`'s default E-step: 30 levels from 1 (image units: images lie in [0, 1]), two draws
DIFFUSION_E_STEP = DiffusionOptions(levels=30, chains=2, s_max=1.0)


def _odd(v: float) -> int:
    k = max(int(round(v)), 1)
    return k if k % 2 else k + 1


def pyramid(image_shape: tuple[int, int], size: int, factor: float = FACTOR, min_size: int = 3
            ) -> list[tuple[tuple[int, int], int, float]]:
    """Levels ``(image shape, kernel size, ratio)``, coarse to fine; the last is ``(image_shape, size, 1)``."""
    if not (isinstance(size, (int, np.integer)) and size >= 1 and size % 2 == 1):
        raise InputError("size", "an odd kernel size >= 1", size)
    if not factor > 1:
        raise InputError("factor", "a shrink factor > 1", factor)
    levels, r = [], 1.0
    while True:
        k = _odd(size * r) if r < 1 else size
        shape = (max(int(round(image_shape[0] * r)), k), max(int(round(image_shape[1] * r)), k))
        levels.append((shape if r < 1 else tuple(image_shape), k, r))
        if k <= min_size:
            break
        r /= factor
    return levels[::-1]


def _resize(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``a`` ``(H, W)`` or colour ``(C, H, W)`` resized to the spatial ``shape`` (channels kept), anti-aliased
    when shrinking."""
    from skimage.transform import resize
    a = np.asarray(a, dtype=float)
    shape = _with_channels(a, shape)
    if tuple(a.shape) == shape:
        return np.array(a, dtype=float)
    return resize(a, shape, order=1, anti_aliasing=shape[-2] < a.shape[-2], mode="edge")


def _with_channels(y: np.ndarray, shape: tuple[int, int]) -> tuple[int, ...]:
    """A pyramid level's image shape: ``y``'s channel axis (if any) before the spatial ``shape``."""
    return (*y.shape[:-2], *tuple(shape)[-2:])


def _image(y: Any) -> np.ndarray:
    """``y`` as a float array: ``(H, W)``, or ``(C, H, W)`` for colour (the same kernel on every channel)."""
    y = np.asarray(y, dtype=float)
    if y.ndim not in (2, 3):
        raise InputError("y", "an (H, W) image, or (C, H, W) for colour", y.shape)
    return y


def upsample_kernel(h: np.ndarray, size: int) -> np.ndarray:
    """``h`` resized to ``size x size``, clipped at zero, summing to one."""
    k = np.clip(_resize(h, (size, size)), 0, None)
    return k / k.sum() if k.sum() > 0 else dirac(size, device="cpu").numpy()


def kernel_problem(y: Any, noise: float, size: int, dtype: torch.dtype = torch.float64,
                   device: Any = None) -> BlindDeblur:
    """The free-kernel problem (``size x size`` kernels on the simplex) for data ``y`` (an array, or a tensor
    whose device the problem keeps; ``device`` moves it)."""
    y = y if isinstance(y, torch.Tensor) else np.asarray(y, dtype=float)
    return BlindDeblur(y, Free(size), noise, dtype=dtype, device=device)


def _offsets(size: int) -> np.ndarray:
    r = size // 2
    i, j = np.meshgrid(np.arange(size) - r, np.arange(size) - r, indexing="ij")
    return np.stack([i.ravel(), j.ravel()], 1)


def e_step(y: torch.Tensor, h: torch.Tensor, prior: GaussianPrior, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean (unitary coefficients :math:`\\hat\\mu`, full grid) and variances :math:`c` of x given h
    (``marginal.gaussian_posterior``)."""
    post = Posterior(kernel_problem(y, noise, h.shape[0]), prior)
    mean, var = marginal.gaussian_posterior(post, post.problem.family.theta_of(h))
    return mean[0], var[0]


def m_step_quadratic(y: torch.Tensor, mu: torch.Tensor, c: torch.Tensor, size: int
                     ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(A, b, const)`` of :math:`Q(h) = h^\\top A h - 2 b^\\top h + \\mathrm{const}` on the ``size x size``
    support (row-major), from the posterior mean coefficients ``mu`` and variances ``c``."""
    H, W = y.shape
    Y = torch.fft.fft2(y, norm="ortho")
    Wf = torch.fft.fft2(mu.abs() ** 2 + c).real
    Bf = torch.fft.fft2(mu * Y.conj()).real
    off = torch.as_tensor(_offsets(size), device=y.device)
    di = (off[:, None, 0] - off[None, :, 0]) % H
    dj = (off[:, None, 1] - off[None, :, 1]) % W
    A = Wf[di, dj]
    b = Bf[off[:, 0] % H, off[:, 1] % W]
    return A, b, float((Y.abs() ** 2).sum())


def _component_sum(u: torch.Tensor, mu: torch.Tensor, c: torch.Tensor, size: int
                   ) -> tuple[torch.Tensor, torch.Tensor, float]:
    r""":func:`m_step_quadratic` summed over the independent components of a colour image (``u`` the data's
    components, :math:`A^\top y` for the prior's colour basis :math:`A`, ``(C, H, W)``; one kernel blurs them all, so
    :math:`Q(h) = \sum_k Q_k(h)`); a gray ``(H, W)`` image is one component."""
    if u.ndim == 2:
        u, mu, c = u[None], mu[None], c[None]
    parts = [m_step_quadratic(u[k], mu[k], c[k], size) for k in range(u.shape[0])]
    return sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)


def _fista_simplex(A: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, n_iter: int) -> torch.Tensor:
    r"""FISTA on :math:`h^\top A h - 2 b^\top h` over the simplex from ``h0``. The step is :math:`1/2L`, :math:`L` the
    largest eigenvalue of :math:`A` on the simplex's tangent space (sum-zero vectors) from 30 power iterations with a
    10 % margin; should the quadratic end above its start (the estimate too low), it is solved again with the exact
    :math:`L` (``eigvalsh``), so the M-step never raises :math:`Q` and EM stays monotone."""
    n = A.shape[0]
    on = dict(dtype=A.dtype, device=A.device)
    proj = torch.eye(n, **on) - 1.0 / n
    M = proj @ A @ proj
    v = torch.linspace(-1.0, 1.0, n, **on) + 0.1 * torch.cos(torch.arange(n, **on))
    for _ in range(30):
        v = M @ v
        v = v / v.norm().clamp_min(1e-300)
    Q = lambda h: float(h @ (A @ h) - 2 * b @ h)          # noqa: E731

    def run(L: float) -> torch.Tensor:
        h, z, t = h0.clone(), h0.clone(), 1.0
        for _ in range(n_iter):
            h_new = project_simplex((z - (2 * (A @ z) - 2 * b) / L)[None])[0]
            t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
            z = h_new + (t - 1) / t_new * (h_new - h)
            h, t = h_new, t_new
        return h
    h = run(2.2 * float(v @ (M @ v)))
    if not Q(h) <= Q(h0):
        h = run(2 * float(torch.linalg.eigvalsh(M)[-1]))
    return h


def _em_level(y: np.ndarray, noise: float, prior: GaussianPrior, h0: np.ndarray, n_em: int, n_inner: int,
              on_iter: Callable | None = None, device: Any = None) -> tuple[np.ndarray, list[float]]:
    size = h0.shape[0]
    on = dict(dtype=torch.float64, device=device or "cpu")
    yt = torch.as_tensor(y, **on)
    h = torch.as_tensor(h0, **on).reshape(-1)
    prob = kernel_problem(yt, noise, size)
    fam = prob.family
    nll = []
    for _ in range(n_em):
        nll.append(float(marginal.marginal_nll(prob, prior, fam.theta_of(h.reshape(size, size)))[0]))
        mu, c = e_step(yt, h.reshape(size, size), prior, noise)
        A, b, _ = _component_sum(prior.rotate(yt), mu, c, size)
        h = _fista_simplex(A, b, h, n_inner)
        if on_iter is not None:
            on_iter()
    nll.append(float(marginal.marginal_nll(prob, prior, fam.theta_of(h.reshape(size, size)))[0]))
    return host(h.reshape(size, size)), nll


def gaussian_prior(shape: tuple[int, int]) -> GaussianPrior:
    """The stationary Gaussian prior fitted to the training images at ``shape`` (the registry fits it once per
    shape)."""
    return make_prior("gaussian", tuple(shape))


def map_k(y: Any, noise: float, size: int, *, prior: Callable[[tuple[int, int]], GaussianPrior] = gaussian_prior,
          n_em: int = 15, n_inner: int = 100, factor: float = FACTOR, progress: bool = False,
          device: Any = None) -> dict[str, Any]:
    """MAP over a free ``size x size`` kernel with x marginalised under the stationary Gaussian prior (EM,
    coarse to fine; module docstring).

    Parameters
    ----------
    y : array ``(H, W)``, or ``(C, H, W)`` for colour
        The observation (circular model; a colour image's channels all blurred by the one kernel).
    noise : float
        :math:`\\sigma`.
    size : int
        Odd kernel support.
    prior : callable ``shape -> GaussianPrior``
        The prior at each level's image shape, ``(h, w)`` or ``(C, h, w)`` (default: the spectrum fitted to the
        training images; in colour, per component of the fitted colour basis, whose components are independent:
        the E-step runs per component and the M-step minimises the sum of their quadratics).
    n_em, n_inner : int
        EM iterations per level; FISTA iterations per M-step.
    factor : float
        Pyramid shrink factor.
    device : torch.device or str, optional
        Where the E- and M-steps run (default: the CPU).

    Returns
    -------
    dict
        ``kernel`` ``(size, size)``, ``nll`` (:math:`-\\log p(y\\mid h)` along the finest level's EM
        iterations, nats), ``levels`` (kernel sizes, coarse to fine).
    """
    from tqdm.auto import tqdm
    y = _image(y)
    positive("noise", noise)
    levels = pyramid(y.shape[-2:], size, factor)
    h = dirac(levels[0][1], device="cpu").numpy()
    bar = tqdm(total=n_em * len(levels), desc="MAP_k (EM)", disable=not progress, leave=False)
    for shape, k, r in levels:
        h = upsample_kernel(h, k)
        h, nll = _em_level(_resize(y, shape), noise * r, prior(_with_channels(y, shape)), h, n_em, n_inner,
                           bar.update, device)
    bar.close()
    return {"kernel": h, "nll": np.array(nll), "levels": [k for _, k, _ in levels]}


@dataclass(frozen=True)
class GradientMixture:
    r"""A zero-mean scalar Gaussian mixture :math:`p(g) = \sum_j \pi_j N(g; 0, v_j)` on an image's horizontal and
    vertical differences (:math:`g = x_{i,j+1} - x_{i,j}` and :math:`x_{i+1,j} - x_{i,j}`, each pixel independent):
    the sparse prior of Levin et al. 2011's MAP_k (:func:`map_k_mog`)."""

    weights: np.ndarray
    variances: np.ndarray

    def _on(self, e2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (-1, *([1] * e2.ndim))
        return tuple(torch.as_tensor(a, dtype=e2.dtype, device=e2.device).reshape(shape)
                     for a in (self.weights, self.variances))

    def responsibilities(self, e2: torch.Tensor) -> torch.Tensor:
        r"""Component posteriors ``(J, ...)`` of a difference whose second moment is ``e2``:
        :math:`q_j \propto \pi_j v_j^{-1/2} \exp(-\mathbb E[g^2]/2v_j)`."""
        pi, v = self._on(e2)
        return torch.softmax(torch.log(pi) - 0.5 * torch.log(v) - e2[None] / (2 * v), dim=0)

    def precision(self, e2: torch.Tensor) -> torch.Tensor:
        r"""The E-step's per-pixel prior precision :math:`w = \sum_j q_j / v_j`."""
        return (self.responsibilities(e2) / self._on(e2)[1]).sum(0)


def differences(x: torch.Tensor) -> torch.Tensor:
    """Circular horizontal and vertical forward differences of ``(..., H, W)``, stacked ``(..., 2, H, W)`` (those
    of the sparse prior, ``priors.sparse``)."""
    return torch.stack(_diffs(x), -3)


@lru_cache(maxsize=4)
def fit_gradient_mixture(n_components: int = 4, n_iter: int = 200, floor: float = (1 / 255) ** 2
                         ) -> GradientMixture:
    r"""The zero-mean :class:`GradientMixture` fitted by EM to the differences of the ``data.TRAIN`` images
    (held-out ``data.TEST`` images are never seen); variances initialised log-spaced over the samples' range and
    kept at least ``floor`` (the 8-bit images' many exactly-zero differences would otherwise give a component of
    vanishing variance: a prior no noisy difference could move). EM runs on the distinct squared differences
    with their counts (the same sums, a fraction of the samples). Deterministic; cached."""
    from . import data
    g = np.concatenate([host(differences(torch.as_tensor(im, dtype=torch.float64))).ravel()
                        for im in data.training_images()])
    g2 = g ** 2
    v = np.geomspace(max(np.percentile(g2, 10), floor), np.percentile(g2, 99.9), n_components)
    pi = np.full(n_components, 1.0 / n_components)
    g2, count = np.unique(g2, return_counts=True)
    for _ in range(int(n_iter)):
        logq = np.log(pi)[:, None] - 0.5 * np.log(v)[:, None] - g2[None] / (2 * v[:, None])
        q = np.exp(logq - logq.max(0))
        q *= count / q.sum(0)
        nk = q.sum(1)
        pi, v = nk / g.size, np.maximum((q @ g2) / nk, floor)
    return GradientMixture(weights=pi, variances=v)


def _pcg(apply: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor, precond: Callable, x0: torch.Tensor,
         n_iter: int, rtol: float) -> torch.Tensor:
    """Preconditioned conjugate gradients on a batch of independent SPD systems (the leading dim)."""
    x = x0.clone()
    r = rhs - apply(x)
    z = precond(r)
    p = z.clone()
    rz = (r * z).sum((-2, -1), keepdim=True)
    stop = rtol * rhs.flatten(-2).norm(dim=-1)[..., None, None]
    for _ in range(n_iter):
        if bool((r.flatten(-2).norm(dim=-1)[..., None, None] <= stop).all()):
            break
        Ap = apply(p)
        alpha = rz / (p * Ap).sum((-2, -1), keepdim=True)
        x = x + alpha * p
        r = r - alpha * Ap
        z = precond(r)
        rz_new = (r * z).sum((-2, -1), keepdim=True)
        p = z + rz_new / rz * p
        rz = rz_new
    return x


def mog_e_step(dy: torch.Tensor, h: torch.Tensor, mixture: GradientMixture, noise2: float, mu0: torch.Tensor,
               w: torch.Tensor, n_reweight: int = 3, cg_iter: int = 50, rtol: float = 1e-6
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Levin et al. 2011's variational E-step for the differences ``dy`` ``(2, H, W)`` of y given the kernel h:
    :math:`q(g) = N(\mu, \mathrm{diag}(c))` with, alternately (``n_reweight`` times),

    .. math::
        (K^\top K/\eta^2 + \mathrm{diag}(w))\,\mu = K^\top \partial y/\eta^2, \qquad
        c = 1/(\|h\|^2/\eta^2 + w), \qquad w = \sum_j q_j(\mu^2 + c)/v_j,

    (``noise2`` :math:`= \eta^2`, the differences' noise variance; the mean by PCG preconditioned with the
    stationary system at :math:`\bar w`). Returns ``(mu, c, w)``, each ``(2, H, W)``."""
    shape = dy.shape[-2:]
    Kf = otf(h, tuple(shape))
    K2 = Kf.abs() ** 2 / noise2
    rhs = torch.fft.irfft2(Kf.conj() * torch.fft.rfft2(dy), s=shape) / noise2
    h2 = float((h ** 2).sum()) / noise2
    c = 1.0 / (h2 + w)
    mu = mu0
    for _ in range(n_reweight):
        wbar = w.mean((-2, -1), keepdim=True)
        mu = _pcg(lambda v: torch.fft.irfft2(K2 * torch.fft.rfft2(v), s=shape) + w * v, rhs,
                  lambda r: torch.fft.irfft2(torch.fft.rfft2(r) / (K2 + wbar), s=shape), mu, cg_iter, rtol)
        c = 1.0 / (h2 + w)
        w = mixture.precision(mu ** 2 + c)
    return mu, c, w


def mog_m_step_quadratic(dy: torch.Tensor, mu: torch.Tensor, c: torch.Tensor, size: int
                         ) -> tuple[torch.Tensor, torch.Tensor, float]:
    r"""``(A, b, const)`` of the expected misfit of both differences under :math:`q`,
    :math:`Q(h) = \sum_\gamma \|h \star \mu_\gamma - \partial_\gamma y\|^2 + \|h\|^2 \sum_i c_{\gamma,i}`:
    :func:`m_step_quadratic` per difference, its spatially diagonal covariance spread evenly over the
    frequencies (the same trace)."""
    parts = [m_step_quadratic(dy[g], torch.fft.fft2(mu[g], norm="ortho"),
                              torch.full_like(mu[g], float(c[g].mean())), size) for g in range(dy.shape[0])]
    return sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)


def _mog_level(y: np.ndarray, noise: float, mixture: GradientMixture, h0: np.ndarray, n_em: int, n_inner: int,
               n_reweight: int, anneal: bool, on_iter: Callable | None = None, device: Any = None
               ) -> tuple[np.ndarray, list[float]]:
    on = dict(dtype=torch.float64, device=device or "cpu")
    dy = differences(torch.as_tensor(y, **on)).reshape(-1, *y.shape[-2:])    # (2C, H, W): every channel's pair
    k = h0.shape[0]
    ht = torch.as_tensor(h0, **on)
    floor2 = 2 * noise ** 2
    noise2 = max(float((dy ** 2).mean()), floor2) if anneal else floor2
    mu, w = dy.clone(), mixture.precision(dy ** 2)
    misfit = []
    for _ in range(n_em):
        mu, c, w = mog_e_step(dy, ht, mixture, noise2, mu, w, n_reweight)
        A, b, const = mog_m_step_quadratic(dy, mu, c, k)
        hv = _fista_simplex(A, b, ht.reshape(-1), n_inner)
        misfit.append(float(hv @ (A @ hv) - 2 * b @ hv + const))
        ht = hv.reshape(k, k)
        if anneal:
            noise2 = max(misfit[-1] / dy.numel(), floor2)
        if on_iter is not None:
            on_iter()
    return host(ht), misfit


def map_k_mog(y: Any, noise: float, size: int, *, mixture: GradientMixture | None = None, n_em: int = 15,
              n_inner: int = 100, n_reweight: int = 3, anneal: bool = True, factor: float = FACTOR,
              progress: bool = False, device: Any = None) -> dict[str, Any]:
    r"""MAP over a free ``size x size`` kernel with x marginalised under a sparse prior: Levin, Weiss, Durand &
    Freeman 2011's variational EM with a diagonal covariance, in the derivative domain, coarse to fine.

    The differences of :math:`y = h \star x + n` obey :math:`\partial y = h \star \partial x + \partial n`;
    each difference of x has the :class:`GradientMixture` prior (fitted to the training images), and the
    differences' noise variance is :math:`\eta^2 \ge 2\sigma^2` (``anneal``). Each EM iteration: the E-step :func:`mog_e_step` (the mean
    :math:`\mu` and the diagonal variances :math:`c` of the differences), then the M-step minimises
    :func:`mog_m_step_quadratic` over the simplex (FISTA, as :func:`map_k`). The covariance term
    :math:`\|h\|^2\sum c` is what separates this from the joint MAP: it penalises the peaked kernels that the
    joint MAP prefers.

    Parameters
    ----------
    y, noise, size
        As :func:`map_k`.
    mixture : GradientMixture, optional
        The prior on the differences (default :func:`fit_gradient_mixture`).
    n_em, n_inner : int
        EM iterations per level; FISTA iterations per M-step.
    n_reweight : int
        Mean / variance / responsibility alternations per E-step.
    anneal : bool
        Re-estimate :math:`\eta^2` after each M-step as the expected misfit per difference, from the differences'
        variance at each level's start, never below :math:`2\sigma^2` (the EM update of the noise level, as
        Fergus et al. 2006 run it); ``False``: :math:`\eta^2 = 2\sigma^2` throughout.
    factor : float
        Pyramid shrink factor.
    device : torch.device or str, optional
        Where it runs (default: the CPU).

    Returns
    -------
    dict
        ``kernel`` ``(size, size)``, ``misfit`` (the M-step's expected misfit along the finest level's
        iterations), ``levels``.
    """
    from tqdm.auto import tqdm
    y = _image(y)
    positive("noise", noise)
    mixture = mixture or fit_gradient_mixture()
    levels = pyramid(y.shape[-2:], size, factor)
    h = dirac(levels[0][1], device="cpu").numpy()
    bar = tqdm(total=n_em * len(levels), desc="MAP_k (MoG, EM)", disable=not progress, leave=False)
    for shape, k, r in levels:
        h, misfit = _mog_level(_resize(y, shape), noise * r, mixture, upsample_kernel(h, k), n_em, n_inner,
                               n_reweight, anneal, bar.update, device)
    bar.close()
    return {"kernel": h, "misfit": np.array(misfit), "levels": [k for _, k, _ in levels]}


def map_xk(y: Any, noise: float, size: int, prior: Prior | Callable[[tuple[int, int]], Prior], *,
           n_outer: int = 60, x_iters: int = 5, factor: float = FACTOR, start: tuple[Any, Any] | None = None,
           scheme: str = "pam", progress: bool = False, device: Any = None) -> dict[str, Any]:
    """The joint MAP over a free kernel and the image from :math:`(\\delta, y)`: PAM with delayed normalisation
    (Perrone & Favaro 2014), ``n_outer`` alternations of ``x_iters`` inner solver iterations and one kernel
    step per pyramid level.

    Parameters
    ----------
    y, noise, size
        As :func:`map_k`.
    prior : Prior or callable ``shape -> Prior``
        The image prior (a callable for priors fitted to one shape).
    start : (kernel, image), optional
        A warm start: the descent runs at full size alone (no pyramid) from this pair, a ``(size, size)`` kernel
        on the simplex and an image of ``y``'s shape (e.g. the true kernel with its non-blind image: where a descent
        from the truth goes; or another estimator's answer). Default: :math:`(\\delta, y)`,
        coarse to fine.
    scheme : {"pam", "alternating"}
        The kernel step (``descent.descend``'s scheme). ``"pam"``: a gradient step, clipped at 0, then normalised
        (delayed normalisation, what practitioners run; its fixed points need not be stationary points of
        :math:`E` on the simplex). ``"alternating"``: the projected-gradient step with the exact simplex
        projection, a descent of :math:`E` on the simplex (what a statement about :math:`E`'s minima needs).
    device : torch.device or str, optional
        Where the descent runs (default: the CPU).

    Returns
    -------
    dict
        ``kernel`` ``(size, size)``, ``x`` (``y``'s shape), ``energy`` (the finest level's joint energy at its end),
        ``levels``.
    """
    from tqdm.auto import tqdm

    from .descent import descend
    choice("scheme", scheme, MAP_XK_SCHEMES)
    y = _image(y)
    levels = pyramid(y.shape[-2:], size, factor)
    h, x = dirac(levels[0][1], device="cpu").numpy(), None
    if start is not None:
        h, x = _start_kernel(start[0], size, " and an image"), np.asarray(host(start[1]), dtype=float)
        if x.shape != y.shape:
            raise InputError("start", f"an image of y's shape {y.shape}", x.shape)
        levels = levels[-1:]                                        # full size: (y's shape, size, 1)
    for shape, k, r in tqdm(levels, desc="MAP_xk (PAM)", disable=not progress, leave=False):
        h = upsample_kernel(h, k)
        yl = _resize(y, shape)
        x = yl if x is None else _resize(x, shape)
        p = prior(_with_channels(y, shape)) if callable(prior) and not isinstance(prior, Prior) else prior
        post = Posterior(kernel_problem(yl, noise * r, k, device=device), p)
        fam, dev = post.problem.family, post.problem.device
        ds = descend(post, fam.theta_of(h), torch.as_tensor(x, device=dev)[None], scheme=scheme,
                     n_outer=n_outer, x_iters=x_iters, record_every=n_outer, progress=False)
        h = host(fam(torch.as_tensor(ds.theta_path.values[0, -1], device=dev)[None])[0])
        x = ds.x_final.values[0]
    return {"kernel": h, "x": x, "energy": float(ds.energy_path.values[0, -1]), "levels": [k for _, k, _ in levels]}


def draws_m_step(y: torch.Tensor, draws: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    r"""``(A, b, const)`` of the Monte Carlo M-step's quadratic :math:`\frac1J\sum_j\|h\star x_j - y\|^2` on the
    ``size x size`` support, from draws ``x_j`` ``(J, *y.shape)`` (gray ``(H, W)`` or colour ``(C, H, W)``: the
    channels' quadratics summed). The mean of :math:`|\hat h\hat x_j - Y|^2` over the draws is
    :math:`|\hat h\hat\mu - Y|^2 + |\hat h|^2 c` with :math:`\hat\mu` and :math:`c` the draws' mean and variance
    per coefficient, so it is :func:`m_step_quadratic` of their moments, exactly."""
    X = torch.fft.fft2(draws.to(y.dtype), norm="ortho")
    mu = X.mean(0)
    c = ((X.abs() ** 2).mean(0) - mu.abs() ** 2).clamp_min(0)
    return _component_sum(y, mu, c, size)


#: ``sampler(post, theta, rng) -> draws``: the E-step of :func:`map_k_diffusion`, ``J`` draws ``(J, *image shape)``
#: of :math:`x \sim p(x \mid \theta, y)` for the posterior ``post`` at one kernel ``theta`` ``(p,)``, seeded by the
#: integer ``rng`` (:func:`dps_sampler`, :func:`gaussian_sampler`, or a researcher's own)
Sampler = Callable[[Posterior, torch.Tensor, int], torch.Tensor]


def dps_sampler(options: DiffusionOptions = DIFFUSION_E_STEP) -> Sampler:
    """The default E-step: one batched diffusion posterior sampling run (``sampling.diffusion.dps``) of
    ``options.chains`` draws, ``options.levels`` levels. The posterior's prior must denoise at every level."""
    if not isinstance(options, DiffusionOptions):
        raise InputError("options", "sampling.diffusion.DiffusionOptions (the DPS E-step's settings)",
                         type(options).__name__)

    def draw(post: Posterior, theta: torch.Tensor, rng: int) -> torch.Tensor:
        return dps(post, theta, options, rng=rng)["draws"][:, 0]
    return draw


def gaussian_sampler(chains: int) -> Sampler:
    """Exact draws under a ``GaussianPrior`` (``marginal.gaussian_posterior_draws``): with it :func:`map_k_diffusion`
    is a Monte Carlo version of :func:`map_k`'s exact EM, the reference its learned E-steps are measured against."""
    chains = integer(1)("chains", chains)

    def draw(post: Posterior, theta: torch.Tensor, rng: int) -> torch.Tensor:
        return marginal.gaussian_posterior_draws(post, theta.reshape(1, -1), int(chains), rng=rng)[:, 0]
    return draw


def _diffusion_em_level(y: np.ndarray, noise: float, prior: Prior, h0: np.ndarray, n_em: int, n_inner: int,
                        sampler: Sampler, seeds: np.ndarray, dtype: torch.dtype, device: Any,
                        on_iter: Callable | None = None) -> tuple[np.ndarray, list[float]]:
    size = h0.shape[0]
    prob = kernel_problem(y, noise, size, dtype=dtype, device=device)
    post, fam = Posterior(prob, prior), prob.family
    y64 = prob.y.to(torch.float64)
    h = torch.as_tensor(h0, dtype=torch.float64, device=prob.device).reshape(-1)
    q = []
    for t in range(n_em):
        draws = sampler(post, fam.theta_of(h.reshape(size, size).to(dtype)), int(seeds[t]))
        if tuple(draws.shape[1:]) != tuple(prob.event_shape):
            raise InputError("sampler", f"draws of shape (J, {', '.join(map(str, prob.event_shape))})",
                             tuple(draws.shape))
        A, b, const = draws_m_step(y64, draws, size)
        h = _fista_simplex(A, b, h, n_inner)
        q.append(float(h @ (A @ h) - 2 * b @ h + const))
        if on_iter is not None:
            on_iter()
    return host(h.reshape(size, size)), q


def tweedie_prior(shape: tuple[int, ...], device: Any = None) -> Prior:
    """The shipped noise-conditional denoiser as a diffusion prior at ``shape`` (``(H, W)``: ``denoiser-gray``;
    ``(3, H, W)``: ``denoiser-color``), float32, on ``device``."""
    return make_prior("tweedie", tuple(shape), PriorSettings(dtype=torch.float32, device=device))


def _start_kernel(h: Any, size: int, also: str = "") -> np.ndarray:
    """A warm start's kernel as a float array, checked: ``(size, size)`` on the simplex (``also``: what else the
    ``start`` argument must hold, for the message)."""
    h = np.asarray(host(h), dtype=float)
    if h.shape != (size, size) or h.min() < 0 or abs(h.sum() - 1) > 1e-6:
        raise InputError("start", f"a ({size}, {size}) kernel on the simplex (>= 0, summing to 1){also}",
                         f"a kernel of shape {h.shape}, minimum {h.min():.3g}, sum {h.sum():.6g}")
    return h


def map_k_diffusion(y: Any, noise: float, size: int, *, prior: Callable[[tuple[int, ...]], Prior] | None = None,
                    n_em: int = 4, n_inner: int = 100, sampler: Sampler | None = None,
                    factor: float = FACTOR,
                    start: Any = None, rng: Any = None, dtype: torch.dtype = torch.float32, progress: bool = False,
                    device: Any = None) -> dict[str, Any]:
    r"""MAP over a free kernel with x marginalised under a *diffusion* prior: Monte Carlo EM whose E-step draws
    :math:`x_j \sim p(x \mid h_t, y)` by diffusion posterior sampling (``sampling.diffusion.dps``), coarse to fine.

    The M-step minimises the draws' mean misfit over the simplex,

    .. math::
        h_{t+1} = \arg\min_{h \in \Delta} \frac1J \sum_{j=1}^J \|h \star x_j - y\|^2
        \approx \arg\min_{h \in \Delta} E_{x \sim p(x \mid h_t, y)} \|h \star x - y\|^2 ,

    the expected complete-data log-likelihood of EM for :math:`\max_h p(y \mid h)`: :func:`map_k`'s EM with its
    exact Gaussian E-step replaced by draws of the learned prior's posterior (the draws' first and second Fourier
    moments give the same quadratic, :func:`draws_m_step`). It is the alternation of Fast Diffusion EM (Laroche et
    al. 2024) and BlindDPS-type methods, without a kernel prior. Posterior *draws*, not the posterior mean,
    matter: their fine detail is absent from a blurry :math:`y`, so at :math:`h = \delta` the M-step fits a blur,
    and EM leaves the trivial kernel where the joint MAP stays at it.

    Parameters
    ----------
    y, noise, size
        As :func:`map_k` (``(H, W)`` or colour ``(C, H, W)``).
    prior : callable ``shape -> Prior``
        A prior that denoises at every level of the schedule (a noise-conditional network, or an exact prior), at
        each pyramid level's image shape. Default: the shipped denoiser on ``device`` (:func:`tweedie_prior`).
    n_em, n_inner : int
        EM iterations per pyramid level; FISTA iterations per M-step.
    sampler : callable ``(post, theta, rng) -> draws``, optional
        The E-step (:data:`Sampler`): ``J`` draws ``(J, *image shape)`` of :math:`x \mid \theta, y`. Default:
        :func:`dps_sampler` with :data:`DIFFUSION_E_STEP` (30 levels, 2 draws); ``dps_sampler(options)`` for other
        settings, :func:`gaussian_sampler` for exact draws under a Gaussian prior, or a researcher's own.
    start : array ``(size, size)``, optional
        A kernel on the simplex to start from at full size alone (no pyramid). Default: δ, coarse to fine.
    rng : seed or ``numpy.random.Generator``
        Seeds the E-steps' draws.
    dtype : torch.dtype
        The sampler's precision (the M-step runs in float64).
    device : torch.device or str, optional

    Returns
    -------
    dict
        ``kernel`` ``(size, size)``, ``q`` (the finest level's M-step objective after each iteration: the draws'
        mean :math:`\|h_{t+1} \star x_j - y\|^2`), ``levels``.
    """
    from tqdm.auto import tqdm
    y = _image(y)
    positive("noise", noise)
    sampler = dps_sampler() if sampler is None else sampler
    if not callable(sampler):
        raise InputError("sampler", "a callable (post, theta, rng) -> draws (kernel_estimation.Sampler)",
                         type(sampler).__name__)
    prior = prior or (lambda shape: tweedie_prior(shape, device))
    levels = pyramid(y.shape[-2:], size, factor)
    h = dirac(levels[0][1], device="cpu").numpy()
    if start is not None:
        h = _start_kernel(start, size)
        levels = levels[-1:]
    seeds = np.random.default_rng(rng).integers(2 ** 31, size=(len(levels), n_em))
    bar = tqdm(total=n_em * len(levels), desc="MAP_k (diffusion EM)", disable=not progress, leave=False)
    for i, (shape, k, r) in enumerate(levels):
        h, q = _diffusion_em_level(_resize(y, shape), noise * r, prior(_with_channels(y, shape)),
                                   upsample_kernel(h, k), n_em, n_inner, sampler, seeds[i], dtype, device, bar.update)
    bar.close()
    return {"kernel": h, "q": np.array(q), "levels": [k for _, k, _ in levels]}


def nonblind(y: Any, noise: float, kernel: Any, prior: Prior, solver: SolverOptions | None = None,
             device: Any = None) -> np.ndarray:
    """:math:`\\arg\\min_x \\|h \\star x - y\\|^2/2\\sigma^2 + q(x)` for a given kernel (the toolkit's solver),
    from ``y``; for a ``GaussianPrior``, the closed form (Wiener filter). ``device``: where it is solved."""
    h = np.asarray(kernel, dtype=float)
    post = Posterior(kernel_problem(y, noise, h.shape[0], device=device), prior)
    th = post.problem.family.theta_of(h)
    if isinstance(prior, GaussianPrior):
        return host(marginal.argmin_closed_form(post, th)[0])
    x, _, _ = post.argmin_x(th, None, solver or SolverOptions(max_iter=300, etol=1e-3), energies=False)
    return host(x[0])


def least_squares_kernel(y: Any, x: Any, size: int, n_iter: int = 500) -> np.ndarray:
    r"""The kernel that best explains ``y`` from a known image ``x``: :math:`\arg\min_{h \in \Delta}
    \|h \star x - y\|^2` (circular convolution, ``size x size`` support, :math:`\Delta` the simplex).

    The M-step's quadratic with :math:`\hat\mu = \mathcal F x` and :math:`c = 0`, solved by the same FISTA
    (``n_iter`` iterations from the uniform kernel). With the true image this is the *oracle* kernel: the
    best any estimator whose kernel step is a least-squares fit could reach from its image estimate, and with
    an estimator's own reconstruction it separates the error of the kernel step from that of the image
    (``benchmarks/unrolled_eval.py --oracle``)."""
    size = int(size)
    xt = torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64, device="cpu")
    yt = torch.as_tensor(np.asarray(y, dtype=float), dtype=torch.float64, device="cpu")
    if xt.ndim != 2 or yt.shape != xt.shape:
        raise InputError("x", f"a 2-D image of y's shape {tuple(yt.shape)}", tuple(xt.shape))
    if size < 1 or size % 2 == 0 or size > min(xt.shape):
        raise InputError("size", f"an odd kernel size no larger than the image {tuple(xt.shape)}", size)
    A, b, _ = m_step_quadratic(yt, torch.fft.fft2(xt, norm="ortho"), torch.zeros_like(xt), size)
    h0 = torch.full((size * size,), 1.0 / size ** 2, dtype=torch.float64)
    return host(_fista_simplex(A, b, h0, int(n_iter)).reshape(size, size))


def kernel_error(h: Any, h_true: Any) -> float:
    """:math:`\\|\\hat h - h^\\star\\|_2`, both centred (centre of mass) on the larger of the two supports."""
    h, ht = np.asarray(h, dtype=float), np.asarray(h_true, dtype=float)
    size = max(h.shape[0], ht.shape[0]) + 2
    return float(np.linalg.norm(centre(h, size) - centre(ht, size)))


__all__ = ["pyramid", "map_k", "map_k_diffusion", "Sampler", "dps_sampler", "gaussian_sampler", "draws_m_step",
           "tweedie_prior", "map_k_mog", "GradientMixture",
           "fit_gradient_mixture", "differences", "mog_e_step", "mog_m_step_quadratic", "map_xk", "nonblind",
           "kernel_error", "least_squares_kernel", "e_step", "m_step_quadratic", "upsample_kernel", "kernel_problem",
           "gaussian_prior"]
