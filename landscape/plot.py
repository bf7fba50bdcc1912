"""Shared plotting helpers (matplotlib, headless-safe); the ``ds.landscape`` accessor lives with the
studies it dispatches to (``landscape.studies``)."""

from __future__ import annotations

from typing import Any



def get_ax(ax: Any = None, **subplots: Any):
    """``ax`` itself, or a new axes on a new figure."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(**subplots)
    return ax
