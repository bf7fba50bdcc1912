"""Studies: each a pure, seeded function of its configuration returning an ``xarray.Dataset``,
with its options (a dataclass) and its figure. ``landscape list`` shows them, ``landscape run``
runs them."""

from __future__ import annotations

import dataclasses
from types import ModuleType

from .._checks import InputError
from . import blurry_is_more_likely, map_vs_marginal, trivial_minimizer

STUDIES: dict[str, ModuleType] = {
    "trivial-minimizer": trivial_minimizer,
    "map-vs-marginal": map_vs_marginal,
    "blurry-is-more-likely": blurry_is_more_likely,
}


def get(name: str) -> ModuleType:
    if name not in STUDIES:
        raise InputError("study", "one of " + ", ".join(STUDIES), repr(name))
    return STUDIES[name]


def options(name: str) -> list[dataclasses.Field]:
    return list(dataclasses.fields(get(name).Config))
