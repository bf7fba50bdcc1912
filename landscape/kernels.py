r"""Blur-kernel families :math:`\theta \mapsto h(\theta)`.

Every family maps a batch of parameters ``theta`` of shape ``(B, p)`` to kernels of shape
``(B, k, k)`` that are non-negative, sum to one, are centred on an odd ``k x k`` grid, are
differentiable in :math:`\theta` (checked with ``torch.autograd.gradcheck`` in float64), and
give the exact Dirac :math:`\delta` at :math:`\theta = 0`.

Angles are in degrees, counter-clockwise from the column axis as an image is displayed
(row index pointing down). Widths, radii and lengths are in pixels.

========================  =========================  ==============================================
family                    parameters                 kernel
========================  =========================  ==============================================
``Gaussian``              ``width``                  pixel-integrated Gaussian (separable erf)
``Gaussian(aniso=True)``  ``width1, width2, angle``  point-sampled rotated Gaussian
``Defocus``               ``radius``                 disc with a one-pixel smoothstep edge
``Airy``                  ``radius``                 :math:`(2J_1(v)/v)^2`, first zero at ``radius``
``Motion``                ``length, angle``          anti-aliased line segment
``Zernike``               Noll coefficients (waves)  :math:`|\mathcal F^{-1}(e^{2\pi i\sum c_jZ_j})|^2`
``Free``                  :math:`h - \delta`         any kernel on the simplex
``Path``                  ``t``                      :math:`(1-t)\,\delta + t\,h^\star`
========================  =========================  ==============================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path as _FilePath
from typing import Any

import numpy as np
import torch

from ._checks import InputError, kernel2d

__all__ = [
    "KernelFamily", "Gaussian", "Defocus", "Airy", "Motion", "Zernike", "Free", "Path",
    "FAMILIES", "get", "dirac", "load", "project_simplex", "camera_shake",
]


def dirac(size: int, *, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
    """The centred Dirac kernel of shape ``(size, size)``."""
    h = torch.zeros(size, size, dtype=dtype or torch.get_default_dtype(), device=device)
    h[size // 2, size // 2] = 1
    return h


def project_simplex(v: torch.Tensor) -> torch.Tensor:
    r"""Euclidean projection of each row of ``v`` (last dim) onto the probability simplex.

    Solves :math:`\min_h \|h - v\|^2` s.t. :math:`h \ge 0,\ \sum h = 1` exactly by sorting
    (Held, Wolfe & Crowder 1974; Duchi et al. 2008): with :math:`u` sorted decreasingly,
    :math:`\rho = \max\{j : u_j - (\sum_{i\le j} u_i - 1)/j > 0\}`,
    :math:`\tau = (\sum_{i \le \rho} u_i - 1)/\rho` and :math:`h = \max(v - \tau, 0)`.
    """
    if not torch.isfinite(v).all():
        raise InputError("v", "finite values to project on the simplex", "NaN or inf")
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = torch.cumsum(u, dim=-1) - 1
    j = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    rho = ((u - css / j) > 0).sum(dim=-1, keepdim=True)
    tau = torch.gather(css, -1, rho - 1) / rho.to(v.dtype)
    return torch.clamp(v - tau, min=0)


class KernelFamily:
    """Base class: a differentiable, batched map ``theta (B, p) -> kernels (B, k, k)``.

    Subclasses set ``name``, ``param_names``, ``lower``/``upper`` bounds and implement
    ``_unnormalised(theta)`` returning non-negative weights; the base class normalises them.
    """

    name: str = ""
    param_names: tuple[str, ...] = ()

    @property
    def periodic(self) -> tuple[bool, ...]:
        """Which parameters are periodic over their box (a motion angle: the segment at 180° is the one at 0°)."""
        return (False,) * self.n_params

    def __init__(self, size: int = 15):
        if not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
            raise InputError("size", "an odd positive integer kernel size", size)
        self.size = int(size)

    # -- domain -------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return len(self.param_names)

    @property
    def lower(self) -> tuple[float, ...]:
        return (0.0,) * self.n_params

    @property
    def upper(self) -> tuple[float, ...]:
        return (float(self.size),) * self.n_params

    def zero(self, *, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
        """The parameter of the Dirac, shape ``(p,)``."""
        return torch.zeros(self.n_params, dtype=dtype or torch.get_default_dtype(), device=device)

    def as_theta(self, theta: Any, *, dtype: torch.dtype | None = None, device: Any = None) -> torch.Tensor:
        """Coerce ``theta`` to a tensor of shape ``(B, p)``.

        Array-likes become float64 unless ``dtype`` says otherwise; tensors keep their dtype.
        Scalars and 1-D arrays are read as a batch of scalars when ``p == 1`` and as one
        parameter vector when ``p > 1``.
        """
        t = theta if isinstance(theta, torch.Tensor) else torch.as_tensor(np.asarray(theta, dtype=np.float64),
                                                                          device=device or "cpu")
        if dtype is not None or device is not None:
            t = t.to(dtype=dtype or t.dtype, device=device)
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
        p = self.n_params
        if t.ndim == 0:
            t = t.reshape(1, 1)
        elif t.ndim == 1:
            t = t.reshape(-1, 1) if p == 1 else t.reshape(1, -1)
        if t.ndim != 2 or t.shape[1] != p:
            raise InputError("theta", f"shape (B, {p}) for family {self.name!r} "
                             f"(parameters {', '.join(self.param_names)})", tuple(theta.shape) if hasattr(theta, "shape") else theta)
        return t

    def check(self, theta: Any, **kw: Any) -> torch.Tensor:
        """Return ``as_theta(theta, **kw)``, raising :class:`InputError` outside the domain."""
        t = self.as_theta(theta, **kw)
        if not torch.isfinite(t).all():
            raise InputError("theta", "finite kernel parameters", "NaN or inf")
        lo = torch.tensor(self.lower, dtype=t.dtype, device=t.device)
        hi = torch.tensor(self.upper, dtype=t.dtype, device=t.device)
        bad = (t < lo - 1e-12) | (t > hi + 1e-12)
        if bad.any():
            i, j = map(int, bad.nonzero()[0])
            raise InputError("theta", f"{self.param_names[j]} in [{self.lower[j]:g}, {self.upper[j]:g}] "
                             f"for family {self.name!r}", f"{float(t[i, j]):g}")
        return t

    def project(self, theta: torch.Tensor) -> torch.Tensor:
        """Euclidean projection onto the parameter domain (a box for parametric families)."""
        lo = torch.tensor(self.lower, dtype=theta.dtype, device=theta.device)
        hi = torch.tensor(self.upper, dtype=theta.dtype, device=theta.device)
        return torch.maximum(torch.minimum(theta, hi), lo)

    def parameter_error(self, theta: torch.Tensor, theta_true: torch.Tensor, lo: Sequence[float] | None = None,
                        hi: Sequence[float] | None = None) -> torch.Tensor:
        r"""Per-kernel squared parameter error, each parameter over its box's width:
        :math:`\sum_j ((\theta_j - \theta^\star_j) / (hi_j - lo_j))^2`, shape ``(B,)`` (the box defaults to
        ``[lower, upper]``; a network's branch predicts in its own training box). Families whose parameters are
        periodic or matter only through another (a motion angle) override it."""
        return (((theta - theta_true) / self._width(theta, lo, hi)) ** 2).sum(1)

    def _width(self, theta: torch.Tensor, lo: Sequence[float] | None, hi: Sequence[float] | None) -> torch.Tensor:
        """The box's widths ``hi - lo`` (default ``[lower, upper]``) on ``theta``'s dtype and device."""
        lo_t = torch.as_tensor(self.lower if lo is None else lo, dtype=theta.dtype, device=theta.device)
        return torch.as_tensor(self.upper if hi is None else hi, dtype=theta.dtype, device=theta.device) - lo_t

    # -- kernels ------------------------------------------------------------------------
    def grid(self, dtype: torch.dtype, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel offsets ``(rows, cols)`` from the centre, each of shape ``(k, k)``."""
        r = torch.arange(self.size, dtype=dtype, device=device) - self.size // 2
        return torch.meshgrid(r, r, indexing="ij")

    def _unnormalised(self, theta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, theta: Any) -> torch.Tensor:
        t = self.as_theta(theta)
        w = self._unnormalised(t)
        return w / w.sum(dim=(-2, -1), keepdim=True)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description (stored in results' attrs)."""
        return {"family": self.name, "size": self.size, "params": list(self.param_names)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


_TINY = 1e-12


class Gaussian(KernelFamily):
    r"""Gaussian blur.

    Isotropic (``aniso=False``, one parameter ``width`` :math:`w`): the pixel-integrated
    Gaussian, separable,
    :math:`h_{ij} \propto g_i g_j,\ g_i = \Phi((i+\tfrac12)/w) - \Phi((i-\tfrac12)/w)`,
    which is the exact Dirac at :math:`w = 0` and smooth in :math:`w`.

    Anisotropic (``aniso=True``; ``width1, width2, angle``): point samples of
    :math:`\exp(-\tfrac12 r^\top R \,\mathrm{diag}(w_1^{-2}, w_2^{-2}) R^\top r)`; numerically a
    Dirac along an axis whose width is below about 0.15 px.
    """

    name = "gaussian"

    def __init__(self, size: int = 15, aniso: bool = False):
        super().__init__(size)
        self.aniso = bool(aniso)
        self.param_names = ("width1", "width2", "angle") if aniso else ("width",)

    @property
    def upper(self):
        return (self.size / 2, self.size / 2, 180.0) if self.aniso else (self.size / 2,)

    def _unnormalised(self, theta):
        if not self.aniso:
            w = theta[:, 0].clamp_min(_TINY)[:, None]
            i = torch.arange(self.size, dtype=theta.dtype, device=theta.device) - self.size // 2
            c = math.sqrt(2.0)
            g = 0.5 * (torch.erf((i + 0.5) / (c * w)) - torch.erf((i - 0.5) / (c * w)))
            return g[:, :, None] * g[:, None, :]
        rows, cols = self.grid(theta.dtype, theta.device)
        w1 = theta[:, 0].clamp_min(_TINY)[:, None, None]
        w2 = theta[:, 1].clamp_min(_TINY)[:, None, None]
        a = torch.deg2rad(theta[:, 2])[:, None, None]
        u = cols * torch.cos(a) - rows * torch.sin(a)   # along the first axis
        v = cols * torch.sin(a) + rows * torch.cos(a)   # along the second axis
        return torch.exp(-0.5 * ((u / w1) ** 2 + (v / w2) ** 2))

    def describe(self):
        return {**super().describe(), "aniso": self.aniso}


def _smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(0, 1)
    return t * t * (3 - 2 * t)


class Defocus(KernelFamily):
    r"""Defocus disc of radius :math:`r` with a one-pixel C\ :sup:`1` edge:
    :math:`h(\rho) \propto S(r + \tfrac12 - \rho)`, :math:`S(t) = 3t^2 - 2t^3` on [0, 1].
    At :math:`r = 0` only the centre pixel is non-zero."""

    name = "defocus"
    param_names = ("radius",)

    @property
    def upper(self):
        return (self.size / 2 - 0.5,)

    def _unnormalised(self, theta):
        rows, cols = self.grid(theta.dtype, theta.device)
        rho = torch.sqrt(rows ** 2 + cols ** 2)
        return _smoothstep(theta[:, 0, None, None] + 0.5 - rho)


class _Jinc(torch.autograd.Function):
    r""":math:`2 J_1(v)/v` with derivative :math:`-2 J_2(v)/v`, both continuous at 0."""

    @staticmethod
    def forward(ctx, v):
        small = v.abs() < 1e-6
        vs = torch.where(small, torch.ones_like(v), v)
        out = torch.where(small, 1 - v ** 2 / 8, 2 * torch.special.bessel_j1(vs) / vs)
        ctx.save_for_backward(v)
        return out

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        small = v.abs() < 1e-4
        vs = torch.where(small, torch.ones_like(v), v)
        j2 = 2 * torch.special.bessel_j1(vs) / vs - torch.special.bessel_j0(vs)
        return g * torch.where(small, -v / 4, -2 * j2 / vs)


class Airy(KernelFamily):
    r"""Airy pattern :math:`h(\rho) \propto (2J_1(v)/v)^2`, :math:`v = j_{1,1}\,\rho / r`,
    whose first dark ring is at radius :math:`r` (:math:`j_{1,1} \approx 3.8317`)."""

    name = "airy"
    param_names = ("radius",)
    _J11 = 3.8317059702075125

    @property
    def upper(self):
        return (self.size / 2,)

    def _unnormalised(self, theta):
        rows, cols = self.grid(theta.dtype, theta.device)
        rho = torch.sqrt(rows ** 2 + cols ** 2)
        r = theta[:, 0].clamp_min(_TINY)[:, None, None]
        w = _Jinc.apply(self._J11 * rho / r) ** 2
        return torch.where((r <= _TINY) & (rho > 0), torch.zeros_like(w), w)


class Motion(KernelFamily):
    r"""Linear motion blur: a segment of length :math:`L` at angle :math:`\varphi`, centred,
    anti-aliased with weight :math:`\max(0, 1 - d)` where :math:`d` is the pixel centre's
    distance to the segment. :math:`L = 0` is the Dirac."""

    name = "motion"
    param_names = ("length", "angle")

    @property
    def upper(self):
        return (float(self.size - 1), 180.0)

    @property
    def periodic(self):
        return (False, True)

    def parameter_error(self, theta, theta_true, lo=None, hi=None):
        r"""The length's squared error over its box's width squared, plus the angle's as
        :math:`(L^\star / L_{\max}) \sin^2(\pi(\hat\varphi - \varphi^\star)/180)`: periodic (the segment at
        :math:`\varphi + 180°` is the same kernel) and weighted by the true length (the angle of a short kernel
        hardly matters; of the Dirac, not at all). Shape ``(B,)``."""
        width = self._width(theta, lo, hi)
        length = ((theta[:, 0] - theta_true[:, 0]) / width[0]) ** 2
        angle = torch.sin(torch.pi * (theta[:, 1] - theta_true[:, 1]) / 180.0) ** 2
        return length + theta_true[:, 0] / width[0] * angle

    def _unnormalised(self, theta):
        rows, cols = self.grid(theta.dtype, theta.device)
        half = theta[:, 0, None, None] / 2
        a = torch.deg2rad(theta[:, 1])[:, None, None]
        ux, uy = torch.cos(a), -torch.sin(a)              # unit vector in (col, row) coords
        s = torch.maximum(torch.minimum(cols * ux + rows * uy, half), -half)
        d2 = (cols - s * ux) ** 2 + (rows - s * uy) ** 2
        return torch.relu(1 - torch.sqrt(d2 + 1e-30))


def noll_to_nm(j: int) -> tuple[int, int]:
    """Noll index ``j >= 1`` to radial order ``n`` and azimuthal frequency ``m``."""
    if j < 1:
        raise InputError("noll", "Noll indices >= 1", j)
    n, j1 = 0, j - 1
    while j1 > n:
        n += 1
        j1 -= n
    m = (-1) ** j * ((n % 2) + 2 * ((j1 + ((n + 1) % 2)) // 2))
    return n, m


def zernike(j: int, rho: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    r"""Noll-normalised Zernike polynomial :math:`Z_j(\rho, \varphi)`."""
    n, m = noll_to_nm(j)
    am = abs(m)
    radial = torch.zeros_like(rho)
    for k in range((n - am) // 2 + 1):
        c = (-1) ** k * math.factorial(n - k) / (
            math.factorial(k) * math.factorial((n + am) // 2 - k) * math.factorial((n - am) // 2 - k))
        radial = radial + c * rho ** (n - 2 * k)
    if m == 0:
        return math.sqrt(n + 1) * radial
    ang = torch.cos(am * phi) if m > 0 else torch.sin(am * phi)
    return math.sqrt(2 * (n + 1)) * radial * ang


class Zernike(KernelFamily):
    r"""Aberrated-pupil PSF :math:`h = |\mathcal F^{-1} P|^2`, :math:`P = e^{2\pi i \sum_j c_j Z_j}`.

    The pupil fills the whole ``k x k`` frequency grid (normalised coordinates in [-1, 1]), so
    the unaberrated PSF (all :math:`c_j = 0`) is exactly the Dirac, and by Parseval every PSF
    sums to one. Coefficients are in waves; ``noll`` selects the terms (default: defocus and
    the two astigmatisms, Noll 4, 5, 6).
    """

    name = "zernike"

    def __init__(self, size: int = 15, noll: Sequence[int] = (4, 5, 6), max_waves: float = 2.0):
        super().__init__(size)
        self.noll = tuple(int(j) for j in noll)
        for j in self.noll:
            noll_to_nm(j)
        self.max_waves = positive_float(max_waves)
        self.param_names = tuple(f"Z{j}" for j in self.noll)

    @property
    def lower(self):
        return (-self.max_waves,) * self.n_params

    @property
    def upper(self):
        return (self.max_waves,) * self.n_params

    def _unnormalised(self, theta):
        f = torch.fft.fftfreq(self.size, dtype=theta.dtype, device=theta.device) * 2
        fy, fx = torch.meshgrid(f, f, indexing="ij")
        rho, phi = torch.sqrt(fx ** 2 + fy ** 2), torch.atan2(fy, fx)
        basis = torch.stack([zernike(j, rho, phi) for j in self.noll])       # (p, k, k)
        phase = 2 * math.pi * torch.einsum("bp,pij->bij", theta, basis)
        field = torch.fft.ifft2(torch.polar(torch.ones_like(phase), phase), norm="ortho")
        psf = torch.fft.fftshift(field.abs() ** 2, dim=(-2, -1))
        # the unaberrated pupil gives the Dirac up to FFT round-off (~1e-34): make it exact
        at_zero = (theta == 0).all(dim=1)[:, None, None]
        return torch.where(at_zero, dirac(self.size, dtype=psf.dtype, device=psf.device), psf)

    def describe(self):
        return {**super().describe(), "noll": list(self.noll)}


def positive_float(v: float) -> float:
    if not (float(v) > 0):
        raise InputError("max_waves", "a positive number", v)
    return float(v)


class Free(KernelFamily):
    r"""Any ``k x k`` kernel on the simplex, parameterised by its deviation from the Dirac,
    :math:`\theta = \mathrm{vec}(h - \delta)`, so that :math:`\theta = 0` is the Dirac.
    ``project`` is the exact simplex projection of :math:`\delta + \theta`."""

    name = "free"

    def __init__(self, size: int = 15):
        super().__init__(size)
        self.param_names = tuple(f"h{i}_{j}" for i in range(self.size) for j in range(self.size))

    @property
    def lower(self):
        d = dirac(self.size, device="cpu").flatten()
        return tuple(float(-v) for v in d)

    @property
    def upper(self):
        d = dirac(self.size, device="cpu").flatten()
        return tuple(float(1 - v) for v in d)

    def check(self, theta, **kw):
        t = super().check(theta, **kw)
        s = (t.sum(dim=1)).abs()
        if (s > 1e-6).any():
            raise InputError("theta", "free-kernel deviations summing to 0 (a kernel summing to 1)",
                             f"sum {float(s.max()):.3g}")
        return t

    def theta_of(self, kernel: Any) -> torch.Tensor:
        """Parameter ``(1, k*k)`` of a given kernel (validated: non-negative, sums to 1), float64 on the kernel's
        device (a tensor's; the host for an array)."""
        dev = kernel.device if isinstance(kernel, torch.Tensor) else torch.device("cpu")
        h = torch.as_tensor(kernel2d("kernel", kernel), dtype=torch.float64, device=dev)
        if h.shape != (self.size, self.size):
            raise InputError("kernel", f"shape ({self.size}, {self.size})", tuple(h.shape))
        return (h - dirac(self.size, dtype=h.dtype, device=dev)).reshape(1, -1)

    def project(self, theta):
        d = dirac(self.size, dtype=theta.dtype, device=theta.device).flatten()
        return project_simplex(theta + d) - d

    def __call__(self, theta):
        t = self.as_theta(theta)
        d = dirac(self.size, dtype=t.dtype, device=t.device)
        return t.reshape(-1, self.size, self.size) + d


class Path(KernelFamily):
    r"""The segment from the Dirac to a fixed kernel :math:`h^\star` (e.g. a measured one):
    :math:`h(t) = (1 - t)\,\delta + t\,h^\star`, :math:`t \in [0, 1]`."""

    name = "path"
    param_names = ("t",)

    def __init__(self, kernel: Any, name: str = "kernel"):
        h = kernel2d(name, kernel)
        if h.shape[0] != h.shape[1] or h.shape[0] % 2 == 0:
            raise InputError(name, "a square odd-sized kernel (use kernels.load to pad)", h.shape)
        super().__init__(h.shape[0])
        self.target = torch.as_tensor(h, dtype=torch.float64)

    @property
    def upper(self):
        return (1.0,)

    def __call__(self, theta):
        t = self.as_theta(theta)
        hs = self.target.to(dtype=t.dtype, device=t.device)
        d = dirac(self.size, dtype=t.dtype, device=t.device)
        tt = t[:, 0, None, None]
        return (1 - tt) * d + tt * hs

    def describe(self):
        return {**super().describe(), "target": self.target.tolist()}


def camera_shake(size: int = 15, *, rng: Any = None, steps: int = 2000, inertia: float = 0.995,
                 spread: float = 0.6) -> np.ndarray:
    r"""A synthetic camera-shake kernel: the time spent by a random camera trajectory in each pixel.

    A stand-in for measured kernels (Levin et al. 2009) when none can be loaded. The trajectory
    is a discretised second-order random walk (a velocity with ``inertia`` and Gaussian kicks,
    in the spirit of Boracchi & Foi 2012), rescaled so that its extent spans ``spread`` of the
    kernel support, accumulated on the ``size x size`` grid with bilinear weights, normalised to
    sum to one and shifted (integer shift) so that its centre of mass is on the centre pixel.
    ``rng`` seeds (or is) a ``numpy.random.Generator``.
    """
    if not isinstance(size, (int, np.integer)) or size < 3 or size % 2 == 0:
        raise InputError("size", "an odd kernel size of at least 3", size)
    if not 0 < spread <= 1:
        raise InputError("spread", "a fraction in (0, 1]", spread)
    g = np.random.default_rng(rng)
    v = g.standard_normal(2)
    pos = np.zeros((steps, 2))
    for k in range(1, steps):
        v = inertia * v + np.sqrt(1 - inertia ** 2) * g.standard_normal(2)
        pos[k] = pos[k - 1] + v
    pos -= pos.mean(0)
    ext = np.abs(pos).max()
    pos *= spread * (size - 1) / 2 / max(ext, 1e-12)
    pos += (size - 1) / 2
    h = np.zeros((size, size))
    i0 = np.clip(np.floor(pos).astype(int), 0, size - 2)
    f = pos - i0
    for (a, b), w in (((0, 0), (1 - f[:, 0]) * (1 - f[:, 1])), ((1, 0), f[:, 0] * (1 - f[:, 1])),
                      ((0, 1), (1 - f[:, 0]) * f[:, 1]), ((1, 1), f[:, 0] * f[:, 1])):
        np.add.at(h, (i0[:, 0] + a, i0[:, 1] + b), w)
    h /= h.sum()
    rows, cols = np.indices(h.shape)
    c = size // 2
    dr, dc = c - int(round((rows * h).sum())), c - int(round((cols * h).sum()))
    return np.roll(h, (dr, dc), axis=(0, 1))


FAMILIES: dict[str, Any] = {
    "gaussian": Gaussian,
    "gaussian-aniso": lambda size=15: Gaussian(size, aniso=True),
    "defocus": Defocus,
    "airy": Airy,
    "motion": Motion,
    "zernike": Zernike,
    "free": Free,
}


def get(name: str, size: int = 15, **kwargs: Any) -> KernelFamily:
    """Kernel family by name.

    Parameters
    ----------
    name : str
        One of ``FAMILIES``.
    size : int
        Odd kernel support.
    **kwargs
        Passed to the family (e.g. ``aniso=True`` for ``gaussian``).

    Returns
    -------
    KernelFamily
    """
    if name not in FAMILIES:
        raise InputError("family", "one of " + ", ".join(FAMILIES), repr(name))
    return FAMILIES[name](size=size, **kwargs)


def load(path: str | _FilePath) -> np.ndarray:
    """Load a measured kernel: a shipped one by name, or a ``.npy`` / whitespace-separated text file.

    Parameters
    ----------
    path : str or Path
        A name of :data:`landscape.resources.MEASURED_KERNELS` (``levin2``, ``levin3``, ``levin4``,
        ``levin5``, ``levin7``, ``levin8``: camera shake measured by Levin et al., CVPR 2009), or a file.

    Returns
    -------
    ndarray
        The kernel, checked (2-D, finite, non-negative, summing to 1 within 1e-6, not the Dirac δ:
        a scan from δ to δ is degenerate), its all-zero margins trimmed, and zero-padded to the smallest
        square odd support with its centre of mass on the centre pixel (integer shift): Levin et al.'s
        ``levin4`` (a 27×27 file, 24×22 non-zero, mass off-centre) loads as 29×29, ``levin5`` (13×13)
        as 11×11.
    """
    from .resources import MEASURED_KERNELS, measured_kernel_path
    p = measured_kernel_path(str(path)) if str(path) in MEASURED_KERNELS else _FilePath(path)
    if not p.is_file():
        raise InputError("kernel_file", "an existing .npy or text file, or a measured kernel ("
                         + ", ".join(MEASURED_KERNELS) + ")", str(p))
    try:
        arr = np.load(p) if p.suffix == ".npy" else np.loadtxt(p, ndmin=2)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise InputError("kernel_file", "a .npy array or whitespace-separated numbers", f"{p} ({exc})") from None
    h = kernel2d("kernel_file", np.asarray(arr, dtype=np.float64))
    if h.max() >= 1.0 - 1e-6:
        raise InputError("kernel_file", "a blur kernel with mass on more than one pixel (this one is the Dirac "
                         "δ: the scan from δ to δ is degenerate)", f"{p}, shape {h.shape}")
    nz_r, nz_c = np.flatnonzero(h.sum(1) > 0), np.flatnonzero(h.sum(0) > 0)
    return centre(h[nz_r[0]:nz_r[-1] + 1, nz_c[0]:nz_c[-1] + 1])          # zero margins cost no support


def centre(h: Any, size: int | None = None) -> np.ndarray:
    """``h`` with its centre of mass (rounded to a pixel) on the centre pixel of a ``size x size`` support; by
    default the smallest odd square that holds all of ``h``; mass shifted past a given ``size`` is dropped."""
    h = np.asarray(h, dtype=float)
    rows, cols = np.indices(h.shape)
    cr, cc = int(round((rows * h).sum() / h.sum())), int(round((cols * h).sum() / h.sum()))
    if size is None:
        size = 2 * max(cr, h.shape[0] - 1 - cr, cc, h.shape[1] - 1 - cc) + 1
    c = size // 2
    out = np.zeros((size, size))
    r0, c0 = c - cr, c - cc                                    # where h[0, 0] lands
    a, b = max(0, -r0), max(0, -c0)                            # the part of h inside the support
    e, f = min(h.shape[0], size - r0), min(h.shape[1], size - c0)
    if e > a and f > b:
        out[r0 + a:r0 + e, c0 + b:c0 + f] = h[a:e, b:f]
    return out
