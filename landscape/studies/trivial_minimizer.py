r"""Study ``trivial-minimizer``: is :math:`(\delta, y)` the global minimiser of the joint energy,
with a local minimiser near the truth :math:`(h^\star, x^\star)`?

For each case (prior, weight :math:`\lambda` in :math:`E = \text{data} + \lambda q + r`):

(i)   :math:`E^*(\delta) < E^*(\theta^\star)` (profile energies; a difference below the energy
      tolerance is reported as a tie);
(ii)  the profile :math:`E^*` has a local minimum within ``theta_tol`` of :math:`\theta^\star`;
(iii) descent from near the truth ends ``near_truth`` and descent from :math:`(\delta, y)` ends
      ``trivial``;
(iv)  over ``n_draws`` noise draws at each of ``noise_levels``, the near-truth local minimiser
      :math:`\hat\theta(\sigma)` (a local profile on :math:`\theta^\star [0.6, 1.4]`, warm-started
      from :math:`x^\star`, parabolic refinement; NaN when the minimum sits at an end) moves
      smoothly with :math:`\sigma`: "yes" when the spread over draws is at most
      :math:`0.1\theta^\star` and either :math:`R^2 \ge 0.5` or the fitted change over the
      levels is at most :math:`0.1\theta^\star`; "no-local-min" when some draw has none.

The profile is warm-started along the grid from both ends (branches ``from_dirac`` and
``from_end``, the latter starting from :math:`x^\star`), so both basins of a two-basin profile
are visible. The default is the shipped learned prior (``denoiser-gray``, Tweedie score at
``s``) on a crop of ``camera`` with a Gaussian blur.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import xarray as xr

from .. import data, descent, io, scan
from .._checks import choice, positive
from .common import ProblemConfig, family_and_truth, floats, load_image, split, theta_grid
from ..posterior import BlindDeblur, Posterior
from ..priors import (GaussianPrior, PatchGMMPrior, SparseGradientPrior, fit_natural_gmm, load as load_prior)

NAME = "trivial-minimizer"
SUMMARY = "is (delta, y) the global joint-MAP minimiser, with a local minimiser near the truth?"
PRIORS = ("tweedie", "gs", "gaussian", "patch-gmm", "sparse")


@dataclass
class Config(ProblemConfig):
    """Options of ``trivial-minimizer`` (``landscape run trivial-minimizer --help``)."""

    priors: str = field(default="tweedie", metadata={"help": "comma-separated: " + ", ".join(PRIORS)})
    weights: str = field(default="1", metadata={"help": "prior weights lambda, comma-separated"})
    s: float = field(default=0.01, metadata={"help": "Tweedie / GS noise level of the learned priors"})
    noise_levels: str = field(default="0.005,0.01,0.02,0.05", metadata={"help": "levels for verdict (iv)"})
    n_draws: int = field(default=5, metadata={"help": "noise draws per level for verdict (iv)"})
    scheme: str = field(default="alternating", metadata={"help": "descent: alternating, joint or pam"})
    n_outer: int = field(default=30, metadata={"help": "descent outer iterations"})
    theta_tol: float = field(default=0.3, metadata={"help": "verdict (ii): distance to theta* (first parameter)"})
    xtol: float = field(default=1e-5, metadata={"help": "inner solver tolerance (relative change of x)"})
    max_iter: int = field(default=300, metadata={"help": "inner solver iteration cap (unconverged solves are counted)"})
    dtype: str = field(default="float32", metadata={"help": "float32 or float64 (energy comparisons)"})
    seed: int = field(default=0, metadata={"help": "seed"})
    quick: bool = field(default=False, metadata={"help": "small crop, coarse grid, 2 levels x 2 draws (< 60 s)"})

    def resolved(self) -> "Config":
        c = Config(**asdict(self))
        if c.quick:
            c.crop, c.n_theta, c.n_draws, c.n_outer = min(c.crop, 32), min(c.n_theta, 13), min(c.n_draws, 2), min(c.n_outer, 10)
            c.xtol, c.max_iter = max(c.xtol, 1e-4), min(c.max_iter, 60)
            c.noise_levels = ",".join(c.noise_levels.split(",")[:2])
        c.validate_problem(min_points=5)
        for p in split(c.priors):
            choice("priors", p, PRIORS)
        for w in floats("weights", c.weights):
            positive("weights", w)
        for v in floats("noise_levels", c.noise_levels):
            positive("noise_levels", v)
        choice("scheme", c.scheme, ("alternating", "joint", "pam"))
        choice("dtype", c.dtype, ("float32", "float64"))
        return c


def make_prior(name: str, shape: tuple[int, int], s: float, dtype: torch.dtype = torch.float64):
    if name == "tweedie":
        return load_prior("denoiser-gray", "tweedie", s=s, dtype=dtype)
    if name == "gs":
        return load_prior("gs-denoiser-gray", "gs", s=s, dtype=dtype)
    if name == "gaussian":
        return GaussianPrior.fit(data.TRAIN, shape)
    if name == "patch-gmm":
        return PatchGMMPrior(fit_natural_gmm((8, 8), 10, 20000, progress=False))
    return SparseGradientPrior(alpha=0.8, eps=0.01)


def _setup(cfg: Config):
    fam, theta_true, grid_max = family_and_truth(cfg)
    image = load_image(cfg)
    return fam, theta_true, image, theta_grid(theta_true, grid_max, cfg.n_theta, include_truth=True)


def local_minima(values: np.ndarray) -> np.ndarray:
    """Indices of grid local minima (ends included when lower than their neighbour)."""
    v = np.asarray(values)
    left = np.r_[np.inf, v[:-1]]
    right = np.r_[v[1:], np.inf]
    return np.flatnonzero((v <= left) & (v <= right))


def near_truth_minimiser(post: Posterior, theta_true: np.ndarray, width: float = 0.4, n: int = 7,
                         **solver: Any) -> float:
    """Local profile around theta*, warm-started from x*; parabolic-refined minimiser."""
    t0 = float(theta_true[0])
    g = np.linspace(max(t0 * (1 - width), 0.0), t0 * (1 + width), n)
    grid = np.tile(theta_true, (n, 1))
    grid[:, 0] = g
    x, xs = post.problem.x_true, []
    for row in grid:
        x, _, _ = post.argmin_x(row[None], x, energies=False, **solver)
        x = x[0]
        xs.append(x)
    prev = post.energy(grid, torch.stack(xs)).numpy()
    i = int(np.argmin(prev))
    if i in (0, n - 1):                      # no interior minimum: no near-truth local minimiser
        return float("nan")
    return scan.grid_argmin(np.array(prev), g)[1]


def run_case(cfg: Config, problem: BlindDeblur, prior_name: str, weight: float, theta_true, grid,
             progress: bool) -> xr.Dataset:
    prior = make_prior(prior_name, problem.image_shape, cfg.s, problem.dtype)
    post = Posterior(problem, prior, prior_weight=weight)
    solver = {"xtol": cfg.xtol, "max_iter": cfg.max_iter}
    prof = scan.profile(post, grid, warm_start=True, store_images=True, progress=progress, **solver)
    g = grid[:, 0]
    i0, istar = 0, int(np.argmin(np.abs(g - theta_true[0])))
    e = prof.profile_energy.values
    # energy tolerance: the solver's, plus for score-only priors the quadrature error of the
    # prior-energy difference between the two minimisers (a line integral of the score)
    tol = (1e-6 if problem.dtype == torch.float64 else 1e-5) * float(np.abs(e).max())
    if hasattr(prior, "energy_difference"):
        xb = torch.as_tensor(prof.x_hat.values[prof.best_branch.values[[i0, istar]], [i0, istar]])
        _, err = prior.energy_difference(xb[:1], xb[1:])
        tol += weight * float(err.max())
    diff = float(e[istar] - e[i0])
    v1 = "tie" if abs(diff) <= tol else ("yes" if diff > 0 else "no")
    mins = local_minima(e)
    lm = [float(g[i]) for i in mins]
    v2 = "yes" if any(abs(m - theta_true[0]) <= cfg.theta_tol for m in lm) else "no"
    th0, x0, labels = descent.initialisations(post, rng=cfg.seed)
    dsd = descent.descend(post, th0, x0, labels=labels, scheme=cfg.scheme, n_outer=cfg.n_outer, progress=progress,
                          xtol=cfg.xtol)
    cls = dict(zip(labels, dsd.end_class.values))
    near = [c for lab, c in cls.items() if lab.startswith("truth")]
    v3 = "yes" if (cls["dirac"] == "trivial" and near and all(c == "near_truth" for c in near)) else "no"
    # (iv) near-truth minimiser against sigma over noise draws
    levels = floats("noise_levels", cfg.noise_levels)
    th_hat = np.full((len(levels), cfg.n_draws), np.nan)
    for a, sig in enumerate(levels):
        for d in range(cfg.n_draws):
            pb = BlindDeblur.synthetic(problem.x_true.numpy(), problem.family, theta_true, sig,
                                       rng=cfg.seed + 1000 + 97 * d + a, dtype=problem.dtype)
            th_hat[a, d] = near_truth_minimiser(Posterior(pb, prior, prior_weight=weight), theta_true, **solver)
    sv = np.repeat(levels, cfg.n_draws)
    tv = th_hat.reshape(-1)
    slope, r2 = np.nan, np.nan
    if len(levels) > 1 and np.isfinite(tv).all():
        slope, icpt = np.polyfit(sv, tv, 1)
        ss = np.sum((tv - tv.mean()) ** 2)
        r2 = 1 - np.sum((tv - (slope * sv + icpt)) ** 2) / ss if ss > 0 else 1.0
    spread = float(np.nanmax(th_hat.std(1))) if cfg.n_draws > 1 and np.isfinite(tv).any() else np.nan
    if not np.isfinite(tv).all():
        v4 = "no-local-min"
    else:
        small_move = abs(slope) * np.ptp(levels) <= 0.1 * abs(theta_true[0]) if np.isfinite(slope) else True
        v4 = "yes" if (spread <= 0.1 * abs(theta_true[0]) and (r2 >= 0.5 or small_move)) else "no"
    out = xr.Dataset({
        "profile_energy": prof.profile_energy, "profile_energy_branch": prof.profile_energy_branch,
        "data_term": prof.data_term, "prior_term": prof.prior_term,
        "descent_theta": dsd.theta_path.isel(param=0), "descent_kernel_error": dsd.kernel_error,
        "descent_t": dsd.t_coord, "descent_u": dsd.u_coord, "descent_energy": dsd.energy_path,
        "descent_end_class": dsd.end_class,
        "theta_hat_near_truth": (("noise_level", "draw"), th_hat, {"long_name": "near-truth local minimiser"}),
    }, coords={"noise_level": levels, "draw": np.arange(cfg.n_draws)})
    out = out.drop_vars([c for c in ("theta_path",) if c in out])
    verdict = {"prior": prior_name, "weight": weight, "i_dirac_below_truth": v1, "ii_local_min_near_truth": v2,
               "iii_descents": v3, "iv_smooth_in_sigma": v4, "energy_gap_truth_minus_dirac": diff,
               "energy_tol": tol, "local_minima": lm, "sigma_slope": float(slope), "sigma_r2": float(r2),
               "draw_spread": spread, "descent_classes": cls, "prior_calls_profile": prof.attrs["prior_calls"],
               "solver_item_evaluations_profile": prof.attrs["solver_item_evaluations"],
               "unconverged_profile_solves": int((~prof.converged.values.astype(bool)).sum()),
               "profile_solves": int(prof.converged.size)}
    out.attrs["verdict"] = verdict
    return out


def run(config: Config | None = None, *, progress: bool = True) -> xr.Dataset:
    cfg = (config or Config()).resolved()
    fam, theta_true, image, grid = _setup(cfg)
    problem = BlindDeblur.synthetic(image, fam, theta_true, cfg.noise, rng=cfg.seed, dtype=getattr(torch, cfg.dtype))
    cases = list(itertools.product(split(cfg.priors), floats("weights", cfg.weights)))
    parts, verdicts = [], []
    for p, w in cases:
        part = run_case(cfg, problem, p, w, theta_true, grid, progress)
        verdicts.append(part.attrs.pop("verdict"))
        parts.append(part)
    ds = xr.concat(parts, dim="case", coords="minimal", compat="override", join="outer")
    ds = ds.assign_coords(case=[f"{v['prior']}@{v['weight']:g}" for v in verdicts],
                          theta=("theta", grid[:, 0]))
    for k in ("i_dirac_below_truth", "ii_local_min_near_truth", "iii_descents", "iv_smooth_in_sigma"):
        ds[k] = ("case", np.array([v[k] for v in verdicts]).astype(str))
    for k in ("energy_gap_truth_minus_dirac", "energy_tol", "sigma_slope", "sigma_r2", "draw_spread",
              "unconverged_profile_solves"):
        ds[k] = ("case", np.array([v[k] for v in verdicts], dtype=float))
    for k, da in io.input_variables(problem).items():
        ds[k] = da
    ds.attrs.update(io.provenance(NAME, asdict(cfg), verdicts=verdicts))
    ds.attrs.update({"noise_sigma": cfg.noise, "kernel_family": fam.name, "prior": cfg.priors,
                     "theta_true_value": float(theta_true[0]), "scanned_param": fam.param_names[0]})
    return ds


def summary(ds: xr.Dataset) -> str:
    a = ds.attrs
    lines = [f"{NAME}: family={a['kernel_family']} theta*={a['theta_true_value']:g} sigma={a['noise_sigma']:g}",
             f"  {'case':<16}{'(i) E*(δ)<E*(θ*)':>18}{'(ii) local min':>16}{'(iii) descents':>16}{'(iv) smooth σ':>15}"
             f"{'gap (nats)':>13}{'unconverged':>13}"]
    for i, c in enumerate(ds.case.values):
        lines.append(f"  {c:<16}{str(ds.i_dirac_below_truth.values[i]):>18}{str(ds.ii_local_min_near_truth.values[i]):>16}"
                     f"{str(ds.iii_descents.values[i]):>16}{str(ds.iv_smooth_in_sigma.values[i]):>15}"
                     f"{float(ds.energy_gap_truth_minus_dirac.values[i]):13.1f}"
                     f"{int(ds.unconverged_profile_solves.values[i]):>7d}/{ds.sizes['branch'] * ds.sizes['theta']}")
    lines.append("  gap = E*(theta*) - E*(delta); unconverged = inner solves that hit max_iter (their energies are upper bounds)")
    return "\n".join(lines)


def plot(ds: xr.Dataset, ax: Any = None):
    """Left: profile branches per case with θ* and the minima marked; right: descent paths
    in the (kernel path t, image path u) plane for the first case. Returns the first axes."""
    import matplotlib.pyplot as plt
    if ax is None:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    else:
        ax2 = None
    th = ds.theta.values
    for k, c in enumerate(ds.case.values):
        e = ds.profile_energy_branch.sel(case=c)
        base = float(np.nanmin(e))
        for b, ls_ in zip(ds.branch.values, ("-", "--")):
            ax.plot(th, e.sel(branch=b) - base, ls_, color=f"C{k}", label=f"{c} ({b})")
        pe = ds.profile_energy.sel(case=c).values - base
        i = int(np.nanargmin(pe))
        ax.plot(th[i], pe[i], "o", color=f"C{k}", ms=8)
    ax.axvline(ds.attrs["theta_true_value"], color="0.4", ls=":", label="θ*")
    ax.set_xlabel(ds.attrs.get("scanned_param", "theta"))
    ax.set_ylabel("E*(θ) − min (nats)")
    ax.legend(fontsize=7)
    ax.set_title("profile energy, both continuation branches")
    if ax2 is not None:
        c = ds.case.values[0]
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
