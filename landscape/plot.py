"""Shared plotting helpers (matplotlib, headless-safe) and the ``ds.landscape`` accessor."""

from __future__ import annotations

from typing import Any

import xarray as xr


def get_ax(ax: Any = None, **subplots: Any):
    """``ax`` itself, or a new axes on a new figure."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(**subplots)
    return ax


@xr.register_dataset_accessor("landscape")
class LandscapeAccessor:
    """``ds.landscape.plot()`` draws the figure of the study that made ``ds``."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def plot(self, ax: Any = None, **kw: Any):
        from .studies import get as get_study
        study = self._ds.attrs.get("study")
        if study is None:
            raise ValueError("dataset: expected a study result (attrs['study'] missing)")
        return get_study(study).plot(self._ds, ax=ax, **kw)
