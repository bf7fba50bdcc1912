"""Results as ``xarray.Dataset``: provenance attributes, atomic netCDF writes, loading.

Conventions (see ``DESIGN.md``): image dimensions are ``row``/``col``; inputs ``y``, ``x_true``,
``kernel_true`` (dims ``krow``/``kcol``), ``theta_true`` (dim ``param``) are stored with every
result; attrs hold ``noise_sigma``, ``prior``, ``kernel_family``, ``study``, ``config`` (JSON),
``landscape_version``, ``torch_version`` and ``created``. Energies are in nats.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import xarray as xr

ENGINE = "h5netcdf"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash (or exception) inside the block leaves ``path`` untouched and removes the
    temporary file, so no partial results file is ever visible.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _version() -> str:
    """The installed distribution's version (package metadata; base never imports the package root)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("landscape")
    except PackageNotFoundError:            # a source tree on sys.path, not installed
        return "unknown"


def provenance(study: str, config: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    """The standard attrs: study, config as JSON, versions, creation time, plus ``attrs``."""
    out = {
        "study": study,
        "config": json.dumps(config, sort_keys=True, default=str),
        "landscape_version": _version(),
        "torch_version": str(torch.__version__),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for k, v in attrs.items():
        out[k] = json.dumps(v, default=str) if isinstance(v, (dict, list, tuple)) else v
    return out


def image_dims(problem: Any) -> tuple[str, ...]:
    """Dimension names of the unknown image: ``("row", "col")``, the observation's, for the circular
    boundary; ``("xrow", "xcol")`` for the valid boundary, where the image is larger than ``y``; a
    leading ``"channel"`` for colour problems."""
    dims = ("xrow", "xcol") if problem.boundary == "valid" else ("row", "col")
    return dims if getattr(problem, "channels", None) is None else ("channel", *dims)


def observation_dims(problem: Any) -> tuple[str, ...]:
    """Dimension names of ``y``: ``("row", "col")``, with a leading ``"channel"`` for colour."""
    return ("row", "col") if getattr(problem, "channels", None) is None else ("channel", "row", "col")


def input_variables(problem: Any) -> dict[str, xr.DataArray]:
    """``y``, ``x_true``, ``kernel_true``, ``theta_true`` of a ``BlindDeblur`` problem."""
    v: dict[str, xr.DataArray] = {
        "y": xr.DataArray(host(problem.y), dims=observation_dims(problem),
                          attrs={"long_name": "blurred noisy observation"}),
    }
    if problem.x_true is not None:
        v["x_true"] = xr.DataArray(host(problem.x_true), dims=image_dims(problem), attrs={"long_name": "sharp image"})
    if problem.theta_true is not None:
        v["theta_true"] = xr.DataArray(host(problem.theta_true).reshape(-1), dims=("param",),
                                       coords={"param": list(problem.family.param_names)},
                                       attrs={"long_name": "true kernel parameter"})
        v["kernel_true"] = xr.DataArray(host(problem.kernel_true), dims=("krow", "kcol"),
                                        attrs={"long_name": "true blur kernel"})
    return v


def host(t: Any) -> np.ndarray:
    """``t`` as a NumPy array on the host: a tensor on any device is detached and copied to the CPU."""
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def energy_attrs(long_name: str) -> dict[str, str]:
    return {"long_name": long_name, "units": "nats"}


def save(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to netCDF (h5netcdf) atomically: temporary file, then rename.

    Strings are written at their own width: a string variable read from a file remembers that file's
    fixed width in its encoding, and a dataset combined from such parts (a sweep's cases) would otherwise
    be cut to the first part's width (``"tweedie"`` written as ``"tw"`` after ``"gs"``)."""
    path = Path(path)
    ds = ds.copy(deep=False)
    for var in ds.variables.values():
        if var.dtype.kind in "USO" and "dtype" in var.encoding:
            var.encoding = {k: v for k, v in var.encoding.items() if k != "dtype"}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine=ENGINE)
    return path


def load(path: str | os.PathLike) -> xr.Dataset:
    """Open a results file fully into memory (the file is closed afterwards)."""
    with xr.open_dataset(path, engine=ENGINE) as ds:
        return ds.load()


def config_of(ds: xr.Dataset) -> dict[str, Any]:
    """The study configuration stored in ``ds.attrs['config']``."""
    return json.loads(ds.attrs["config"])


@xr.register_dataset_accessor("landscape")
class LandscapeAccessor:
    """``ds.landscape.plot()`` draws the figure of the study that made ``ds`` (``attrs['study']``); the
    study's module is imported then, not when ``landscape`` is."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def plot(self, ax: Any = None, **kw: Any):
        study = self._ds.attrs.get("study")
        if study is None:
            raise ValueError("dataset: expected a study result (attrs['study'] missing)")
        from .studies import get
        return get(study).plot(self._ds, ax=ax, **kw)
