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

Prior ``sandbox``: an equal-weight Gaussian mixture of well-separated components (``GMMPrior.separated``)
whose means are the held-out images, so :math:`x^\star` (the mode) and :math:`\nabla^2 q(x^\star) =
\Sigma^{-1}` are known in closed form; the study stores the closed forms beside the pipeline's values
(``closed_*``) and ``tests/test_local_recovery.py`` checks they agree. Score-only priors have no energy to
polish: their C2 is the certificate at :math:`(\theta^\star, x^\star)` at level 0 and C3 is ``n/a``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import xarray as xr

from .. import certify, critical, data, descent, io, kernels, scan
from .._checks import (
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
from ..posterior import BlindDeblur, Posterior
from ..priors import PriorSettings, make_prior
from ..priors.gmm import GMMPrior
from ..solvers import SolverOptions
from .common import (
    FIRST,
    at_most,
    first,
    image_field,
    image_sources,
    quick_resolved,
    single_case,
)

NAME = "local-recovery"
SUMMARY = "the theorem under its hypothesis: x* a critical point of q, then C1-C4 each certified"
PRIORS = ("gs", "tweedie", "patch-gmm", "gaussian", "sparse", "sandbox")
ROLES = ("critical", "natural")
#: a level's minimiser with theta below this fraction of theta* has merged into the trivial basin
MERGED = 0.1
#: a descent returned to the certified minimiser when it ends within this fraction of theta* of it
RETURN_TOL = 0.05
#: energies closer than this (nats) are a tie in C1 (the solves stop far below it)
GAP_TOL = 1e-2
#: gradient tolerance of the local joint descent and of the certificate (per unknown scale of E)
POLISH_GTOL, CERT_GTOL = 1e-5, 1e-3
#: an x* whose pixel standard deviation is below this fraction of the image's is "almost flat": H then
#: holds in form only (the critical point is not an image like the one it came from)
FLAT_IMAGE = 0.25
#: sandbox images are this size (a whole-image GMM, d = size^2)
SANDBOX_SIZE = 12

QUICK = {"crop": at_most(16), "priors": FIRST, "images": FIRST, "x_star": FIRST, "noise_levels": first(2),
         "n_draws": 1, "radii": first(2), "n_directions": 1, "n_outer": at_most(15), "q_max_iter": at_most(400)}


@dataclass
class Config:
    """Options of ``local-recovery`` (``landscape run local-recovery --help``)."""

    priors: tuple[str, ...] = option(("gs", "sandbox"),
                                     "comma-separated: " + ", ".join(PRIORS) + " (or your prior's spec)",
                                     prior_names(PRIORS))
    images: tuple[str, ...] = option(("camera",), "held-out image names, comma-separated", subset_of(data.TEST))
    image_file: tuple[str, ...] = option((), "your own grayscale image file(s), comma-separated; replace --images",
                                         files_or_empty("an image file"))
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
    quick: bool = option(False, "one prior, one image, 16x16, 2 levels, 1 draw (< 60 s)", flag())

    def resolved(self) -> "Config":
        c = quick_resolved(self, QUICK)
        if c.kernel_size % 2 == 0 or c.kernel_size > min(c.crop, SANDBOX_SIZE if "sandbox" in c.priors
                                                           else c.crop):
            raise InputError("kernel_size", "an odd size no larger than the image (12 with the sandbox)", c.kernel_size)
        return c


def cases(config: Config) -> list[Config]:
    """One configuration per (prior, image, role of x*); the sandbox has no ``natural`` role (its x* is a
    mean, the image itself)."""
    cfg = config.resolved()
    names = [n for n, _ in image_sources(cfg.images, cfg.image_file, SANDBOX_SIZE)]
    return [replace(cfg, priors=(p,), x_star=(r,), **{image_field(cfg): (n,)})
            for p, n, r in itertools.product(cfg.priors, names, cfg.x_star)
            if not (p == "sandbox" and r == "natural")]


# -- the case's pieces ---------------------------------------------------------------------------

def _prior_and_image(cfg: Config, rng: np.random.Generator) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """The prior (float64), the start image, and the sandbox's closed forms."""
    if cfg.priors != ("sandbox",):
        (_, img), = image_sources(cfg.images, cfg.image_file, cfg.crop)
        return make_prior(cfg.priors[0], img.shape, PriorSettings(s=cfg.s, dtype=torch.float64)), img, {}
    (name, img), = image_sources(cfg.images, cfg.image_file, SANDBOX_SIZE)
    others = [data.center_crop(data.load(n), SANDBOX_SIZE) for n in data.TEST if n != name]
    prior = GMMPrior.separated([img, *others], img.shape, rng=cfg.seed)
    cov = prior.covariances[0]
    closed = {"mode": img, "covariance": cov.numpy(),
              "q_eigenvalues": np.sort(1.0 / torch.linalg.eigvalsh(cov).numpy())}
    start = img + 0.02 * rng.standard_normal(img.shape)
    return prior, start, closed


def hypothesis(cfg: Config, prior: Any, x0: np.ndarray) -> tuple[torch.Tensor, dict[str, Any]]:
    """H: x* and the evidence that it is (or is not) a local minimiser of q."""
    x0t = torch.as_tensor(x0, dtype=torch.float64)
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
    ta, xa = torch.tensor([[a[0]]], dtype=torch.float64), a[1]
    tb, xb = torch.tensor([[b[0]]], dtype=torch.float64), b[1]
    with torch.no_grad():
        data_a = post.data_term(ta, xa[None]) + post.kernel_term(ta)
        data_b = post.data_term(tb, xb[None]) + post.kernel_term(tb)
    return float(data_a - data_b) + post.prior_weight * descent.q_difference(post.prior, xb, xa)


def _posterior(cfg: Config, prior: Any, fam: Any, clean: torch.Tensor, x_star: torch.Tensor, sigma: float,
               noise: torch.Tensor) -> Posterior:
    pb = BlindDeblur(clean + sigma * noise, fam, sigma if sigma > 0 else cfg.sigma_zero, x_true=x_star,
                     theta_true=[cfg.theta_true])
    return Posterior(pb, prior, prior_weight=cfg.weight)


def verdict_c3(levels: np.ndarray, verdicts: list[str], th: np.ndarray, theta_true: float) -> tuple[str, float]:
    r"""C3 from draw 0's branch: the first level whose point is not a certified minimiser or has merged into
    the trivial basin; the fitted slope of :math:`\hat\theta(\sigma) - \theta^\star`."""
    if verdicts[0].startswith("n/a") or (len(verdicts) > 1 and verdicts[1].startswith("n/a")):
        return "n/a (score-only prior: no energy to descend)", np.nan
    ok = [v.startswith("certified") and t > MERGED * theta_true for v, t in zip(verdicts, th)]
    fin = np.isfinite(th)
    slope = float(np.polyfit(levels[fin], th[fin] - theta_true, 1)[0]) if fin.sum() >= 2 else np.nan
    if all(ok):
        return f"holds (certified branch to σ = {levels[-1]:g}, dθ/dσ = {slope:.3g})", slope
    i = ok.index(False)
    why = "merged into the trivial basin" if th[i] <= MERGED * theta_true else verdicts[i]
    return f"{'undecided' if why.startswith('undecided') else 'fails'} at σ = {levels[i]:g} ({why})", slope


def verdict_c1(gap: np.ndarray, levels: np.ndarray, th: np.ndarray, theta_true: float, cert: list[str]) -> str:
    """C1 from draw 0, level by level: is :math:`E` lower at the trivial pair than at the local minimiser (by
    more than :data:`GAP_TOL`)? Levels whose local point is not a certified minimiser, or has merged into
    the trivial basin, are said so (a score-only prior's points cannot be certified: every level counts)."""
    merged = th <= MERGED * theta_true
    scored = np.array([v.startswith("n/a") for v in cert])
    none = ~merged & ~scored & ~np.array([v.startswith("certified") for v in cert])
    valid = ~merged & ~none
    parts = []
    for word, sel in (("holds", (gap < -GAP_TOL) & valid), ("fails", (gap > GAP_TOL) & valid),
                      ("ties", (np.abs(gap) <= GAP_TOL) & valid), ("no certified local minimiser", none),
                      ("merged", merged)):
        if sel.any():
            parts.append(f"{word} at σ = " + ", ".join(f"{v:g}" for v in levels[sel]))
    first = [f"E(δ) − E(local) at σ = {v:g}: {g:+.4g} nats" for v, g, ok in zip(levels, gap, valid) if ok][:1]
    return "; ".join(parts + first)


def conclusions(part: xr.Dataset, theta_true: float) -> dict[str, Any]:
    """C1, C2, C3 of one case from its stored arrays (draw 0), and C4's caveat when its reference point has
    merged into the trivial basin."""
    levels = part.noise_level.values
    th = part.theta_hat.values[:, 0]
    cert = [str(v) for v in part.cert_verdict.values]
    c3, slope = verdict_c3(levels, cert, th, theta_true)
    c2 = cert[0] if cert[0].startswith(("certified", "undecided")) else f"fails ({cert[0]})"
    ref = int(np.argmin(np.abs(levels - part.attrs["evidence"]["reference_noise"])))
    c4 = part.attrs["evidence"]["c4_verdict"]
    if th[ref] <= MERGED * theta_true and not c4.startswith("("):
        c4 = f"(the point at σ = {levels[ref]:g} has merged into the trivial basin) " + c4
    return {"c4_verdict": c4, "c1_verdict": verdict_c1(part.energy_gap_dirac_minus_local.values[:, 0], levels, th, theta_true, cert),
            "c2_verdict": c2, "c3_verdict": c3, "c3_slope": slope}


def run_part(config: Config, progress: bool = True) -> xr.Dataset:
    """One case of :func:`cases`: H, then C1-C4 (see the module docstring)."""
    cfg = config.resolved()
    single_case(cfg, ("priors", image_field(cfg), "x_star"))
    rng = np.random.default_rng(cfg.seed)
    t_start = time.perf_counter()
    prior, x0, closed = _prior_and_image(cfg, rng)
    x_star, ev = hypothesis(cfg, prior, x0)
    fam = kernels.get("gaussian", cfg.kernel_size)
    th_star = torch.tensor([[cfg.theta_true]], dtype=torch.float64)
    clean = BlindDeblur(x_star, fam, 1.0).blur(th_star)(x_star[None])[0]
    levels = np.array(sorted(cfg.noise_levels))
    ref = int(np.argmin(np.abs(levels - cfg.reference_noise)))
    noises = torch.as_tensor(rng.standard_normal((cfg.n_draws, *x_star.shape)))
    energy = critical.has_energy(prior)
    solver = SolverOptions()
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
            post = _posterior(cfg, prior, fam, clean, x_star, float(sig), noises[d])
            if energy or sig == 0:
                pt = local_point(post, th, x, energy)
                th, x = float(pt["theta"][0]), pt["x"]
            else:                          # a score: the profile's point at theta*, from x*
                x = post.argmin_x(th_star, x_star[None], solver, energies=False)[0][0]
            th_hat[i, d], x_rmse[i, d] = th, float(((x - x_star) ** 2).mean().sqrt())
            if sig == 0:
                th0_level0, x0_level0 = th, x
            xd, _, _ = post.argmin_x(torch.zeros(1, 1, dtype=torch.float64), post.default_start()[None], solver,
                                     energies=False)
            gap[i, d] = energy_gap(post, (0.0, xd[0]), (th, x))
            if d == 0:
                if energy and pt.get("left_box"):
                    cert_v[i] = "not a minimiser nearby (the local descent left its box)"
                elif energy or sig == 0:
                    ce = certify.certificate(post, np.array([[th]]), x, k=cfg.certify_k, gtol=CERT_GTOL)
                    cert_v[i] = ce["verdict"]
                    cert["cert_grad_norm"][i], cert["cert_eig_min"][i] = ce["grad_norm"], ce["eigenvalues"][0]
                    cert["cert_eig_residual"][i] = ce["residuals"][0]
                else:
                    cert_v[i] = "n/a (score-only prior: no energy to descend)"
                if i == ref:
                    triv_v[i] = certify.certificate(post, np.zeros((1, 1)), xd[0], k=cfg.certify_k,
                                                    gtol=CERT_GTOL)["verdict"]
                    keep = {"post": post, "theta": th, "x": x, "x_dirac": xd[0]}
    seg_t = np.linspace(0, 1, 21)
    seg = scan.segment(keep["post"], [0.0], keep["x_dirac"], [keep["theta"]], keep["x"], seg_t, solver=solver)
    basin = basin_descents(cfg, keep, rng, progress)
    if not cert_v[ref].startswith("certified"):
        basin.attrs["verdict"] = f"(the point at σ = {levels[ref]:g} is not certified: {cert_v[ref]}) " + \
            basin.attrs["verdict"]
    ev.update(c4_verdict=basin.attrs["verdict"], trivial_certificate=triv_v[ref], reference_noise=float(levels[ref]), seconds=time.perf_counter() - t_start)
    q_eig, q_res = ev.pop("q_eigenvalues"), ev.pop("q_eig_residuals")
    ds = xr.Dataset({
        "x_start": (("row", "col"), x0), "x_star": (("row", "col"), x_star.numpy()),
        "q_eigenvalues": ("k", q_eig, {"long_name": "smallest eigenvalues of the Hessian of q at x*"}),
        "q_eig_residuals": ("k", q_res, {"long_name": "||H v - lambda v|| (their error bounds)"}),
        "theta_hat": (("noise_level", "draw"), th_hat, {"long_name": "local minimiser's theta (continuation)"}),
        "x_hat_rmse": (("noise_level", "draw"), x_rmse, {"long_name": "RMS of x_hat - x*"}),
        "energy_gap_dirac_minus_local": (("noise_level", "draw"), gap,
                                         io.energy_attrs("E(delta, x_delta) - E(theta_hat, x_hat)")),
        **{k: ("noise_level", v) for k, v in cert.items()},
        "cert_verdict": ("noise_level", np.array(cert_v, dtype=str)),
        "segment_energy": ("t", seg.energy.values, io.energy_attrs("E on the straight segment (delta, x_delta) "
                                                                   "-> (theta_hat, x_hat)")),
        "segment_profile_energy": ("t", seg.profile_energy.values, io.energy_attrs("min_x E along the segment")),
        "basin_returned": (("radius", "direction"), basin.returned.values),
        "basin_theta_end": (("radius", "direction"), basin.theta_end.values),
        "start_theta_end": ("start", basin.start_theta_end.values),
        "start_end_class": ("start", basin.start_end_class.values),
    }, coords={"noise_level": levels, "draw": np.arange(n), "k": np.arange(len(q_eig)), "t": seg_t,
               "radius": basin.radius.values, "direction": basin.direction.values, "start": basin.start.values})
    for key, v in closed.items():
        if key == "q_eigenvalues":
            ds["closed_q_eigenvalues"] = ("k", v[:len(q_eig)], {"long_name": "eigenvalues of Sigma^-1 (closed form)"})
        elif key == "mode":
            ds["closed_mode"] = (("row", "col"), v)
    if closed:
        ds["closed_gap_level0"] = ((), sandbox_gap(closed["covariance"], clean.numpy(), closed["mode"], cfg.sigma_zero),
                                   io.energy_attrs("closed form of E(delta, x_delta) - E(theta*, x*) at level 0"))
    ds.attrs["evidence"] = ev
    ds.attrs["case"] = {"prior": cfg.priors[0], "image": (cfg.image_file or cfg.images)[0], "x_star": cfg.x_star[0]}
    return ds


def sandbox_gap(cov: np.ndarray, y: np.ndarray, mu: np.ndarray, sigma: float) -> float:
    r"""Level 0 of the sandbox in closed form (the component of :math:`\mu` alone): :math:`y = h^\star \star \mu`,
    :math:`\min_x E(0, x) - E(\theta^\star, \mu) = \tfrac12 (y - \mu)^\top (\Sigma + \sigma^2 I)^{-1} (y - \mu)`."""
    r = (y - mu).ravel()
    return float(0.5 * r @ np.linalg.solve(cov + sigma ** 2 * np.eye(r.size), r))


def basin_descents(cfg: Config, keep: dict[str, Any], rng: np.random.Generator, progress: bool) -> xr.Dataset:
    """C4: alternating descents from perturbations of the certified point, from (δ, y) and from random kernels."""
    post, th, x, xd = keep["post"], keep["theta"], keep["x"], keep["x_dirac"]
    radii = np.array(cfg.radii)
    dist = float((x - xd).norm())
    thetas, xs, labels = [], [], []
    for r, j in itertools.product(radii, range(cfg.n_directions)):
        v = torch.as_tensor(rng.standard_normal(x.shape))
        thetas.append([max(0.0, th + r * cfg.theta_true * (1 if j % 2 == 0 else -1))])
        xs.append(x + r * dist * v / v.norm())
        labels.append(f"r={r:g}/{j}")
    th0, x0, extra = descent.initialisations(post, radii=(), n_random=2, rng=cfg.seed)
    ds = descent.descend(post, torch.cat([torch.tensor(thetas, dtype=torch.float64), th0]),
                         torch.cat([torch.stack(xs), x0]), labels=labels + extra, n_outer=cfg.n_outer,
                         progress=progress)
    end = ds.theta_path.isel(step=-1, param=0).values
    m = len(labels)
    ret = np.abs(end[:m] - th) <= RETURN_TOL * cfg.theta_true
    out = xr.Dataset({"returned": (("radius", "direction"), ret.reshape(len(radii), cfg.n_directions)),
                      "theta_end": (("radius", "direction"), end[:m].reshape(len(radii), cfg.n_directions)),
                      "start_theta_end": ("start", end[m:]), "start_end_class": ("start", ds.end_class.values[m:])},
                     coords={"radius": radii, "direction": np.arange(cfg.n_directions), "start": extra})
    frac = ret.reshape(len(radii), -1).mean(1)
    full = list(itertools.takewhile(lambda rf: rf[1] == 1, zip(radii, frac)))     # every radius up to r returns
    ends = ", ".join(f"{s}: {c}" for s, c in zip(extra, ds.end_class.values[m:]))
    out.attrs["verdict"] = (f"return fraction {', '.join(f'{f:.2g}' for f in frac)} at r = "
                            f"{', '.join(f'{r:g}' for r in radii)}; basin radius ≥ {full[-1][0] if full else 0:g}; "
                            f"from {ends}")
    return out


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
    ds = ds.assign_coords(case=[f"{m['prior']}/{m['image']}/{m['x_star']}" for m in meta],
                          **{f"case_{k}": ("case", [m[k] for m in meta]) for k in ("prior", "image", "x_star")})
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


def summary(ds: xr.Dataset) -> str:
    lines = [f"{NAME}: Gaussian blur θ* = {ds.attrs['theta_true_value']:g}, levels σ = "
             + ", ".join(f"{v:g}" for v in ds.noise_level.values) + f" (level 0: noise-free, energy σ = "
             f"{ds.attrs['sigma_zero']:g})"]
    for i, c in enumerate(ds.case.values):
        g0, g = float(ds.q_grad_norm_start[i]), float(ds.q_grad_norm[i])
        lines += [f"  {c}: |∇q| {g0:.3g} -> {g:.3g} ({ds.q_method.values[i]}), x* vs image "
                  f"{float(ds.x_star_psnr_vs_image[i]):.1f} dB, std {float(ds.x_star_std[i]):.3g} (image "
                  f"{float(ds.image_std[i]):.3g}); #s²|λ|<=1e-5: {int(ds.q_paper_count[i])}",
                  f"    H  {ds.h_verdict.values[i]}", f"    C1 {ds.c1_verdict.values[i]}",
                  f"    C2 {ds.c2_verdict.values[i]}", f"    C3 {ds.c3_verdict.values[i]}",
                  f"    C4 {ds.c4_verdict.values[i]}"]
    return "\n".join(lines)


def plot(ds: xr.Dataset, ax: Any = None):
    """Three panels: θ̂(σ) per case (filled: certified), the C4 return fraction against r, and the energy
    along the segment from the trivial pair to the local minimiser. ``ax``: three axes. Returns them."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    a0, a1, a2 = ax
    lv = ds.noise_level.values
    for i, c in enumerate(ds.case.values):
        th = ds.theta_hat.values[i, :, 0]
        ok = np.char.startswith(ds.cert_verdict.values[i].astype(str), "certified")
        line, = a0.plot(lv, th, "-", label=c)
        a0.plot(lv[ok], th[ok], "o", color=line.get_color())
        a0.plot(lv[~ok], th[~ok], "x", color=line.get_color())
        a1.plot(ds.radius.values, ds.basin_returned.values[i].mean(-1), "o-", color=line.get_color())
        e = ds.segment_profile_energy.values[i]
        a2.plot(ds.t.values, e - e[-1], color=line.get_color())
    a0.axhline(float(ds.attrs["theta_true_value"]), color="gray", ls="--", lw=0.8)
    a0.set(xlabel="noise σ", ylabel="θ̂ (o certified, x not)", title="C3: the local minimiser along σ")
    a0.legend(fontsize=7)
    a1.set(xlabel="perturbation radius r", ylabel="fraction returned", ylim=(-0.05, 1.05), title="C4: basin")
    a2.set(xlabel="t: (δ, x_δ) → (θ̂, x̂)", ylabel="min_x E − E(θ̂, x̂) (nats)", title="C1: energy along the segment")
    return ax
