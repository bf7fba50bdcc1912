"""The shipped unrolled models on held-out data: PSNR, kernel error and parameter error, in one run.

    python benchmarks/unrolled_eval.py [--models unrolled-gaussian,unrolled-shake,unrolled-gmm16] [--oracle]
                                       [--classical] [--marginal] [--crop 64] [--kernel-size 15]
                                       [--support model|draw] [--by-noise]

Natural models: 64x64 crops (``--crop``) of the held-out images (camera, ascent, aero; three places each; a colour
model: (3, 64, 64) crops of the held-out colour photographs chelsea and coffee, three places each), kernels
drawn from the model's training range (seeded: Gaussian widths or motion (length, angle) uniform on the
box, camera-shake draws of sizes 5-15, or 5..--kernel-size, zero-padded to a free model's support: the same
draws for every free model; ``--support draw``: each free model estimates on the drawn kernel's own support, its
zero margins trimmed, and is compared with the trimmed kernel), sigma in {0.01, 0.03}. The GMM models: 16x16 draws
of their GMM ((3, 16, 16) for unrolled-gmm16-color).
Reports means over the cases: PSNR of y and of the reconstruction, ||h_hat - h*||, and for the parametric models
|theta_hat - theta*| (the first parameter: a width or a length, px) and a motion model's angle error (degrees,
modulo 180), against the parameters each kernel was drawn with.

A colour model is also compared with its gray counterpart (the name without ``-color``) run on each channel
as a separate gray image (three kernels; the row reports their mean kernel error), on the same cases.

``--oracle``: three more kernel errors per case (gray models) (the same ||h - h*||, no re-centring), of the simplex
least-squares kernel (``kernel_estimation.least_squares_kernel``, on h*'s support) fitted to y from the *true* image x*
(the oracle: what a least-squares kernel step reaches with a perfect image) and from the model's own
reconstruction x_hat. The first bounds what a better kernel step could gain; the gap between the two is
the part of the kernel error that comes from the image estimate. A third column feeds the model's own kernel
branch the true image (its first step, ``kernel(y, x*)``): what the branch makes of a perfect image. ``PSNR(h*)``: the
network's image steps given the true kernel at every iteration (``model(y, sigma, kernel=h*)``): the reconstruction
a perfect kernel branch would allow.

``--marginal`` (parametric models, gray or colour): MAP_theta's kernel, the minimiser of the closed-form
-log p(y | theta) under the stationary Gaussian prior over a grid of the model's box (``marginal.marginal_nll``'s
closed form as ``estimators.unrolled.MarginalKernelStep`` evaluates it), its error, and the PSNR of
the network's image steps given it (``model(y, sigma, kernel=h_MAP)``): the network made non-blind by MAP_theta.

``--by-noise``: each model's means also per noise level (sigma = 0.01, 0.03; 9 cases each).

``--classical`` (free-kernel models): the kernel errors of the classical estimators on the same cases, MAP_k under
the stationary Gaussian prior (``kernel_estimation.map_k``), under the sparse mixture prior (``map_k_mog``) and under
the shipped denoiser as a diffusion prior (``map_k_diffusion``: Monte Carlo EM with DPS draws, its defaults, seed 0),
each on the model's support (Levin et al. 2011's MAP_k: the reference the unrolled kernel is measured against).
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import torch

from landscape import data, priors
from landscape.kernel_estimation import least_squares_kernel, map_k, map_k_diffusion, map_k_mog
from landscape.estimators.train_unrolled import RECIPES, UnrolledTrainConfig, draw, gmm_shape, marginal_grid, simulate
from landscape.estimators.unrolled import MarginalKernelStep, check_kernel_for, load_unrolled


def images(model_name: str, rng: np.random.Generator, color: bool = False, crop: int = 64) -> list[np.ndarray]:
    if model_name.startswith("unrolled-gmm16"):
        gmm = priors.fit_natural_gmm(gmm_shape(color), 10, 10000, progress=False)
        return [x.numpy() for x in gmm.sample(9, rng=rng)]
    out = []
    for name in data.COLOR_TEST if color else ("camera", "ascent", "aero"):
        im = data.load(name, color=color)
        for fr in (0.3, 0.5, 0.7):
            r, c = int(fr * (im.shape[-2] - crop)), int((1 - fr) * (im.shape[-1] - crop))
            out.append(im[..., r:r + crop, c:c + crop])
    return out


def map_theta_kernel(model, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """MAP_theta's kernel ``(1, k, k)``: the minimiser of the closed-form -log p(y | theta) under the stationary
    Gaussian prior (gray or colour) over ``--marginal``'s grid of the model's training box (27 points for the first
    parameter; a motion angle every 5 degrees), by ``estimators.unrolled.MarginalKernelStep``."""
    lo, hi = model.kernel_branch.lo.tolist(), model.kernel_branch.hi.tolist()
    step = MarginalKernelStep(model.family, lo, hi, marginal_grid(lo, hi), image_channels=model.image_channels)
    nll = step.nll(y[None].double(), torch.tensor([sigma], dtype=torch.float64))
    return step.kernels[nll.argmin(1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="unrolled-gaussian,unrolled-motion,unrolled-motion-marginal,unrolled-shake,"
                    "unrolled-gmm16,unrolled-gaussian-color,unrolled-motion-color,unrolled-motion-marginal-color",
                    help="shipped names, or NAME:PATH for a weights file trained with NAME's recipe")
    ap.add_argument("--kernel-size", type=int, default=15,
                    help="free-kernel models: camera-shake draws of sizes 5..this, zero-padded to each model's support")
    ap.add_argument("--support", default="model", choices=["model", "draw"],
                    help="free-kernel models: estimate on the model's support, or on each drawn kernel's own")
    ap.add_argument("--oracle", action="store_true",
                    help="also the least-squares kernel's error from x* and from x_hat, and the model's kernel branch "
                    "fed x*")
    ap.add_argument("--classical", action="store_true",
                    help="free-kernel models: also MAP_k's kernel error (Gaussian, sparse-mixture and diffusion priors)")
    ap.add_argument("--marginal", action="store_true",
                    help="parametric models: MAP_theta under the stationary Gaussian prior on a grid of the "
                    "branch's box, its kernel error, and the network's image steps given that kernel")
    ap.add_argument("--crop", type=int, default=64, help="natural models: crop size of the held-out images")
    ap.add_argument("--by-noise", action="store_true", help="also print each model's means per noise level")
    args = ap.parse_args()
    print(f"{'model':<20}{'cases':>6}{'PSNR y':>9}{'PSNR x_hat':>12}{'|h - h*|':>10}{'|theta - theta*|':>18}{'angle err':>11}"
          + (f"{'LS(x*)':>9}{'LS(x_hat)':>11}{'branch(x*)':>12}{'PSNR(h*)':>10}" if args.oracle else "")
          + (f"{'MAP_k':>8}{'MAP_k MoG':>11}{'MAP_k diff':>12}" if args.classical else "")
          + (f"{'MAP_theta':>12}{'PSNR(MAPth)':>13}" if args.marginal else ""))
    for entry in args.models.split(","):
        name, _, path = entry.partition(":")
        try:
            model = load_unrolled(path or name)
        except ValueError as exc:
            print(f"{name:<20} not available: {exc}")
            continue
        free = RECIPES[name]["family"] == "free"
        cfg = UnrolledTrainConfig(**{**RECIPES[name], **({"kernel_size": args.kernel_size} if free else {})})
        rng = np.random.default_rng(2026)
        gen = torch.Generator().manual_seed(2026)
        rows, per_channel = [], []
        gray = load_unrolled(name.replace("-color", "")) if model.image_channels == 3 and not path else None
        for img in images(name, rng, color=model.image_channels == 3, crop=args.crop):
            for sig in (0.01, 0.03):
                x = torch.as_tensor(img, dtype=torch.float32)[None]
                h, th = draw(cfg, 1, rng)
                if free:                          # the same draws for every free model, on its own support
                    h = torch.as_tensor(check_kernel_for(model, h[0].double().numpy()), dtype=torch.float32)[None]
                y = simulate(x, h, torch.tensor([sig]), gen)
                support = None
                if free and args.support == "draw":       # the drawn kernel's own support: its zero margins trimmed
                    rows_used = np.flatnonzero(h[0].abs().sum(1) > 0)
                    cols_used = np.flatnonzero(h[0].abs().sum(0) > 0)
                    last = h.shape[-1] - 1
                    m = min(rows_used[0], cols_used[0], last - rows_used[-1], last - cols_used[-1])
                    support = h.shape[-1] - 2 * int(m)
                    h = h[:, m:m + support, m:m + support]
                with torch.no_grad():
                    o = model(y, sig, support=support)
                psnr = lambda a: 10 * np.log10(1 / float(((a - x) ** 2).mean()))
                th_err = angle_err = np.nan
                if o["theta"] is not None:       # the parameters the kernel was drawn with
                    th_err = abs(float(o["theta"][0, 0] - th[0, 0]))
                    if model.family.name == "motion":        # the angle's period is 180 degrees
                        d = abs(float(o["theta"][0, 1] - th[0, 1])) % 180.0
                        angle_err = min(d, 180.0 - d)
                oracle, classical = (np.nan,) * 4, (np.nan,) * 3
                size, yy, ht = h.shape[-1], y[0].double().numpy(), h[0].double().numpy()
                if args.oracle:
                    with torch.no_grad():
                        oracle = (np.nan,) * 3
                        if model.image_channels == 1:     # the same circular model y was simulated with
                            oracle = tuple(float(np.linalg.norm(least_squares_kernel(yy, im, size) - ht))
                                           for im in (x[0].double().numpy(), o["x"][0].double().numpy()))
                            oracle += (float((model.kernel(y, x)[0] - h).norm()),)
                        oracle += (psnr(model(y, sig, kernel=h)["x"]),)     # the image steps given the true kernel
                if args.classical and free and model.image_channels == 1:
                    classical = tuple(float(np.linalg.norm(est(yy, sig, size)["kernel"] - ht))
                                      for est in (map_k, map_k_mog, partial(map_k_diffusion, rng=0)))
                marg = (np.nan,) * 2
                if args.marginal and not free:
                    h_map = map_theta_kernel(model, y[0], sig)
                    with torch.no_grad():
                        marg = (float((h_map - h).norm()), psnr(model(y, sig, kernel=h_map)["x"]))
                rows.append((psnr(y), psnr(o["x"]), float((o["kernel"] - h).norm()), th_err, *oracle, *classical,
                             *marg, angle_err))
                if gray is not None:                 # the gray model on each channel as its own image
                    with torch.no_grad():
                        og = gray(y[0], sig, support=support)
                    per_channel.append((psnr(y), psnr(og["x"][None]),
                                        float((og["kernel"] - h).flatten(1).norm(dim=1).mean()), np.nan))
        r = np.array(rows)
        groups = [(entry, r)]
        if args.by_noise:                         # the cases alternate sigma = 0.01, 0.03
            groups += [(f"  sigma {sig:g}", r[i::2]) for i, sig in enumerate((0.01, 0.03))]
        for label, r in groups:
            print(f"{label:<20}{len(r):6d}{r[:, 0].mean():9.2f}{r[:, 1].mean():12.2f}{r[:, 2].mean():10.3f}"
                  f"{np.nanmean(r[:, 3]) if np.isfinite(r[:, 3]).any() else float('nan'):18.3f}"
                  f"{np.nanmean(r[:, -1]) if np.isfinite(r[:, -1]).any() else float('nan'):11.1f}"
                  + ("".join(f"{np.mean(r[:, i]):{w}.{d}f}" for i, w, d in ((4, 9, 3), (5, 11, 3), (6, 12, 3),
                                                                            (7, 10, 2))) if args.oracle else "")
                  + (f"{r[:, 8].mean():8.3f}{r[:, 9].mean():11.3f}{r[:, 10].mean():12.3f}" if args.classical else "")
                  + (f"{r[:, 11].mean():12.3f}{r[:, 12].mean():13.2f}" if args.marginal else ""))
        if per_channel:
            g = np.array(per_channel)
            label = name.replace("-color", "") + " per channel"
            print(f"{label:<20}{len(g):6d}{g[:, 0].mean():9.2f}{g[:, 1].mean():12.2f}{g[:, 2].mean():10.3f}{'':>18}")


if __name__ == "__main__":
    main()
