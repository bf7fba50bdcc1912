"""What studies share: the options that define a blind-deblurring problem, and their reading."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import xarray as xr

from .. import data, kernels
from .._checks import (
    Check,
    InputError,
    device_check,
    file_or_empty,
    flag,
    grid_points,
    integer,
    kernel_or_empty,
    numbers,
    one_of,
    option,
    positive_number,
    shown,
    validate,
)


def device_option(what: str = "the problem, the solves and the learned priors' networks") -> Any:
    """The ``device`` option every device-aware study declares: ``cpu`` (default), ``cuda``, ``cuda:N`` or
    ``mps``, checked against what this machine has (``--device`` on the command line)."""
    return option("cpu", f"where {what} run: cpu, cuda, cuda:N or mps (the results' records come back to the "
                  "host)", device_check())


@dataclass
class ProblemConfig:
    """Image, kernel family, true parameter, grid and noise (base of study configurations)."""

    image: str = option("camera", "image name (data.names())", one_of(data.names()))
    image_file: str = option("", "your own image (.png/.npy; luminance unless --color); overrides --image",
                             file_or_empty("an image file"))
    color: bool = option(False, "keep the image's colour: (3, H, W) images, colour priors (data.names(color=True) "
                         "for --image)", flag())
    kernel_file: str = option("", "a measured kernel (.npy/text file, or a shipped name: levin2, ...) as h*: "
                              "scan t in h=(1-t)δ+t h*", kernel_or_empty())
    crop: int = option(64, "central crop size", integer(8))
    family: str = option("gaussian", "kernel family: " + ", ".join(kernels.FAMILIES), one_of(kernels.FAMILIES))
    kernel_size: int = option(15, "odd kernel size", Check("an odd integer >= 3", lambda v: isinstance(v, int)
                                                           and v >= 3 and v % 2 == 1, (0, 4, -3)))
    theta_true: tuple[float, ...] = option((1.5,), "true parameter(s), comma-separated", numbers(allow_empty=True))
    theta_max: float = option(3.0, "grid upper end for the first parameter", positive_number())
    n_theta: int = option(25, "grid points from 0 to theta_max", grid_points(3))
    noise: float = option(0.01, "noise standard deviation sigma", positive_number())

    def validate_problem(self, min_points: int = 3) -> None:
        """The declared checks, then those that depend on the family."""
        validate(self)
        if self.n_theta < min_points:
            raise InputError("n_theta", f"at least {min_points} grid points", self.n_theta)


def family_and_truth(cfg: ProblemConfig) -> tuple[kernels.KernelFamily, np.ndarray, float]:
    """The family, the checked true parameter and the grid's upper end (``Path`` family for a kernel file)."""
    if cfg.kernel_file:
        return kernels.Path(kernels.load(cfg.kernel_file), name="kernel_file"), np.array([1.0]), 1.0
    fam = kernels.get(cfg.family, cfg.kernel_size)
    return fam, true_parameter(fam, cfg.theta_true), cfg.theta_max


def true_parameter(fam: kernels.KernelFamily, values: tuple[float, ...]) -> np.ndarray:
    """The option ``theta_true`` read for family ``fam``: its number of values and its domain checked,
    errors naming ``theta_true`` (the option typed, not a parameter derived from it)."""
    theta = np.array(values, dtype=float)
    if theta.size != fam.n_params:
        raise InputError("theta_true", f"{fam.n_params} value(s) for family {fam.name!r}", theta.size)
    try:
        fam.check(theta)
    except InputError as exc:
        raise InputError("theta_true", exc.expected, ",".join(f"{t:g}" for t in values)) from None
    return theta


def theta_grid(theta_true: np.ndarray, grid_max: float, n: int, include_truth: bool = False) -> np.ndarray:
    """``(n, p)`` grid: the first parameter from 0 to ``grid_max``, the others at their true values."""
    g = np.linspace(0.0, grid_max, n)
    if include_truth:
        g = np.unique(np.concatenate([g, theta_true[:1]]))
    grid = np.tile(theta_true, (len(g), 1))
    grid[:, 0] = g
    return grid


def image_sources(names: tuple[str, ...], files: tuple[str, ...], crop: int, color: bool = False
                  ) -> list[tuple[str, np.ndarray]]:
    """``(label, image)`` of each image a study runs on: the central ``crop`` (at most the image) of every
    file in ``files`` (the user's images) when given, else of every named image; ``(3, crop, crop)`` colour
    crops with ``color``."""
    if files:
        out = []
        for f in files:
            img = data.load_file(f, color=color)
            if min(img.shape[-2:]) < crop:
                raise InputError("image_file", f"an image at least {crop}x{crop} (--crop)", f"{f}: {img.shape}")
            out.append((f, data.center_crop(img, crop)))
        return out
    return [(n, data.center_crop(data.load(n, color=color), crop)) for n in names]


def load_image(cfg: ProblemConfig, special: dict[str, Callable[[], np.ndarray]] | None = None) -> np.ndarray:
    """The central ``crop`` of the image file or named image (or of a ``special`` generator); with
    ``cfg.color`` (where the configuration has it) the colour image ``(3, H, W)``."""
    color = bool(getattr(cfg, "color", False))
    if cfg.image_file:
        img = data.load_file(cfg.image_file, color=color)
        return data.center_crop(img, min(cfg.crop, *img.shape[-2:]))
    if special and cfg.image in special:
        if color:
            raise InputError("color", f"a named photograph for --color (not the generated {cfg.image!r})", cfg.image)
        return special[cfg.image]()
    return data.center_crop(data.load(cfg.image, color=color), cfg.crop)


# -- --quick, declared ------------------------------------------------------------------------
# A study declares ``QUICK = {option: rule}``: a rule is the quick value itself, or a function of
# (value, config) -> quick value (``at_most(13)``, ``FIRST``). Under ``quick``, an option left at its
# default takes its quick value; an option the user set keeps it (``apply_quick`` reports where the
# two differ, and the command line prints that). A definition file's own options are clamped
# (``force``): ``--quick`` on a file is its smoke run; ``--set`` values still win.

def at_most(n: float) -> Callable[[Any, Any], Any]:
    """Quick rule: no more than ``n``."""
    return lambda v, cfg: min(v, n)


def at_least(n: float) -> Callable[[Any, Any], Any]:
    """Quick rule: no less than ``n``."""
    return lambda v, cfg: max(v, n)


def first(k: int = 1) -> Callable[[Any, Any], Any]:
    """Quick rule: the first ``k`` entries of a list option."""
    return lambda v, cfg: tuple(v)[:k]


FIRST = first(1)


def quick_resolved(cfg: Any, rules: dict[str, Any]) -> Any:
    """A validated copy of ``cfg``, with the quick ``rules`` applied when its ``quick`` flag is set: how
    every study's ``resolved()`` begins (its own cross-option checks follow)."""
    c = validate(dataclasses.replace(cfg))
    return apply_quick(c, rules)[0] if c.quick else c


def color_resolved(cfg: Any, rules: dict[str, Any], colour_defaults: dict[str, Any]) -> Any:
    """:func:`quick_resolved` for a study with ``--color`` (a ``color`` flag and ``images``).

    With ``color`` set, each option still at its gray default takes its colour counterpart from
    ``colour_defaults`` (``{"images": data.COLOR_TEST, ...}``), and the quick rules treat it as a default;
    the named images must then be colour photographs (``data.COLOR_TEST``, unless files are given). Every
    prior of the registry has a colour version (``priors.make_prior`` builds it for ``(3, H, W)``), so a study's
    prior options are not restricted here; a user prior (``file.py:factory``) is built for ``(3, H, W)`` images.
    """
    c = validate(dataclasses.replace(cfg))
    defaults = {f.name: f.default for f in dataclasses.fields(c)}
    swapped = {f: v for f, v in colour_defaults.items() if c.color and getattr(c, f) == defaults[f]}
    c = dataclasses.replace(c, **swapped)
    if c.quick:
        c = apply_quick(c, rules, force=set(swapped))[0]
    if c.color:
        gray = [n for n in c.images if n not in data.COLOR_TEST]
        if gray and not getattr(c, "image_file", ()):
            raise InputError("images", "with --color, held-out colour photographs: " + ", ".join(data.COLOR_TEST),
                             shown(c.images))
    return c


def apply_quick(cfg: Any, rules: dict[str, Any], force: tuple[str, ...] | set[str] = ()) -> tuple[Any, list[str]]:
    """``cfg`` with the quick ``rules`` applied to the options at their default (and those in ``force``).

    Returns
    -------
    (config, notes)
        A new configuration, and one note per option kept at the user's value where the quick run
        would have used another (``"n_theta=100000 (the quick run uses 13)"``).
    """
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    out, notes = dataclasses.replace(cfg), []
    for name, rule in rules.items():
        value = getattr(out, name)
        new = rule(value, out) if callable(rule) else rule
        if value == fields[name].default or name in force:
            setattr(out, name, new)
        elif new != value:
            notes.append(f"{name}={shown(value)!r} (the quick run uses {shown(new)!r})")
    return out, notes


# -- cases: one mechanism for every study whose run is a product of list options -------------------
# A study that runs the same computation for every combination of some list options declares them
# (``CASE_FIELDS``); ``product_cases`` cuts a configuration into one configuration per combination
# (one-entry tuples), the study's ``run_part`` computes one, ``concat_cases`` joins them along ``case``.
# ``sweep`` farms those cases out (``--workers``) and resumes them one by one.

def image_field(cfg: Any) -> str:
    """``"image_file"`` when the configuration names the user's files, else ``"images"``: the list a
    study's cases run over."""
    return "image_file" if getattr(cfg, "image_file", ()) else "images"


def product_cases(cfg: Any, fields: tuple[str, ...]) -> list[Any]:
    """One configuration per combination of the list options ``fields`` (the first varies slowest), each
    holding a one-entry tuple of every one of them."""
    values = [getattr(cfg, f) for f in fields]
    return [dataclasses.replace(cfg, **{f: (v,) for f, v in zip(fields, combo)})
            for combo in itertools.product(*values)]


def single_case(cfg: Any, fields: tuple[str, ...]) -> None:
    """Refuse a configuration that is not one case of :func:`product_cases`."""
    for f in fields:
        if len(getattr(cfg, f)) != 1:
            raise InputError(f, "a single value for one case (cases() makes them)", shown(getattr(cfg, f)))


def concat_cases(parts: list[xr.Dataset], attrs: dict[str, Any], dim: str = "case") -> xr.Dataset:
    """The parts (each with a ``dim`` dimension) joined along it (variables without it: the first part's),
    with ``attrs`` (the whole run's provenance) in place of the parts' own."""
    ds = xr.concat(parts, dim=dim, data_vars="minimal", coords="minimal", compat="override",
                   combine_attrs="override")             # the variables' attrs: the first part's
    ds.attrs = dict(attrs)
    return ds
