r"""Study ``pnp-vs-unrolled``: plug-and-play (learn to denoise) against an unrolled network (learn to
reconstruct) with the same UNet, on the same blind cases.

PnP variants (``estimators.pnp``): ``fixed`` level, ``continuation`` (decreasing level), and
``gradient-step`` (monotone energy, the GS version of the UNet); each non-blind (true kernel), blind
from :math:`(\delta, y)` (as a practitioner would start) and blind from near the truth
(:math:`1.1\,\theta^\star`, :math:`x^\star`). The unrolled network (``unrolled-gaussian``, the same EDM
UNet shared by its iterations) reconstructs in one pass. Per run: PSNR (``skimage.metrics``), kernel
error, wall time and network calls. The gap reported is the unrolled PSNR minus the best blind PnP
PSNR from :math:`(\delta, y)`; the reference talk reports unrolled networks ahead of vanilla PnP by up
to 5 dB with the same architecture.

``--color``: colour crops ``(3, n, n)`` of the held-out colour photographs (``data.COLOR_TEST``, or
``--image-file`` kept in colour), one Gaussian kernel on the three channels, the colour denoiser
(``denoiser-color``) for fixed-level and continuation PnP, gradient-step PnP on the colour EPLL energy
(``patch-gmm``: no colour gradient-step network is shipped) and the colour network
``unrolled-gaussian-color``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from .. import data, io, kernels, metrics
from .._checks import files_or_empty, flag, integer, numbers, option, positive_number, prior_name, subset_of
from ..estimators import pnp
from ..estimators.unrolled import COLOR_MODELS, MODELS, load_unrolled
from ..posterior import BlindDeblur
from ..priors import PriorSettings, make_prior
from .common import (
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

NAME = "pnp-vs-unrolled"
SUMMARY = "PnP (fixed, continuation, gradient-step; non-blind and blind) vs the unrolled network: PSNR, time, calls"
STARTS = ("nonblind", "blind_dirac", "blind_near_truth")
#: relative offset of the near-truth start
NEAR = 0.1


#: the colour counterparts of the gray defaults
COLOR_DEFAULTS = {"images": data.COLOR_TEST, "gs_prior": "patch-gmm"}

#: ``--quick``: one image, width and noise level; 20 iterations
QUICK = {"images": FIRST, "theta_true": FIRST, "noise": FIRST, "n_iter": at_most(20), "crop": at_most(32)}

@dataclass
class Config:
    """Options of ``pnp-vs-unrolled``."""

    images: tuple[str, ...] = option(("ascent", "camera"), "held-out images, comma-separated (with --color: "
                                     + ", ".join(data.COLOR_TEST) + ", the default there)",
                                     subset_of(data.TEST + data.COLOR_TEST))
    image_file: tuple[str, ...] = option((),
                                         "your own image file(s) (.png/.npy/...), comma-separated, luminance unless "
                                         "--color; replace --images", files_or_empty("an image file"))
    color: bool = option(False, "colour crops (3, crop, crop), one Gaussian kernel on the three channels: the colour "
                         "denoiser (tweedie), gradient-step PnP on the colour EPLL energy (patch-gmm), the network "
                         "unrolled-gaussian-color", flag())
    crop: int = option(64, "crop size", integer(32))
    theta_true: tuple[float, ...] = option((1.0, 2.0),
                                           "true Gaussian widths, comma-separated", numbers(0.0, lo_open=True))
    noise: tuple[float, ...] = option((0.01, 0.03), "noise levels, comma-separated", numbers(0.0, lo_open=True))
    n_iter: int = option(60, "PnP iterations", integer(1))
    s: float = option(0.02, "level of fixed-level and gradient-step PnP", positive_number())
    s_max: float = option(0.2, "first level of continuation", positive_number())
    s_min: float = option(0.01, "last level of continuation", positive_number())
    denoiser: str = option("tweedie", "the denoiser of fixed-level and continuation PnP (tweedie, or a user prior: "
                           "file.py:factory, module:factory)", prior_name(("tweedie", "gs")))
    gs_prior: str = option("gs", "the prior with an energy of gradient-step PnP (gs; patch-gmm or gaussian, "
                           "with --color patch-gmm the default, or gs, gaussian; or a user prior)",
                           prior_name(("gs", "patch-gmm", "gaussian")))
    seed: int = option(0, "seed of the noise", integer(0))
    device: str = device_option("the problem, the PnP iterations and the networks")
    quick: bool = option(False, "one image, width and noise level; 20 iterations (< 60 s)", flag())

    def resolved(self) -> "Config":
        c = color_resolved(self, QUICK, COLOR_DEFAULTS)
        pnp.PnPOptions(s=c.s, s_max=c.s_max, s_min=c.s_min, n_iter=c.n_iter)       # their checks
        return c


#: the list options whose product makes the cases (with ``images`` or ``image_file``, whichever is given)
CASE_FIELDS = ("theta_true", "noise")


def cases(config: Config) -> list[Config]:
    """One configuration per (image, width, noise) in that order (``common.product_cases``)."""
    cfg = config.resolved()
    return product_cases(cfg, (image_field(cfg), *CASE_FIELDS))


def _model_name(cfg: Config) -> str:
    """The unrolled network of the run: gray, or colour with ``--color``."""
    return COLOR_MODELS["gaussian"] if cfg.color else MODELS["gaussian"]


def run_part(config: Config, progress: bool = True) -> xr.Dataset:
    """One case: every PnP variant from every start, and the unrolled network (dim ``case`` of length 1)."""
    cfg = config.resolved()
    single_case(cfg, (image_field(cfg), *CASE_FIELDS))
    fam = kernels.Gaussian(15)
    model = load_unrolled(_model_name(cfg), device=cfg.device)
    settings = PriorSettings(s=cfg.s, dtype=torch.float32, device=cfg.device)
    shape = (3, cfg.crop, cfg.crop) if cfg.color else (cfg.crop, cfg.crop)
    tweedie = make_prior(cfg.denoiser, shape, settings)              # one network for both denoiser variants
    priors = {"fixed": tweedie, "continuation": tweedie, "gradient-step": make_prior(cfg.gs_prior, shape, settings)}
    (name, img), = image_sources(cfg.images, cfg.image_file, cfg.crop, color=cfg.color)
    (th,), (sig,) = cfg.theta_true, cfg.noise
    psnr = np.full((len(pnp.VARIANTS) + 1, len(STARTS)), np.nan)
    kerr, wall, calls = (np.full_like(psnr, np.nan) for _ in range(3))
    problem = BlindDeblur.synthetic(img, fam, [th], sig, rng=cfg.seed, dtype=torch.float32, device=cfg.device)
    h_true = io.host(problem.kernel_true.double())
    label = f"{name}/θ*={th:g}/σ={sig:g}"
    for v, variant in enumerate(pnp.VARIANTS):
        opts = pnp.PnPOptions(variant=variant, s=cfg.s, s_max=cfg.s_max, s_min=cfg.s_min, n_iter=cfg.n_iter)
        runs = {"nonblind": lambda: pnp.pnp_nonblind(problem, priors[variant], [th], opts),
                "blind_dirac": lambda: pnp.pnp_blind(problem, priors[variant], [0.0], options=opts),
                "blind_near_truth": lambda: pnp.pnp_blind(problem, priors[variant], [th * (1 + NEAR)],
                                                          x0=problem.x_true, options=opts)}
        for b, start in enumerate(STARTS):
            t0 = time.perf_counter()
            out = runs[start]()
            wall[v, b] = time.perf_counter() - t0
            calls[v, b] = out["calls"]
            psnr[v, b] = metrics.psnr(io.host(out["x"].double()), img)
            theta = out.get("theta", torch.tensor([th], device=problem.device))
            kerr[v, b] = float(np.linalg.norm(io.host(fam(theta.double()[None])[0]) - h_true))
    t0 = time.perf_counter()
    with torch.no_grad():
        o = model(problem.y[None], sig)
    wall[-1, :] = time.perf_counter() - t0
    calls[-1, :] = model.iterations
    psnr[-1, :] = metrics.psnr(io.host(o["x"][0].double()), img)
    kerr[-1, :] = float(np.linalg.norm(io.host(o["kernel"][0].double()) - h_true))
    if progress:
        print(f"{NAME}: case {label} done")
    dims, pixel_dims = ("case", "estimator", "start"), ("channel", "row", "col") if cfg.color else ("row", "col")
    nv, b0 = len(pnp.VARIANTS), STARTS.index("blind_dirac")
    best = int(np.nanargmax(psnr[:nv, b0]))                              # best blind PnP from (delta, y)
    return xr.Dataset({
        "psnr": (dims, psnr[None], {"units": "dB"}), "kernel_error": (dims, kerr[None], {"long_name": "||h - h*||"}),
        "wall_time": (dims, wall[None], {"units": "s", "kind": "timing"}), "network_calls": (dims, calls[None]),
        "psnr_y": ("case", [metrics.psnr(io.host(problem.y.double()), img)], {"units": "dB"}),
        "x_true": (("case", *pixel_dims), io.host(problem.x_true.double())[None], {"long_name": "the sharp image x*"}),
        "y": (("case", *pixel_dims), io.host(problem.y.double())[None], {"long_name": "the observation"}),
        "gap_unrolled_minus_best_blind_pnp": ("case", [psnr[-1, b0] - psnr[best, b0]], {"units": "dB"}),
        "speedup_vs_best_blind_pnp": ("case", [wall[best, b0] / wall[-1, b0]], {
            "long_name": "wall time of the best blind PnP / the unrolled network's", "kind": "timing"})},
        coords={"case": [label], "estimator": list(pnp.VARIANTS) + ["unrolled"], "start": list(STARTS)})


def combine(config: Config, parts: list[xr.Dataset]) -> xr.Dataset:
    """The cases of :func:`cases` along ``case``, with the run's provenance."""
    cfg = config.resolved()
    name = _model_name(cfg)
    attrs = io.provenance(NAME, asdict(cfg), model=name, model_meta=getattr(load_unrolled(name), "meta", {}))
    attrs.update({"prior": f"{cfg.denoiser} / {cfg.gs_prior}", "kernel_family": kernels.Gaussian(15).name,
                  "noise_sigma": cfg.noise[0]})
    return concat_cases(parts, attrs)


def run(config: Config | None = None, *, progress: bool = True) -> xr.Dataset:
    """Every (image, width, noise) case in this process: ``combine(cfg, [run_part(c) for c in cases(cfg)])``."""
    cfg = (config or Config()).resolved()
    return combine(cfg, [run_part(c, progress) for c in cases(cfg)])


def summary(ds: xr.Dataset) -> str:
    lines = [f"{NAME}: PSNR (dB) [calls, seconds]; starts: " + ", ".join(STARTS)]
    for i, c in enumerate(ds.case.values):
        lines.append(f"  {c} (y: {float(ds.psnr_y[i]):.2f} dB)")
        for m in ds.estimator.values:
            cells = [f"{float(ds.psnr.sel(estimator=m, start=s)[i]):6.2f} [{int(ds.network_calls.sel(estimator=m, start=s)[i])}, "
                     f"{float(ds.wall_time.sel(estimator=m, start=s)[i]):.2f} s]" for s in ds.start.values]
            lines.append(f"    {m:<14}" + "  ".join(cells))
        lines.append(f"    unrolled - best blind PnP from (δ, y): {float(ds.gap_unrolled_minus_best_blind_pnp[i]):+.2f} dB, "
                     f"{float(ds.speedup_vs_best_blind_pnp[i]):.0f}x faster (reference: up to +5 dB)")
    return "\n".join(lines)


def plot(ds: xr.Dataset, ax: Any = None):
    """PSNR of every method and start, per case (bars); the unrolled network in black."""
    from ..plot import get_ax
    ax = get_ax(ax, figsize=(8, 4))
    n_case, n_m, n_s = ds.psnr.shape
    width = 0.8 / (n_m * n_s)
    for m in range(n_m):
        for s in range(n_s):
            x = np.arange(n_case) + (m * n_s + s) * width
            color = "k" if ds.estimator.values[m] == "unrolled" else f"C{m}"
            ax.bar(x, ds.psnr.values[:, m, s], width, color=color, alpha=(1.0, 0.6, 0.35)[s],
                   label=f"{ds.estimator.values[m]} / {ds.start.values[s]}" if ds.estimator.values[m] != "unrolled" or s == 0 else None)
    ax.plot(np.arange(n_case) + 0.4, ds.psnr_y.values, "r_", ms=30, label="y")
    ax.set_xticks(np.arange(n_case) + 0.4, ds.case.values, fontsize=7, rotation=15)
    ax.set_ylabel("PSNR (dB)")
    lo = float(np.nanmin(ds.psnr.values)) - 1
    ax.set_ylim(lo, float(np.nanmax(ds.psnr.values)) + 1)
    ax.legend(fontsize=6, ncol=2)
    ax.set_title("PnP (learn to denoise) vs unrolled (learn to reconstruct)")
    return ax
