"""What ``map-vs-mmse`` prints and draws from its results file: each estimator's PSNR, SSIM, kernel error and
joint energy with the verdicts; the estimates side by side above their error maps."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

NAME = "map-vs-mmse"


def summary(ds: xr.Dataset) -> str:
    lines = [f"{NAME}: {ds.sizes['case']} case(s), model {ds.attrs['model']}, prior {ds.attrs['prior']}; "
             "PSNR (dB) / kernel error / joint energy (nats) per estimator"]
    for i, c in enumerate(ds.case.values):
        lines.append(f"  {c}: y {float(ds.psnr_y[i]):.2f} dB; E(δ,y) {float(ds.energy_trivial_pair[i]):.1f}, "
                     f"E(h*,x*) {float(ds.energy_truth[i]):.1f}")
        for e in ds.estimator.values:
            p = float(ds.psnr.sel(estimator=e)[i])
            if np.isfinite(p):
                lines.append(f"    {e:<15}{p:8.2f} dB  ssim {float(ds.ssim.sel(estimator=e)[i]):.3f}  "
                             f"|h-h*| {float(ds.kernel_error.sel(estimator=e)[i]):.3f}  "
                             f"E {float(ds.energy.sel(estimator=e)[i]):12.1f}")
        extra = f"corr(error, local blur) {float(ds.corr_error_blur_unrolled[i]):+.2f}"
        if "corr_error_std_exact" in ds:
            extra += f"; corr(exact error, posterior std) {float(ds.corr_error_std_exact[i]):+.2f}"
        lines.append(f"    verdicts: MMSE avoids (δ, y): {bool(ds.mmse_avoids_trivial[i])}; MMSE higher energy, "
                     f"lower error than the joint MAP: {bool(ds.mmse_higher_energy_lower_error[i])}; {extra}")
    return "\n".join(lines)


#: the error maps' colour range: 0.25 of the [0, 1] intensity range (larger errors saturate)
ERROR_SCALE = 0.25


def plot(ds: xr.Dataset, ax: Any = None, case: int = 0):
    """Estimates side by side (top) and their error maps (below: one row, or one per channel for colour
    images) for one case; returns the first axes."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    from ... import plot as lplot
    panels = [p for p in ds.panel.values if np.isfinite(ds.images.sel(panel=p).isel(case=case)).all()]
    C = ds.sizes.get("channel", 1)
    # constrained layout: the shared colour bar takes its own column beside the panels
    fig, axes = plt.subplots(1 + C, len(panels), figsize=(2.2 * len(panels) + 1, 2.3 * (1 + C)), squeeze=False,
                             layout="constrained")
    xt = ds.images.isel(case=case).sel(panel="x_true").values
    norm = Normalize(0.0, ERROR_SCALE)          # one scale for every error map, drawn once as a colour bar
    for j, p in enumerate(panels):
        im = ds.images.isel(case=case).sel(panel=p).values
        title = str(p)
        if p in ds.estimator.values:
            title += f"\n{float(ds.psnr.isel(case=case).sel(estimator=p)):.1f} dB"
        lplot.image(im, axes[0, j], title=title)
        for a in axes[1:, j]:
            a.axis("off")
        if p == "x_true":                    # its own error is zero: this slot shows the truth only
            continue
        err = lplot.error_maps(im, xt, list(axes[1:, j]) if C > 1 else axes[1, j], norm=norm)[-1].images[0]
    if len(panels) > 1:
        fig.colorbar(err, ax=axes.ravel().tolist(), shrink=0.8, label="|x̂ − x*| (intensity)")   # every row shrinks alike
    fig.suptitle(f"{NAME}: {ds.case.values[case]}", fontsize=9)
    return axes[0, 0]
