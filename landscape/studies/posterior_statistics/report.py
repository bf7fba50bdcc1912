"""What ``posterior-statistics`` prints and draws from its results file: the θ posterior's mass, the posterior
mean's PSNR, coverage and R-hat per case beside the point estimates, and the hard case; the θ posteriors, the
posterior std and the estimates side by side."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ... import io

NAME = "posterior-statistics"


def summary(ds: xr.Dataset) -> str:
    a = ds.attrs
    lines = [f"{NAME}: {ds.sizes['case']} case(s), sampler {a['sampler']}, prior {a['prior']}"]
    for i, c in enumerate(ds.case.values):
        extra = ""
        if "tv_theta_exact" in ds:
            extra = (f"; TV to exact p(θ|y) {float(ds.tv_theta_exact[i]):.3f}, exact MMSE {float(ds.psnr_mmse_exact[i]):.2f} dB,"
                     f" exact coverage {float(ds.coverage_exact_50[i]):.2f}/{float(ds.coverage_exact_90[i]):.2f}")
        lines.append(f"  {c}: E[θ|y] {float(ds.theta_mean[i]):.2f}, mass at δ {float(ds.mass_at_dirac[i]):.2f}, "
                     f"near θ* {float(ds.mass_near_truth[i]):.2f}; posterior mean {float(ds.psnr_mean[i]):.2f} dB "
                     f"(y {float(ds.psnr_y[i]):.2f}); coverage 50/90 % {float(ds.coverage_50[i]):.2f}/"
                     f"{float(ds.coverage_90[i]):.2f}; R-hat θ {float(ds.rhat_theta[i]):.3f}{extra}")
        pts = ", ".join(f"{e} {float(ds[f'psnr_{e}'][i]):.2f}" for e in list(ds.estimate.values)[1:]
                        if np.isfinite(float(ds[f"psnr_{e}"][i])))
        lines.append(f"    point estimates (dB): {pts}; joint MAP θ {float(ds.theta_map[i]):.2f}, "
                     f"near truth {float(ds.theta_map_near_truth[i]):.2f}, MAP_θ {float(ds.theta_map_theta[i]):.2f}")
    if "hard_psnr_fixed" not in a:
        return "\n".join(lines + ["  hard case: skipped (--skip-hard)"])
    lines.append(f"  hard case (width {io.config_of(ds)['hard_theta']:g}, known kernel): fixed-s PnP-ULA "
                 f"{a['hard_psnr_fixed']:.2f} dB, annealed {a['hard_psnr_annealed']:.2f} dB, DPS "
                 f"{a['hard_psnr_dps']:.2f} dB, y {a['hard_psnr_y']:.2f} dB; annealed beats fixed: "
                 f"{bool(a['annealed_beats_fixed'])}")
    return "\n".join(lines)


def plot(ds: xr.Dataset, ax: Any = None, case: int = 0):
    """Top: the θ posterior of every case and ``case``'s posterior std; bottom: ``case``'s x*, the
    posterior mean and the point estimates (PSNR in the titles). Returns the θ-posterior axes."""
    import matplotlib.pyplot as plt
    from ... import plot as lplot
    shown = [e for e in ds.estimate.values if np.isfinite(ds.estimate_image.sel(estimate=e)[case]).all()]
    n = len(shown) + 1
    fig = plt.figure(figsize=(2.1 * n, 5.2))
    grid = fig.add_gridspec(2, n)
    top = fig.add_subplot(grid[0, : n - 2])
    for i, c in enumerate(ds.case.values):
        top.plot(ds.theta, ds.theta_posterior[i], "o-", label=str(c))
        top.axvline(float(ds.theta_true[i]), color=f"C{i}", ls=":")
    top.set_xlabel("θ (width)")
    top.set_ylabel("p(θ | y) (Gibbs)")
    top.legend(fontsize=7)
    sd = fig.add_subplot(grid[0, n - 2:])
    std = np.asarray(ds.posterior_std[case])
    colour = std.ndim == 3                       # (channel, row, col): one map, the RMS over the channels
    std = np.sqrt((std ** 2).mean(0)) if colour else std
    sd.figure.colorbar(sd.imshow(std, cmap="magma"), ax=sd, fraction=0.046, label="std")
    sd.set_title("posterior std" + (" (RMS over R, G, B)" if colour else ""), fontsize=9)
    sd.axis("off")
    panels = [("x*", ds.x_true[case], None)] + [
        (e.replace("_", " "), ds.estimate_image.sel(estimate=e)[case],
         float(ds.psnr_mean[case]) if e == "posterior_mean" else float(ds[f"psnr_{e}"][case])) for e in shown]
    for k, (title, im, db) in enumerate(panels):
        lplot.image(im, fig.add_subplot(grid[1, k]), title=title if db is None else f"{title}\n{db:.1f} dB")
    fig.suptitle(f"{ds.case.values[case]}", fontsize=9)
    return top
