"""What ``real-shake`` prints and draws from its results file: the success rates per estimator and the error
ratio per case; the cumulative success-rate curves (the benchmark's figure) beside a gallery of kernels."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

NAME = "real-shake"


def summary(ds: xr.Dataset) -> str:
    lines = [f"{NAME}: {ds.sizes['case']} case(s); success rate at r <= " + ", ".join(
        f"{t:g}" for t in ds.cut.values) + "; median kernel error, PSNR, seconds per estimate"]
    w = max(len(e) for e in ds.estimator.values)
    for j, e in enumerate(ds.estimator.values):
        if np.isnan(ds.error_ratio.values[:, j]).all():
            lines.append(f"  {e:<{w}} (left out)")
            continue
        rates = ", ".join(f"{v:.2f}" for v in ds.success_rate.values[j])
        lines.append(f"  {e:<{w}} {rates}   |h-h*| {np.nanmedian(ds.kernel_error.values[:, j]):.3f}  "
                     f"{np.nanmedian(ds.psnr.values[:, j]):.2f} dB  {np.nanmedian(ds.seconds.values[:, j]):.1f} s")
    for i, c in enumerate(ds.case.values):
        lines.append(f"  {c}: r = " + ", ".join(f"{e} {v:.2f}" for e, v in zip(ds.estimator.values,
                                                                           ds.error_ratio.values[i])))
    return "\n".join(lines)


def plot(ds: xr.Dataset, ax: Any = None):
    """The cumulative success-rate curves (fraction of cases with error ratio ≤ t against t, the benchmark's
    figure) and a gallery of true and estimated kernels (one row per case). ``ax``: two axes; returns them."""
    import matplotlib.pyplot as plt

    from . import WARM_STARTS                     # the study's module imports this one
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 0.5 * max(ds.sizes["case"], 8) + 1),
                             gridspec_kw={"width_ratios": [1, 1.2]})
    a0, a1 = ax
    for j, e in enumerate(ds.estimator.values):
        if e != "true" and np.isfinite(ds.success_curve.values[j]).all():
            oracle = WARM_STARTS.get(e) == "true"                      # started at the truth: not blind, dashed
            a0.plot(ds.threshold.values, ds.success_curve.values[j], drawstyle="steps-post", ls="--" if oracle else "-",
                    label=e + (" (oracle start)" if oracle else ""))
    a0.axvline(3.0, color="gray", ls=":", lw=0.8)
    a0.set(xlabel="error ratio t", ylabel="fraction of cases with r ≤ t", ylim=(-0.02, 1.02),
           title=f"{ds.sizes['case']} cases (Levin et al. 2009's protocol)")
    a0.legend(fontsize=8)
    k = ds.kernel_hat.values                                   # (case, estimator, GALLERY, GALLERY)
    tiles = [[k[i, j] / np.nanmax(k[i, j]) if np.isfinite(k[i, j]).all() else np.zeros(k.shape[-2:])
              for j in range(k.shape[1])] for i in range(k.shape[0])]
    pad = lambda t: np.pad(t, 1, constant_values=0.3)
    a1.imshow(np.block([[pad(t) for t in row] for row in tiles]), cmap="gray_r", vmin=0, vmax=1)
    a1.set_xticks([(j + 0.5) * (k.shape[-1] + 2) for j in range(k.shape[1])], list(ds.estimator.values), fontsize=7,
                  rotation=30, ha="left")
    a1.set_yticks([(i + 0.5) * (k.shape[-1] + 2) for i in range(k.shape[0])],
                  list(ds.case.values), fontsize=6)
    a1.xaxis.tick_top()
    return np.asarray(ax)
