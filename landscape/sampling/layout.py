r"""Draws in ArviZ's layout: one ``InferenceData`` with groups ``posterior`` (dims ``chain``, ``draw``
first), ``sample_stats``, ``observed_data`` and ``constant_data``, written as one netCDF file (groups)
that ``arviz.from_netcdf`` opens as it is. R-hat and effective sample sizes are ArviZ's own
(``arviz.rhat``, ``arviz.ess``), never rewritten here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path, provenance


def inference_data(problem: Any, *, theta: Any = None, x: Any = None, sample_stats: dict | None = None,
                   study: str = "sampling", config: dict | None = None):
    r"""An ``arviz.InferenceData`` of the draws.

    Parameters
    ----------
    problem : BlindDeblur
        Its ``y`` goes to ``observed_data``; ``x_true``, ``kernel_true``, ``theta_true``, ``noise`` to
        ``constant_data``.
    theta : array ``(chain, draw, p)``, optional
    x : array ``(chain, draw, H, W)``, optional
        The same draws as ``theta`` (thin in the sampler, ``thin=``, when images are large).
    sample_stats : dict of ``(chain, draw)`` or ``(chain,)`` arrays, optional
    study, config : provenance attributes.

    Returns
    -------
    arviz.InferenceData
    """
    import arviz as az
    post: dict[str, Any] = {}
    coords: dict[str, Any] = {"param": list(problem.family.param_names)[: (np.shape(theta)[-1] if theta is not None else 0)]}
    dims: dict[str, list[str]] = {"theta": ["param"], "x": ["row", "col"], "y": ["row", "col"],
                                  "x_true": ["xrow", "xcol"] if problem.boundary == "valid" else ["row", "col"],
                                  "kernel_true": ["krow", "kcol"]}
    if theta is not None:
        post["theta"] = np.asarray(theta)
    stats = dict(sample_stats or {})
    if x is not None:
        post["x"] = np.asarray(x)
    if problem.boundary == "valid":
        dims["x"] = ["xrow", "xcol"]
    const = {"noise_sigma": np.array(problem.noise)}
    if problem.x_true is not None:
        const["x_true"] = problem.x_true.double().cpu().numpy()
    if problem.theta_true is not None:
        const["theta_true"] = problem.theta_true.double().cpu().numpy()
        const["kernel_true"] = problem.kernel_true.double().cpu().numpy()
        dims["theta_true"] = ["param"]
    attrs = provenance(study, config or {}, kernel_family=problem.family.name, noise_sigma=problem.noise)
    idata = az.from_dict(posterior=post, sample_stats=stats or None,
                         observed_data={"y": problem.y.double().cpu().numpy()}, constant_data=const,
                         coords=coords, dims=dims, attrs=attrs)
    return idata


def save_inference(idata: Any, path: str | os.PathLike) -> Path:
    """Write ``idata`` to one netCDF file (groups), atomically: a crash leaves no partial file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        idata.to_netcdf(str(tmp), engine="h5netcdf")
    return path


def diagnostics(idata: Any, var_names: list[str] | None = None) -> dict[str, Any]:
    """ArviZ's R-hat and bulk effective sample size of the posterior variables."""
    import arviz as az
    return {"rhat": az.rhat(idata, var_names=var_names), "ess_bulk": az.ess(idata, var_names=var_names, method="bulk")}
