r"""Second-order operators: Hessian-vector products of the prior and of the joint energy.

* ``prior_hvp(prior, x)`` — :math:`v \mapsto \nabla^2 q(x)\,v` (the prior's own ``hvp_operator``: double
  backward through an explicit energy, or for a Tweedie prior the Jacobian-vector product of its score,
  :math:`\nabla^2 q\,v = (v - J_D v)/s^2`; ``symmetric=True`` uses :math:`\tfrac12(J + J^\top)`), and
  ``prior_operator`` the same as a ``scipy.sparse.linalg.LinearOperator``.
* ``joint_hvp(post, theta, x)`` — the Hessian of :math:`E(\theta, x)` in :math:`(\theta, x)` together,
  as a ``LinearOperator`` on the flattened pair (autograd; any prior with an energy, or a score
  prior's HVP in the :math:`x` block); ``joint_gradient`` its gradient.
* ``joint_hessian_matrix(post, theta, x)`` — the same as a dense matrix, for priors that assemble their
  own Hessian (``assembles``).

The eigensolvers that read these operators are in :mod:`landscape.eigen`; the classification of
critical points (polish, Newton, certificate) in :mod:`landscape.certify`.

Checks (``tests/test_hessian.py``): the GMM Hessian in closed form,
:math:`\nabla^2 q = \sum_k \gamma_k \Sigma_k^{-1} - \big(\sum_k \gamma_k g_k g_k^\top - \bar g \bar g^\top\big)`,
:math:`g_k = \Sigma_k^{-1}(x - \mu_k)`; the joint Hessian of a Gaussian-prior problem against
``torch.autograd.functional.hessian``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ._checks import InputError
from .eigen import columns
from .io import host
from .posterior import Posterior
from .priors.base import APPROXIMATE, EXACT, Prior


def _finite(name: str, t: torch.Tensor) -> None:
    if not torch.isfinite(t).all():
        raise InputError(name, "a point where the energy and its gradient are finite", "NaN or inf")


def prior_hvp(prior: Prior, x: torch.Tensor, *, symmetric: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    r""":math:`v \mapsto \nabla^2 q(x)\,v` at one image ``x`` ``(H, W)``, for one ``v`` ``(H, W)`` or a batch
    ``(B, H, W)`` at once (the batch goes through the prior as ``B`` copies of ``x``: one batched double
    backward, or one batched JVP and VJP of the denoiser, instead of ``B`` calls).

    Parameters
    ----------
    prior : Prior
        An explicit energy (autograd twice), or a Tweedie prior (its ``denoiser`` and level ``s``).
    x : Tensor ``(H, W)``
    symmetric : bool
        Tweedie priors: the symmetric part :math:`(v - \tfrac12(J + J^\top)v)/s^2` (else :math:`(v - Jv)/s^2`).

    Returns
    -------
    callable ``v (H, W) or (B, H, W) -> same shape``
    """
    x = x.detach()
    _finite("x", x)
    batched = prior.hvp_operator(x, symmetric)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return batched(v[None])[0] if v.dim() == x.dim() else batched(v)
    return hvp


def prior_operator(prior: Prior, x: torch.Tensor):
    """The Hessian of q at ``x`` as a scipy ``LinearOperator`` (``hessian.prior_hvp``; ``matmat`` batched)."""
    from scipy.sparse.linalg import LinearOperator
    hv = prior_hvp(prior, x)

    def matmat(V: np.ndarray) -> np.ndarray:
        V = torch.as_tensor(np.asarray(V).reshape(x.numel(), -1).T.reshape(-1, *x.shape), dtype=torch.float64,
                            device=x.device)
        return host(hv(V).reshape(V.shape[0], -1)).T

    return LinearOperator((x.numel(),) * 2, dtype=np.float64, matmat=matmat,
                          matvec=lambda v: matmat(np.asarray(v).reshape(-1, 1))[:, 0])

def joint_hvp(post: Posterior, theta: Any, x: torch.Tensor, *, prior: bool = True):
    r"""The Hessian of :math:`E(\theta, x)` in :math:`(\theta, x)` as a ``LinearOperator`` of size
    :math:`p + HW` (float64 products; the :math:`\theta` block first). ``matmat`` applies it to a block of
    vectors in one batched double backward (``B`` copies of the pair). ``prior=False``: the data and
    kernel terms alone."""
    from scipy.sparse.linalg import LinearOperator
    th = post.theta(theta)[0].detach()
    x = x.detach().to(post.problem.dtype)
    p, n = th.numel(), x.numel()
    score_prior = post.prior.capabilities.get("energy") == APPROXIMATE
    qh = prior_hvp(post.prior, x) if score_prior and prior else None

    def data_and_kernel(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return post.data_term(t, z) + post.kernel_term(t)

    def energy(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return data_and_kernel(t, z) + post.prior_term(z)

    f = energy if prior and not score_prior else data_and_kernel

    def matmat(W: np.ndarray) -> np.ndarray:
        W = torch.as_tensor(np.asarray(W).reshape(p + n, -1).T, dtype=x.dtype, device=x.device)     # (B, p + n)
        B = W.shape[0]
        wt, wx = W[:, :p].reshape(B, *th.shape), W[:, p:].reshape(B, *x.shape)
        t_ = th.expand(B, *th.shape).clone().requires_grad_(True)
        z_ = x.expand(B, *x.shape).clone().requires_grad_(True)
        with torch.enable_grad():                   # double backward: H w = d/de grad E(. + e w), per copy
            gt, gx = torch.autograd.grad(f(t_, z_).sum(), (t_, z_), create_graph=True)
            ht, hx = torch.autograd.grad((gt * wt).sum() + (gx * wx).sum(), (t_, z_), allow_unused=True)
        ht = torch.zeros_like(t_) if ht is None else ht
        hx = torch.zeros_like(z_) if hx is None else hx
        if qh is not None:
            hx = hx + post.prior_weight * qh(wx)
        return host(torch.cat([ht.reshape(B, -1), hx.reshape(B, -1)], 1).double()).T

    def matvec(w: np.ndarray) -> np.ndarray:
        return matmat(np.asarray(w).reshape(-1, 1))[:, 0]

    return LinearOperator((p + n, p + n), matvec=matvec, rmatvec=matvec, matmat=matmat, dtype=np.float64)


def joint_gradient(post: Posterior, theta: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`(\partial_\theta E, \nabla_x E)` at one pair (the prior's gradient for a score prior)."""
    th = post.theta(theta)[0].detach().clone().requires_grad_(True)
    z = x.detach().to(post.problem.dtype).clone().requires_grad_(True)
    with torch.enable_grad():
        e = (post.data_term(th[None], z[None]) + post.kernel_term(th[None]))[0]
        gt, gx = torch.autograd.grad(e, (th, z))
    gx = gx + post.prior_weight * post.prior.grad(z.detach()[None])[0]
    _finite("energy gradient", torch.cat([gt.reshape(-1), gx.reshape(-1)]))
    return gt, gx


#: largest dimension p + HW for which a prior's assembled Hessian (``prior.hessian_matrix``) is used
#: (a dense float64 matrix of 8192^2 is 0.5 GB)
ASSEMBLED_MAX = 8192
#: columns per call for the data and kernel terms' Hessian (FFT convolutions; at 64x64 on this CPU 64 per
#: call builds the 4097^2 matrix in 3.4 s, 512 per call in 5.7 s)
DATA_BATCH = 64


def assembles(prior: Prior, dimension: int) -> bool:
    """Does ``prior`` assemble its Hessian (``hessian_matrix``) and does a dense matrix of ``dimension``
    unknowns fit (:data:`ASSEMBLED_MAX`)? Then certificates and Newton steps use the matrix."""
    return prior.capability("hessian") == EXACT and dimension <= ASSEMBLED_MAX


def joint_hessian_matrix(post: Posterior, theta: Any, x: torch.Tensor) -> np.ndarray:
    r"""The Hessian of :math:`E(\theta, x)` as a dense matrix ``(p + HW, p + HW)`` (:math:`\theta` first),
    for a prior that assembles its own (``prior.hessian_matrix``, e.g. the exact and patch GMMs):
    the data and kernel terms by batched double-backward products (``joint_hvp(..., prior=False)``: cheap
    FFT convolutions), plus
    ``prior_weight`` times the prior's matrix in the :math:`x` block. Equals ``dense_matrix(joint_hvp(...))``
    without a single product through the prior (``tests/test_hessian.py``)."""
    if post.prior.capability("hessian") != EXACT:
        raise InputError("prior", "a prior with hessian_matrix (exact GMM, patch GMM)", post.prior.name)
    x = x.detach().to(post.problem.dtype)
    _finite("x", x)
    p = post.theta(theta)[0].numel()
    H = columns(joint_hvp(post, theta, x, prior=False), batch=DATA_BATCH)
    H[p:, p:] += post.prior_weight * host(post.prior.hessian_matrix(x[None])[0].double())
    _finite("Hessian", torch.as_tensor(H, device="cpu"))
    return 0.5 * (H + H.T)


