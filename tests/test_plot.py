"""The shared image helpers: gray and colour images drawn as stored, error maps per channel on one scale."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from landscape import data, plot  # noqa: E402
from landscape._checks import InputError  # noqa: E402


def test_a_colour_image_is_drawn_as_rgb_and_a_gray_one_with_the_gray_map():
    rgb = data.center_crop(data.load("chelsea", color=True), 16)
    rgb[0, 0, 0] = 1.7                                            # out of range: clipped for display only
    ax = plot.image(xr.DataArray(rgb, dims=("channel", "row", "col")), title="chelsea")
    shown = ax.images[0].get_array()
    assert shown.shape == (16, 16, 3) and shown[0, 0, 0] == 1.0
    np.testing.assert_array_equal(shown[1:, 1:], np.moveaxis(rgb, 0, -1)[1:, 1:])
    assert ax.get_title() == "chelsea" and not ax.axison
    gray = plot.image(rgb[1])
    assert gray.images[0].get_cmap().name == "gray" and gray.images[0].get_clim() == (0.0, 1.0)


def test_error_maps_are_one_per_channel_on_one_scale():
    truth = data.center_crop(data.load("coffee", color=True), 12)
    est = truth.copy()
    est[2] += 0.1                                                 # an error in the blue channel only
    axes = plot.error_maps(est, truth, vmax=0.2)
    assert [a.get_title() for a in axes] == ["|error| R", "|error| G", "|error| B"]
    maps = [a.images[0].get_array() for a in axes]
    np.testing.assert_allclose(maps[2], 0.1, atol=1e-12)
    assert np.abs(maps[0]).max() == 0 == np.abs(maps[1]).max()
    assert all(a.images[0].get_clim() == (0.0, 0.2) for a in axes)
    assert axes[0].images[0].norm is axes[2].images[0].norm           # one scale: one colour bar serves all
    (one,) = plot.error_maps(est[0], truth[0])
    assert one.get_title() == "|error|"


@pytest.mark.parametrize("call,field", [
    (lambda: plot.image(np.zeros((2, 8, 8))), "img"),
    (lambda: plot.error_maps(np.zeros((8, 8)), np.zeros((3, 8, 8))), "truth"),
    (lambda: plot.error_maps(np.zeros((3, 8, 8)), np.zeros((3, 8, 8)), ax=plot.get_ax()), "ax"),
])
def test_bad_images_and_axes_are_refused_naming_the_argument(call, field):
    with pytest.raises(InputError, match=f"^{field}:"):
        call()
