r"""Every estimator of the blind problem on one GMM-sandbox problem, beside the exact Bayes MMSE.

In the sandbox (:math:`x \sim` a whole-image ``GMMPrior``, :math:`\theta` uniform on a grid, Gaussian
noise) the exact posterior mean :math:`E[x \mid y]` minimises the expected squared error over all
estimators (``estimators.bayes``). :func:`estimates` computes, on one problem, that MMSE and the
estimators it is compared with: MAP over :math:`\theta` with :math:`x` marginalised then the exact
:math:`E[x \mid y, \hat\theta]`, the joint MAP (the profile's minimiser on the grid), blind PnP from
:math:`(\delta, y)`, and the unrolled network; :func:`draw` draws problems from the generative model.
``tests/test_bayes.py`` and ``benchmarks/bayes_optimality.py`` share both.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .. import kernels, scan, solvers
from ..posterior import BlindDeblur, Posterior
from . import pnp
from .bayes import GMMPosterior
from .unrolled import reconstruct

#: the estimators :func:`estimates` returns, the exact MMSE first
NAMES = ("mmse", "map_theta", "joint_map", "pnp_blind", "unrolled")


def draw(gmm: Any, grid: np.ndarray, sigma: float, index: int, theta_rng: np.random.Generator,
         kernel_size: int = 15) -> tuple[torch.Tensor, BlindDeblur]:
    """Draw ``index`` of the generative model: ``x ~ gmm`` (seed ``20000 + index``), theta uniform on
    ``grid`` (from ``theta_rng``), Gaussian blur, noise ``sigma`` (seed ``30000 + index``)."""
    x = gmm.sample(1, rng=20_000 + index)[0]
    th = grid[theta_rng.integers(len(grid))]
    return x, BlindDeblur.synthetic(x.numpy(), kernels.Gaussian(kernel_size), th, sigma, rng=30_000 + index)


def estimates(prob: BlindDeblur, gmm: Any, grid: np.ndarray, model: Any, *,
              pnp_options: pnp.PnPOptions | None = None,
              solver: solvers.SolverOptions | None = None) -> dict[str, tuple[torch.Tensor, float]]:
    """Each estimator's image and its wall time (s) on one sandbox problem (:data:`NAMES`).

    Parameters
    ----------
    prob : BlindDeblur
        Gaussian-blur problem on the GMM's image shape.
    gmm : GMMPrior
        The sandbox's prior (exact).
    grid : array ``(n,)``
        The theta grid of the exact posterior and of the joint-MAP profile.
    model : UnrolledBlind
        The unrolled network (``unrolled-gmm16`` for the shipped sandbox).
    pnp_options : PnPOptions, optional
        Blind PnP from (δ, y) (default: fixed level s = 0.05, 30 iterations).
    solver : SolverOptions, optional
        The profile's inner solver (default: etol 1e-2, 500 iterations).
    """
    out = {}
    t0 = time.perf_counter()
    m = GMMPosterior(prob, gmm, grid).mmse()
    t = time.perf_counter() - t0
    out["mmse"] = (m["x_mmse"], t)
    out["map_theta"] = (m["x_given_theta"][int(np.argmin(m["marginal_nll"]))], t)
    t0 = time.perf_counter()
    prof = scan.profile(Posterior(prob, gmm), grid, store_images=True, progress=False,
                        solver=solver or solvers.SolverOptions(etol=1e-2, max_iter=500))
    out["joint_map"] = (torch.as_tensor(prof.x_hat.values[0, int(np.argmin(prof.profile_energy.values))]),
                        time.perf_counter() - t0)
    t0 = time.perf_counter()
    x = pnp.pnp_blind(prob, gmm, [0.0], options=pnp_options or pnp.PnPOptions(s=0.05, n_iter=30))["x"]
    out["pnp_blind"] = (x, time.perf_counter() - t0)
    t0 = time.perf_counter()
    out["unrolled"] = (torch.as_tensor(reconstruct(model, prob.y.numpy(), prob.noise)["x"]),
                       time.perf_counter() - t0)
    return out
