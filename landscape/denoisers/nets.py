r"""Small noise-conditional denoisers for grayscale or colour images in [0, 1].

``UNet``: a three-level UNet (base width ``channels``, doubled per level) with residual blocks,
SiLU activations (smooth, so gradients and Jacobians used by the evaluators exist everywhere)
and FiLM conditioning on the noise level.

``EDMDenoiser`` wraps it with EDM preconditioning (Karras et al. 2022) so one network serves
every noise level from about 0.002 to 40 (image units; 80 in EDM's [-1, 1] units):
with :math:`\tilde x = 2x - 1`, :math:`\sigma = 2s`, :math:`\sigma_d = 0.5`,

.. math::
    \tilde D(\tilde z, \sigma) = c_\mathrm{skip}\tilde z + c_\mathrm{out} F(c_\mathrm{in}\tilde z, c_\mathrm{noise}),\quad
    c_\mathrm{skip} = \frac{\sigma_d^2}{\sigma^2 + \sigma_d^2},\ c_\mathrm{out} = \frac{\sigma\sigma_d}{\sqrt{\sigma^2+\sigma_d^2}},\
    c_\mathrm{in} = \frac{1}{\sqrt{\sigma^2 + \sigma_d^2}},\ c_\mathrm{noise} = \tfrac14 \log\sigma,

and :math:`D_s(z) = (\tilde D(2z - 1, 2s) + 1)/2`.

``GSDenoiser`` is the gradient-step variant (Hurault et al. 2022): an explicit potential
:math:`g_s(x) = \tfrac12 \|x - N_s(x)\|^2` with :math:`N_s` an ``EDMDenoiser``, and
:math:`D_s(x) = x - \nabla g_s(x)`. Since a MMSE denoiser satisfies
:math:`D_s = x + s^2 \nabla \log p_s`, the potential of the smoothed prior is
:math:`-\log p_s(x) \approx g_s(x)/s^2 + \text{const}`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


class NoiseEmbedding(nn.Module):
    """Fourier features of :math:`c_\\mathrm{noise}` followed by a small MLP."""

    def __init__(self, dim: int, n_freq: int = 16):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(100.0), n_freq)))
        self.mlp = nn.Sequential(nn.Linear(2 * n_freq, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        a = c_noise[:, None] * self.freqs[None]
        return self.mlp(torch.cat([torch.sin(a), torch.cos(a)], dim=1))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.film = nn.Linear(emb, 2 * cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.conv1(F.silu(x)))
        scale, shift = self.film(e)[:, :, None, None].chunk(2, dim=1)
        h = h * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class UNet(nn.Module):
    """Three-level UNet ``(x (B,C,H,W), c_noise (B,)) -> (B,C,H,W)``; H, W multiples of 4; ``C`` =
    ``image_channels`` (1 gray, 3 colour)."""

    def __init__(self, channels: int = 16, emb: int = 64, image_channels: int = 1):
        super().__init__()
        c1, c2, c3 = channels, 2 * channels, 4 * channels
        self.embed = NoiseEmbedding(emb)
        self.inp = nn.Conv2d(image_channels, c1, 3, padding=1)
        self.e1 = ResBlock(c1, c1, emb)
        self.down1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.e2 = ResBlock(c2, c2, emb)
        self.down2 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.mid = ResBlock(c3, c3, emb)
        self.up2 = nn.ConvTranspose2d(c3, c2, 2, stride=2)
        self.d2 = ResBlock(2 * c2, c2, emb)
        self.up1 = nn.ConvTranspose2d(c2, c1, 2, stride=2)
        self.d1 = ResBlock(2 * c1, c1, emb)
        self.out = nn.Conv2d(c1, image_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        e = self.embed(c_noise)
        h1 = self.e1(self.inp(x), e)
        h2 = self.e2(self.down1(F.silu(h1)), e)
        m = self.mid(self.down2(F.silu(h2)), e)
        u2 = self.d2(torch.cat([self.up2(m), h2], 1), e)
        u1 = self.d1(torch.cat([self.up1(u2), h1], 1), e)
        return self.out(F.silu(u1))


def _pad4(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    H, W = x.shape[-2:]
    ph, pw = (-H) % 4, (-W) % 4
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(H, W) > max(ph, pw) else "replicate")
    return x, (H, W)


PIXELS_PER_CALL = 2 ** 16
"""Values (batch × channels × pixels) the UNet sees in one call; a larger batch is split into calls of at most
this size, when no autograd graph is being built (a graph keeps every call's activations, so splitting would
save nothing). The activations take about 7 KB per value: an unsplit batch of 25 images of 128² held 3.8 GB
(``docs/benchmarks.md``)."""


class EDMDenoiser(nn.Module):
    """Noise-conditional MMSE denoiser :math:`D_s(z)` on images in [0, 1] (EDM preconditioning).

    ``forward(z, s)``: ``z`` ``(..., H, W)`` for a gray model, ``(..., C, H, W)`` for one with
    ``image_channels`` C > 1; ``s`` a float or a tensor broadcastable to the batch (the leading
    dimensions); returns the shape of ``z``. Without gradients, a batch of more than ``PIXELS_PER_CALL``
    values goes through the network in several calls.
    """

    sigma_data = 0.5

    def __init__(self, channels: int = 16, emb: int = 64, image_channels: int = 1):
        super().__init__()
        self.image_channels = int(image_channels)
        self.config = {"arch": "edm-unet", "channels": channels, "emb": emb}
        if self.image_channels != 1:                      # gray weights files keep their original config
            self.config["image_channels"] = self.image_channels
        self.net = UNet(channels, emb, self.image_channels)

    @property
    def event_ndim(self) -> int:
        """Trailing dimensions of one image: 2 (``H, W``) for gray, 3 (``C, H, W``) for colour."""
        return 2 if self.image_channels == 1 else 3

    def forward(self, z: torch.Tensor, s: Any) -> torch.Tensor:
        shape, C, n = z.shape, self.image_channels, self.event_ndim
        if C > 1 and (z.ndim < 3 or shape[-3] != C):
            raise ValueError(f"z: expected (..., {C}, H, W) images for a {C}-channel denoiser, got {tuple(shape)}")
        zz = z.reshape(-1, C, *shape[-2:])
        B = zz.shape[0]
        sig = 2 * torch.as_tensor(s, dtype=zz.dtype, device=zz.device).expand(shape[:-n]).reshape(B) \
            if torch.as_tensor(s).ndim else torch.full((B,), 2 * float(s), dtype=zz.dtype, device=zz.device)
        step = max(1, PIXELS_PER_CALL // (C * shape[-2] * shape[-1]))
        if B <= step or torch.is_grad_enabled():       # a graph keeps every chunk's activations: split for nothing
            return self._denoise(zz, sig).reshape(shape)
        return torch.cat([self._denoise(zz[i:i + step], sig[i:i + step]) for i in range(0, B, step)]).reshape(shape)

    def _denoise(self, zz: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
        """EDM-preconditioned network on a ``(B, C, H, W)`` batch with noise levels ``sig`` ``(B,)`` (EDM units)."""
        sd = self.sigma_data
        c_skip = sd ** 2 / (sig ** 2 + sd ** 2)
        c_out = sig * sd / torch.sqrt(sig ** 2 + sd ** 2)
        c_in = 1 / torch.sqrt(sig ** 2 + sd ** 2)
        zt = 2 * zz - 1
        xin, (H, W) = _pad4(c_in[:, None, None, None] * zt)
        Fx = self.net(xin, torch.log(sig) / 4)[..., :H, :W]
        d = c_skip[:, None, None, None] * zt + c_out[:, None, None, None] * Fx
        return (d + 1) / 2


class GSDenoiser(nn.Module):
    """Gradient-step denoiser :math:`D_s = \\mathrm{Id} - \\nabla g_s`, :math:`g_s = \\tfrac12\\|x - N_s(x)\\|^2`."""

    def __init__(self, channels: int = 16, emb: int = 64, image_channels: int = 1):
        super().__init__()
        self.config = {"arch": "gs-edm-unet", "channels": channels, "emb": emb}
        if image_channels != 1:
            self.config["image_channels"] = int(image_channels)
        self.N = EDMDenoiser(channels, emb, image_channels)
        self.image_channels, self.event_ndim = self.N.image_channels, self.N.event_ndim

    def potential(self, x: torch.Tensor, s: Any) -> torch.Tensor:
        """:math:`g_s(x)`, one value per image (``x``'s leading dimensions)."""
        r = x - self.N(x, s)
        return 0.5 * (r ** 2).flatten(x.ndim - self.event_ndim).sum(-1)

    def potential_and_grad(self, x: torch.Tensor, s: Any, create_graph: bool = False):
        """:math:`g_s(x)` and :math:`\\nabla g_s(x)`. Without an outer graph (``create_graph`` off, ``x`` not
        requiring grad) a batch of more than ``PIXELS_PER_CALL`` values is differentiated in several calls, each
        call's graph freed before the next."""
        lead = x.shape[:x.ndim - self.event_ndim]
        B, step = math.prod(lead), max(1, PIXELS_PER_CALL // math.prod(x.shape[x.ndim - self.event_ndim:]))
        if B > step and not (create_graph or x.requires_grad):
            xs = x.reshape(B, *x.shape[len(lead):])
            ss = torch.as_tensor(s, dtype=x.dtype, device=x.device)
            ss = ss.expand(lead).reshape(B) if ss.ndim else ss
            parts = [self.potential_and_grad(xs[i:i + step], ss[i:i + step] if ss.ndim else s)
                     for i in range(0, B, step)]
            return (torch.cat([g for g, _ in parts]).reshape(lead),
                    torch.cat([d for _, d in parts]).reshape(x.shape))
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            g = self.potential(xg, s)
            (grad,) = torch.autograd.grad(g.sum(), xg, create_graph=create_graph)
        return g, grad

    def forward(self, x: torch.Tensor, s: Any, create_graph: bool = False) -> torch.Tensor:
        _, grad = self.potential_and_grad(x, s, create_graph=create_graph or self.training)
        return x - grad


ARCHS = {"edm-unet": EDMDenoiser, "gs-edm-unet": GSDenoiser}


def save(model: nn.Module, path: str | Path, meta: dict | None = None) -> None:
    """Save config, float32 weights and metadata (atomically)."""
    from ..io import atomic_path
    state = {k: v.detach().to(torch.float32).cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"config": model.config, "state_dict": state, "meta": meta or {}}, tmp)


def load(path: str | Path, dtype: torch.dtype = torch.float32, device: Any = None) -> nn.Module:
    """Load a model saved by ``save`` (eval mode, gradients off for its parameters)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    cfg = dict(ck["config"])
    arch = cfg.pop("arch")
    with torch.device("cpu"):                  # built beside its weights, then moved (whatever the default device)
        model = ARCHS[arch](**cfg)
    model.load_state_dict(ck["state_dict"])
    model.meta = ck.get("meta", {})
    model.to(dtype=dtype, device=device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
