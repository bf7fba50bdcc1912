r"""Study ``map-vs-marginal``: Levin et al. (2009)'s thesis, in closed form and by optimisation.

On a real image blurred by :math:`h(\theta^\star)` with noise :math:`\sigma`, compare over a
grid of :math:`\theta`

* the joint-MAP profile :math:`E^*(\theta) = \min_x E(\theta, x)` (generic batched solver,
  and the closed form for the Gaussian prior), and
* the marginal :math:`-\log p(y \mid \theta)` (exact for Gaussian and whole-image GMM priors).

Expected: the profile is minimal at the Dirac (:math:`\theta = 0`), the marginal near
:math:`\theta^\star`. On a real image the stationary Gaussian prior is a mismatched model, so
the marginal's minimiser is biased; with ``image="prior-sample"`` (an image drawn from the prior
itself) it is not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from .. import data, io, marginal, scan
from .._checks import Check, InputError, flag, grid_points, integer, one_of, option
from ..posterior import BlindDeblur, Posterior
from ..priors import GaussianPrior, PriorSettings, make_prior
from .common import ProblemConfig, apply_quick, device_option, family_and_truth, load_image, theta_grid

NAME = "map-vs-marginal"
SUMMARY = "joint-MAP profile E*(theta) vs marginal -log p(y|theta): the Dirac vs the true blur"
PRIORS = ("gaussian", "gmm")


#: ``--quick``: a coarse grid
QUICK = {"n_theta": lambda v, c: min(v, 31 if c.prior == "gaussian" else 16)}

@dataclass
class Config(ProblemConfig):
    """Options of ``map-vs-marginal`` (``landscape run map-vs-marginal --help``)."""

    image: str = option("camera", "image name (data.names()) or 'prior-sample'",
                        one_of(data.names() + ("prior-sample",)))
    crop: int = option(0, "central crop size (0: 128 for gaussian, 16 for gmm)",
                       Check("0 (the default size) or an integer >= 8",
                             lambda v: isinstance(v, int) and (v == 0 or v >= 8), (-4, 3)))
    n_theta: int = option(61, "grid points from 0 to theta_max", grid_points(3))
    prior: str = option("gaussian", "gaussian (stationary) or gmm (whole crops)", one_of(PRIORS))
    spectrum: str = option("power-law", "Gaussian spectrum model: power-law or empirical",
                           one_of(("power-law", "empirical")))
    gmm_components: int = option(10, "GMM components", integer(1))
    gmm_samples: int = option(10000, "training crops for the GMM fit", integer(1))
    seed: int = option(0, "seed of the noise (and of prior samples)", integer(0))
    device: str = device_option("the problem, the profile and the marginal likelihood")
    quick: bool = option(False, "a coarse grid (< 60 s)", flag())

    def resolved(self) -> "Config":
        """Defaults filled in and ``quick`` applied; validated."""
        c = Config(**asdict(self))
        c.validate_problem()
        if c.prior == "gmm" and c.gmm_samples < c.gmm_components:
            raise InputError("gmm_samples", f"at least gmm_components ({c.gmm_components}) crops", c.gmm_samples)
        if c.crop == 0:
            c.crop = 128 if c.prior == "gaussian" else 16
        if c.quick:
            c = apply_quick(c, QUICK)[0]
        return c


def run(config: Config | None = None, *, progress: bool = True) -> xr.Dataset:
    """Run the study; returns its Dataset (pure function of ``config``)."""
    cfg = (config or Config()).resolved()
    torch_dtype = torch.float64
    fam, theta_true, grid_max = family_and_truth(cfg)
    shape = (3, cfg.crop, cfg.crop) if cfg.color else (cfg.crop, cfg.crop)
    prior: Any = make_prior(cfg.prior, shape, PriorSettings(spectrum=cfg.spectrum, seed=cfg.seed, progress=progress,
                                                           gmm_components=cfg.gmm_components,
                                                           gmm_samples=cfg.gmm_samples, device=cfg.device))
    image = load_image(cfg, {"prior-sample": lambda: io.host(prior.sample(1, rng=cfg.seed + 1)[0])})
    if image.shape != shape:
        raise InputError("image_file", f"an image at least {shape}", image.shape)
    problem = BlindDeblur.synthetic(image, fam, theta_true, cfg.noise, rng=cfg.seed, dtype=torch_dtype,
                                    device=cfg.device)
    post = Posterior(problem, prior)

    grid = theta_grid(theta_true, grid_max, cfg.n_theta)
    g = grid[:, 0]
    ds = scan.profile(post, grid, progress=progress)
    ds["marginal_nll"] = ("theta", io.host(marginal.marginal_nll(problem, prior, grid, progress=progress)),
                          io.energy_attrs("marginal -log p(y | theta)"))
    attrs: dict[str, Any] = {}
    if isinstance(prior, GaussianPrior):
        cf = io.host(marginal.profile_closed_form(post, grid))
        ds["profile_energy_closed_form"] = ("theta", cf, io.energy_attrs("closed-form profile energy"))
        ds["prior_spectrum"] = (("component", "row", "col")[-prior.spectrum.ndim:], io.host(prior.spectrum), {
            "long_name": "prior power spectrum P on the full FFT grid (per colour component for colour)",
            "convention": "P = E|fft2(x - mean, norm='ortho')|^2 (unitary DFT); x ~ N(mean, F* diag(P) F)",
            "prior_mean": prior.mean})
        if prior.basis is not None:
            ds["prior_color_basis"] = (("channel", "component"), io.host(prior.basis),
                                       {"long_name": "orthonormal colour basis A (columns: the components)"})
        rel = np.abs(ds.profile_energy.values - cf) / np.abs(cf)
        attrs["closed_form_max_rel_diff"] = float(rel.max())
    else:
        ds["gmm_weights"] = ("component", io.host(prior.weights))
        ds["gmm_means"] = (("component", "pixel"), io.host(prior.means))
        ds["gmm_covariances"] = (("component", "pixel", "pixel2"), io.host(prior.covariances))
    p0, p0r = scan.grid_argmin(ds.profile_energy.values, g)
    m0, m0r = scan.grid_argmin(ds.marginal_nll.values, g)
    attrs.update({
        "argmin_profile": p0, "argmin_marginal": m0, "argmin_marginal_refined": m0r,
        "marginal_bias": m0r - float(theta_true[0]), "grid_step": float(g[1] - g[0]),
        "scanned_param": fam.param_names[0], "theta_true_value": float(theta_true[0]),
    })
    ds.attrs.update(io.provenance(NAME, asdict(cfg), prior_description=prior.describe(),
                                  kernel_description=fam.describe()))
    ds.attrs.update(attrs)
    return ds


def summary(ds: xr.Dataset) -> str:
    """A few lines for the terminal."""
    a = ds.attrs
    lines = [f"{NAME}: prior={a['prior']} family={a['kernel_family']} sigma={a['noise_sigma']:g} "
             f"theta*={a['theta_true_value']:g} ({a['scanned_param']})",
             f"  joint-MAP profile argmin : {a['argmin_profile']:.3f}",
             f"  marginal argmin          : {a['argmin_marginal']:.3f} (refined {a['argmin_marginal_refined']:.3f}, "
             f"bias {a['marginal_bias']:+.3f}, grid step {a['grid_step']:.3f})"]
    if "closed_form_max_rel_diff" in a:
        lines.append(f"  generic vs closed-form profile: max relative difference {a['closed_form_max_rel_diff']:.2e}")
    return "\n".join(lines)


def plot(ds: xr.Dataset, ax: Any = None):
    """Profile and marginal (each minus its minimum) against :math:`\\theta`, with
    :math:`\\theta^\\star` and both minimisers marked. Returns the axes."""
    from ..plot import get_ax
    ax = get_ax(ax, figsize=(6.4, 4.2))
    th = ds.theta.values if ds.theta.ndim == 1 and np.issubdtype(ds.theta.dtype, np.floating) \
        else ds.theta_values.isel(param=0).values
    prof = ds.profile_energy.values
    marg = ds.marginal_nll.values
    c1, c2 = "C0", "C3"
    ax.plot(th, prof - prof.min(), color=c1, label="joint MAP: $E^*(\\theta)-\\min$")
    if "profile_energy_closed_form" in ds:
        cf = ds.profile_energy_closed_form.values
        ax.plot(th, cf - cf.min(), ":", color="k", lw=1, label="closed form")
    ax.set_xlabel(f"{ds.attrs.get('scanned_param', 'theta')}")
    ax.set_ylabel("profile energy (nats, shifted)", color=c1)
    ax2 = ax.twinx()
    ax2.plot(th, marg - marg.min(), color=c2, label="$-\\log p(y|\\theta)-\\min$")
    ax2.set_ylabel("marginal NLL (nats, shifted)", color=c2)
    a = ds.attrs
    ax.axvline(a["theta_true_value"], color="0.4", ls="--", lw=1, label="$\\theta^\\star$")
    ip, im = int(np.argmin(prof)), int(np.argmin(marg))
    ax.plot(th[ip], 0, "o", color=c1, ms=8, label=f"MAP argmin {th[ip]:.2f}")
    ax2.plot(th[im], 0, "s", color=c2, ms=8, label=f"marginal argmin {th[im]:.2f}")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center")
    ax.set_title(f"{a['prior']} prior, {a['kernel_family']} blur, $\\sigma$={a['noise_sigma']:g}")
    return ax
