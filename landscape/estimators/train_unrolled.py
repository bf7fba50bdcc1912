r"""Training the blind unrolled networks: seeded, resumable, with progress (``landscape train-unrolled``).

Each step draws a batch of training triples from the model's own generative process:
:math:`x^\star` (random augmented ``patch``-sized crops of ``data.TRAIN``, or exact samples of the
16x16 GMM), a kernel (parametric: :math:`\theta` uniform on the family's training box; free: a
``kernels.camera_shake`` draw of a random odd size from 5 to ``kernel_size``, zero-padded to the
support), :math:`\sigma` log-uniform on ``[sigma_min, sigma_max]``, and
:math:`y = h \star x^\star + \sigma n` (circular). The loss is the image MSE of the last iterate
plus ``kernel_weight`` times the kernel's squared error; its minimiser is the posterior mean. With
``kernel_smooth`` :math:`= s > 0` the kernel error also counts :math:`\|G_w \star (h - h^\star)\|^2 / \|G_w\|^2`
for Gaussians of widths :math:`w = s, s/2` (:func:`kernel_loss`): two thin kernels that do not overlap (a motion
kernel at the wrong angle) have a plain squared error that no small change of angle lowers, and a smoothed one
that does. With ``theta_weight`` a parametric branch's parameters also enter the loss, by the family's
``parameter_error`` (box-scaled; a motion angle periodic and weighted by the length). With ``branch_pretrain``
the kernel branch first trains alone, on the loss's kernel terms, from :math:`(y, y)` (what it reads at the first
iteration): inside the network a fresh branch settles on one constant kernel (docs/mmse.md).
The loop (Adam, cosine decay, EMA, atomic checkpoints, bitwise resume) is ``denoisers.train.fit``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .. import kernels as _kernels
from .._checks import Check, InputError, device_check, flag, integer, number, one_of, option, positive_number, validate
from ..denoisers import nets
from ..denoisers.train import TRAIN_DEVICE_HELP, Sampler, fit, training_data
from ..operators import Blur
from ..resources import weights_path
from .unrolled import SHIPPED, UnrolledBlind, load_unrolled

#: shipped denoisers an unrolled model's UNet can start from
DENOISER_INITS = ("denoiser-gray", "denoiser-gmm16", "denoiser-color")

#: the training box of each family's kernel branch (upper end of the first parameter from ``theta_max``)
ANGLE_RANGE = (0.0, 180.0)
#: ``--marginal``'s grid: points on the first parameter's box, and degrees between motion angles
MARGINAL_GRID, MARGINAL_ANGLE_STEP = 27, 5.0


def gmm_shape(color: bool) -> tuple[int, ...]:
    """The image shape of ``--data gmm``'s whole-image GMM: ``(16, 16)``, or ``(3, 16, 16)`` in colour."""
    return (3, 16, 16) if color else (16, 16)


def marginal_grid(lo: list[float], hi: list[float]) -> list[int]:
    """``--marginal``'s grid counts on the box ``[lo, hi]``: ``MARGINAL_GRID`` points on the first parameter, one every
    ``MARGINAL_ANGLE_STEP`` on the others (a motion angle)."""
    return [MARGINAL_GRID] + [int(round((b - a) / MARGINAL_ANGLE_STEP)) for a, b in zip(lo[1:], hi[1:])]


@dataclass
class UnrolledTrainConfig:
    """Options of ``landscape train-unrolled`` (stored in the weights file)."""

    family: str = option("gaussian", "kernel family: gaussian, motion or free (camera shake)",
                         one_of(("gaussian", "motion", "free")))
    data: str = option("natural", "natural (data.TRAIN patches) or gmm (exact 16x16 GMM samples; with --color the "
                       "(3, 16, 16) colour GMM's)", one_of(("natural", "gmm")))
    color: bool = option(False, "colour (RGB) patches of data.COLOR_TRAIN (or colour GMM samples), one kernel for the "
                         "three channels, a 3-channel UNet (start it from denoiser-color or a colour unrolled model)",
                         flag())
    theta_max: float = option(3.0, "upper end of the first parameter's training range (width, length)",
                              positive_number())
    kernel_size: int = option(15, "kernel support (odd)", Check("an odd integer >= 3",
                                                               lambda v: isinstance(v, int) and v >= 3 and v % 2 == 1,
                                                               (1, 4)))
    iterations: int = option(4, "unrolled iterations K", integer(1, 12))
    kernel_steps: int = option(0, "free kernels: projected-gradient steps on the data misfit after the kernel "
                               "branch's estimate (it sees the data residual)", integer(0, 50))
    kernel_sharpen: int = option(0, "free kernels: channels of a CNN that sharpens the iterate the kernel is "
                                 "fitted to (0: none; it starts as the identity)", integer(0, 128))
    channels: int = option(32, "base channels of the UNet (32: the shipped denoiser's)", integer(4))
    init: str = option("denoiser-gray", "shipped denoiser the UNet starts from, a shipped unrolled model or an "
                       "unrolled model's weights file of the same shape to continue training (fine-tuning), or none",
                       Check("denoiser-gray, denoiser-gmm16, denoiser-color, none, a shipped unrolled model or an "
                             "existing unrolled weights file",
                             lambda v: v in DENOISER_INITS + ("none",) or v in SHIPPED
                             or Path(str(v)).is_file(), ("no-such-choice", "/no/such/file.pt")))
    patch: int = option(64, "training image size (a multiple of 4)",
                        Check("a multiple of 4, at least 16", lambda v: isinstance(v, int) and v >= 16 and v % 4 == 0,
                              (0, 18)))
    batch: int = option(8, "images per step", integer(1))
    steps: int = option(2000, "optimiser steps", integer(1))
    lr: float = option(2e-4, "peak learning rate (Adam; cosine decay)", number(0.0, 1.0, lo_open=True))
    ema: float = option(0.999, "EMA rate of the saved weights", number(0.0, 1.0, hi_open=True))
    sigma_min: float = option(0.005, "smallest training noise level", positive_number())
    sigma_max: float = option(0.05, "largest training noise level", positive_number())
    kernel_weight: float = option(0.1, "weight of the kernel's squared error in the loss", number(0.0))
    branch_normalise: bool = option(False, "parametric families: the kernel branch reads its inputs high-passed and "
                                    "normalised per image (estimators.unrolled.ThetaBranch)", flag())
    reset_kernel_branch: bool = option(False, "with --init from unrolled weights: start the kernel branch afresh "
                                       "(seeded), keeping the init's UNet and levels", flag())
    theta_weight: float = option(0.0, "parametric families: weight of the parameters' squared error (each over its "
                                 "box's width; a motion angle periodic and weighted by the length) in the loss",
                                 number(0.0))
    kernel_smooth: float = option(0.0, "width (px) of Gaussians that also blur both kernels in the kernel loss, at "
                                  "this width and half of it, each error normalised by the Gaussian's squared norm: "
                                  "a kernel loss that still sees a far-off estimate (0: the plain squared error)",
                                  number(0.0))
    branch_pretrain: int = option(0, "parametric families: steps that first train the kernel branch alone, on "
                                  "(y, y) (what it reads at the first iteration), with the loss's kernel terms; "
                                  "resumable (a checkpoint beside the output), then the whole network trains",
                                  integer(0))
    marginal: bool = option(False, "parametric families: every kernel is the tempered theta-posterior mean under the "
                            "stationary Gaussian prior on a grid of the box (27 points on the first parameter, "
                            "a motion angle every 5 degrees), the branch's estimate a learned pull "
                            "(estimators.unrolled.MarginalKernelStep)", flag())
    branch_lr: float = option(1e-3, "peak learning rate of --branch-pretrain", number(0.0, 1.0, lo_open=True))
    seed: int = option(0, "seed (data, kernels, noise, initialisation)", integer(0))
    checkpoint_every: int = option(100, "steps between checkpoints", integer(1))
    threads: int = option(0, "torch threads (0: torch's default)", integer(0))
    device: str = option("cpu", TRAIN_DEVICE_HELP, device_check())

    def __post_init__(self):
        self.validate()                # validated on construction, like every options object

    def validate(self) -> "UnrolledTrainConfig":
        validate(self)
        if self.reset_kernel_branch and self.init in DENOISER_INITS + ("none",):
            raise InputError("reset_kernel_branch", "an --init from unrolled weights (a denoiser init starts the kernel "
                             "branch afresh anyway)", self.init)
        if self.sigma_max < self.sigma_min:
            raise InputError("sigma_max", f"at least sigma_min ({self.sigma_min})", self.sigma_max)
        for name in ("kernel_steps", "kernel_sharpen"):
            if getattr(self, name) and self.family != "free":
                raise InputError(name, "0 unless the family is free (a free kernel branch's option)", getattr(self, name))
        if self.marginal and self.theta_weight:
            raise InputError("theta_weight", "0 with --marginal (its theta is the grid's mode, with no gradient)",
                             self.theta_weight)
        for name in ("branch_normalise", "theta_weight", "branch_pretrain", "marginal"):
            if getattr(self, name) and self.family == "free":
                raise InputError(name, "off for free kernels (a parametric kernel branch's option)", getattr(self, name))
        if self.data == "gmm" and self.patch != 16:
            raise InputError("patch", "16 with --data gmm (the GMM's samples are 16x16)", self.patch)
        if self.kernel_size > self.patch:
            raise InputError("kernel_size", f"a support no larger than the patch ({self.patch})", self.kernel_size)
        if self.family == "gaussian" and self.theta_max > self.kernel_size / 2:
            raise InputError("theta_max", f"a width at most kernel_size / 2 ({self.kernel_size / 2})", self.theta_max)
        if self.family == "motion" and self.theta_max > self.kernel_size - 1:
            raise InputError("theta_max", f"a length at most kernel_size - 1 ({self.kernel_size - 1})", self.theta_max)
        return self

    def family_spec(self) -> dict:
        """The model's ``family`` argument: name, support and the kernel branch's box."""
        lo, hi = [0.0], [float(self.theta_max)]
        if self.family == "motion":
            lo, hi = lo + [ANGLE_RANGE[0]], hi + [ANGLE_RANGE[1]]
        spec = {"name": self.family, "size": self.kernel_size, "lo": lo, "hi": hi}
        extra = {k: v for k, v in (("kernel_steps", self.kernel_steps), ("kernel_sharpen", self.kernel_sharpen),
                                   ("branch_normalise", self.branch_normalise),
                                   ("marginal", marginal_grid(lo, hi) if self.marginal else None)) if v}
        return {**spec, **extra}


def _shape(config: dict) -> dict:
    """An unrolled model's configuration without what its weights do not depend on (a free kernel branch's
    support; its data steps add step sizes and its sharpening CNN its own weights, initialised fresh; a parametric
    branch's input normalisation has no weights, and a marginal kernel step two scalars, initialised fresh)."""
    fam = {k: v for k, v in config["family"].items() if k not in ("branch_normalise", "marginal") and not (
        config["family"]["name"] == "free" and k in ("size", "kernel_steps", "kernel_sharpen"))}
    return {**config, "family": fam}


def draw(cfg: UnrolledTrainConfig, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` training kernels ``(n, k, k)`` (float32) and, for a parametric family, their parameters ``(n, p)``
    (uniform on the branch's box; ``None`` for free kernels)."""
    if cfg.family == "free":
        sizes = np.arange(5, cfg.kernel_size + 1, 2)
        out = np.zeros((n, cfg.kernel_size, cfg.kernel_size))
        for i in range(n):
            k = int(rng.choice(sizes))
            h = _kernels.camera_shake(k, rng=rng)
            r = (cfg.kernel_size - k) // 2
            out[i, r:r + k, r:r + k] = h
        return torch.as_tensor(out, dtype=torch.float32, device="cpu"), None
    spec = cfg.family_spec()
    th = torch.as_tensor(rng.uniform(spec["lo"], spec["hi"], size=(n, len(spec["lo"]))), device="cpu")
    return _kernels.get(cfg.family, cfg.kernel_size)(th).float(), th.float()


def kernel_loss(h: torch.Tensor, h_true: torch.Tensor, smooth: float = 0.0) -> torch.Tensor:
    r"""Mean over the batch of :math:`\|h - h^\star\|^2`, plus, for ``smooth`` :math:`= s > 0`,
    :math:`\sum_{w \in \{s, s/2\}} \|G_w \star (h - h^\star)\|^2 / \|G_w\|^2` (``G_w`` the sampled Gaussian of width
    :math:`w` normalised to sum 1, zero padding; dividing by :math:`\|G_w\|^2` makes two far-apart Diracs cost the
    same at every width). ``h``, ``h_true``: ``(B, k, k)``."""
    d = h - h_true
    loss = (d ** 2).sum((-2, -1))
    for w in ((smooth, smooth / 2) if smooth > 0 else ()):
        r = int(np.ceil(3 * w))
        t = torch.arange(-r, r + 1, dtype=h.dtype, device=h.device)
        g = torch.exp(-t ** 2 / (2 * w ** 2))
        g2 = (g[:, None] * g[None]) / g.sum() ** 2
        blurred = torch.nn.functional.conv2d(d[:, None], g2[None, None], padding=r)[:, 0]
        loss = loss + (blurred ** 2).sum((-2, -1)) / (g2 ** 2).sum()
    return loss.mean()


def simulate(x: torch.Tensor, h: torch.Tensor, sigma: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """:math:`y = h \\star x + \\sigma n` (circular), batched, on ``x``'s device: gray ``x`` ``(B, H, W)`` or
    colour ``(B, C, H, W)`` (one kernel per image, shared by its channels); the noise is drawn from the host
    generator ``gen`` (the same draws on every device)."""
    channels = x.shape[1] if x.ndim == 4 else None
    clean = Blur(h.to(x.device), tuple(x.shape[-2:]), chunk=None, channels=channels)(x)
    n = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=gen.device).to(x.device)
    return clean + sigma.to(x.device).reshape(-1, *[1] * (x.ndim - 1)) * n


def initial_model(cfg: UnrolledTrainConfig) -> UnrolledBlind:
    """The model training starts from, built on the host with ``cfg.seed``: fresh, its UNet from a shipped denoiser,
    or every weight from unrolled weights (``--init``; a free kernel branch's new steps or sharpening CNN, and with
    ``reset_kernel_branch`` the whole kernel branch, start fresh). :class:`InputError` naming ``init`` for weights
    that do not fit."""
    torch.manual_seed(cfg.seed)
    with torch.device("cpu"):                  # initialised on the host, the same weights wherever it trains
        model = UnrolledBlind(cfg.family_spec(), cfg.iterations, cfg.channels, image_channels=3 if cfg.color else 1)
    if cfg.init not in DENOISER_INITS + ("none",):
        src = load_unrolled(cfg.init)
        if _shape(src.config) != _shape(model.config):
            raise InputError("init", f"an unrolled model shaped as this one ({model.config}; the free kernel "
                             "branch's support and steps may differ)", src.config)
        state = {k: v for k, v in src.state_dict().items()
                 if not (cfg.reset_kernel_branch and k.startswith("kernel_branch."))}
        missing, unexpected = model.load_state_dict(state, strict=False)
        fresh = ("kernel_branch.",) if cfg.reset_kernel_branch else ("kernel_branch.log_tau", "kernel_branch.sharpen.")
        fresh += ("marginal.",)
        if unexpected or any(not k.startswith(fresh) for k in missing):
            raise InputError("init", "an unrolled model whose weights fit this one", f"{missing} {unexpected}")
    elif cfg.init != "none":
        src = nets.load(weights_path(cfg.init))
        if src.config.get("channels") != cfg.channels:
            raise InputError("init", f"a denoiser with {cfg.channels} channels", src.config.get("channels"))
        if src.image_channels != model.image_channels:
            raise InputError("init", f"a denoiser on {model.image_channels}-channel images (colour: denoiser-color)",
                             f"{cfg.init} ({src.image_channels}-channel)")
        model.denoiser.load_state_dict(src.state_dict())
    return model


def train_unrolled(cfg: UnrolledTrainConfig, out: str | Path, *, sampler: Sampler | None = None,
                   progress: bool = True) -> Path:
    """Train (or resume) an unrolled model and write its EMA weights to ``out``.

    Parameters
    ----------
    cfg : UnrolledTrainConfig
    out : path
        Weights file; ``out.with_suffix('.ckpt')`` is its checkpoint, resumed when present.
    sampler : callable ``(batch, rng) -> (batch, p, p)``, optional
        Clean images; required for ``cfg.data`` other than ``"natural"``.
    progress : bool

    Returns
    -------
    Path
    """
    cfg.validate()
    sampler = training_data(cfg, sampler)
    model = initial_model(cfg)
    lsig = np.log([cfg.sigma_min, cfg.sigma_max])
    spec = cfg.family_spec()

    def batch(rng: np.random.Generator, gen: torch.Generator):
        x = sampler(cfg.batch, rng).to(cfg.device)
        h, th = draw(cfg, cfg.batch, rng)
        sigma = torch.as_tensor(np.exp(rng.uniform(*lsig, size=cfg.batch)), dtype=torch.float32, device=cfg.device)
        h = h.to(cfg.device)
        return x, h, None if th is None else th.to(cfg.device), sigma, simulate(x, h, sigma, gen)

    def kernel_terms(kernel, theta, h, th) -> torch.Tensor:
        loss = cfg.kernel_weight * kernel_loss(kernel, h, cfg.kernel_smooth)
        if cfg.theta_weight:
            loss = loss + cfg.theta_weight * model.family.parameter_error(theta, th, spec["lo"], spec["hi"]).mean()
        return loss

    def batch_loss(rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
        x, h, th, sigma, y = batch(rng, gen)
        o = model(y, sigma)
        return ((o["x"] - x) ** 2).mean() + kernel_terms(o["kernel"], o["theta"], h, th)

    def branch_loss(rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
        _, h, th, _, y = batch(rng, gen)
        return kernel_terms(*model.kernel(y, y), h, th)

    meta = {"family": spec, "training_images": ("data.COLOR_TRAIN" if cfg.color else "data.TRAIN")
            if cfg.data == "natural" else f"fit_natural_gmm({gmm_shape(cfg.color)},10,10000)"}
    desc = f"train unrolled {cfg.family}/{cfg.data}" + ("/colour" if cfg.color else "")
    out = Path(out)
    if cfg.branch_pretrain and not out.with_suffix(".ckpt").exists():
        # the branch alone first (its own resumable fit); once the whole network's checkpoint exists it holds it
        pre = out.with_suffix(".branch.pt")
        fit(_BranchAlone(model), branch_loss, replace(cfg, steps=cfg.branch_pretrain, lr=cfg.branch_lr), pre,
            meta=meta, desc=desc + " (kernel branch)", progress=progress)
        model.load_state_dict(torch.load(pre, map_location="cpu", weights_only=True)["state_dict"], strict=False)
        pre.unlink()
    return fit(model, batch_loss, cfg, out, meta=meta, desc=desc, progress=progress)


class _BranchAlone(torch.nn.Module):
    """An unrolled model's kernel branch as a network of its own (``--branch-pretrain``); its weights keep the
    whole model's names (``kernel_branch.*``)."""

    def __init__(self, model: UnrolledBlind):
        super().__init__()
        self.kernel_branch = model.kernel_branch
        self.config = {**model.config, "arch": "unrolled-kernel-branch"}


#: what each shipped model was trained with (``landscape train-unrolled NAME`` uses these as defaults)
RECIPES: dict[str, dict] = {
    "unrolled-gaussian": {"family": "gaussian", "theta_max": 3.0},
    "unrolled-motion": {"family": "motion", "theta_max": 13.0},
    "unrolled-shake": {"family": "free"},
    "unrolled-shake-29": {"family": "free", "kernel_size": 29, "init": "unrolled-shake", "steps": 1500, "lr": 1e-4,
                          "seed": 6},
    "unrolled-gmm16": {"family": "gaussian", "theta_max": 3.0, "data": "gmm", "patch": 16, "batch": 32,
                       "init": "denoiser-gmm16", "steps": 3000},
    "unrolled-gmm16-color": {"family": "gaussian", "theta_max": 3.0, "data": "gmm", "color": True, "patch": 16,
                             "batch": 32, "init": "unrolled-gaussian-color", "steps": 2000, "lr": 1e-4},
    "unrolled-gaussian-color": {"family": "gaussian", "theta_max": 3.0, "color": True, "init": "denoiser-color",
                                "patch": 48, "steps": 3000},
    "unrolled-shake-color": {"family": "free", "color": True, "init": "denoiser-color", "patch": 48, "steps": 3000},
    "unrolled-shake-color-29": {"family": "free", "color": True, "kernel_size": 29, "init": "unrolled-shake-color",
                                "patch": 64, "steps": 1500, "lr": 1e-4, "seed": 6},
    "unrolled-motion-color": {"family": "motion", "theta_max": 13.0, "color": True, "init": "denoiser-color",
                              "patch": 48, "steps": 3000},
    "unrolled-motion-marginal": {"family": "motion", "theta_max": 13.0, "marginal": True, "init": "unrolled-motion",
                                 "steps": 1500, "lr": 1e-4, "seed": 5},
    "unrolled-motion-marginal-color": {"family": "motion", "theta_max": 13.0, "marginal": True, "color": True,
                                       "init": "unrolled-motion-color", "patch": 48, "steps": 1500, "lr": 1e-4,
                                       "seed": 5},
}
