r"""Scans of the energy landscape over the kernel parameter.

``profile`` evaluates the profile (joint-MAP) energy :math:`E^*(\theta) = \min_x E(\theta, x)`
on a grid of :math:`\theta`, batched: one L-BFGS run solves every inner problem side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from .io import energy_attrs, input_variables
from .posterior import Posterior

TERMS = {
    "data_term": "data fidelity ||h*x - y||^2 / (2 sigma^2)",
    "prior_term": "prior energy lambda q(x)",
    "kernel_term": "kernel energy r(theta)",
}


def theta_coords(post: Posterior, theta: torch.Tensor) -> dict[str, Any]:
    """Coordinates of a ``theta`` dimension: the parameter values for one-parameter families,
    an index plus one coordinate ``theta_<name>`` per parameter otherwise."""
    fam = post.problem.family
    th = theta.detach().cpu().numpy()
    if fam.n_params == 1:
        return {"theta": ("theta", th[:, 0], {"long_name": fam.param_names[0], "units": "pixels"})}
    coords: dict[str, Any] = {"theta": np.arange(th.shape[0])}
    if fam.n_params <= 8:
        for j, name in enumerate(fam.param_names):
            coords[f"theta_{name}"] = ("theta", th[:, j])
    return coords


def profile(post: Posterior, theta: Any, *, x0: torch.Tensor | None = None, store_images: bool = False,
            progress: bool = True, **solver: Any) -> xr.Dataset:
    r"""Profile energy :math:`E^*(\theta) = \min_x E(\theta, x)` over a grid.

    Parameters
    ----------
    post : Posterior
    theta : array ``(B,)`` or ``(B, p)``
        The grid (checked against the family's domain).
    x0 : Tensor, optional
        Start of the inner solver (default: the observation).
    store_images : bool
        Keep :math:`\hat x(\theta)` as ``x_hat`` (dims ``theta, row, col``).
    **solver
        Passed to ``Posterior.argmin_x`` (``max_iter``, ``ftol``, ``gtol``).

    Returns
    -------
    xarray.Dataset
        ``profile_energy`` and its ``data_term``, ``prior_term``, ``kernel_term`` over dim
        ``theta``; solver diagnostics ``n_iter``, ``converged``; the problem's inputs.
    """
    fam = post.problem.family
    th = fam.check(theta, dtype=post.problem.dtype, device=post.problem.device)
    x, terms, info = post.argmin_x(th, x0, progress=progress, **solver)
    dims = ("theta",)
    v: dict[str, Any] = {
        "profile_energy": (dims, terms["energy"].cpu().numpy(), energy_attrs("profile energy min_x E(theta, x)")),
        **{k: (dims, terms[k].cpu().numpy(), energy_attrs(ln)) for k, ln in TERMS.items()},
        "n_iter": (dims, info.n_iter.numpy(), {"long_name": "inner solver iterations"}),
        "converged": (dims, info.converged.cpu().numpy(), {"long_name": "inner solver met its tolerance"}),
        "theta_values": (("theta", "param"), th.cpu().numpy(), {"long_name": "kernel parameters"}),
    }
    if store_images:
        v["x_hat"] = (("theta", "row", "col"), x.cpu().numpy(), {"long_name": "argmin_x E(theta, x)"})
    ds = xr.Dataset(v, coords={**theta_coords(post, th), "param": list(fam.param_names)})
    for k, da in input_variables(post.problem).items():
        ds[k] = da
    ds.attrs.update({
        "noise_sigma": post.problem.noise, "boundary": post.problem.boundary,
        "prior": post.prior.name, "kernel_family": fam.name, "prior_weight": post.prior_weight,
        "solver": "batched L-BFGS, data-term Fourier preconditioner",
        "solver_ftol": solver.get("ftol", 1e-14), "solver_gtol": solver.get("gtol", 1e-9),
        "solver_calls": info.n_calls, "solver_item_evaluations": info.n_item_evals,
    })
    return ds


def grid_argmin(values: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    """Grid minimiser and its three-point parabolic refinement (the grid value at an edge)."""
    i = int(np.nanargmin(values))
    if 0 < i < len(grid) - 1:
        y0, y1, y2 = values[i - 1:i + 2]
        x0, x1, x2 = grid[i - 1:i + 2]
        den = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
        b = (x2 ** 2 * (y0 - y1) + x1 ** 2 * (y2 - y0) + x0 ** 2 * (y1 - y2)) / den
        if a > 0:
            return float(grid[i]), float(np.clip(-b / (2 * a), x0, x2))
    return float(grid[i]), float(grid[i])
