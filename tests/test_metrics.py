"""Image metrics: scikit-image's PSNR/SSIM, and Levin et al.'s shift-tolerant SSD and error ratio
against a brute-force search and against shifted copies of the truth."""

import numpy as np
import pytest

from landscape import data, metrics
from landscape._checks import InputError


@pytest.fixture(scope="module")
def crop():
    return data.center_crop(data.load("camera"), 48)


def test_psnr_and_ssim_are_scikit_images_and_psnr_matches_its_formula(crop, rng):
    noisy = crop + 0.05 * rng.standard_normal(crop.shape)
    mse = ((noisy - crop) ** 2).mean()
    assert metrics.psnr(noisy, crop) == pytest.approx(10 * np.log10(1 / mse), rel=1e-12)
    assert metrics.ssim(crop, crop) == pytest.approx(1.0)
    assert 0 < metrics.ssim(noisy, crop) < 0.9


def test_shift_tolerant_ssd_equals_a_brute_force_search(crop, rng):
    """The library's search against an independent loop: bilinear interpolation written out by hand
    (integer part by slicing, fractional part by weights) on a small case (+-1 px, 0.25 steps, 4 px border)."""
    x = np.clip(crop + 0.02 * rng.standard_normal(crop.shape), 0, 1)
    ssd, (dy, dx) = metrics.shift_tolerant_ssd(x, crop, border=4, max_shift=1.0, step=0.25)

    def moved(img, sy, sx):                     # out[i, j] = img(i - sy, j - sx), edges clamped
        h, w = img.shape
        i = np.clip(np.arange(h)[:, None] - sy, 0, h - 1)
        j = np.clip(np.arange(w)[None, :] - sx, 0, w - 1)
        i0, j0 = np.floor(i).astype(int), np.floor(j).astype(int)
        i1, j1 = np.minimum(i0 + 1, h - 1), np.minimum(j0 + 1, w - 1)
        a, b = i - i0, j - j0
        return ((1 - a) * (1 - b) * img[i0, j0] + (1 - a) * b * img[i0, j1] + a * (1 - b) * img[i1, j0]
                + a * b * img[i1, j1])

    brute = min((((moved(x, sy, sx) - crop)[4:-4, 4:-4] ** 2).sum(), sy, sx)
                for sy in np.arange(-4, 5) * 0.25 for sx in np.arange(-4, 5) * 0.25)
    assert ssd == pytest.approx(brute[0], rel=1e-9)
    assert (dy, dx) == (brute[1], brute[2])


def test_a_shifted_copy_of_the_truth_scores_zero_and_the_true_kernel_ratio_is_one(crop):
    """Levin's protocol forgives translations: the truth moved by (-3, 2) px is found at the opposite
    shift with SSD 0 (up to round-off); moved by a quarter pixel (bilinear, which also smooths), the
    search lands within a quarter pixel of the opposite shift. r(x, x) = 1."""
    from scipy.ndimage import shift
    moved = shift(crop, (-3.0, 2.0), order=1, mode="nearest")
    ssd, (dy, dx) = metrics.shift_tolerant_ssd(moved, crop)
    assert (dy, dx) == (3.0, -2.0) and ssd < 1e-20
    quarter = shift(crop, (-1.25, 0.75), order=1, mode="nearest")
    ssd_q, (qy, qx) = metrics.shift_tolerant_ssd(quarter, crop)
    assert abs(qy - 1.25) <= 0.25 and abs(qx + 0.75) <= 0.25
    assert ssd_q < 0.2 * ((quarter - crop)[15:-15, 15:-15] ** 2).sum()
    blurred = shift(crop, (0.3, 0.0), order=1)
    assert metrics.error_ratio(blurred, blurred, crop) == 1.0


def test_success_rates_and_bad_input(crop):
    np.testing.assert_allclose(metrics.success_rate([1.0, 1.6, 2.9, 4.0]), [0.25, 0.5, 0.5, 0.75])
    with pytest.raises(InputError, match="border"):
        metrics.shift_tolerant_ssd(crop, crop, border=2)
    with pytest.raises(InputError, match=r"x: expected a gray \(H, W\) or colour \(C, H, W\) image"):
        metrics.shift_tolerant_ssd(crop[:10], crop)
    with pytest.raises(InputError, match="x: expected a gray"):
        metrics.shift_tolerant_ssd(np.stack([crop] * 3)[None], np.stack([crop] * 3)[None])


def test_local_blur_is_zero_for_the_truth_one_for_a_flat_image_and_grows_with_the_blur(crop):
    from scipy.ndimage import gaussian_filter
    np.testing.assert_allclose(metrics.local_blur(crop, crop), 0.0, atol=1e-12)
    np.testing.assert_allclose(metrics.local_blur(np.full_like(crop, crop.mean()), crop), 1.0, atol=1e-12)
    means = [metrics.local_blur(gaussian_filter(crop, w, mode="wrap"), crop).mean() for w in (0.5, 1.0, 2.0)]
    assert 0 < means[0] < means[1] < means[2] < 1


def test_coverage_of_a_calibrated_posterior_is_its_level(rng):
    # x* and the draws from the same distribution: the central interval holds x* with probability `level`
    # (binomial error over 4096 pixels about 0.005, the quantiles' own over 4000 draws smaller)
    x_true = rng.standard_normal((64, 64))
    draws = rng.standard_normal((4000, 64, 64))
    for level in (0.5, 0.9):
        assert abs(metrics.coverage(draws, x_true, level) - level) < 0.025
    assert metrics.coverage(draws, x_true + 100.0, 0.9) == 0.0
    with pytest.raises(InputError, match="level"):
        metrics.coverage(draws, x_true, 1.5)


def test_colour_metrics_are_the_per_channel_ones():
    """On a (3, H, W) image: SSIM is the mean of the channels' SSIMs (not a 3-D volume's), the local mean and
    the local blur act on each channel alone (no smoothing across channels)."""
    x = data.center_crop(data.load("chelsea", color=True), 40)
    blurred = np.stack([metrics.local_mean(c, 1.5) for c in x])
    ref = np.mean([metrics.ssim(b, c) for b, c in zip(blurred, x)])
    assert metrics.ssim(blurred, x) == pytest.approx(ref, rel=1e-12)
    np.testing.assert_allclose(metrics.local_mean(x), np.stack([metrics.local_mean(c) for c in x]), atol=1e-15)
    np.testing.assert_allclose(metrics.local_blur(blurred, x),
                               np.stack([metrics.local_blur(b, c) for b, c in zip(blurred, x)]), atol=1e-12)
    with pytest.raises(InputError, match="ref"):
        metrics.ssim(np.zeros((2, 3, 8, 8)), np.zeros((2, 3, 8, 8)))


def test_the_colour_shift_tolerant_ssd_moves_every_channel_by_one_shift(rng):
    """On (3, H, W): the SSD at the returned shift is the sum of the three gray SSDs at that shift (each channel
    moved alike), and no other searched shift gives a smaller sum; the channels moved by (2, -1) px together
    are found at the opposite shift with SSD 0."""
    from scipy.ndimage import shift
    x = data.center_crop(data.load("chelsea", color=True), 40)
    noisy = np.clip(x + 0.02 * rng.standard_normal(x.shape), 0, 1)
    kw = dict(border=4, max_shift=1.0, step=0.25)
    ssd, (dy, dx) = metrics.shift_tolerant_ssd(noisy, x, **kw)
    per_shift = {(sy, sx): sum(((shift(n, (sy, sx), order=1, mode="nearest") - c)[4:-4, 4:-4] ** 2).sum()
                               for n, c in zip(noisy, x))
                 for sy in metrics.shifts(1.0, 0.25) for sx in metrics.shifts(1.0, 0.25)}
    assert ssd == pytest.approx(per_shift[(dy, dx)], rel=1e-12)
    assert ssd == pytest.approx(min(per_shift.values()), rel=1e-12)
    moved = np.stack([shift(c, (-2.0, 1.0), order=1, mode="nearest") for c in x])
    ssd0, arg = metrics.shift_tolerant_ssd(moved, x)
    assert arg == (2.0, -1.0) and ssd0 < 1e-20
    with pytest.raises(InputError, match="x"):
        metrics.shift_tolerant_ssd(x[:2], x)
