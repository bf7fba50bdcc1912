"""Denoising PSNR (dB) of the shipped denoisers on the held-out images, beside baselines.

    python benchmarks/denoising_psnr.py [--color] [--bm3d]

Held-out: camera (scikit-image), ascent and aero (PyWavelets), full 512x512, noise levels
5, 15, 25, 50 / 255, one noise draw shared by all methods. Baselines (Gaussian filter, TV) are
tuned on a training image at each level (``landscape.denoisers.evaluate``). ``--color``: the colour
denoiser on the held-out colour photographs (``data.COLOR_TEST``: chelsea, coffee, full size);
``--bm3d`` adds BM3D (colour mode with ``--color``; ``pip install -e '.[bench]'``).
"""

import argparse

import torch

from landscape import priors
from landscape.denoisers.evaluate import psnr_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--color", action="store_true", help="the colour denoisers on data.COLOR_TEST")
    ap.add_argument("--bm3d", action="store_true", help="add BM3D (the bm3d package)")
    args = ap.parse_args()
    names = ("denoiser-color", "gs-denoiser-color") if args.color else ("denoiser-gray", "gs-denoiser-gray")
    models = {n: priors.load_model(n) for n in names if n in priors.available()}
    dens = {}
    for n, m in models.items():
        if n.startswith("gs-"):
            dens[n] = lambda z, s, m=m: m(z, s).detach()
        else:
            dens[n] = m
    ds = psnr_table(dens, color=args.color, bm3d=args.bm3d)
    levels = [f"{v:g}/255" for v in ds.level_255.values]
    print(f"{'method':<18}{'image':<8}" + "".join(f"{l:>9}" for l in levels))
    for m in ds.method.values:
        for im in ds.image.values:
            print(f"{m:<18}{im:<8}" + "".join(f"{float(v):9.2f}" for v in ds.psnr.sel({"method": m, "image": im}).values))


if __name__ == "__main__":
    with torch.no_grad():
        main()
