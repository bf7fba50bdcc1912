"""Shared plotting helpers (matplotlib, headless-safe); the ``ds.landscape`` accessor lives with the
studies it dispatches to (``landscape.studies``).

Images are drawn as the toolkit stores them: gray ``(H, W)`` with a gray colour map, colour
``(3, H, W)`` (channel first, as in every results file's ``channel`` dimension) as RGB. Intensities are
in [0, 1]; values outside are clipped for display only.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._checks import InputError

#: channel names of a colour image (``data.load(name, color=True)``)
CHANNELS = ("R", "G", "B")


def get_ax(ax: Any = None, **subplots: Any):
    """``ax`` itself, or a new axes on a new figure."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(**subplots)
    return ax


def _pixels(img: Any, name: str) -> np.ndarray:
    a = np.asarray(getattr(img, "values", img), dtype=float)
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[0] == 3)):
        raise InputError(name, "a gray image (H, W) or a colour image (3, H, W)", a.shape)
    return a


def image(img: Any, ax: Any = None, title: str | None = None, **imshow: Any):
    """Draw one image: gray ``(H, W)`` with ``cmap="gray"`` on [0, 1], colour ``(3, H, W)`` as RGB
    (moved to ``(H, W, 3)`` and clipped to [0, 1]). ``img``: an array or a DataArray. Returns the axes."""
    a = _pixels(img, "img")
    ax = get_ax(ax)
    if a.ndim == 3:
        ax.imshow(np.clip(np.moveaxis(a, 0, -1), 0.0, 1.0), **imshow)
    else:
        ax.imshow(a, **{"cmap": "gray", "vmin": 0.0, "vmax": 1.0, **imshow})
    if title is not None:
        ax.set_title(title, fontsize=8)
    ax.axis("off")
    return ax


def error_maps(estimate: Any, truth: Any, ax: Any = None, vmax: float = 0.25, cmap: str = "magma",
               title: str = "|error|", norm: Any = None) -> Sequence[Any]:
    """Draw :math:`|\\hat x - x^\\star|`: one map for a gray image, one per channel (R, G, B) for a colour
    one, on one colour scale ``[0, vmax]`` (larger errors saturate): one ``Normalize`` shared by every map,
    or ``norm`` (pass the same one to several calls so that one colour bar serves them all). ``ax``: one axes
    (gray) or a sequence of three (colour); new ones when omitted. Returns the axes drawn in (the last image
    is ``ax[-1].images[0]``, for a colour bar)."""
    from matplotlib.colors import Normalize
    e, t = _pixels(estimate, "estimate"), _pixels(truth, "truth")
    if e.shape != t.shape:
        raise InputError("truth", f"the estimate's shape {e.shape}", t.shape)
    err = np.abs(e - t)
    maps = list(err) if err.ndim == 3 else [err]
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(1, len(maps), figsize=(2.2 * len(maps), 2.4), squeeze=False)
        ax = ax[0]
    axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
    if len(axes) != len(maps):
        raise InputError("ax", f"{len(maps)} axes (one per channel)", len(axes))
    norm = norm if norm is not None else Normalize(0.0, vmax)
    for a, m, c in zip(axes, maps, CHANNELS if len(maps) == 3 else ("",)):
        a.imshow(m, cmap=cmap, norm=norm)
        a.set_title(f"{title} {c}".strip(), fontsize=8)
        a.axis("off")
    return axes
