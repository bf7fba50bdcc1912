r"""Image-quality measures, in one place: PSNR and SSIM (scikit-image's), Levin et al.'s
shift-tolerant error ratio for blind deblurring, the local loss of sharpness of an estimate, and the
pixelwise coverage of credible intervals drawn from a posterior.

Levin, Weiss, Durand & Freeman (CVPR 2009) score a blind deconvolution by the error ratio

.. math:: r = \frac{\mathrm{SSD}(\hat x_{\hat h}, x^\star)}{\mathrm{SSD}(\hat x_{h^\star}, x^\star)},

both images deconvolved by the same non-blind solver, :math:`\hat x_{\hat h}` with the estimated kernel and
:math:`\hat x_{h^\star}` with the true one. A kernel estimate is only defined up to a translation (the image
moves the other way), so each SSD is the minimum over sub-pixel shifts of the estimate: a ``border``
(15 px) cropped, shifts over :math:`\pm 5` px in steps of 0.25 px by bilinear interpolation. Success
rates are the fractions of cases with :math:`r \le t` (:math:`t` = 1.5, 2, 2.5, 3; :math:`t = 3` is the
usual cut). ``tests/test_metrics.py`` checks the search against a brute-force loop and that a shifted
copy of the truth scores zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import InputError

#: Levin et al.'s protocol: border cropped (px), largest shift searched (px), shift step (px)
BORDER, MAX_SHIFT, SHIFT_STEP = 15, 5.0, 0.25
#: the thresholds at which success rates are read (r <= 3 is the usual cut)
SUCCESS_THRESHOLDS = (1.5, 2.0, 2.5, 3.0)
#: width (px) of the Gaussian window of :func:`local_mean`
LOCAL_WINDOW = 2.0


def psnr(x: Any, ref: Any, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio (dB) of ``x`` against ``ref`` (scikit-image's)."""
    from skimage.metrics import peak_signal_noise_ratio
    return float(peak_signal_noise_ratio(np.asarray(ref, dtype=float), np.asarray(x, dtype=float),
                                         data_range=data_range))


def ssim(x: Any, ref: Any, data_range: float = 1.0) -> float:
    """Structural similarity of ``x`` against ``ref`` (scikit-image's, default window): gray ``(H, W)``, or
    colour ``(C, H, W)`` (the mean of the per-channel SSIMs, scikit-image's ``channel_axis=0``)."""
    from skimage.metrics import structural_similarity
    ref, x = np.asarray(ref, dtype=float), np.asarray(x, dtype=float)
    if ref.ndim not in (2, 3):
        raise InputError("ref", "a gray (H, W) or colour (C, H, W) image", ref.shape)
    return float(structural_similarity(ref, x, data_range=data_range, channel_axis=0 if ref.ndim == 3 else None))


def _bilinear_shift(x: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``x`` moved by ``(dy, dx)`` pixels: ``out[..., i, j] = x(..., i - dy, j - dx)``, bilinear, edges clamped
    (each channel of a ``(C, H, W)`` image alike)."""
    from scipy.ndimage import shift
    return shift(x, (0.0,) * (x.ndim - 2) + (dy, dx), order=1, mode="nearest")


def shifts(max_shift: float = MAX_SHIFT, step: float = SHIFT_STEP) -> np.ndarray:
    """The searched offsets along one axis: ``-max_shift, ..., max_shift`` in steps of ``step``."""
    n = int(round(max_shift / step))
    return np.arange(-n, n + 1) * step


def shift_tolerant_ssd(x: Any, ref: Any, *, border: int = BORDER, max_shift: float = MAX_SHIFT,
                       step: float = SHIFT_STEP) -> tuple[float, tuple[float, float]]:
    r"""Minimum over sub-pixel shifts of the sum of squared differences inside the cropped interior.

    Parameters
    ----------
    x, ref : array ``(H, W)`` or ``(C, H, W)``
        Estimate and reference (colour: every channel moved by the same shift, the SSD summed over them).
    border : int
        Pixels cropped on each side before comparing (they must cover ``max_shift``).
    max_shift, step : float
        The shifts searched on each axis.

    Returns
    -------
    (float, (float, float))
        :math:`\min_{d}\sum_{\text{interior}} (x(\cdot - d) - x^\star)^2` and the minimising shift.
    """
    x, ref = np.asarray(x, dtype=float), np.asarray(ref, dtype=float)
    if x.shape != ref.shape or x.ndim not in (2, 3):
        raise InputError("x", f"a gray (H, W) or colour (C, H, W) image of the reference's shape {ref.shape}",
                         x.shape)
    if border < np.ceil(max_shift) or 2 * border >= min(x.shape[-2:]):
        raise InputError("border", f"at least max_shift ({max_shift:g}) and below half the image {x.shape}", border)
    inner = (..., slice(border, -border), slice(border, -border))
    r = ref[inner]
    best, arg = np.inf, (0.0, 0.0)
    for dy in shifts(max_shift, step):
        for dx in shifts(max_shift, step):
            v = float(((_bilinear_shift(x, dy, dx)[inner] - r) ** 2).sum())
            if v < best:
                best, arg = v, (float(dy), float(dx))
    return best, arg


def error_ratio(x_estimated_kernel: Any, x_true_kernel: Any, x_true: Any, **kw: Any) -> float:
    """Levin et al.'s error ratio: the shift-tolerant SSD of the image deconvolved with the estimated
    kernel over that of the image deconvolved with the true kernel (same non-blind solver)."""
    num, _ = shift_tolerant_ssd(x_estimated_kernel, x_true, **kw)
    den, _ = shift_tolerant_ssd(x_true_kernel, x_true, **kw)
    if den <= 0:
        return 1.0 if num <= 0 else float("inf")
    return num / den


def success_rate(ratios: Any, thresholds: Any = SUCCESS_THRESHOLDS) -> np.ndarray:
    """Fraction of cases with error ratio at most each threshold (the cumulative success curve)."""
    r = np.asarray(ratios, dtype=float).ravel()
    if r.size == 0:
        raise InputError("ratios", "at least one error ratio", "none")
    return np.array([(r <= t).mean() for t in np.atleast_1d(thresholds)])


def local_mean(a: np.ndarray, window: float = LOCAL_WINDOW) -> np.ndarray:
    """Gaussian-windowed local mean of an image (standard deviation ``window`` px; wrap-around, like the
    circular problems); a colour image ``(C, H, W)`` channel by channel."""
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(a, (0,) * (np.ndim(a) - 2) + (window, window), mode="wrap")


def local_blur(x_hat: np.ndarray, x_true: np.ndarray, window: float = LOCAL_WINDOW) -> np.ndarray:
    r"""Local loss of gradient energy,

    .. math:: 1 - \overline{|\nabla\hat x|^2} / \overline{|\nabla x^\star|^2}

    (forward differences, bars the :func:`local_mean`): 0 where the estimate is as sharp as the truth, 1
    where it is flat; per channel for colour images ``(C, H, W)``."""
    def g2(a):
        return (np.roll(a, -1, -2) - a) ** 2 + (np.roll(a, -1, -1) - a) ** 2
    return 1 - local_mean(g2(x_hat), window) / np.maximum(local_mean(g2(x_true), window), 1e-12)


def coverage(draws: np.ndarray, x_true: np.ndarray, level: float) -> float:
    """Fraction of pixels whose central ``level`` credible interval (the quantiles of ``draws`` along axis 0)
    holds ``x_true``."""
    if not 0 < level < 1:
        raise InputError("level", "a credible level in (0, 1)", level)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return float(((x_true >= lo) & (x_true <= hi)).mean())
