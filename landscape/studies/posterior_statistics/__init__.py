r"""Study ``posterior-statistics``: where the posterior *mass* lies, against where the MAP goes.

Per case, Gibbs sampling of :math:`p(\theta, x \mid y)` (``sampling.gibbs``: :math:`\theta` exact on a
grid, :math:`x` by Langevin moves) gives the :math:`\theta` posterior (its mass at :math:`\delta`, near
:math:`\theta^\star`, and its mean), the posterior mean and standard deviation images, and the pixelwise
50 % and 90 % credible intervals, whose empirical coverage of :math:`x^\star` over the cases measures
calibration. Beside them, on the same problem, the point estimates of ``map-vs-mmse``
(``estimators.compare.point_estimates``): the joint MAP (trivial: the profile's global minimum; near truth: the local
minimum of the branch warm-started from :math:`x^\star`), MAP_θ, and the unrolled MMSE network (their
PSNRs ``psnr_<name>`` and images ``estimate_image``); in the sandbox also the exact
:math:`p(\theta \mid y)`, the exact MMSE and the exact posterior std (``estimators.bayes``). The joint
MAP uses the prior's energy: the GMM in the sandbox, the gradient-step prior ``gs`` at ``s`` on natural
images (the Tweedie prior of PnP-ULA has none).

``--sandbox``: 16x16 draws of the natural-crop GMM with that GMM as the prior, and exact draws of
:math:`x \mid \theta, y` in the Gibbs sweep (MALA needs steps below the inverse of the GMM's largest
curvature, about 1e-5 here, and does not mix in 256 dimensions at this budget); with ``--color``, ``(3, 16, 16)``
draws of the GMM fitted to colour crops (d = 768) and the network ``unrolled-gmm16-color``; otherwise 32x32 crops of held-out images with PnP-ULA moves (Tweedie score of
``denoiser-gray`` at ``s``; with ``--color``, ``(3, n, n)`` crops of the held-out colour photographs, the
Tweedie score of ``denoiser-color``, the colour EPLL prior ``patch-gmm`` for the point estimates and the colour
network ``unrolled-gaussian-color``; images stored with a ``channel`` dimension). The hard case (``--hard-theta``, a large blur at known kernel) compares
fixed-level PnP-ULA with annealed Langevin and DPS (``sampling.diffusion``): PSNR of their posterior
means, verdict stored (``annealed_beats_fixed``).
"""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import xarray as xr

from ... import data, io, kernels, metrics
from ..._checks import (
    files_or_empty,
    flag,
    folder_or_empty,
    grid_points,
    InputError,
    integer,
    numbers,
    option,
    positive_number,
    prior_name,
    subset_of,
)
from ...estimators.bayes import GMMPosterior
from ...estimators.compare import point_estimates
from ...estimators.train_unrolled import gmm_shape
from ...estimators.unrolled import COLOR_MODELS, MODELS, load_unrolled
from ...metrics import psnr
from ...posterior import BlindDeblur, Posterior
from ...priors import PriorSettings, make_prior
from ...sampling import gibbs as G
from ...sampling.diffusion import DiffusionOptions, dps
from ...sampling.langevin import LangevinOptions, sample_x
from ..common import (
    FIRST,
    at_most,
    color_resolved,
    concat_cases,
    device_option,
    image_field,
    image_sources,
    product_cases,
    single_case,
)
from .report import plot, summary  # noqa: F401  (the Study protocol's members)

NAME = "posterior-statistics"
SUMMARY = "Gibbs over (theta, x): theta posterior mass vs delta and theta*, posterior mean/std, calibration"
#: the theta posterior's mass "at the trivial kernel": grid points below this fraction of theta*
DIRAC_FRACTION = 0.2
#: credible levels whose pixelwise coverage is measured
LEVELS = (0.5, 0.9)
#: draws per chain kept in the ArviZ files (``--samples``), thinned evenly
SAMPLE_DRAWS = 100
#: the images compared per case: the sampler's posterior mean, then map-vs-mmse's estimates
POINT_ESTIMATES = ("posterior_mean", "map_trivial", "map_near_truth", "map_theta", "unrolled", "mmse_exact")


#: the colour counterparts of the gray defaults
COLOR_DEFAULTS = {"images": data.COLOR_TEST, "map_prior": "patch-gmm"}

#: ``--quick``: sandbox-sized
QUICK = {"sweeps": at_most(200), "burn_in": at_most(50), "n_draws": at_most(2), "n_theta": 7, "images": FIRST,
         "theta_true": FIRST, "crop": at_most(16)}

@dataclass
class Config:
    """Options of ``posterior-statistics``."""

    images: tuple[str, ...] = option(("ascent", "camera"),
                                     "held-out images (natural mode), comma-separated (with --color: "
                                     + ", ".join(data.COLOR_TEST) + ", the default there)",
                                     subset_of(data.TEST + data.COLOR_TEST))
    image_file: tuple[str, ...] = option((),
                                         "your own image file(s) (.png/.npy/...), comma-separated, luminance unless "
                                         "--color; replace --images", files_or_empty("an image file"))
    color: bool = option(False, "natural mode on colour crops (3, crop, crop), one Gaussian kernel on the three "
                         "channels: PnP-ULA with the colour denoiser, point estimates with the colour EPLL prior "
                         "(patch-gmm), the network unrolled-gaussian-color", flag())
    sandbox: bool = option(False, "16x16 GMM draws, the GMM prior, exact references (with --color: (3, 16, 16) "
                           "draws of the colour GMM)", flag())
    n_draws: int = option(4, "sandbox: images drawn from the GMM", integer(1))
    first_draw: int = option(0, "sandbox: index of the first GMM draw (draws first_draw .. first_draw + n_draws - 1)",
                             integer(0))
    crop: int = option(32, "crop size (natural mode)", integer(16))
    theta_true: tuple[float, ...] = option((1.5,),
                                           "true Gaussian width(s), comma-separated", numbers(0.0, lo_open=True))
    noise: float = option(0.02, "noise level sigma", positive_number())
    n_theta: int = option(13, "theta grid points on [0, 3]", grid_points(3))
    sweeps: int = option(600, "Gibbs sweeps", integer(2))
    burn_in: int = option(150, "Gibbs sweeps discarded", integer(0))
    chains: int = option(4, "chains", integer(1))
    s: float = option(0.02, "Tweedie level of PnP-ULA (natural mode)", positive_number())
    prior: str = option("tweedie", "natural mode: the score PnP-ULA samples with (tweedie, or a user prior: "
                        "file.py:factory, module:factory)", prior_name(("tweedie",)))
    map_prior: str = option("gs", "natural mode: the prior of the point estimates beside the posterior mean (gs, "
                            "tweedie, patch-gmm, gaussian, or a user prior; with --color patch-gmm, the default there)",
                            prior_name(("gs", "tweedie", "patch-gmm", "gaussian")))
    hard_theta: float = option(2.5, "width of the hard case (fixed-s PnP-ULA vs annealed)", positive_number())
    seed: int = option(0, "seed", integer(0))
    skip_hard: bool = option(False, "skip the hard case (fixed-level PnP-ULA vs annealed Langevin vs DPS at "
                             "hard_theta, on the first image)", flag())
    samples: str = option("", "folder for each case's Gibbs draws in ArviZ's layout (one InferenceData "
                          "netCDF per case, x thinned to SAMPLE_DRAWS per chain); empty: not written",
                          folder_or_empty())
    device: str = device_option("the problem, the samplers, the point estimates and the networks")
    quick: bool = option(False, "sandbox-sized run (< 60 s; about 2 min with --sandbox --color, d = 768)", flag())

    def resolved(self) -> "Config":
        c = color_resolved(self, QUICK, COLOR_DEFAULTS)
        LangevinOptions(n_steps=c.sweeps, burn_in=c.burn_in)          # burn-in below the run
        return c


def hard_case(cfg: Config, prior: Any, image: np.ndarray) -> dict[str, float]:
    """Fixed-level PnP-ULA against annealed Langevin at a known large blur: PSNR of their means."""
    prob = BlindDeblur.synthetic(image, kernels.Gaussian(15), [cfg.hard_theta], cfg.noise, rng=cfg.seed + 7,
                                 dtype=torch.float64 if cfg.sandbox else torch.float32, device=cfg.device)
    post = Posterior(prob, prior)
    n = cfg.sweeps
    out = {}
    for name, opts in (("fixed", LangevinOptions(method="ula", n_steps=n, burn_in=n // 4, chains=cfg.chains)),
                       ("annealed", LangevinOptions(method="annealed", steps_per_level=n // 5, burn_in=4 * n // 5,
                                                    chains=cfg.chains)),
                       ("dps", DiffusionOptions(chains=4 * cfg.chains))):
        draw = dps if name == "dps" else sample_x
        d = io.host(draw(post, [cfg.hard_theta], opts, rng=cfg.seed)["draws"].double())
        out[f"hard_psnr_{name}"] = psnr(d.mean((0, 1)), image)
    out["hard_psnr_y"] = psnr(io.host(prob.y.double()), image)
    return out


#: the list options whose product makes the cases, with the image (``images``, ``image_file``, or the
#: sandbox's draw: one case per draw index)
CASE_FIELDS = ("theta_true",)


def cases(config: Config) -> list[Config]:
    """One configuration per (image or sandbox draw, width), in that order; the hard case rides with the
    first."""
    cfg = config.resolved()
    if cfg.sandbox:
        out = [c for d in range(cfg.n_draws)
               for c in product_cases(replace(cfg, first_draw=cfg.first_draw + d, n_draws=1), CASE_FIELDS)]
    else:
        out = product_cases(cfg, (image_field(cfg), *CASE_FIELDS))
    return [c if i == 0 else replace(c, skip_hard=True) for i, c in enumerate(out)]


def _prior(cfg: Config, progress: bool) -> tuple[Any, str, torch.dtype]:
    if cfg.sandbox:
        return make_prior("gmm", gmm_shape(cfg.color), PriorSettings(progress=progress)), "exact", torch.float64
    prior = make_prior(cfg.prior, _shape(cfg), PriorSettings(s=cfg.s, dtype=torch.float32, device=cfg.device))
    return prior, "ula", torch.float32


def _shape(cfg: Config) -> tuple[int, ...]:
    """One natural-mode image: ``(crop, crop)``, or ``(3, crop, crop)`` with ``--color``."""
    return (3, cfg.crop, cfg.crop) if cfg.color else (cfg.crop, cfg.crop)


def run_part(config: Config, progress: bool = True) -> xr.Dataset:
    """One case of :func:`cases`: the Gibbs run, its statistics and the point estimates beside it (dim ``case``
    of length 1); the hard case's PSNRs in ``attrs`` unless ``skip_hard``."""
    import arviz as az
    cfg = config.resolved()
    single_case(cfg, CASE_FIELDS if cfg.sandbox else (image_field(cfg), *CASE_FIELDS))
    if cfg.sandbox and cfg.n_draws != 1:
        raise InputError("n_draws", "1 for one case (cases() makes them)", cfg.n_draws)
    fam = kernels.Gaussian(15)
    grid = np.linspace(0, 3, cfg.n_theta)
    prior, method, dtype = _prior(cfg, progress)
    if cfg.sandbox:
        name, img = f"gmm-draw-{cfg.first_draw}", io.host(prior.sample(1, rng=40_000 + cfg.seed + cfg.first_draw)[0])
    else:
        (name, img), = image_sources(cfg.images, cfg.image_file, cfg.crop, color=cfg.color)
    # the point estimates beside the posterior mean: map-vs-mmse's, with the prior's energy
    map_prior = prior if cfg.sandbox else make_prior(cfg.map_prior, _shape(cfg),
                                                     PriorSettings(s=cfg.s, dtype=dtype, device=cfg.device))
    model = load_unrolled((COLOR_MODELS if cfg.color else MODELS)["sandbox" if cfg.sandbox else "gaussian"],
                          device=cfg.device)
    (th,) = cfg.theta_true
    prob = BlindDeblur.synthetic(img, fam, [th], cfg.noise, rng=cfg.seed, dtype=dtype, device=cfg.device)
    post = Posterior(prob, prior)
    out = G.gibbs(post, grid, sweeps=cfg.sweeps, burn_in=cfg.burn_in, x_steps=3, method=method,
                  chains=cfg.chains, rng=cfg.seed, progress=progress)
    x = io.host(out["x"].double())
    flat = x.reshape(-1, *img.shape)
    tpost = io.host(out["theta_posterior"])
    row: dict[str, Any] = {
        "theta_true": th, "theta_mean": float((tpost * grid).sum()),
        "mass_at_dirac": float(tpost[grid < DIRAC_FRACTION * th].sum()),
        "mass_near_truth": float(tpost[np.abs(grid - th) <= 0.2 * th].sum()),
        "psnr_mean": psnr(flat.mean(0), img),
        "psnr_y": psnr(io.host(prob.y.double()), img),
        "rhat_theta": float(az.rhat(az.convert_to_dataset(io.host(out["theta"][..., 0].double())))["x"]),
        "ess_theta": float(az.ess(az.convert_to_dataset(io.host(out["theta"][..., 0].double())))["x"]),
        "acceptance": float(np.nanmean(out["acceptance"])) if method == "mala" else np.nan,
        **{f"coverage_{int(100 * lv)}": metrics.coverage(flat, img, lv) for lv in LEVELS}}
    exact = GMMPosterior(prob, prior, grid[:, None]) if cfg.sandbox else False
    if cfg.sandbox:
        m = exact.mmse()
        row["tv_theta_exact"] = 0.5 * float(np.abs(tpost - io.host(m["theta_posterior"])).sum())
        _, xs = exact.sample(400, rng=cfg.seed)
        for lv in LEVELS:
            row[f"coverage_exact_{int(100 * lv)}"] = metrics.coverage(io.host(xs), img, lv)
    if cfg.samples:
        G.save_draws(Path(cfg.samples) / f"{name}-theta{th:g}.nc", post, grid, out, max_draws=SAMPLE_DRAWS,
                     study=NAME, config=asdict(cfg))
    # on the study's own theta grid (the sandbox's exact MMSE then has the same uniform prior on theta)
    # with theta* on the grid the point estimates' grid is this one: they share its evidences
    shared = exact if cfg.sandbox and np.isin(th, grid) else cfg.sandbox
    est, extras = point_estimates(prob, map_prior, model, np.array([th]), grid, s=cfg.s, exact=shared,
                                  progress=progress)
    row.update(theta_map=extras["theta_map"], theta_map_near_truth=extras["theta_near_truth"],
               theta_map_theta=extras["theta_map_theta"], theta_unrolled=extras.get("theta_unrolled", np.nan))
    pts = [flat.mean(0)] + [io.host(est[e][0].double()) if e in est else np.full(img.shape, np.nan)
                            for e in POINT_ESTIMATES[1:]]
    for e, xe in zip(POINT_ESTIMATES[1:], pts[1:]):
        row[f"psnr_{e}"] = psnr(xe, img)
    ds = xr.Dataset({k: ("case", np.array([v], dtype=float)) for k, v in row.items()},
                    coords={"case": [f"{name}/θ*={th:g}"], "theta": grid})
    ds["theta_posterior"] = (("case", "theta"), tpost[None], {"long_name": "Gibbs theta posterior on the grid"})
    pixel_dims = ("channel", "row", "col") if cfg.color else ("row", "col")
    ds["posterior_mean"] = (("case", *pixel_dims), flat.mean(0)[None])
    ds["posterior_std"] = (("case", *pixel_dims), flat.std(0)[None])
    ds["estimate_image"] = (("case", "estimate", *pixel_dims), np.array([pts]),
                            {"long_name": "posterior mean (sampler) beside the point estimates"})
    ds = ds.assign_coords(estimate=list(POINT_ESTIMATES))
    ds["x_true"] = (("case", *pixel_dims), img[None])
    if not cfg.skip_hard:
        ds.attrs["hard"] = json.dumps(hard_case(cfg, prior, img))
    ds.attrs["prior_description"] = json.dumps(prior.describe(), default=str)
    ds.attrs["prior"] = prior.name
    return ds


def combine(config: Config, parts: list[xr.Dataset]) -> xr.Dataset:
    """The cases along ``case``; mean coverages, the hard case (from the first part) and the provenance."""
    cfg = config.resolved()
    hard = json.loads(parts[0].attrs["hard"]) if not cfg.skip_hard else {}
    attrs = io.provenance(NAME, asdict(cfg), prior_description=json.loads(parts[0].attrs["prior_description"]),
                          sampler="exact" if cfg.sandbox else "ula", **hard)
    ds = concat_cases(parts, {})
    for lv in LEVELS:
        attrs[f"mean_coverage_{int(100 * lv)}"] = float(ds[f"coverage_{int(100 * lv)}"].mean())
    if hard:
        attrs["annealed_beats_fixed"] = int(hard["hard_psnr_annealed"] > hard["hard_psnr_fixed"])
    attrs.update({"prior": parts[0].attrs["prior"], "kernel_family": kernels.Gaussian(15).name, "noise_sigma": cfg.noise})
    ds.attrs = attrs
    return ds


def run(config: Config | None = None, *, progress: bool = True) -> xr.Dataset:
    """Every case in this process: ``combine(cfg, [run_part(c) for c in cases(cfg)])``."""
    cfg = (config or Config()).resolved()
    return combine(cfg, [run_part(c, progress) for c in cases(cfg)])
