"""One case of ``trivial-minimizer``: the problem's setup, then its profile (both branches), the descents, the
(kernel, image) plane, the near-truth minimiser over noise draws, and the verdicts (i)-(iv) with the optional
certificates and PF-ODE cross-check."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

from ... import descent, kernels, scan
from ...posterior import BlindDeblur, Posterior
from ...priors import PriorSettings, make_prior
from ...solvers import SolverOptions, method_for
from ..common import ProblemConfig, family_and_truth, load_image, theta_grid
from .verdicts import (
    LEARNED,
    certify_candidates,
    energy_tolerance,
    near_truth_over_draws,
    pf_ode_gap,
    profile_verdicts,
    verdict_certified,
    verdict_descents,
    verdict_smooth_in_sigma,
)

if TYPE_CHECKING:
    from . import Config

#: coordinates of the (kernel path t, image path u) plane stored per case
PLANE = np.round(np.linspace(-0.2, 1.2, 15), 12)


def setup(case: ProblemConfig, cfg: Config):
    """``(scan_family, theta_true, image, grid, descent_family)`` of one problem. For a fixed
    kernel (family ``free`` or a kernel file) the scan family is the path from the Dirac to it,
    and the descents move a ``Free`` kernel."""
    if case.family == "free" and not case.kernel_file:
        fam = kernels.Path(kernels.camera_shake(case.kernel_size, rng=cfg.seed), name="camera_shake")
        theta_true, grid_max = np.array([1.0]), 1.0
    else:
        fam, theta_true, grid_max = family_and_truth(case)
        grid_max = min(grid_max, fam.upper[0])
    free = kernels.Free(fam.size) if isinstance(fam, kernels.Path) else None
    image = load_image(case)
    return fam, theta_true, image, theta_grid(theta_true, grid_max, case.n_theta, include_truth=True), free


def run_case(cfg: Config, problem: BlindDeblur, prior_name: str, weight: float, theta_true, grid,
             progress: bool, free: kernels.Free | None = None) -> xr.Dataset:
    """One case: the profile (both branches), descents, and the verdicts (i)-(iv).

    ``free``: descents move a free kernel on the simplex (the problem's family is then the path
    from the Dirac to the true kernel). Verdict (iv) does not depend on the case's own noise
    level; cases that differ only in it compute it each (they are independent tasks).
    """
    prior = make_prior(prior_name, problem.event_shape, PriorSettings(s=cfg.s, dtype=problem.dtype,
                                                                      device=problem.device))
    post = Posterior(problem, prior, prior_weight=weight)
    solver = SolverOptions(xtol=cfg.xtol, etol=cfg.etol, max_iter=cfg.max_iter)
    score_only = method_for(post) == "hqs"
    prof = scan.profile(post, grid, warm_start=True, store_images=True, rates=score_only, solver=solver,
                        progress=progress)
    g = grid[:, 0]
    i0, istar = 0, int(np.argmin(np.abs(g - theta_true[0])))
    tol = energy_tolerance(prof, prior, weight, cfg.etol, problem.dtype, (i0, istar), problem.device)
    dpost = post
    if free is not None:                     # descents on the simplex, same data and prior
        h_star = problem.family(torch.as_tensor(theta_true[None], dtype=problem.dtype))[0]
        dprob = BlindDeblur(problem.y, free, problem.noise, x_true=problem.x_true,
                            theta_true=free.theta_of(h_star.double().numpy())[0], dtype=problem.dtype)
        dpost = Posterior(dprob, prior, prior_weight=weight)
    th0, x0, labels = descent.initialisations(dpost, rng=cfg.seed)
    dsd = descent.descend(dpost, th0, x0, labels=labels, scheme=cfg.scheme, n_outer=cfg.n_outer, solver=solver,
                          progress=progress)
    cls = dict(zip(labels, dsd.end_class.values))
    levels = np.array(cfg.noise_levels)
    th_hat = near_truth_over_draws(problem, prior, weight, theta_true, levels, cfg.n_draws, cfg.seed, solver)
    plane = scan.grid2d(post, PLANE, PLANE)
    rho = prof.fixed_point_rate.values if score_only else np.full(len(g), np.nan)
    out = xr.Dataset({
        "profile_energy": prof.profile_energy, "profile_energy_branch": prof.profile_energy_branch,
        "data_term": prof.data_term, "prior_term": prof.prior_term,
        "theta_value": ("theta", g, {"long_name": f"scanned parameter {problem.family.param_names[0]}"}),
        "fixed_point_rate": ("theta", rho, prof.fixed_point_rate.attrs if score_only else {}),
        "unconverged": (("branch", "theta"), ~prof.converged.values.astype(bool), {"long_name": "inner solve hit max_iter (energy is an upper bound)"}),
        "descent_theta": dsd.theta_path.isel(param=0), "descent_kernel_error": dsd.kernel_error,
        "descent_t": dsd.t_coord, "descent_u": dsd.u_coord, "descent_energy": dsd.energy_path,
        "descent_end_class": dsd.end_class,
        "plane_energy": (("t", "u"), plane.energy.values, {**plane.energy.attrs, "comment": (
            "E((1-t) delta + t h*, (1-u) y + u x*), the plane of the descent map")}),
        "theta_hat_near_truth": (("noise_level", "draw"), th_hat, {"long_name": "near-truth local minimiser"}),
    }, coords={"noise_level": levels, "draw": np.arange(cfg.n_draws), "t": PLANE, "u": PLANE}
    ).drop_vars("theta", errors="ignore")
    t0 = float(theta_true[0])
    verdict = {"prior": prior_name, "prior_description": prior.describe(), "weight": weight,
               **profile_verdicts(prof, g, t0, cfg.theta_tol, tol), "iii_descents": verdict_descents(cls),
               "descent_classes": cls, **verdict_smooth_in_sigma(levels, th_hat, t0)}
    if cfg.certify_k:
        cert = certify_candidates(problem, prior_name, cfg.s, weight, prof, dsd if free is None else None, grid,
                                  cfg.certify_k, cfg.certify_maxiter)
        out = out.merge(cert)
        verdict["ii_certified_near_truth"] = verdict_certified(cert, t0, cfg.theta_tol)
        verdict["i_dirac_certificate"] = str(cert.cert_verdict.sel(candidate="dirac").item())
    if cfg.pf_check and prior_name in LEARNED:
        pf = pf_ode_gap(problem, weight, prof, (i0, istar), cfg.s, cfg.seed)
        verdict.update(pf)
        out.attrs["pf_ode"] = pf
    out.attrs["verdict"] = verdict
    return out
