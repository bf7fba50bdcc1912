r"""Training the shipped denoisers, seeded and resumable.

Denoising score matching with EDM's noise distribution and weighting: for clean patches
:math:`x`, noise levels :math:`\sigma` (in EDM's [-1, 1] units, :math:`\sigma = 2s`) drawn
log-normally (:math:`\log\sigma \sim N(-1.2, 1.2^2)`, 80 %) or log-uniformly on
[0.004, 80] (20 %, so the extremes the probability-flow ODE visits are covered), minimise
:math:`\lambda(\sigma)\, \|\tilde D(\tilde x + \sigma n, \sigma) - \tilde x\|^2`,
:math:`\lambda = (\sigma^2 + \sigma_d^2)/(\sigma\sigma_d)^2`. Adam, cosine learning-rate decay,
an exponential moving average (EMA) of the weights, which is what is saved.

Data: random patches (flips and 90-degree rotations) of ``data.TRAIN``, or any sampler
``(batch, rng) -> (batch, p, p)`` passed in by a higher layer (the command line passes exact
samples of the GMM prior fitted to 16x16 natural crops for ``--data gmm``, so that the learned and
the exact score can be compared on one distribution; this module does not import the priors).

A checkpoint (model, EMA, optimiser, step, random states) is written atomically every
``checkpoint_every`` steps beside the output; rerunning the same command resumes from it.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .._checks import Check, InputError, device_check, flag, integer, number, one_of, option, validate
from . import nets

#: training data: ``(batch, rng) -> Tensor (batch, p, p)``
Sampler = Callable[[int, np.random.Generator], torch.Tensor]

#: the ``device`` option of every training command
TRAIN_DEVICE_HELP = ("where the network trains: cpu, cuda, cuda:N or mps (the data and the noise are drawn on the "
                     "host, so a run draws the same batches on every device; a checkpoint resumes on any device)")
#: options a checkpoint may differ in and still be resumed
RESUMABLE_ACROSS = ("checkpoint_every", "threads", "device")


@dataclass
class TrainConfig:
    """Options of ``landscape train-prior`` (the weights file stores them)."""

    kind: str = option("tweedie", "tweedie (EDM denoiser) or gs (gradient-step)", one_of(("tweedie", "gs")))
    data: str = option("natural", "natural (data.TRAIN patches) or gmm (exact samples of the 16x16 GMM)",
                       one_of(("natural", "gmm")))
    channels: int = option(32, "base channels of the UNet", integer(1))
    color: bool = option(False, "colour (RGB) patches of data.COLOR_TRAIN, a 3-channel network (natural data only)",
                         flag())
    steps: int = option(6000, "optimiser steps", integer(1))
    batch: int = option(16, "patches per step", integer(1))
    patch: int = option(48, "patch size (a multiple of 4)", Check("a multiple of 4, at least 8",
                                                                 lambda v: isinstance(v, int) and v >= 8 and v % 4 == 0,
                                                                 (0, 6, 50)))
    lr: float = option(1e-3, "peak learning rate (Adam; cosine decay)", number(0.0, 1.0, lo_open=True))
    ema: float = option(0.999, "EMA rate of the saved weights", number(0.0, 1.0, hi_open=True))
    seed: int = option(0, "seed (data, noise, initialisation)", integer(0))
    checkpoint_every: int = option(250, "steps between checkpoints", integer(1))
    threads: int = option(0, "torch threads (0: torch's default)", integer(0))
    device: str = option("cpu", TRAIN_DEVICE_HELP, device_check())

    def __post_init__(self):
        self.validate()                # validated on construction, like every options object

    def validate(self) -> "TrainConfig":
        validate(self)
        if self.color and self.data != "natural":
            raise InputError("color", "colour training on natural images (--data natural)", self.data)
        return self


class PatchSampler:
    """Random augmented patches ``(B, p, p)`` of the training images (``(B, 3, p, p)`` of
    ``data.COLOR_TRAIN`` with ``color``)."""

    def __init__(self, patch: int, color: bool = False):
        from .. import data
        names = data.COLOR_TRAIN if color else data.TRAIN
        self.images = [data.load(n, color=color) for n in names]
        self.patch, self.color = patch, color

    def __call__(self, batch: int, g: np.random.Generator) -> torch.Tensor:
        p = self.patch
        out = np.empty((batch, *self.images[0].shape[:-2], p, p))
        for i in range(batch):
            im = self.images[g.integers(len(self.images))]
            r, c = g.integers(im.shape[-2] - p + 1), g.integers(im.shape[-1] - p + 1)
            x = np.rot90(im[..., r:r + p, c:c + p], g.integers(4), axes=(-2, -1))
            out[i] = x[..., ::-1] if g.integers(2) else x
        return torch.as_tensor(out, dtype=torch.float32, device="cpu")            # a host batch


def training_data(cfg: Any, sampler: Sampler | None) -> Sampler:
    """``sampler`` itself, or for ``cfg.data == "natural"`` random ``cfg.patch`` patches of ``data.TRAIN``;
    other data need a sampler built by a higher layer (the command line)."""
    if sampler is not None:
        return sampler
    if cfg.data != "natural":
        raise InputError("data", f"a sampler for training data {cfg.data!r} (the command line builds it)", None)
    return PatchSampler(cfg.patch, getattr(cfg, "color", False))


def sample_sigma(batch: int, gen: torch.Generator) -> torch.Tensor:
    """EDM-unit noise levels: 80 % log-normal(-1.2, 1.2), 20 % log-uniform on [0.004, 80]."""
    on = dict(generator=gen, device=gen.device)                          # drawn where the generator lives
    ln = torch.randn(batch, **on) * 1.2 - 1.2
    lu = torch.rand(batch, **on) * (math.log(80) - math.log(0.004)) + math.log(0.004)
    pick = torch.rand(batch, **on) < 0.8
    return torch.exp(torch.where(pick, ln, lu)).clamp(0.004, 80)


def denoising_loss(model: torch.nn.Module, x: torch.Tensor, sigma: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """EDM-weighted denoising loss in [-1, 1] units (``model`` works in [0, 1] units); the noise is drawn
    from the host generator ``gen`` and moved to ``x``'s device."""
    sd = nets.EDMDenoiser.sigma_data
    n = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=gen.device).to(x.device)
    s = sigma.to(x.device) / 2
    per_image = (-1,) + (1,) * (x.ndim - 1)
    z = x + s.view(per_image) * n
    d = model(z, s)
    w = (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2
    return (w.view(per_image) * (2 * d - 2 * x) ** 2).mean()


def train(cfg: TrainConfig, out: str | Path, *, sampler: Sampler | None = None, progress: bool = True) -> Path:
    """Train (or resume) and write the EMA weights to ``out``.

    Parameters
    ----------
    cfg : TrainConfig
    out : path
        Weights file; the checkpoint ``out.with_suffix('.ckpt')`` beside it is resumed when present
        (its options must match ``cfg``, except ``checkpoint_every``, ``threads`` and ``device``).
    sampler : callable ``(batch, rng) -> Tensor (batch, p, p)``, optional
        Training data; required for ``cfg.data`` other than ``"natural"`` (random patches of
        ``data.TRAIN``). It must draw only from ``rng``, which is checkpointed.
    progress : bool

    Returns
    -------
    Path
        ``out``.
    """
    cfg.validate()
    sampler = training_data(cfg, sampler)
    torch.manual_seed(cfg.seed)
    with torch.device("cpu"):                  # initialised on the host, the same weights wherever it trains
        model = (nets.EDMDenoiser if cfg.kind == "tweedie" else nets.GSDenoiser)(cfg.channels,
                                                                                 image_channels=3 if cfg.color else 1)

    def batch_loss(rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
        x = sampler(cfg.batch, rng).to(cfg.device)
        return denoising_loss(model, x, sample_sigma(cfg.batch, gen), gen)

    meta = {"training_images": ("data.COLOR_TRAIN" if cfg.color else "data.TRAIN") if cfg.data == "natural"
            else "fit_natural_gmm((16,16),10,10000)"}
    return fit(model, batch_loss, cfg, out, meta=meta, desc=f"train {cfg.kind}/{cfg.data}", progress=progress)


def fit(model: torch.nn.Module, batch_loss: Callable[[np.random.Generator, torch.Generator], torch.Tensor],
        cfg: Any, out: str | Path, *, meta: dict | None = None, desc: str = "train", progress: bool = True) -> Path:
    r"""The training loop shared by every shipped network: Adam, cosine learning-rate decay with a
    100-step warm-up, gradient clipping at norm 1, an EMA of the weights (what is saved), atomic
    checkpoints every ``cfg.checkpoint_every`` steps that a rerun resumes bit for bit.

    Parameters
    ----------
    model : nn.Module
        With a ``config`` dict (``nets.save`` stores it); initialised by the caller (seeded).
    batch_loss : callable ``(rng, gen) -> loss``
        One step's loss; it must draw randomness only from ``rng`` (numpy) and ``gen`` (torch), both
        checkpointed.
    cfg : dataclass
        With ``steps``, ``lr``, ``ema``, ``seed``, ``checkpoint_every``, ``threads``, ``device`` (where
        ``model`` and its EMA train; ``batch_loss`` puts its batches there); all its other fields must
        match a checkpoint's to resume from it (``RESUMABLE_ACROSS``: a run may resume on another device).
    out : path
        Weights file (``nets.save``); the checkpoint is ``out.with_suffix('.ckpt')``.
    meta : dict, optional
        Stored in the weights file beside the options and the final loss.

    Returns
    -------
    Path
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(out)
    ckpt = out.with_suffix(".ckpt")
    model.to(getattr(cfg, "device", "cpu"))
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    step, losses = 0, []
    if ckpt.exists():
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        same = lambda c: {k: v for k, v in c.items() if k not in RESUMABLE_ACROSS}
        if same(st["config"]) != same(asdict(cfg)):
            raise InputError("out", f"a checkpoint made with the same options (found {st['config']})", str(ckpt))
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        rng.bit_generator.state = st["numpy_rng"]
        gen.set_state(st["torch_gen"])
        step, losses = st["step"], st["losses"]
    sched = lambda k: cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(k, cfg.steps) / cfg.steps))) \
        * min(1.0, (k + 1) / 100)

    def save_ckpt():
        from ..io import atomic_path
        with atomic_path(ckpt) as tmp:
            torch.save({"config": asdict(cfg), "model": model.state_dict(), "ema": ema.state_dict(),
                        "opt": opt.state_dict(), "numpy_rng": rng.bit_generator.state,
                        "torch_gen": gen.get_state(), "step": step, "losses": losses}, tmp)

    model.train()
    t0 = time.time()
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, disable=not progress)
    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = sched(step)
        loss = batch_loss(rng, gen)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is not finite at step {step}; the last checkpoint is "
                                     f"{ckpt} (step {step - step % cfg.checkpoint_every})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            decay = min(cfg.ema, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)
        losses.append(loss.item())
        step += 1
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4g}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save_ckpt()
    bar.close()
    info = {"train_config": asdict(cfg), "final_loss_mean_last_200": float(np.mean(losses[-200:])),
            "wall_seconds_last_session": time.time() - t0, "torch_version": str(torch.__version__), **(meta or {})}
    ema.eval()
    nets.save(ema, out, meta=info)
    return out
