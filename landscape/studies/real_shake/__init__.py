r"""Study ``real-shake``: Levin et al.'s measured camera shake and error-ratio protocol (CVPR 2009).

For each case (measured kernel × held-out image × noise level; :math:`y = h^\star \star x^\star + \sigma n`,
circular) every estimator sees only :math:`(y, \sigma)` and the kernel's support (the true kernel's, as in
Levin et al.'s protocol):

* ``map_xk`` — the joint MAP over :math:`(x, h)` from :math:`(\delta, y)`, alternating with delayed
  normalisation (Perrone & Favaro 2014), coarse to fine, under the ``--prior`` (Levin's sparse prior); with
  ``--scheme alternating`` (all three joint MAPs) the kernel step is the exact simplex projection instead, a
  descent of the joint energy (PAM's fixed points need not be its stationary points);
* ``map_k`` — MAP over :math:`h` with :math:`x` integrated out under the stationary Gaussian prior (closed
  form; EM on the simplex, coarse to fine: :mod:`landscape.kernel_estimation`), Levin et al. 2011's contrast;
* ``map_k_mog`` — MAP over :math:`h` with :math:`x` integrated out under a sparse prior (a Gaussian mixture on the
  image's differences, fitted to the training images), Levin et al. 2011's variational EM with a diagonal
  covariance (:func:`landscape.kernel_estimation.map_k_mog`), coarse to fine;
* ``map_k_diffusion`` — MAP over :math:`h` with :math:`x` integrated out under a *learned* prior, the shipped
  denoiser as a diffusion model (``--diffusion-prior``): Monte Carlo EM whose E-step draws :math:`x \mid h, y` by
  diffusion posterior sampling (:func:`landscape.kernel_estimation.map_k_diffusion`), coarse to fine;
* ``unrolled`` — a blind unrolled network (an MMSE): ``--model``, by default the shipped ``unrolled-shake-29``
  (trained on camera-shake draws up to 29×29, the size of the largest measured kernel), its kernel branch run on
  the case's support as every other estimator's (``--unrolled-support``);
* ``pnp`` — blind PnP-HQS from :math:`(\delta, y)` with the gradient-step network's denoiser (a kernel step per
  iteration, exact simplex projection);
* ``map_xk_from_unrolled`` — the joint MAP (as ``map_xk``, at full size) warm-started from the unrolled network's
  kernel and its non-blind image: the MMSE as a MAP's initialisation;
* ``map_xk_from_truth`` — the joint MAP (as ``map_xk``, at full size) started from the true kernel and its
  non-blind image: not a blind estimator but the theorem's check, where a descent from the truth goes (how far
  from :math:`h^\star` its ``n_outer`` alternations take it, and its energy against :math:`E(\delta, y)`); a
  statement about :math:`E`'s minima wants ``--scheme alternating`` (PAM's fixed points need not be stationary
  points of :math:`E`: docs/studies/real_shake.md);
* ``map_k_diffusion_from_truth`` (with ``--diffusion-from-truth``) — ``map_k_diffusion``'s EM (at full size)
  started from the true kernel: the same oracle check for MAP_k under the learned prior, whether its EM holds the
  truth where it fails from :math:`\delta` (a failure of the search, not of the objective) or leaves it;
* ``map_k_gaussian_draws`` (with ``--gaussian-draws``) — ``map_k_diffusion``'s Monte Carlo EM (the same draws per
  E-step, EM iterations and pyramid) with exact draws of the stationary Gaussian prior's posterior
  (:func:`landscape.kernel_estimation.gaussian_sampler`): the control that separates what the learned prior does
  from what a stochastic, briefly run EM does (``map_k`` runs the same Gaussian EM exactly, for ``--n-em``
  iterations);
* ``true`` — the true kernel: the error ratio's denominator.

Each kernel goes through the same non-blind step (``--nonblind``: by default the stationary Gaussian prior's
MAP, the Wiener filter of the fitted spectrum, exact; with the true kernels of ``studies/real-shake.toml`` it
reaches a median 28.0 dB where Levin's sparse prior, at the weight the toolkit ships, reaches 24.1 dB), then: the kernel
error (both centred on their centre of mass), PSNR / SSIM, Levin et al.'s error ratio
:math:`r = \mathrm{SSD}(\hat x_{\hat h}) / \mathrm{SSD}(\hat x_{h^\star})` (15 px border, shifts ±5 px in
0.25 px steps: :mod:`landscape.metrics`), the joint energy :math:`E(\hat h, \hat x)` beside
:math:`E(\delta, y)` and :math:`E(h^\star, x^\star)`, and :math:`-\log p(y \mid \hat h)` under the Gaussian
prior. ``combine`` stores the cumulative success rates (fraction of cases with :math:`r \le t`) per estimator.

``--color``: colour crops :math:`(3, n, n)` of the held-out colour photographs (``data.COLOR_TEST``), the same
kernel on every channel, :math:`y_c = h^\star \star x_c + \sigma n_c`, and every estimator reads the colour
:math:`y`: MAP_k under the colour Gaussian prior (its colour basis's components are independent, so the M-step sums
their quadratics), the sparse MAP_k with the difference mixture on every channel, MAP_xk and PnP under the colour
version of their prior (or a user prior built for :math:`(3, n, n)`), and the colour unrolled network
(``unrolled-shake-color-29``, the default ``--model`` there; a gray network's weights file runs on the luminance
:math:`\sum_c w_c y_c`, :data:`landscape.data.LUMA`, at noise :math:`\sigma\|w\|_2`). The non-blind step, the SSD,
the ratio, PSNR / SSIM, the energies and the marginal likelihood are those of the colour problem.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ... import data, io, kernels, marginal, metrics
from ... import kernel_estimation as ke
from ..._checks import (
    Check,
    files_or_empty,
    flag,
    InputError,
    integer,
    numbers,
    one_of,
    option,
    positive_number,
    prior_name,
    subset_of,
)
from ...estimators import pnp
from ...estimators.train_unrolled import RECIPES
from ...estimators.unrolled import load_unrolled, reconstruct
from ...posterior import BlindDeblur, Posterior
from ...priors import PriorSettings, make_prior
from ...resources import MEASURED_KERNELS
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

NAME = "real-shake"
SUMMARY = ("Levin et al.'s measured camera shake: MAP_xk vs MAP_k (Gaussian, sparse, diffusion prior) vs unrolled MMSE "
           "vs PnP, error-ratio success rates")
#: ``true`` first (the ratio's denominator); the two warm-started joint MAPs last (one needs ``unrolled``'s kernel)
ESTIMATORS = ("true", "map_xk", "map_k", "map_k_mog", "map_k_diffusion", "unrolled", "pnp", "map_xk_from_unrolled",
              "map_xk_from_truth", "map_k_diffusion_from_truth", "map_k_gaussian_draws")
#: the warm-started estimators: ``<base>_from_<source>`` runs ``base`` from the kernel ``WARM_STARTS[name]`` gave
WARM_STARTS = {"map_xk_from_unrolled": "unrolled", "map_xk_from_truth": "true", "map_k_diffusion_from_truth": "true"}
#: run only when asked: an oracle check that costs as much as ``map_k_diffusion`` (``--diffusion-from-truth``), and
#: ``map_k_diffusion``'s control (``--gaussian-draws``)
ON_REQUEST = {"map_k_diffusion_from_truth": "diffusion_from_truth", "map_k_gaussian_draws": "gaussian_draws"}
#: the thresholds of the stored cumulative success curve
CURVE = np.round(np.linspace(1.0, 5.0, 33), 3)
#: the kernels of the gallery are shown centred on this support (the largest shipped kernel loads as 29x29)
GALLERY = 31
#: the default free-kernel unrolled networks, gray and colour (the ``--color`` default): the 29x29 ones, whose support
#: holds every shipped measured kernel (the largest, levin4, loads as 29x29)
UNROLLED_MODEL, COLOR_UNROLLED_MODEL = "unrolled-shake-29", "unrolled-shake-color-29"
#: the shipped free-kernel unrolled networks (``--model`` takes any of them by name)
FREE_MODELS = tuple(name for name, recipe in RECIPES.items() if recipe["family"] == "free")
#: the noise level of the luminance of three channels of independent noise sigma: sigma * LUMA_NORM
LUMA_NORM = float(np.linalg.norm(data.LUMA))

QUICK = {"kernels": ("levin5",), "kernel_file": (), "images": FIRST, "noise": FIRST, "crop": at_most(64),
         "n_outer": at_most(5), "n_em": at_most(3), "pnp_iter": at_most(5), "n_em_diffusion": at_most(1),
         "dps_levels": at_most(10), "dps_chains": at_most(1)}


@dataclass
class Config:
    """Options of ``real-shake`` (``landscape run real-shake --help``)."""

    kernels: tuple[str, ...] = option(tuple(MEASURED_KERNELS), "measured kernels by name, comma-separated",
                                      subset_of(tuple(MEASURED_KERNELS), allow_empty=True))
    kernel_file: tuple[str, ...] = option((), "your own kernel files (.npy/text), comma-separated; added to --kernels",
                                          files_or_empty("a kernel file"))
    images: tuple[str, ...] = option(("camera", "ascent", "aero"),
                                     "held-out images, comma-separated (with --color: " + ", ".join(data.COLOR_TEST)
                                     + ", the default there)", subset_of(data.TEST + data.COLOR_TEST))
    image_file: tuple[str, ...] = option((), "your own image file(s), comma-separated, luminance unless --color; "
                                         "replace --images", files_or_empty("an image file"))
    color: bool = option(False, "colour crops (3, crop, crop), the same kernel on every channel: every estimator, "
                         "the non-blind step, SSD and ratio on the colour y", flag())
    crop: int = option(128, "central crop size (at least 64: Levin's 15 px border and the largest kernel)",
                       integer(64))
    noise: tuple[float, ...] = option((0.01,), "noise levels sigma, comma-separated", numbers(0.0, lo_open=True))
    prior: str = option("sparse", "prior of the joint MAP_xk (sparse, gs, or a user prior spec; with --color its "
                        "colour version, or a user prior built for (3, crop, crop))",
                        prior_name(("sparse", "gs", "tweedie")))
    nonblind: str = option("gaussian", "prior of the shared non-blind step: gaussian (the Wiener filter of the fitted "
                           "spectrum, exact), sparse, gs, or a user prior; with --color: gaussian (fitted per "
                           "decorrelated channel), sparse (per channel), gs (gs-denoiser-color) or a user prior built for "
                           "(3, crop, crop)",
                           prior_name(("sparse", "gaussian", "gs")))
    n_outer: int = option(60, "MAP_xk: alternations per pyramid level", integer(1))
    x_iters: int = option(5, "MAP_xk: inner solver iterations per alternation", integer(1))
    scheme: str = option("pam", "MAP_xk's kernel step (the three joint MAPs): pam (clipped, then normalised: delayed "
                         "normalisation, what practitioners run) or alternating (the exact simplex projection: a "
                         "descent of the joint energy on the simplex)", one_of(ke.MAP_XK_SCHEMES))
    n_em: int = option(15, "MAP_k (Gaussian and MoG): EM iterations per pyramid level", integer(1))
    diffusion_prior: str = option("tweedie", "MAP_k under a diffusion prior: the noise-conditional denoiser its "
                                  "E-step samples with (tweedie: the shipped denoiser-gray, or denoiser-color with "
                                  "--color; or a user prior that denoises at every level)", prior_name(("tweedie",)))
    n_em_diffusion: int = option(4, "MAP_k under the diffusion prior: Monte Carlo EM iterations per pyramid level",
                                 integer(1))
    dps_levels: int = option(ke.DIFFUSION_E_STEP.levels, "MAP_k under the diffusion prior: noise levels of each "
                             f"E-step's diffusion posterior sampling (geometric from {ke.DIFFUSION_E_STEP.s_max:g} to "
                             f"{ke.DIFFUSION_E_STEP.s_min:g})", integer(2))
    dps_chains: int = option(ke.DIFFUSION_E_STEP.chains, "MAP_k under the diffusion prior: posterior draws per E-step",
                             integer(1))
    pnp_iter: int = option(40, "PnP: iterations", integer(1))
    pnp_variant: str = option("fixed", "PnP: fixed (one denoiser call per iteration) or gradient-step (monotone "
                              "energy, backtracked: several calls)", one_of(("fixed", "gradient-step")))
    pnp_prior: str = option("gs", "PnP's prior: gs (the shipped gradient-step network), tweedie, or a user prior "
                            "(file.py:factory, module:factory; a denoiser D(x, sigma) is taken as a Tweedie prior at "
                            "--s); gradient-step PnP needs one with an energy", prior_name(("gs", "tweedie")))
    s: float = option(0.02, "level of the PnP prior (the gradient-step or Tweedie denoiser)", positive_number())
    model: str = option(UNROLLED_MODEL, f"the unrolled network: a shipped one ({', '.join(FREE_MODELS)}) or a "
                        f"weights file of landscape train-unrolled (free kernels); with --color {COLOR_UNROLLED_MODEL} "
                        "(on the colour y; a gray model's weights file runs on the luminance)",
                        Check("a shipped free-kernel unrolled model or an existing weights file",
                              lambda v: v in FREE_MODELS or Path(str(v)).is_file(),
                              ("/no/such/model.pt", "unrolled-gaussian"),
                              reads=lambda v: [Path(v)] if Path(str(v)).is_file() else []))
    unrolled_support: str = option("case", "the unrolled network's kernel support: case (the measured kernel's, as "
                                   "every other estimator sees; no weight of a free kernel branch depends on it) or "
                                   "model (the one it was trained on; its estimate then centred on the case's)",
                                   one_of(("model", "case")))
    skip: tuple[str, ...] = option((), "estimators to leave out, comma-separated (" + ", ".join(ESTIMATORS[1:]) + ")",
                                   subset_of(ESTIMATORS[1:], allow_empty=True))
    diffusion_from_truth: bool = option(False, "also run map_k_diffusion's EM from the true kernel "
                                        "(map_k_diffusion_from_truth, an oracle start: does the EM hold the truth?); "
                                        "it costs about as much as map_k_diffusion", flag())
    gaussian_draws: bool = option(False, "also run map_k_diffusion's Monte Carlo EM with exact posterior draws of the "
                                  "stationary Gaussian prior instead of the diffusion prior's (map_k_gaussian_draws; "
                                  "the same draws per E-step and EM iterations): the control that tells the learned "
                                  "prior's part from the stochastic EM's", flag())
    seed: int = option(0, "seed of the noise and of map_k_diffusion's posterior draws", integer(0))
    device: str = device_option("the problem, the kernel estimators, the deconvolutions and the networks")
    quick: bool = option(False, "levin5 (11x11), one image at 64x64, short descents (< 60 s)", flag())

    def resolved(self) -> "Config":
        # the kernel estimators' priors run on the luminance, the colour unrolled network on the colour y; the
        # non-blind prior in its colour version
        c = color_resolved(self, QUICK, {"images": data.COLOR_TEST, "model": COLOR_UNROLLED_MODEL})
        if not c.kernels and not c.kernel_file:
            raise InputError("kernels", "at least one measured kernel name or --kernel-file", "none")
        return c


def cases(config: Config) -> list[Config]:
    """One configuration per (kernel, image, noise level); a kernel file becomes the case's ``kernels``."""
    cfg = config.resolved()
    return [c for k in cfg.kernels + cfg.kernel_file
            for c in product_cases(replace(cfg, kernels=(k,), kernel_file=()), (image_field(cfg), "noise"))]


def _estimate(name: str, cfg: Config, problem: BlindDeblur, joint_prior: Any, pnp_prior: Any, nb_prior: Any,
              network: Any, found: dict[str, np.ndarray]) -> np.ndarray:
    """``name``'s kernel estimate from the blind ``problem`` (gray or colour; a gray unrolled ``network``, loaded once
    per case by :func:`run_part`, reads a colour problem's luminance). The warm-started estimators (``WARM_STARTS``) start from their
    source's kernel, centred on the problem's support (the mass outside dropped), the joint MAPs also from its
    non-blind image under ``nb_prior``; ``found`` holds the kernels the case's earlier estimators gave (a start left out by
    ``skip`` is computed here)."""
    y, sig, K, dev = io.host(problem.y), problem.noise, problem.family.size, problem.device
    if name == "true":
        return io.host(problem.kernel_true)
    h0 = None
    if name in WARM_STARTS:
        source = WARM_STARTS[name]
        h0 = found[source] if source in found else _estimate(source, cfg, problem, joint_prior, pnp_prior, nb_prior,
                                                             network, found)
        h0 = kernels.centre(h0, K)
        h0 = h0 / h0.sum()
        name = name[:name.index("_from_")]
    if name == "map_xk":
        start = None if h0 is None else (h0, ke.nonblind(y, sig, h0, nb_prior, device=dev))
        return ke.map_xk(y, sig, K, joint_prior, n_outer=cfg.n_outer, x_iters=cfg.x_iters, start=start,
                         scheme=cfg.scheme, device=dev)["kernel"]
    if name == "map_k":
        return ke.map_k(y, sig, K, n_em=cfg.n_em, device=dev)["kernel"]
    if name == "map_k_mog":
        return ke.map_k_mog(y, sig, K, n_em=cfg.n_em, device=dev)["kernel"]
    if name == "map_k_diffusion":
        settings = PriorSettings(dtype=torch.float32, device=dev)
        return ke.map_k_diffusion(y, sig, K, prior=lambda shape: make_prior(cfg.diffusion_prior, shape, settings),
                                  n_em=cfg.n_em_diffusion, start=h0, rng=cfg.seed, device=dev,
                                  sampler=ke.dps_sampler(replace(ke.DIFFUSION_E_STEP, levels=cfg.dps_levels,
                                                                 chains=cfg.dps_chains)))["kernel"]
    if name == "map_k_gaussian_draws":
        return ke.map_k_diffusion(y, sig, K, prior=ke.gaussian_prior, n_em=cfg.n_em_diffusion, rng=cfg.seed, device=dev,
                                  sampler=ke.gaussian_sampler(cfg.dps_chains), dtype=torch.float64)["kernel"]
    if name == "unrolled":
        support = K if cfg.unrolled_support == "case" else None
        if network.image_channels == 1 and problem.event_ndim == 3:    # a gray network on the luminance
            return reconstruct(network, torch.as_tensor(data.luminance(y)), sig * LUMA_NORM, support)["kernel"]
        return reconstruct(network, problem.y, sig, support)["kernel"]
    opts = pnp.PnPOptions(variant=cfg.pnp_variant, s=cfg.s, n_iter=cfg.pnp_iter)
    single = BlindDeblur(problem.y, problem.family, sig, dtype=torch.float32)      # the network's precision
    th = pnp.pnp_blind(single, pnp_prior, problem.family.zero(dtype=torch.float32, device=dev), options=opts)["theta"]
    return io.host(problem.family(th.double()[None])[0])


def run_part(config: Config, progress: bool = True) -> xr.Dataset:
    """One case of :func:`cases`: every estimator's kernel, deconvolution, errors, ratio and energies."""
    cfg = config.resolved()
    single_case(cfg, ("kernels", image_field(cfg), "noise"))
    (kname,) = cfg.kernels
    h_true = kernels.load(kname)
    K = h_true.shape[0]
    (iname, img), = image_sources(cfg.images, cfg.image_file, cfg.crop, color=cfg.color)
    (sig,) = cfg.noise
    fam = kernels.Free(K)
    problem = BlindDeblur.synthetic(img, fam, fam.theta_of(h_true), sig, rng=cfg.seed, device=cfg.device)
    y = io.host(problem.y)
    network = (None if {"unrolled", "map_xk_from_unrolled"} <= set(cfg.skip)
               else load_unrolled(cfg.model, device=cfg.device))
    colour_network = network is not None and network.image_channels == 3
    if colour_network and not cfg.color:
        raise InputError("model", "a gray unrolled network for gray images (a colour one needs --color)", cfg.model)
    joint_prior = make_prior(cfg.prior, img.shape, PriorSettings(s=cfg.s, device=cfg.device))
    nb_prior = make_prior(cfg.nonblind, img.shape, PriorSettings(s=cfg.s, device=cfg.device))
    pnp_prior = (make_prior(cfg.pnp_prior, img.shape, PriorSettings(s=cfg.s, dtype=torch.float32, device=cfg.device))
                 if "pnp" not in cfg.skip else None)
    gauss = ke.gaussian_prior(img.shape)                  # the same fit as the non-blind step's and MAP_k's
    post = Posterior(problem, joint_prior)
    ref = np.nan                               # the true kernel's SSD: the ratio's denominator (first estimator)
    rows: dict[str, list] = {k: [] for k in ("kernel_error", "psnr", "ssim", "error_ratio", "energy",
                                            "marginal_nll", "seconds", "shift_row", "shift_col")}
    xs, ks, found = [], [], {}
    for e in ESTIMATORS:
        if e in cfg.skip or (e in ON_REQUEST and not getattr(cfg, ON_REQUEST[e])):
            for k in rows:
                rows[k].append(np.nan)
            xs.append(np.full(img.shape, np.nan))
            ks.append(np.full((GALLERY, GALLERY), np.nan))
            continue
        t0 = time.perf_counter()
        h = found[e] = _estimate(e, cfg, problem, joint_prior, pnp_prior, nb_prior, network, found)
        seconds = time.perf_counter() - t0
        x = ke.nonblind(y, sig, h, nb_prior, device=cfg.device)
        ssd, shift = metrics.shift_tolerant_ssd(x, img)
        if e == "true":
            ref = ssd
        nll_problem = ke.kernel_problem(y, sig, h.shape[0], device=cfg.device)
        rows["kernel_error"].append(ke.kernel_error(h, h_true))
        rows["psnr"].append(metrics.psnr(x, img))
        rows["ssim"].append(metrics.ssim(x, img))
        rows["error_ratio"].append(ssd / ref if ref > 0 else (1.0 if ssd <= 0 else np.inf))
        rows["energy"].append(post.energy_at_kernel(h, x))
        rows["marginal_nll"].append(float(marginal.marginal_nll(nll_problem, gauss,
                                                                nll_problem.family.theta_of(h))[0]))
        rows["seconds"].append(seconds)
        rows["shift_row"].append(shift[0])
        rows["shift_col"].append(shift[1])
        xs.append(x)
        ks.append(kernels.centre(h, GALLERY))
    label = f"{kname}/{iname}/σ={sig:g}"
    ds = xr.Dataset(coords={"case": [label], "estimator": list(ESTIMATORS)})
    units = {"kernel_error": "1", "psnr": "dB", "ssim": "1", "error_ratio": "1", "energy": "nats",
             "marginal_nll": "nats", "seconds": "s", "shift_row": "px", "shift_col": "px"}
    for k, v in rows.items():
        ds[k] = (("case", "estimator"), np.array([v], dtype=float), {"units": units[k]}
                 | ({"kind": "timing"} if k == "seconds" else {}))
    ds["error_ratio"].attrs["long_name"] = "Levin et al.'s error ratio SSD(x_hat_h) / SSD(x_hat_h*)"
    ds["marginal_nll"].attrs["long_name"] = "-log p(y | h) under the stationary Gaussian prior"
    pixels = ("channel", "row", "col") if cfg.color else ("row", "col")
    ds["x_hat"] = (("case", "estimator", *pixels), np.array([xs]), {"long_name": "non-blind deconvolution"})
    ds["kernel_hat"] = (("case", "estimator", "krow", "kcol"), np.array([ks]),
                        {"long_name": f"estimated kernel, centred on a {GALLERY}x{GALLERY} support"})
    ds["y"] = (("case", *pixels), y[None], {"long_name": "observation"})
    ds["x_true"] = (("case", *pixels), img[None], {"long_name": "sharp image"})
    ds["energy_trivial_pair"] = ("case", [post.energy_at_kernel(kernels.dirac(1, device="cpu").numpy(), y)],
                                 {"long_name": "E(delta, y)", "units": "nats"})
    ds["energy_truth"] = ("case", [post.energy_at_kernel(h_true, img)],
                          {"long_name": "E(h*, x*)", "units": "nats"})
    ds["kernel_size"] = ("case", [K])
    ds["case_kernel"] = ("case", [kname])
    ds["case_image"] = ("case", [iname])
    ds["case_noise"] = ("case", [sig])
    ds.attrs.update(io.provenance(NAME, asdict(cfg), prior_description=joint_prior.describe(),
                                  unrolled_input="colour" if colour_network else "luminance" if cfg.color
                                  else "the image",
                                  nonblind_description=nb_prior.describe(),
                                  pnp_description=pnp_prior.describe() if pnp_prior is not None else "skipped"))
    return ds


def combine(config: Config, parts: list[xr.Dataset]) -> xr.Dataset:
    """The cases along ``case``, and the success rates: ``success_curve`` (estimator × threshold) and
    ``success_rate`` at Levin et al.'s thresholds (1.5, 2, 2.5, 3)."""
    cfg = config.resolved()
    ds = concat_cases(parts, {**parts[0].attrs, **io.provenance(NAME, asdict(cfg))})
    r = ds.error_ratio.values
    ds = ds.assign_coords(threshold=CURVE, cut=list(metrics.SUCCESS_THRESHOLDS))

    def rates(j: int, thresholds: Any) -> np.ndarray:       # NaN for an estimator left out (--skip)
        t = np.atleast_1d(thresholds)
        return np.full(t.size, np.nan) if np.isnan(r[:, j]).all() else metrics.success_rate(r[:, j], t)
    ds["success_curve"] = (("estimator", "threshold"), np.array([rates(j, CURVE) for j in range(r.shape[1])]),
                           {"long_name": "fraction of cases with error ratio <= threshold"})
    ds["success_rate"] = (("estimator", "cut"), np.array([rates(j, metrics.SUCCESS_THRESHOLDS)
                                                          for j in range(r.shape[1])]))
    return ds


def run(config: Config | None = None, *, progress: bool = True) -> xr.Dataset:
    """Every case in this process (``landscape run`` farms them out through ``sweep``)."""
    cfg = (config or Config()).resolved()
    return combine(cfg, [run_part(c, progress) for c in cases(cfg)])
