r"""Stationary Gaussian prior, diagonal in the unitary Fourier basis.

With :math:`\hat v = \mathcal F v` the unitary 2-D DFT (``norm="ortho"``), the prior is
:math:`x \sim N(\mu \mathbf 1, C)`, :math:`C = \mathcal F^* \mathrm{diag}(P) \mathcal F`, where
the spectrum :math:`P(\omega) = \mathbb E |\widehat{x - \mu}(\omega)|^2` is the power spectrum
per unitary Fourier coefficient (the periodogram :math:`|\mathrm{fft2}(x-\mu)|^2 / (HW)`). Then

.. math::
    q(x) = \tfrac12 \sum_\omega |\widehat{x - \mu}(\omega)|^2 / P(\omega)
           + \tfrac12 \sum_\omega \log(2\pi P(\omega)),

:math:`\nabla q(x) = \mathcal F^* (\widehat{x-\mu} / P)` and the MMSE (Wiener) denoiser is
:math:`D_s(z) = \mu + \mathcal F^*(P/(P+s^2)\, \widehat{z-\mu})`, all exact.

Colour images ``(C, H, W)``: the channels are decorrelated by a fixed orthonormal colour basis
:math:`A` (``basis``, the principal axes of the pixels' colours when fitted), and each component
:math:`u_k = (A^\top(x - \mu))_k` is an independent stationary Gaussian with its own spectrum
:math:`P_k`: the inter-channel covariance at frequency :math:`\omega` is
:math:`A\,\mathrm{diag}(P_k(\omega))\,A^\top`. Then :math:`q(x) = \sum_k q_k(u_k)`,
:math:`\nabla q = A\,\nabla_u q`, and the denoiser acts per component (the noise stays white under
an orthonormal :math:`A`); ``basis = I`` is independent channels. Checked against the dense
Gaussian density of the :math:`CHW`-dimensional covariance (``tests/test_priors.py``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .._checks import InputError
from ..operators import rfft_weights
from .base import EXACT, Prior


def radial_frequency(shape: tuple[int, int], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The radial frequency :math:`|f|` in cycles per pixel on the full FFT grid of ``shape``."""
    fy = torch.fft.fftfreq(shape[0], dtype=dtype)
    fx = torch.fft.fftfreq(shape[1], dtype=dtype)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def power_law(shape: tuple[int, int], amplitude: float, exponent: float, f0: float,
              dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Parametric spectrum :math:`P(f) = a\,(f^2 + f_0^2)^{-\gamma/2}` on the FFT grid."""
    f = radial_frequency(shape, dtype)
    return amplitude * (f ** 2 + f0 ** 2) ** (-exponent / 2)


class GaussianPrior(Prior):
    r"""Stationary Gaussian prior with spectrum ``P`` (full FFT grid ``(H, W)``) and mean ``mean``; for
    colour, one spectrum per colour component ``(C, H, W)``, a mean per channel and a colour ``basis``.

    Parameters
    ----------
    spectrum : array ``(H, W)`` or ``(C, H, W)``
        :math:`P(\omega) > 0`, symmetric (:math:`P(\omega) = P(-\omega)`), in the unitary
        convention above (per component :math:`u_k` for colour).
    mean : float, or ``(C,)`` for colour
        The constant mean intensity :math:`\mu` (per channel).
    basis : array ``(C, C)``, optional
        Colour: the orthonormal matrix :math:`A` whose columns are the components (default identity:
        independent channels).
    info : dict
        Free-form provenance (how the spectrum was fitted), kept in ``describe()``.
    """

    name = "gaussian"
    capabilities = {"energy": EXACT, "grad": EXACT, "denoise": EXACT}

    def __init__(self, spectrum: Any, mean: Any = 0.0, info: dict | None = None, basis: Any = None):
        P = torch.as_tensor(spectrum, dtype=torch.float64, device="cpu")
        if P.ndim not in (2, 3) or not torch.isfinite(P).all() or (P <= 0).any():
            raise InputError("spectrum", "a finite positive (H, W) array, or (C, H, W) for colour", tuple(P.shape))
        self.spectrum = P
        self.shape = tuple(P.shape)
        self.channels = P.shape[0] if P.ndim == 3 else None
        self.info = dict(info or {})
        if self.channels is None:
            if basis is not None or np.ndim(mean) != 0:
                raise InputError("mean", "a scalar mean and no colour basis for a grayscale spectrum", mean)
            self.mean, self.basis = float(mean), None
            return
        C = self.channels
        mu = np.broadcast_to(np.asarray(mean, dtype=float), (C,)).copy() if np.ndim(mean) <= 1 else None
        if mu is None or not np.all(np.isfinite(mu)):
            raise InputError("mean", f"a finite mean per channel ({C},)", np.shape(mean))
        A = np.eye(C) if basis is None else np.asarray(basis, dtype=float)
        if A.shape != (C, C) or not np.allclose(A.T @ A, np.eye(C), atol=1e-10):
            raise InputError("basis", f"an orthonormal ({C}, {C}) colour basis", np.shape(A))
        self.mean = mu
        self.basis = torch.as_tensor(A, dtype=torch.float64, device="cpu")

    @property
    def event_ndim(self) -> int:
        return len(self.shape)

    # -- the colour basis: u = A^T x (the identity for gray images) ------------------------
    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`A^\top x` per pixel (``x`` ``(..., C, H, W)``); ``x`` itself for a gray prior."""
        if self.basis is None:
            return x
        return torch.einsum("ck,...chw->...khw", self.basis.to(dtype=x.dtype, device=x.device), x)

    def unrotate(self, u: torch.Tensor) -> torch.Tensor:
        """:math:`A u` per pixel, the inverse of :meth:`rotate`."""
        if self.basis is None:
            return u
        return torch.einsum("ck,...khw->...chw", self.basis.to(dtype=u.dtype, device=u.device), u)

    def channel_mean(self, like: torch.Tensor) -> torch.Tensor | float:
        r""":math:`\mu`, shaped to broadcast over ``(..., C, H, W)`` (the scalar mean for a gray prior)."""
        if self.basis is None:
            return self.mean
        return torch.as_tensor(self.mean, dtype=like.dtype, device=like.device)[:, None, None]

    def component_mean(self, like: torch.Tensor) -> torch.Tensor | float:
        r""":math:`A^\top \mu`, shaped to broadcast over ``(..., C, H, W)`` (the mean for a gray prior)."""
        if self.basis is None:
            return self.mean
        mu = torch.as_tensor(self.mean, dtype=like.dtype, device=like.device)
        return (self.basis.to(dtype=like.dtype, device=like.device).T @ mu)[:, None, None]

    # -- core (real FFTs: P is symmetric, so the half-plane suffices) ---------------------
    def _half(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``P`` on the rfft half-plane and the multiplicity of each half-plane coefficient."""
        key = (x.dtype, x.device)
        if getattr(self, "_half_key", None) != key:
            W = self.shape[-1]
            m = rfft_weights(W, x.dtype, x.device)
            self._half_cache = (self.spectrum[..., :W // 2 + 1].to(dtype=x.dtype, device=x.device), m)
            self._half_key = key
        return self._half_cache

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        r"""Unitary real-FFT coefficients of :math:`u = A^\top(x - \mu)` (half-plane, ``(..., H, W//2+1)``;
        ``x - mean`` for a gray prior)."""
        self.check_shape(x)
        return torch.fft.rfft2(self.rotate(x) - self.component_mean(x), norm="ortho")

    def _from_coefficients(self, X: torch.Tensor) -> torch.Tensor:
        return self.unrotate(torch.fft.irfft2(X, s=self.shape[-2:], norm="ortho"))

    def log_normaliser(self, dtype=torch.float64) -> torch.Tensor:
        r""":math:`\tfrac12 \sum_\omega \log(2\pi P(\omega))` (summed over components)."""
        return 0.5 * torch.log(2 * np.pi * self.spectrum).sum().to(dtype)

    def energy(self, x):
        return self.energy_and_grad(x)[0]

    def grad(self, x):
        P, _ = self._half(x)
        return self._from_coefficients(self.coefficients(x) / P)

    def energy_and_grad(self, x):
        X = self.coefficients(x)
        P, m = self._half(x)
        quad = (m * (X.real ** 2 + X.imag ** 2) / P).sum(dim=tuple(range(-self.event_ndim, 0)))
        e = 0.5 * quad + self.log_normaliser(x.dtype).to(x.device)
        return e, self._from_coefficients(X / P)

    def denoise(self, z, s, differentiable: bool = False):
        P, _ = self._half(z)
        return self.channel_mean(z) + self._from_coefficients(self.coefficients(z) * P / (P + float(s) ** 2))

    def lipschitz(self) -> float:
        r""":math:`\max_\omega 1/P(\omega)`: the largest eigenvalue of :math:`\nabla^2 q = C^{-1}` (exact)."""
        return float(1.0 / self.spectrum.min())

    def sample(self, n: int = 1, rng: Any = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        r"""Draws ``(n, *shape)``: :math:`\mu + A\,\mathcal F^*(\sqrt P \odot \mathcal F w)`, :math:`w` white."""
        g = np.random.default_rng(rng)
        w = torch.as_tensor(g.standard_normal((n, *self.shape)), dtype=dtype, device="cpu")
        W = torch.fft.fft2(w, norm="ortho")
        u = torch.fft.ifft2(W * torch.sqrt(self.spectrum.to(dtype)), norm="ortho").real
        return self.channel_mean(u) + self.unrotate(u)

    # -- fitting ------------------------------------------------------------------------
    @classmethod
    def fit(cls, images: Sequence[np.ndarray], shape: tuple[int, int], *, model: str = "power-law",
            n_crops: int = 400, rng: Any = 0) -> "GaussianPrior":
        r"""Fit the spectrum to random ``shape`` crops of ``images``.

        The mean is the pixel mean of the crops; the periodograms
        :math:`|\mathrm{fft2}(c - \mu)|^2 / (HW)` are averaged over crops, then either

        * ``model="power-law"``: :math:`P(f) = a (f^2 + f_0^2)^{-\gamma/2}` fitted by least
          squares on log-power over the FFT grid, or
        * ``model="empirical"``: the averaged periodogram itself, symmetrised and
          radially smoothed (averaged over rings of width one frequency bin).

        A ``shape`` larger than every image: the power law (its parameters are per frequency, the same at every
        size) is fitted on the largest crops the images hold and evaluated on ``shape``'s grid; the empirical
        spectrum refuses it, naming ``shape``.
        """
        from ..data import load, random_crops

        if model not in ("power-law", "empirical"):
            raise InputError("model", "'power-law' or 'empirical'", repr(model))
        imgs = [load(i) if isinstance(i, str) else np.asarray(i, dtype=np.float64) for i in images]
        shape = tuple(int(v) for v in shape)
        crop = _crop_shape(imgs, shape, model)
        crops = random_crops(imgs, crop, n_crops, rng=rng)
        mu = float(crops.mean())
        P, info = _fit_spectrum(crops - mu, crop, model, shape)
        return cls(P, mean=mu, info={**info, "n_crops": n_crops} | ({"crop": list(crop)} if crop != shape else {}))

    @classmethod
    def fit_color(cls, images: Sequence[Any], shape: tuple[int, int], *, model: str = "power-law",
                  n_crops: int = 400, rng: Any = 0) -> "GaussianPrior":
        r"""Fit a colour prior to random ``shape`` crops of colour ``images`` (``(C, H, W)`` arrays, or names
        of ``data.names(color=True)``): the per-channel mean, the colour basis :math:`A` (eigenvectors of
        the crops' pixel-colour covariance, largest first) and one spectrum per component
        :math:`u_k = (A^\top(x - \mu))_k`, each as :meth:`fit` fits a gray one."""
        from ..data import load, random_crops

        if model not in ("power-law", "empirical"):
            raise InputError("model", "'power-law' or 'empirical'", repr(model))
        imgs = [load(i, color=True) if isinstance(i, str) else np.asarray(i, dtype=np.float64) for i in images]
        if not imgs or any(im.ndim != 3 or im.shape[0] != imgs[0].shape[0] for im in imgs):
            raise InputError("images", "colour images (C, H, W) with the same channels", [np.shape(i) for i in imgs])
        shape = tuple(int(v) for v in shape)
        crop = _crop_shape(imgs, shape, model)
        crops = random_crops(imgs, crop, n_crops, rng=rng)
        h, w = crop
        mu = crops.mean(axis=(0, 2, 3))
        z = crops - mu[:, None, None]
        lam, A = np.linalg.eigh(np.einsum("nchw,ndhw->cd", z, z) / (n_crops * h * w))
        A = A[:, ::-1] * np.sign(A[:, ::-1].sum(0, keepdims=True) + 1e-300)    # largest first, luminance-like > 0
        u = np.einsum("ck,nchw->nkhw", A, z)
        fits = [_fit_spectrum(u[:, k], crop, model, shape) for k in range(u.shape[1])]
        info = {"model": model, "n_crops": n_crops, "components": [f for _, f in fits],
                "component_variance": lam[::-1].tolist()} | ({"crop": list(crop)} if crop != shape else {})
        return cls(np.stack([P for P, _ in fits]), mean=mu, basis=A, info=info)

    def describe(self):
        out = {**super().describe(), "mean": self.mean if self.basis is None else list(map(float, self.mean)),
               "shape": list(self.shape), **self.info}
        return out if self.basis is None else {**out, "basis": self.basis.tolist()}


def _crop_shape(images: Sequence[np.ndarray], shape: tuple[int, int], model: str) -> tuple[int, int]:
    """``shape`` when an image holds it; else, for the power law, the largest crop (by area) within ``shape`` that
    an image holds. :class:`InputError` naming ``shape`` for the empirical spectrum of a shape no image holds."""
    shape = tuple(int(v) for v in shape)
    held = [(min(shape[0], im.shape[-2]), min(shape[1], im.shape[-1])) for im in images]
    if shape in held or not held:
        return shape
    if model == "empirical":
        raise InputError("shape", "a size some image holds for the empirical spectrum (the power law fits any "
                         "size); image sizes: " + ", ".join(f"{im.shape[-2]}x{im.shape[-1]}" for im in images),
                         f"{shape[0]}x{shape[1]}")
    return max(held, key=lambda c: c[0] * c[1])


def _fit_spectrum(z: np.ndarray, shape: tuple[int, int], model: str,
                  out: tuple[int, int] | None = None) -> tuple[np.ndarray, dict]:
    """The spectrum of zero-mean crops ``z`` ``(n, h, w)``: the averaged periodogram, radially smoothed
    (``empirical``) or fitted by a power law (``power-law``), the latter evaluated on the grid ``out`` (default
    ``shape``)."""
    per = (np.abs(np.fft.fft2(z)) ** 2).mean(axis=0) / (shape[0] * shape[1])
    f = radial_frequency(shape).numpy()
    if model == "empirical":
        ring = np.round(f * max(shape)).astype(int)
        prof = np.bincount(ring.ravel(), per.ravel()) / np.bincount(ring.ravel())
        return prof[ring], {"model": "empirical"}
    from scipy.optimize import least_squares
    mask = f > 0
    lp, ff = np.log(per[mask]), f[mask]

    def resid(p):
        loga, gam, logf0 = p
        return loga - gam / 2 * np.log(ff ** 2 + np.exp(logf0) ** 2) - lp

    sol = least_squares(resid, x0=[np.log(per[mask].mean()), 2.0, np.log(0.01)])
    loga, gam, logf0 = sol.x
    P = power_law(tuple(out or shape), float(np.exp(loga)), float(gam), float(np.exp(logf0))).numpy()
    return P, {"model": "power-law", "amplitude": float(np.exp(loga)), "exponent": float(gam),
               "f0": float(np.exp(logf0))}
