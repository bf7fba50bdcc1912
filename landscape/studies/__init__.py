"""Studies: each a pure, seeded function of its configuration returning an ``xarray.Dataset``,
with its options (a dataclass) and its figure. ``landscape list`` shows them, ``landscape run``
runs them."""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import xarray as xr

from .._checks import InputError
from . import (
    blurry_is_more_likely,
    local_recovery,
    map_vs_marginal,
    map_vs_mmse,
    morse_bott,
    pnp_vs_unrolled,
    posterior_statistics,
    trivial_minimizer,
)

STUDIES: dict[str, ModuleType] = {
    "trivial-minimizer": trivial_minimizer,
    "map-vs-marginal": map_vs_marginal,
    "blurry-is-more-likely": blurry_is_more_likely,
    "map-vs-mmse": map_vs_mmse,
    "pnp-vs-unrolled": pnp_vs_unrolled,
    "posterior-statistics": posterior_statistics,
    "morse-bott": morse_bott,
    "local-recovery": local_recovery,
}


def get(name: str) -> ModuleType:
    if name not in STUDIES:
        raise InputError("study", "one of " + ", ".join(STUDIES), repr(name))
    return STUDIES[name]


def options(name: str) -> list[dataclasses.Field]:
    return list(dataclasses.fields(get(name).Config))


@xr.register_dataset_accessor("landscape")
class LandscapeAccessor:
    """``ds.landscape.plot()`` draws the figure of the study that made ``ds``."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def plot(self, ax: Any = None, **kw: Any):
        study = self._ds.attrs.get("study")
        if study is None:
            raise ValueError("dataset: expected a study result (attrs['study'] missing)")
        return get(study).plot(self._ds, ax=ax, **kw)
