r"""Descents on the joint energy :math:`E(\theta, x)` from sets of initialisations.

Schemes (all batched over initialisations):

* ``"alternating"``: an x-step (``x_iters`` iterations of the inner solver, warm-started) then a
  :math:`\theta`-step (projected gradient with per-item backtracking on :math:`E(\cdot, x)`);
* ``"joint"``: one preconditioned gradient step in :math:`x` and one projected gradient step in
  :math:`\theta` per iteration, both from the same point;
* ``"pam"`` (free kernels; Perrone & Favaro 2014): as alternating, but the kernel step is
  :math:`h \leftarrow \max(h - \tau \nabla_h E, 0)` followed by the delayed normalisation
  :math:`h \leftarrow h / \sum h`, instead of the exact simplex projection.

Each end point is classified ``trivial`` (:math:`\|h - \delta\| \le \varepsilon`),
``near_truth`` (:math:`\|h - h^\star\| \le \varepsilon`) or ``other``, with
:math:`\varepsilon` = ``eps_rel`` :math:`\cdot \|h^\star - \delta\|` stored.

``q_difference``: :math:`q(x_1) - q(x_0)` for any prior (the score's line integral where :math:`q` is
not explicit). Descents on the prior alone, to its critical points, are ``critical.critical_point``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from ._checks import InputError, choice, positive
from .io import energy_attrs, host, image_dims, input_variables
from .kernels import Free, dirac
from .posterior import Posterior
from .priors.base import APPROXIMATE
from .solvers import SolverOptions, options

CLASSES = ("trivial", "near_truth", "other")


def initialisations(post: Posterior, *, radii: tuple[float, ...] = (0.1, 0.3), n_random: int = 2,
                    rng: Any = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    r"""Standard starting points ``(theta0 (n, p), x0 (n, H, W), labels)``:

    ``dirac``: :math:`(\delta, y)`; ``truth+r``: :math:`\theta^\star` moved by a relative radius
    :math:`r` in a random direction (projected on the domain) with :math:`x = x^\star`;
    ``random-i``: :math:`\theta` uniform in the domain (capped at twice :math:`\theta^\star`) with :math:`x = y`.
    """
    prob, fam = post.problem, post.problem.family
    dt, dev = prob.dtype, prob.device
    g = np.random.default_rng(rng)
    y0 = post.default_start()

    def tensor(v: Any) -> torch.Tensor:
        return torch.as_tensor(v, dtype=dt, device=dev)

    thetas, xs, labels = [fam.zero(dtype=dt, device=dev)], [y0], ["dirac"]
    if prob.theta_true is not None and prob.x_true is not None:
        ts = prob.theta_true.to(dt)
        scale = ts.abs().clamp_min(1e-3)
        for r in radii:
            u = tensor(g.standard_normal(fam.n_params))
            u = u / u.norm().clamp_min(1e-12)
            thetas.append(fam.project((ts + r * scale * u)[None])[0])
            xs.append(prob.x_true)
            labels.append(f"truth+{r:g}")
        hi = torch.minimum(tensor(fam.upper), 2 * scale + tensor(fam.lower))
    else:
        hi = tensor(fam.upper)
    lo = tensor(fam.lower)
    for i in range(n_random):
        if isinstance(fam, Free):
            th = fam.project(tensor(g.random(fam.n_params))[None] / fam.n_params)[0]
        else:
            th = lo + (hi - lo) * tensor(g.random(fam.n_params))
        thetas.append(th)
        xs.append(y0)
        labels.append(f"random-{i}")
    return torch.stack(thetas), torch.stack(xs), labels


def _theta_energy(post: Posterior, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return post.data_term(theta, x) + post.kernel_term(theta)


def theta_step(post: Posterior, theta: torch.Tensor, x: torch.Tensor, step: torch.Tensor, scheme: str = "alternating"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One projected-gradient step in theta per item, with backtracking; returns (theta, step)."""
    fam = post.problem.family
    th = theta.detach().requires_grad_(True)
    f0 = _theta_energy(post, th, x)
    (g,) = torch.autograd.grad(f0.sum(), th)
    f0 = f0.detach()
    th = th.detach()
    # no trial move longer than the domain's diameter: near a stationary kernel (tiny gradient)
    # every step is accepted, and an uncapped step would grow without bound
    diam = float(np.linalg.norm(np.minimum(np.subtract(fam.upper, fam.lower), 1e6)))
    step = torch.minimum(step, diam / g.norm(dim=1).clamp_min(1e-30))
    new, ok = th.clone(), torch.zeros(len(th), dtype=torch.bool, device=th.device)
    for _ in range(30):
        cand = th - step[:, None] * g
        if scheme == "pam" and isinstance(fam, Free):
            d = dirac(fam.size, dtype=th.dtype, device=th.device).flatten()
            h = torch.clamp(cand + d, min=0)
            cand = h / h.sum(1, keepdim=True).clamp_min(1e-30) - d
        else:
            cand = fam.project(cand)
        f1 = _theta_energy(post, cand, x)
        good = (f1 <= f0 + 1e-4 * (g * (cand - th)).sum(1)) & ~ok
        new[good], ok = cand[good], ok | good
        if ok.all():
            break
        step = torch.where(ok, step, step / 2)
    step = torch.where(ok, step * 1.5, step)
    return new, step


def descend(post: Posterior, theta0: Any, x0: torch.Tensor, *, labels: list[str] | None = None,
            scheme: str = "alternating", n_outer: int = 40, x_iters: int = 5, record_every: int = 5,
            eps_rel: float = 0.25, solver: SolverOptions | None = None, progress: bool = True) -> xr.Dataset:
    r"""Run a descent from each initialisation; trajectories over dims ``(init, step)``.

    Parameters
    ----------
    post : Posterior
    theta0 : array ``(n, p)``
        Initial kernel parameters, one per initialisation.
    x0 : Tensor ``(n, H, W)``
        Initial images.
    labels : list of str, optional
        Names of the initialisations (coordinate ``init``).
    scheme : {"alternating", "joint", "pam"}
        ``alternating``: ``x_iters`` inner iterations in x, then a projected, backtracked
        gradient step in theta; ``joint``: one HQS step in x and one in theta; ``pam``: as
        alternating, with delayed kernel normalisation (Perrone & Favaro 2014).
    n_outer : int
        Outer iterations.
    x_iters : int
        Inner iterations per outer step (the solver's ``max_iter``; 1 for ``joint``).
    record_every : int
        Energies are recorded every this many outer steps (and at the end).
    eps_rel : float
        End-point classification radius, relative to :math:`\|h^\star - \delta\|`.
    solver : solvers.SolverOptions, optional
        Inner solver options (its ``max_iter`` is set from ``x_iters``).
    progress : bool

    Returns
    -------
    xarray.Dataset
        Kernel error, distance to the Dirac, PSNR and theta at every step; energies at the
        recorded steps; ``x_final``; ``end_class`` (``trivial``, ``near_truth`` or ``other``).
    """
    choice("scheme", scheme, ("alternating", "joint", "pam"))
    for name, v in (("n_outer", n_outer), ("x_iters", x_iters), ("record_every", record_every)):
        if not (isinstance(v, (int, np.integer)) and v >= 1):
            raise InputError(name, "an integer >= 1", v)
    positive("eps_rel", eps_rel)
    prob, fam = post.problem, post.problem.family
    th = fam.check(theta0, dtype=prob.dtype, device=prob.device)
    x = x0.to(dtype=prob.dtype, device=prob.device).clone()
    n = th.shape[0]
    labels = labels or [f"init-{i}" for i in range(n)]
    h_star = prob.kernel_true
    d0 = dirac(fam.size, dtype=prob.dtype, device=prob.device)
    step = torch.ones(n, dtype=prob.dtype, device=prob.device)
    rec: dict[str, list] = {k: [] for k in ("theta", "kernel_error", "dirac_distance", "psnr", "t", "u")}
    y_img = post.default_start()
    kdir = (h_star - d0).flatten() if h_star is not None else None
    xdir = (prob.x_true - y_img).flatten() if prob.x_true is not None and prob.x_true.shape == y_img.shape else None
    e_rec, e_steps = [], []
    # each outer step runs at most x_iters inner iterations (one, for the joint scheme)
    solver = options(solver, max_iter=1 if scheme == "joint" else x_iters)

    def record(k: int, x: torch.Tensor, th: torch.Tensor):
        h = fam(th)
        rec["theta"].append(host(th).copy())
        rec["dirac_distance"].append(host((h - d0).flatten(1).norm(dim=1)))
        rec["kernel_error"].append(host((h - h_star).flatten(1).norm(dim=1)) if h_star is not None
                                   else np.full(n, np.nan))
        if prob.x_true is not None and prob.x_true.shape == x.shape[1:]:
            mse = ((x - prob.x_true) ** 2).flatten(1).mean(1)
            rec["psnr"].append(host(10 * torch.log10(1 / mse)))
        else:
            rec["psnr"].append(np.full(n, np.nan))
        # coordinates on the plane (delta, y) -> (h*, x*) used by scan.grid2d's map
        rec["t"].append(host((h - d0).flatten(1) @ kdir / (kdir @ kdir)) if kdir is not None else np.full(n, np.nan))
        rec["u"].append(host((x - y_img).flatten(1) @ xdir / (xdir @ xdir)) if xdir is not None else np.full(n, np.nan))
        if k % record_every == 0 or k == n_outer:
            with torch.no_grad():
                e_rec.append({kk: host(v) for kk, v in post.terms(th, x).items()})
            e_steps.append(k)

    record(0, x, th)
    for k in tqdm(range(1, n_outer + 1), desc=f"descent ({scheme}, {n} inits)", disable=not progress, leave=False):
        if scheme == "joint":
            x_new, _, _ = post.argmin_x(th, x, solver.replace(method="hqs"), energies=False)
            th, step = theta_step(post, th, x, step, scheme)
            x = x_new
        else:
            x, _, _ = post.argmin_x(th, x, solver, energies=False)
            th, step = theta_step(post, th, x, step, scheme)
        record(k, x, th)
    steps = np.arange(n_outer + 1)
    ds = xr.Dataset(
        {"theta_path": (("init", "step", "param"), np.stack(rec["theta"], 1), {"long_name": "theta along the descent"}),
         "kernel_error": (("init", "step"), np.stack(rec["kernel_error"], 1), {"long_name": "||h(theta) - h*||_2"}),
         "dirac_distance": (("init", "step"), np.stack(rec["dirac_distance"], 1), {"long_name": "||h(theta) - delta||_2"}),
         "psnr": (("init", "step"), np.stack(rec["psnr"], 1), {"long_name": "PSNR of x against x*", "units": "dB"}),
         "t_coord": (("init", "step"), np.stack(rec["t"], 1), {"long_name": "projection of h on the path delta -> h*"}),
         "u_coord": (("init", "step"), np.stack(rec["u"], 1), {"long_name": "projection of x on the path y -> x*"}),
         **{f"{k}_path": (("init", "estep"), np.stack([r[k] for r in e_rec], 1), energy_attrs(f"{k} along the descent"))
            for k in ("energy", "data_term", "prior_term", "kernel_term")},
         "x_final": (("init", *image_dims(prob)),
                     host(x), {"long_name": "final image"})},
        coords={"init": labels, "step": steps, "estep": e_steps, "param": list(fam.param_names)})
    eps = eps_rel * (float((h_star - d0).norm()) if h_star is not None else 1.0)
    dd, ke = ds.dirac_distance.isel(step=-1).values, ds.kernel_error.isel(step=-1).values
    cls = np.where(dd <= eps, "trivial", np.where(ke <= eps, "near_truth", "other"))
    ds["end_class"] = ("init", cls.astype(str), {"long_name": "trivial | near_truth | other"})
    ds.attrs.update({"scheme": scheme, "eps": eps, "eps_rel": eps_rel, "n_outer": n_outer, "x_iters": x_iters})
    for k, da in input_variables(prob).items():
        ds[k] = da
    return ds


def q_difference(prior: Any, x0: torch.Tensor, x1: torch.Tensor) -> float:
    """:math:`q(x_1) - q(x_0)` (exact energy, or the Tweedie line integral)."""
    if prior.capabilities.get("energy") == APPROXIMATE:
        d, _ = prior.energy_difference(x0[None], x1[None])
        return float(d[0])
    return float(prior.energy(x1[None])[0] - prior.energy(x0[None])[0])
