"""The measurements of one ``local-recovery`` case: the prior and x* (H), the continuation along the noise
ladder with its certificates and energy gaps (C1-C3), and the descents from perturbed starts (C4). Each takes
the case's configuration (a single prior, image and role of x*) and returns arrays; ``verdicts`` reads them."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import xarray as xr

from ... import certify, critical, data, descent
from ...posterior import BlindDeblur, Posterior
from ...priors import PriorSettings, make_prior
from ...priors.gmm import GMMPrior
from ...solvers import SolverOptions
from ..common import image_sources
from .verdicts import RETURN_TOL, SCORE_ONLY, verdict_c4

if TYPE_CHECKING:
    from . import Config

#: gradient tolerance of the local joint descent and of the certificate (per unknown scale of E)
POLISH_GTOL, CERT_GTOL = 1e-5, 1e-3
#: an x* whose pixel standard deviation is below this fraction of the image's is "almost flat": H then
#: holds in form only (the critical point is not an image like the one it came from)
FLAT_IMAGE = 0.25
#: sandbox images are this size (a whole-image GMM, d = size^2)
SANDBOX_SIZE = 12


def prior_and_image(cfg: Config, rng: np.random.Generator) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """The prior (float64), the start image, and the sandbox's closed forms."""
    if cfg.priors != ("sandbox",):
        (_, img), = image_sources(cfg.images, cfg.image_file, cfg.crop, color=cfg.color)
        settings = PriorSettings(s=cfg.s, dtype=torch.float64, device=cfg.device)
        return make_prior(cfg.priors[0], img.shape, settings), img, {}
    (name, img), = image_sources(cfg.images, cfg.image_file, SANDBOX_SIZE, color=cfg.color)
    held_out = data.COLOR_TEST if cfg.color else data.TEST
    others = [data.center_crop(data.load(n, color=cfg.color), SANDBOX_SIZE) for n in held_out if n != name]
    prior = GMMPrior.separated([img, *others], img.shape, rng=cfg.seed)
    cov = prior.covariances[0]
    closed = {"mode": img, "covariance": cov.numpy(),
              "q_eigenvalues": np.sort(1.0 / torch.linalg.eigvalsh(cov).numpy())}
    start = img + 0.02 * rng.standard_normal(img.shape)
    return prior, start, closed


def hypothesis(cfg: Config, prior: Any, x0: np.ndarray) -> tuple[torch.Tensor, dict[str, Any]]:
    """H: x* and the evidence that it is (or is not) a local minimiser of q."""
    x0t = torch.as_tensor(x0, dtype=torch.float64, device=cfg.device)
    if cfg.x_star == ("critical",):
        cp = critical.critical_point(prior, x0t, gtol=cfg.q_gtol, max_iter=cfg.q_max_iter)
    else:
        g = float(prior.grad(x0t[None])[0].norm())
        cp = {"x": x0t, "grad_norm": g, "grad_norm_start": g, "iterations": 0, "converged": g <= cfg.q_gtol,
              "method": "none (the image itself)"}
    scale = cfg.s ** 2 if cfg.priors != ("sandbox",) else None
    rep = critical.hessian_report(prior, cp["x"], k=6, scale=scale)
    x = cp["x"]
    h = critical.verdict_hypothesis(cp["grad_norm"], cfg.q_gtol, rep)
    if float(x.std()) < FLAT_IMAGE * float(x0t.std()):
        h += f"; in form only: x* is almost flat (pixel std {float(x.std()):.2g}, the image's {float(x0t.std()):.2g})"
    ev = {"h_verdict": h,
          "q_grad_norm": cp["grad_norm"], "q_grad_norm_start": cp["grad_norm_start"],
          "q_iterations": cp["iterations"], "q_method": cp["method"], "q_lambda_max": rep["lambda_max"],
          "q_paper_count": rep["paper_count"], "q_paper_relative": rep["paper_relative"],
          "q_negative_count": rep["negative_count"], "q_counts": rep["counts"].tolist(),
          "x_star_psnr_vs_image": float(10 * np.log10(1 / max(float(((x - x0t) ** 2).mean()), 1e-30))),
          "x_star_std": float(x.std()), "image_std": float(x0t.std())}
    return x, {**ev, "q_eigenvalues": rep["eigenvalues"], "q_eig_residuals": rep["residuals"]}


def local_point(post: Posterior, theta: float, x: torch.Tensor, energy: bool) -> dict[str, Any]:
    """The local minimiser from ``(theta, x)``: polish (+ Newton where the prior assembles its Hessian);
    a score-only prior keeps the start."""
    if not energy:
        return {"theta": np.array([theta]), "x": x, "grad_norm": np.nan}
    return certify.local_minimiser(post, np.array([[theta]]), x, gtol=POLISH_GTOL, newton_gtol=1e-8)


def energy_gap(post: Posterior, a: tuple[float, torch.Tensor], b: tuple[float, torch.Tensor]) -> float:
    """:math:`E(a) - E(b)` (the score's line integral for the prior term of a score-only prior)."""
    ta, xa = torch.tensor([[a[0]]], dtype=torch.float64, device=a[1].device), a[1]
    tb, xb = torch.tensor([[b[0]]], dtype=torch.float64, device=b[1].device), b[1]
    with torch.no_grad():
        data_a = post.data_term(ta, xa[None]) + post.kernel_term(ta)
        data_b = post.data_term(tb, xb[None]) + post.kernel_term(tb)
    return float(data_a - data_b) + post.prior_weight * descent.q_difference(post.prior, xb, xa)


def posterior(cfg: Config, prior: Any, fam: Any, clean: torch.Tensor, x_star: torch.Tensor, sigma: float,
              noise: torch.Tensor) -> Posterior:
    """The joint posterior of data ``clean + sigma * noise`` (level 0: noise-free, energy σ ``sigma_zero``)."""
    pb = BlindDeblur(clean + sigma * noise, fam, sigma if sigma > 0 else cfg.sigma_zero, x_true=x_star,
                     theta_true=[cfg.theta_true])
    return Posterior(pb, prior, prior_weight=cfg.weight)


def ladder(cfg: Config, prior: Any, fam: Any, clean: torch.Tensor, x_star: torch.Tensor, levels: np.ndarray,
           noises: torch.Tensor, ref: int) -> dict[str, Any]:
    r"""C1-C3: for each draw, the local minimiser continued along ``levels`` from :math:`(\theta^\star, x^\star)`
    (level 0, noise-free, is shared by every draw), its energy gap to the trivial pair, and, on draw 0, the
    certificates of both. ``keep``: the reference level's posterior and points, the start of C4."""
    energy = critical.has_energy(prior)
    solver = SolverOptions()
    th_star = torch.tensor([[cfg.theta_true]], dtype=torch.float64, device=x_star.device)
    L, n = len(levels), cfg.n_draws
    th_hat, x_rmse, gap = (np.full((L, n), np.nan) for _ in range(3))
    cert = {k: np.full(L, np.nan) for k in ("cert_grad_norm", "cert_eig_min", "cert_eig_residual")}
    cert_v, triv_v = [""] * L, [""] * L
    keep: dict[str, Any] = {}
    th0_level0, x0_level0 = cfg.theta_true, x_star          # level 0's point (noise-free: shared by every draw)
    for d in range(n):
        th, x = cfg.theta_true, x_star
        for i, sig in enumerate(levels):
            if sig == 0 and d > 0:                 # noise-free data: every draw is draw 0
                th_hat[i, d], x_rmse[i, d], gap[i, d] = th_hat[i, 0], x_rmse[i, 0], gap[i, 0]
                th, x = th0_level0, x0_level0
                continue
            post = posterior(cfg, prior, fam, clean, x_star, float(sig), noises[d])
            if energy or sig == 0:
                pt = local_point(post, th, x, energy)
                th, x = float(pt["theta"][0]), pt["x"]
            else:                          # a score: the profile's point at theta*, from x*
                x = post.argmin_x(th_star, x_star[None], solver, energies=False)[0][0]
            th_hat[i, d], x_rmse[i, d] = th, float(((x - x_star) ** 2).mean().sqrt())
            if sig == 0:
                th0_level0, x0_level0 = th, x
            xd, _, _ = post.argmin_x(torch.zeros(1, 1, dtype=torch.float64, device=x_star.device),
                                     post.default_start()[None], solver, energies=False)
            gap[i, d] = energy_gap(post, (0.0, xd[0]), (th, x))
            if d > 0:
                continue
            if energy and pt.get("left_box"):
                cert_v[i] = "not a minimiser nearby (the local descent left its box)"
            elif energy or sig == 0:
                ce = certify.certificate(post, np.array([[th]]), x, k=cfg.certify_k, gtol=CERT_GTOL)
                cert_v[i] = ce["verdict"]
                cert["cert_grad_norm"][i], cert["cert_eig_min"][i] = ce["grad_norm"], ce["eigenvalues"][0]
                cert["cert_eig_residual"][i] = ce["residuals"][0]
            else:
                cert_v[i] = SCORE_ONLY
            if i == ref:
                triv_v[i] = certify.certificate(post, np.zeros((1, 1)), xd[0], k=cfg.certify_k,
                                                gtol=CERT_GTOL)["verdict"]
                keep = {"post": post, "theta": th, "x": x, "x_dirac": xd[0]}
    return {"theta_hat": th_hat, "x_hat_rmse": x_rmse, "energy_gap": gap, "cert": cert, "cert_verdict": cert_v,
            "trivial_certificate": triv_v[ref], "keep": keep}


def basin_descents(cfg: Config, keep: dict[str, Any], rng: np.random.Generator, progress: bool) -> xr.Dataset:
    """C4: alternating descents from perturbations of the certified point, from (δ, y) and from random kernels."""
    post, th, x, xd = keep["post"], keep["theta"], keep["x"], keep["x_dirac"]
    radii = np.array(cfg.radii)
    dist = float((x - xd).norm())
    thetas, xs, labels = [], [], []
    for r, j in itertools.product(radii, range(cfg.n_directions)):
        v = torch.as_tensor(rng.standard_normal(x.shape), device=x.device)
        thetas.append([max(0.0, th + r * cfg.theta_true * (1 if j % 2 == 0 else -1))])
        xs.append(x + r * dist * v / v.norm())
        labels.append(f"r={r:g}/{j}")
    th0, x0, extra = descent.initialisations(post, radii=(), n_random=2, rng=cfg.seed)
    ds = descent.descend(post, torch.cat([torch.tensor(thetas, dtype=torch.float64, device=x.device), th0]),
                         torch.cat([torch.stack(xs), x0]), labels=labels + extra, n_outer=cfg.n_outer,
                         progress=progress)
    end = ds.theta_path.isel(step=-1, param=0).values
    m = len(labels)
    ret = (np.abs(end[:m] - th) <= RETURN_TOL * cfg.theta_true).reshape(len(radii), cfg.n_directions)
    out = xr.Dataset({"returned": (("radius", "direction"), ret),
                      "theta_end": (("radius", "direction"), end[:m].reshape(len(radii), cfg.n_directions)),
                      "start_theta_end": ("start", end[m:]), "start_end_class": ("start", ds.end_class.values[m:])},
                     coords={"radius": radii, "direction": np.arange(cfg.n_directions), "start": extra})
    out.attrs["verdict"] = verdict_c4(radii, ret, extra, list(ds.end_class.values[m:]))
    return out


def sandbox_gap(cov: np.ndarray, y: np.ndarray, mu: np.ndarray, sigma: float) -> float:
    r"""Level 0 of the sandbox in closed form (the component of :math:`\mu` alone): :math:`y = h^\star \star \mu`,
    :math:`\min_x E(0, x) - E(\theta^\star, \mu) = \tfrac12 (y - \mu)^\top (\Sigma + \sigma^2 I)^{-1} (y - \mu)`."""
    r = (y - mu).ravel()
    return float(0.5 * r @ np.linalg.solve(cov + sigma ** 2 * np.eye(r.size), r))
