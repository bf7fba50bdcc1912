"""Offline natural images, as float64 grayscale arrays in [0, 1].

Only files shipped inside installed packages are read (scikit-image's ``data`` folder and
PyWavelets' ``data`` folder); nothing is downloaded.

* ``TRAIN``: scikit-image's natural photographs, for fitting and training priors.
* ``TEST``: held out: ``camera`` (scikit-image), ``ascent`` and ``aero`` (PyWavelets).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ._checks import InputError, image2d, image_array

TRAIN = ("astronaut", "chelsea", "coffee", "coins", "moon", "rocket", "motorcycle_left",
         "brick", "grass", "gravel")
TEST = ("camera", "ascent", "aero")
#: colour photographs for the colour prior (``load(name, color=True)``): trained on ``COLOR_TRAIN``,
#: measured on ``COLOR_TEST``, which the colour prior never sees (the gray priors see their luminance)
COLOR_TRAIN = ("astronaut", "rocket", "motorcycle_left", "ihc")
COLOR_TEST = ("chelsea", "coffee")

_SKIMAGE_FILES = {
    "astronaut": "astronaut.png", "chelsea": "chelsea.png", "coffee": "coffee.png",
    "coins": "coins.png", "moon": "moon.png", "rocket": "rocket.jpg",
    "motorcycle_left": "motorcycle_left.png", "brick": "brick.png", "grass": "grass.png",
    "gravel": "gravel.png", "camera": "camera.png", "ihc": "ihc.png",
}
_PYWT = ("ascent", "aero")
#: the luminance weights of an RGB image (ITU-R BT.709, scikit-image's ``rgb2gray``); they sum to 1
LUMA = (0.2125, 0.7154, 0.0721)


def _to_gray01(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 3:
        a = a[..., :3].astype(np.float64) @ np.array(LUMA)
        scale = 255.0
    else:
        scale = 255.0 if a.dtype == np.uint8 or a.max() > 1 else 1.0
    return np.clip(a.astype(np.float64) / scale, 0.0, 1.0)


def luminance(x: np.ndarray) -> np.ndarray:
    r"""The luminance :math:`\sum_c w_c x_c` (:data:`LUMA`) of channels-first RGB images ``(..., 3, H, W)``.

    It is linear, so the luminance of :math:`h \star x + \sigma n` (one kernel on every channel, independent
    noise) is :math:`h \star \mathrm{lum}(x)` plus noise of standard deviation :math:`\sigma \|w\|_2`.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim < 3 or x.shape[-3] != 3:
        raise InputError("x", "RGB images with channels first (..., 3, H, W)", x.shape)
    return np.einsum("c,...chw->...hw", np.array(LUMA), x)


def names(color: bool = False) -> tuple[str, ...]:
    """All image names available offline (``color=True``: those with colour)."""
    return COLOR_TRAIN + COLOR_TEST if color else TRAIN + TEST


def _to_rgb01(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise InputError("image", "an RGB(A) image for color=True", f"shape {a.shape}")
    scale = float(np.iinfo(a.dtype).max) if np.issubdtype(a.dtype, np.integer) else 1.0
    return np.clip(np.moveaxis(a[..., :3].astype(np.float64) / scale, -1, 0), 0.0, 1.0)


def load(name: str, color: bool = False) -> np.ndarray:
    """Image ``name`` as a float64 array in [0, 1]: grayscale (luminance), or its colour channels first.

    Parameters
    ----------
    name : str
        One of ``names()``: ``TRAIN`` (the learned priors' training images) or ``TEST`` (held out);
        with ``color``, one of ``names(color=True)``.
    color : bool
        Keep the colour: ``(3, H, W)`` RGB.

    Returns
    -------
    ndarray ``(H, W)``, or ``(3, H, W)`` with ``color``
    """
    if color and name not in names(color=True):
        raise InputError("image", "a colour image: one of " + ", ".join(names(color=True)), repr(name))
    convert = _to_rgb01 if color else _to_gray01
    if name in _PYWT:
        import pywt.data
        return convert(getattr(pywt.data, name)())
    if name in _SKIMAGE_FILES:
        import skimage
        from skimage.io import imread
        path = os.path.join(os.path.dirname(skimage.__file__), "data", _SKIMAGE_FILES[name])
        return convert(imread(path))
    raise InputError("image", "one of " + ", ".join(names()), repr(name))


def load_file(path: str, color: bool = False) -> np.ndarray:
    """A user image (.npy, or any format scikit-image reads), grayscale or colour in [0, 1].

    Parameters
    ----------
    path : str
        Integer images are scaled by their dtype's maximum; RGB(A) is converted to luminance unless
        ``color``.
    color : bool
        Keep the colour channels: an RGB(A) file (``.npy``: ``(H, W, 3)`` or ``(3, H, W)``) as ``(3, H, W)``.

    Returns
    -------
    ndarray ``(H, W)`` (``(3, H, W)`` with ``color``), float64 in [0, 1]; an :class:`InputError` naming
    ``image_file`` otherwise.
    """
    if not os.path.exists(path):
        raise InputError("image_file", "an existing image file", path)
    try:
        if path.endswith(".npy"):
            arr = np.load(path)
        else:
            from skimage.io import imread
            arr = imread(path)
    except Exception as exc:  # noqa: BLE001
        raise InputError("image_file", "a readable image (.npy, .png, .jpg, .tif)", f"{path} ({exc})") from None
    arr = np.asarray(arr)
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64) / np.iinfo(arr.dtype).max
    if color:
        if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] not in (3, 4):
            arr = np.moveaxis(arr, 0, -1)
        if not (arr.ndim == 3 and arr.shape[-1] in (3, 4)):
            raise InputError("image_file", "an RGB(A) image for --color", f"{path} (shape {arr.shape})")
        arr = image_array("image_file", np.moveaxis(arr[..., :3].astype(np.float64), -1, 0))
    else:
        if arr.ndim == 3 and arr.shape[-1] in (3, 4):
            arr = arr[..., :3] @ np.array(LUMA)
        arr = image2d("image_file", arr).astype(np.float64)
    if arr.min() < 0 or arr.max() > 1:
        raise InputError("image_file", "intensities in [0, 1] (or an integer image)",
                         f"range [{arr.min():.3g}, {arr.max():.3g}]")
    return arr


def center_crop(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """The central ``size`` crop of the last two axes (``(H, W)`` or ``(C, H, W)``)."""
    h, w = (size, size) if np.isscalar(size) else size
    H, W = image.shape[-2:]
    if h > H or w > W:
        raise InputError("crop", f"a crop no larger than the image {image.shape}", (h, w))
    r, c = (H - h) // 2, (W - w) // 2
    return image[..., r:r + h, c:c + w].copy()


def random_crops(images: Sequence[np.ndarray] | Sequence[str], size: int | tuple[int, int], n: int,
                 rng: Any = 0) -> np.ndarray:
    """``n`` random crops ``(n, h, w)`` drawn uniformly over the images at least that large, then positions (of the
    last two axes: colour images ``(C, H, W)``, all with the same ``C``, give ``(n, C, h, w)``); :class:`InputError`
    naming ``size`` when no image is."""
    g = np.random.default_rng(rng)
    imgs = [load(i) if isinstance(i, str) else np.asarray(i, dtype=np.float64) for i in images]
    h, w = (size, size) if np.isscalar(size) else size
    fits = [im for im in imgs if im.shape[-2] >= h and im.shape[-1] >= w]    # crops come from the images they fit
    if not fits:
        raise InputError("size", "a crop that fits inside at least one image (their sizes: "
                         + ", ".join(f"{im.shape[-2]}x{im.shape[-1]}" for im in imgs) + ")", f"{h}x{w}")
    imgs = fits
    out = np.empty((n, *imgs[0].shape[:-2], h, w))
    which = g.integers(0, len(imgs), n)
    for i, k in enumerate(which):
        im = imgs[k]
        r = g.integers(0, im.shape[-2] - h + 1)
        c = g.integers(0, im.shape[-1] - w + 1)
        out[i] = im[..., r:r + h, c:c + w]
    return out


def training_images(color: bool = False) -> list[np.ndarray]:
    """The ``TRAIN`` images (``color=True``: the ``COLOR_TRAIN`` photographs, ``(3, H, W)`` each)."""
    return [load(n, color=True) for n in COLOR_TRAIN] if color else [load(n) for n in TRAIN]
