r"""Priors from learned (or any) denoisers :math:`D(x, s)`.

* ``TweediePrior(D, s)``: the score of the smoothed prior by Tweedie's identity,
  :math:`\nabla \log p_s(x) = (D(x, s) - x)/s^2`, so :math:`\nabla q \approx (x - D(x,s))/s^2`.
  Energies are line integrals of that field,
  :math:`q(x_1) - q(x_0) = \int_0^1 \langle \nabla q(x_0 + t\,\delta), \delta\rangle dt`,
  :math:`\delta = x_1 - x_0`, by Gauss-Legendre quadrature with an error estimate (the
  difference between ``n`` and ``2n`` nodes). A learned field need not be conservative
  (see ``jacobian_asymmetry``), so the value depends on the path: the straight segment is used.
* ``GradientStepPrior(model, s)``: :math:`D_s = x - \nabla g_s` with an explicit potential;
  :math:`q(x) = g_s(x)/s^2` up to an additive constant (the scaling that makes
  :math:`D_s = x - s^2\nabla q` Tweedie's identity), gradient by autograd.
* ``DiffusionPrior(D)``: a noise-conditional denoiser is a diffusion model; the probability-flow
  ODE :math:`dx/d\sigma = (x - D(x, \sigma))/\sigma` carries :math:`x` at :math:`\sigma_{\min}`
  to :math:`\sigma_{\max}`, where :math:`p_{\sigma_{\max}} \approx N(\mu, (\sigma_{\max}^2 + v) I)`,
  and :math:`\log p_{\sigma_{\min}}(x) = \log p_{\sigma_{\max}}(x(\sigma_{\max})) +
  \int (N - \mathrm{tr}\,J_D)\, d\log\sigma` (the ODE in :math:`\log\sigma` is
  :math:`dx/d\log\sigma = x - D`, whose divergence is :math:`N - \mathrm{tr} J_D`). Fixed-step RK4
  in :math:`\log\sigma`; divergence exact (autograd, small images) or by Hutchinson probes with a
  standard error, the probes shared between images when asked (common random numbers).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from .._checks import InputError, positive
from .base import APPROXIMATE, EXACT, UNAVAILABLE, UP_TO_CONSTANT, Prior

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]


def _gauss_legendre(n: int, dtype, device):
    t, w = np.polynomial.legendre.leggauss(n)
    return (torch.as_tensor((t + 1) / 2, dtype=dtype, device=device),
            torch.as_tensor(w / 2, dtype=dtype, device=device))


class TweediePrior(Prior):
    """Score of :math:`p_s` from a denoiser at level ``s`` (Tweedie)."""

    name = "tweedie"
    capabilities = {"energy": APPROXIMATE, "grad": APPROXIMATE, "denoise": APPROXIMATE}

    def __init__(self, denoiser: Denoiser, s: float = 1e-2, *, nodes: int = 8, reference: float = 0.5,
                 name: str = "tweedie", color: bool = False):
        self.denoiser, self.s = denoiser, positive("s", s)
        self.nodes, self.reference, self.name = int(nodes), float(reference), name
        self.event_ndim = 3 if color else 2                 # colour: images (..., C, H, W)


    def grad(self, x):
        with torch.no_grad():
            self._count()
            return (x - self.denoiser(x, self.s)) / self.s ** 2

    def denoise(self, z, s, differentiable: bool = False):
        self._count()
        if differentiable:
            return self.denoiser(z, s)
        with torch.no_grad():
            return self.denoiser(z, s)

    def energy_difference(self, x0: torch.Tensor, x1: torch.Tensor, nodes: int | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`q(x_1) - q(x_0)` along the segment, and an error estimate.

        Gauss-Legendre with ``n`` and ``2n`` nodes (``3n`` denoiser calls per image); returns the
        ``2n`` value and ``|I_{2n} - I_n|`` as its error estimate.
        """
        n = nodes or self.nodes
        x0, x1 = torch.broadcast_tensors(x0, x1)
        d = x1 - x0
        vals = []
        for m in (n, 2 * n):
            t, w = _gauss_legendre(m, x0.dtype, x0.device)
            pts = x0[None] + t.view(-1, *[1] * x0.ndim) * d[None]          # (m, ..., H, W)
            ev = self.event_ndim
            g = self.grad(pts.reshape(-1, *x0.shape[-ev:])).reshape(pts.shape)
            vals.append(torch.einsum("m,m...->...", w, (g * d[None]).sum(dim=tuple(range(-ev, 0)))))
        return vals[1], (vals[1] - vals[0]).abs()

    def energy(self, x):
        """:math:`q(x) - q(\\text{reference})` along the segment from the constant image."""
        return self.energy_difference(torch.full_like(x, self.reference), x)[0]

    def energy_and_grad(self, x):
        return self.energy(x), self.grad(x)

    def describe(self):
        return {**super().describe(), "s": self.s, "nodes": self.nodes, "reference": self.reference}


class GradientStepPrior(Prior):
    """Explicit potential of a gradient-step denoiser: :math:`q = g_s / s^2` (+ const)."""

    name = "gradient-step"
    capabilities = {"energy": UP_TO_CONSTANT, "grad": EXACT, "denoise": EXACT}

    def __init__(self, model: Any, s: float = 1e-2, name: str = "gradient-step"):
        self.model, self.s, self.name = model, positive("s", s), name
        self.event_ndim = getattr(model, "event_ndim", 2)     # a colour network: images (..., C, H, W)


    def _dtype(self):
        return next(self.model.parameters()).dtype

    def energy(self, x):
        # differentiable where the caller asks for it (autograd Hessians, joint gradients), no graph otherwise
        with torch.set_grad_enabled(torch.is_grad_enabled() and x.requires_grad):
            self._count()
            return (self.model.potential(x.to(self._dtype()), self.s) / self.s ** 2).to(x.dtype)

    def energy_and_grad(self, x):
        self._count()
        g, grad = self.model.potential_and_grad(x.to(self._dtype()), self.s)
        return (g.detach() / self.s ** 2).to(x.dtype), (grad / self.s ** 2).to(x.dtype)

    def grad(self, x):
        return self.energy_and_grad(x)[1]

    def denoise(self, z, s, differentiable: bool = False):
        self._count()
        out = self.model(z.to(self._dtype()), s).to(z.dtype)
        return out if differentiable else out.detach()

    def describe(self):
        return {**super().describe(), "s": self.s}


def divergence(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, probes: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    r"""``fn(x)`` and :math:`\mathrm{tr}\, J_{fn}(x)` per batch item of ``x`` ``(B, H, W)``.

    ``probes=None``: exact, one vector-Jacobian product per pixel (batched; small images).
    ``probes`` ``(P, B, H, W)`` (Rademacher): Hutchinson's :math:`\frac1P\sum_p \varepsilon_p^\top J \varepsilon_p`;
    also returns the standard error of that mean.
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        y = fn(xg)
        if probes is None:
            N = x[0].numel()
            basis = torch.eye(N, dtype=x.dtype, device=x.device).reshape(N, 1, *x.shape[1:]).expand(N, *x.shape)
            cols = [torch.autograd.grad(y, xg, basis[i], retain_graph=i < N - 1)[0] for i in range(N)]
            tr = sum((c.flatten(1)[:, i]) for i, c in enumerate(cols))
            return y.detach(), tr, None
        P = probes.shape[0]
        est = []
        for p in range(P):
            (v,) = torch.autograd.grad(y, xg, probes[p], retain_graph=p < P - 1)
            est.append((v * probes[p]).flatten(1).sum(1))
        e = torch.stack(est)
        se = e.std(0, unbiased=True) / math.sqrt(P) if P > 1 else torch.full_like(e[0], float("nan"))
        return y.detach(), e.mean(0), se


class DiffusionPrior(Prior):
    r"""Exact-in-the-limit log-density of a noise-conditional denoiser via the probability-flow ODE.

    Parameters
    ----------
    denoiser : callable ``D(x, s)`` valid for ``s`` in [``s_min``, ``s_max``]
    s_min, s_max : float
        Integration range (image units; defaults 0.002 and 10: at s = 10 the smoothed
        density of [0, 1] images is Gaussian to ~1e-7 nats per pixel).
    steps : int
        RK4 steps in :math:`\log\sigma` (4 denoiser+divergence evaluations each).
    divergence : {"exact", "hutchinson"}
    probes : int
        Hutchinson probes per evaluation.
    mean, data_var : float
        :math:`p_{s_{\max}} = N(\text{mean}, (s_{\max}^2 + \text{data\_var}) I)`.
    """

    name = "diffusion"
    capabilities = {"energy": APPROXIMATE, "grad": UNAVAILABLE, "denoise": APPROXIMATE}

    def __init__(self, denoiser: Denoiser, *, s_min: float = 0.002, s_max: float = 10.0, steps: int = 16,
                 divergence: str = "hutchinson", probes: int = 4, mean: float = 0.45, data_var: float = 0.06,
                 name: str = "diffusion", color: bool = False):
        self.event_ndim = 3 if color else 2
        if divergence not in ("exact", "hutchinson"):
            raise InputError("divergence", "'exact' or 'hutchinson'", repr(divergence))
        self.denoiser = denoiser
        self.s_min, self.s_max = positive("s_min", s_min), positive("s_max", s_max)
        if self.s_min >= self.s_max:
            raise InputError("s_max", "s_max > s_min", (s_min, s_max))
        self.steps, self.div, self.probes = int(steps), divergence, int(probes)
        self.mean, self.data_var, self.name = float(mean), float(data_var), name


    def denoise(self, z, s, differentiable: bool = False):
        self._count()
        if differentiable:
            return self.denoiser(z, s)
        with torch.no_grad():
            return self.denoiser(z, s)

    def log_density(self, x: torch.Tensor, *, rng: Any = 0, common_probes: bool = True,
                    s_min: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`\log p_{s_{\min}}(x)` (nats) per image of ``x`` ``(B, H, W)``, and its
        standard error (0 for the exact divergence). ``s_min`` overrides the integration's lower end
        for this call (one network, several smoothing levels; it must lie below ``s_max``).

        With ``common_probes`` every image uses the same Hutchinson probes at each evaluation
        (common random numbers), which makes differences between similar images far less noisy.
        """
        ev = self.event_ndim
        x = x.reshape(-1, *x.shape[-ev:])
        B, N = x.shape[0], x[0].numel()
        g = np.random.default_rng(rng)
        s_min = self.s_min if s_min is None else positive("s_min", s_min)
        if s_min >= self.s_max:
            raise InputError("s_min", f"a level below s_max = {self.s_max}", s_min)
        u0, u1 = math.log(s_min), math.log(self.s_max)
        h = (u1 - u0) / self.steps

        def rhs(xc: torch.Tensor, u: float):
            s = math.exp(u)
            probes = None
            if self.div == "hutchinson":
                shape = (self.probes, 1 if common_probes else B, *x.shape[-ev:])
                r = torch.as_tensor(g.integers(0, 2, size=shape) * 2.0 - 1.0, dtype=x.dtype, device=x.device)
                probes = r.expand(self.probes, B, *x.shape[-ev:])
            self._count()
            d, tr, se = divergence(lambda z: self.denoiser(z, s), xc, probes=probes)
            var = torch.zeros(B, dtype=x.dtype, device=x.device) if se is None else se ** 2
            return (xc - d), (N - tr), var

        xc = x.detach()
        integral = torch.zeros(B, dtype=x.dtype, device=x.device)
        var = torch.zeros_like(integral)
        u = u0
        for _ in range(self.steps):
            k1, l1, v1 = rhs(xc, u)
            k2, l2, v2 = rhs(xc + h / 2 * k1, u + h / 2)
            k3, l3, v3 = rhs(xc + h / 2 * k2, u + h / 2)
            k4, l4, v4 = rhs(xc + h * k3, u + h)
            xc = xc + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            integral = integral + h / 6 * (l1 + 2 * l2 + 2 * l3 + l4)
            var = var + (h / 6) ** 2 * (v1 + 4 * v2 + 4 * v3 + v4)
            u += h
        v = self.s_max ** 2 + self.data_var
        log_pT = -0.5 * ((xc - self.mean) ** 2).flatten(1).sum(1) / v - 0.5 * N * math.log(2 * math.pi * v)
        return (log_pT + integral).detach(), var.sqrt()

    def bits_per_dim(self, x: torch.Tensor, **kw: Any) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`-\log_2 p_{s_{\min}}(x) / N` (bits per pixel, continuous density on [0, 1] images)
        and its standard error."""
        lp, se = self.log_density(x, **kw)
        n = math.prod(x.shape[-self.event_ndim:]) * math.log(2)
        return -lp / n, se / n

    def energy(self, x):
        """:math:`q(x) = -\\log p_{s_{\\min}}(x)` (the Hutchinson noise is not reported here)."""
        return -self.log_density(x)[0].reshape(x.shape[:-self.event_ndim])

    def describe(self):
        return {**super().describe(), "s_min": self.s_min, "s_max": self.s_max, "steps": self.steps,
                "divergence": self.div, "probes": self.probes}


def jacobian_asymmetry(denoiser: Denoiser, x: torch.Tensor, s: float, *, probes: int = 8, rng: Any = 0
                       ) -> tuple[float, float]:
    r"""Relative asymmetry :math:`\|J - J^\top\|_F / \|J\|_F` of :math:`J = \partial D(x, s)/\partial x`.

    Estimated with Gaussian probes :math:`v`: :math:`\|A\|_F^2 = \mathbb E \|A v\|^2`, with
    :math:`Jv` by forward-mode and :math:`J^\top v` by reverse-mode differentiation. A true
    score field (an exact MMSE denoiser) has a symmetric Jacobian: the value is 0. Returns the
    estimate and its standard error (delta method over probes).
    """
    g = torch.Generator().manual_seed(int(rng))
    x = x.detach()
    num, den = [], []
    f = lambda z: denoiser(z, s)
    for _ in range(probes):
        v = torch.randn(x.shape, generator=g, dtype=x.dtype, device="cpu").to(x.device)
        _, jv = torch.func.jvp(f, (x,), (v,))
        _, vjp_fn = torch.func.vjp(f, x)
        (jtv,) = vjp_fn(v)
        num.append(float(((jv - jtv) ** 2).sum()))
        den.append(float((jv ** 2).sum()))
    num_a, den_a = np.array(num), np.array(den)
    ratio = math.sqrt(num_a.mean() / den_a.mean())
    se = 0.5 * ratio * math.sqrt(np.var(num_a / num_a.mean() - den_a / den_a.mean(), ddof=1) / probes) if probes > 1 else float("nan")
    return ratio, se
