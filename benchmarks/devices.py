"""Every study with a ``device`` option, its ``--quick`` run on the CPU and on each accelerator this machine has:
the time of each, the speed-up, and the largest difference of the results' float variables from the CPU's.

    python benchmarks/devices.py                      # every study with a device option
    python benchmarks/devices.py --studies trivial-minimizer --rtol 1e-3

Where there is no GPU (no CUDA device, no MPS) it says so and exits 0. A run whose results differ from the
CPU's by more than ``--rtol`` (relative to the variable's largest magnitude; float32 pipelines round
differently on another device) is reported and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np
import torch


def accelerators() -> list[str]:
    """The accelerators torch sees here: ``cuda:0`` ... and ``mps``."""
    out = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def with_device(study: str) -> bool:
    from landscape import studies
    return any(f.name == "device" for f in dataclasses.fields(studies.get(study).Config))


def timed(study: str, device: str):
    from landscape import studies
    mod = studies.get(study)
    cfg = mod.Config(quick=True, device=device)
    t0 = time.perf_counter()
    ds = mod.run(cfg, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return ds, time.perf_counter() - t0


def largest_difference(a, b) -> tuple[str, float]:
    """The float variable (timings aside) whose difference, relative to its largest magnitude, is largest."""
    worst, name = 0.0, ""
    for k in a.data_vars:
        if a[k].attrs.get("kind") == "timing" or a[k].dtype.kind != "f" or k not in b:
            continue
        x, y = a[k].values, b[k].values
        fin = np.isfinite(x) & np.isfinite(y)
        if (np.isfinite(x) != np.isfinite(y)).any():
            return k, float("inf")
        if fin.any():
            d = float(np.abs(x[fin] - y[fin]).max() / max(np.abs(x[fin]).max(), 1e-300))
            if d > worst:
                worst, name = d, k
    return name, worst


def main(argv: list[str] | None = None) -> int:
    from landscape import studies
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--studies", default="", help="comma-separated (default: every study with a device option)")
    p.add_argument("--rtol", type=float, default=1e-3, help="largest relative difference from the CPU's results")
    a = p.parse_args(argv)
    devs = accelerators()
    if not devs:
        print("no GPU (no CUDA device, no MPS): nothing to compare; the studies run on the CPU")
        return 0
    names = [s for s in a.studies.split(",") if s] or [s for s in studies.STUDIES if with_device(s)]
    bad = 0
    print(f"{'study':<22}{'device':<10}{'cpu (s)':>9}{'device (s)':>12}{'speed-up':>10}  largest difference")
    for s in names:
        ref, t_cpu = timed(s, "cpu")
        for d in devs:
            ds, t = timed(s, d)
            var, diff = largest_difference(ref, ds)
            ok = diff <= a.rtol
            bad += not ok
            print(f"{s:<22}{d:<10}{t_cpu:>9.1f}{t:>12.1f}{t_cpu / t:>9.2f}x  {diff:.2g} ({var})"
                  + ("" if ok else f"  > rtol {a.rtol:g}"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
