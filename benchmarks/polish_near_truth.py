"""Are the main study's near-truth descent end points local minimisers? The descents of
studies/main.toml from the truth moved by 10 % and 30 % (gradient-step prior, 64x64 camera, Gaussian blur
theta* = 1.5, sigma = 0.01), then certify.polish from each end point with theta kept within a small box
(2 % and 5 % of the family's range: theta +- 0.15 and +- 0.375). Prints where each polish ends, whether it
left its box, and how far the energy fell.

    python benchmarks/polish_near_truth.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from landscape import certify, data, descent, kernels
from landscape.posterior import BlindDeblur, Posterior
from landscape.priors import PriorSettings, make_prior
from landscape.solvers import SolverOptions


def main() -> None:
    torch.set_num_threads(1)
    fam = kernels.get("gaussian", 15)
    img = data.center_crop(data.load("camera"), 64)
    pb = BlindDeblur.synthetic(img, fam, np.array([1.5]), 0.01, rng=0, dtype=torch.float32)
    post = Posterior(pb, make_prior("gs", (64, 64), PriorSettings(s=0.01, dtype=torch.float32)))
    th0, x0, labels = descent.initialisations(post, rng=0)
    dsd = descent.descend(post, th0, x0, labels=labels, n_outer=30, progress=False,
                          solver=SolverOptions(xtol=1e-5, etol=0.01, max_iter=300))
    post64 = Posterior(BlindDeblur(pb.y.double(), fam, 0.01, dtype=torch.float64),
                       make_prior("gs", (64, 64), PriorSettings(s=0.01, dtype=torch.float64)))
    for j, lab in enumerate(labels):
        if dsd.end_class.values[j] != "near_truth":
            continue
        th = float(dsd.theta_path.values[j, -1, 0])
        x = torch.as_tensor(dsd.x_final.values[j], dtype=torch.float64)
        e0 = float(post64.energy([[th]], x[None])[0])
        for box in (0.02, 0.05):
            t = time.perf_counter()
            pol = certify.polish(post64, [[th]], x, box=box, gtol=1e-4)
            print(f"{lab:<10} end theta {th:.4f}  box {box}: theta -> {pol['theta'][0]:.4f}  left box "
                  f"{pol['left_box']}  energy fell {e0 - pol['energy']:.2f} nats  ({pol['iterations']} its, "
                  f"{time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
