"""How far from the truth the joint MAP's basin reaches on measured camera shake (``real-shake``'s cases).

    python benchmarks/basin_radius.py [--crop 128] [--fractions 0.25,0.5,0.75] [--n-outer 60] [--threads N]

For each of the six shipped kernels x the three held-out images (sigma = 0.01, the seed of ``real-shake``), the
joint MAP under Levin's sparse prior (``kernel_estimation.map_xk``: PAM with delayed normalisation at full size,
``--n-outer`` alternations) starts from a kernel part way from the truth to a wrong kernel,
h_t = (1 - t) h* + t h_0, with its Wiener image, for each fraction t and two wrong kernels h_0: the Dirac and the
shipped unrolled network's estimate (centred on the case's support). Printed per start: the fraction of cases whose
error ratio (Levin's protocol, as the study) is at most 2 and 3, and the median kernel error at the end. t = 0 is
``real-shake``'s ``map_xk_from_truth``; t = 1 with the network's kernel its ``map_xk_from_unrolled``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from landscape import kernels, metrics
from landscape import kernel_estimation as ke
from landscape.estimators.unrolled import load_unrolled, reconstruct
from landscape.io import host
from landscape.posterior import BlindDeblur
from landscape.priors import PriorSettings, make_prior
from landscape.resources import MEASURED_KERNELS
from landscape.studies.common import image_sources

IMAGES = ("camera", "ascent", "aero")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--fractions", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--n-outer", type=int, default=60)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    fractions = [float(t) for t in a.fractions.split(",")]
    net = load_unrolled("unrolled-shake")
    rows: dict[tuple[str, float], list[tuple[float, float]]] = {}
    t0 = time.perf_counter()
    for kname in MEASURED_KERNELS:
        h_true = kernels.load(kname)
        K = h_true.shape[0]
        fam = kernels.Free(K)
        for iname in IMAGES:
            (_, img), = image_sources((iname,), (), a.crop)
            y = host(BlindDeblur.synthetic(img, fam, fam.theta_of(h_true), 0.01, rng=0).y)
            sparse = make_prior("sparse", img.shape, PriorSettings())
            gauss = make_prior("gaussian", img.shape, PriorSettings())

            def ssd(h):
                return metrics.shift_tolerant_ssd(ke.nonblind(y, 0.01, h, gauss), img)[0]

            ref = ssd(h_true)
            h_net = kernels.centre(reconstruct(net, y, 0.01)["kernel"], K)
            wrong = {"dirac": kernels.centre(kernels.dirac(1, device="cpu").numpy(), K), "unrolled": h_net / h_net.sum()}
            for wname, h0 in wrong.items():
                for t in fractions:
                    if t == 0 and wname != "dirac":
                        continue                                     # the truth itself: once
                    h = (1 - t) * h_true + t * h0
                    out = ke.map_xk(y, 0.01, K, sparse, n_outer=a.n_outer,
                                    start=(h, ke.nonblind(y, 0.01, h, gauss)))["kernel"]
                    rows.setdefault((wname if t else "truth", t), []).append((ssd(out) / ref,
                                                                              ke.kernel_error(out, h_true)))
            print(f"  {kname}/{iname} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"joint MAP (sparse prior, {a.n_outer} alternations) from h_t = (1 - t) h* + t h_0, {a.crop}x{a.crop}, "
          f"{len(rows[('truth', 0.0)])} cases, {time.perf_counter() - t0:.0f} s")
    print(f"  {'h_0':<9} {'t':>5}  {'r <= 2':>6}  {'r <= 3':>6}  {'median |h - h*|':>15}")
    for (wname, t), v in rows.items():
        r, err = np.array(v).T
        print(f"  {wname:<9} {t:5.2f}  {(r <= 2).mean():6.2f}  {(r <= 3).mean():6.2f}  {np.median(err):15.3f}")


if __name__ == "__main__":
    main()
