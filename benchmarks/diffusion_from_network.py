"""The diffusion MAP_k started from the unrolled network's kernel, on real-shake's cases: does the MMSE's kernel put
the EM in the truth's basin?

    python benchmarks/diffusion_from_network.py [--kernels levin2,levin3,levin4,levin5,levin7,levin8] [--threads 1]

For every case of ``studies/real-shake.toml`` (the kernels given × camera, ascent, aero, 128x128, sigma = 0.01, seed 0):
the study's ``unrolled`` kernel (``unrolled-shake-29`` on the case's support), centred on the case's support, then
``kernel_estimation.map_k_diffusion(start=that kernel)`` (its EM at full size, no pyramid, the study's E-step and
seed), both deconvolved by the study's non-blind step (the Gaussian prior's Wiener filter). Prints, per case, the error
ratio and kernel error of the network and of the EM started from it, and the success rates at r <= 2 and r <= 3.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from landscape import kernel_estimation as ke, kernels, metrics
from landscape.studies import real_shake as rs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default="levin2,levin3,levin4,levin5,levin7,levin8")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    skip = ",".join(e for e in rs.ESTIMATORS[1:] if e != "unrolled")
    ratios = {"network": [], "EM from it": []}
    for kname in args.kernels.split(","):
        h_true = kernels.load(kname)
        K = h_true.shape[0]
        for iname in ("camera", "ascent", "aero"):
            ds = rs.run(rs.Config(kernels=kname, images=iname, crop=128, skip=skip), progress=False)
            y, img = ds.y.values[0], ds.x_true.values[0]
            h0 = np.clip(kernels.centre(ds.kernel_hat.sel(estimator="unrolled").values[0], K), 0, None)
            h0 /= h0.sum()
            t0 = time.perf_counter()
            h = ke.map_k_diffusion(y, 0.01, K, start=h0, rng=0)["kernel"]
            seconds = time.perf_counter() - t0
            wiener = ke.gaussian_prior(img.shape)
            ssd = {name: metrics.shift_tolerant_ssd(ke.nonblind(y, 0.01, k, wiener), img)[0]
                   for name, k in (("true", h_true), ("network", h0), ("EM from it", h))}
            for name in ratios:
                ratios[name].append(ssd[name] / ssd["true"])
            print(f"{kname}/{iname}: network r {ratios['network'][-1]:.2f}, kernel error "
                  f"{ke.kernel_error(h0, h_true):.3f} -> EM r {ratios['EM from it'][-1]:.2f}, kernel error "
                  f"{ke.kernel_error(h, h_true):.3f} ({seconds:.0f} s)", flush=True)
    for name, r in ratios.items():
        r = np.array(r)
        print(f"{name:<12} success at r <= 2: {np.mean(r <= 2):.2f}, r <= 3: {np.mean(r <= 3):.2f}, "
              f"median r {np.median(r):.2f} ({len(r)} cases)")


if __name__ == "__main__":
    main()
