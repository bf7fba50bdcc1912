r"""Study ``blurry-is-more-likely``: does the prior give blurred images lower energy?

For held-out real images :math:`x` and Gaussian blurs of width :math:`w \in \{0, 0.25, \dots, 3\}`,
compute :math:`\Delta q(w) = q(h_w \star x) - q(x)` (nats) with every evaluator:

* ``gaussian``: exact, stationary Gaussian prior fitted to the training images;
* ``patch-gmm``: exact EPLL energy of an 8x8-patch GMM fitted to the training images;
* ``tweedie``: line integral of the learned denoiser's Tweedie score along the segment from
  :math:`x` to :math:`h_w \star x` (error estimate from the quadrature);
* ``gs``: the gradient-step denoiser's explicit potential :math:`g_s/s^2`;
* ``pf-ode``: the learned denoiser's probability-flow ODE log-density (Hutchinson, the probes
  shared between the sharp and blurred images; standard error stored).

Blurred crops are cut from the whole blurred image, so no wrap-around edge enters a crop. With
``--color`` the crops are colour crops ``(3, H, W)`` of the held-out colour photographs
(``data.COLOR_TEST``), the same kernel blurs every channel, and the evaluators are the registry's priors in
their colour version (``gaussian``: the colour Gaussian with its fitted inter-channel covariance; ``tweedie``
and ``pf-ode``: the shipped colour network) or user priors.
Nguyen, Pauwels & Weiss report that a blur of width 3 gets lower q than the sharp image.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from .. import data, io, kernels
from .._checks import (
    Check,
    InputError,
    files_or_empty,
    flag,
    integer,
    option,
    positive_number,
    prior_names,
    validate,
)
from ..operators import Blur
from ..priors import EXPLICIT, PriorSettings, make_prior
from .common import apply_quick, at_least, at_most, concat_cases, device_option, product_cases, single_case

NAME = "blurry-is-more-likely"
SUMMARY = "q(blurred) - q(sharp) on held-out images for exact and learned priors"
EVALUATORS = ("gaussian", "patch-gmm", "tweedie", "gs", "pf-ode")
#: the evaluators of a ``--color`` run by default (``gs`` in colour is taken when asked for)
COLOR_EVALUATORS = ("gaussian", "patch-gmm", "tweedie", "pf-ode")
#: (image, row, col) of the top-left corner of each crop, as fractions of the free range
CROPS = (("camera", 0.5, 0.5), ("ascent", 0.5, 0.5), ("aero", 0.5, 0.5),
         ("camera", 0.2, 0.7), ("ascent", 0.8, 0.3), ("aero", 0.25, 0.25))
#: the colour crops (``--color``): the held-out colour photographs, at 3 places each
COLOR_CROPS = (("chelsea", 0.5, 0.5), ("coffee", 0.5, 0.5), ("chelsea", 0.2, 0.7), ("coffee", 0.8, 0.3),
               ("chelsea", 0.25, 0.25), ("coffee", 0.25, 0.25))


#: ``--quick``: 3 images, widths step 0.5, fewer ODE steps and probes
QUICK = {"n_images": at_most(3), "width_step": at_least(0.5), "ode_steps": 8, "probes": 2}

@dataclass
class Config:
    crop: int = option(32, "crop size (pixels)", Check("a multiple of 4, at least 16",
                                                        lambda v: isinstance(v, int) and v >= 16 and v % 4 == 0,
                                                        (0, 18, -4)))
    n_images: int = option(6, "held-out crops (camera, ascent, aero at 2 places each)", integer(1, len(CROPS)))
    image_file: tuple[str, ...] = option((), "your own image file(s) (.png/.npy/...), comma-separated: the central "
                                         "crop of each (luminance unless --color); replace the held-out crops",
                                         files_or_empty("an image file"))
    width_max: float = option(3.0, "largest blur width", positive_number())
    width_step: float = option(0.25, "blur width step", positive_number())
    evaluators: tuple[str, ...] = option(EVALUATORS, "comma-separated: " + ", ".join(EVALUATORS) + " or user priors "
                                         "(file.py:factory, module:factory)", prior_names(EVALUATORS))
    s: float = option(0.01, "noise level of the Tweedie score and GS potential", positive_number())
    ode_steps: int = option(16, "RK4 steps of the PF-ODE", integer(1))
    probes: int = option(4, "Hutchinson probes per PF-ODE evaluation", integer(1))
    seed: int = option(0, "seed of the Hutchinson probes", integer(0))
    color: bool = option(False, "colour crops of chelsea and coffee (data.COLOR_TEST), the evaluators' colour "
                         "versions (default: " + ", ".join(COLOR_EVALUATORS) + ")", flag())
    device: str = device_option("the crops and the evaluators' networks")
    quick: bool = option(False, "3 images, widths step 0.5, fewer ODE steps", flag())

    def resolved(self) -> "Config":
        c = validate(Config(**asdict(self)))
        if c.width_step > c.width_max:
            raise InputError("width_step", f"a step no larger than width_max ({c.width_max})", c.width_step)
        if c.color and c.evaluators == EVALUATORS:
            c.evaluators = COLOR_EVALUATORS
        if c.quick:
            c = apply_quick(c, QUICK)[0]
        return c


def blurred_crops(cfg: Config, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sharp and blurred crops ``(image, width, [channel,] row, col)`` and the kernels ``(width, k, k)``."""
    fam = kernels.Gaussian(25)
    hs = fam(torch.as_tensor(widths, dtype=torch.float64, device=cfg.device))
    channels = (3,) if cfg.color else ()
    places = crops(cfg)
    out = np.zeros((len(places), len(widths), *channels, cfg.crop, cfg.crop))
    pad = fam.size
    big = cfg.crop + 2 * pad
    for i, (name, fr, fc) in enumerate(places):
        im = _image(cfg, name, big)
        r, c = int(fr * (im.shape[-2] - big)), int(fc * (im.shape[-1] - big))
        patch = torch.as_tensor(im[..., r:r + big, c:c + big], device=cfg.device)
        blurred = io.host(Blur(hs, patch.shape[-2:], channels=channels[0] if channels else None)(patch))
        out[i] = blurred[..., pad:pad + cfg.crop, pad:pad + cfg.crop]
    return out, io.host(hs)


def crops(cfg: Config) -> tuple[tuple[str, float, float], ...]:
    """``(image, row fraction, column fraction)`` of the run's crops: the central crop of each
    ``image_file`` when given, else the first ``n_images`` held-out places."""
    if cfg.image_file:
        return tuple((f, 0.5, 0.5) for f in cfg.image_file)
    return (COLOR_CROPS if cfg.color else CROPS)[:cfg.n_images]


def _image(cfg: Config, name: str, big: int) -> np.ndarray:
    """The named held-out image, or the user's file (checked: at least ``big`` pixels a side, the crop
    and the blur's margin on both sides)."""
    if not cfg.image_file:
        return data.load(name, color=cfg.color)
    im = data.load_file(name, color=cfg.color)
    if min(im.shape[-2:]) < big:
        raise InputError("image_file", f"an image at least {big}x{big} (--crop {cfg.crop} and the 25x25 blur's "
                         "margin on each side)", f"{name}: {im.shape}")
    return im


def cases(config: Config) -> list[Config]:
    """One configuration per evaluator (``common.product_cases``)."""
    return product_cases(config.resolved(), ("evaluators",))


def run_part(config: Config, progress: bool = True) -> xr.Dataset:
    """One evaluator's q differences on every crop and width (dim ``evaluator`` of length 1)."""
    cfg = config.resolved()
    single_case(cfg, ("evaluators",))
    widths = np.round(np.arange(0, cfg.width_max + 1e-9, cfg.width_step), 6)
    imgs, hs = blurred_crops(cfg, widths)
    (ev,) = cfg.evaluators
    I, W = imgs.shape[:2]
    x64 = torch.as_tensor(imgs, device=cfg.device)
    dq = np.full((I, W), np.nan)
    err = np.zeros_like(dq)
    shape = (3, cfg.crop, cfg.crop) if cfg.color else (cfg.crop, cfg.crop)
    settings = PriorSettings(s=cfg.s, dtype=torch.float32, ode_steps=cfg.ode_steps, probes=cfg.probes,
                             progress=progress, device=cfg.device)
    prior = make_prior(ev, shape, settings)
    if hasattr(prior, "log_density"):
        lp, se = [], []
        for i in range(I):       # one image's widths share their probes (common random numbers)
            l, s_ = prior.log_density(x64[i].float(), rng=cfg.seed + i, common_probes=True)
            lp.append(io.host(l.double()))
            se.append(io.host(s_.double()))
        q = -np.stack(lp)
        dq = q - q[:, :1]
        # SE of a difference under shared probes is not the sum of SEs; store the per-image SE
        err = np.stack(se)
    elif prior.capability("energy") in EXPLICIT:        # an energy (exact, or the GS potential)
        xin = x64.float() if ev == "gs" else x64
        q = io.host(prior.energy(xin.reshape(-1, *shape)).reshape(I, W).double())
        dq = q - q[:, :1]
    else:                        # a score only: q differences by line integrals from the sharp crop
        x32 = x64.float() if ev in EVALUATORS else x64      # a user prior casts to its network's dtype itself
        d, er = prior.energy_difference(x32[:, :1].expand_as(x32).reshape(-1, *shape), x32.reshape(-1, *shape))
        dq, err = io.host(d.reshape(I, W).double()), io.host(er.reshape(I, W).double())
    ds = xr.Dataset(
        {"delta_q": (("image", "width", "evaluator"), dq[..., None], io.energy_attrs("q(h_w * x) - q(x)")),
         "delta_q_error": (("image", "width", "evaluator"), err[..., None],
                           {"long_name": "quadrature error estimate (tweedie) or standard error of q (pf-ode)",
                            "units": "nats"}),
         "images": (("image", "width", *(("channel",) if cfg.color else ()), "row", "col"), imgs,
                    {"long_name": "sharp (width 0) and blurred crops"}),
         "kernels": (("width", "krow", "kcol"), hs, {"long_name": "Gaussian blur kernels"})},
        coords={"image": [f"{n}@{r:.2f},{c:.2f}" for n, r, c in crops(cfg)], "width": widths, "evaluator": [ev]})
    ds.attrs["evaluator_description"] = json.dumps(prior.describe(), default=str)
    return ds


def _key(evaluator: str) -> str:
    """An evaluator's name as an attribute key (a user prior's spec holds '/' and ':')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", evaluator)


def combine(config: Config, parts: list[xr.Dataset]) -> xr.Dataset:
    """The evaluators side by side, the verdicts over crops, and the run's provenance."""
    cfg = config.resolved()
    evs = cfg.evaluators
    descr = {ev: json.loads(p.attrs["evaluator_description"]) for ev, p in zip(evs, parts)}
    ds = concat_cases(parts, io.provenance(NAME, asdict(cfg), evaluators_description=descr), dim="evaluator")
    widths = ds.width.values
    last = ds.delta_q.isel(width=-1)
    frac = (last < 0).mean("image")
    mono = ((ds.delta_q.isel(width=slice(0, 3)).diff("width") > 0).all("width")
            | (ds.delta_q.isel(width=slice(0, 3)).diff("width") < 0).all("width"))
    ds["monotone_near_0"] = mono.astype(np.int8).assign_attrs(
        long_name="delta_q monotone over widths 0, w1, w2 (1) or not (0)")
    for ev in evs:
        key = _key(ev)
        ds.attrs[f"fraction_lower_at_{widths[-1]:g}_{key}"] = float(frac.sel(evaluator=ev))
        ds.attrs[f"fraction_monotone_near_0_{key}"] = float(mono.sel(evaluator=ev).mean())
    return ds


def run(config: Config | None = None, *, progress: bool = True) -> xr.Dataset:
    """Every evaluator in this process: ``combine(cfg, [run_part(c) for c in cases(cfg)])``."""
    cfg = (config or Config()).resolved()
    return combine(cfg, [run_part(c, progress) for c in cases(cfg)])


def summary(ds: xr.Dataset) -> str:
    w = float(ds.width[-1])
    lines = [f"{NAME}: {ds.sizes['image']} images, widths 0..{w:g}; q(h_w*x) - q(x) in nats"]
    lines.append(f"  {'evaluator':<11}{'mean dq(w_max)':>16}{'frac lower':>12}{'frac monotone@0':>17}")
    for ev in ds.evaluator.values:
        d = ds.delta_q.sel(evaluator=ev).isel(width=-1)
        lines.append(f"  {ev:<11}{float(d.mean()):16.1f}{ds.attrs[f'fraction_lower_at_{w:g}_{_key(ev)}']:12.2f}"
                     f"{ds.attrs[f'fraction_monotone_near_0_{_key(ev)}']:17.2f}")
    return "\n".join(lines)


def plot(ds: xr.Dataset, ax: Any = None):
    """One curve per (evaluator, image): Δq against width; per-pixel scale, evaluator colours."""
    from ..plot import get_ax
    ax = get_ax(ax, figsize=(7, 4.5))
    npx = ds.images.isel(image=0, width=0).size          # pixels (times channels, in colour)
    for k, ev in enumerate(ds.evaluator.values):
        d = ds.delta_q.sel(evaluator=ev) / npx
        for i in range(ds.sizes["image"]):
            ax.plot(ds.width, d.isel(image=i), color=f"C{k}", alpha=0.6, lw=1,
                    label=str(ev) if i == 0 else None)
        ax.plot(ds.width, d.mean("image"), color=f"C{k}", lw=2.5)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_yscale("symlog", linthresh=0.1)          # patch-gmm sums over p*p overlapping patches
    ax.set_xlabel("Gaussian blur width (pixels)")
    ax.set_ylabel("q(blurred) − q(sharp)  (nats / pixel)")
    ax.set_title("Is the blurred image more likely? (below 0: yes)")
    ax.legend(fontsize=8)
    return ax
