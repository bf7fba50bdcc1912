"""Images: the luminance of colour photographs (the gray images scikit-image's ``rgb2gray`` gives) and its
input checks."""

import numpy as np
import pytest

from landscape import data
from landscape._checks import InputError


def test_the_luminance_of_a_colour_photograph_is_its_gray_version():
    rgb = data.load("chelsea", color=True)
    np.testing.assert_allclose(data.luminance(rgb), data.load("chelsea"), atol=1e-12)
    np.testing.assert_allclose(sum(data.LUMA), 1.0, atol=1e-12)
    batch = np.stack([rgb[:, :8, :8], rgb[:, 8:16, 8:16]])
    np.testing.assert_allclose(data.luminance(batch)[1], data.luminance(rgb[:, 8:16, 8:16]), atol=1e-15)


@pytest.mark.parametrize("shape", [(8, 8), (4, 8, 8), (8, 8, 3)])
def test_luminance_refuses_what_is_not_channels_first_rgb(shape):
    with pytest.raises(InputError, match=r"x: expected RGB images with channels first"):
        data.luminance(np.zeros(shape))
