"""How far from the truth the joint MAP's basin reaches on measured camera shake (``real-shake``'s cases).

    python benchmarks/basin_radius.py [--crop 128] [--fractions 0.25,0.5,0.75] [--n-outer 60] [--record R]
                                      [--scheme pam|alternating] [--estimator map_xk|map_k_diffusion]
                                      [--wrong dirac,unrolled] [--n-em 4] [--threads N]

For each of the six shipped kernels x the three held-out images (sigma = 0.01, the seed of ``real-shake``), the
joint MAP under Levin's sparse prior (``kernel_estimation.map_xk``: PAM with delayed normalisation at full size,
``--n-outer`` alternations) starts from a kernel part way from the truth to a wrong kernel,
h_t = (1 - t) h* + t h_0, with its Wiener image, for each fraction t and two wrong kernels h_0: the Dirac and the
shipped unrolled network's estimate (centred on the case's support). Printed per start: the fraction of cases whose
error ratio (Levin's protocol, as the study) is at most 2 and 3, and the median kernel error at the end. t = 0 is
``real-shake``'s ``map_xk_from_truth``; t = 1 with the network's kernel its ``map_xk_from_unrolled``.

``--estimator map_k_diffusion`` asks the same of MAP_k under the diffusion prior instead: ``real-shake``'s
``map_k_diffusion`` EM (``kernel_estimation.map_k_diffusion``, ``--n-em`` iterations at full size, the study's E-step
and seed) started at h_t; t = 0 is the study's ``map_k_diffusion_from_truth``. ``--wrong`` picks the wrong kernels.

``--scheme alternating`` replaces PAM's kernel step (clip, then normalise: its fixed points need not be stationary
points of E) by the projected-gradient step with the exact simplex projection, a descent of E on the simplex.

With ``--record R`` each start's descent is also read every ``R`` alternations (the same descent as ``map_xk``'s
warm start, ``descent.descend(scheme="pam")`` at full size, recorded): per start and alternation count, the median
kernel error, the median kernel move ``|h_n - h_{n-R}|`` and energy decrease ``E_{n-R} - E_n`` over the last ``R``
alternations (does the descent settle?), and at the end the largest such move and decrease over the cases, the
first-order residuals at the end against those at the start (the kernel's projected-gradient map on the simplex,
|h - P(h - tau g_h)| / tau with tau = 1e-4 / |g_h|, and |grad_x E|; both vanish at a stationary point of E on the
simplex), and the fraction of cases whose energy lies above the trivial pair's E(delta, y), above the trivial
minimum min_x E(delta, x) (the non-blind solve at the Dirac) and below the truth's E(h*, x*), with the medians of
those gaps (nats).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from landscape import kernels, metrics
from landscape import kernel_estimation as ke
from landscape.descent import descend
from landscape.hessian import joint_gradient
from landscape.estimators.unrolled import load_unrolled, reconstruct
from landscape.io import host
from landscape.posterior import BlindDeblur, Posterior
from landscape.priors import PriorSettings, make_prior
from landscape.resources import MEASURED_KERNELS
from landscape.studies.common import image_sources

IMAGES = ("camera", "ascent", "aero")


def residuals(post: Posterior, h: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """First-order residuals of E on the simplex x images at ``(h, x)``: the kernel's projected-gradient map
    ``|h - P(h - tau g_h)| / tau`` (``tau = 1e-4 / |g_h|``: a step of 1e-4 in a kernel summing to 1) and
    ``|grad_x E|``."""
    gt, gx = joint_gradient(post, post.problem.family.theta_of(h), torch.as_tensor(x))
    g, hv = gt.reshape(-1), torch.as_tensor(h).reshape(-1)
    tau = 1e-4 / float(g.norm())
    return float((hv - kernels.project_simplex((hv - tau * g)[None])[0]).norm() / tau), float(gx.norm())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--fractions", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--n-outer", type=int, default=60)
    ap.add_argument("--record", type=int, default=0, help="read the descent every R alternations (0: its end only)")
    ap.add_argument("--scheme", default="pam", choices=["pam", "alternating"],
                    help="the kernel step: PAM's delayed normalisation, or the exact simplex projection")
    ap.add_argument("--estimator", default="map_xk", choices=["map_xk", "map_k_diffusion"],
                    help="the joint MAP (PAM) or MAP_k under the diffusion prior (Monte Carlo EM)")
    ap.add_argument("--wrong", default="dirac,unrolled", help="the wrong kernels h_0 (dirac, unrolled)")
    ap.add_argument("--n-em", type=int, default=4, help="map_k_diffusion: EM iterations")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    fractions = [float(t) for t in a.fractions.split(",")]
    if a.record < 0 or (a.record and a.n_outer % a.record):
        ap.error(f"--record: a divisor of --n-outer ({a.n_outer}), got {a.record}")
    record = a.record or a.n_outer
    if a.record and a.estimator != "map_xk":
        ap.error("--record: only the joint MAP's descent is recorded (--estimator map_xk)")
    wrongs = a.wrong.split(",")
    if not wrongs or not set(wrongs) <= {"dirac", "unrolled"}:
        ap.error(f"--wrong: dirac and/or unrolled, got {a.wrong!r}")
    net = load_unrolled("unrolled-shake") if "unrolled" in wrongs else None
    paths: dict[tuple[str, float], list[dict[str, np.ndarray]]] = {}
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
            delta = kernels.dirac(1, device="cpu").numpy()
            wrong = {"dirac": kernels.centre(delta, K)}
            if "unrolled" in wrongs:                                 # the network runs only when its kernel is asked
                h_net = kernels.centre(reconstruct(net, y, 0.01)["kernel"], K)
                wrong["unrolled"] = h_net / h_net.sum()
            for wname in wrongs:
                for t in fractions:
                    if t == 0 and wname != wrongs[0]:
                        continue                                     # the truth itself: once
                    h = (1 - t) * h_true + t * wrong[wname]
                    key = (wname if t else "truth", t)
                    if a.estimator == "map_k_diffusion":
                        out = ke.map_k_diffusion(y, 0.01, K, n_em=a.n_em, start=h, rng=0)["kernel"]
                        rows.setdefault(key, []).append((ssd(out) / ref, ke.kernel_error(out, h_true)))
                        continue
                    post = Posterior(ke.kernel_problem(y, 0.01, K), sparse)
                    x0 = ke.nonblind(y, 0.01, h, gauss)
                    ds = descend(post, post.problem.family.theta_of(h), torch.as_tensor(x0)[None], scheme=a.scheme,
                                 n_outer=a.n_outer, record_every=record, progress=False)
                    hs = host(post.problem.family(torch.as_tensor(ds.theta_path.values[0, ds.estep.values])))
                    out = hs[-1]
                    rows.setdefault(key, []).append((ssd(out) / ref, ke.kernel_error(out, h_true)))
                    paths.setdefault(key, []).append({
                        "kernels": hs, "error": np.array([ke.kernel_error(k, h_true) for k in hs]),
                        "energy": ds.energy_path.values[0],
                        "residuals": (residuals(post, h, x0), residuals(post, out, ds.x_final.values[0]))
                        if a.record else None,
                        "trivial": post.energy_at_kernel(delta, y),
                        "trivial_min": post.energy_at_kernel(delta, ke.nonblind(y, 0.01, delta, sparse))
                        if a.record else None,
                        "truth": post.energy_at_kernel(h_true, img)})
            print(f"  {kname}/{iname} ({time.perf_counter() - t0:.0f} s): r, |h - h*| = " + ", ".join(
                f"{w if t else 'truth'} t={t:g}: {v[-1][0]:.2f}, {v[-1][1]:.3f}" for (w, t), v in rows.items()),
                flush=True)
    what = (f"MAP_k under the diffusion prior ({a.n_em} EM iterations)" if a.estimator == "map_k_diffusion" else
            f"joint MAP (sparse prior, {a.n_outer} alternations, {a.scheme})")
    print(f"{what} from h_t = (1 - t) h* + t h_0, "
          f"{a.crop}x{a.crop}, "
          f"{len(next(iter(rows.values())))} cases, {time.perf_counter() - t0:.0f} s")
    print(f"  {'h_0':<9} {'t':>5}  {'r <= 2':>6}  {'r <= 3':>6}  {'median |h - h*|':>15}")
    for (wname, t), v in rows.items():
        r, err = np.array(v).T
        print(f"  {wname:<9} {t:5.2f}  {(r <= 2).mean():6.2f}  {(r <= 3).mean():6.2f}  {np.median(err):15.3f}")
    if not a.record:
        return
    steps = np.asarray(ds.estep.values)
    for (wname, t), ps in paths.items():
        err = np.array([p["error"] for p in ps])
        energy = np.array([p["energy"] for p in ps])
        move = np.array([np.linalg.norm(np.diff(p["kernels"], axis=0), axis=(1, 2)) for p in ps])
        print(f"\n  from h_t, h_0 = {wname if t else 'h*'}, t = {t:.2f}: median over {len(ps)} cases")
        print(f"  {'alternations':>12}  {'|h - h*|':>8}  {'|h_n - h_(n-R)|':>15}  {'E_(n-R) - E_n (nats)':>20}")
        for j, n in enumerate(steps):
            last = "" if j == 0 else (f"{np.median(move[:, j - 1]):15.4f}  "
                                      f"{np.median(energy[:, j - 1] - energy[:, j]):20.2f}")
            print(f"  {int(n):12d}  {np.median(err[:, j]):8.3f}  {last}")
        print(f"  last {record}: largest kernel move {move[:, -1].max():.2g}, largest energy decrease "
              f"{(energy[:, -2] - energy[:, -1]).max():.2g} nats")
        res = np.array([p["residuals"] for p in ps])                  # (case, start/end, kernel/image)
        print(f"  residuals (median over cases, start -> end): kernel's projected gradient "
              f"{np.median(res[:, 0, 0]):.3g} -> {np.median(res[:, 1, 0]):.3g}, |grad_x E| "
              f"{np.median(res[:, 0, 1]):.3g} -> {np.median(res[:, 1, 1]):.3g}; end / start at most "
              f"{(res[:, 1, 0] / res[:, 0, 0]).max():.2g} and {(res[:, 1, 1] / res[:, 0, 1]).max():.2g}")
        above = energy[:, -1] - np.array([p["trivial"] for p in ps])
        above_min = energy[:, -1] - np.array([p["trivial_min"] for p in ps])
        below = np.array([p["truth"] for p in ps]) - energy[:, -1]
        print(f"  end: above E(delta, y) in {(above > 0).sum()}/{len(ps)} (median {np.median(above):.0f} nats), "
              f"above min_x E(delta, x) in {(above_min > 0).sum()}/{len(ps)} (median {np.median(above_min):.0f}), "
              f"below E(h*, x*) in {(below > 0).sum()}/{len(ps)} (median {np.median(below):.0f})")


if __name__ == "__main__":
    main()
