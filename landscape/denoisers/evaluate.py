"""Denoising PSNR of a denoiser beside classical baselines, on the held-out images.

Baselines, tuned on a training image (``astronaut``) at each noise level, never on the test set:

* Gaussian filter (``scipy.ndimage.gaussian_filter``) with the width maximising PSNR;
* total variation (``skimage.restoration.denoise_tv_chambolle``) with the best weight.

Colour (``color=True``: ``data.COLOR_TEST``, images ``(3, H, W)``): the same baselines channel by channel
(TV jointly over the channels), and BM3D in its colour mode (``bm3d.bm3d_rgb`` with the true noise level;
the ``bm3d`` package, installed with ``pip install -e '.[bench]'``, a measured baseline only).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
import xarray as xr

from .. import data
from ..metrics import psnr

LEVELS = (5 / 255, 15 / 255, 25 / 255, 50 / 255)


def _gauss(z, w):
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(z, (0, w, w) if z.ndim == 3 else w, mode="reflect")


def _tv(z, w):
    from skimage.restoration import denoise_tv_chambolle
    return denoise_tv_chambolle(z, weight=w, channel_axis=0 if z.ndim == 3 else None)


def bm3d_rgb(z: np.ndarray, s: float) -> np.ndarray:
    """BM3D's colour mode at the true noise level ``s``, on a ``(3, H, W)`` image in [0, 1]."""
    import bm3d
    return np.moveaxis(bm3d.bm3d_rgb(np.moveaxis(z, 0, -1), s), -1, 0)


BASELINES: dict[str, tuple[Callable, np.ndarray]] = {
    "gaussian-filter": (_gauss, np.geomspace(0.3, 4.0, 16)),
    "tv": (_tv, np.geomspace(0.005, 0.5, 16)),
}


def tune(method: str, s: float, rng: np.random.Generator, tune_image: str = "astronaut", color: bool = False) -> float:
    fn, grid = BASELINES[method]
    x = data.center_crop(data.load(tune_image, color=color), 256)
    z = x + s * rng.standard_normal(x.shape)
    return float(grid[int(np.argmax([psnr(fn(z, w), x) for w in grid]))])


def psnr_table(denoisers: dict[str, Callable[[torch.Tensor, float], torch.Tensor]],
               images: Sequence[str] | None = None, levels: Sequence[float] = LEVELS, *, rng: Any = 0,
               color: bool = False, bm3d: bool = False) -> xr.Dataset:
    """PSNR (dB) over dims ``method``, ``image``, ``level``; the same noise for every method. ``color``: colour
    images (default ``data.COLOR_TEST``) and denoisers on ``(B, 3, H, W)``; ``bm3d``: add BM3D (colour mode for
    colour images, else ``bm3d.bm3d``) at the true level."""
    g = np.random.default_rng(rng)
    images = list(images if images is not None else (data.COLOR_TEST if color else data.TEST))
    methods = list(denoisers) + list(BASELINES) + (["bm3d"] if bm3d else [])
    out = np.zeros((len(methods), len(images), len(levels)))
    params = {m: [tune(m, s, g, color=color) for s in levels] for m in BASELINES}
    for j, name in enumerate(images):
        x = data.load(name, color=color)
        for k, s in enumerate(levels):
            z = x + s * g.standard_normal(x.shape)
            for i, m in enumerate(methods):
                if m == "bm3d":
                    import bm3d as _bm3d
                    est = bm3d_rgb(z, s) if color else _bm3d.bm3d(z, s)
                elif m in BASELINES:
                    est = BASELINES[m][0](z, params[m][k])
                else:
                    with torch.no_grad():
                        est = denoisers[m](torch.as_tensor(z, dtype=torch.float32)[None], s)[0].double().numpy()
                out[i, j, k] = psnr(np.clip(est, 0, 1), x)
    ds = xr.Dataset({"psnr": (("method", "image", "level"), out, {"units": "dB"})},
                    coords={"method": methods, "image": list(images), "level_255": ("level", [s * 255 for s in levels]),
                            "level": list(levels)})
    for m in BASELINES:
        ds.attrs[f"{m}_params"] = str(params[m])
    return ds
