r"""Blind unrolled networks: trained to *reconstruct*, so they approximate the MMSE
:math:`E[x \mid y]` (and a kernel estimate), not a MAP.

:math:`K` unrolled iterations of half-quadratic splitting with a learned prior step and a learned
kernel step. With :math:`z_0 = y`, for :math:`k = 1, \dots, K`:

.. math::
    h_k &= \text{kernel\_branch}_k(y, z_{k-1})
        \quad (\text{parametric: } h(\hat\theta_k),\ \hat\theta_k \text{ from a CNN on } (y, z_{k-1});
        \ \text{free: a Fourier least-squares kernel refined on the simplex}) \\
    x_k &= \arg\min_x \tfrac{1}{2\sigma^2}\|h_k \star x - y\|^2 + \tfrac{1}{2 s_k^2}\|x - z_{k-1}\|^2
        = \mathcal F^{-1}\frac{\overline{\hat h_k}\hat y/\sigma^2 + \hat z_{k-1}/s_k^2}{|\hat h_k|^2/\sigma^2 + 1/s_k^2} \\
    z_k &= D(x_k, s_k)

with :math:`D` the same noise-conditional EDM UNet as the shipped denoiser (one set of weights
shared by the iterations, initialised from a shipped denoiser) and learned levels :math:`s_k`.
With a ``marginal`` grid (``--marginal``) a parametric :math:`h_k` is instead the tempered
:math:`\theta`-posterior's mean kernel under the stationary Gaussian prior, the branch's
:math:`\hat\theta_k` a learned pull on it (:class:`MarginalKernelStep`).
Training minimises :math:`\|z_K - x^\star\|^2/N + \beta\|h_K - h^\star\|^2` over random
:math:`(x^\star, \theta \text{ or } h^\star, \sigma)` (``train_unrolled``); the minimiser of an
expected squared error is the posterior mean, hence "MMSE". The data step is exact for the circular
boundary, the model of every training pair. ``tests/test_estimators.py`` checks the data step
against a dense solve and the kernel branch's outputs (on the family's domain; on the simplex).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import kernels as _kernels
from .._checks import InputError
from ..denoisers import nets
from ..io import host
from ..operators import Blur, otf, rfft_weights
from ..resources import weights_path

#: shipped unrolled models: name -> what they were trained on (README lists the commands)
SHIPPED = {
    "unrolled-gaussian": "Gaussian blur, width in [0, 3], natural 64x64 patches",
    "unrolled-motion": "linear motion, length in [0, 13], any angle, natural 64x64 patches",
    "unrolled-shake": "free kernels (camera_shake draws of sizes 5-15 on a 15x15 support), natural patches",
    "unrolled-shake-29": "unrolled-shake fine-tuned on free kernels of sizes 5-29 on a 29x29 support (Levin et al.'s "
                         "measured kernels are 11-29 px), natural patches; run it on the kernel's own support "
                         "(reconstruct(support=))",
    "unrolled-gmm16": "Gaussian blur, width in [0, 3], exact samples of the 16x16 natural-crop GMM",
    "unrolled-gmm16-color": "Gaussian blur (one kernel for the three channels), width in [0, 3], exact samples of the "
                            "(3, 16, 16) colour-crop GMM",
    "unrolled-gaussian-color": "Gaussian blur (one kernel for the three channels), width in [0, 3], RGB 48x48 "
                               "patches of data.COLOR_TRAIN",
    "unrolled-shake-color": "free kernels (camera_shake draws of sizes 5-15 on a 15x15 support, one kernel for the "
                            "three channels), RGB 48x48 patches of data.COLOR_TRAIN",
    "unrolled-shake-color-29": "unrolled-shake-color fine-tuned on free kernels of sizes 5-29 on a 29x29 support (one "
                               "kernel for the three channels), RGB 64x64 patches of data.COLOR_TRAIN; run it on the "
                               "kernel's own support (reconstruct(support=))",
    "unrolled-motion-color": "linear motion, length in [0, 13], any angle (one kernel for the three channels), RGB "
                             "48x48 patches of data.COLOR_TRAIN",
    "unrolled-motion-marginal": "unrolled-motion fine-tuned with its kernel from the data (MarginalKernelStep: the "
                                "Gaussian marginal's theta-posterior on a grid of the box)",
    "unrolled-motion-marginal-color": "unrolled-motion-color fine-tuned with its kernel from the data "
                                      "(MarginalKernelStep, the colour Gaussian's marginal)",
}


def _channels_first(a: torch.Tensor, image_channels: int) -> torch.Tensor:
    """``(B, C, H, W)`` view of a batch of gray ``(B, H, W)`` or colour ``(B, C, H, W)`` images."""
    return a[:, None] if image_channels == 1 else a


class ThetaBranch(nn.Module):
    r"""CNN on ``(y, z)`` -> kernel parameters in a box ``[lo, hi]`` (sigmoid), any image size
    (global mean and standard-deviation pooling); colour images enter with their channels side by side.

    With ``normalise``, the inputs :math:`(y, z, 4(z - y))` are first high-passed (minus their 5×5 local mean) and
    divided by their root mean square over the image: what a blur changes is the images' small high-frequency
    part, which raw inputs in [0, 1] bury under the brightness (measured: without it, a fresh branch's pooled
    features vary by 2e-5 across motion-blurred inputs, and training drives the branch to a constant)."""

    def __init__(self, n_params: int, lo: list[float], hi: list[float], width: int = 32, image_channels: int = 1,
                 normalise: bool = False):
        super().__init__()
        self.image_channels = int(image_channels)
        self.normalise = bool(normalise)
        self.convs = nn.ModuleList([nn.Conv2d(3 * self.image_channels, width, 3, padding=1),
                                    nn.Conv2d(width, width, 3, stride=2, padding=1),
                                    nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
                                    nn.Conv2d(2 * width, 2 * width, 3, padding=1)])
        self.head = nn.Sequential(nn.Linear(4 * width, 64), nn.SiLU(), nn.Linear(64, n_params))
        self.register_buffer("lo", torch.tensor(lo, dtype=torch.float32))
        self.register_buffer("hi", torch.tensor(hi, dtype=torch.float32))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # inputs: y, z and their difference (the blur's signature: what z has that y lacks)
        y, z = _channels_first(y, self.image_channels), _channels_first(z, self.image_channels)
        h = torch.cat([y, z, 4 * (z - y)], 1)
        if self.normalise:
            h = h - F.avg_pool2d(F.pad(h, (2, 2, 2, 2), mode="circular"), 5, stride=1)
            h = h / h.pow(2).mean((-3, -2, -1), keepdim=True).sqrt().clamp_min(1e-6)
        for c in self.convs:
            h = F.silu(c(h))
        feat = torch.cat([h.mean((-2, -1)), h.std((-2, -1))], 1)
        lo, hi = self.lo.to(feat.dtype), self.hi.to(feat.dtype)
        return lo + (hi - lo) * torch.sigmoid(self.head(feat))


class FreeKernelBranch(nn.Module):
    r"""Kernel on the simplex from ``(y, z)``: the Fourier least-squares estimate
    :math:`\hat h = \overline{\hat z}\hat y / (|\hat z|^2 + \beta)` (``beta`` learned), cropped to the
    ``size x size`` support, refined by a small CNN and a softmax over the support; then ``steps`` projected
    gradient steps on the data misfit :math:`\|h \star z - y\|^2` over the simplex, each seeing the data
    residual :math:`h \star z - y` along :math:`-\mathrm{crop}(z \star' (h \star z - y))` (half the gradient),
    with learned step sizes :math:`\tau_t / \max_{\omega \ne 0} |\hat z(\omega)|^2` (the kernel's sum is fixed on the
    simplex, so the DC term does not bound the step; 0 steps: the earlier models). With ``sharpen > 0`` the kernel
    is fitted to :math:`z + S(y, z)` instead of :math:`z`, :math:`S` a small dilated CNN (receptive field 15 px,
    ``sharpen`` channels, its last layer initialised at zero so that it starts as the identity): the iterate the
    image step wants and the one a kernel fit wants need not be the same. One kernel blurs every
    channel of a colour image, so the least-squares sums, the residual's gradient and the curvature are
    summed over the channels."""

    def __init__(self, size: int, width: int = 16, steps: int = 0, image_channels: int = 1, sharpen: int = 0):
        super().__init__()
        self.size = size
        self.image_channels = int(image_channels)
        self.log_beta = nn.Parameter(torch.tensor(math.log(1e-2)))
        self.refine = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.SiLU(),
                                    nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
                                    nn.Conv2d(width, 1, 3, padding=1))
        self.log_temp = nn.Parameter(torch.tensor(math.log(50.0)))
        if steps:
            self.log_tau = nn.Parameter(torch.full((steps,), math.log(0.5)))
        if sharpen:
            C = self.image_channels
            self.sharpen = nn.Sequential(nn.Conv2d(2 * C, sharpen, 3, padding=1), nn.SiLU(),
                                         nn.Conv2d(sharpen, sharpen, 3, padding=2, dilation=2), nn.SiLU(),
                                         nn.Conv2d(sharpen, sharpen, 3, padding=4, dilation=4), nn.SiLU(),
                                         nn.Conv2d(sharpen, C, 3, padding=1))
            nn.init.zeros_(self.sharpen[-1].weight)
            nn.init.zeros_(self.sharpen[-1].bias)

    @staticmethod
    def _crop(a: torch.Tensor, size: int) -> torch.Tensor:
        r = size // 2
        return torch.roll(a, shifts=(r, r), dims=(-2, -1))[..., :size, :size]     # centred support

    def forward(self, y: torch.Tensor, z: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """The kernel ``(B, k, k)`` on the ``size x size`` support (default: the one it was trained on; no weight
        depends on it)."""
        size = size or self.size
        y, z = _channels_first(y, self.image_channels), _channels_first(z, self.image_channels)   # (B, C, H, W)
        if hasattr(self, "sharpen"):
            z = z + self.sharpen(torch.cat([y, z], 1))
        yc, zc = y - y.mean((-2, -1), keepdim=True), z - z.mean((-2, -1), keepdim=True)
        Y, Zf = torch.fft.rfft2(yc), torch.fft.rfft2(zc)
        n = y.shape[-1] * y.shape[-2]
        num, den = (Zf.conj() * Y).sum(1), (Zf.abs() ** 2).sum(1)
        ls = torch.fft.irfft2(num / (den + torch.exp(self.log_beta) * n), s=y.shape[-2:])
        crop = self._crop(ls, size)
        logits = torch.exp(self.log_temp) * crop + self.refine(crop[:, None])[:, 0]
        h = torch.softmax(logits.flatten(1), 1).reshape(crop.shape)
        if hasattr(self, "log_tau"):
            Z = torch.fft.rfft2(z)
            # the step's curvature: max |z_hat|^2 off the DC term (moves on the simplex keep the kernel's sum)
            lip = (Z.abs() ** 2).sum(1).flatten(1)[:, 1:].max(1).values[:, None, None]
            for log_tau in self.log_tau:
                res = torch.fft.irfft2(otf(h, tuple(y.shape[-2:]))[:, None] * Z, s=y.shape[-2:]) - y
                g = self._crop(torch.fft.irfft2((Z.conj() * torch.fft.rfft2(res)).sum(1), s=y.shape[-2:]), size)
                h = _kernels.project_simplex((h - torch.exp(log_tau) * g / lip).flatten(1)).reshape(h.shape)
        return h


class MarginalKernelStep(nn.Module):
    r"""A parametric kernel from the data: the tempered :math:`\theta`-posterior under the stationary Gaussian
    prior on a grid :math:`\{\theta_j\}` of the training box, its mean kernel

    .. math::
        \hat h = \sum_j w_j\, h(\theta_j), \qquad
        w_j \propto \exp\big(-\ell_j / T - \lambda\, d(\theta_j, \hat\theta)\big),

    with :math:`\ell_j = -\log p(y \mid \theta_j)` up to a constant (``marginal.marginal_nll``'s closed form,
    diagonal in Fourier, the DC term left out: a kernel summing to 1 does not change it), :math:`\hat\theta` the
    kernel branch's estimate, :math:`d` the family's ``parameter_error`` (box-scaled; a motion angle periodic) and
    the temperature :math:`T` and weight :math:`\lambda` learned (initialised at 1: the exact posterior under the
    Gaussian prior and a uniform prior on the grid, the branch a weak pull). The prior is the toolkit's Gaussian
    fitted to the training images at ``y``'s size (``priors.make_prior("gaussian", shape)``; colour: its colour
    basis and one spectrum per component). A natural image is not a Gaussian draw, so MAP_theta under it has
    outliers, which the branch's pull was meant to overrule; measured, it does not (docs/mmse.md), and on natural
    crops the posterior is one grid point (the softmax saturates, T and lambda stay near 1)."""

    def __init__(self, family: _kernels.KernelFamily, lo: list[float], hi: list[float], counts: list[int],
                 image_channels: int = 1):
        super().__init__()
        if len(counts) != family.n_params or any(int(n) < 2 for n in counts):
            raise InputError("marginal", f"{family.n_params} grid counts of at least 2 (one per parameter of "
                             f"{family.name!r})", counts)
        axes = [np.linspace(a, b, int(n), endpoint=not periodic)
                for a, b, n, periodic in zip(lo, hi, counts, family.periodic)]
        grid = torch.as_tensor(np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], 1))
        self.family, self.image_channels = family, int(image_channels)
        self.lo, self.hi = list(lo), list(hi)
        self.register_buffer("grid", grid.float(), persistent=False)
        self.register_buffer("kernels", family(grid).float(), persistent=False)
        self.log_temp = nn.Parameter(torch.zeros(()))
        self.log_lam = nn.Parameter(torch.zeros(()))

    def _prior(self, shape: tuple[int, ...]):
        from ..priors import make_prior        # the fitted spectrum is cached per shape
        return make_prior("gaussian", shape)

    @torch.no_grad()
    def nll(self, y: torch.Tensor, sigma: torch.Tensor, chunk: int = 128) -> torch.Tensor:
        r""":math:`-\log p(y_b \mid \theta_j)` ``(B, J)`` up to a constant per image, in ``y``'s dtype:
        :math:`\sum_{\omega \ne 0} |U(\omega)|^2 / 2v + \tfrac12 \log v`, :math:`v = |\hat h_j|^2 P + \sigma_b^2`,
        summed over the colour components :math:`U = \mathcal F(A^\top y)` (unitary)."""
        C, (H, W) = self.image_channels, y.shape[-2:]
        prior = self._prior((H, W) if C == 1 else (C, H, W))
        u = prior.rotate(_channels_first(y, C))                                  # (B, C, H, W)
        U2 = torch.fft.rfft2(u, norm="ortho").abs() ** 2
        P = prior.spectrum.to(dtype=y.dtype, device=y.device).reshape(-1, H, W)[..., :W // 2 + 1]
        mult = rfft_weights(W, y.dtype, y.device).expand(H, -1).clone()          # rfft columns stand for two
        mult[0, 0] = 0.0                                                         # the DC term: the same for all j
        s2 = (sigma.to(y.dtype) ** 2)[:, None, None, None, None]                # (B, 1, 1, 1, 1)
        out = []
        for k in self.kernels.split(chunk):
            Hk2 = (otf(k.to(y.dtype), (H, W)).abs() ** 2)[None, :, None]          # (1, J', 1, H, W')
            v = Hk2 * P[None, None] + s2                                         # (B, J', C, H, W')
            out.append(((U2[:, None] / (2 * v) + 0.5 * torch.log(v)) * mult).sum((-3, -2, -1)))
        return torch.cat(out, 1)

    def forward(self, nll: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h (B, k, k), theta (B, p))`` from the ``nll`` of :meth:`nll` and the branch's ``theta``: the
        weighted mean kernel and the grid's mode."""
        B, J = nll.shape
        grid = self.grid.to(theta.dtype)
        d = self.family.parameter_error(theta.repeat_interleave(J, 0), grid.repeat(B, 1), self.lo, self.hi)
        logits = -(nll - nll.min(1, keepdim=True).values).to(theta.dtype) / torch.exp(self.log_temp) \
            - torch.exp(self.log_lam) * d.reshape(B, J)
        w = torch.softmax(logits, 1)
        h = torch.einsum("bj,jkl->bkl", w, self.kernels.to(theta.dtype))
        return h, grid[w.argmax(1)]


class UnrolledBlind(nn.Module):
    """Blind unrolled HQS network (module docstring).

    Parameters
    ----------
    family : dict
        ``{"name": family name or "free", "size": kernel support, "lo": [...], "hi": [...]}``: the
        parametric family and the box the kernel branch predicts in (the training range).
    iterations : int
        Unrolled iterations :math:`K`.
    channels : int
        Base width of the shared EDM UNet (32: the shipped denoiser's).
    image_channels : int
        1 for gray images ``(B, H, W)``, 3 for colour ``(B, 3, H, W)`` (one kernel blurs every channel).

    A parametric ``family`` with ``"marginal": [n_1, ..., n_p]`` (grid points per parameter) takes every iteration's
    kernel from :class:`MarginalKernelStep`, the branch's estimate a learned pull on it; ``theta`` is then the
    grid's mode.
    """

    def __init__(self, family: dict, iterations: int = 4, channels: int = 32, image_channels: int = 1):
        super().__init__()
        self.config = {"arch": "unrolled-blind", "family": dict(family), "iterations": int(iterations),
                       "channels": int(channels)}
        self.image_channels = int(image_channels)
        if self.image_channels != 1:                      # gray weights files keep their original config
            self.config["image_channels"] = self.image_channels
        self.free = family["name"] == "free"
        self.size = int(family["size"])
        C = self.image_channels
        if self.free:
            self.family = None
            self.kernel_branch = FreeKernelBranch(self.size, steps=int(family.get("kernel_steps", 0)), image_channels=C,
                                                  sharpen=int(family.get("kernel_sharpen", 0)))
        else:
            self.family = _kernels.get(family["name"], self.size)
            self.kernel_branch = ThetaBranch(self.family.n_params, family["lo"], family["hi"], image_channels=C,
                                             normalise=bool(family.get("branch_normalise", False)))
            if family.get("marginal"):
                self.marginal = MarginalKernelStep(self.family, family["lo"], family["hi"], family["marginal"],
                                                   image_channels=C)
        self.denoiser = nets.EDMDenoiser(channels, image_channels=C)
        # learned prior levels s_k, geometric from 0.1 to 0.02 at initialisation
        self.log_s = nn.Parameter(torch.log(torch.logspace(-1, math.log10(0.02), iterations)))

    @property
    def iterations(self) -> int:
        return self.log_s.numel()

    def kernel(self, y: torch.Tensor, z: torch.Tensor, support: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(h (B, k, k), theta (B, p) or None)`` from the observation and the current image; a free kernel on the
        ``support`` (default: the model's)."""
        if self.free:
            return self.kernel_branch(y, z, support), None
        th = self.kernel_branch(y, z)
        return self.family(th.to(y.dtype)), th

    @property
    def event_ndim(self) -> int:
        """Trailing dimensions of one image: 2 (``H, W``) for gray, 3 (``C, H, W``) for colour."""
        return 2 if self.image_channels == 1 else 3

    @staticmethod
    def data_step(h: torch.Tensor, y: torch.Tensor, z: torch.Tensor, sigma: torch.Tensor,
                  s: torch.Tensor) -> torch.Tensor:
        r""":math:`\arg\min_x \|h\star x - y\|^2/(2\sigma^2) + \|x - z\|^2/(2s^2)` (circular), batched:
        ``h`` ``(B, k, k)``, ``y`` and ``z`` ``(B, H, W)`` or colour ``(B, C, H, W)`` (the kernel shared by the
        channels); ``sigma``, ``s``: ``(B,)``."""
        channels = y.shape[-3] if y.ndim == h.ndim + 1 else None
        return Blur(h, tuple(y.shape[-2:]), chunk=None, channels=channels).data_prox(y, z, sigma, s)

    def forward(self, y: torch.Tensor, sigma: Any, *, kernel: torch.Tensor | None = None,
                support: int | None = None, trace: bool = False) -> dict[str, Any]:
        """Reconstruct from ``y`` ``(B, H, W)`` (colour: ``(B, C, H, W)``) at noise levels ``sigma``
        (float or ``(B,)``). With ``kernel`` ``(B, k, k)`` every iteration uses it instead of the kernel
        branch's estimate: the same network, non-blind (what its image steps make of a known kernel). A free
        kernel branch estimates on a ``support x support`` support (odd, at most the image's side; default the
        one it was trained on: no weight depends on it), e.g. a measured kernel's; :class:`InputError` naming
        ``support`` for a parametric model (its family fixes the support) or a bad size.

        Returns ``{"x": y's shape, "kernel": (B, k, k), "theta": (B, p) or None}`` (the last
        iteration's; ``theta`` None with a given ``kernel``), plus ``"iterates"`` (a list of the ``z_k``)
        when ``trace``.
        """
        B = y.shape[0]
        if kernel is not None and (kernel.ndim != 3 or kernel.shape[0] != B):
            raise InputError("kernel", f"one kernel per image, shape ({B}, k, k)", tuple(kernel.shape))
        if support is not None:
            if not self.free:
                raise InputError("support", "None for a parametric kernel family (its family fixes the support)",
                                 support)
            if not (isinstance(support, int) and support >= 3 and support % 2 == 1 and support <= min(y.shape[-2:])):
                raise InputError("support", f"an odd integer from 3 to the image's side ({min(y.shape[-2:])})",
                                 support)
        sig = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).reshape(-1).expand(B)
        z, zs = y, []
        h, th = None, None
        nll = self.marginal.nll(y, sig) if kernel is None and hasattr(self, "marginal") else None
        for k in range(self.iterations):
            s = torch.exp(self.log_s[k]).to(y.dtype).expand(B)
            h, th = self.kernel(y, z, support) if kernel is None else (kernel.to(y.dtype), None)
            if nll is not None:
                h, th = self.marginal(nll, th)
            x = self.data_step(h, y, z, sig, s)
            z = self.denoiser(x, s)
            if trace:
                zs.append(z)
        out = {"x": z, "kernel": h, "theta": th}
        if trace:
            out["iterates"] = zs
        return out


#: the shipped unrolled model for each kernel family (and the GMM sandbox)
MODELS = {"gaussian": "unrolled-gaussian", "motion": "unrolled-motion", "free": "unrolled-shake",
          "sandbox": "unrolled-gmm16"}
#: the shipped colour unrolled models, by kernel family
COLOR_MODELS = {"gaussian": "unrolled-gaussian-color", "motion": "unrolled-motion-color", "free": "unrolled-shake-color",
                "sandbox": "unrolled-gmm16-color"}


def load_unrolled(name_or_path: str | Path, dtype: torch.dtype = torch.float32, device: Any = None) -> UnrolledBlind:
    """A shipped unrolled model by name (``SHIPPED``), or a weights file written by training, built on the
    host and moved to ``device`` (default: the CPU).

    Raises :class:`InputError` naming ``model`` for an unknown name, a missing file (with the command
    that trains it) or a file that is not an unrolled model's weights.
    """
    p = Path(name_or_path)
    if str(name_or_path) in SHIPPED:
        p = weights_path(str(name_or_path))
        if not p.exists():
            raise InputError("model", f"shipped weights at {p} (train them: landscape train-unrolled {name_or_path})",
                             "missing")
    elif not p.is_file():
        raise InputError("model", "one of " + ", ".join(SHIPPED) + " or an existing weights file", str(name_or_path))
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
        cfg = dict(ck["config"])
        if cfg.pop("arch") != "unrolled-blind":
            raise ValueError("not an unrolled model")
        with torch.device("cpu"):                 # the weights are read on the host, whatever the default
            model = UnrolledBlind(**cfg)
        model.load_state_dict(ck["state_dict"])
    except Exception as exc:  # noqa: BLE001 - any unreadable or foreign file is bad input
        raise InputError("model", "unrolled-network weights (landscape train-unrolled)",
                         f"{p} ({type(exc).__name__}: {exc})") from None
    model.meta = ck.get("meta", {})
    return model.to(dtype=dtype, device=torch.device(device) if device is not None else "cpu").eval()


def check_kernel_for(model: UnrolledBlind, kernel: np.ndarray) -> np.ndarray:
    """A kernel (e.g. from ``--kernel-file``) on the model's support: zero-padded when smaller;
    an :class:`InputError` naming ``kernel_file`` when larger than the support the model was trained on."""
    k = np.asarray(kernel, dtype=float)
    if k.shape[0] > model.size or k.shape[1] > model.size:
        raise InputError("kernel_file", f"a kernel no larger than the model's {model.size}x{model.size} support "
                         "once centred (kernels.load pads a kernel to put its centre of mass on the centre pixel; "
                         "unrolled-shake-29 and unrolled-shake-color-29 take up to 29x29)",
                         f"{k.shape[0]}x{k.shape[1]} after centring")
    out = np.zeros((model.size, model.size))
    r0, c0 = (model.size - k.shape[0]) // 2, (model.size - k.shape[1]) // 2
    out[r0:r0 + k.shape[0], c0:c0 + k.shape[1]] = k
    return out


def reconstruct(model: UnrolledBlind, y: Any, sigma: float, support: int | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` on one observation ``y`` ``(H, W)``, or ``(C, H, W)`` for a colour model (float64 in,
    the model's dtype inside); a free-kernel model estimates on ``support`` (as :meth:`UnrolledBlind.forward`).

    Returns ``x`` (``y``'s shape), ``kernel`` ``(k, k)`` and ``theta`` (``(p,)`` or empty). An image smaller
    than the kernel support, or whose sides are not multiples of 4 (the UNet's two poolings pad them),
    is accepted only when at least the support: :class:`InputError` naming ``y`` otherwise, and for an
    image whose channels are not the model's.
    """
    w = next(model.parameters())
    yy = y.to(dtype=w.dtype, device=w.device) if isinstance(y, torch.Tensor) else \
        torch.as_tensor(np.asarray(y), dtype=w.dtype, device=w.device)
    C, side = model.image_channels, max(model.size, 16)
    want = "a 2-D image" if C == 1 else f"a ({C}, H, W) colour image"
    if yy.ndim != model.event_ndim or (C > 1 and yy.shape[0] != C) or min(yy.shape[-2:]) < side:
        raise InputError("y", f"{want} at least {side} pixels on a side (the model's receptive "
                         "field and kernel support)", tuple(yy.shape))
    with torch.no_grad():
        out = model(yy[None], sigma, support=support)
    th = out["theta"]
    return {"x": host(out["x"][0].double()), "kernel": host(out["kernel"][0].double()),
            "theta": host(th[0].double()) if th is not None else np.zeros(0)}
