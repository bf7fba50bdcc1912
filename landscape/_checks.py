"""Argument validation shared by every layer.

Every check raises :class:`InputError`, a ``ValueError`` whose message names the offending
argument and what was expected; the CLI turns it into a one-line message and exit code 2.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch


class InputError(ValueError):
    """Bad user input: the message names the argument and what was expected."""

    def __init__(self, argument: str, expected: str, got: Any = None):
        self.argument = argument
        self.expected = expected
        self.got = got
        msg = f"{argument}: expected {expected}"
        if got is not None:
            msg += f", got {got}"
        super().__init__(msg)


def split(text: Any) -> list[str]:
    """The entries of a comma-separated list, blanks dropped (the command line's list syntax)."""
    return [t.strip() for t in str(text).split(",") if t.strip()]


def as_items(value: Any, item: Callable[[Any], Any] = str) -> tuple:
    """A list-valued option as a tuple of ``item(entry)``: from a comma-separated string (the command
    line, ``--set``), a TOML list or any sequence (Python). The one place list options are parsed."""
    if isinstance(value, str):
        entries = split(value)
    else:
        entries = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    return tuple(item(e.strip() if isinstance(e, str) else e) for e in entries)


class RunFailed(RuntimeError):
    """A run that could not finish for a reason other than its input (a worker process killed by the
    system, ...): the command line prints it as one line and exits with code 1."""


def positive(name: str, value: float) -> float:
    """Return ``float(value)`` if finite and > 0, else raise :class:`InputError`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(name, "a positive number", repr(value)) from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(name, "a positive finite number", value)
    return v


def torch_generator(rng: Any) -> torch.Generator:
    """A ``torch.Generator`` from an ``rng`` argument: a generator is used as given; a seed, ``None`` or a
    ``numpy.random.Generator`` seeds a new CPU generator with one draw of ``numpy.random.default_rng(rng)``."""
    if isinstance(rng, torch.Generator):
        return rng
    return torch.Generator().manual_seed(int(np.random.default_rng(rng).integers(2 ** 62)))


def image_array(name: str, image: Any) -> np.ndarray:
    """Validate a grayscale ``(H, W)`` or a colour ``(C, H, W)`` image (2 to 4 channels first; a gray image
    is ``(H, W)``, not ``(1, H, W)``), each channel as :func:`image2d` checks it."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 3:
        if not 2 <= arr.shape[0] <= 4:
            raise InputError(name, "a 2-D image (H, W), or a colour image (C, H, W) with 2 to 4 channels first",
                             f"an array of shape {arr.shape}")
        for c in arr:
            image2d(name, c)
        return arr
    if arr.ndim != 2:
        raise InputError(name, "a 2-D image (H, W) or a colour image (C, H, W)", f"an array of shape {arr.shape}")
    return image2d(name, arr)


def image2d(name: str, image: Any) -> np.ndarray:
    """Validate a single-channel image: 2-D, real, finite, at least 4x4."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim != 2:
        raise InputError(name, "a 2-D grayscale image", f"an array of shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(name, "a real-valued image", f"dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise InputError(name, "finite pixel values", "NaN or inf")
    if min(arr.shape) < 4:
        raise InputError(name, "an image at least 4x4", f"shape {arr.shape}")
    return arr


def kernel2d(name: str, kernel: Any, atol: float = 1e-6) -> np.ndarray:
    """Validate a blur kernel: 2-D, finite, non-negative, summing to 1 within ``atol``."""
    arr = kernel.detach().cpu().numpy() if isinstance(kernel, torch.Tensor) else np.asarray(kernel)
    if arr.ndim != 2:
        raise InputError(name, "a 2-D kernel", f"an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(name, "finite kernel values", "NaN or inf")
    if arr.min() < 0:
        raise InputError(name, "a non-negative kernel", f"minimum {arr.min():.3g}")
    s = float(arr.sum())
    if abs(s - 1.0) > atol:
        raise InputError(name, "a kernel summing to 1", f"sum {s:.6g}")
    return arr


def choice(name: str, value: str, options: Any) -> str:
    """Return ``value`` if it is one of ``options``."""
    opts = list(options)
    if value not in opts:
        raise InputError(name, "one of " + ", ".join(map(str, opts)), repr(value))
    return value


# -- declared options --------------------------------------------------------------------------
# A configuration dataclass declares each field with ``option(default, help, check)``; ``validate``
# runs every field's check, and ``Check.bad`` lists values the check must reject, so one
# table-driven test (tests/test_cli.py) covers every option of every command, and a new option
# without a check fails that test.

@dataclasses.dataclass(frozen=True)
class Check:
    """A named rule for one option: ``expected`` says what it accepts, ``accepts(value)`` tests
    it, ``bad`` lists values it must reject (used by the table-driven test), and ``reads(value)``
    lists the files an accepted value makes a run read (their contents are part of a case's
    identity: :class:`landscape.sweep.Case`)."""

    expected: str
    accepts: Callable[[Any], bool]
    bad: tuple = ()
    reads: Callable[[Any], list] | None = None
    #: for a list-valued option: the edge value (a comma-separated string, a TOML list, a sequence) to the
    #: typed tuple the option holds (:func:`validate` applies it once; ``accepts`` then sees the tuple)
    parse: Callable[[Any], Any] | None = None

    def __call__(self, name: str, value: Any) -> Any:
        """``value`` (parsed, for a list option) if accepted, else :class:`InputError` naming ``name``."""
        raw = value
        try:
            if self.parse is not None:
                value = self.parse(value)
            ok = bool(self.accepts(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError(name, self.expected, repr(shown(raw)))
        return value


def shown(value: Any) -> Any:
    """A list option's value as it is typed on the command line (comma-joined); any other value as it is."""
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def integer(lo: int, hi: int | None = None) -> Check:
    """An integer in ``[lo, hi]``."""
    bad = (lo - 1,) + (() if hi is None else (hi + 1,))
    span = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
    return Check(f"an integer {span}", lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                 and v >= lo and (hi is None or v <= hi), bad)


def number(lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False, hi_open: bool = False) -> Check:
    """A finite number in an interval (``lo_open``/``hi_open``: that end excluded)."""
    left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
    bad: tuple = (float("nan"), float("inf"))
    if math.isfinite(lo):
        bad += (lo - 1.0,) + ((lo,) if lo_open else ())
    if math.isfinite(hi):
        bad += (hi + 0.5,) + ((hi,) if hi_open else ())
    return Check(f"a finite number in {left}{lo:g}, {hi:g}{right}",
                 lambda v: _finite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi), bad)


#: the most points a theta grid may have: every point is an inner solve in x (seconds at 64x64), so
#: 1001 points is already hours; more is a typo (a mistyped exponent), refused rather than started
MAX_GRID_POINTS = 1001


def grid_points(lo: int) -> Check:
    """A number of theta grid points in ``[lo, MAX_GRID_POINTS]``."""
    return integer(lo, MAX_GRID_POINTS)


def positive_number() -> Check:
    return number(0.0, lo_open=True)


def one_of(options: Any) -> Check:
    opts = tuple(options)
    return Check("one of " + ", ".join(map(str, opts)), lambda v: v in opts, ("no-such-choice",))


def subset_of(options: Any, *, allow_empty: bool = False) -> Check:
    """A list of names from ``options`` (non-empty unless ``allow_empty``), held as a tuple of str."""
    opts = tuple(options)

    def ok(v: tuple) -> bool:
        return (bool(v) or allow_empty) and all(n in opts for n in v)
    what = "a comma-separated list of " + ", ".join(map(str, opts)) + (" (or nothing)" if allow_empty else "")
    return Check(what, ok, ("no-such-choice",) if allow_empty else ("", "no-such-choice"), parse=as_items)


def prior_names(options: Any) -> Check:
    """A non-empty list of priors, each as :func:`prior_name` takes it, held as a tuple of str."""
    one = prior_name(options)
    return Check("a comma-separated list of " + ", ".join(map(str, options)) + " or user priors (file.py:factory, "
                 "module:factory)", lambda v: bool(v) and all(map(one.accepts, v)),
                 ("", "no-such-choice", "/no/such/file.py:make"), reads=lambda v: [p for n in v for p in one.reads(n)],
                 parse=as_items)


def prior_name(options: Any) -> Check:
    """One prior: a registry name from ``options`` or a user prior (``file.py:factory``, ``module:factory``,
    an entry-point name; checked when built); a user prior's source file is read, so its contents are
    part of the case's identity."""
    from .plugins import is_spec, spec_file
    opts = tuple(options)

    def ok(v: Any) -> bool:
        return isinstance(v, str) and (v in opts or (is_spec(v) and (spec_file(v) is None or spec_file(v).is_file())))
    return Check("one of " + ", ".join(map(str, opts)) + " or a user prior (file.py:factory, module:factory)", ok,
                 ("", "no-such-choice", "/no/such/file.py:make"),
                 reads=lambda v: [spec_file(v)] if isinstance(v, str) and spec_file(v) is not None else [])


def numbers(lo: float = -math.inf, *, lo_open: bool = False, allow_empty: bool = False) -> Check:
    """A list of finite numbers above ``lo``, held as a tuple of float."""
    def ok(v: tuple) -> bool:
        if not v:
            return allow_empty
        return all(math.isfinite(x) and (x > lo if lo_open else x >= lo) for x in v)
    bad = ("abc", "nan") + ((("0" if lo_open else f"{lo - 1:g}"),) if math.isfinite(lo) else ())
    span = "" if not math.isfinite(lo) else (f" > {lo:g}" if lo_open else f" >= {lo:g}")
    return Check(f"comma-separated finite numbers{span}", ok, bad + (() if allow_empty else ("",)),
                 parse=lambda v: as_items(v, _number))


def _number(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError(v)
    return float(v)


def file_or_empty(what: str) -> Check:
    """``""`` (not given) or an existing file; the file's content is checked by its loader."""
    return Check(f"{what} that exists (or nothing)", lambda v: v == "" or Path(str(v)).is_file(),
                 ("/no/such/file.npy",), reads=lambda v: [Path(str(v))] if v else [])


def files_or_empty(what: str) -> Check:
    """A list of existing files, possibly empty (contents checked by the loader), held as a tuple of str."""
    return Check(f"{what}s that exist, comma-separated (or nothing)",
                 lambda v: all(Path(n).is_file() for n in v), ("/no/such/file.npy",),
                 reads=lambda v: [Path(n) for n in v], parse=as_items)


def kernel_or_empty() -> Check:
    """``""`` (not given), a shipped measured kernel's name (``levin2``, ...) or an existing kernel file."""

    from .resources import MEASURED_KERNELS, measured_kernel_path

    def path(v: Any) -> Path:
        return measured_kernel_path(v) if v in MEASURED_KERNELS else Path(str(v))
    return Check("a kernel file that exists, or a measured kernel (" + ", ".join(MEASURED_KERNELS) + "), or nothing",
                 lambda v: v == "" or path(v).is_file(), ("/no/such/file.npy", "levin1"),
                 reads=lambda v: [path(v)] if v else [])


def files_read(config: Any) -> dict[str, list[str]]:
    """SHA-256 (16 hex) of every file the options of the dataclass ``config`` make a run read,
    by option name (the options whose :class:`Check` declares ``reads``)."""
    import hashlib
    out = {}
    for f in dataclasses.fields(config):
        chk = f.metadata.get("check")
        if chk is not None and chk.reads is not None:
            paths = chk.reads(getattr(config, f.name))
            if paths:
                out[f.name] = [hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.is_file() else "missing"
                               for p in paths]
    return out


def writable(path: Any) -> bool:
    """Can a file or folder be created at ``path``: it is not an existing folder-less thing in the way,
    and its nearest existing ancestor is a folder in which a file can really be created (probed with
    a temporary file, removed at once, so read-only file systems and root's view are both right)."""
    import os
    import tempfile
    anc = Path(os.path.abspath(path)).parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        return False
    try:
        fd, tmp = tempfile.mkstemp(prefix=".landscape-probe.", dir=anc)
    except OSError:
        return False
    os.close(fd)
    os.remove(tmp)
    return True


def output_file(name: str, path: Any, suffixes: tuple[str, ...]) -> Path:
    """Check an output file path before any work starts: not empty, one of ``suffixes`` (the format
    written), not an existing folder, and in a place where it can be created. Returns it as a ``Path``."""
    text = "" if path is None else str(path)
    if not text.strip():
        raise InputError(name, "a file path", repr(text))
    p = Path(text)
    if p.suffix.lower() not in suffixes:
        raise InputError(name, "a file name ending in " + " or ".join(suffixes) + " (the format written)", text)
    if p.is_dir():
        raise InputError(name, "a file path, not an existing folder", text)
    if not writable(p):
        raise InputError(name, "a file in a folder that can be written", text)
    return p


def output_folder(name: str, path: Any) -> Path:
    """Check an output folder before any work starts: an existing folder to write into, or a path
    where one can be created."""
    p = Path(str(path))
    if p.exists() and not p.is_dir():
        raise InputError(name, "a folder path, not an existing file", str(path))
    probe = p / ".probe" if p.is_dir() else p
    if not writable(probe):
        raise InputError(name, "a folder that can be written (or created)", str(path))
    return p


def folder_or_empty() -> Check:
    """``""`` (not given) or a folder to write into (created when needed): not an existing non-folder,
    and writable."""

    def ok(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        if v == "":
            return True
        p = Path(v)
        return (p.is_dir() and writable(p / ".probe")) or (not p.exists() and writable(p))
    return Check("a folder path that can be written (or nothing)", ok, ("/dev/null", "/proc/landscape-samples"))


def flag() -> Check:
    return Check("a flag", lambda v: isinstance(v, bool), ())


def device_available(value: Any) -> bool:
    """Is ``value`` (a ``torch.device`` or its name: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) a device
    this machine has?"""
    import torch
    try:
        d = value if isinstance(value, torch.device) else torch.device(value)
    except (TypeError, RuntimeError, ValueError):
        return False
    if d.type == "cpu":
        return True
    if d.type == "cuda":
        return torch.cuda.is_available() and (d.index is None or d.index < torch.cuda.device_count())
    if d.type == "mps":
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return False


def device_check() -> Check:
    """``None`` (the default device) or a device this machine has (:func:`device_available`)."""
    def ok(v: Any) -> bool:
        return v is None or (not isinstance(v, bool) and device_available(v))
    return Check("a device this machine has: cpu, or cuda / cuda:N / mps where available", ok,
                 ("cuda:99", "no-such-device", "gpu"))


def option(default: Any, help: str, check: Check) -> Any:
    """A dataclass field with its help text and its :class:`Check`."""
    return dataclasses.field(default=default, metadata={"help": help, "check": check})


def validate(config: Any) -> Any:
    """Run the check of every field of the dataclass ``config`` that declares one, list options parsed
    into their tuples in place (:attr:`Check.parse`: the edge where a comma-separated string or a TOML
    list becomes the typed value); return it."""
    for f in dataclasses.fields(config):
        chk = f.metadata.get("check")
        if chk is not None:
            value = chk(f.name, getattr(config, f.name))
            if chk.parse is not None and value != getattr(config, f.name):
                object.__setattr__(config, f.name, value)
    return config


def is_list_option(f: dataclasses.Field) -> bool:
    """Does the dataclass field ``f`` hold a list (a tuple parsed by its check)?"""
    chk = f.metadata.get("check")
    return chk is not None and chk.parse is not None
