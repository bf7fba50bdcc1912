r"""The verdicts of ``trivial-minimizer``: (i)-(iv) from a case's profile, descents and noise draws, the
certificates of its candidate minimisers, and the PF-ODE cross-check of (i).

Each verdict is a pure function of what the case measured, so a stored results file can be re-judged
(``tests/test_scan_descent.py`` checks them on hand-made inputs)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import xarray as xr

from ... import certify, io, scan
from ...optim import ETOL_MARGIN
from ...posterior import BlindDeblur, Posterior
from ...priors import PriorSettings, make_prior
from ...solvers import SolverOptions, method_for

#: verdict (iv)'s window around theta*: a local profile on theta* [1 - W, 1 + W], wide enough to hold the
#: minimisers measured at every noise level in the README (0.6-1.4 theta*), narrow enough to exclude delta
NEAR_TRUTH_WINDOW = 0.4
#: points of that local profile
NEAR_TRUTH_POINTS = 7
#: verdict (iv): "stable" when the near-truth minimiser moves by at most this fraction of theta* (spread
#: over draws at one level, or the fitted change across levels): one tenth, a blur a viewer cannot tell apart
STABLE_FRACTION = 0.1
#: verdict (iv): a fitted trend with at least this R^2 explains the motion (smooth in sigma) even when large
SMOOTH_R2 = 0.5
#: noise draws of verdict (iv) are seeded seed + DRAW_SEED_OFFSET + DRAW_SEED_STRIDE d + level index, apart
#: from the case's own noise (seed) for any realistic number of levels (< 97) and draws
DRAW_SEED_OFFSET, DRAW_SEED_STRIDE = 1000, 97


def energy_tolerance(prof: xr.Dataset, prior: Any, weight: float, etol: float, dtype: torch.dtype,
                     pair: tuple[int, int], device: Any = None) -> float:
    """Energies closer than this are a tie: round-off of the dtype, the solves' own tolerance (widened by
    ``optim.ETOL_MARGIN``) and, for score-only priors, the quadrature error of the prior-energy
    difference between the two minimisers of ``pair`` (a line integral of the score)."""
    e = prof.profile_energy.values
    tol = (1e-6 if dtype == torch.float64 else 1e-5) * float(np.abs(e).max()) + ETOL_MARGIN * etol
    if hasattr(prior, "energy_difference"):
        i, j = pair
        xb = torch.as_tensor(prof.x_hat.values[prof.best_branch.values[[i, j]], [i, j]], device=device or "cpu")
        _, err = prior.energy_difference(xb[:1], xb[1:])
        tol += weight * float(err.max())
    return tol


def verdict_dirac_below_truth(diff: float, tol: float) -> str:
    """(i): "yes" when E*(theta*) - E*(delta) > tol, "tie" within tol, else "no"."""
    return "tie" if abs(diff) <= tol else ("yes" if diff > 0 else "no")


def verdict_local_min_near_truth(minima: list[float], theta_true: float, theta_tol: float) -> str:
    """(ii), (ii'): "yes" when a grid local minimum lies within ``theta_tol`` of theta*."""
    return "yes" if any(abs(m - theta_true) <= theta_tol for m in minima) else "no"


def profile_verdicts(prof: xr.Dataset, g: np.ndarray, theta_true: float, theta_tol: float, tol: float
                     ) -> dict[str, Any]:
    r"""(i), (ii) and (ii') from a case's profile on the grid ``g`` (first parameter; ``g[0]`` the Dirac), with
    the numbers behind them: the gap :math:`E^*(\theta^\star) - E^*(\delta)` against the tie tolerance ``tol``,
    the local minima of :math:`E^*` and of the branch warm-started from :math:`x^\star`, the unconverged
    solves and, for score-only priors, the largest fixed-point rate among them."""
    e = prof.profile_energy.values
    istar = int(np.argmin(np.abs(g - theta_true)))
    diff = float(e[istar] - e[0])
    lm = [float(g[i]) for i in scan.local_minima(e)]
    lm_end = [float(g[i]) for i in scan.local_minima(prof.profile_energy_branch.values[1])]   # from x*
    unconv = ~prof.converged.values.astype(bool)
    rho = prof.fixed_point_rate.values if "fixed_point_rate" in prof else np.full(len(g), np.nan)
    return {"i_dirac_below_truth": verdict_dirac_below_truth(diff, tol),
            "ii_local_min_near_truth": verdict_local_min_near_truth(lm, theta_true, theta_tol),
            "ii_branch_from_truth": verdict_local_min_near_truth(lm_end, theta_true, theta_tol),
            "local_minima_from_truth_branch": lm_end, "energy_gap_truth_minus_dirac": diff, "energy_tol": tol,
            "local_minima": lm, "prior_calls_profile": prof.attrs["prior_calls"],
            "solver_item_evaluations_profile": prof.attrs["solver_item_evaluations"],
            "unconverged_profile_solves": int(unconv.sum()), "profile_solves": int(unconv.size),
            "theta_true": theta_true, "theta_global_min": float(g[int(np.argmin(e))]),
            "max_fixed_point_rate_unconverged": float(np.nanmax(np.where(unconv.any(0), rho, np.nan)))
            if unconv.any() and np.isfinite(rho).any() else float("nan")}


def verdict_descents(classes: dict[str, str]) -> str:
    """(iii): "yes" when the descent from (delta, y) ends trivial and every one from near the truth
    ends near it."""
    near = [c for lab, c in classes.items() if lab.startswith("truth")]
    return "yes" if (classes["dirac"] == "trivial" and near and all(c == "near_truth" for c in near)) else "no"


def verdict_smooth_in_sigma(levels: np.ndarray, th_hat: np.ndarray, theta_true: float) -> dict[str, Any]:
    """(iv) from the near-truth minimisers ``th_hat`` (levels x draws): "no-local-min" when a draw has
    none; else "yes" when the spread over draws is at most ``STABLE_FRACTION`` theta* and the motion
    across levels is either explained by a linear trend (R^2 >= ``SMOOTH_R2``) or small (the fitted change
    at most ``STABLE_FRACTION`` theta*)."""
    sv, tv = np.repeat(levels, th_hat.shape[1]), th_hat.reshape(-1)
    slope, r2 = np.nan, np.nan
    if len(levels) > 1 and np.isfinite(tv).all():
        slope, icpt = np.polyfit(sv, tv, 1)
        ss = np.sum((tv - tv.mean()) ** 2)
        r2 = 1 - np.sum((tv - (slope * sv + icpt)) ** 2) / ss if ss > 0 else 1.0
    spread = float(np.nanmax(th_hat.std(1))) if th_hat.shape[1] > 1 and np.isfinite(tv).any() else np.nan
    bound = STABLE_FRACTION * abs(theta_true)
    if not np.isfinite(tv).all():
        v = "no-local-min"
    else:
        small_move = abs(slope) * np.ptp(levels) <= bound if np.isfinite(slope) else True
        v = "yes" if (spread <= bound and (r2 >= SMOOTH_R2 or small_move)) else "no"
    return {"iv_smooth_in_sigma": v, "sigma_slope": float(slope), "sigma_r2": float(r2), "draw_spread": spread}


#: a polished candidate is stationary when its projected gradient's largest component is below this (nats
#: per unit; the gradients of E at a generic point of these problems are 1e2-1e4)
POLISH_GTOL = 1e-4
#: ... and the certificate asks the 2-norm of the full (or, on the boundary, the x-) gradient below this
CERT_GTOL = 1e-2
#: Newton steps after the polish (a prior with ``hessian_matrix``) aim at this gradient norm, far below
#: CERT_GTOL, so that a verdict never fails on a stationarity the first-order polish could not reach
NEWTON_GTOL = 1e-6
#: polish keeps theta within this fraction of the domain's width of the candidate's theta (a stationary
#: point strictly inside that box is one of the unconstrained problem)
POLISH_BOX = 0.25
#: priors whose -log p the PF-ODE of the shipped noise-conditional denoiser can cross-check
LEARNED = ("tweedie", "gs")


def candidates(prof: xr.Dataset, dsd: xr.Dataset | None, grid: np.ndarray, theta_true: float
                ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, theta, x)`` of the points to certify: the profile at the Dirac (branch from (δ, y)), on
    each branch the local minimum of the profile nearest theta* (other than the Dirac), and the
    lowest-energy descent end point classed ``near_truth``."""
    g = grid[:, 0]
    out = [("dirac", grid[0], prof.x_hat.values[0, 0])]
    for b, name in enumerate(("profile_from_dirac", "profile_from_truth")):
        mins = [i for i in scan.local_minima(prof.profile_energy_branch.values[b]) if i > 0]
        if mins:
            i = min(mins, key=lambda j: abs(g[j] - theta_true))
            out.append((name, grid[i], prof.x_hat.values[b, i]))
    if dsd is not None:
        near = np.flatnonzero(dsd.end_class.values == "near_truth")
        if near.size:
            j = near[int(np.argmin(dsd.energy_path.values[near, -1]))]
            out.append(("descent_near_truth", dsd.theta_path.values[j, -1], dsd.x_final.values[j]))
    return out


CANDIDATES = ("dirac", "profile_from_dirac", "profile_from_truth", "descent_near_truth")


def certify_candidates(problem: BlindDeblur, prior_name: str, s: float, weight: float, prof: xr.Dataset,
                       dsd: xr.Dataset | None, grid: np.ndarray, k: int, maxiter: int) -> xr.Dataset:
    r"""Certificates of the candidate minimisers (float64), each by ``certify.certify``: a local joint
    descent (polish; Newton steps after it where the prior assembles its Hessian: the exact and patch
    GMMs, EPLL), then the certificate from :math:`\|\nabla E\|` and the ``certify_k`` smallest eigenvalues
    of the joint Hessian (``k`` of them, eigensolver capped at ``maxiter`` iterations) with their residual bounds (the :math:`x`-Hessian on the boundary
    :math:`\theta = 0`). A polished point that left its box was not near a minimiser. Score-only priors
    have no energy to polish: ``n/a (score-only prior)``. Dim ``candidate`` (:data:`CANDIDATES`); absent
    candidates are ``none``/NaN."""
    n = len(CANDIDATES)
    rec = {k: np.full(n, np.nan) for k in ("cert_theta_start", "cert_theta", "cert_energy", "cert_grad_norm",
                                            "cert_eig_min", "cert_eig_residual", "cert_products", "cert_seconds",
                                            "cert_newton_steps")}
    verdicts = np.array(["none"] * n, dtype=object)
    xs = np.full((n, *problem.event_shape), np.nan)
    prior = make_prior(prior_name, problem.event_shape, PriorSettings(s=s, dtype=torch.float64, device=problem.device))
    pb = BlindDeblur(problem.y.double(), problem.family, problem.noise, x_true=problem.x_true.double(),  # same device
                     theta_true=problem.theta_true, dtype=torch.float64)
    post = Posterior(pb, prior, prior_weight=weight)
    has_energy = method_for(post) != "hqs"
    for name, th, x in candidates(prof, dsd, grid, float(problem.theta_true.reshape(-1)[0])):
        c = CANDIDATES.index(name)
        rec["cert_theta_start"][c] = float(np.atleast_1d(th)[0])
        if not has_energy:
            verdicts[c] = "n/a (score-only prior)"
            continue
        t0 = time.perf_counter()
        ce = certify.certify(post, np.atleast_1d(th)[None], torch.as_tensor(x, dtype=torch.float64, device=pb.device),
                             k=k, box=POLISH_BOX, polish_gtol=POLISH_GTOL, newton_gtol=NEWTON_GTOL,
                             gtol=CERT_GTOL, maxiter=maxiter)
        verdicts[c], xs[c] = ce["verdict"], io.host(ce["x"])
        rec["cert_theta"][c], rec["cert_energy"][c] = ce["theta"][0], ce["energy"]
        for key in ("grad_norm", "eig_min", "eig_residual", "products", "newton_steps"):
            rec[f"cert_{key}"][c] = ce[key]
        rec["cert_seconds"][c] = time.perf_counter() - t0
    attrs = {"cert_theta": {"long_name": "first parameter after the local joint descent (polish)"},
             "cert_grad_norm": {"long_name": "||grad E|| at the polished point (x-gradient on the boundary)"},
             "cert_eig_min": {"long_name": "smallest eigenvalue of the joint Hessian (x-Hessian on the boundary)"},
             "cert_eig_residual": {"long_name": "residual ||A v - lambda v|| of that eigenpair (its error bound)"},
             "cert_newton_steps": {"long_name": "Newton steps after the polish (priors that assemble their "
                                   "Hessian; NaN: none)"},
             "cert_seconds": {"long_name": "wall time of polish + certificate", "kind": "timing"}}
    ds = xr.Dataset({k: ("candidate", v, attrs.get(k, {})) for k, v in rec.items()},
                    coords={"candidate": list(CANDIDATES)})
    ds["cert_verdict"] = ("candidate", verdicts.astype(str))
    ds["cert_x"] = (("candidate", *io.image_dims(problem)), xs, {"long_name": "the polished candidate's image"})
    return ds


def verdict_certified(cert: xr.Dataset, theta_true: float, theta_tol: float) -> str:
    """``yes`` when a candidate polished to within ``theta_tol`` of theta* is a certified local minimiser,
    ``no`` when every near-truth candidate was shown not to be one (saddle, or left its box) or the
    certified ones lie farther from theta*, else
    ``undecided`` (``n/a`` for score-only priors)."""
    near = [c for c in CANDIDATES[1:] if cert.cert_verdict.sel(candidate=c).item() != "none"]
    v = {c: str(cert.cert_verdict.sel(candidate=c).item()) for c in near}
    if any(x.startswith("n/a") for x in v.values()):
        return "n/a"
    certified = [float(cert.cert_theta.sel(candidate=c)) for c, x in v.items() if x.startswith("certified")]
    if any(abs(t - theta_true) <= theta_tol for t in certified):
        return "yes"
    if certified:
        return f"no (certified minimiser at θ = {certified[0]:.3g}, beyond theta_tol)"
    if v and all(x.startswith("saddle") or x.startswith("not a minimiser") for x in v.values()):
        return "no"
    return "undecided"


def pf_ode_gap(problem: BlindDeblur, weight: float, prof: xr.Dataset, idx: tuple[int, int], s: float, seed: int
               ) -> dict[str, float]:
    r"""Verdict (i) under the probability-flow ODE's :math:`-\log p_s` (the shipped noise-conditional
    denoiser; RK4, Hutchinson divergence with common probes) at the profile's kept solutions at the Dirac
    and at theta*: :math:`E_{pf} = \text{data} + \lambda(-\log p_s)` and the gap
    :math:`E_{pf}(\theta^*) - E_{pf}(\delta)` with its standard error (the two images' errors added in
    quadrature, conservative under common probes). At the checked prior's own level ``s`` (what
    :math:`q_s` approximates; keys ``pf_ode_*``) and at the ODE's finest level (``pf_ode_fine_*``)."""
    from ...priors.shipped import load
    st = PriorSettings()
    i0, istar = idx
    e = prof.profile_energy_branch.values
    b0, b = int(np.argmin(e[:, i0])), int(np.argmin(e[:, istar]))       # the kept branches (E* = their min)
    xs = torch.as_tensor(np.stack([prof.x_hat.values[b0, i0], prof.x_hat.values[b, istar]]), dtype=torch.float32)
    data = prof.data_term.values
    out: dict[str, float] = {}
    pf = load("denoiser-gray", "diffusion", steps=st.ode_steps, probes=st.probes)
    for tag, s_min in (("pf_ode", s), ("pf_ode_fine", pf.s_min)):
        logp, se = pf.log_density(xs, rng=seed, s_min=s_min)     # one network, two integration ranges
        out.update({f"{tag}_gap_truth_minus_dirac": float(data[istar] - data[i0] + weight * (-(logp[1] - logp[0]))),
                    f"{tag}_gap_se": float(weight * torch.sqrt(se[0] ** 2 + se[1] ** 2)),
                    f"{tag}_q_dirac": float(-logp[0]), f"{tag}_q_truth": float(-logp[1]), f"{tag}_s": s_min})
    return out


def near_truth_over_draws(problem: BlindDeblur, prior: Any, weight: float, theta_true: np.ndarray,
                          levels: np.ndarray, n_draws: int, seed: int, solver: SolverOptions) -> np.ndarray:
    """The near-truth minimiser (verdict (iv)) for ``n_draws`` fresh noise draws at each of ``levels``."""
    th_hat = np.full((len(levels), n_draws), np.nan)
    for a, sig in enumerate(levels):
        for d in range(n_draws):
            pb = BlindDeblur.synthetic(problem.x_true, problem.family, theta_true, sig, dtype=problem.dtype,
                                       rng=seed + DRAW_SEED_OFFSET + DRAW_SEED_STRIDE * d + a, device=problem.device)
            th_hat[a, d] = scan.local_minimiser(Posterior(pb, prior, prior_weight=weight), theta_true, solver,
                                                width=NEAR_TRUTH_WINDOW, n=NEAR_TRUTH_POINTS)
    return th_hat


#: the verdicts stored as string variables along ``case`` (and, when certificates or the PF-ODE ran, those)
VERDICTS = ("i_dirac_below_truth", "ii_local_min_near_truth", "ii_branch_from_truth", "iii_descents",
            "iv_smooth_in_sigma")
#: the measured numbers behind them, stored as float variables along ``case``
MEASURES = ("energy_gap_truth_minus_dirac", "energy_tol", "sigma_slope", "sigma_r2", "draw_spread",
            "unconverged_profile_solves", "max_fixed_point_rate_unconverged", "theta_true", "theta_global_min")
PF_KEYS = tuple(f"{tag}_{k}" for tag in ("pf_ode", "pf_ode_fine")
                for k in ("gap_truth_minus_dirac", "gap_se", "q_dirac", "q_truth", "s"))


def as_variables(ds: xr.Dataset, verdicts: list[dict[str, Any]]) -> xr.Dataset:
    """``ds`` with each case's verdicts and measures (one dict per case) as variables along ``case``
    (``theta_true`` as ``case_theta_true``; the certificate and PF-ODE keys where any case has them)."""
    col = lambda k, fill, dtype: np.array([v.get(k, fill) for v in verdicts], dtype=dtype)
    for k in VERDICTS:
        ds[k] = ("case", col(k, "", object).astype(str))
    for k in MEASURES:
        ds[k if k != "theta_true" else "case_theta_true"] = ("case", col(k, np.nan, float))
    if any("ii_certified_near_truth" in v for v in verdicts):
        for k in ("ii_certified_near_truth", "i_dirac_certificate"):
            ds[k] = ("case", col(k, "not run", object).astype(str))
    if any("pf_ode_gap_truth_minus_dirac" in v for v in verdicts):
        for k in PF_KEYS:
            ds[k] = ("case", col(k, np.nan, float))
    return ds
