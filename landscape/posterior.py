r"""The blind-deblurring problem and its joint energy.

Model: :math:`y = h(\theta) \star x + b`, :math:`b \sim N(0, \sigma^2 I)`. Joint energy (nats)

.. math::
    E(\theta, x) = \underbrace{\frac{\|h(\theta) \star x - y\|^2}{2\sigma^2}}_{\text{data\_term}}
    + \underbrace{\lambda\, q(x)}_{\text{prior\_term}} + \underbrace{r(\theta)}_{\text{kernel\_term}},

with :math:`q = -\log p_X` and :math:`\lambda = 1` for the Bayesian posterior (the data term
omits the constant :math:`\tfrac M2 \log 2\pi\sigma^2`, which does not depend on
:math:`(\theta, x)`). Everything is batched over :math:`\theta` (``(B, p)``) and :math:`x`
(``(B, H, W)``) and differentiable in both.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from . import kernels as _kernels
from ._checks import InputError, choice, image2d, positive
from .operators import BOUNDARIES, Blur
from .optim import SolveInfo, lbfgs
from .priors.base import Prior


class BlindDeblur:
    """A blind-deblurring problem: data ``y``, kernel family, noise level and boundary.

    Parameters
    ----------
    y : array ``(M, N)``
        The observation.
    family : KernelFamily
    noise : float
        :math:`\\sigma > 0`.
    boundary : {"circular", "valid"}
        With ``"valid"`` the unknown image is larger than ``y`` by the kernel's radius on
        every side.
    x_true, theta_true : optional ground truth (kept in results).
    """

    def __init__(self, y: Any, family: _kernels.KernelFamily, noise: float, *, boundary: str = "circular",
                 x_true: Any = None, theta_true: Any = None, dtype: torch.dtype = torch.float64,
                 device: Any = None):
        self.dtype, self.device = dtype, device
        self.y = torch.as_tensor(image2d("y", y), dtype=dtype, device=device)
        self.family = family
        self.noise = positive("noise", noise)
        self.boundary = choice("boundary", boundary, BOUNDARIES)
        r = family.size // 2
        M, N = self.y.shape
        self.image_shape = (M, N) if boundary == "circular" else (M + 2 * r, N + 2 * r)
        if boundary == "circular" and family.size > min(M, N):
            raise InputError("kernel_size", f"a kernel no larger than the image {self.y.shape}", family.size)
        self.x_true = None if x_true is None else torch.as_tensor(image2d("x_true", x_true), dtype=dtype, device=device)
        self.theta_true = None if theta_true is None else family.check(
            torch.as_tensor(np.asarray(theta_true, dtype=float), dtype=dtype))[0].to(device)

    @classmethod
    def synthetic(cls, image: Any, family: _kernels.KernelFamily, theta: Any, noise: float, *,
                  rng: Any = None, boundary: str = "circular", dtype: torch.dtype = torch.float64,
                  device: Any = None) -> "BlindDeblur":
        """Simulate :math:`y = h(\\theta) \\star x + \\sigma n` from a sharp ``image``.

        ``rng`` seeds (or is) a ``numpy.random.Generator`` for the noise.
        """
        x = torch.as_tensor(image2d("image", image), dtype=dtype, device=device)
        th = family.check(torch.as_tensor(np.asarray(theta, dtype=float), dtype=dtype))
        sigma = positive("noise", noise)
        h = family(th.to(device))[0]
        blur = Blur(h, tuple(x.shape), boundary=choice("boundary", boundary, BOUNDARIES))
        clean = blur(x)
        n = np.random.default_rng(rng).standard_normal(tuple(clean.shape))
        y = clean + sigma * torch.as_tensor(n, dtype=dtype, device=device)
        return cls(y, family, sigma, boundary=boundary, x_true=x, theta_true=th[0], dtype=dtype, device=device)

    @property
    def kernel_true(self) -> torch.Tensor | None:
        return None if self.theta_true is None else self.family(self.theta_true[None])[0]

    def blur(self, theta: Any) -> Blur:
        """The batched operator for kernels :math:`h(\\theta)`, ``theta`` ``(B, p)``."""
        th = self.family.as_theta(theta, dtype=self.dtype, device=self.device)
        return Blur(self.family(th), self.image_shape, boundary=self.boundary)

    def describe(self) -> dict[str, Any]:
        return {"noise_sigma": self.noise, "boundary": self.boundary, "image_shape": list(self.image_shape),
                "kernel_family": self.family.describe()}


class _Subset:
    """The blur restricted to a subset of its kernels, cached on the index object."""

    def __init__(self, blur: Blur):
        self.blur, self.idx, self.op = blur, None, blur

    def __call__(self, idx: torch.Tensor) -> Blur:
        if idx is not self.idx:
            n = self.blur.otf.shape[0] if self.blur.otf.ndim > 2 else 1
            self.op = self.blur if idx.numel() == n else self.blur.subset(idx)
            self.idx = idx
        return self.op


class Posterior:
    """The joint energy :math:`E(\\theta, x)` of a problem under a prior.

    Parameters
    ----------
    problem : BlindDeblur
    prior : Prior
    kernel_energy : callable ``theta (B, p) -> (B,)``, optional
        :math:`r(\\theta)` in nats (default 0: a flat prior on the family's domain).
    prior_weight : float
        :math:`\\lambda` (1 for the Bayesian posterior).
    """

    def __init__(self, problem: BlindDeblur, prior: Prior, *, kernel_energy: Callable | None = None,
                 prior_weight: float = 1.0):
        if not isinstance(prior, Prior):
            raise InputError("prior", "a landscape.priors.Prior", type(prior).__name__)
        if prior.shape is not None and tuple(prior.shape) != tuple(problem.image_shape):
            raise InputError("prior", f"a prior on images of shape {tuple(problem.image_shape)}",
                             f"shape {tuple(prior.shape)}")
        self.problem, self.prior = problem, prior
        self.kernel_energy = kernel_energy
        self.prior_weight = positive("prior_weight", prior_weight)

    # -- the three terms ----------------------------------------------------------------
    def theta(self, theta: Any) -> torch.Tensor:
        return self.problem.family.as_theta(theta, dtype=self.problem.dtype, device=self.problem.device)

    def data_term(self, theta: Any, x: torch.Tensor, blur: Blur | None = None) -> torch.Tensor:
        r""":math:`\|h(\theta)\star x - y\|^2 / (2\sigma^2)`, shape ``(B,)``."""
        blur = blur or self.problem.blur(theta)
        res = blur(x) - self.problem.y
        return (res ** 2).sum(dim=(-2, -1)) / (2 * self.problem.noise ** 2)

    def prior_term(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\lambda q(x)`."""
        return self.prior_weight * self.prior.energy(x)

    def kernel_term(self, theta: Any) -> torch.Tensor:
        r""":math:`r(\theta)` (zeros without a kernel prior)."""
        th = self.theta(theta)
        if self.kernel_energy is None:
            return torch.zeros(th.shape[0], dtype=th.dtype, device=th.device)
        return self.kernel_energy(th)

    def terms(self, theta: Any, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``data_term``, ``prior_term``, ``kernel_term`` and their sum ``energy``, each ``(B,)``."""
        th = self.theta(theta)
        d = self.data_term(th, x)
        p = self.prior_term(x).expand_as(d)
        k = self.kernel_term(th)
        return {"data_term": d, "prior_term": p, "kernel_term": k, "energy": d + p + k}

    def energy(self, theta: Any, x: torch.Tensor) -> torch.Tensor:
        return self.terms(theta, x)["energy"]

    # -- the inner problem min_x E(theta, x) --------------------------------------------
    def x_objective(self, theta: Any, blur: Blur | None = None) -> tuple[Callable, Blur]:
        """``fg(x, idx)``: energy and x-gradient for the items ``idx`` of the batch ``theta``."""
        th = self.theta(theta)
        blur = blur or self.problem.blur(th)
        y, s2, lam = self.problem.y, self.problem.noise ** 2, self.prior_weight
        kt = self.kernel_term(th)
        sub = _Subset(blur)

        def fg(x: torch.Tensor, idx: torch.Tensor):
            op = sub(idx)
            res = op(x) - y
            q, gq = self.prior.energy_and_grad(x)
            f = (res ** 2).sum(dim=(-2, -1)) / (2 * s2) + lam * q + kt[idx]
            return f, op.adjoint(res) / s2 + lam * gq

        return fg, blur

    def prior_curvature(self, x: torch.Tensor, rng: int = 0) -> float:
        r"""Rayleigh quotient :math:`v^\top \nabla^2 (\lambda q)(x) v / \|v\|^2` along a random
        white direction, by a finite difference of gradients (a scale for preconditioning)."""
        g = torch.Generator(device="cpu").manual_seed(rng)
        v = torch.randn(x.shape[-2:], generator=g, dtype=x.dtype).to(x.device)
        x1 = x.reshape(-1, *x.shape[-2:])[:1]
        eps = 1e-4 * max(float(x1.abs().max()), 1.0) / float(v.abs().max())
        gp = self.prior.grad(x1 + eps * v) - self.prior.grad(x1 - eps * v)
        c = float((gp * v).sum() / (2 * eps * (v * v).sum())) * self.prior_weight
        return max(c, 1e-6)

    def default_curvature(self, method: str, x: torch.Tensor) -> float:
        r"""Scalar prior curvature :math:`c` of the preconditioners: :math:`\lambda/s^2` for HQS with a
        prior defined at a noise level ``s`` (one denoiser step per iteration), else
        ``prior_curvature(x)``."""
        s = getattr(self.prior, "s", None)
        return self.prior_weight / s ** 2 if (method == "hqs" and s) else self.prior_curvature(x)

    def solver_method(self, method: str = "auto") -> str:
        """The inner solver ``argmin_x`` uses: ``"auto"`` is ``"hqs"`` for priors whose energy is only
        approximate (known through their score), else ``"lbfgs"``."""
        choice("method", method, ("auto", "lbfgs", "hqs"))
        if method != "auto":
            return method
        return "hqs" if self.prior.capabilities.get("energy") == "approximate" else "lbfgs"

    def argmin_x(self, theta: Any, x0: torch.Tensor | None = None, *, method: str = "auto",
                 max_iter: int = 1000, ftol: float = 1e-14, gtol: float = 1e-9, etol: float = 0.0,
                 memory: int = 4, xtol: float = 1e-6, curvature: float | None = None, accelerate: bool | None = None,
                 energies: bool = True,
                 progress: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor], SolveInfo]:
        r"""Solve :math:`\hat x(\theta_b) = \arg\min_x E(\theta_b, x)` for every :math:`\theta_b`.

        ``method="lbfgs"``: batched L-BFGS (``optim.lbfgs``), preconditioned by
        :math:`M = \mathcal F^* \mathrm{diag}(1 / (|\hat h|^2/\sigma^2 + c)) \mathcal F`, the data
        term's Fourier-diagonal Hessian plus a scalar prior curvature :math:`c`; needs energies
        (line search); stops on ``ftol``/``gtol``/``etol``; keeps ``memory`` pairs (4 measured fastest
        at equal accuracy in ``benchmarks/profile_scan.py``).

        ``method="hqs"``: gradient-only, for priors known through their score (``TweediePrior``):
        :math:`x_{k+1} = x_k - M \nabla_x E(x_k)`, i.e. the data step solved exactly by FFT
        around a linearised prior, :math:`(H^\top H/\sigma^2 + c)\,x_{k+1} = H^\top y/\sigma^2 + c\,x_k - \lambda\nabla q(x_k)`;
        with :math:`c = \lambda/s^2` and a Tweedie score this is half-quadratic splitting /
        plug-and-play with one denoiser call per iteration. Stops when
        :math:`\|x_{k+1} - x_k\| \le` ``xtol`` :math:`\|x_k\|`; Nesterov momentum with adaptive
        restart accelerates it. Energies are evaluated once, at the end.

        ``etol`` (both methods; 0: not used) also stops an item once the preconditioned Newton
        decrement :math:`\tfrac12 \nabla_x E^\top M \nabla_x E` (with the starting ``c``), an
        estimate of :math:`E(\theta, x) - \min_x E(\theta, \cdot)` in nats, exact for a Gaussian
        prior of curvature ``c``, falls to ``etol``: a tolerance on the energy itself, the quantity
        profile energies are compared on.

        ``"auto"``: ``"hqs"`` when the prior's energy is only approximate, else ``"lbfgs"``.
        ``accelerate`` adds Nesterov momentum to ``"hqs"`` (default: only for priors whose
        energy is exact; learned scores get the plain, safeguarded iteration).
        ``energies=False`` skips the final evaluation of the terms (returned empty), which for
        score-only priors costs a line integral per item.
        Starts from ``x0`` (``(B, H, W)`` or one image), by default the observation
        (edge-padded for the valid boundary).
        """
        th = self.theta(theta)
        B = th.shape[0]
        method = self.solver_method(method)
        blur = self.problem.blur(th)
        if x0 is None:
            x0 = self.default_start()
        x0 = x0.to(dtype=self.problem.dtype, device=self.problem.device)
        if x0.ndim == 2:
            x0 = x0.expand(B, *x0.shape)
        x0 = x0.contiguous()
        if curvature is None:
            curvature = self.default_curvature(method, x0)
        data_curv = (blur.otf.real ** 2 + blur.otf.imag ** 2) / self.problem.noise ** 2
        if method == "lbfgs":
            fg, _ = self.x_objective(th, blur)
            denom = data_curv + curvature
            cache: dict[str, Any] = {}

            def precond(v, idx):
                if cache.get("idx") is not idx:
                    cache["idx"], cache["d"] = idx, denom if idx.numel() == B else denom[idx]
                return torch.fft.irfft2(torch.fft.rfft2(v) / cache["d"], s=v.shape[-2:])

            x, info = lbfgs(fg, x0, max_iter=max_iter, ftol=ftol, gtol=gtol, etol=etol, memory=memory, precond=precond,
                            progress=progress, desc="argmin_x")
        else:
            if accelerate is None:
                accelerate = self.prior.capabilities.get("energy") != "approximate"
            x, info = self._hqs(x0, blur, data_curv, curvature, max_iter, xtol, etol,
                                accelerate, progress)
        t: dict[str, torch.Tensor] = {}
        if energies:
            with torch.no_grad():
                t = self.terms(th, x)
        return x, t, info

    def _hqs(self, x0, blur, data_curv, curvature, max_iter, xtol, etol, accelerate, progress):
        """Preconditioned gradient steps with Nesterov momentum and adaptive restart
        (O'Donoghue & Candes 2015: restart when the momentum points uphill). Safeguard for
        learned scores, whose Jacobians need not lie in [0, I]: when an item's momentum-free step
        grows twice in a row, its momentum is reset and its curvature c doubled (halving the prior
        step), so the iteration cannot run away; the stopping test rescales the step by c/c0."""
        from tqdm.auto import tqdm
        B = x0.shape[0]
        y, s2, lam = self.problem.y, self.problem.noise ** 2, self.prior_weight
        x = x0.clone()
        act = torch.arange(B, device=x.device)
        info = SolveInfo(torch.zeros(B, dtype=torch.long), torch.zeros(B, dtype=torch.bool),
                         torch.zeros(B, dtype=x.dtype), torch.zeros(B, dtype=x.dtype))
        sub = _Subset(blur)
        xa, za = x0.clone(), x0.clone()
        tk = torch.ones(B, dtype=x.dtype, device=x.device)
        c = torch.full((B,), float(curvature), dtype=x.dtype, device=x.device)
        prev = torch.full((B,), float("inf"), dtype=x.dtype, device=x.device)
        grow = torch.zeros(B, dtype=torch.long, device=x.device)
        plain = torch.ones(B, dtype=torch.bool, device=x.device)
        dc = data_curv if data_curv.ndim > 2 else data_curv.expand(B, *data_curv.shape)
        for _ in tqdm(range(max_iter), desc="argmin_x (hqs)", disable=not progress, leave=False):
            op = sub(act)
            g = op.adjoint(op(za) - y) / s2 + lam * self.prior.grad(za)
            info.n_calls += 1
            info.n_item_evals += act.numel()
            denom = (dc[act] if act.numel() < B else dc) + c[:, None, None]
            xn = za - torch.fft.irfft2(torch.fft.rfft2(g) / denom, s=g.shape[-2:])
            info.n_iter[act] += 1
            step = xn - xa
            nrm = step.flatten(1).norm(dim=1)
            # growth only counts between plain (momentum-free) steps: accelerated steps may grow
            grow = torch.where(plain, torch.where(nrm > 1.01 * prev, grow + 1, torch.zeros_like(grow)), grow)
            unstable = grow >= 2
            restart = (((za - xn) * step).flatten(1).sum(1) > 0) | unstable | (not accelerate)
            c = torch.where(unstable, 2 * c, c)
            grow = torch.where(unstable, torch.zeros_like(grow), grow)
            tn = (1 + torch.sqrt(1 + 4 * tk ** 2)) / 2
            beta = torch.where(restart, torch.zeros_like(tk), (tk - 1) / tn)
            plain = beta == 0
            tk = torch.where(restart, torch.ones_like(tk), tn)
            za = xn + beta.view(-1, 1, 1) * step
            # relative change, rescaled by c / c0 so that a shortened step is not taken for convergence
            change = nrm * (c / float(curvature)) / xa.flatten(1).norm(dim=1).clamp_min(1e-30)
            prev = nrm
            info.grad_norm[act] = g.flatten(1).norm(dim=1)
            done = change <= xtol
            if etol > 0:                    # Newton-decrement estimate of E - E*, with c0 (not c)
                d0 = (dc[act] if act.numel() < B else dc) + float(curvature)
                done |= 0.5 * (g * torch.fft.irfft2(torch.fft.rfft2(g) / d0, s=g.shape[-2:])).flatten(1).sum(1) <= etol
            x[act] = xn
            xa = xn
            if done.any():
                info.converged[act[done]] = True
                keep = ~done
                act, xa, za, tk, c, prev, grow, plain = (
                    v[keep] for v in (act, xa, za, tk, c, prev, grow, plain))
                if act.numel() == 0:
                    break
        return x, info

    def hqs_map(self, theta: Any, curvature: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        r"""The preconditioned gradient map of ``argmin_x(method="hqs")``,
        :math:`T(x) = x - M \nabla_x E(\theta, x)`, :math:`M = \mathcal F^*\mathrm{diag}(1/(|\hat h|^2/\sigma^2 + c))\mathcal F`,
        batched over ``theta`` ``(B, p)`` and ``x`` ``(B, H, W)``; ``c`` as in ``argmin_x``."""
        th = self.theta(theta)
        blur = self.problem.blur(th)
        if curvature is None:
            curvature = self.default_curvature("hqs", self.default_start())
        denom = (blur.otf.real ** 2 + blur.otf.imag ** 2) / self.problem.noise ** 2 + curvature
        y, s2, lam = self.problem.y, self.problem.noise ** 2, self.prior_weight

        def T(x: torch.Tensor) -> torch.Tensor:
            g = blur.adjoint(blur(x) - y) / s2 + lam * self.prior.grad(x)
            return x - torch.fft.irfft2(torch.fft.rfft2(g) / denom, s=g.shape[-2:])

        return T

    def fixed_point_rate(self, theta: Any, x: torch.Tensor, *, eps: float = 1e-3, tol: float = 1e-4,
                         ncv: int = 20, max_matvecs: int = 2000, curvature: float | None = None,
                         rng: Any = 0) -> torch.Tensor:
        r"""Spectral radius :math:`\rho(J_T(x))` of the HQS map ``hqs_map(theta)`` at ``x``, per item.

        The iteration :math:`x_{k+1} = T(x_k)` converges locally to a fixed point :math:`x`
        when :math:`\rho < 1`, at the rate :math:`\rho^k`; at :math:`\rho \ge 1` the fixed point
        repels along some direction and no number of iterations reaches it. For a conservative
        prior, :math:`J_T = I - M\nabla^2_x E`, so :math:`\rho > 1` means :math:`\nabla^2_x E` has
        an eigenvalue below 0 (no local minimum there) or above :math:`2/\|M\|`. For a Tweedie
        prior, :math:`J_T = (H^\top H/\sigma^2 + c)^{-1} c\, J_D` with :math:`c = \lambda/s^2`: on the blur's
        near-null space :math:`J_T \approx J_D`, so an expansive denoiser
        (:math:`\|J_D\| > 1`) gives :math:`\rho > 1` wherever the data do not constrain :math:`x`.

        The largest-magnitude eigenvalue is found by implicitly restarted Arnoldi
        (``scipy.sparse.linalg.eigs``, ``ncv`` Krylov vectors, relative tolerance ``tol``) on
        central differences :math:`J_T v \approx (T(x + \epsilon v) - T(x - \epsilon v)) / 2\epsilon`,
        :math:`\epsilon` = ``eps`` :math:`\|x\|` (two gradient evaluations per product; any prior).
        Power iteration would need hundreds of products: a learned prior's eigenvalues cluster
        near 1. Returns ``(B,)`` moduli (the best Ritz value when Arnoldi stops at
        ``max_matvecs`` products before ``tol``; NaN when it has none).
        """
        from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs
        th = self.theta(theta)
        x = x.to(dtype=self.problem.dtype, device=self.problem.device)
        x = x.expand(th.shape[0], *x.shape[-2:]) if x.ndim == 2 else x
        g = np.random.default_rng(rng)
        shape = tuple(x.shape[-2:])
        n = shape[0] * shape[1]
        out = torch.zeros(th.shape[0], dtype=torch.float64)
        for b in range(th.shape[0]):
            T = self.hqs_map(th[b:b + 1], curvature)
            xb = x[b:b + 1]
            e = eps * max(float(xb.norm()), 1e-12)

            def matvec(v: np.ndarray) -> np.ndarray:
                w = torch.as_tensor(np.real(v).reshape(1, *shape), dtype=x.dtype, device=x.device)
                w = w / max(float(w.norm()), 1e-300)
                nv = float(np.linalg.norm(np.real(v)))
                with torch.no_grad():
                    jv = (T(xb + e * w) - T(xb - e * w)) / (2 * e)
                return jv.reshape(-1).double().cpu().numpy() * nv

            op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
            try:
                vals = eigs(op, k=1, which="LM", v0=g.standard_normal(n), ncv=min(ncv, n - 1), tol=tol,
                            maxiter=max(1, max_matvecs // ncv), return_eigenvectors=False)
            except ArpackNoConvergence as exc:      # the best Ritz value so far, else unknown
                vals = exc.eigenvalues if len(exc.eigenvalues) else np.array([np.nan])
            out[b] = float(np.abs(vals).max())
        return out

    def default_start(self) -> torch.Tensor:
        """The observation, edge-padded to the image shape for the valid boundary."""
        y = self.problem.y
        if self.problem.boundary == "circular":
            return y.clone()
        r = self.problem.family.size // 2
        return torch.nn.functional.pad(y[None, None], (r, r, r, r), mode="replicate")[0, 0]
