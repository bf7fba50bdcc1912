"""Denoising PSNR of a denoiser beside classical baselines, on the held-out images.

Baselines, tuned on a training image (``astronaut``) at each noise level, never on the test set:

* Gaussian filter (``scipy.ndimage.gaussian_filter``) with the width maximising PSNR;
* total variation (``skimage.restoration.denoise_tv_chambolle``) with the best weight.
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
    return gaussian_filter(z, w, mode="reflect")


def _tv(z, w):
    from skimage.restoration import denoise_tv_chambolle
    return denoise_tv_chambolle(z, weight=w)


BASELINES: dict[str, tuple[Callable, np.ndarray]] = {
    "gaussian-filter": (_gauss, np.geomspace(0.3, 4.0, 16)),
    "tv": (_tv, np.geomspace(0.005, 0.5, 16)),
}


def tune(method: str, s: float, rng: np.random.Generator, tune_image: str = "astronaut") -> float:
    fn, grid = BASELINES[method]
    x = data.center_crop(data.load(tune_image), 256)
    z = x + s * rng.standard_normal(x.shape)
    return float(grid[int(np.argmax([psnr(fn(z, w), x) for w in grid]))])


def psnr_table(denoisers: dict[str, Callable[[torch.Tensor, float], torch.Tensor]],
               images: Sequence[str] = data.TEST, levels: Sequence[float] = LEVELS, *, rng: Any = 0) -> xr.Dataset:
    """PSNR (dB) over dims ``method``, ``image``, ``level``; the same noise for every method."""
    g = np.random.default_rng(rng)
    methods = list(denoisers) + list(BASELINES)
    out = np.zeros((len(methods), len(images), len(levels)))
    params = {m: [tune(m, s, g) for s in levels] for m in BASELINES}
    for j, name in enumerate(images):
        x = data.load(name)
        for k, s in enumerate(levels):
            z = x + s * g.standard_normal(x.shape)
            for i, m in enumerate(methods):
                if m in BASELINES:
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
