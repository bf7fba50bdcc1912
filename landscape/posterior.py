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
from ._checks import InputError, choice, image_array, positive
from .operators import BOUNDARIES, Blur, BlurSubset
from .optim import SolveInfo
from .priors.base import Prior


class BlindDeblur:
    """A blind-deblurring problem: data ``y``, kernel family, noise level and boundary.

    Parameters
    ----------
    y : array ``(M, N)``, or ``(C, M, N)`` for a colour observation
        The observation. Colour problems blur every channel by the same kernel; their images are
        ``(C, H, W)`` throughout (``event_shape``) and their energies sum over channels.
    family : KernelFamily
    noise : float
        :math:`\\sigma > 0`.
    boundary : {"circular", "valid"}
        With ``"valid"`` the unknown image is larger than ``y`` by the kernel's radius on
        every side.
    x_true, theta_true : optional ground truth (kept in results).
    dtype : torch.dtype
    device : torch.device or str, optional
        Where every tensor of the problem lives (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``); default: the
        device of ``y`` when it is a tensor, else torch's default device. Solvers, scans and descents allocate
        on it; their records come back to the host (``io.host``).
    """

    def __init__(self, y: Any, family: _kernels.KernelFamily, noise: float, *, boundary: str = "circular",
                 x_true: Any = None, theta_true: Any = None, dtype: torch.dtype = torch.float64,
                 device: Any = None):
        if device is None and isinstance(y, torch.Tensor):
            device = y.device                                    # a tensor's problem stays where it is
        self.y = torch.as_tensor(image_array("y", y), dtype=dtype, device=device)
        self.dtype, self.device = dtype, self.y.device         # every tensor of the problem lives there
        self.channels = self.y.shape[0] if self.y.ndim == 3 else None
        self.family = family
        self.noise = positive("noise", noise)
        self.boundary = choice("boundary", boundary, BOUNDARIES)
        r = family.size // 2
        M, N = self.y.shape[-2:]
        self.image_shape = (M, N) if boundary == "circular" else (M + 2 * r, N + 2 * r)
        if boundary == "circular" and family.size > min(M, N):
            raise InputError("kernel_size", f"a kernel no larger than the image {tuple(self.y.shape)}", family.size)
        self.x_true = None if x_true is None else torch.as_tensor(image_array("x_true", x_true), dtype=dtype,
                                                                  device=self.device)
        if self.x_true is not None and (self.x_true.ndim == 3) != (self.channels is not None):
            raise InputError("x_true", "an image with the observation's channels", tuple(self.x_true.shape))
        self.theta_true = None if theta_true is None else family.check(
            theta_true, dtype=dtype, device=self.device)[0]

    @classmethod
    def synthetic(cls, image: Any, family: _kernels.KernelFamily, theta: Any, noise: float, *,
                  rng: Any = None, boundary: str = "circular", dtype: torch.dtype = torch.float64,
                  device: Any = None) -> "BlindDeblur":
        """Simulate :math:`y = h(\\theta) \\star x + \\sigma n` from a sharp ``image``.

        ``rng`` seeds (or is) a ``numpy.random.Generator`` for the noise.
        """
        if device is None and isinstance(image, torch.Tensor):
            device = image.device
        x = torch.as_tensor(image_array("image", image), dtype=dtype, device=device)
        th = family.check(theta, dtype=dtype, device=x.device)
        sigma = positive("noise", noise)
        h = family(th)[0]
        blur = Blur(h, tuple(x.shape[-2:]), boundary=choice("boundary", boundary, BOUNDARIES),
                    channels=x.shape[0] if x.ndim == 3 else None)
        clean = blur(x)
        n = np.random.default_rng(rng).standard_normal(tuple(clean.shape))
        y = clean + sigma * torch.as_tensor(n, dtype=dtype, device=x.device)
        return cls(y, family, sigma, boundary=boundary, x_true=x, theta_true=th[0], dtype=dtype, device=x.device)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one unknown image: ``image_shape``, or ``(C, *image_shape)`` for colour."""
        return self.image_shape if self.channels is None else (self.channels, *self.image_shape)

    @property
    def event_ndim(self) -> int:
        return len(self.event_shape)

    @property
    def kernel_true(self) -> torch.Tensor | None:
        return None if self.theta_true is None else self.family(self.theta_true[None])[0]

    def blur(self, theta: Any) -> Blur:
        """The batched operator for kernels :math:`h(\\theta)`, ``theta`` ``(B, p)``."""
        th = self.family.as_theta(theta, dtype=self.dtype, device=self.device)
        return Blur(self.family(th), self.image_shape, boundary=self.boundary, channels=self.channels)

    def describe(self) -> dict[str, Any]:
        out = {"noise_sigma": self.noise, "boundary": self.boundary, "image_shape": list(self.image_shape),
               "kernel_family": self.family.describe()}
        return out if self.channels is None else {**out, "channels": self.channels}


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
        if prior.shape is not None and tuple(prior.shape) != tuple(problem.event_shape):
            raise InputError("prior", f"a prior on images of shape {tuple(problem.event_shape)}",
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
        return (res ** 2).flatten(res.ndim - self.problem.event_ndim).sum(-1) / (2 * self.problem.noise ** 2)

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

    def energy_at_kernel(self, kernel: Any, x: Any) -> float:
        r""":math:`\|h \star x - y\|^2/(2\sigma^2) + \lambda q(x)` at an explicit centred odd kernel ``h``, which
        need not lie in the family (an estimate on another support, :math:`E[h \mid y]`); no kernel term."""
        on = dict(dtype=self.problem.dtype, device=self.problem.device)
        h, x = (v.to(**on) if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v, dtype=float), **on)
                for v in (kernel, x))
        with torch.no_grad():
            res = Blur(h, self.problem.image_shape, boundary=self.problem.boundary,
                       channels=self.problem.channels)(x) - self.problem.y
            return float((res ** 2).sum() / (2 * self.problem.noise ** 2) + self.prior_term(x[None])[0])

    # -- the inner problem min_x E(theta, x) --------------------------------------------
    def x_objective(self, theta: Any, blur: Blur | None = None) -> tuple[Callable, Blur]:
        """``fg(x, idx)``: energy and x-gradient for the items ``idx`` of the batch ``theta``."""
        th = self.theta(theta)
        blur = blur or self.problem.blur(th)
        kt = self.kernel_term(th)
        sub = BlurSubset(blur)

        def fg(x: torch.Tensor, idx: torch.Tensor):
            f, g = self.x_energy_and_gradient(sub(idx), x)
            return f + kt[idx], g

        return fg, blur

    def x_gradient(self, blur: Blur, x: torch.Tensor, *, prior_grad: torch.Tensor | None = None,
                   noise_var: float | None = None) -> torch.Tensor:
        r""":math:`\nabla_x E = H^\top(Hx - y)/\sigma^2 + \lambda \nabla q(x)` for a batch ``x`` ``(B, H, W)``
        under ``blur`` (batched like ``x``, or one kernel): the one place the toolkit writes it.

        ``prior_grad`` replaces :math:`\nabla q(x)` (a score at another level, as the annealed samplers
        use); ``noise_var`` replaces :math:`\sigma^2` (a widened likelihood)."""
        s2 = self.problem.noise ** 2 if noise_var is None else noise_var
        gq = self.prior.grad(x) if prior_grad is None else prior_grad
        return blur.misfit(x, self.problem.y)[1] / s2 + self.prior_weight * gq

    def x_energy_and_gradient(self, blur: Blur, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`\|Hx - y\|^2/(2\sigma^2) + \lambda q(x)` per item ``(B,)`` (no kernel term) and
        :math:`\nabla_x E` (``x_gradient``), from one prior call and ``Blur.misfit`` (two FFTs)."""
        s2, lam = self.problem.noise ** 2, self.prior_weight
        sq, adj = blur.misfit(x, self.problem.y)
        q, gq = self.prior.energy_and_grad(x)
        return sq / (2 * s2) + lam * q, adj / s2 + lam * gq

    def argmin_x(self, theta: Any, x0: torch.Tensor | None = None, solver: Any = None, *, energies: bool = True,
                 progress: bool = False, **overrides: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor], SolveInfo]:
        """``solvers.argmin_x(self, theta, x0, solver)``: :math:`\\arg\\min_x E(\\theta_b, x)` per item.

        ``solver`` is a ``solvers.SolverOptions``; keyword ``overrides`` (``max_iter=300``, ...)
        replace its fields, for interactive use. See ``solvers.argmin_x`` for the methods.
        """
        from . import solvers
        return solvers.argmin_x(self, theta, x0, solvers.options(solver, **overrides), energies=energies,
                                progress=progress)

    def default_start(self) -> torch.Tensor:
        """The observation, edge-padded to the image shape for the valid boundary."""
        y = self.problem.y
        if self.problem.boundary == "circular":
            return y.clone()
        r = self.problem.family.size // 2
        return torch.nn.functional.pad(y[None], (r, r, r, r), mode="replicate")[0]   # (1, [C,] H, W): gray or colour
