r"""Studies as files and sweeps at scale: a definition (TOML) names a study, its options and a
grid of cases; its cases run in this process or as tasks on ``dask.distributed``, each finished
case is streamed to disk as it ends, a rerun skips the cases already there, and the cases are
combined into one results file.

A definition file::

    study = "trivial-minimizer"          # one of ``landscape list``
    description = "the README's main study"
    out = "runs/tm.nc"                   # optional; default runs/<file stem>.nc

    [options]                            # the study's options (``landscape run STUDY --help``)
    priors = "tweedie"
    noise = [0.01, 0.05]                 # a list is the study's comma-separated list

    [grid]                               # optional: a product of option values, one run each,
    seed = [0, 1, 2]                     # concatenated along the dimension ``sweep``

Cases. A grid point is one configuration of the study; a study that defines
``cases(cfg) -> list[Config]``, ``run_part(cfg, progress) -> Dataset`` and
``combine(cfg, parts) -> Dataset`` is cut further into its own cases (``trivial-minimizer``:
one per image, family, noise, prior and weight); any other study is one case per grid point
(``run``). Every case is one task. A case is identified by the SHA-256 of its study, its full
configuration, the code (:func:`code_digest`: the package's sources and shipped weights) and the
contents of the files it reads (image, kernel), and
stored as ``<hash>.nc`` in the case folder (``.<out>.cases`` beside the results file), written
atomically; a rerun, a ``--set`` that changes some cases, or a resume after a crash computes only
the cases not on disk. The combined file is built from the stored cases alone, so an interrupted
and resumed sweep gives the same file as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

import xarray as xr

from . import io
from ._checks import InputError, RunFailed, files_read, is_list_option, output_file, output_folder, validate
from .resources import shipped_weights

#: the dimension along which the points of a definition's grid are concatenated
SWEEP_DIM = "sweep"
#: the most runs a definition's grid may make (each is a whole study run): more is a mistake, refused
#: before its points are even validated
MAX_RUNS = 10_000
#: top-level keys a definition file may hold
DEFINITION_KEYS = ("study", "description", "out", "options", "grid")


@dataclass
class Definition:
    """A study, its options and the grid of option values it sweeps.

    Attributes
    ----------
    study : str
        A study name (``landscape list``).
    options : dict
        Option values (Config field names), checked against the study's declared types.
    grid : dict of list
        Option -> values; the product of these lists are the runs of the sweep.
    source : str
        The file the definition came from (or ``"command line"``), named in every error.
    description, out : str
        Free text; the default results path.
    typed : set of str
        The options given with ``--set``: a quick run of the file keeps them (:func:`run`).
    """

    study: str
    options: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    source: str = "command line"
    description: str = ""
    out: str = ""
    typed: set[str] = field(default_factory=set)

    @classmethod
    def from_file(cls, path: str | Path, overrides: Sequence[str] = ()) -> "Definition":
        """Read a TOML definition; ``overrides`` are ``key=value`` strings (``--set``), the value in
        TOML syntax (a bare word is a string), the key an option (``k`` or ``options.k``) or a grid
        axis (``grid.k``). Raises :class:`InputError` naming the file and the key."""
        path = Path(path)
        if not path.is_file():
            raise InputError("definition", "an existing study definition file (.toml)", str(path))
        try:
            raw = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(str(path), "a TOML study definition", f"{type(exc).__name__}: {exc}") from None
        src = str(path)
        for k in raw:
            if k not in DEFINITION_KEYS:
                raise InputError(f"{src}: {k}", "one of the keys " + ", ".join(DEFINITION_KEYS), repr(k))
        if "study" not in raw:
            raise InputError(f"{src}: study", "the name of a study (landscape list)", "missing")
        for k in ("options", "grid"):
            if not isinstance(raw.get(k, {}), dict):
                raise InputError(f"{src}: {k}", "a table ([" + k + "])", type(raw[k]).__name__)
        if "grid" in raw and not raw["grid"]:
            raise InputError(f"{src}: grid", "at least one option with a list of values (or no [grid])", "{}")
        d = cls(study=raw["study"], options=dict(raw.get("options", {})), grid=dict(raw.get("grid", {})),
                source=src, description=str(raw.get("description", "")), out=str(raw.get("out", "")))
        for text in overrides:
            d.set(text)
        d.check()
        return d

    def set(self, text: str) -> None:
        """Apply one ``key=value`` override (``--set``)."""
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError("--set", "key=value", repr(text))
        try:
            val = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            val = value.strip()                     # a bare word: a string
        table, _, name = key.rpartition(".")
        if table == "grid":
            self.grid[name] = val if isinstance(val, list) else [val]
        elif table in ("", "options"):
            self.options[name] = val
            self.typed.add(name)
            self.grid.pop(name, None)               # a fixed value replaces a swept one
        else:
            raise InputError("--set", "a key k, options.k or grid.k", repr(key))

    def where(self, key: str) -> str:
        """How errors name ``key``: ``FILE: key`` for a file, the option alone on the command line."""
        if self.source == "command line":
            return key.rpartition(".")[2]
        return f"{self.source}: {key}"

    @property
    def module(self) -> ModuleType:
        from .studies import STUDIES
        if self.study not in STUDIES:
            raise InputError(self.where("study"), "one of " + ", ".join(STUDIES), repr(self.study))
        return STUDIES[self.study]

    def check(self) -> None:
        """Every key an option of the study, every value of its type, every grid list non-empty,
        every run's configuration valid (the study's own checks)."""
        for name, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise InputError(self.where(f"grid.{name}"), "a non-empty list of values", repr(values))
        n = math.prod(len(v) for v in self.grid.values())
        if n > MAX_RUNS:
            raise InputError(self.where("grid"), f"at most {MAX_RUNS} runs (the product of the grid's lists)",
                             f"{n} runs")
        for _, cfg in self.configs():
            resolve = getattr(cfg, "resolved", None)
            try:
                resolve() if resolve else None
            except InputError as exc:
                if self.source == "command line":
                    raise
                raise InputError(self.where(f"options.{exc.argument}"), exc.expected) from None

    def points(self) -> list[dict[str, Any]]:
        """The grid's points (one empty point without a grid), in row-major order of the keys."""
        keys = list(self.grid)
        return [dict(zip(keys, vals)) for vals in itertools.product(*(self.grid[k] for k in keys))]

    def configs(self) -> list[tuple[dict[str, Any], Any]]:
        """``(point, Config)`` of every run."""
        fields = {f.name: f for f in dataclasses.fields(self.module.Config)}
        out = []
        for point in self.points():
            values = {}
            for table, items in (("options", self.options), ("grid", point)):
                for k, v in items.items():
                    if k not in fields:
                        raise InputError(self.where(f"{table}.{k}"),
                                         f"an option of study {self.study} (landscape run {self.study} --help)", repr(k))
                    values[k] = _coerce(self.where(f"{table}.{k}"), fields[k], v)
            cfg = self.module.Config(**values)
            try:
                validate(cfg)
            except InputError as exc:
                raise InputError(self.where(f"options.{exc.argument}"), exc.expected,
                                 repr(getattr(cfg, exc.argument, None))) from None
            out.append((point, cfg))
        return out

    def text(self) -> str:
        """The definition as TOML-like text (stored in the results file)."""
        return json.dumps({"study": self.study, "source": self.source, "description": self.description,
                           "options": self.options, "grid": self.grid}, sort_keys=True, default=str)


def _coerce(where: str, f: dataclasses.Field, value: Any) -> Any:
    """A TOML value for a Config field: ints for int fields, numbers for float fields, booleans
    for flags, a string or a number for string fields; for a list option a TOML list (or one value, or
    a comma-separated string), passed on as it is: :func:`validate` parses every list option once."""
    typ = f.type if isinstance(f.type, str) else f.type.__name__
    scalar = lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool)
    if is_list_option(f):
        ok = scalar(value) or (isinstance(value, list) and all(map(scalar, value)))
    elif typ == "bool":
        ok = isinstance(value, bool)
    elif typ == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = scalar(value)
        value = str(value) if ok else value
    if not ok:
        raise InputError(where, f"a value of type {typ}", repr(value))
    return value


def code_digest() -> str:
    """SHA-256 (16 hex) of the package's Python sources and shipped weights: part of every case's
    identity, so a changed code or model never reuses a stored case."""
    global _DIGEST
    if _DIGEST is None:
        root = Path(__file__).parent
        h = hashlib.sha256()
        for p in sorted(list(root.rglob("*.py")) + shipped_weights()):
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
        _DIGEST = h.hexdigest()[:16]
    return _DIGEST


_DIGEST: str | None = None


@dataclass(frozen=True)
class Case:
    """One task: a study configuration with single values, its place, and its identity.

    The identity (``key``) is the SHA-256 of the study, the configuration, the code
    (:func:`code_digest`) and the contents of every file the configuration reads
    (:func:`landscape._checks.files_read`: image and kernel files, ...): a file overwritten
    between two runs makes a new case, never a stale one."""

    study: str
    config: dict[str, Any]
    point: int           # index of its grid point
    key: str             # SHA-256 of (study, config, code, contents of the files read)

    @classmethod
    def of(cls, study: str, cfg: Any, point: int) -> "Case":
        conf = dataclasses.asdict(cfg)
        ident = json.dumps({"study": study, "config": conf, "code": code_digest(), "reads": files_read(cfg)},
                           sort_keys=True, default=str)
        return cls(study, conf, point, hashlib.sha256(ident.encode()).hexdigest()[:24])


def parted(mod: ModuleType) -> bool:
    """Is the study cut into cases (``studies.PARTED``), else one case per run?"""
    from .studies import PARTED
    return all(callable(getattr(mod, n, None)) for n in PARTED)


def split(mod: ModuleType, cfg: Any) -> list[Any]:
    """A run's cases: the study's ``cases`` or the run itself."""
    return mod.cases(cfg) if parted(mod) else [cfg]


@contextlib.contextmanager
def thread_limit(threads: int):
    """Within the block, at most ``threads`` threads in torch and in the BLAS and OpenMP libraries numpy and scipy
    loaded (``threadpoolctl``); both restored after. 0: leave them as they are."""
    if not threads:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits
    before = torch.get_num_threads()
    try:
        with threadpool_limits(limits=threads):
            torch.set_num_threads(threads)
            yield
    finally:
        torch.set_num_threads(before)


def run_case(study: str, config: dict[str, Any], threads: int = 0, progress: bool = False) -> xr.Dataset:
    """Compute one case (the task a worker runs): the study's ``run_part`` or ``run``, under
    :func:`thread_limit` ``(threads)`` (0: the process's thread counts as they are)."""
    from .studies import get
    mod = get(study)
    cfg = mod.Config(**config)
    with thread_limit(threads):
        return (mod.run_part if parted(mod) else mod.run)(cfg, progress=progress)


class CaseStore:
    """Finished cases, one netCDF file per case key in ``folder``, written atomically; dict and
    list attrs are stored as JSON and come back as such."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.nc"

    def __contains__(self, key: str) -> bool:
        return self.path(key).exists()

    def load(self, key: str) -> xr.Dataset:
        ds = io.load(self.path(key))
        for k in ds.attrs.get("_json_attrs", "").split(","):
            if k:
                ds.attrs[k] = json.loads(ds.attrs[k])
        ds.attrs.pop("_json_attrs", None)
        return ds

    def save(self, key: str, ds: xr.Dataset) -> Path:
        out = ds.copy()
        js = [k for k, v in out.attrs.items() if isinstance(v, (dict, list, tuple))]
        for k in js:
            out.attrs[k] = json.dumps(out.attrs[k], default=str)
        out.attrs["_json_attrs"] = ",".join(js)
        return io.save(out, self.path(key))


def case_folder(out: str | Path) -> Path:
    """Where the cases of the results file ``out`` are streamed: ``.<name>.cases`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.cases"


#: seconds to wait for a running scheduler (``--scheduler``) before refusing its address
SCHEDULER_TIMEOUT = 10


def connect(workers: int = 0, scheduler: str | None = None):
    """A ``dask.distributed`` client: a new ``LocalCluster`` of ``workers`` processes (one thread
    each), or the running scheduler at ``scheduler``. Raises :class:`InputError` naming
    ``scheduler`` when it cannot be reached within :data:`SCHEDULER_TIMEOUT` seconds."""
    from distributed import Client, LocalCluster
    if scheduler:
        try:
            return Client(scheduler, timeout=f"{SCHEDULER_TIMEOUT}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError("scheduler", "the address of a running dask scheduler (tcp://host:port)",
                             f"{scheduler} ({type(exc).__name__}: {exc})") from None
    import logging
    memory = worker_memory(workers)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR, memory_limit=memory)
    return Client(cluster)


#: memory one case may need in a worker process: the largest measured (a 64x64 trivial-minimizer
#: case with a learned prior, ~380 MB resident) with a margin for torch's allocator and the imports
CASE_MEMORY = 1 << 30


def worker_memory(workers: int) -> int:
    """Bytes of memory per worker of a ``LocalCluster`` of ``workers`` processes on this machine (its
    memory shared equally); raises :class:`InputError` naming ``workers`` when that falls below
    :data:`CASE_MEMORY` or when there are more workers than cores (each worker runs one case on one
    thread: more only slows every case down)."""
    import os

    import psutil
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    total = psutil.virtual_memory().total
    most = max(1, min(cores, total // CASE_MEMORY))
    if workers > most:
        raise InputError("workers", f"at most {most} worker processes on this machine ({cores} cores, "
                         f"{total / 2 ** 30:.0f} GiB; a case needs up to {CASE_MEMORY / 2 ** 30:.0f} GiB)", workers)
    return total // workers


def execute(cases: list[Case], store: CaseStore, *, client: Any = None, threads: int = 0,
            progress: bool = True, on_done: Callable[[Case], None] | None = None) -> dict[str, float]:
    """Compute the cases not yet in ``store`` and save each as it finishes.

    In this process when ``client`` is None (a single case keeps the study's own progress bars),
    else as one ``dask`` task per case (the client writes each result as it arrives, so a killed
    worker or client loses only the cases in flight; dask reruns a lost worker's task elsewhere).

    Returns
    -------
    dict
        Case key -> seconds from submission (or start) to its file on disk, for the cases computed.
    """
    from tqdm.auto import tqdm
    todo = list({c.key: c for c in cases if c.key not in store}.values())       # duplicates run once
    seconds: dict[str, float] = {}
    bar = tqdm(total=len(cases), initial=len(cases) - len(todo), desc="cases", unit="case",
               disable=not progress or len(cases) == 1)
    t0 = time.perf_counter()
    if client is None:
        for c in todo:
            t = time.perf_counter()
            store.save(c.key, run_case(c.study, c.config, threads, progress and len(cases) == 1))
            seconds[c.key] = time.perf_counter() - t
            bar.update(1)
            on_done and on_done(c)
    else:
        from distributed import as_completed
        futures = {client.submit(run_case, c.study, c.config, threads or 1, False, key=f"case-{c.key}", pure=False): c
                   for c in todo}
        from distributed import KilledWorker
        for fut in as_completed(futures):
            c = futures[fut]
            try:
                result = fut.result()
            except KilledWorker:
                raise RunFailed(f"case {c.key} ({c.study}) killed the worker processes that ran it (out of "
                                "memory? use fewer --workers); the finished cases are kept: a rerun resumes") from None
            store.save(c.key, result)
            seconds[c.key] = time.perf_counter() - t0
            fut.release()
            bar.update(1)
            on_done and on_done(c)
    bar.close()
    return seconds


def quick_runs(defn: Definition) -> list[tuple[dict, Any]]:
    """The smoke run of a definition: its grid's first point with the study's ``quick`` option set; the study's
    ``QUICK`` rules apply to the file's own options too, not to those given with ``--set``. The configuration is
    resolved first, so that a ``--color`` file's options take their colour defaults before the rules."""
    from .studies.common import apply_quick
    return [(p, apply_quick(dataclasses.replace(c, quick=True).resolved(), defn.module.QUICK,
                            force=set(defn.module.QUICK) - defn.typed)[0]) for p, c in defn.configs()[:1]]


def run(defn: Definition, out: str | Path, *, workers: int = 0, scheduler: str | None = None, threads: int = 0,
        quick: bool = False, progress: bool = True) -> xr.Dataset:
    """Run a definition and write its combined results to ``out`` (atomically).

    Parameters
    ----------
    defn : Definition
    out : path
        Results file; its cases stream to :func:`case_folder` ``(out)`` and stay there, so a rerun
        computes only what is missing.
    workers : int
        ``> 0``: a ``LocalCluster`` of that many worker processes; 0 with ``scheduler=None``: this process.
    scheduler : str, optional
        Address of a running dask scheduler to send the cases to.
    threads : int
        Threads per case, torch's and the BLAS libraries' (:func:`thread_limit`); 0: in this process, the
        process's own counts (torch's default: every core), on dask workers one.
    quick : bool
        Set the study's ``quick`` option and run only the grid's first point; the study's ``QUICK``
        rules then apply to the definition's own options too, not to those given with ``--set``.
    progress : bool
        A bar counting finished cases (the study's own bars for a single case in this process).

    Returns
    -------
    xarray.Dataset
        The study's dataset (with ``sweep`` first when the grid has several points), attrs
        ``definition`` (JSON), ``case_keys`` and ``code_digest`` added.
    """
    out = output_file("out", out, (".nc",))
    output_folder(f"out (its cases folder {case_folder(out).name})", case_folder(out))
    mod = defn.module
    runs = quick_runs(defn) if quick else defn.configs()
    per_run = [split(mod, cfg) for _, cfg in runs]
    cases = [Case.of(defn.study, c, i) for i, sub in enumerate(per_run) for c in sub]
    store = CaseStore(case_folder(out))
    client = connect(workers, scheduler) if (workers or scheduler) else None
    try:
        execute(cases, store, client=client, threads=threads, progress=progress)
    finally:
        if client is not None:
            cluster = client.cluster
            client.close()
            if cluster is not None and not scheduler:
                cluster.close()
    ds = combine(defn, runs, cases, store)
    io.save(ds, out)
    return ds


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else str(v)


def _differ(a: Any, b: Any) -> bool:
    return json.dumps(a, default=_plain, sort_keys=True) != json.dumps(b, default=_plain, sort_keys=True)


def point(ds: xr.Dataset, i: int) -> xr.Dataset:
    """Grid point ``i`` of a sweep's dataset, with that run's own attrs (what the study's summary and
    figure read); ``ds`` itself when it is not a sweep."""
    if SWEEP_DIM not in ds.dims:
        return ds
    out = ds.isel({SWEEP_DIM: i})
    out.attrs.update(json.loads(ds.attrs["sweep_attrs"])[i])
    return out


def combine(defn: Definition, runs: list[tuple[dict, Any]], cases: list[Case], store: CaseStore) -> xr.Dataset:
    """The results dataset from the stored cases (the study's ``combine`` per grid point, the
    points along ``sweep`` with one coordinate ``sweep_<option>`` per grid key)."""
    mod = defn.module
    results = []
    for i, (_, cfg) in enumerate(runs):
        parts = [store.load(c.key) for c in cases if c.point == i]
        results.append(mod.combine(cfg, parts) if parted(mod) else parts[0])
    if len(results) == 1:
        ds = results[0]
    else:
        ds = xr.concat(results, dim=SWEEP_DIM, coords="minimal", compat="override", join="outer",
                       combine_attrs="override")
        ds = ds.assign_coords({f"{SWEEP_DIM}_{k}": (SWEEP_DIM, [p[k] for p, _ in runs]) for k in defn.grid})
        # attrs that differ between points (each run's summary numbers, its config) are kept per point
        varying = sorted({k for r in results for k in r.attrs if any(_differ(r.attrs.get(k), results[0].attrs.get(k))
                                                                     for r in results)})
        ds.attrs["sweep_attrs"] = json.dumps([{k: r.attrs.get(k) for k in varying} for r in results], default=_plain)
    ds.attrs.update(definition=defn.text(), case_keys=",".join(c.key for c in cases), code_digest=code_digest())
    return ds
