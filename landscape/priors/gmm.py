r"""Gaussian-mixture priors: on whole small images, and on all patches of a larger one.

Whole images (``GMMPrior``), :math:`p(x) = \sum_k \pi_k N(x; \mu_k, \Sigma_k)` on
:math:`x \in \mathbb R^D`, :math:`D = HW` (gray) or :math:`D = CHW` (colour images ``(C, H, W)``, flattened
channel-major: the covariance couples channels and pixels). Every quantity is exact:

* :math:`q(x) = -\log\sum_k \pi_k N(x;\mu_k,\Sigma_k)` by logsumexp,
* :math:`\nabla q(x) = \sum_k \gamma_k(x)\,\Sigma_k^{-1}(x - \mu_k)`, :math:`\gamma_k` the
  responsibilities,
* the noisy density is again a GMM, :math:`p_s = \sum_k \pi_k N(\mu_k, \Sigma_k + s^2 I)`, and
  the MMSE denoiser is
  :math:`D_s(z) = \sum_k \gamma_k^{(s)}(z)\,[\mu_k + \Sigma_k(\Sigma_k + s^2 I)^{-1}(z - \mu_k)]`,
  which Tweedie's identity equates to :math:`z + s^2 \nabla \log p_s(z)`.

Each covariance is stored through its eigendecomposition :math:`\Sigma_k = U_k \Lambda_k U_k^\top`.

Patches (``PatchGMMPrior``, EPLL-style, Zoran & Weiss 2011): the energy
:math:`q(x) = \sum_{i} q_{\mathrm{GMM}}(P_i x)` over every (circularly wrapped) ``p x p`` patch
:math:`P_i x`; ``energy`` and ``grad`` are exact for that energy, the denoiser is the
patch-averaged MMSE (approximate).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._checks import InputError
from .base import APPROXIMATE, EXACT, Prior

_LOG2PI = math.log(2 * math.pi)


class GMMPrior(Prior):
    """Gaussian mixture on whole ``shape`` images (flattened row-major).

    Parameters
    ----------
    weights : ``(K,)``, means : ``(K, D)``, covariances : ``(K, D, D)``
    shape : ``(H, W)`` with ``H * W == D``, or ``(C, H, W)`` (colour) with ``C * H * W == D``
    """

    name = "gmm"
    capabilities = {"energy": EXACT, "grad": EXACT, "denoise": EXACT, "hessian": EXACT}

    def __init__(self, weights: Any, means: Any, covariances: Any, shape: tuple[int, int],
                 info: dict | None = None):
        w = torch.as_tensor(weights, dtype=torch.float64, device="cpu")
        mu = torch.as_tensor(means, dtype=torch.float64, device="cpu")
        cov = torch.as_tensor(covariances, dtype=torch.float64, device="cpu")
        if len(shape) not in (2, 3):
            raise InputError("shape", "(H, W) or (C, H, W)", tuple(shape))
        K, D = mu.shape
        if w.shape != (K,) or cov.shape != (K, D, D) or math.prod(shape) != D:
            raise InputError("covariances", "weights (K,), means (K, D), covariances (K, D, D) with D = prod(shape)",
                             f"{tuple(w.shape)}, {tuple(mu.shape)}, {tuple(cov.shape)}, shape {tuple(shape)}")
        if (w <= 0).any() or abs(float(w.sum()) - 1) > 1e-8:
            raise InputError("weights", "positive mixture weights summing to 1", w.tolist())
        lam, U = torch.linalg.eigh(0.5 * (cov + cov.transpose(-1, -2)))
        if (lam <= 0).any():
            raise InputError("covariances", "positive-definite covariances", f"min eigenvalue {float(lam.min()):.3g}")
        self.weights, self.means, self.eigvals, self.eigvecs = w, mu, lam, U
        self.shape = tuple(int(v) for v in shape)
        self.event_ndim = len(self.shape)
        self.info = dict(info or {})

    @property
    def n_components(self) -> int:
        return self.weights.shape[0]

    @property
    def covariances(self) -> torch.Tensor:
        return self.eigvecs @ torch.diag_embed(self.eigvals) @ self.eigvecs.transpose(-1, -2)

    def _cast(self, x):
        """The parameters (host tensors) in ``x``'s dtype on its device, copied once per (device, dtype)."""
        key = (x.device, x.dtype)
        cache = self.__dict__.setdefault("_on", {})
        if key not in cache:
            cache.clear()                      # one device at a time: no copies of a 256-dim mixture pile up
            cache[key] = [t.to(dtype=x.dtype, device=x.device) for t in
                          (self.weights, self.means, self.eigvals, self.eigvecs)]
        return cache[key]

    def _components(self, z: torch.Tensor, s: float):
        """Per-component log-joint ``(N, K)``, projections ``U_k^T (z - mu_k)`` ``(K, N, D)``,
        eigenvalues at level s ``(K, 1, D)``, eigenvectors and means."""
        self.check_shape(z)
        w, mu, lam, U = self._cast(z)
        zf = z.reshape(-1, mu.shape[1])
        lam_s = (lam + float(s) ** 2)[:, None, :]
        proj = torch.bmm(zf[None] - mu[:, None], U)
        logn = -0.5 * ((proj ** 2) / lam_s).sum(-1) - 0.5 * torch.log(lam_s).sum(-1) - 0.5 * mu.shape[1] * _LOG2PI
        return (torch.log(w)[:, None] + logn).T, proj, lam_s, U, mu

    def _lead(self, x: torch.Tensor) -> torch.Size:
        """The batch dimensions of ``x`` (those before one image)."""
        return x.shape[:x.ndim - self.event_ndim]

    def _back(self, coef: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_k U_k c_k` for coefficients ``(K, N, D)`` -> ``(N, D)``."""
        return torch.bmm(coef, U.transpose(1, 2)).sum(0)

    def log_density(self, z: torch.Tensor, s: float = 0.0) -> torch.Tensor:
        r""":math:`\log p_s(z)`, one value per image (``z.shape[:-event_ndim]``)."""
        logj, *_ = self._components(z, s)
        return torch.logsumexp(logj, dim=-1).reshape(self._lead(z))

    def score(self, z: torch.Tensor, s: float = 0.0) -> torch.Tensor:
        r""":math:`\nabla \log p_s(z) = -\sum_k \gamma_k (\Sigma_k + s^2 I)^{-1}(z - \mu_k)`."""
        logj, proj, lam_s, U, _ = self._components(z, s)
        gam = torch.softmax(logj, dim=-1).T[:, :, None]                 # (K, N, 1)
        return -self._back(gam * proj / lam_s, U).reshape(z.shape)

    def energy(self, x):
        return -self.log_density(x, 0.0)

    def grad(self, x):
        return -self.score(x, 0.0)

    def energy_and_grad(self, x):
        logj, proj, lam, U, _ = self._components(x, 0.0)
        gam = torch.softmax(logj, dim=-1).T[:, :, None]
        g = self._back(gam * proj / lam, U)
        return -torch.logsumexp(logj, dim=-1).reshape(self._lead(x)), g.reshape(x.shape)

    def hessian_matrix(self, x: torch.Tensor) -> torch.Tensor:
        r"""The Hessian of :math:`q = -\log p` at each image of a batch ``(..., *shape)``, dense ``(..., D, D)``:

        .. math:: \nabla^2 q = \sum_k \gamma_k \Sigma_k^{-1} - \Big(\sum_k \gamma_k g_k g_k^\top
                  - \bar g \bar g^\top\Big), \quad g_k = \Sigma_k^{-1}(x - \mu_k),\ \bar g = \sum_k \gamma_k g_k,

        with :math:`\gamma_k` the responsibilities (the covariance of the component scores subtracted from
        their mean precision). Checked against double backward in ``tests/test_hessian.py``."""
        logj, proj, lam, U, _ = self._components(x, 0.0)
        gam = torch.softmax(logj, dim=-1)                               # (N, K)
        prec = (U / lam) @ U.transpose(1, 2)                            # (K, D, D): U diag(1/lam) U^T
        g = torch.bmm(proj / lam, U.transpose(1, 2))                    # (K, N, D): Sigma_k^{-1}(x - mu_k)
        gbar = torch.einsum("nk,knd->nd", gam, g)
        hess = torch.einsum("nk,kij->nij", gam, prec) - torch.einsum("nk,kni,knj->nij", gam, g, g) \
            + gbar[:, :, None] * gbar[:, None, :]
        return hess.reshape(*self._lead(x), *hess.shape[-2:])

    def denoise(self, z, s, differentiable: bool = False):
        r"""Posterior mean :math:`\sum_k \gamma^{(s)}_k [\mu_k + U_k \frac{\Lambda_k}{\Lambda_k + s^2} U_k^\top (z - \mu_k)]`."""
        logj, proj, lam_s, U, mu = self._components(z, s)
        gam = torch.softmax(logj, dim=-1).T[:, :, None]
        lam = lam_s - float(s) ** 2
        out = (gam * mu[:, None]).sum(0) + self._back(gam * proj * lam / lam_s, U)
        return out.reshape(z.shape)

    def sample(self, n: int = 1, rng: Any = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Draws ``(n, *shape)``."""
        g = np.random.default_rng(rng)
        k = g.choice(self.n_components, size=n, p=self.weights.numpy())
        eps = torch.as_tensor(g.standard_normal((n, self.means.shape[1])), dtype=torch.float64, device="cpu")
        kk = torch.as_tensor(k, device="cpu")
        x = self.means[kk] + torch.einsum("ndj,nj->nd", self.eigvecs[kk], eps * self.eigvals[kk].sqrt())
        return x.reshape(n, *self.shape).to(dtype)

    def noisy(self, s: float) -> "GMMPrior":
        """The GMM of :math:`x + s n`: same weights and means, covariances :math:`\\Sigma_k + s^2 I`."""
        cov = self.covariances + float(s) ** 2 * torch.eye(self.means.shape[1], dtype=torch.float64, device="cpu")
        return GMMPrior(self.weights, self.means, cov, self.shape, info={**self.info, "noise": float(s)})

    @classmethod
    def separated(cls, means: Any, shape: tuple[int, ...], scale: float = 0.02, *, n_patches: int = 4000,
                  ridge: float = 0.05, rng: Any = 0) -> "GMMPrior":
        r"""A mixture of equal-weight components far apart: a sandbox whose modes are known.

        :math:`\Sigma = \tau^2 (C + \rho I)/\bar c`, one covariance for every component, with :math:`C` the
        covariance of ``n_patches`` random ``shape`` crops of the training images (``data.TRAIN``; colour
        crops of ``data.COLOR_TRAIN`` for a ``(C, H, W)`` shape, so :math:`C` couples the channels),
        :math:`\bar c` its mean diagonal (so :math:`\tau` = ``scale`` is the pixel standard deviation of
        a component) and :math:`\rho` = ``ridge`` a floor on its eigenvalues. When the means are many
        :math:`\tau` apart, each mean :math:`\mu_k` is a mode of :math:`p` up to the other components'
        responsibilities :math:`\gamma_j(\mu_k) \propto \exp(-\tfrac12 \|\mu_k - \mu_j\|^2_{\Sigma^{-1}})`,
        and :math:`\nabla^2 q(\mu_k) = \Sigma^{-1}` to the same accuracy: an exact local minimiser of
        :math:`q` with a closed-form Hessian.
        """
        from .. import data as _data
        mu = torch.as_tensor(np.asarray(means, dtype=float), dtype=torch.float64, device="cpu").reshape(len(means), -1)
        D = mu.shape[1]
        if D != math.prod(shape) or len(shape) not in (2, 3):
            raise InputError("means", f"images of shape {tuple(shape)}", tuple(np.shape(means)[1:]))
        X = torch.as_tensor(_data.random_crops(_data.training_images(color=len(shape) == 3), tuple(shape[-2:]),
                                               n_patches, rng=rng),
                            device="cpu").reshape(n_patches, D)
        C = torch.cov(X.T)
        C = (C + ridge * C.diagonal().mean() * torch.eye(D, dtype=torch.float64, device="cpu")) / C.diagonal().mean()
        cov = (float(scale) ** 2 * C).expand(len(mu), D, D).clone()
        w = torch.full((len(mu),), 1.0 / len(mu), dtype=torch.float64, device="cpu")
        return cls(w, mu, cov, shape, info={"fit": "separated", "scale": float(scale), "ridge": ridge,
                                            "n_patches": n_patches})

    # -- fitting ------------------------------------------------------------------------
    @classmethod
    def fit(cls, data: Any, shape: tuple[int, int], n_components: int = 10, *, n_iter: int = 50,
            reg: float = 1e-5, tol: float = 1e-6, rng: Any = 0, progress: bool = True) -> "GMMPrior":
        r"""Maximum-likelihood fit by EM on ``data`` ``(N, H, W)`` (float64).

        Covariances get ``reg * I`` added at each M-step (a floor on their eigenvalues). Starts
        from responsibilities given by the nearest of ``n_components`` random data points.
        Stops when the mean log-likelihood improves by less than ``tol`` nats per dimension.
        """
        X = torch.as_tensor(np.asarray(data), dtype=torch.float64, device="cpu").reshape(len(data), -1)
        N, D = X.shape
        if D != math.prod(shape):
            raise InputError("data", f"samples of shape {shape}", tuple(np.shape(data)[1:]))
        if N < n_components * 2:
            raise InputError("data", f"at least {2 * n_components} samples", N)
        g = np.random.default_rng(rng)
        centres = X[torch.as_tensor(g.choice(N, n_components, replace=False), device="cpu")]
        resp = torch.nn.functional.one_hot(torch.cdist(X, centres).argmin(1), n_components).to(torch.float64)
        eye = torch.eye(D, dtype=torch.float64, device="cpu")
        prev = -math.inf
        it = tqdm(range(n_iter), desc=f"EM GMM K={n_components} D={D}", disable=not progress, leave=False)
        for _ in it:
            nk = resp.sum(0) + 1e-10
            w = nk / N
            mu = (resp.T @ X) / nk[:, None]
            cov = torch.stack([((X - mu[k]).T * resp[:, k]) @ (X - mu[k]) / nk[k] for k in range(n_components)])
            cov = cov + reg * eye
            model = cls(w / w.sum(), mu, cov, shape)
            logj, *_ = model._components(X.reshape(N, *shape), 0.0)
            ll = float(torch.logsumexp(logj, -1).mean()) / D
            resp = torch.softmax(logj, dim=-1)
            it.set_postfix(loglik_per_dim=f"{ll:.4f}")
            if ll - prev < tol:
                break
            prev = ll
        model.info = {"fit": "EM", "n_samples": N, "n_components": n_components, "reg": reg,
                      "loglik_per_dim": ll}
        return model

    def save(self, path: str | Path) -> None:
        """Save parameters to ``.npz`` (atomically)."""
        from ..io import atomic_path
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, weights=self.weights.numpy(), means=self.means.numpy(),
                         covariances=self.covariances.numpy(), shape=np.array(self.shape),
                         info=json.dumps(self.info))

    @classmethod
    def load(cls, path: str | Path) -> "GMMPrior":
        z = np.load(path)
        return cls(z["weights"], z["means"], z["covariances"], tuple(int(v) for v in z["shape"]),
                   info=json.loads(str(z["info"])))

    def describe(self):
        return {**super().describe(), "shape": list(self.shape), "n_components": self.n_components, **self.info}


def cache_dir() -> Path:
    """Where fitted priors are cached (``$LANDSCAPE_CACHE`` or ``~/.cache/landscape``)."""
    return Path(os.environ.get("LANDSCAPE_CACHE", Path.home() / ".cache" / "landscape"))


def fit_natural_gmm(shape: tuple[int, ...] = (8, 8), n_components: int = 10, n_samples: int = 20000,
                    rng: int = 0, progress: bool = True, **kw: Any) -> GMMPrior:
    """A GMM fitted by EM on random ``shape`` crops of the training images (``data.TRAIN``; for a colour
    ``(3, h, w)`` shape, colour crops of ``data.COLOR_TRAIN``).

    The fit is cached on disk, keyed by its arguments, so later calls load it.
    """
    from ..data import COLOR_TRAIN, TRAIN, random_crops, training_images
    color = len(shape) == 3
    names = COLOR_TRAIN if color else TRAIN
    key = json.dumps({"shape": list(shape), "K": n_components, "N": n_samples, "rng": rng,
                      "images": list(names), **kw}, sort_keys=True)
    path = cache_dir() / f"gmm-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
    if path.exists():
        try:
            return GMMPrior.load(path)
        except Exception:  # noqa: BLE001 - a damaged cache entry is refitted
            pass
    crops = random_crops(training_images(color), tuple(shape[-2:]), n_samples, rng=rng)
    model = GMMPrior.fit(crops, shape, n_components, rng=rng, progress=progress, **kw)
    model.info["training"] = "random crops of data." + ("COLOR_TRAIN" if color else "TRAIN")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    # the cached form, so that a fit and a later load give bit-identical priors (and results)
    return GMMPrior.load(path)


class PatchGMMPrior(Prior):
    r"""EPLL-style patch prior: :math:`q(x) = \sum_i q_{\mathrm{GMM}}(P_i x)` over all circularly
    wrapped ``p x p`` patches (stride 1), where the GMM is a ``GMMPrior`` of shape ``(p, p)``, or of shape
    ``(C, p, p)`` for colour images ``(C, H, W)`` (a patch then holds every channel of its pixels).
    :math:`\nabla q = \sum_i P_i^\top \nabla q_{\mathrm{GMM}}(P_i x)`."""

    name = "patch-gmm"
    capabilities = {"energy": EXACT, "grad": EXACT, "denoise": APPROXIMATE, "hessian": EXACT}

    def __init__(self, gmm: GMMPrior):
        self.gmm = gmm
        self.patch = gmm.shape[-2:]
        self.channels = gmm.shape[0] if len(gmm.shape) == 3 else None
        self.event_ndim = gmm.event_ndim
        self._index: dict[tuple[int, ...], torch.Tensor] = {}

    def index(self, shape: tuple[int, ...], device: Any = None) -> torch.Tensor:
        """Flat indices ``(n_patches, C*p*p)`` of every wrapped patch of an image of ``shape`` (``(H, W)``, or
        ``(C, H, W)`` in colour: channel-major within a patch, as the patch GMM flattens its images)."""
        key = tuple(shape)
        if key not in self._index:
            H, W = shape[-2:]
            ph, pw = self.patch
            if ph > H or pw > W or len(shape) != self.event_ndim or (self.channels and shape[0] != self.channels):
                raise InputError("x", f"images at least as large as the patch {tuple(self.gmm.shape)}", shape)
            ar = functools.partial(torch.arange, device="cpu")
            r = (ar(H)[:, None, None, None] + ar(ph)[None, None, :, None]) % H
            c = (ar(W)[None, :, None, None] + ar(pw)[None, None, None, :]) % W
            flat = (r * W + c).reshape(H * W, 1, ph * pw)
            if self.channels:                                  # channel k of a pixel: offset k H W
                flat = flat + (ar(self.channels) * H * W)[None, :, None]
            self._index[key] = flat.reshape(H * W, -1)
        return self._index[key].to(device)

    def _lead(self, x: torch.Tensor) -> torch.Size:
        return x.shape[:x.ndim - self.event_ndim]

    def _patches(self, x):
        event = tuple(x.shape[x.ndim - self.event_ndim:])
        idx = self.index(event, x.device)
        flat = x.reshape(-1, math.prod(event))
        return flat[:, idx], idx                                # (B, n_patches, C*p*p)

    def energy(self, x):
        p, _ = self._patches(x)
        q = self.gmm.energy(p.reshape(*p.shape[:2], *self.gmm.shape))
        return q.sum(-1).reshape(self._lead(x))

    def energy_and_grad(self, x):
        p, idx = self._patches(x)
        q, g = self.gmm.energy_and_grad(p.reshape(*p.shape[:2], *self.gmm.shape))
        grad = torch.zeros(p.shape[0], math.prod(x.shape[x.ndim - self.event_ndim:]), dtype=x.dtype, device=x.device)
        grad.index_add_(1, idx.reshape(-1), g.reshape(p.shape[0], -1))
        return q.sum(-1).reshape(self._lead(x)), grad.reshape(x.shape)

    def grad(self, x):
        return self.energy_and_grad(x)[1]

    def hessian_matrix(self, x: torch.Tensor) -> torch.Tensor:
        r"""The Hessian of :math:`q` at each image of a batch ``(..., H, W)``, dense ``(..., HW, HW)``:
        :math:`\sum_i P_i^\top \nabla^2 q_{\mathrm{GMM}}(P_i x) P_i` (each patch's closed-form Hessian,
        ``GMMPrior.hessian_matrix``, added into the rows and columns of its pixels). One matrix costs no
        Hessian-vector product; ``certify.certificate`` decomposes it densely."""
        p, idx = self._patches(x)                                       # (B, n_patches, C*p*p)
        blocks = self.gmm.hessian_matrix(p.reshape(*p.shape[:2], *self.gmm.shape))   # (B, n, Cpp, Cpp)
        d = math.prod(x.shape[x.ndim - self.event_ndim:])
        flat = (idx[:, :, None] * d + idx[:, None, :]).reshape(-1)
        out = torch.zeros(p.shape[0], d * d, dtype=x.dtype, device=x.device)
        out.index_add_(1, flat, blocks.reshape(p.shape[0], -1))
        return out.reshape(*self._lead(x), d, d)

    def denoise(self, z, s, differentiable: bool = False):
        """Average over patches of each patch's exact GMM posterior mean (approximate)."""
        p, idx = self._patches(z)
        d = self.gmm.denoise(p.reshape(*p.shape[:2], *self.gmm.shape), s).reshape(p.shape[0], -1)
        out = torch.zeros(p.shape[0], math.prod(z.shape[z.ndim - self.event_ndim:]), dtype=z.dtype, device=z.device)
        out.index_add_(1, idx.reshape(-1), d)
        return (out / (self.patch[0] * self.patch[1])).reshape(z.shape)       # each value is in p*p patches

    def describe(self):
        return {"name": self.name, "capabilities": {k: str(v) for k, v in self.capabilities.items()},
                "patch": list(self.gmm.shape),
                "gmm": self.gmm.describe()}
