r"""Every point estimate of one blind-deblurring problem, side by side: the joint MAP from (δ, y) (the
profile's global minimum) and near the truth (the local minimum of the branch warm-started from x*),
MAP_θ (θ from the marginal likelihood, then the non-blind answer), the unrolled MMSE network, and in the
GMM sandbox the exact MMSE. Used by the studies ``map-vs-mmse`` and ``posterior-statistics``
(``tests/test_studies.py`` checks their verdicts; the sandbox's exact answers are checked against the
closed forms in ``tests/test_bayes.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import marginal, scan
from .._checks import InputError
from ..io import host
from ..posterior import BlindDeblur, Posterior
from ..priors import EXACT, UP_TO_CONSTANT, make_prior
from ..solvers import SolverOptions
from . import pnp
from .bayes import GMMPosterior
from .unrolled import reconstruct


def point_estimates(problem: BlindDeblur, prior: Any, model: Any, theta_true: np.ndarray, first: np.ndarray, *,
                    etol: float = 0.01, s: float = 0.02, exact: bool | GMMPosterior = False, progress: bool = False
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every point estimate of one problem: ``(estimates, extras)``; estimates maps name -> ``(x, kernel)``.

    Parameters
    ----------
    problem, prior, model
        The problem, the prior of the joint MAP (and of PnP), the unrolled network.
    theta_true : array ``(p,)``
        The true parameter (added to the grid; the near-truth branch starts there).
    first : array
        The grid of the first parameter (the profile's, and the sandbox's uniform prior on θ).
    etol : float
        Inner solver energy tolerance (nats).
    s : float
        Level of the PnP denoiser in MAP_θ's non-blind step (natural images).
    exact : bool or GMMPosterior
        ``prior`` is the sandbox's GMM: MAP_θ and the MMSE from the exact posterior (``GMMPosterior``; pass one
        already built on this problem, prior and grid (``first`` with ``theta_true`` added) to share its evidences).
    """
    fam = problem.family
    post = Posterior(problem, prior)
    grid = np.tile(theta_true, (len(first), 1))
    grid[:, 0] = first
    grid = np.unique(np.vstack([grid, theta_true[None]]), axis=0)
    if isinstance(exact, GMMPosterior) and not (
            exact.problem is problem and exact.prior is prior and np.array_equal(host(exact.theta), grid)):
        raise InputError("exact", "a GMMPosterior of this problem and prior on the grid of first and theta_true",
                         f"one on {exact.theta.shape[0]} points")
    solver = SolverOptions(etol=etol, max_iter=500)
    prof = scan.profile(post, grid, warm_start=True, store_images=True, solver=solver, progress=progress)
    e, g = prof.profile_energy.values, grid[:, 0]
    i_map = int(np.argmin(e))
    branch = prof.profile_energy_branch.values[1]
    mins = scan.local_minima(branch)
    i_near = int(mins[np.argmin(np.abs(g[mins] - theta_true[0]))]) if len(mins) else int(np.argmin(np.abs(g - theta_true[0])))
    xh = prof.x_hat.values
    on = dict(device=problem.device)
    kern = lambda i: fam(torch.as_tensor(grid[i:i + 1], **on))[0]
    est = {"map_trivial": (torch.as_tensor(xh[prof.best_branch.values[i_map], i_map], **on), kern(i_map)),
           "map_near_truth": (torch.as_tensor(xh[1, i_near], **on), kern(i_near))}
    extras: dict[str, Any] = {"theta_map": float(g[i_map]), "theta_near_truth": float(g[i_near])}
    if exact:                                    # True, or a GMMPosterior to share
        m = (exact if isinstance(exact, GMMPosterior) else GMMPosterior(problem, prior, grid)).mmse()
        j = int(np.argmin(host(m["marginal_nll"])))
        est["map_theta"] = (m["x_given_theta"][j], kern(j))
        est["mmse_exact"] = (m["x_mmse"], m["kernel_mmse"])
        extras.update(theta_map_theta=float(g[j]), x_std=host(m["x_std"]), theta_posterior_mean=float(m["theta_mean"][0]))
    else:
        gp = make_prior("gaussian", problem.event_shape)
        j = int(np.argmin(host(marginal.marginal_nll(problem, gp, grid))))
        # MAP_θ's non-blind step: gradient-step PnP where the prior has an energy, fixed-level PnP for a score
        variant = "gradient-step" if prior.capabilities.get("energy") in (EXACT, UP_TO_CONSTANT) else "fixed"
        nb = pnp.pnp_nonblind(problem, prior, grid[j], pnp.PnPOptions(variant=variant, s=s, n_iter=40))
        est["map_theta"] = (nb["x"], kern(j))
        extras["theta_map_theta"] = float(g[j])
    r = reconstruct(model, problem.y, problem.noise)
    est["unrolled"] = (torch.as_tensor(r["x"], **on), torch.as_tensor(r["kernel"], **on))
    if r["theta"].size:
        extras["theta_unrolled"] = float(r["theta"][0])
    return est, extras
