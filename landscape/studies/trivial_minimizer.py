r"""Study ``trivial-minimizer``: is :math:`(\delta, y)` the global minimiser of the joint energy,
with a local minimiser near the truth :math:`(h^\star, x^\star)`?

For each case (prior, weight :math:`\lambda` in :math:`E = \text{data} + \lambda q + r`):

(i)   :math:`E^*(\delta) < E^*(\theta^\star)` (profile energies; a difference below the energy
      tolerance is reported as a tie);
(ii)  the profile :math:`E^*` has a local minimum within ``theta_tol`` of :math:`\theta^\star`;
      (ii') the same test on the branch warm-started from :math:`x^\star` alone: a local minimum
      of the joint energy in the basin of :math:`x` connected to the truth, which the lower
      envelope :math:`E^*` hides when another basin of :math:`x \mapsto E(\theta, x)` lies lower
      at those :math:`\theta`;
(iii) descent from near the truth ends ``near_truth`` and descent from :math:`(\delta, y)` ends
      ``trivial``;
(iv)  over ``n_draws`` noise draws at each of ``noise_levels``, the near-truth local minimiser
      :math:`\hat\theta(\sigma)` (a local profile on :math:`\theta^\star [0.6, 1.4]`, warm-started
      from :math:`x^\star`, parabolic refinement; NaN when the minimum sits at an end) moves
      smoothly with :math:`\sigma`: "yes" when the spread over draws is at most
      :math:`0.1\theta^\star` and either :math:`R^2 \ge 0.5` or the fitted change over the
      levels is at most :math:`0.1\theta^\star`; "no-local-min" when some draw has none.

Cases are the product images x families x noise levels x priors x weights (``--image``,
``--family``, ``--noise`` and ``--priors``, ``--weights`` take comma-separated lists). The true
parameter of each family defaults to ``FAMILY_TRUTH`` and the grid to :math:`[0, 2\theta^\star_1]`.
Family ``free`` (and ``--kernel-file``) takes a fixed kernel :math:`h^\star` (a seeded
``kernels.camera_shake`` kernel, or the file's): the profile runs along
:math:`h_t = (1-t)\delta + t h^\star`, :math:`t \in [0, 1]`, and the descents move a free kernel on
the simplex.

Inner solves that do not converge are explained by ``fixed_point_rate`` (stored per
:math:`\theta` for score-only priors): the spectral radius of the HQS map at the kept solution;
at or above 1 the fixed point repels, so no iteration cap would make the solve converge.

The profile is warm-started along the grid from both ends (branches ``from_dirac`` and
``from_end``, the latter starting from :math:`x^\star`), so both basins of a two-basin profile
are visible. The default is the shipped learned prior (``denoiser-gray``, Tweedie score at
``s``) on a crop of ``camera`` with a Gaussian blur.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import xarray as xr

from .. import certify, data, descent, io, kernels, scan
from .._checks import (
    InputError,
    flag,
    integer,
    number,
    numbers,
    one_of,
    option,
    positive_number,
    prior_names,
    subset_of,
)
from ..optim import ETOL_MARGIN
from ..posterior import BlindDeblur, Posterior
from ..priors import PriorSettings, make_prior
from ..solvers import SolverOptions, method_for
from .common import (
    FIRST,
    ProblemConfig,
    at_least,
    at_most,
    family_and_truth,
    first,
    floats,
    load_image,
    quick_resolved,
    split,
    theta_grid,
    true_parameter,
)

#: true parameters used when ``--theta-true`` is not given
FAMILY_TRUTH = {"gaussian": "1.5", "gaussian-aniso": "2,1,30", "defocus": "2", "airy": "2", "motion": "7,30"}
NAME = "trivial-minimizer"
SUMMARY = "is (delta, y) the global joint-MAP minimiser, with a local minimiser near the truth?"
#: the registry's priors that take any image shape and have an energy or a score for the solver
PRIORS = ("tweedie", "gs", "gaussian", "patch-gmm", "sparse")
FAMILIES = tuple(FAMILY_TRUTH) + ("free",)
#: what identifies a case (stored as coordinates ``case_<name>``)
CASE_VARS = ("image", "family", "noise", "prior", "weight")
#: coordinates of the (kernel path t, image path u) plane stored per case
PLANE = np.round(np.linspace(-0.2, 1.2, 15), 12)


#: ``--quick`` (one case, the first of every list; small crop, coarse grid, 2 levels x 2 draws, no certificates)
QUICK = {"crop": at_most(32), "n_theta": at_most(13), "n_draws": at_most(2), "n_outer": at_most(10),
         "xtol": at_least(1e-4), "max_iter": at_most(60), "certify_k": 0, "noise_levels": first(2),
         "image": FIRST, "family": FIRST, "noise": FIRST, "priors": FIRST, "weights": FIRST}


@dataclass
class Config(ProblemConfig):
    """Options of ``trivial-minimizer`` (``landscape run trivial-minimizer --help``)."""

    image: str = option("camera", "image names (data.names()), comma-separated", subset_of(data.names()))
    family: str = option("gaussian", "kernel families, comma-separated: " + ", ".join(FAMILIES),
                         subset_of(FAMILIES))
    theta_true: str = option("", "true parameter(s) of a single family (default FAMILY_TRUTH)",
                             numbers(allow_empty=True))
    theta_max: float = option(0.0, "grid upper end of the first parameter (default 2 theta*)", number(0.0))
    noise: str = option("0.01", "noise standard deviations sigma, comma-separated", numbers(0.0, lo_open=True))
    priors: str = option("tweedie", "comma-separated: " + ", ".join(PRIORS), prior_names(PRIORS))
    weights: str = option("1", "prior weights lambda, comma-separated", numbers(0.0, lo_open=True))
    s: float = option(0.01, "Tweedie / GS noise level of the learned priors", positive_number())
    noise_levels: str = option("0.005,0.01,0.02,0.05", "levels for verdict (iv)", numbers(0.0, lo_open=True))
    n_draws: int = option(5, "noise draws per level for verdict (iv)", integer(1))
    scheme: str = option("alternating", "descent: alternating, joint or pam", one_of(("alternating", "joint", "pam")))
    n_outer: int = option(30, "descent outer iterations", integer(1))
    theta_tol: float = option(0.3, "verdict (ii): distance to theta* (first parameter)", positive_number())
    certify_k: int = option(2, "smallest joint-Hessian eigenvalues at each candidate minimiser, after a local "
                            "joint descent (0: no certificates; --quick: 0)", integer(0))
    certify_maxiter: int = option(200, "eigensolver iterations per certificate (LOBPCG; one that has not "
                                  "converged by then leaves its candidate 'undecided')", integer(1))
    pf_check: bool = option(False, "learned priors: cross-check verdict (i) with the PF-ODE log-density "
                            "(-log p of the two profile minimisers, with its standard error)", flag())
    xtol: float = option(1e-5, "inner solver tolerance (relative change of x)", number(0.0))
    etol: float = option(0.0, "inner solver tolerance on the energy (nats, Newton decrement; 0: off); "
                         "ETOL_MARGIN (10) etol joins the tie tolerance", number(0.0))
    max_iter: int = option(300, "inner solver iteration cap (unconverged solves are counted)", integer(1))
    dtype: str = option("float32", "float32 or float64 (energy comparisons)", one_of(("float32", "float64")))
    seed: int = option(0, "seed", integer(0))
    quick: bool = option(False, "one case (the first of every list), small crop, coarse grid, 2 levels x 2 "
                         "draws (< 60 s)", flag())

    def resolved(self) -> "Config":
        c = quick_resolved(self, QUICK)
        for case in c.problems():
            case.validate_problem(min_points=5)
        return c

    def problems(self) -> list[ProblemConfig]:
        """One problem configuration per (image, family, noise), in that order."""
        fams = split(self.family) or ["gaussian"]
        if self.theta_true and len(fams) > 1:
            raise InputError("theta_true", "one family when a true parameter is given", self.family)
        out = []
        for im, fa, no in itertools.product(split(self.image), fams, floats("noise", self.noise)):
            th = self.theta_true or FAMILY_TRUTH.get(fa, "")
            if not th and fa != "free" and not self.kernel_file:
                raise InputError("theta_true", f"a true parameter for family {fa!r} (no default)", "")
            first = float(true_parameter(kernels.get(fa, self.kernel_size), th)[0]) if th and fa != "free" else 1.0
            if not self.theta_max and first <= 0:
                raise InputError("theta_true", "a first parameter > 0 (the grid runs to 2 theta*; or give "
                                 "--theta-max)", th)
            out.append(ProblemConfig(image=im, image_file=self.image_file, kernel_file=self.kernel_file,
                                     color=self.color, crop=self.crop, family=fa, kernel_size=self.kernel_size, theta_true=th,
                                     theta_max=self.theta_max or 2 * first, n_theta=self.n_theta, noise=no))
        if not out:
            raise InputError("image", "at least one image name", self.image)
        return out


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
                     pair: tuple[int, int]) -> float:
    """Energies closer than this are a tie: round-off of the dtype, the solves' own tolerance (widened by
    ``optim.ETOL_MARGIN``) and, for score-only priors, the quadrature error of the prior-energy
    difference between the two minimisers of ``pair`` (a line integral of the score)."""
    e = prof.profile_energy.values
    tol = (1e-6 if dtype == torch.float64 else 1e-5) * float(np.abs(e).max()) + ETOL_MARGIN * etol
    if hasattr(prior, "energy_difference"):
        i, j = pair
        xb = torch.as_tensor(prof.x_hat.values[prof.best_branch.values[[i, j]], [i, j]])
        _, err = prior.energy_difference(xb[:1], xb[1:])
        tol += weight * float(err.max())
    return tol


def verdict_dirac_below_truth(diff: float, tol: float) -> str:
    """(i): "yes" when E*(theta*) - E*(delta) > tol, "tie" within tol, else "no"."""
    return "tie" if abs(diff) <= tol else ("yes" if diff > 0 else "no")


def verdict_local_min_near_truth(minima: list[float], theta_true: float, theta_tol: float) -> str:
    """(ii), (ii'): "yes" when a grid local minimum lies within ``theta_tol`` of theta*."""
    return "yes" if any(abs(m - theta_true) <= theta_tol for m in minima) else "no"


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
    return {"verdict": v, "slope": float(slope), "r2": float(r2), "spread": spread}


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


def _candidates(prof: xr.Dataset, dsd: xr.Dataset | None, grid: np.ndarray, theta_true: float
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


def certify_candidates(cfg: Config, problem: BlindDeblur, prior_name: str, weight: float, prof: xr.Dataset,
                       dsd: xr.Dataset | None, grid: np.ndarray) -> xr.Dataset:
    r"""Certificates of the candidate minimisers (float64), each by ``certify.certify``: a local joint
    descent (polish; Newton steps after it where the prior assembles its Hessian: the exact and patch
    GMMs, EPLL), then the certificate from :math:`\|\nabla E\|` and the ``certify_k`` smallest eigenvalues
    of the joint Hessian with their residual bounds (the :math:`x`-Hessian on the boundary
    :math:`\theta = 0`). A polished point that left its box was not near a minimiser. Score-only priors
    have no energy to polish: ``n/a (score-only prior)``. Dim ``candidate`` (:data:`CANDIDATES`); absent
    candidates are ``none``/NaN."""
    n = len(CANDIDATES)
    rec = {k: np.full(n, np.nan) for k in ("cert_theta_start", "cert_theta", "cert_energy", "cert_grad_norm",
                                            "cert_eig_min", "cert_eig_residual", "cert_products", "cert_seconds",
                                            "cert_newton_steps")}
    verdicts = np.array(["none"] * n, dtype=object)
    xs = np.full((n, *problem.event_shape), np.nan)
    prior = make_prior(prior_name, problem.event_shape, PriorSettings(s=cfg.s, dtype=torch.float64))
    pb = BlindDeblur(problem.y.double(), problem.family, problem.noise, x_true=problem.x_true.double(),
                     theta_true=problem.theta_true, dtype=torch.float64)
    post = Posterior(pb, prior, prior_weight=weight)
    has_energy = method_for(post) != "hqs"
    for name, th, x in _candidates(prof, dsd, grid, float(problem.theta_true.reshape(-1)[0])):
        c = CANDIDATES.index(name)
        rec["cert_theta_start"][c] = float(np.atleast_1d(th)[0])
        if not has_energy:
            verdicts[c] = "n/a (score-only prior)"
            continue
        t0 = time.perf_counter()
        ce = certify.certify(post, np.atleast_1d(th)[None], torch.as_tensor(x, dtype=torch.float64),
                             k=cfg.certify_k, box=POLISH_BOX, polish_gtol=POLISH_GTOL, newton_gtol=NEWTON_GTOL,
                             gtol=CERT_GTOL, maxiter=cfg.certify_maxiter)
        verdicts[c], xs[c] = ce["verdict"], ce["x"].numpy()
        rec["cert_theta"][c], rec["cert_energy"][c] = ce["theta"][0], ce["energy"]
        for k in ("grad_norm", "eig_min", "eig_residual", "products", "newton_steps"):
            rec[f"cert_{k}"][c] = ce[k]
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


def pf_ode_gap(cfg: Config, problem: BlindDeblur, weight: float, prof: xr.Dataset, idx: tuple[int, int]
               ) -> dict[str, float]:
    r"""Verdict (i) under the probability-flow ODE's :math:`-\log p_s` (the shipped noise-conditional
    denoiser; RK4, Hutchinson divergence with common probes) at the profile's kept solutions at the Dirac
    and at theta*: :math:`E_{pf} = \text{data} + \lambda(-\log p_s)` and the gap
    :math:`E_{pf}(\theta^*) - E_{pf}(\delta)` with its standard error (the two images' errors added in
    quadrature, conservative under common probes). At the checked prior's own level ``s`` (what
    :math:`q_s` approximates; keys ``pf_ode_*``) and at the ODE's finest level (``pf_ode_fine_*``)."""
    from ..priors.shipped import load
    st = PriorSettings()
    i0, istar = idx
    e = prof.profile_energy_branch.values
    b0, b = int(np.argmin(e[:, i0])), int(np.argmin(e[:, istar]))       # the kept branches (E* = their min)
    xs = torch.as_tensor(np.stack([prof.x_hat.values[b0, i0], prof.x_hat.values[b, istar]]), dtype=torch.float32)
    data = prof.data_term.values
    out: dict[str, float] = {}
    pf = load("denoiser-gray", "diffusion", steps=st.ode_steps, probes=st.probes)
    for tag, s_min in (("pf_ode", cfg.s), ("pf_ode_fine", pf.s_min)):
        logp, se = pf.log_density(xs, rng=cfg.seed, s_min=s_min)     # one network, two integration ranges
        out.update({f"{tag}_gap_truth_minus_dirac": float(data[istar] - data[i0] + weight * (-(logp[1] - logp[0]))),
                    f"{tag}_gap_se": float(weight * torch.sqrt(se[0] ** 2 + se[1] ** 2)),
                    f"{tag}_q_dirac": float(-logp[0]), f"{tag}_q_truth": float(-logp[1]), f"{tag}_s": s_min})
    return out


def near_truth_over_draws(cfg: Config, problem: BlindDeblur, prior: Any, weight: float, theta_true: np.ndarray,
                          levels: np.ndarray, solver: SolverOptions) -> np.ndarray:
    """The near-truth minimiser for ``cfg.n_draws`` fresh noise draws at each of ``levels``."""
    th_hat = np.full((len(levels), cfg.n_draws), np.nan)
    for a, sig in enumerate(levels):
        for d in range(cfg.n_draws):
            pb = BlindDeblur.synthetic(problem.x_true.numpy(), problem.family, theta_true, sig,
                                       rng=cfg.seed + DRAW_SEED_OFFSET + DRAW_SEED_STRIDE * d + a, dtype=problem.dtype)
            th_hat[a, d] = scan.local_minimiser(Posterior(pb, prior, prior_weight=weight), theta_true, solver,
                                                width=NEAR_TRUTH_WINDOW, n=NEAR_TRUTH_POINTS)
    return th_hat


def run_case(cfg: Config, problem: BlindDeblur, prior_name: str, weight: float, theta_true, grid,
             progress: bool, free: kernels.Free | None = None) -> xr.Dataset:
    """One case: the profile (both branches), descents, and the verdicts (i)-(iv).

    ``free``: descents move a free kernel on the simplex (the problem's family is then the path
    from the Dirac to the true kernel). Verdict (iv) does not depend on the case's own noise
    level; cases that differ only in it compute it each (they are independent tasks).
    """
    prior = make_prior(prior_name, problem.event_shape, PriorSettings(s=cfg.s, dtype=problem.dtype))
    post = Posterior(problem, prior, prior_weight=weight)
    solver = SolverOptions(xtol=cfg.xtol, etol=cfg.etol, max_iter=cfg.max_iter)
    score_only = method_for(post) == "hqs"
    prof = scan.profile(post, grid, warm_start=True, store_images=True, rates=score_only, solver=solver,
                        progress=progress)
    g = grid[:, 0]
    i0, istar = 0, int(np.argmin(np.abs(g - theta_true[0])))
    e = prof.profile_energy.values
    tol = energy_tolerance(prof, prior, weight, cfg.etol, problem.dtype, (i0, istar))
    diff = float(e[istar] - e[i0])
    lm = [float(g[i]) for i in scan.local_minima(e)]
    lm_end = [float(g[i]) for i in scan.local_minima(prof.profile_energy_branch.values[1])]   # from x*
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
    levels = floats("noise_levels", cfg.noise_levels)
    th_hat = near_truth_over_draws(cfg, problem, prior, weight, theta_true, levels, solver)
    v4 = verdict_smooth_in_sigma(levels, th_hat, float(theta_true[0]))
    plane = scan.grid2d(post, PLANE, PLANE)
    rho = prof.fixed_point_rate.values if score_only else np.full(len(g), np.nan)
    unconv = ~prof.converged.values.astype(bool)
    out = xr.Dataset({
        "profile_energy": prof.profile_energy, "profile_energy_branch": prof.profile_energy_branch,
        "data_term": prof.data_term, "prior_term": prof.prior_term,
        "theta_value": ("theta", g, {"long_name": f"scanned parameter {problem.family.param_names[0]}"}),
        "fixed_point_rate": ("theta", rho, prof.fixed_point_rate.attrs if score_only else {}),
        "unconverged": (("branch", "theta"), unconv, {"long_name": "inner solve hit max_iter (energy is an upper bound)"}),
        "descent_theta": dsd.theta_path.isel(param=0), "descent_kernel_error": dsd.kernel_error,
        "descent_t": dsd.t_coord, "descent_u": dsd.u_coord, "descent_energy": dsd.energy_path,
        "descent_end_class": dsd.end_class,
        "plane_energy": (("t", "u"), plane.energy.values, {**plane.energy.attrs, "comment": (
            "E((1-t) delta + t h*, (1-u) y + u x*), the plane of the descent map")}),
        "theta_hat_near_truth": (("noise_level", "draw"), th_hat, {"long_name": "near-truth local minimiser"}),
    }, coords={"noise_level": levels, "draw": np.arange(cfg.n_draws), "t": PLANE, "u": PLANE}
    ).drop_vars("theta", errors="ignore")
    t0 = float(theta_true[0])
    verdict = {"prior": prior_name, "prior_description": prior.describe(), "weight": weight, "i_dirac_below_truth": verdict_dirac_below_truth(diff, tol),
               "ii_local_min_near_truth": verdict_local_min_near_truth(lm, t0, cfg.theta_tol),
               "ii_branch_from_truth": verdict_local_min_near_truth(lm_end, t0, cfg.theta_tol),
               "local_minima_from_truth_branch": lm_end,
               "iii_descents": verdict_descents(cls), "iv_smooth_in_sigma": v4["verdict"],
               "energy_gap_truth_minus_dirac": diff,
               "energy_tol": tol, "local_minima": lm, "sigma_slope": v4["slope"], "sigma_r2": v4["r2"],
               "draw_spread": v4["spread"], "descent_classes": cls, "prior_calls_profile": prof.attrs["prior_calls"],
               "solver_item_evaluations_profile": prof.attrs["solver_item_evaluations"],
               "unconverged_profile_solves": int(unconv.sum()), "profile_solves": int(unconv.size),
               "theta_true": float(theta_true[0]), "theta_global_min": float(g[int(np.argmin(e))]),
               "max_fixed_point_rate_unconverged": float(np.nanmax(np.where(unconv.any(0), rho, np.nan)))
               if score_only and unconv.any() else float("nan")}
    if cfg.certify_k:
        cert = certify_candidates(cfg, problem, prior_name, weight, prof, dsd if free is None else None, grid)
        out = out.merge(cert)
        verdict["ii_certified_near_truth"] = verdict_certified(cert, t0, cfg.theta_tol)
        verdict["i_dirac_certificate"] = str(cert.cert_verdict.sel(candidate="dirac").item())
    if cfg.pf_check and prior_name in LEARNED:
        pf = pf_ode_gap(cfg, problem, weight, prof, (i0, istar))
        verdict.update(pf)
        out.attrs["pf_ode"] = pf
    out.attrs["verdict"] = verdict
    return out


def cases(config: Config) -> list[Config]:
    """One configuration per case, (image, family, noise) x (prior, weight) in that order: the
    tasks that ``landscape run`` farms out (``sweep``), each with single values."""
    cfg = config.resolved()
    out = []
    for case in cfg.problems():
        for p, w in itertools.product(split(cfg.priors), floats("weights", cfg.weights)):
            out.append(replace(cfg, image=case.image, family=case.family, noise=repr(float(case.noise)),
                               priors=p, weights=repr(float(w))))
    return out


def run_part(config: Config, progress: bool = True) -> xr.Dataset:
    """One case of :func:`cases` (single image, family, noise, prior and weight): its profile,
    descents and verdicts, with the case's inputs (``y``, ``x_true``, ``kernel_true``,
    ``theta_true``) and its verdicts in ``attrs['verdict']``."""
    cfg = config.resolved()
    priors, weights = split(cfg.priors), floats("weights", cfg.weights)
    for name, vals in (("priors", priors), ("weights", weights), ("image", split(cfg.image)),
                       ("family", split(cfg.family)), ("noise", split(cfg.noise))):
        if len(vals) != 1:
            raise InputError(name, "a single value for one case (cases() makes them)", getattr(cfg, name))
    (case,), prior, weight = cfg.problems(), priors[0], weights[0]
    fam, theta_true, image, grid, free = setup(case, cfg)
    problem = BlindDeblur.synthetic(image, fam, theta_true, case.noise, rng=cfg.seed, dtype=getattr(torch, cfg.dtype))
    part = run_case(cfg, problem, prior, float(weight), theta_true, grid, progress, free)
    for k, da in io.input_variables(problem).items():
        part[k] = da
    part.attrs["scanned_param"] = problem.family.param_names[0]
    return part


def combine(config: Config, parts: list[xr.Dataset]) -> xr.Dataset:
    """The study's dataset from the parts of :func:`cases` (in its order): cases along ``case``,
    verdicts as variables, the first case's inputs at the top level (each case's own ``y`` and
    kernel as ``case_y``, ``case_kernel_true`` when there are several problems)."""
    cfg = config.resolved()
    cases = cfg.problems()
    per_case = len(parts) // len(cases)
    verdicts, labels, out = [], [], []
    inputs = ("y", "x_true", "kernel_true", "theta_true", "param")
    for i, part in enumerate(parts):
        case = cases[i // per_case]
        part = part.copy()
        v = dict(part.attrs.pop("verdict"))
        v.update(image=case.image if not case.image_file else case.image_file,
                 family="kernel-file" if case.kernel_file else case.family, noise=case.noise)
        verdicts.append(v)
        labels.append(f"{v['prior']}@{v['weight']:g}" + ("" if len(cases) == 1 else f" {v['image']}/{v['family']}/σ={case.noise:g}"))
        if len(cases) > 1:      # per-case inputs (the file's top-level inputs are the first case's)
            part["case_y"] = (part.y.dims, part.y.values)
            part["case_kernel_true"] = (("krow", "kcol"), part.kernel_true.values)
        out.append(part.drop_vars([k for k in inputs if k in part.variables]))
    n = max(pt.sizes["theta"] for pt in out)
    out = [pt.pad(theta=(0, n - pt.sizes["theta"])) if pt.sizes["theta"] < n else pt for pt in out]
    ds = xr.concat(out, dim="case", coords="minimal", compat="override", join="outer")
    ds.attrs.clear()
    ds = ds.assign_coords(case=labels, **{f"case_{k}": ("case", [v[k] for v in verdicts]) for k in CASE_VARS})
    for k in ("i_dirac_below_truth", "ii_local_min_near_truth", "ii_branch_from_truth", "iii_descents",
              "iv_smooth_in_sigma"):
        ds[k] = ("case", np.array([v[k] for v in verdicts]).astype(str))
    for k in ("energy_gap_truth_minus_dirac", "energy_tol", "sigma_slope", "sigma_r2", "draw_spread",
              "unconverged_profile_solves", "max_fixed_point_rate_unconverged", "theta_true", "theta_global_min"):
        ds[k if k != "theta_true" else "case_theta_true"] = ("case", np.array([v[k] for v in verdicts], dtype=float))
    if any("ii_certified_near_truth" in v for v in verdicts):
        for k in ("ii_certified_near_truth", "i_dirac_certificate"):
            ds[k] = ("case", np.array([v.get(k, "not run") for v in verdicts]).astype(str))
    if any("pf_ode_gap_truth_minus_dirac" in v for v in verdicts):
        for tag in ("pf_ode", "pf_ode_fine"):
            for k in ("gap_truth_minus_dirac", "gap_se", "q_dirac", "q_truth", "s"):
                ds[f"{tag}_{k}"] = ("case", np.array([v.get(f"{tag}_{k}", np.nan) for v in verdicts], dtype=float))
    for k in inputs[:-1]:
        if k in parts[0]:
            ds[k] = parts[0][k]
    ds.attrs.update(io.provenance(NAME, asdict(cfg), verdicts=verdicts))
    ds.attrs.update({"noise_sigma": float(verdicts[0]["noise"]), "kernel_family": cfg.family, "prior": cfg.priors,
                     "theta_true_value": float(verdicts[0]["theta_true"]),
                     "scanned_param": parts[0].attrs["scanned_param"]})
    return ds


def run(config: Config | None = None, *, progress: bool = True) -> xr.Dataset:
    """Run every case in this process: ``combine(cfg, [run_part(c) for c in cases(cfg)])``
    (``landscape run`` does the same through ``sweep``, streaming each case to disk)."""
    cfg = (config or Config()).resolved()
    return combine(cfg, [run_part(c, progress) for c in cases(cfg)])


def summary(ds: xr.Dataset) -> str:
    a = ds.attrs
    w = max(16, max(len(str(c)) for c in ds.case.values) + 2)
    lines = [f"{NAME}: {ds.sizes['case']} case(s); first: family={ds.case_family.values[0]} "
             f"theta*={a['theta_true_value']:g} sigma={a['noise_sigma']:g}",
             f"  {'case':<{w}}{'(i) E*(δ)<E*(θ*)':>18}{'(ii) local min':>16}{'(ii′) x* branch':>17}{'(iii) descents':>16}{'(iv) smooth σ':>15}"
             f"{'argmin E*':>10}{'gap (nats)':>13}{'unconverged':>13}{'max ρ':>8}"]
    for i, c in enumerate(ds.case.values):
        n = 2 * int(np.isfinite(ds.theta_value.values[i]).sum())
        rho = float(ds.max_fixed_point_rate_unconverged.values[i])
        lines.append(f"  {c:<{w}}{str(ds.i_dirac_below_truth.values[i]):>18}{str(ds.ii_local_min_near_truth.values[i]):>16}"
                     f"{str(ds.ii_branch_from_truth.values[i]) if 'ii_branch_from_truth' in ds else '':>17}"
                     f"{str(ds.iii_descents.values[i]):>16}{str(ds.iv_smooth_in_sigma.values[i]):>15}"
                     f"{float(ds.theta_global_min.values[i]):10.3g}{float(ds.energy_gap_truth_minus_dirac.values[i]):13.1f}"
                     f"{int(ds.unconverged_profile_solves.values[i]):>7d}/{n:<5d}"
                     f"{'' if np.isnan(rho) else f'{rho:.4f}':>8}")
    if "cert_verdict" in ds:
        lines.append("  certificates (local joint descent, then ||grad E|| and the smallest Hessian eigenvalue ± its residual):")
        for i, c in enumerate(ds.case.values):
            lines.append(f"    {c}: (ii) certified near θ*: {ds.ii_certified_near_truth.values[i]}")
            for j, cand in enumerate(ds.candidate.values):
                v = str(ds.cert_verdict.values[i, j])
                if v == "none":
                    continue
                lines.append(f"      {cand:<20} θ {float(ds.cert_theta_start.values[i, j]):.3g} → "
                             f"{float(ds.cert_theta.values[i, j]):.4g}  |∇E| {float(ds.cert_grad_norm.values[i, j]):.2e}"
                             f"  λmin {float(ds.cert_eig_min.values[i, j]):.3e} ± {float(ds.cert_eig_residual.values[i, j]):.1e}  {v}"
                             + (f"  (+{int(ds.cert_newton_steps.values[i, j])} Newton)" if "cert_newton_steps" in ds
                                and np.isfinite(ds.cert_newton_steps.values[i, j]) else ""))
    if "pf_ode_gap_truth_minus_dirac" in ds:
        for i, c in enumerate(ds.case.values):
            g = float(ds.pf_ode_gap_truth_minus_dirac.values[i])
            if np.isfinite(g):
                lines.append(f"  {c}: PF-ODE cross-check of (i): E_pf(θ*) − E_pf(δ) = {g:.1f} ± "
                             f"{float(ds.pf_ode_gap_se.values[i]):.1f} nats at s = {float(ds.pf_ode_s.values[i]):g} "
                             f"(the prior's own gap {float(ds.energy_gap_truth_minus_dirac.values[i]):.1f}); "
                             f"{float(ds.pf_ode_fine_gap_truth_minus_dirac.values[i]):.1f} ± "
                             f"{float(ds.pf_ode_fine_gap_se.values[i]):.1f} at the ODE's finest s = "
                             f"{float(ds.pf_ode_fine_s.values[i]):g}")
    lines.append("  (ii′) = (ii) on the profile branch warm-started from x* alone (a joint local minimum in the truth's basin of x);\n"
                 "  argmin E* = grid theta (first parameter) of the profile's global minimum; "
                 "gap = E*(theta*) - E*(delta); unconverged = inner solves that hit max_iter (their energies are upper "
                 "bounds);\n  max ρ = largest spectral radius of the HQS map at an unconverged solve (≥ 1: the fixed "
                 "point repels, no cap would converge)")
    return "\n".join(lines)


def plot(ds: xr.Dataset, ax: Any = None):
    """Left: profile branches per case with θ* and the minima marked; right: descent paths
    in the (kernel path t, image path u) plane for the first case. Returns the first axes."""
    import matplotlib.pyplot as plt
    many = ds.sizes["case"] > 3            # many cases: lower branch only, against theta / theta*
    if ax is None:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15 if many else 11, 4.8),
                                      gridspec_kw={"width_ratios": (1.6, 1) if many else (1, 1)})
    else:
        ax2 = None
    for k, c in enumerate(ds.case.values):
        th = ds.theta_value.sel(case=c).values
        ts = float(ds.case_theta_true.sel(case=c))
        xs = th / ts if many else th
        e = ds.profile_energy_branch.sel(case=c)
        base = float(np.nanmin(e))
        pe = ds.profile_energy.sel(case=c).values - base
        if many:
            ax.plot(xs, pe, "-", color=f"C{k % 10}", lw=1, label=str(c))
        else:
            for b, ls_ in zip(ds.branch.values, ("-", "--")):
                ax.plot(xs, e.sel(branch=b) - base, ls_, color=f"C{k}", label=f"{c} ({b})")
            ax.axvline(ts, color=f"C{k}", ls=":", lw=1)
        i = int(np.nanargmin(pe))
        ax.plot(xs[i], pe[i], "o", color=f"C{k % 10}", ms=6)
        fin = np.flatnonzero(np.isfinite(pe))
        loc = [j for j in fin[scan.local_minima(pe[fin])] if j != i]
        ax.plot(xs[loc], pe[loc], "v", color=f"C{k % 10}", ms=7, mfc="none")
    if many:
        ax.axvline(1.0, color="0.4", ls=":")
    ax.set_xlabel("θ / θ*" if many else ds.attrs.get("scanned_param", "theta"))
    ax.set_ylabel("E*(θ) − min (nats)")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0) if many else None, ncol=1)
    ax.set_title("profile energy" + (" (lower branch)" if many else ", both continuation branches")
                 + " — dotted: θ*, dot: global min, triangle: other local min", fontsize=9)
    if ax2 is not None:
        c = ds.case.values[0]
        if "plane_energy" in ds:
            pl = ds.plane_energy.sel(case=c)
            cs = ax2.contourf(ds.t.values, ds.u.values, np.log10(1 + (pl - pl.min()).values.T), levels=25,
                              cmap="Greys_r")
            ax2.figure.colorbar(cs, ax=ax2, label="log10(1 + E − min on the plane), nats")
        for j, init in enumerate(ds.init.values):
            t = ds.descent_t.sel(case=c, init=init)
            u = ds.descent_u.sel(case=c, init=init)
            ax2.plot(t, u, "-", color=f"C{j}", lw=1.5, label=f"{init}: {str(ds.descent_end_class.sel(case=c, init=init).values)}")
            ax2.plot(t[0], u[0], "o", color=f"C{j}", ms=4)
            ax2.plot(t[-1], u[-1], "s", color=f"C{j}", ms=6)
        ax2.plot([0], [0], "k*", ms=12)
        ax2.plot([1], [1], "r*", ms=12)
        ax2.annotate("(δ, y)", (0, 0), textcoords="offset points", xytext=(5, -12))
        ax2.annotate("(h*, x*)", (1, 1), textcoords="offset points", xytext=(5, 5))
        ax2.set_xlabel("kernel coordinate t (δ → h*)")
        ax2.set_ylabel("image coordinate u (y → x*)")
        ax2.set_title(f"descents ({c})")
        ax2.legend(fontsize=7)
        ax.figure.tight_layout()
    return ax
