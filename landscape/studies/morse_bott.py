r"""Study ``morse-bott``: is :math:`q = -\log p_X` of a learned prior a Morse–Bott function near images?

Nguyen, Pauwels & Weiss model natural images as lying near critical submanifolds of :math:`q`: flat along
the manifold, strictly convex across it. Their check, reproduced here: descend :math:`q` from a
held-out image to a critical point, then count the near-zero eigenvalues of its Hessian there. The descent
converges (``critical.critical_point``: L-BFGS on an explicit :math:`q`, an Anderson root of
:math:`x - D(x, s)` for a Tweedie score) to :math:`\|\nabla q\| \le` ``gtol``, and the fall of
:math:`\|\nabla q\|` is reported. The Hessian (``hessian.prior_hvp``: double backward through an explicit
potential, the symmetric part of the denoiser's Jacobian for a Tweedie score; its asymmetry
:math:`\|J - J^\top\|_F/\|J\|_F` is reported beside every spectrum) is analysed by
``critical.hessian_report``: the full spectrum from :math:`d` products (or the prior's assembled matrix);
for larger images (``n_eig > 0``) the counts from ``eigen.near_zero_count`` (Lanczos stopped as soon as
every eigenvalue near a threshold is on one side of it), which also gives :math:`\lambda_{\max}`, with the
``n_eig`` smallest Ritz values kept with their residual bounds.

Counts are given two ways: the toolkit's :math:`\#\{|\lambda| \le t\lambda_{\max}\}` for each ``threshold``,
and the paper's own, the singular values of the scaled Hessian :math:`s^2\nabla^2 q` below :math:`10^{-5}`
(``paper_count``; with ``paper_relative``, that threshold relative to :math:`\lambda_{\max}`: the paper's
largest scaled values are about 0.5, a relative threshold of about 2e-5).

The exact whole-image GMM (``gmm``) is the reference where the answer is known: its Hessian is
:math:`\Sigma_k^{-1}`-like near a component's mean, positive definite, so it has no near-zero
eigenvalues at thresholds below its condition number's inverse. The stationary Gaussian (``gaussian``) is
the reference with a closed form in any size and in colour: its descent ends at the mean and its Hessian's
eigenvalues are the inverse spectrum :math:`1/C_k(\omega)` of each colour component.

``--color``: colour crops :math:`(3, n, n)` of the held-out colour photographs (``data.COLOR_TEST``; an
``--image-file`` keeps its colour), :math:`d = 3n^2`, every prior in its colour version (by default the
shipped colour denoiser's Tweedie score and the colour Gaussian with its fitted inter-channel covariance;
``gs`` the colour gradient-step network, ``gmm`` a whole-image mixture fitted to colour crops): the setting of
the seed paper's counts (32x32x3 CIFAR crops).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from .. import critical, data, descent, io
from .._checks import (
    Check,
    files_or_empty,
    flag,
    InputError,
    integer,
    numbers,
    option,
    positive_number,
    prior_names,
    shown,
    subset_of,
)
from ..priors import PriorSettings, jacobian_asymmetry, make_prior
from ..priors.base import EXPLICIT, UNAVAILABLE
from .common import (
    FIRST,
    at_most,
    color_resolved,
    device_option,
    image_field,
    image_sources,
    product_cases,
    single_case,
)

NAME = "morse-bott"
SUMMARY = "Hessian spectra of learned priors at critical points reached by descending q from held-out images"
PRIORS = ("gs", "tweedie", "gmm", "gaussian")
#: the priors of a ``--color`` run by default
COLOR_DEFAULT_PRIORS = ("tweedie", "gaussian")
#: the largest dimension whose spectrum is computed densely (d products); above it ``n_eig`` is required
DENSE_MAX = 1600
#: the images a run takes by default: held-out gray images, or held-out colour photographs with ``--color``
IMAGES = ("camera", "ascent", "aero")
#: the priors a run takes by default (with ``--color``: :data:`COLOR_DEFAULT_PRIORS`)
DEFAULT_PRIORS = ("gs", "tweedie", "gmm")


#: ``--quick``: one image, 16x16, 300 descent iterations
QUICK = {"images": FIRST, "crop": at_most(16), "max_iter": at_most(300)}

@dataclass
class Config:
    """Options of ``morse-bott`` (``landscape run morse-bott --help``)."""

    images: tuple[str, ...] = option(IMAGES, "held-out image names, comma-separated (with --color: "
                                     + ", ".join(data.COLOR_TEST) + ", the default there)",
                                     subset_of(data.TEST + data.COLOR_TEST))
    image_file: tuple[str, ...] = option((),
                                         "your own image file(s) (.png/.npy/...), comma-separated, luminance unless "
                                         "--color; replace --images", files_or_empty("an image file"))
    color: bool = option(False, "colour crops (3, crop, crop): d = 3 crop^2; every prior in its colour version",
                         flag())
    crop: int = option(16, f"central crop size (d = crop^2, 3 crop^2 in colour; dense spectra up to d = {DENSE_MAX})",
                       Check("an integer from 8 to 128", lambda v: isinstance(v, int) and 8 <= v <= 128, (4, 256)))
    priors: tuple[str, ...] = option(DEFAULT_PRIORS,
                                     "comma-separated: gs, tweedie, gmm (exact reference; crop <= 16), gaussian "
                                     "(exact reference, closed-form spectrum); with --color: tweedie, gaussian the default",
                                     prior_names(PRIORS))
    s: float = option(0.01, "noise level of the learned priors (the paper descends at 1e-3)", positive_number())
    gtol: float = option(1e-4, "stop the descent when ||grad q|| <= gtol (absolute)", positive_number())
    max_iter: int = option(3000, "descent iterations at most (L-BFGS, or denoiser calls of the root finder)",
                           integer(1))
    thresholds: tuple[float, ...] = option((0.0001, 0.001, 0.01), "count |lambda| <= t lambda_max for each t",
                                           numbers(0.0, lo_open=True))
    n_eig: int = option(0, "counts by Lanczos stopped when they are decided (eigen.near_zero_count), keeping its "
                        "n_eig smallest Ritz values with their residual bounds (0: the full dense spectrum)", integer(0))
    seed: int = option(0, "seed (probes of the asymmetry estimate; the Lanczos start vector)", integer(0))
    device: str = device_option("the descents, the Hessian products and the learned priors' networks")
    quick: bool = option(False, "one image, 16x16, 300 descent iterations (< 60 s)", flag())

    @property
    def dimension(self) -> int:
        """:math:`d`: the pixels of a crop times its channels."""
        return (3 if self.color else 1) * self.crop ** 2

    def resolved(self) -> "Config":
        c = color_resolved(self, QUICK, {"images": data.COLOR_TEST, "priors": COLOR_DEFAULT_PRIORS})
        d = c.dimension
        if c.n_eig == 0 and d > DENSE_MAX:
            raise InputError("n_eig", f"a number of Ritz values to keep (the Lanczos count) for d = {d} > {DENSE_MAX} "
                             "(a dense spectrum needs d products)", 0)
        if c.n_eig > d:
            raise InputError("n_eig", f"at most the dimension {d}", c.n_eig)
        if "gmm" in c.priors and c.crop > 16:
            raise InputError("priors", "gmm (a whole-image GMM) only with crop <= 16", shown(c.priors))
        return c


def cases(config: Config) -> list[Config]:
    """One configuration per (image, prior), image first (``common.product_cases``)."""
    cfg = config.resolved()
    return product_cases(cfg, (image_field(cfg), "priors"))


def run_part(config: Config, progress: bool = True) -> xr.Dataset:
    """One (image, prior): descent to a critical point, spectrum there, near-zero counts, asymmetry (dims
    ``image`` and ``prior`` of length 1)."""
    from tqdm.auto import tqdm
    cfg = config.resolved()
    single_case(cfg, (image_field(cfg), "priors"))
    sources, priors = image_sources(cfg.images, cfg.image_file, cfg.crop, color=cfg.color), cfg.priors
    images = [name for name, _ in sources]
    thr = np.array(cfg.thresholds)
    d = cfg.dimension
    event = (3, cfg.crop, cfg.crop) if cfg.color else (cfg.crop, cfg.crop)
    pixel_dims = ("channel", "row", "col") if cfg.color else ("row", "col")
    k = cfg.n_eig or d
    shape = (len(images), len(priors))
    eig, res = np.full((*shape, k), np.nan), np.full((*shape, k), np.nan)
    counts = np.zeros((*shape, len(thr)), dtype=int)
    neg, paper, products, iters = (np.zeros(shape, dtype=int) for _ in range(4))
    lam_max, paper_rel, asym, asym_se, dq, g0, g1, secs = (np.full(shape, np.nan) for _ in range(8))
    x_start = np.zeros((len(images), *event))
    x_end = np.zeros((*shape, *event))
    bar = tqdm(total=len(images) * len(priors), desc="morse-bott", disable=not progress)
    for b, pname in enumerate(priors):
        prior = make_prior(pname, event, PriorSettings(s=cfg.s, dtype=torch.float64,
                                                                     progress=progress, device=cfg.device))
        scale = float(prior.s) ** 2 if prior.s else None      # the paper's count needs s
        for a, (im, img) in enumerate(sources):
            t0 = time.perf_counter()
            x0 = torch.as_tensor(img, dtype=torch.float64, device=cfg.device)
            x_start[a] = img
            cp = critical.critical_point(prior, x0, gtol=cfg.gtol, max_iter=cfg.max_iter)
            x = cp["x"]
            x_end[a, b], iters[a, b], g0[a, b], g1[a, b] = io.host(x), cp["iterations"], cp["grad_norm_start"], cp["grad_norm"]
            dq[a, b] = descent.q_difference(prior, x0, x)
            rep = critical.hessian_report(prior, x, k=k, thresholds=thr, scale=scale, dense_max=0 if cfg.n_eig else d,
                                          rng=cfg.seed)
            m = rep["eigenvalues"].size
            eig[a, b, :m], res[a, b, :m] = rep["eigenvalues"], rep["residuals"]
            lam_max[a, b], counts[a, b], neg[a, b] = rep["lambda_max"], rep["counts"], rep["negative_count"]
            paper[a, b], paper_rel[a, b], products[a, b] = rep["paper_count"], rep["paper_relative"], rep["products"]
            if prior.capability("energy") not in EXPLICIT and prior.capability("denoise") != UNAVAILABLE:  # a score
                den = lambda z, s, p=prior: p.denoise(z, s, differentiable=True)     # noqa: E731
                asym[a, b], asym_se[a, b] = jacobian_asymmetry(den, x[None], cfg.s, probes=8, rng=cfg.seed)
            else:               # an explicit potential (GS: D = Id - grad g; exact priors): J is symmetric
                asym[a, b], asym_se[a, b] = 0.0, 0.0
            secs[a, b] = time.perf_counter() - t0
            bar.update(1)
    bar.close()
    ds = xr.Dataset({
        "eigenvalues": (("image", "prior", "k"), eig, {"long_name": "eigenvalues of the Hessian of q at the end point "
                        "(ascending; with n_eig > 0 the smallest Ritz values of the counting Lanczos)"}),
        "eig_residuals": (("image", "prior", "k"), res, {"long_name": "||H v - lambda v|| (error bound)"}),
        "near_zero_count": (("image", "prior", "threshold"), counts,
                            {"long_name": "eigenvalues with |lambda| <= threshold * lambda_max"}),
        "paper_count": (("image", "prior"), paper, {"long_name": "singular values of s^2 Hess q below 1e-5 (Nguyen, "
                        "Pauwels & Weiss's count; -1: no smoothing level)"}),
        "paper_relative": (("image", "prior"), paper_rel, {"long_name": "1e-5 / (s^2 lambda_max): the paper's "
                           "threshold relative to lambda_max"}),
        "negative_count": (("image", "prior"), neg, {"long_name": "eigenvalues below -max(residual, 1e-4 lambda_max)"}),
        "lambda_max": (("image", "prior"), lam_max),
        "jacobian_asymmetry": (("image", "prior"), asym, {"long_name": "||J - J^T||_F / ||J||_F of the denoiser at the end point"}),
        "jacobian_asymmetry_se": (("image", "prior"), asym_se),
        "q_change": (("image", "prior"), dq, io.energy_attrs("q(x_end) - q(x_start)")),
        "descent_iterations": (("image", "prior"), iters),
        "grad_norm_start": (("image", "prior"), g0, {"long_name": "||grad q|| at the image"}),
        "grad_norm_end": (("image", "prior"), g1, {"long_name": "||grad q|| at the end point"}),
        "hessian_products": (("image", "prior"), products),
        "seconds": (("image", "prior"), secs, {"kind": "timing", "units": "s"}),
        "x_start": (("image", *pixel_dims), x_start),
        "x_end": (("image", "prior", *pixel_dims), x_end),
    }, coords={"image": images, "prior": list(priors), "threshold": thr, "k": np.arange(k)})
    return ds


def combine(config: Config, parts: list[xr.Dataset]) -> xr.Dataset:
    """The (image, prior) parts of :func:`cases` on the ``image`` x ``prior`` grid, with the run's provenance."""
    cfg = config.resolved()
    n = len(cfg.priors)
    ds = xr.combine_nested([parts[i:i + n] for i in range(0, len(parts), n)], concat_dim=["image", "prior"],
                           data_vars="minimal", coords="minimal", compat="override", combine_attrs="override")
    ds.attrs = {**io.provenance(NAME, asdict(cfg)), "dimension": cfg.dimension, "s": cfg.s}
    return ds


def run(config: Config | None = None, *, progress: bool = True) -> xr.Dataset:
    """Every (image, prior) in this process: ``combine(cfg, [run_part(c) for c in cases(cfg)])``."""
    cfg = (config or Config()).resolved()
    return combine(cfg, [run_part(c, progress) for c in cases(cfg)])


def summary(ds: xr.Dataset) -> str:
    d = ds.attrs["dimension"]
    thr = ds.threshold.values
    lines = [f"{NAME}: d = {d}, s = {ds.attrs['s']:g}; near-zero count = #|λ| <= t λmax; paper: #s²|λ| <= 1e-5",
             f"  {'image':<8}{'prior':<9}{'iters':>6}{'|∇q| start':>12}{'end':>10}{'Δq (nats)':>12}{'λmax':>11}"
             + "".join(f"{'t=' + format(t, 'g'):>9}" for t in thr) + f"{'paper':>7}{'(rel)':>9}{'λ<0':>6}{'asym':>8}"
             f"{'std x':>8}"]
    for a, im in enumerate(ds.image.values):
        for b, p in enumerate(ds.prior.values):
            lines.append(f"  {im:<8}{p:<9}{int(ds.descent_iterations.values[a, b]):>6}"
                         f"{float(ds.grad_norm_start.values[a, b]):>12.3g}{float(ds.grad_norm_end.values[a, b]):>10.2g}"
                         f"{float(ds.q_change.values[a, b]):>12.1f}{float(ds.lambda_max.values[a, b]):>11.3g}"
                         + "".join(f"{int(c):>9d}" for c in ds.near_zero_count.values[a, b])
                         + f"{int(ds.paper_count.values[a, b]):>7d}{float(ds.paper_relative.values[a, b]):>9.1e}"
                         f"{int(ds.negative_count.values[a, b]):>6d}{float(ds.jacobian_asymmetry.values[a, b]):>8.3f}"
                         f"{float(ds.x_end.values[a, b].std()):>8.3f}")
    return "\n".join(lines)


def plot(ds: xr.Dataset, ax: Any = None):
    """Sorted |λ| / λmax per (image, prior) on a log scale, the thresholds dashed; on a new figure (``ax``
    omitted), beside it the first two images' crops and each prior's descent end point (RGB in colour).
    Returns the spectrum's axes."""
    import matplotlib.pyplot as plt
    from .. import plot as lplot
    if ax is None:
        n = ds.sizes["prior"] + 1
        fig = plt.figure(figsize=(6.5 + 1.6 * n, 4))
        grid = fig.add_gridspec(2, 2 + n, width_ratios=(4, 0.3) + (1,) * n)
        ax = fig.add_subplot(grid[:, 0])
        for r, im in enumerate(ds.image.values[:2]):
            lplot.image(ds.x_start.sel(image=im), fig.add_subplot(grid[r, 2]), title=f"{im}: start")
            for j, p in enumerate(ds.prior.values):
                lplot.image(ds.x_end.sel(image=im, prior=p), fig.add_subplot(grid[r, 3 + j]), title=f"end: {p}")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for b, p in enumerate(ds.prior.values):
        for a, im in enumerate(ds.image.values):
            lam = ds.eigenvalues.values[a, b]
            r = np.abs(lam) / float(ds.lambda_max.values[a, b])
            ax.semilogy(np.arange(1, r.size + 1), np.maximum(r, 1e-12), color=colors[b % len(colors)], lw=1,
                        label=p if a == 0 else None, alpha=0.8)
    for t in ds.threshold.values:
        ax.axhline(t, color="gray", ls="--", lw=0.7)
    ax.set_xlabel("eigenvalue index (ascending λ)")
    ax.set_ylabel("|λ| / λmax")
    ax.set_title(f"Hessian of q at the descent end points (d = {ds.attrs['dimension']})")
    ax.legend(title="prior")
    return ax
