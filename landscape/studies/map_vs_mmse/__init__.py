r"""Study ``map-vs-mmse``: the joint MAP falls into :math:`(\delta, y)`; the MMSE does not, and it is
*not* a low-energy point.

For each case (held-out image, noise level; kernel family or ``--kernel-file``) the estimates

* ``map_trivial`` — the joint MAP: the global minimiser of the profile :math:`E^*(\theta)` on the grid
  (warm-started from :math:`(\delta, y)`; L-BFGS on the prior's energy),
* ``map_near_truth`` — the joint MAP reached from near the truth: the local minimum of the branch
  warm-started from :math:`x^\star` nearest :math:`\theta^\star`,
* ``map_theta`` — MAP over :math:`\theta` alone (the marginal; exact for the sandbox GMM, the stationary
  Gaussian's closed form on natural images, as in Levin et al. 2009), then non-blind deconvolution
  (:math:`E[x \mid y, \hat\theta]` in the sandbox; gradient-step PnP otherwise),
* ``unrolled`` — the shipped blind unrolled network (trained to reconstruct: an MMSE),
* ``mmse_exact`` — the exact Bayes MMSE :math:`E[x \mid y]`, :math:`E[h \mid y]` (sandbox only),

with PSNR and SSIM (``skimage.metrics``), the kernel error :math:`\|\hat h - h^\star\|_2`, and the joint
energy :math:`E(\hat h, \hat x)` beside :math:`E(\delta, y)` and :math:`E(h^\star, x^\star)`.
"Blurry where unfaithful": the Spearman correlation between the unrolled MMSE's local error and its
local blur (loss of local gradient energy against :math:`x^\star`), and in the sandbox between the exact
MMSE's error and the exact posterior standard deviation. Verdicts per case:
``mmse_avoids_trivial`` (the unrolled kernel is closer to :math:`h^\star` than :math:`\delta` is, and its
PSNR beats :math:`y`'s) and ``mmse_higher_energy_lower_error`` (against ``map_trivial``).

``--sandbox`` (default off): 16x16 images drawn from the natural-crop GMM (held out by seed), the prior
that GMM, the exact MMSE and the network trained on the GMM's draws (``unrolled-gmm16``); with ``--color``,
``(3, 16, 16)`` draws of the GMM fitted to colour crops (its covariance couples channels and pixels, d = 768)
and ``unrolled-gmm16-color``; otherwise 64x64 crops of the held-out images with the gradient-step
prior ``gs``. ``--color``: colour crops ``(3, n, n)`` of the held-out colour photographs
(``data.COLOR_TEST``, or ``--image-file`` kept in colour), one kernel of the ``--family`` (Gaussian or motion) or
a ``--kernel-file`` blurring the three channels, the colour EPLL prior (or another colour prior, or a user prior
built for ``(3, n, n)``), MAP_θ through the colour stationary Gaussian's marginal, and the family's colour unrolled
network (``estimators.unrolled.COLOR_MODELS``); images are stored with a ``channel`` dimension.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ... import data, io, kernels, metrics
from ..._checks import (
    Check,
    files_or_empty,
    flag,
    grid_points,
    InputError,
    integer,
    kernel_or_empty,
    numbers,
    one_of,
    option,
    positive_number,
    prior_name,
    subset_of,
)
from ...estimators.compare import point_estimates
from ...estimators.train_unrolled import gmm_shape
from ...estimators.unrolled import COLOR_MODELS, MODELS, SHIPPED, check_kernel_for, load_unrolled
from ...metrics import psnr, ssim
from ...posterior import BlindDeblur, Posterior
from ...priors import PriorSettings, make_prior
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

NAME = "map-vs-mmse"
SUMMARY = "joint MAP vs MAP_theta vs unrolled MMSE (vs exact MMSE in the GMM sandbox): error, energy, kernel"
ESTIMATORS = ("map_trivial", "map_near_truth", "map_theta", "unrolled", "mmse_exact")
#: the other parameters of a family's truth (motion: the angle)
OTHER_PARAMS = {"gaussian": [], "motion": [30.0]}
#: the unrolled kernel "avoids the trivial pair" when closer to h* than this fraction of ||delta - h*||
TRIVIAL_FRACTION = 0.5


#: ``--quick``: one image, one noise level, one width, coarse grid
QUICK = {"images": FIRST, "noise": FIRST, "n_theta": at_most(7), "n_draws": 1, "theta_true": FIRST, "crop": at_most(32)}

@dataclass
class Config:
    """Options of ``map-vs-mmse`` (``landscape run map-vs-mmse --help``)."""

    images: tuple[str, ...] = option(("ascent", "camera"), "held-out images, comma-separated (with --color: "
                                     + ", ".join(data.COLOR_TEST) + ", the default there)",
                                     subset_of(data.TEST + data.COLOR_TEST))
    image_file: tuple[str, ...] = option((),
                                         "your own image file(s) (.png/.npy/...), comma-separated, luminance unless "
                                         "--color; replace --images", files_or_empty("an image file"))
    color: bool = option(False, "colour crops (3, crop, crop), one kernel (--family gaussian or motion, or "
                         "--kernel-file) on the three channels, the prior patch-gmm (or tweedie, gaussian, yours), the "
                         "family's colour unrolled network", flag())
    prior: str = option("gs", "prior of the joint MAP and PnP on natural images: gs, tweedie, patch-gmm (EPLL), "
                        "gaussian, or a user prior (file.py:factory, module:factory); with --color: patch-gmm (the "
                        "default there), gs, tweedie or gaussian", prior_name(("gs", "tweedie", "patch-gmm", "gaussian")))
    crop: int = option(64, "crop size of natural images (the sandbox is 16)", integer(32))
    family: str = option("gaussian", "kernel family: gaussian or motion (ignored with --kernel-file)",
                         one_of(("gaussian", "motion")))
    kernel_file: str = option("", "a measured kernel (.npy/text file, or a shipped name: levin2, ...): the "
                              "camera-shake model, free kernels", kernel_or_empty())
    theta_true: tuple[float, ...] = option((1.0, 2.0),
                                           "true first parameter(s) (width; motion length at 30 degrees), comma-separated",
                                           numbers(0.0, lo_open=True))
    noise: tuple[float, ...] = option((0.01, 0.03), "noise levels sigma, comma-separated", numbers(0.0, lo_open=True))
    sandbox: bool = option(False, "16x16 GMM samples, the GMM prior and the exact MMSE (with --color: (3, 16, 16) "
                           "samples of the colour GMM)", flag())
    n_draws: int = option(2, "sandbox: images drawn from the GMM per noise level", integer(1))
    first_draw: int = option(0, "sandbox: index of the first GMM draw (draws first_draw .. first_draw + n_draws - 1)",
                             integer(0))
    model: str = option("", "the unrolled network: a shipped name (e.g. unrolled-motion-marginal) or a weights file of "
                        "landscape train-unrolled, of the case's kernel family and channels (default: the family's "
                        "shipped network)",
                        Check("empty, a shipped unrolled model or an existing weights file",
                              lambda v: v == "" or v in SHIPPED or Path(str(v)).is_file(),
                              ("/no/such/model.pt", "no-such-model"),
                              reads=lambda v: [Path(v)] if Path(str(v)).is_file() else []))
    n_theta: int = option(13, "profile grid points on [0, 2 theta*]", grid_points(5))
    s: float = option(0.02, "level of the gradient-step prior (natural images)", positive_number())
    etol: float = option(0.01, "inner solver energy tolerance (nats)", Check("a positive tolerance",
                                                                             lambda v: v > 0, (0.0, -1.0)))
    seed: int = option(0, "seed (noise, sandbox draws)", integer(0))
    device: str = device_option("the problem, the profile, PnP, the exact posterior and the networks")
    quick: bool = option(False, "one image, one noise level, coarse grid (< 60 s)", flag())

    def resolved(self) -> "Config":
        # colour: the EPLL prior; the quick run takes the closed-form Gaussian (the patch GMM's profile takes minutes)
        c = color_resolved(self, QUICK, {"images": data.COLOR_TEST, "prior": "gaussian" if self.quick else "patch-gmm"})
        return c


def _setup(cfg: Config):
    """Family, true parameters (one row per case value) and model of the configuration."""
    if cfg.kernel_file:                 # the path delta -> h*, h* padded to the model's support in run()
        return None, np.array([[1.0]]), cfg.model or (COLOR_MODELS if cfg.color else MODELS)["free"]
    name = "gaussian" if cfg.sandbox else cfg.family
    fam = kernels.get(name, 15)
    truths = np.array([[t, *OTHER_PARAMS[name]] for t in cfg.theta_true])
    fam.check(truths)
    return fam, truths, cfg.model or (COLOR_MODELS if cfg.color else MODELS)["sandbox" if cfg.sandbox else name]


#: the list options whose product makes the cases, with the image (``images``, ``image_file``, or the
#: sandbox's draw: one case per draw index)
CASE_FIELDS = ("theta_true", "noise")


def cases(config: Config) -> list[Config]:
    """One configuration per (image or sandbox draw, width, noise level), in that order."""
    cfg = config.resolved()
    if cfg.sandbox:
        return [c for d in range(cfg.n_draws)
                for c in product_cases(replace(cfg, first_draw=cfg.first_draw + d, n_draws=1), CASE_FIELDS)]
    return product_cases(cfg, (image_field(cfg), *CASE_FIELDS))


def run_part(config: Config, progress: bool = True) -> xr.Dataset:
    """One case of :func:`cases`: every estimate, its errors and energies (dim ``case`` of length 1)."""
    from scipy.stats import spearmanr
    cfg = config.resolved()
    single_case(cfg, CASE_FIELDS if cfg.sandbox else (image_field(cfg), *CASE_FIELDS))
    if cfg.sandbox and cfg.n_draws != 1:
        raise InputError("n_draws", "1 for one case (cases() makes them)", cfg.n_draws)
    fam, truths, model_name = _setup(cfg)
    model = load_unrolled(model_name, device=cfg.device)
    want = "free" if cfg.kernel_file else ("gaussian" if cfg.sandbox else cfg.family)
    if cfg.model and (model.config["family"]["name"] != want or model.image_channels != (3 if cfg.color else 1)):
        got = f"{cfg.model} ({model.config['family']['name']}, {model.image_channels} channel(s))"
        raise InputError("model", f"an unrolled network of the {want!r} family on "
                         f"{'colour' if cfg.color else 'gray'} images", got)
    if cfg.kernel_file:
        fam = kernels.Path(check_kernel_for(model, kernels.load(cfg.kernel_file)), name="kernel_file")
    dtype = torch.float64 if cfg.sandbox else torch.float32
    if cfg.sandbox:
        gmm = make_prior("gmm", gmm_shape(cfg.color), PriorSettings(progress=progress))
        name, img = f"gmm-draw-{cfg.first_draw}", io.host(gmm.sample(1, rng=10_000 + cfg.seed + cfg.first_draw)[0])
        prior = gmm
    else:
        (name, img), = image_sources(cfg.images, cfg.image_file, cfg.crop, color=cfg.color)
        prior = make_prior(cfg.prior, img.shape, PriorSettings(s=cfg.s, dtype=dtype, device=cfg.device))
    (theta_true,), (sig,) = truths, cfg.noise
    problem = BlindDeblur.synthetic(img, fam, theta_true, sig, rng=cfg.seed, dtype=dtype, device=cfg.device)
    first = np.linspace(0, 2 * theta_true[0] if not isinstance(fam, kernels.Path) else 1.0, cfg.n_theta)
    est, extras = point_estimates(problem, prior, model, theta_true, first, etol=cfg.etol, s=cfg.s,
                                  exact=cfg.sandbox, progress=progress)
    post = Posterior(problem, prior)
    x_true, h_true = io.host(problem.x_true.double()), io.host(problem.kernel_true.double())
    d0 = kernels.dirac(fam.size, dtype=torch.float64, device=problem.device)
    row: dict[str, Any] = {"e_trivial": post.energy_at_kernel(d0, problem.y),
                           "e_truth": post.energy_at_kernel(h_true, problem.x_true), **extras}
    xs, ks = [], []
    for e_name in ESTIMATORS:
        if e_name not in est:
            xs.append(np.full(x_true.shape, np.nan))
            ks.append(np.full(h_true.shape, np.nan))
            for m in ("psnr", "ssim", "kernel_error", "energy"):
                row[f"{m}_{e_name}"] = np.nan
            continue
        x, h = est[e_name]
        xn, hn = io.host(x.double()), io.host(h.double())
        xs.append(xn)
        ks.append(hn)
        row[f"psnr_{e_name}"] = psnr(xn, x_true)
        row[f"ssim_{e_name}"] = ssim(xn, x_true)
        row[f"kernel_error_{e_name}"] = float(np.linalg.norm(hn - h_true))
        row[f"energy_{e_name}"] = post.energy_at_kernel(hn, xn)
    row["psnr_y"] = psnr(io.host(problem.y.double()), x_true)
    row["kernel_error_dirac"] = float(np.linalg.norm(io.host(d0) - h_true))
    err = metrics.local_mean(np.abs(xs[ESTIMATORS.index("unrolled")] - x_true))
    row["corr_error_blur_unrolled"] = float(spearmanr(err.ravel(), metrics.local_blur(xs[ESTIMATORS.index("unrolled")],
                                                                              x_true).ravel())[0])
    std = None
    if cfg.sandbox:
        err_exact = np.abs(xs[ESTIMATORS.index("mmse_exact")] - x_true)
        row["corr_error_std_exact"] = float(spearmanr(err_exact.ravel(), extras["x_std"].ravel())[0])
        std = extras.pop("x_std")
        row.pop("x_std", None)
    row["mmse_avoids_trivial"] = bool(row["kernel_error_unrolled"] < TRIVIAL_FRACTION * row["kernel_error_dirac"]
                                      and row["psnr_unrolled"] > row["psnr_y"])
    row["mmse_higher_energy_lower_error"] = bool(row["energy_unrolled"] > row["energy_map_trivial"]
                                                 and row["psnr_unrolled"] > row["psnr_map_trivial"])
    label = f"{name}/θ*={theta_true[0]:g}/σ={sig:g}"
    ds = xr.Dataset(coords={"case": [label], "estimator": list(ESTIMATORS),
                            "panel": ["y", "x_true", *ESTIMATORS], "kpanel": ["kernel_true", *ESTIMATORS]})
    pixel_dims = ("channel", "row", "col") if cfg.color else ("row", "col")
    ds["images"] = (("case", "panel", *pixel_dims), np.array([[io.host(problem.y.double()), x_true, *xs]]),
                    {"long_name": "observation, truth and estimates"})
    ds["kernels"] = (("case", "kpanel", "krow", "kcol"), np.array([[h_true, *ks]]),
                     {"long_name": "true and estimated kernels"})
    for m, unit in (("psnr", "dB"), ("ssim", "1"), ("kernel_error", "1"), ("energy", "nats")):
        ds[m] = (("case", "estimator"), np.array([[row[f"{m}_{e}"] for e in ESTIMATORS]]),
                 {"long_name": m.replace("_", " "), "units": unit})
    for k in row:
        if not any(k.startswith(p + "_") for p in ("psnr", "ssim", "kernel_error", "energy")) or k in (
                "psnr_y", "kernel_error_dirac"):
            ds[k] = ("case", np.array([row.get(k, np.nan)]))
    ds = ds.rename({"e_trivial": "energy_trivial_pair", "e_truth": "energy_truth"})
    ds.energy_trivial_pair.attrs.update(long_name="E(delta, y)", units="nats")
    ds.energy_truth.attrs.update(long_name="E(h*, x*)", units="nats")
    if std is not None:
        ds["x_std_exact"] = (("case", *pixel_dims), std[None], {"long_name": "exact posterior standard deviation"})
    ds["case_noise"] = ("case", [sig])
    ds["case_theta_true"] = ("case", np.array([theta_true[0]]), {"long_name": f"true {fam.param_names[0]}"})
    ds.attrs.update(io.provenance(NAME, asdict(cfg), model=model_name, model_meta=getattr(model, "meta", {}),
                                  prior_description=prior.describe(), kernel_description=fam.describe()))
    ds.attrs.update({"prior": prior.name, "kernel_family": fam.name})
    return ds


def combine(config: Config, parts: list[xr.Dataset]) -> xr.Dataset:
    """The cases along ``case``; the run's provenance (its whole configuration), the model's and the prior's
    from the first case."""
    cfg = config.resolved()
    attrs = {**parts[0].attrs, **io.provenance(NAME, asdict(cfg))}
    attrs["noise_sigma"] = cfg.noise[0]
    return concat_cases(parts, attrs)


def run(config: Config | None = None, *, progress: bool = True) -> xr.Dataset:
    """Every case in this process: ``combine(cfg, [run_part(c) for c in cases(cfg)])``."""
    cfg = (config or Config()).resolved()
    return combine(cfg, [run_part(c, progress) for c in cases(cfg)])
