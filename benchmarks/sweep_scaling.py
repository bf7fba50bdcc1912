"""A sweep of N trivial-minimizer cases (exact Gaussian prior, 64x64 crops, one case per prior
weight) run three ways from one process: in this process, on a dask LocalCluster of 1 worker and of 2
workers (one torch thread each). Prints wall times, the speed-up of 2 workers over 1 against the ideal
(the core count), the floor (the cases' own compute time / workers), the cluster's start-up, and the
engine's per-case overhead (wall - cases' own time, per case).

    python benchmarks/sweep_scaling.py [--cases 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from landscape import sweep

OPTIONS = dict(priors="gaussian", crop=64, kernel_size=15, n_theta=25, n_draws=2, noise_levels="0.01,0.02",
               n_outer=30, max_iter=300)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    weights = [float(w) for w in range(1, args.cases + 1)]
    defn = sweep.Definition("trivial-minimizer", {**OPTIONS, "weights": ",".join(map(str, weights))})
    defn.check()
    tmp = Path(tempfile.mkdtemp(prefix="sweep-bench-"))

    # in this process: the cases' own time (each case's run + its file), and the wall time
    own: dict[str, float] = {}
    real = sweep.execute

    def timed(*a, **k):
        own.update(real(*a, **k))
        return own

    sweep.execute = timed
    t = time.perf_counter()
    sweep.run(defn, tmp / "inproc.nc", progress=False)
    wall_in = time.perf_counter() - t
    sweep.execute = real
    case_total = sum(own.values())
    n = len(own)

    from distributed import Client, LocalCluster
    rows = []
    for workers in (1, 2):
        t = time.perf_counter()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        client.run(lambda: __import__("landscape.studies"))         # workers import the package once
        start = time.perf_counter() - t
        t = time.perf_counter()
        sweep.run(defn, tmp / f"w{workers}.nc", scheduler=cluster.scheduler_address, progress=False)
        rows.append((workers, start, time.perf_counter() - t))
        client.close()
        cluster.close()

    print(f"{n} cases (trivial-minimizer, gaussian prior, 64x64, 25 theta); one torch thread per process")
    print(f"  cases' own time (run + write), summed : {case_total:7.1f} s  ({case_total / n:.2f} s per case)")
    print(f"  in this process                       : {wall_in:7.1f} s  overhead {(wall_in - case_total) / n * 1e3:6.1f} ms/case")
    for workers, start, wall in rows:
        floor = case_total / workers
        print(f"  LocalCluster, {workers} worker(s)               : {wall:7.1f} s  floor {floor:6.1f} s  "
              f"overhead {(wall - floor) / n * 1e3:6.1f} ms/case (cluster start {start:.1f} s)")
    print(f"  speed-up 2 workers over 1: {rows[0][2] / rows[1][2]:.2f}x (ideal 2.00x on 2 cores)")


if __name__ == "__main__":
    main()
