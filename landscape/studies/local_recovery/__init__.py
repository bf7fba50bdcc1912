r"""Study ``local-recovery``: the theorem of Nguyen, Pauwels & Weiss under its own hypothesis.

*If* :math:`x^\star` is a local minimiser of :math:`q = -\log p_X` (hypothesis **H**), *then* the joint
energy :math:`E(\theta, x) = \|h(\theta) \star x - y\|^2/(2\sigma^2) + \lambda q(x)` has a global minimiser at
the trivial pair (**C1**), a local minimiser near :math:`(h^\star, x^\star)` (**C2**), stable to noise
(**C3**), and hard to find (**C4**). Each case (prior × image × role of :math:`x^\star`) decides each one
with its evidence:

* **H** — :math:`x^\star` from the image by ``critical.critical_point`` (L-BFGS on :math:`q`, or an Anderson
  root of :math:`x - D(x, s)` for a score) to ``q_gtol``; :math:`\|\nabla q\|` before and after, the Hessian's
  smallest eigenvalues with residual bounds, the near-zero counts (the paper's :math:`s^2|\lambda| \le
  10^{-5}` and relative ones), and how far :math:`x^\star` moved (PSNR against the image, pixel std).
  ``x_star = natural`` keeps the image itself (today's setting, beside it): H is then checked, not assumed.
* **C2, C3** — data :math:`y_\sigma = h^\star \star x^\star + \sigma n_d` for each level of ``noise_levels``
  and draw :math:`d` (the same :math:`n_d` along the ladder, so the branch is a continuation). Level 0 is
  noise-free data, with the energy's :math:`\sigma` = ``sigma_zero``: when H holds, :math:`(\theta^\star,
  x^\star)` is then exactly stationary (the residual and :math:`\nabla q` vanish). From the previous level's
  point, a local joint descent (``certify.polish``, Newton steps where the prior assembles its Hessian) and
  the second-order certificate (``certify.certificate``, draw 0). C3 holds when every level's point is a
  certified minimiser that has not merged into the trivial basin (:math:`\hat\theta > 0.1\theta^\star`);
  the slope of :math:`\hat\theta(\sigma) - \theta^\star` is fitted.
* **C1** — :math:`E` at the trivial pair :math:`(\delta, \hat x_\delta)`, :math:`\hat x_\delta =
  \arg\min_x E(0, x)` from :math:`y`, against :math:`E` at the local minimiser, per level and draw; the
  trivial pair's own certificate and the energy along the segment between the two at ``reference_noise``.
* **C4** — at ``reference_noise``: alternating descents (``descent.descend``) from perturbations of the
  certified point of relative radius :math:`r` (:math:`\theta` by :math:`r\theta^\star`, :math:`x` by
  :math:`r\|\hat x - \hat x_\delta\|` in a random direction), from :math:`(\delta, y)` and from random
  kernels; the fraction that returns (:math:`|\theta_{end} - \hat\theta| \le 0.05\theta^\star`) against r.

``--color``: colour crops :math:`(3, n, n)` of the held-out colour photographs (``data.COLOR_TEST``), the
same kernel on every channel, :math:`d = 3n^2`; every prior in its colour version: ``tweedie`` and ``gs`` (the
shipped colour networks), ``gaussian`` (fitted inter-channel covariance), ``patch-gmm`` (colour patches),
``sparse`` (per channel), ``sandbox`` (a colour mixture whose covariance is that of colour training crops)
and user priors.

Prior ``sandbox``: an equal-weight Gaussian mixture of well-separated components (``GMMPrior.separated``)
whose means are the held-out images, so :math:`x^\star` (the mode) and :math:`\nabla^2 q(x^\star) =
\Sigma^{-1}` are known in closed form; the study stores the closed forms beside the pipeline's values
(``closed_*``) and ``tests/test_local_recovery.py`` checks they agree. Score-only priors have no energy to
polish: their C2 is the certificate at :math:`(\theta^\star, x^\star)` at level 0 and C3 is ``n/a``.

The page reads top-down: the options and the cut into cases here, the measurements in ``evidence``, the
conclusions in ``verdicts``, the summary and figure in ``report``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import xarray as xr

from ... import data, io, kernels, scan
from ..._checks import (
    InputError,
    files_or_empty,
    flag,
    integer,
    number,
    numbers,
    option,
    positive_number,
    prior_names,
    subset_of,
)
from ...posterior import BlindDeblur
from ...solvers import SolverOptions
from ..common import FIRST, at_most, color_resolved, device_option, first, image_field, image_sources, single_case
from .evidence import SANDBOX_SIZE, basin_descents, hypothesis, ladder, prior_and_image, sandbox_gap
from .report import plot, summary  # noqa: F401  (the Study protocol's members)
from .verdicts import conclusions

NAME = "local-recovery"
SUMMARY = "the theorem under its hypothesis: x* a critical point of q, then C1-C4 each certified"
PRIORS = ("gs", "tweedie", "patch-gmm", "gaussian", "sparse", "sandbox")
#: a colour run's defaults (every prior has a colour version)
COLOR_DEFAULTS = {"images": data.COLOR_TEST[:1], "priors": ("sandbox", "tweedie")}
ROLES = ("critical", "natural")
#: what identifies a case (stored as coordinates ``case_<name>``)
CASE_VARS = ("prior", "image", "x_star")

QUICK = {"crop": at_most(16), "priors": FIRST, "images": FIRST, "x_star": FIRST, "noise_levels": first(2),
         "n_draws": 1, "radii": first(2), "n_directions": 1, "n_outer": at_most(15), "q_max_iter": at_most(400)}


@dataclass
class Config:
    """Options of ``local-recovery`` (``landscape run local-recovery --help``)."""

    priors: tuple[str, ...] = option(("gs", "sandbox"),
                                     "comma-separated: " + ", ".join(PRIORS) + " (or your prior's spec)",
                                     prior_names(PRIORS))
    images: tuple[str, ...] = option(("camera",), "held-out image names, comma-separated (with --color: "
                                     + ", ".join(data.COLOR_TEST) + "; chelsea the default there)",
                                     subset_of(data.TEST + data.COLOR_TEST))
    image_file: tuple[str, ...] = option((), "your own image file(s), comma-separated, luminance unless --color; "
                                         "replace --images", files_or_empty("an image file"))
    color: bool = option(False, "colour crops (3, crop, crop), d = 3 crop^2; every prior in its colour version "
                         "(sandbox, tweedie the default there)", flag())
    crop: int = option(32, "central crop size (the sandbox uses 12x12)", integer(8, 128))
    x_star: tuple[str, ...] = option(("critical", "natural"),
                                     "role of x*: critical (a critical point of q reached from the "
                                     "image), natural (the image itself)", subset_of(ROLES))
    theta_true: float = option(1.5, "true Gaussian blur width theta*", positive_number())
    kernel_size: int = option(9, "odd kernel size", integer(3, 31))
    s: float = option(0.01, "noise level of the learned priors", positive_number())
    weight: float = option(1.0, "prior weight lambda", positive_number())
    q_gtol: float = option(1e-4, "H: stop the descent on q at ||grad q|| <= q_gtol", positive_number())
    q_max_iter: int = option(3000, "H: iterations of the descent on q at most", integer(1))
    noise_levels: tuple[float, ...] = option((0.0, 0.003, 0.01, 0.03),
                                             "C3 ladder of sigma (0: noise-free data)", numbers(0.0))
    sigma_zero: float = option(1e-3, "the energy's sigma at level 0 (noise-free data)", positive_number())
    n_draws: int = option(2, "noise draws per level (certificates on draw 0)", integer(1))
    reference_noise: float = option(0.01, "the level of C4 and of the stored segment (nearest on the ladder)",
                                    number(0.0))
    radii: tuple[float, ...] = option((0.1, 0.3, 0.6, 1.0),
                                      "C4 relative perturbation radii", numbers(0.0, lo_open=True))
    n_directions: int = option(2, "C4 random directions per radius", integer(1))
    n_outer: int = option(40, "C4 outer iterations of each alternating descent", integer(1))
    certify_k: int = option(3, "smallest eigenvalues computed by each certificate", integer(1))
    seed: int = option(0, "seed of the noise draws and directions", integer(0))
    device: str = device_option()
    quick: bool = option(False, "one prior, one image, 16x16, 2 levels, 1 draw (< 60 s)", flag())

    def resolved(self) -> "Config":
        c = color_resolved(self, QUICK, COLOR_DEFAULTS)
        if c.kernel_size % 2 == 0 or c.kernel_size > min(c.crop, SANDBOX_SIZE if "sandbox" in c.priors
                                                           else c.crop):
            raise InputError("kernel_size", "an odd size no larger than the image (12 with the sandbox)", c.kernel_size)
        return c


def cases(config: Config) -> list[Config]:
    """One configuration per (prior, image, role of x*); the sandbox has no ``natural`` role (its x* is a
    mean, the image itself)."""
    cfg = config.resolved()
    names = [n for n, _ in image_sources(cfg.images, cfg.image_file, SANDBOX_SIZE, color=cfg.color)]
    return [replace(cfg, priors=(p,), x_star=(r,), **{image_field(cfg): (n,)})
            for p, n, r in itertools.product(cfg.priors, names, cfg.x_star)
            if not (p == "sandbox" and r == "natural")]


def run_part(config: Config, progress: bool = True) -> xr.Dataset:
    """One case of :func:`cases`: H, then C1-C4 (see the module docstring)."""
    cfg = config.resolved()
    single_case(cfg, ("priors", image_field(cfg), "x_star"))
    rng = np.random.default_rng(cfg.seed)
    t_start = time.perf_counter()
    prior, x0, closed = prior_and_image(cfg, rng)
    x_star, ev = hypothesis(cfg, prior, x0)
    fam = kernels.get("gaussian", cfg.kernel_size)
    th_star = torch.tensor([[cfg.theta_true]], dtype=torch.float64, device=x_star.device)
    clean = BlindDeblur(x_star, fam, 1.0).blur(th_star)(x_star[None])[0]
    levels = np.array(sorted(cfg.noise_levels))
    ref = int(np.argmin(np.abs(levels - cfg.reference_noise)))
    noises = torch.as_tensor(rng.standard_normal((cfg.n_draws, *x_star.shape)), device=x_star.device)
    lad = ladder(cfg, prior, fam, clean, x_star, levels, noises, ref)
    keep = lad["keep"]
    seg_t = np.linspace(0, 1, 21)
    seg = scan.segment(keep["post"], [0.0], keep["x_dirac"], [keep["theta"]], keep["x"], seg_t,
                       solver=SolverOptions())
    basin = basin_descents(cfg, keep, rng, progress)
    c4 = basin.attrs["verdict"]
    if not lad["cert_verdict"][ref].startswith("certified"):
        c4 = f"(the point at σ = {levels[ref]:g} is not certified: {lad['cert_verdict'][ref]}) " + c4
    ev.update(c4_verdict=c4, trivial_certificate=lad["trivial_certificate"], reference_noise=float(levels[ref]),
              seconds=time.perf_counter() - t_start)
    q_eig, q_res = ev.pop("q_eigenvalues"), ev.pop("q_eig_residuals")
    by_level = ("noise_level", "draw")
    pixels = ("channel", "row", "col") if cfg.color else ("row", "col")
    ds = xr.Dataset({
        "x_start": (pixels, x0), "x_star": (pixels, io.host(x_star)),
        "q_eigenvalues": ("k", q_eig, {"long_name": "smallest eigenvalues of the Hessian of q at x*"}),
        "q_eig_residuals": ("k", q_res, {"long_name": "||H v - lambda v|| (their error bounds)"}),
        "theta_hat": (by_level, lad["theta_hat"], {"long_name": "local minimiser's theta (continuation)"}),
        "x_hat_rmse": (by_level, lad["x_hat_rmse"], {"long_name": "RMS of x_hat - x*"}),
        "energy_gap_dirac_minus_local": (by_level, lad["energy_gap"],
                                         io.energy_attrs("E(delta, x_delta) - E(theta_hat, x_hat)")),
        **{k: ("noise_level", v) for k, v in lad["cert"].items()},
        "cert_verdict": ("noise_level", np.array(lad["cert_verdict"], dtype=str)),
        "segment_energy": ("t", seg.energy.values, io.energy_attrs("E on the straight segment (delta, x_delta) "
                                                                   "-> (theta_hat, x_hat)")),
        "segment_profile_energy": ("t", seg.profile_energy.values, io.energy_attrs("min_x E along the segment")),
        "basin_returned": (("radius", "direction"), basin.returned.values),
        "basin_theta_end": (("radius", "direction"), basin.theta_end.values),
        "start_theta_end": ("start", basin.start_theta_end.values),
        "start_end_class": ("start", basin.start_end_class.values),
    }, coords={"noise_level": levels, "draw": np.arange(cfg.n_draws), "k": np.arange(len(q_eig)), "t": seg_t,
               "radius": basin.radius.values, "direction": basin.direction.values, "start": basin.start.values})
    if closed:
        ds["closed_mode"] = (pixels, closed["mode"])
        ds["closed_q_eigenvalues"] = ("k", closed["q_eigenvalues"][:len(q_eig)],
                                      {"long_name": "eigenvalues of Sigma^-1 (closed form)"})
        ds["closed_gap_level0"] = ((), sandbox_gap(closed["covariance"], io.host(clean), closed["mode"], cfg.sigma_zero),
                                   io.energy_attrs("closed form of E(delta, x_delta) - E(theta*, x*) at level 0"))
    ds.attrs["evidence"] = ev
    ds.attrs["case"] = {"prior": cfg.priors[0], "image": (cfg.image_file or cfg.images)[0], "x_star": cfg.x_star[0]}
    return ds


def combine(config: Config, parts: list[xr.Dataset]) -> xr.Dataset:
    """Cases along ``case`` (coordinates ``case_prior``, ``case_image``, ``case_x_star``), each verdict a variable;
    images of a smaller case (the sandbox) NaN-padded to the largest, their own size in ``image_size``."""
    cfg = config.resolved()
    meta = [p.attrs["case"] for p in parts]
    evid = [{**p.attrs["evidence"], **conclusions(p, cfg.theta_true)} for p in parts]
    out = [p.copy() for p in parts]
    size = max(p.sizes["row"] for p in parts)       # the sandbox's 12x12 beside 32x32: NaN-padded, bottom right
    for i, p in enumerate(out):
        p.attrs = {}
        pad = size - p.sizes["row"]
        out[i] = p.pad(row=(0, pad), col=(0, pad)) if pad else p
        out[i]["image_size"] = p.sizes["row"]
    ds = xr.concat(out, dim="case", coords="minimal", compat="override", join="outer")
    ds = ds.assign_coords(case=["/".join(m[k] for k in CASE_VARS) for m in meta],
                          **{f"case_{k}": ("case", [m[k] for m in meta]) for k in CASE_VARS})
    for k in ("h_verdict", "c1_verdict", "c2_verdict", "c3_verdict", "c4_verdict", "trivial_certificate",
              "q_method"):
        ds[k] = ("case", np.array([e[k] for e in evid]).astype(str))
    for k in ("q_grad_norm", "q_grad_norm_start", "q_iterations", "q_lambda_max", "q_paper_count",
              "q_paper_relative", "q_negative_count", "x_star_psnr_vs_image", "x_star_std", "image_std",
              "c3_slope", "seconds"):
        ds[k] = ("case", np.array([e[k] for e in evid], dtype=float), {"kind": "timing"} if k == "seconds" else {})
    ds["theta_true"] = cfg.theta_true
    ds.attrs.update(io.provenance(NAME, asdict(cfg), evidence=[{k: v for k, v in e.items() if k != "seconds"}
                                                               for e in evid]))
    ds.attrs.update({"theta_true_value": cfg.theta_true, "kernel_family": "gaussian", "s": cfg.s,
                     "sigma_zero": cfg.sigma_zero})
    return ds


def run(config: Config | None = None, *, progress: bool = True) -> xr.Dataset:
    """Every case in this process (``landscape run`` farms them out through ``sweep``)."""
    cfg = (config or Config()).resolved()
    return combine(cfg, [run_part(c, progress) for c in cases(cfg)])
