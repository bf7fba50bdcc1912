r"""Scans of the energy landscape over the kernel parameter.

``profile`` evaluates the profile (joint-MAP) energy :math:`E^*(\theta) = \min_x E(\theta, x)`
on a grid of :math:`\theta`, batched (one solver run for every inner problem) or warm-started
along the grid from both ends; ``profile2d`` over two components of :math:`\theta`; ``segment``
along the segment between two pairs; ``grid2d`` on the plane through :math:`(\delta, y)` and
:math:`(h^\star, x^\star)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from ._checks import InputError, choice
from .io import energy_attrs, host, image_dims, input_variables
from .posterior import Posterior
from .solvers import SolverOptions, fixed_point_rate, method_for, options

TERMS = {
    "data_term": "data fidelity ||h*x - y||^2 / (2 sigma^2)",
    "prior_term": "prior energy lambda q(x)",
    "kernel_term": "kernel energy r(theta)",
}


def theta_coords(post: Posterior, theta: torch.Tensor) -> dict[str, Any]:
    """Coordinates of a ``theta`` dimension: the parameter values for one-parameter families,
    an index plus one coordinate ``theta_<name>`` per parameter otherwise."""
    fam = post.problem.family
    th = theta.detach().cpu().numpy()
    if fam.n_params == 1:
        return {"theta": ("theta", th[:, 0], {"long_name": fam.param_names[0], "units": "pixels"})}
    coords: dict[str, Any] = {"theta": np.arange(th.shape[0])}
    if fam.n_params <= 8:
        for j, name in enumerate(fam.param_names):
            coords[f"theta_{name}"] = ("theta", th[:, j])
    return coords


def profile(post: Posterior, theta: Any, *, x0: torch.Tensor | None = None, warm_start: bool = False,
            x_end: torch.Tensor | None = None, predictor: str = "auto", store_images: bool = False,
            rates: bool = False, solver: SolverOptions | None = None, progress: bool = True) -> xr.Dataset:
    r"""Profile energy :math:`E^*(\theta) = \min_x E(\theta, x)` over a grid.

    Parameters
    ----------
    post : Posterior
    theta : array ``(B,)`` or ``(B, p)``
        The grid (checked against the family's domain), in continuation order.
    x0 : Tensor, optional
        Start of the inner solver (default: the observation ``y``).
    warm_start : bool
        ``False``: every inner problem starts from ``x0``, all solved in one batch.
        ``True``: two continuation branches, solved side by side: ``from_dirac`` walks the grid
        forward from ``x0``, each solve starting from the previous solution; ``from_end`` walks
        it backward from ``x_end`` (default: the true image when known, else ``y``). A
        two-basin profile shows as two branches; ``profile_energy`` is their minimum.
    predictor : {"auto", "secant", "none"}
        Start of each warm-started solve: ``"secant"`` extrapolates the branch linearly,
        :math:`x^{(0)}_k = \hat x_{k-1} + \frac{\|\theta_k - \theta_{k-1}\|}{\|\theta_{k-1} - \theta_{k-2}\|}
        (\hat x_{k-1} - \hat x_{k-2})` (a predictor-corrector continuation); ``"none"`` starts
        from :math:`\hat x_{k-1}`. ``"auto"``: secant when the inner solver is L-BFGS (its line
        search on the true energy makes a poor prediction cost iterations, never the answer),
        none for the gradient-only HQS solver of score-only priors, which has no energy to reject a
        poor prediction: where its map is not contractive (``fixed_point_rate`` >= 1) an
        extrapolated start runs away.
    store_images : bool
        Keep :math:`\hat x(\theta)` as ``x_hat``.
    rates : bool
        Also store ``fixed_point_rate``: the spectral radius of the HQS map at the kept
        solution of every :math:`\theta` (``solvers.fixed_point_rate``; at or above 1 the
        solve cannot converge, whatever its iteration cap).
    solver : solvers.SolverOptions, optional
        The inner solver's options (stored in the attributes as ``solver_<name>``).
    progress : bool
        Show progress bars.

    Returns
    -------
    xarray.Dataset
        ``profile_energy`` and its ``data_term``, ``prior_term``, ``kernel_term`` over dim
        ``theta`` (and ``branch`` when warm-started, with ``profile_energy_branch``); solver
        diagnostics; the problem's inputs.
    """
    fam = post.problem.family
    th = fam.check(theta, dtype=post.problem.dtype, device=post.problem.device)
    choice("predictor", predictor, ("auto", "secant", "none"))
    solver = options(solver)
    if predictor == "auto":
        predictor = "none" if method_for(post, solver.method) == "hqs" else "secant"
    calls0 = post.prior.calls
    keep_x = store_images or rates
    if not warm_start:
        x, terms, info = post.argmin_x(th, x0, solver, progress=progress)
        terms = {k: v[None] for k, v in terms.items()}
        n_iter, conv, xs = info.n_iter[None], info.converged[None], x[None]
        branches, evals = ["cold"], info.n_item_evals
    else:
        from tqdm.auto import tqdm
        T = th.shape[0]
        start = post.default_start() if x0 is None else x0
        far = x_end if x_end is not None else (post.problem.x_true if post.problem.x_true is not None
                                                and post.problem.x_true.shape == start.shape else start)
        cur = torch.stack([start, far]).to(dtype=post.problem.dtype, device=post.problem.device)
        # the profile's record is kept on the host (it becomes the results' arrays), each solve on the problem's device
        out = {k: torch.zeros(2, T, dtype=post.problem.dtype, device="cpu")
               for k in ("data_term", "prior_term", "kernel_term", "energy")}
        n_iter = torch.zeros(2, T, dtype=torch.long, device="cpu")
        conv = torch.zeros(2, T, dtype=torch.bool, device="cpu")
        xs = torch.zeros(2, T, *post.problem.event_shape, dtype=post.problem.dtype, device="cpu") if keep_x else None
        evals, prev = 0, cur
        for k in tqdm(range(T), desc="profile (warm start, 2 branches)", disable=not progress, leave=False):
            idx = [k, T - 1 - k]
            start = cur
            if predictor == "secant" and k >= 2:
                step = (th[idx] - th[[k - 1, T - k]]).norm(dim=1)
                back = (th[[k - 1, T - k]] - th[[k - 2, T + 1 - k]]).norm(dim=1)
                ratio = torch.where(back > 0, step / back.clamp_min(1e-300), torch.zeros_like(step))
                start = cur + ratio.view(-1, *[1] * post.problem.event_ndim).to(cur.dtype) * (cur - prev)
            sol, t, info = post.argmin_x(th[idx], start, solver)
            prev, cur = cur, sol
            for b in range(2):
                for name in out:
                    out[name][b, idx[b]] = t[name][b]
                n_iter[b, idx[b]], conv[b, idx[b]] = info.n_iter[b], info.converged[b]
                if keep_x:
                    xs[b, idx[b]] = cur[b]
            evals += info.n_item_evals
        terms, branches = out, ["from_dirac", "from_end"]
    e = terms["energy"].cpu().numpy()
    best = e.argmin(0)
    pick = lambda a: np.take_along_axis(a, best[None], 0)[0]
    v: dict[str, Any] = {
        "profile_energy": ("theta", pick(e), energy_attrs("profile energy min_x E(theta, x)")),
        **{k: ("theta", pick(terms[k].cpu().numpy()), energy_attrs(ln)) for k, ln in TERMS.items()},
        "n_iter": (("branch", "theta"), n_iter.numpy(), {"long_name": "inner solver iterations"}),
        "converged": (("branch", "theta"), conv.cpu().numpy(), {"long_name": "inner solver met its tolerance"}),
        "theta_values": (("theta", "param"), th.cpu().numpy(), {"long_name": "kernel parameters"}),
    }
    if warm_start:
        v["profile_energy_branch"] = (("branch", "theta"), e, energy_attrs("profile energy along each branch"))
        v["best_branch"] = ("theta", best.astype(np.int8), {"long_name": "index of the lower branch"})
    if store_images:
        v["x_hat"] = (("branch", "theta", *image_dims(post.problem)), xs.cpu().numpy(), {"long_name": "argmin_x E(theta, x)"})
    if rates:
        kept = xs[torch.as_tensor(best, device=xs.device), torch.arange(len(best), device=xs.device)]
        rho = host(fixed_point_rate(post, th, kept))
        v["fixed_point_rate"] = ("theta", rho, {"long_name": "spectral radius of the HQS map at the kept solution",
                                                "comment": ">= 1: the fixed point repels; the solve cannot converge"})
    ds = xr.Dataset(v, coords={**theta_coords(post, th), "param": list(fam.param_names), "branch": branches})
    for k, da in input_variables(post.problem).items():
        ds[k] = da
    ds.attrs.update({
        "noise_sigma": post.problem.noise, "boundary": post.problem.boundary,
        "prior": post.prior.name, "kernel_family": fam.name, "prior_weight": post.prior_weight,
        **solver.attrs(), "solver_item_evaluations": int(evals), "warm_start": int(warm_start), "predictor": predictor,
        "prior_calls": int(post.prior.calls - calls0),
    })
    return ds


def local_minima(values: np.ndarray) -> np.ndarray:
    """Indices of the grid's local minima: values no larger than both neighbours (an end counts when
    no larger than its one neighbour). Ties count on both sides, so a flat stretch is all minima."""
    v = np.asarray(values)
    left = np.r_[np.inf, v[:-1]]
    right = np.r_[v[1:], np.inf]
    return np.flatnonzero((v <= left) & (v <= right))


def grid_argmin(values: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    """Grid minimiser and its three-point parabolic refinement (the grid value at an edge)."""
    i = int(np.nanargmin(values))
    if 0 < i < len(grid) - 1:
        y0, y1, y2 = values[i - 1:i + 2]
        x0, x1, x2 = grid[i - 1:i + 2]
        den = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
        b = (x2 ** 2 * (y0 - y1) + x1 ** 2 * (y2 - y0) + x0 ** 2 * (y1 - y2)) / den
        if a > 0:
            return float(grid[i]), float(np.clip(-b / (2 * a), x0, x2))
    return float(grid[i]), float(grid[i])


def local_minimiser(post: Posterior, theta: Any, solver: SolverOptions | None = None, *, width: float = 0.4,
                    n: int = 7, x0: torch.Tensor | None = None) -> float:
    r"""The profile's local minimiser in the first parameter near ``theta`` ``(p,)``: a local profile of
    ``n`` points on :math:`\theta_1 [1 - w, 1 + w]` (the other parameters fixed; clipped to the family's
    domain), warm-started along the grid from ``x0`` (default the problem's ``x_true``), refined by the
    parabola through the lowest point and its neighbours (``grid_argmin``).

    An end of the local grid counts only where it is the family's domain boundary (a constrained
    minimum); NaN when the minimum sits at an inner end (no local minimum inside the window).
    """
    th = np.asarray(theta, dtype=float).reshape(-1)
    if not (width > 0 and n >= 3):
        raise InputError("width, n", "a positive window and at least 3 points", (width, n))
    x = post.problem.x_true if x0 is None else x0
    if x is None:
        raise InputError("x0", "a start image (the problem has no x_true)", None)
    fam = post.problem.family
    lo, hi = max(th[0] * (1 - width), fam.lower[0]), min(th[0] * (1 + width), fam.upper[0])
    g = np.linspace(lo, hi, n)
    grid = np.tile(th, (n, 1))
    grid[:, 0] = g
    xs = []
    for row in grid:
        x, _, _ = post.argmin_x(row[None], x, solver, energies=False)
        x = x[0]
        xs.append(x)
    prev = post.energy(grid, torch.stack(xs)).numpy()
    i = int(np.argmin(prev))
    if (i == 0 and lo > fam.lower[0]) or (i == n - 1 and hi < fam.upper[0]):
        return float("nan")
    if i in (0, n - 1):
        return float(g[i])
    return grid_argmin(np.array(prev), g)[1]


def grid2d(post: Posterior, t: Any, u: Any) -> xr.Dataset:
    r"""Energy on the plane through :math:`(\delta, y)` and :math:`(h^\star, x^\star)`:
    :math:`E(h_t, x_u)` with :math:`h_t = (1-t)\delta + t h^\star` and
    :math:`x_u = (1-u) y + u x^\star` (needs the truth; circular boundary). Dims ``t``, ``u``.
    Prior energies of the :math:`x_u` are computed once each; data terms by batched FFTs.

    Parameters
    ----------
    post : Posterior
        A synthetic problem (truth known), circular boundary.
    t, u : array
        Coordinates along the kernel path and the image path.

    Returns
    -------
    xarray.Dataset
        ``energy`` and ``data_term`` over ``(t, u)``, ``prior_term`` over ``u``.
    """
    from .kernels import dirac
    from .operators import Blur
    prob = post.problem
    if prob.x_true is None or prob.theta_true is None or prob.boundary != "circular":
        raise InputError("problem", "a synthetic problem with known truth and circular boundary", "no truth")
    t = torch.as_tensor(np.asarray(t, dtype=float), dtype=prob.dtype, device=prob.device)
    u = torch.as_tensor(np.asarray(u, dtype=float), dtype=prob.dtype, device=prob.device)
    d0 = dirac(prob.family.size, dtype=prob.dtype, device=prob.device)
    img = (-1,) + (1,) * prob.event_ndim                                        # a per-item scalar over an image
    hs = (1 - t)[:, None, None] * d0 + t[:, None, None] * prob.kernel_true
    xs = (1 - u).view(img) * prob.y + u.view(img) * prob.x_true
    with torch.no_grad():
        prior = post.prior_weight * post.prior.energy(xs)                       # (U,)
        res = Blur(hs[:, None], prob.image_shape, channels=prob.channels)(xs[None]) - prob.y   # (T, U, [C,] H, W)
        data = res.flatten(2).pow(2).sum(-1) / (2 * prob.noise ** 2)
    e = data + prior[None]
    return xr.Dataset({"energy": (("t", "u"), host(e), energy_attrs("E(h_t, x_u)")),
                       "data_term": (("t", "u"), host(data), energy_attrs("data term")),
                       "prior_term": ("u", host(prior), energy_attrs("lambda q(x_u)"))},
                      coords={"t": host(t), "u": host(u)},
                      attrs={"kernel_term": "0 along the path (flat kernel prior)"})


def segment(post: Posterior, theta_a: Any, x_a: torch.Tensor, theta_b: Any, x_b: torch.Tensor, t: Any, *,
            profile_path: bool = True, solver: SolverOptions | None = None, progress: bool = False) -> xr.Dataset:
    r"""Energy along the segment between two pairs :math:`(\theta_a, x_a)` and :math:`(\theta_b, x_b)`.

    :math:`\theta_t = (1-t)\theta_a + t\theta_b` (for ``Free`` kernels this is
    :math:`h_t = (1-t)h_a + t h_b`, e.g. :math:`(1-t)\delta + t h^\star`). Two paths:

    * straight: :math:`x_t = (1-t)x_a + t x_b`, variables ``energy``, ``data_term``, ``prior_term``,
      ``kernel_term``;
    * profile (``profile_path=True``): :math:`x_t = \arg\min_x E(\theta_t, x)`, warm-started along
      ``t`` from :math:`x_a`; variables ``profile_energy`` and its terms with prefix ``profile_``.

    Dim ``t``; ``t`` outside [0, 1] extrapolates when the family's domain allows it.

    Parameters
    ----------
    post : Posterior
    theta_a, x_a, theta_b, x_b : the two pairs
    t : array
    profile_path : bool
        Also the profile path (one warm-started solve per ``t``).
    solver : solvers.SolverOptions, optional
    progress : bool

    Returns
    -------
    xarray.Dataset
    """
    fam, prob = post.problem.family, post.problem
    on = dict(dtype=prob.dtype, device=prob.device)
    tt = torch.as_tensor(np.asarray(t, dtype=float), **on)
    ta = fam.as_theta(theta_a, **on)[0]
    tb = fam.as_theta(theta_b, **on)[0]
    th = fam.check((1 - tt)[:, None] * ta + tt[:, None] * tb, **on)
    xa, xb = x_a.to(**on), x_b.to(**on)
    img = (-1,) + (1,) * prob.event_ndim
    xs = (1 - tt).view(img) * xa + tt.view(img) * xb
    with torch.no_grad():
        terms = post.terms(th, xs)
    v: dict[str, Any] = {k: ("t", host(terms[k]), energy_attrs(f"{k} on the straight path"))
                         for k in ("energy", "data_term", "prior_term", "kernel_term")}
    if profile_path:
        x, rows = xa, []
        for i in range(len(tt)):
            xi, ti, _ = post.argmin_x(th[i:i + 1], x, solver, progress=progress)
            x = xi[0]
            rows.append(ti)
        for k in ("energy", "data_term", "prior_term", "kernel_term"):
            name = "profile_energy" if k == "energy" else f"profile_{k}"
            v[name] = ("t", host(torch.cat([r[k] for r in rows])), energy_attrs(f"{k} on the profile path"))
    ds = xr.Dataset(v, coords={"t": host(tt), "param": list(fam.param_names)})
    ds["theta_values"] = (("t", "param"), host(th)) if fam.n_params <= 64 else ("t", host(tt))
    ds.attrs.update({"prior": post.prior.name, "kernel_family": fam.name, "noise_sigma": prob.noise})
    return ds


def profile2d(post: Posterior, values1: Any, values2: Any, *, components: tuple[int, int] = (0, 1),
              base: Any = None, solver: SolverOptions | None = None, progress: bool = True) -> xr.Dataset:
    r"""Profile energy :math:`E^*` over a grid of two components of :math:`\theta`.

    The other components stay at ``base`` (default: the true parameter, else 0). All
    ``len(values1) * len(values2)`` inner problems are solved in one batch (cold starts from
    ``y``). Dims ``theta1``, ``theta2`` named in attrs ``theta1_name``, ``theta2_name``.

    Parameters
    ----------
    post : Posterior
    values1, values2 : array
        Values of the two components.
    components : (int, int)
        Their indices in :math:`\theta`.
    base : array ``(p,)``, optional
    solver : solvers.SolverOptions, optional
    progress : bool

    Returns
    -------
    xarray.Dataset
        ``profile_energy`` and its terms, ``converged``, over ``(theta1, theta2)``.
    """
    fam, prob = post.problem.family, post.problem
    i, j = components
    if i == j or not (0 <= i < fam.n_params and 0 <= j < fam.n_params):
        raise InputError("components", f"two different parameter indices below {fam.n_params}", components)
    v1 = np.asarray(values1, dtype=float)
    v2 = np.asarray(values2, dtype=float)
    b = (np.asarray(base, dtype=float) if base is not None else
         (prob.theta_true.cpu().numpy() if prob.theta_true is not None else np.zeros(fam.n_params)))
    grid = np.tile(b, (len(v1) * len(v2), 1))
    g1, g2 = np.meshgrid(v1, v2, indexing="ij")
    grid[:, i], grid[:, j] = g1.ravel(), g2.ravel()
    flat = profile(post, grid, solver=solver, progress=progress)
    shape = (len(v1), len(v2))
    out = xr.Dataset({k: (("theta1", "theta2"), flat[k].values.reshape(shape), flat[k].attrs)
                      for k in ("profile_energy", "data_term", "prior_term", "kernel_term")},
                     coords={"theta1": v1, "theta2": v2})
    out["converged"] = (("theta1", "theta2"), flat.converged.values[0].reshape(shape))
    out.attrs.update({**flat.attrs, "theta1_name": fam.param_names[i], "theta2_name": fam.param_names[j],
                      "base_theta": b.tolist()})
    return out
