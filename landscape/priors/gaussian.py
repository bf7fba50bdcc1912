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
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .._checks import InputError
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
    """Stationary Gaussian prior with spectrum ``P`` (full FFT grid ``(H, W)``) and mean ``mean``.

    Parameters
    ----------
    spectrum : array ``(H, W)``
        :math:`P(\\omega) > 0`, symmetric (:math:`P(\\omega) = P(-\\omega)`), in the unitary
        convention above.
    mean : float
        The constant mean intensity :math:`\\mu`.
    info : dict
        Free-form provenance (how the spectrum was fitted), kept in ``describe()``.
    """

    name = "gaussian"
    capabilities = {"energy": EXACT, "grad": EXACT, "denoise": EXACT}

    def __init__(self, spectrum: Any, mean: float = 0.0, info: dict | None = None):
        P = torch.as_tensor(spectrum, dtype=torch.float64)
        if P.ndim != 2 or not torch.isfinite(P).all() or (P <= 0).any():
            raise InputError("spectrum", "a finite positive 2-D array", tuple(P.shape))
        self.spectrum = P
        self.mean = float(mean)
        self.shape = tuple(P.shape)
        self.info = dict(info or {})

    # -- core (real FFTs: P is symmetric, so the half-plane suffices) ---------------------
    def _half(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``P`` on the rfft half-plane and the multiplicity of each half-plane coefficient."""
        key = (x.dtype, x.device)
        if getattr(self, "_half_key", None) != key:
            H, W = self.shape
            m = torch.full((W // 2 + 1,), 2.0, dtype=x.dtype, device=x.device)
            m[0] = 1.0
            if W % 2 == 0:
                m[-1] = 1.0
            self._half_cache = (self.spectrum[:, :W // 2 + 1].to(dtype=x.dtype, device=x.device), m)
            self._half_key = key
        return self._half_cache

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """Unitary real-FFT coefficients of ``x - mean`` (half-plane, ``(..., H, W//2+1)``)."""
        self.check_shape(x)
        return torch.fft.rfft2(x - self.mean, norm="ortho")

    def log_normaliser(self, dtype=torch.float64) -> torch.Tensor:
        r""":math:`\tfrac12 \sum_\omega \log(2\pi P(\omega))`."""
        return 0.5 * torch.log(2 * np.pi * self.spectrum).sum().to(dtype)

    def energy(self, x):
        return self.energy_and_grad(x)[0]

    def grad(self, x):
        P, _ = self._half(x)
        return torch.fft.irfft2(self.coefficients(x) / P, s=self.shape, norm="ortho")

    def energy_and_grad(self, x):
        X = self.coefficients(x)
        P, m = self._half(x)
        quad = (m * (X.real ** 2 + X.imag ** 2) / P).sum(dim=(-2, -1))
        e = 0.5 * quad + self.log_normaliser(x.dtype).to(x.device)
        return e, torch.fft.irfft2(X / P, s=self.shape, norm="ortho")

    def denoise(self, z, s, differentiable: bool = False):
        P, _ = self._half(z)
        return self.mean + torch.fft.irfft2(self.coefficients(z) * P / (P + float(s) ** 2), s=self.shape, norm="ortho")

    def lipschitz(self) -> float:
        r""":math:`\max_\omega 1/P(\omega)`: the largest eigenvalue of :math:`\nabla^2 q = C^{-1}` (exact)."""
        return float(1.0 / self.spectrum.min())

    def sample(self, n: int = 1, rng: Any = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        r"""Draws ``(n, H, W)``: :math:`\mu + \mathcal F^*(\sqrt P \odot \mathcal F w)`, :math:`w` white."""
        g = np.random.default_rng(rng)
        w = torch.as_tensor(g.standard_normal((n, *self.shape)), dtype=dtype)
        W = torch.fft.fft2(w, norm="ortho")
        return self.mean + torch.fft.ifft2(W * torch.sqrt(self.spectrum.to(dtype)), norm="ortho").real

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
        """
        from ..data import random_crops

        if model not in ("power-law", "empirical"):
            raise InputError("model", "'power-law' or 'empirical'", repr(model))
        crops = random_crops(images, shape, n_crops, rng=rng)
        mu = float(crops.mean())
        per = (np.abs(np.fft.fft2(crops - mu)) ** 2).mean(axis=0) / (shape[0] * shape[1])
        f = radial_frequency(shape).numpy()
        if model == "empirical":
            df = 1.0 / max(shape)
            ring = np.round(f / df).astype(int)
            prof = np.bincount(ring.ravel(), per.ravel()) / np.bincount(ring.ravel())
            P = prof[ring]
            info = {"model": "empirical", "n_crops": n_crops}
        else:
            from scipy.optimize import least_squares
            mask = f > 0
            lp, ff = np.log(per[mask]), f[mask]

            def resid(p):
                loga, gam, logf0 = p
                return loga - gam / 2 * np.log(ff ** 2 + np.exp(logf0) ** 2) - lp

            sol = least_squares(resid, x0=[np.log(per[mask].mean()), 2.0, np.log(0.01)])
            loga, gam, logf0 = sol.x
            P = power_law(shape, float(np.exp(loga)), float(gam), float(np.exp(logf0))).numpy()
            info = {"model": "power-law", "amplitude": float(np.exp(loga)), "exponent": float(gam),
                    "f0": float(np.exp(logf0)), "n_crops": n_crops}
        return cls(P, mean=mu, info=info)

    def describe(self):
        return {**super().describe(), "mean": self.mean, "shape": list(self.shape), **self.info}
