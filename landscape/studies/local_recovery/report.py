"""What ``local-recovery`` prints and draws from its results file: H and C1-C4 per case; the branch θ̂(σ), the
basin's return fractions and the energy along the segment from the trivial pair."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

NAME = "local-recovery"


def summary(ds: xr.Dataset) -> str:
    lines = [f"{NAME}: Gaussian blur θ* = {ds.attrs['theta_true_value']:g}, levels σ = "
             + ", ".join(f"{v:g}" for v in ds.noise_level.values) + f" (level 0: noise-free, energy σ = "
             f"{ds.attrs['sigma_zero']:g})"]
    for i, c in enumerate(ds.case.values):
        g0, g = float(ds.q_grad_norm_start[i]), float(ds.q_grad_norm[i])
        lines += [f"  {c}: |∇q| {g0:.3g} -> {g:.3g} ({ds.q_method.values[i]}), x* vs image "
                  f"{float(ds.x_star_psnr_vs_image[i]):.1f} dB, std {float(ds.x_star_std[i]):.3g} (image "
                  f"{float(ds.image_std[i]):.3g}); #s²|λ|<=1e-5: {int(ds.q_paper_count[i])}",
                  f"    H  {ds.h_verdict.values[i]}", f"    C1 {ds.c1_verdict.values[i]}",
                  f"    C2 {ds.c2_verdict.values[i]}", f"    C3 {ds.c3_verdict.values[i]}",
                  f"    C4 {ds.c4_verdict.values[i]}"]
    return "\n".join(lines)


def plot(ds: xr.Dataset, ax: Any = None):
    """Three panels: θ̂(σ) per case (filled: certified), the C4 return fraction against r, and the energy
    along the segment from the trivial pair to the local minimiser. ``ax``: three axes. Returns them."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    a0, a1, a2 = ax
    lv = ds.noise_level.values
    for i, c in enumerate(ds.case.values):
        th = ds.theta_hat.values[i, :, 0]
        ok = np.char.startswith(ds.cert_verdict.values[i].astype(str), "certified")
        line, = a0.plot(lv, th, "-", label=c)
        a0.plot(lv[ok], th[ok], "o", color=line.get_color())
        a0.plot(lv[~ok], th[~ok], "x", color=line.get_color())
        a1.plot(ds.radius.values, ds.basin_returned.values[i].mean(-1), "o-", color=line.get_color())
        e = ds.segment_profile_energy.values[i]
        a2.plot(ds.t.values, e - e[-1], color=line.get_color())
    a0.axhline(float(ds.attrs["theta_true_value"]), color="gray", ls="--", lw=0.8)
    a0.set(xlabel="noise σ", ylabel="θ̂ (o certified, x not)", title="C3: the local minimiser along σ")
    a0.legend(fontsize=7)
    a1.set(xlabel="perturbation radius r", ylabel="fraction returned", ylim=(-0.05, 1.05), title="C4: basin")
    a2.set(xlabel="t: (δ, x_δ) → (θ̂, x̂)", ylabel="min_x E − E(θ̂, x̂) (nats)", title="C1: energy along the segment")
    return ax
