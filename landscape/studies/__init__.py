"""Studies: each a pure, seeded function of its configuration returning an ``xarray.Dataset``,
with its options (a dataclass) and its figure. ``landscape list`` shows them, ``landscape run``
runs them.

Every study module implements :class:`Study`. A study whose run is a set of independent cases also
defines ``cases`` / ``run_part`` / ``combine`` (:data:`PARTED`): ``sweep`` then farms its cases out to
dask workers (``--workers``), streams each to disk as it ends and resumes a rerun case by case. For a
product of list options, ``common.product_cases`` / ``single_case`` / ``concat_cases`` are the one
mechanism (``map-vs-mmse``, ``posterior-statistics``, ``pnp-vs-unrolled``, ``morse-bott``,
``blurry-is-more-likely``, ``real-shake``); ``trivial-minimizer`` and ``local-recovery`` cut their own; ``map-vs-marginal``
(one profile) is one case. A study longer than a page is a package: the page in ``__init__``, its
``report`` (summary and plot) and, for the largest, its measurements and verdicts beside it.
``tests/test_sweep.py`` checks, for every parted study, that a 2-worker run equals the in-process one."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any, Protocol

import xarray as xr

from .._checks import InputError

#: study name -> its module under ``landscape.studies`` (imported when first asked for: ``landscape run X``
#: loads X alone, and ``import landscape`` none)
MODULES = {
    "trivial-minimizer": "trivial_minimizer",
    "map-vs-marginal": "map_vs_marginal",
    "blurry-is-more-likely": "blurry_is_more_likely",
    "map-vs-mmse": "map_vs_mmse",
    "pnp-vs-unrolled": "pnp_vs_unrolled",
    "posterior-statistics": "posterior_statistics",
    "morse-bott": "morse_bott",
    "local-recovery": "local_recovery",
    "real-shake": "real_shake",
}


class _Registry(Mapping):
    """The registered studies, name -> module, each module imported on first access."""

    def __getitem__(self, name: str) -> ModuleType:
        return importlib.import_module(f"{__name__}.{MODULES[name]}")

    def __iter__(self) -> Iterator[str]:
        return iter(MODULES)

    def __len__(self) -> int:
        return len(MODULES)


STUDIES: Mapping[str, ModuleType] = _Registry()


class Study(Protocol):
    """What a study module holds (a module, read as this protocol)."""

    NAME: str                      #: its name on the command line
    SUMMARY: str                   #: one line for ``landscape list``
    Config: type                   #: its options: a dataclass of ``_checks.option`` fields, with ``resolved()``
    QUICK: dict[str, Any]          #: ``--quick``: option -> quick value or rule (``common.apply_quick``)

    def run(self, config: Any = None, *, progress: bool = True) -> xr.Dataset: ...
    def summary(self, ds: xr.Dataset) -> str: ...
    def plot(self, ds: xr.Dataset, ax: Any = None) -> Any: ...


#: the members of a study cut into cases: ``cases(config) -> [config]``, ``run_part(config, progress)
#: -> Dataset``, ``combine(config, parts) -> Dataset``
PARTED = ("cases", "run_part", "combine")


def missing(mod: ModuleType) -> list[str]:
    """The :class:`Study` members ``mod`` lacks (a parted study must have all of :data:`PARTED` or none)."""
    out = [n for n in ("NAME", "SUMMARY", "Config", "QUICK", "run", "summary", "plot") if not hasattr(mod, n)]
    have = [n for n in PARTED if callable(getattr(mod, n, None))]
    return out + ([n for n in PARTED if n not in have] if have else [])


def get(name: str) -> ModuleType:
    if name not in STUDIES:
        raise InputError("study", "one of " + ", ".join(STUDIES), repr(name))
    return STUDIES[name]


def options(name: str) -> list[dataclasses.Field]:
    return list(dataclasses.fields(get(name).Config))
