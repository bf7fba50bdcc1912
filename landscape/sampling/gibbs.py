r"""Sampling over :math:`(\theta, x)`: Gibbs with :math:`\theta` exact on a grid, and Monte Carlo EM for MAP_θ.

Gibbs sweep, every chain in one batch:

1. :math:`x \mid \theta, y`: ``x_steps`` Langevin moves (``langevin.transition``, ULA or MALA) at the
   chain's current kernel, step :math:`\gamma / L(\theta)`;
2. :math:`\theta \mid x, y` exactly on the grid:
   :math:`p(\theta_j \mid x, y) \propto p(\theta_j)\exp(-\|h(\theta_j) \star x - y\|^2 / 2\sigma^2)`
   (the prior on :math:`x` does not depend on :math:`\theta`).

With MALA the chain leaves :math:`p(\theta, x \mid y)` invariant (exact in the limit); its
:math:`\theta` marginal is compared with the exact :math:`p(\theta \mid y)` of the GMM sandbox in
``tests/test_sampling.py``.

Monte Carlo EM (``em_theta``), the learned-prior counterpart of the exact marginal: with :math:`x`
latent, :math:`\theta_{t+1} = \arg\max_j E_{x \sim p(x \mid \theta_t, y)}[-\|h(\theta_j)\star x - y\|^2]`,
the expectation over Langevin draws at :math:`\theta_t`. Each exact EM step cannot lower
:math:`p(y \mid \theta)`; it converges to a local maximiser of the marginal likelihood (MAP_θ with a
flat prior).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._checks import InputError, torch_generator
from ..io import host
from ..operators import Blur
from ..posterior import Posterior
from .langevin import ChainDiverged, LangevinOptions, MalaState, lipschitz, sample_x, transition


def _grid(post: Posterior, grid: Any) -> torch.Tensor:
    g = post.problem.family.check(grid, dtype=post.problem.dtype, device=post.problem.device)
    if g.shape[0] < 2:
        raise InputError("grid", "at least 2 kernel parameters", g.shape[0])
    return g


def data_energies(post: Posterior, grid: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\|h(\theta_j)\star x_c - y\|^2 / 2\sigma^2` for every grid point and chain, ``(C, T)`` (``x``
    ``(C, *image shape)``: gray or colour, the same kernel on every channel)."""
    pb = post.problem
    hs = pb.family(grid)
    res = Blur(hs[:, None], pb.image_shape, boundary=pb.boundary, channels=pb.channels)(x[None]) - pb.y
    return ((res ** 2).flatten(res.ndim - pb.event_ndim).sum(-1) / (2 * pb.noise ** 2)).T


def gibbs(post: Posterior, grid: Any, *, sweeps: int = 500, burn_in: int = 100, thin: int = 1, x_steps: int = 5,
          method: str = "mala", step_factor: float = 1 / 3, chains: int = 4, theta_prior: Any = None,
          rng: Any = None, progress: bool = False) -> dict[str, Any]:
    r"""Gibbs sampling of :math:`p(\theta, x \mid y)` with :math:`\theta` on ``grid``.

    Parameters
    ----------
    post : Posterior
    grid : array ``(T, p)`` or ``(T,)``
    sweeps, burn_in, thin : int
        Sweeps in all, discarded (``burn_in < sweeps``), and kept every ``thin``-th after.
    x_steps : int
        Langevin moves of :math:`x` per sweep.
    method : {"mala", "ula", "exact"}
        ``exact``: :math:`x \mid \theta, y` drawn exactly (``GMMPrior`` on whole images:
        ``estimators.bayes.GMMPosterior``), a two-block Gibbs sampler with no Langevin error.
    step_factor : float
        :math:`\gamma` of the step :math:`\gamma / L(\theta)`.
    chains : int
    theta_prior : array ``(T,)``, optional
        Prior probabilities of the grid points (default uniform).
    rng : seed
    progress : bool

    Returns
    -------
    dict
        ``theta_index`` ``(C, n)``, ``theta`` ``(C, n, p)``, ``x`` ``(C, n, H, W)`` (one per kept sweep),
        ``acceptance`` ``(C,)`` (MALA), ``theta_posterior`` (the kept draws' histogram on the grid).
    """
    from tqdm.auto import tqdm
    g = _grid(post, grid)
    T = g.shape[0]
    exact = method == "exact"
    LangevinOptions(method="ula" if exact else method, n_steps=sweeps, burn_in=burn_in, thin=thin, chains=chains,
                    step_factor=step_factor)                                            # their checks
    if exact:
        from ..estimators.bayes import GMMPosterior
        sandbox = GMMPosterior(post.problem, post.prior, g)         # raises unless a whole-image GMM
        parts: dict[int, Any] = {}
    if not isinstance(x_steps, int) or x_steps < 1:
        raise InputError("x_steps", "an integer >= 1", x_steps)
    on = dict(dtype=g.dtype, device=g.device)
    lp = torch.zeros(T, **on) if theta_prior is None else torch.log(
        torch.as_tensor(np.asarray(theta_prior, dtype=float), **on))
    gen = torch_generator(rng)
    L = torch.tensor([lipschitz(post, g[j:j + 1]) for j in range(T)], **on)
    x = post.default_start().expand(chains, *post.problem.event_shape).clone()
    # dispersed starts (what R-hat needs): chain c at grid point c T / C, x = y
    idx = torch.as_tensor((np.arange(chains) * T) // chains, dtype=torch.long, device=g.device)
    keep_i, keep_x = [], []
    acc = torch.zeros(chains, **on)
    for k in tqdm(range(sweeps), desc=f"gibbs ({chains} chains)", disable=not progress, leave=False):
        if exact:
            x = _exact_x(sandbox, parts, idx, gen, post.problem.event_shape)
        else:
            blur = post.problem.blur(g[idx])
            state = MalaState(None, None, torch.zeros(chains, **on))
            for _ in range(x_steps):
                x = transition(post, blur, x, step_factor / L[idx], method, gen, state)
            acc += state.accepted / x_steps
        bad = ~torch.isfinite(x).flatten(1).all(1)
        if bad.any():
            raise ChainDiverged(int(bad.nonzero()[0]), k, torch.stack(keep_x, 1) if keep_x else x[:, :0])
        logits = lp[None] - data_energies(post, g, x)
        # drawn where the generator lives (the host): the same draws on every device
        idx = torch.multinomial(torch.softmax(logits, 1).cpu(), 1, generator=gen)[:, 0].to(g.device)
        if k >= burn_in and (k - burn_in) % thin == 0:
            keep_i.append(idx.clone())
            keep_x.append(x.clone())
    ti = torch.stack(keep_i, 1)
    hist = torch.bincount(ti.reshape(-1), minlength=T).to(g.dtype)
    return {"theta_index": ti, "theta": g[ti], "x": torch.stack(keep_x, 1),
            "acceptance": host(acc / sweeps) if method == "mala" else np.full(chains, np.nan),
            "theta_posterior": hist / hist.sum(), "grid": g}


def _exact_x(sandbox, parts: dict, idx: torch.Tensor, gen: torch.Generator, shape) -> torch.Tensor:
    """One exact draw of x | theta_idx, y per chain (component, then ``GMMPosterior.conditional``'s perturbation
    draw), each grid point's factors cached."""
    out = []
    for j in idx.tolist():
        if j not in parts:
            parts[j] = sandbox.conditional(j)
        c = parts[j]
        k = torch.multinomial(c.weights.cpu(), 1, generator=gen).to(c.means.device)
        e1, e2 = (torch.randn(1, m, generator=gen, dtype=c.means.dtype, device=gen.device).to(c.means.device)
                  for m in (c.means.shape[1], c.residual.shape[1]))
        out.append(c.draw(k, e1, e2)[0].reshape(shape))
    return torch.stack(out)


def em_theta(post: Posterior, grid: Any, theta0: int | float = 0.0, *, n_iter: int = 10,
             options: Any = None, rng: Any = None) -> dict[str, Any]:
    r"""Monte Carlo EM for MAP_θ on ``grid``, from the grid point nearest ``theta0``.

    ``options``: ``LangevinOptions`` (E-step by Langevin chains, warm-started from the previous
    iteration's last draws) or ``sampling.diffusion.DiffusionOptions`` (E-step by DPS, independent
    draws: diffusion EM in the manner of Fast Diffusion EM and BlindDPS's alternation).

    Returns
    -------
    dict
        ``theta_path`` ``(n_iter + 1, p)``, ``q_values`` ``(n_iter, T)`` (the Monte Carlo E-step's
        objective :math:`-E\|h(\theta_j)\star x - y\|^2/2\sigma^2` per grid point), ``theta`` (the last).
    """
    from .diffusion import DiffusionOptions, dps
    g = _grid(post, grid)
    opts = options or LangevinOptions(method="ula", n_steps=400, burn_in=200, chains=4)
    if not isinstance(opts, (LangevinOptions, DiffusionOptions)):
        raise InputError("options", "LangevinOptions or DiffusionOptions (the E-step's sampler)", type(opts).__name__)
    j = int(torch.argmin((g[:, 0] - float(theta0)).abs()))
    path, qs = [host(g[j]).copy()], []
    seeds = np.random.default_rng(rng).integers(2 ** 31, size=n_iter)
    x0 = None
    for t in range(n_iter):
        if isinstance(opts, DiffusionOptions):          # diffusion EM: independent DPS draws at theta_t
            draws = dps(post, host(g[j]), opts, rng=int(seeds[t]))["draws"]
        else:                                           # Langevin draws, warm-started from the last ones
            draws = sample_x(post, host(g[j]), opts, x0=x0, rng=int(seeds[t]))["draws"]
            x0 = draws[:, -1]
        q = -data_energies(post, g, draws.reshape(-1, *post.problem.event_shape)).mean(0)
        qs.append(host(q))
        j = int(torch.argmax(q))
        path.append(host(g[j]).copy())
    return {"theta_path": np.stack(path), "q_values": np.stack(qs), "theta": g[j]}


def save_draws(path: Any, post: Posterior, grid: Any, out: dict[str, Any], *, max_draws: int = 100,
               study: str = "", config: dict[str, Any] | None = None) -> Any:
    r"""Write a :func:`gibbs` run as an ``arviz.InferenceData`` netCDF at ``path`` (atomic; folders made).

    Posterior ``theta`` and ``x`` (each chain thinned evenly to ``max_draws``), sample_stats ``data_energy``
    (:math:`\|h(\theta)\star x - y\|^2/2\sigma^2` of each kept draw), observed ``y``, constant ``x_true``,
    ``kernel_true``, ``theta_true``, ``noise_sigma`` (``sampling.layout.inference_data``). Returns the path.
    """
    from pathlib import Path

    from .layout import inference_data, save_inference
    if not (isinstance(max_draws, (int, np.integer)) and max_draws >= 1):
        raise InputError("max_draws", "an integer >= 1", max_draws)
    n = out["x"].shape[1]
    keep = np.unique(np.linspace(0, n - 1, min(n, max_draws)).round().astype(int))
    x, idx = out["x"][:, keep], out["theta_index"][:, keep]
    e = data_energies(post, torch.as_tensor(np.asarray(grid), dtype=x.dtype, device=x.device).reshape(-1, 1),
                      x.reshape(-1, *x.shape[2:]))
    energy = e.gather(1, idx.reshape(-1, 1).to(e.device)).reshape(idx.shape)
    idata = inference_data(post.problem, theta=host(out["theta"][:, keep].double()), x=host(x.double()),
                           sample_stats={"data_energy": host(energy.double())}, study=study, config=config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_inference(idata, path)
