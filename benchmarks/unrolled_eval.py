"""The shipped unrolled models on held-out data: PSNR, kernel error and parameter error, in one run.

    python benchmarks/unrolled_eval.py [--models unrolled-gaussian,unrolled-shake,unrolled-gmm16] [--oracle]

Natural models: 64x64 crops of the held-out images (camera, ascent, aero; three places each; a colour
model: (3, 64, 64) crops of the held-out colour photographs chelsea and coffee, three places each), kernels
drawn from the model's training range (seeded: Gaussian widths or motion (length, angle) uniform on the
box, camera-shake draws of sizes 5-15, or 5..--kernel-size, zero-padded to a free model's support: the same
draws for every free model), sigma in {0.01, 0.03}. The GMM model: 16x16 draws of its GMM.
Reports means over the cases: PSNR of y and of the reconstruction, ||h_hat - h*||, and |theta_hat - theta*|
(first parameter) for the parametric models.

A colour model is also compared with its gray counterpart (the name without ``-color``) run on each channel
as a separate gray image (three kernels; the row reports their mean kernel error), on the same cases.

``--oracle``: two more kernel errors per case (gray models) (the same ||h - h*||, no re-centring), of the simplex
least-squares kernel (``kernel_estimation.least_squares_kernel``, on h*'s support) fitted to y from the *true* image x*
(the oracle: what a least-squares kernel step reaches with a perfect image) and from the model's own
reconstruction x_hat. The first bounds what a better kernel step could gain; the gap between the two is
the part of the kernel error that comes from the image estimate.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from landscape import data, priors
from landscape.kernel_estimation import least_squares_kernel
from landscape.estimators.train_unrolled import RECIPES, UnrolledTrainConfig, draw_kernels, simulate
from landscape.estimators.unrolled import check_kernel_for, load_unrolled


def images(model_name: str, rng: np.random.Generator, color: bool = False) -> list[np.ndarray]:
    if model_name == "unrolled-gmm16":
        gmm = priors.fit_natural_gmm((16, 16), 10, 10000, progress=False)
        return [x.numpy() for x in gmm.sample(9, rng=rng)]
    out = []
    for name in data.COLOR_TEST if color else ("camera", "ascent", "aero"):
        im = data.load(name, color=color)
        for fr in (0.3, 0.5, 0.7):
            r, c = int(fr * (im.shape[-2] - 64)), int((1 - fr) * (im.shape[-1] - 64))
            out.append(im[..., r:r + 64, c:c + 64])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="unrolled-gaussian,unrolled-motion,unrolled-shake,unrolled-gmm16,unrolled-gaussian-color",
                    help="shipped names, or NAME:PATH for a weights file trained with NAME's recipe")
    ap.add_argument("--kernel-size", type=int, default=15,
                    help="free-kernel models: camera-shake draws of sizes 5..this, zero-padded to each model's support")
    ap.add_argument("--oracle", action="store_true",
                    help="also the least-squares kernel's error from x* and from x_hat")
    args = ap.parse_args()
    print(f"{'model':<20}{'cases':>6}{'PSNR y':>9}{'PSNR x_hat':>12}{'|h - h*|':>10}{'|theta - theta*|':>18}"
          + (f"{'LS(x*)':>9}{'LS(x_hat)':>11}" if args.oracle else ""))
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
        gray = load_unrolled(name.removesuffix("-color")) if model.image_channels == 3 and not path else None
        for img in images(name, rng, color=model.image_channels == 3):
            for sig in (0.01, 0.03):
                x = torch.as_tensor(img, dtype=torch.float32)[None]
                h = draw_kernels(cfg, 1, rng)
                if free:                          # the same draws for every free model, on its own support
                    h = torch.as_tensor(check_kernel_for(model, h[0].double().numpy()), dtype=torch.float32)[None]
                y = simulate(x, h, torch.tensor([sig]), gen)
                with torch.no_grad():
                    o = model(y, sig)
                psnr = lambda a: 10 * np.log10(1 / float(((a - x) ** 2).mean()))
                th_err = np.nan
                if o["theta"] is not None:       # the true theta: the closest in the family (kernels are exact there)
                    fam = model.family
                    grid = torch.linspace(float(model.kernel_branch.lo[0]), float(model.kernel_branch.hi[0]), 301)
                    if fam.n_params == 1:
                        cand = fam(grid[:, None].double()).float()
                        true_th = float(grid[int(((cand - h) ** 2).sum((-2, -1)).argmin())])
                        th_err = abs(float(o["theta"][0, 0]) - true_th)
                oracle = (np.nan, np.nan)
                if args.oracle and model.image_channels == 1:     # the same circular model y was simulated with
                    size, yy, ht = h.shape[-1], y[0].double().numpy(), h[0].double().numpy()
                    oracle = tuple(float(np.linalg.norm(least_squares_kernel(yy, im, size) - ht))
                                   for im in (x[0].double().numpy(), o["x"][0].double().numpy()))
                rows.append((psnr(y), psnr(o["x"]), float((o["kernel"] - h).norm()), th_err, *oracle))
                if gray is not None:                 # the gray model on each channel as its own image
                    with torch.no_grad():
                        og = gray(y[0], sig)
                    per_channel.append((psnr(y), psnr(og["x"][None]),
                                        float((og["kernel"] - h).flatten(1).norm(dim=1).mean()), np.nan))
        r = np.array(rows)
        print(f"{entry:<20}{len(r):6d}{r[:, 0].mean():9.2f}{r[:, 1].mean():12.2f}{r[:, 2].mean():10.3f}"
              f"{np.nanmean(r[:, 3]) if np.isfinite(r[:, 3]).any() else float('nan'):18.3f}"
              + (f"{r[:, 4].mean():9.3f}{r[:, 5].mean():11.3f}" if args.oracle else ""))
        if per_channel:
            g = np.array(per_channel)
            label = name.removesuffix("-color") + " per channel"
            print(f"{label:<20}{len(g):6d}{g[:, 0].mean():9.2f}{g[:, 1].mean():12.2f}{g[:, 2].mean():10.3f}{'':>18}")


if __name__ == "__main__":
    main()
