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
from dataclasses import asdict, dataclass, replace

import torch
import xarray as xr

from ... import data, io, kernels
from ..._checks import (
    flag,
    InputError,
    integer,
    number,
    numbers,
    one_of,
    option,
    positive_number,
    prior_names,
    shown,
    subset_of,
)
from ...posterior import BlindDeblur
from ..common import (
    FIRST,
    ProblemConfig,
    at_least,
    at_most,
    device_option,
    first,
    quick_resolved,
    single_case,
    true_parameter,
)
from .case import PLANE, run_case, setup  # noqa: F401  (PLANE: the stored plane's coordinates)
from .report import plot, summary  # noqa: F401  (the Study protocol's members)
from .verdicts import CERT_GTOL, as_variables  # noqa: F401  (CERT_GTOL: the certificate's tolerance, read by callers)

#: true parameters used when ``--theta-true`` is not given
FAMILY_TRUTH = {"gaussian": (1.5,), "gaussian-aniso": (2.0, 1.0, 30.0), "defocus": (2.0,), "airy": (2.0,),
                "motion": (7.0, 30.0)}
NAME = "trivial-minimizer"
SUMMARY = "is (delta, y) the global joint-MAP minimiser, with a local minimiser near the truth?"
#: the registry's priors that take any image shape and have an energy or a score for the solver
PRIORS = ("tweedie", "gs", "gaussian", "patch-gmm", "sparse")
FAMILIES = tuple(FAMILY_TRUTH) + ("free",)
#: what identifies a case (stored as coordinates ``case_<name>``)
CASE_VARS = ("image", "family", "noise", "prior", "weight")


#: ``--quick`` (one case, the first of every list; small crop, coarse grid, 2 levels x 2 draws, no certificates)
QUICK = {"crop": at_most(32), "n_theta": at_most(13), "n_draws": at_most(2), "n_outer": at_most(10),
         "xtol": at_least(1e-4), "max_iter": at_most(60), "certify_k": 0, "noise_levels": first(2),
         "image": FIRST, "family": FIRST, "noise": FIRST, "priors": FIRST, "weights": FIRST}


@dataclass
class Config(ProblemConfig):
    """Options of ``trivial-minimizer`` (``landscape run trivial-minimizer --help``)."""

    image: tuple[str, ...] = option(("camera",), "image names (data.names()), comma-separated",
                                    subset_of(data.names()))
    family: tuple[str, ...] = option(("gaussian",), "kernel families, comma-separated: " + ", ".join(FAMILIES),
                                     subset_of(FAMILIES))
    theta_true: tuple[float, ...] = option((), "true parameter(s) of a single family (default FAMILY_TRUTH)",
                                           numbers(allow_empty=True))
    theta_max: float = option(0.0, "grid upper end of the first parameter (default 2 theta*)", number(0.0))
    noise: tuple[float, ...] = option((0.01,), "noise standard deviations sigma, comma-separated",
                                      numbers(0.0, lo_open=True))
    priors: tuple[str, ...] = option(("tweedie",), "comma-separated: " + ", ".join(PRIORS), prior_names(PRIORS))
    weights: tuple[float, ...] = option((1.0,), "prior weights lambda, comma-separated", numbers(0.0, lo_open=True))
    s: float = option(0.01, "Tweedie / GS noise level of the learned priors", positive_number())
    noise_levels: tuple[float, ...] = option((0.005, 0.01, 0.02, 0.05), "levels for verdict (iv)",
                                             numbers(0.0, lo_open=True))
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
    device: str = device_option()
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
        fams = self.family or ("gaussian",)
        if self.theta_true and len(fams) > 1:
            raise InputError("theta_true", "one family when a true parameter is given", shown(fams))
        out = []
        for im, fa, no in itertools.product(self.image, fams, self.noise):
            th = self.theta_true or FAMILY_TRUTH.get(fa, ())
            if not th and fa != "free" and not self.kernel_file:
                raise InputError("theta_true", f"a true parameter for family {fa!r} (no default)", "nothing")
            first = float(true_parameter(kernels.get(fa, self.kernel_size), th)[0]) if th and fa != "free" else 1.0
            if not self.theta_max and first <= 0:
                raise InputError("theta_true", "a first parameter > 0 (the grid runs to 2 theta*; or give "
                                 "--theta-max)", ",".join(f"{t:g}" for t in th))
            out.append(ProblemConfig(image=im, image_file=self.image_file, kernel_file=self.kernel_file,
                                     color=self.color, crop=self.crop, family=fa, kernel_size=self.kernel_size, theta_true=th,
                                     theta_max=self.theta_max or 2 * first, n_theta=self.n_theta, noise=no))
        if not out:
            raise InputError("image", "at least one image name", "nothing")
        return out


def cases(config: Config) -> list[Config]:
    """One configuration per case, (image, family, noise) x (prior, weight) in that order: the
    tasks that ``landscape run`` farms out (``sweep``), each with single values."""
    cfg = config.resolved()
    out = []
    for case in cfg.problems():
        for p, w in itertools.product(cfg.priors, cfg.weights):
            out.append(replace(cfg, image=(case.image,), family=(case.family,), noise=(case.noise,),
                               priors=(p,), weights=(w,)))
    return out


def run_part(config: Config, progress: bool = True) -> xr.Dataset:
    """One case of :func:`cases` (single image, family, noise, prior and weight): its profile,
    descents and verdicts, with the case's inputs (``y``, ``x_true``, ``kernel_true``,
    ``theta_true``) and its verdicts in ``attrs['verdict']``."""
    cfg = config.resolved()
    single_case(cfg, ("priors", "weights", "image", "family", "noise"))
    (case,), (prior,), (weight,) = cfg.problems(), cfg.priors, cfg.weights
    fam, theta_true, image, grid, free = setup(case, cfg)
    problem = BlindDeblur.synthetic(image, fam, theta_true, case.noise, rng=cfg.seed, dtype=getattr(torch, cfg.dtype),
                                    device=cfg.device)
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
    ds = as_variables(ds, verdicts)
    for k in inputs[:-1]:
        if k in parts[0]:
            ds[k] = parts[0][k]
    ds.attrs.update(io.provenance(NAME, asdict(cfg), verdicts=verdicts))
    ds.attrs.update({"noise_sigma": float(verdicts[0]["noise"]), "kernel_family": shown(cfg.family),
                     "prior": shown(cfg.priors),
                     "theta_true_value": float(verdicts[0]["theta_true"]),
                     "scanned_param": parts[0].attrs["scanned_param"]})
    return ds


def run(config: Config | None = None, *, progress: bool = True) -> xr.Dataset:
    """Run every case in this process: ``combine(cfg, [run_part(c) for c in cases(cfg)])``
    (``landscape run`` does the same through ``sweep``, streaming each case to disk)."""
    cfg = (config or Config()).resolved()
    return combine(cfg, [run_part(c, progress) for c in cases(cfg)])
