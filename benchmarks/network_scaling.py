"""Does a learned prior's call cost more per pixel on larger images? One energy-and-gradient call on the same pixel
count (16 images of 64^2, 4 of 128^2, 1 of 256^2), per dtype.

    python benchmarks/network_scaling.py [--prior gs] [--threads 2] [--repeat 3]

Prints the best of ``--repeat`` calls (after one warm-up) in ns per pixel and its ratio to the 64^2 batch's (the
baseline: the same work in small images). The call is the floor of every phase that uses the prior (profile,
descents, polish, certificate; ``benchmarks/scale.py``), so a ratio above 1 at 256^2 is growth the pipeline
cannot remove by itself.
"""

from __future__ import annotations

import argparse
import time

import torch

from landscape.priors import PriorSettings, make_prior

#: (batch, side): the same 65,536 pixels in images of three sizes
LAYOUTS = ((16, 64), (4, 128), (1, 256))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default="gs", help="a registry prior with energy_and_grad (gs, tweedie's grad, ...)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"network_scaling: prior {args.prior}, {torch.get_num_threads()} threads, best of {args.repeat}")
    print(f"  {'dtype':<8} {'images':>12} {'s / call':>9} {'ns / pixel':>11} {'vs 64^2':>8}")
    for dtype in (torch.float32, torch.float64):
        prior = make_prior(args.prior, (64, 64), PriorSettings(s=0.02, dtype=dtype))
        base = None
        for b, n in LAYOUTS:
            x = torch.rand(b, n, n, dtype=dtype, generator=torch.Generator().manual_seed(0))
            prior.energy_and_grad(x)
            best = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                prior.energy_and_grad(x)
                best = min(best, time.perf_counter() - t)
            per = 1e9 * best / x.numel()
            base = base or per
            print(f"  {str(dtype).removeprefix('torch.'):<8} {f'{b} x {n}^2':>12} {best:9.3f} {per:11.1f} {per / base:8.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
