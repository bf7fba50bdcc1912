"""What ``trivial-minimizer`` prints and draws from its results file: the verdict table, the certificates and
the PF-ODE cross-check; the profile branches and the descents in the (kernel, image) plane."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ... import scan

NAME = "trivial-minimizer"


def summary(ds: xr.Dataset) -> str:
    a = ds.attrs
    w = max(16, max(len(str(c)) for c in ds.case.values) + 2)
    lines = [f"{NAME}: {ds.sizes['case']} case(s); first: family={ds.case_family.values[0]} "
             f"theta*={a['theta_true_value']:g} sigma={a['noise_sigma']:g}",
             f"  {'case':<{w}}{'(i) E*(δ)<E*(θ*)':>18}{'(ii) local min':>16}{'(ii′) x* branch':>17}{'(iii) descents':>16}{'(iv) smooth σ':>15}"
             f"{'argmin E*':>10}{'gap (nats)':>13}{'unconverged':>13}{'max ρ':>8}"]
    for i, c in enumerate(ds.case.values):
        n = 2 * int(np.isfinite(ds.theta_value.values[i]).sum())
        rho = float(ds.max_fixed_point_rate_unconverged.values[i])
        lines.append(f"  {c:<{w}}{str(ds.i_dirac_below_truth.values[i]):>18}{str(ds.ii_local_min_near_truth.values[i]):>16}"
                     f"{str(ds.ii_branch_from_truth.values[i]) if 'ii_branch_from_truth' in ds else '':>17}"
                     f"{str(ds.iii_descents.values[i]):>16}{str(ds.iv_smooth_in_sigma.values[i]):>15}"
                     f"{float(ds.theta_global_min.values[i]):10.3g}{float(ds.energy_gap_truth_minus_dirac.values[i]):13.1f}"
                     f"{int(ds.unconverged_profile_solves.values[i]):>7d}/{n:<5d}"
                     f"{'' if np.isnan(rho) else f'{rho:.4f}':>8}")
    if "cert_verdict" in ds:
        lines.append("  certificates (local joint descent, then ||grad E|| and the smallest Hessian eigenvalue ± its residual):")
        for i, c in enumerate(ds.case.values):
            lines.append(f"    {c}: (ii) certified near θ*: {ds.ii_certified_near_truth.values[i]}")
            for j, cand in enumerate(ds.candidate.values):
                v = str(ds.cert_verdict.values[i, j])
                if v == "none":
                    continue
                lines.append(f"      {cand:<20} θ {float(ds.cert_theta_start.values[i, j]):.3g} → "
                             f"{float(ds.cert_theta.values[i, j]):.4g}  |∇E| {float(ds.cert_grad_norm.values[i, j]):.2e}"
                             f"  λmin {float(ds.cert_eig_min.values[i, j]):.3e} ± {float(ds.cert_eig_residual.values[i, j]):.1e}  {v}"
                             + (f"  (+{int(ds.cert_newton_steps.values[i, j])} Newton)" if "cert_newton_steps" in ds
                                and np.isfinite(ds.cert_newton_steps.values[i, j]) else ""))
    if "pf_ode_gap_truth_minus_dirac" in ds:
        for i, c in enumerate(ds.case.values):
            g = float(ds.pf_ode_gap_truth_minus_dirac.values[i])
            if np.isfinite(g):
                lines.append(f"  {c}: PF-ODE cross-check of (i): E_pf(θ*) − E_pf(δ) = {g:.1f} ± "
                             f"{float(ds.pf_ode_gap_se.values[i]):.1f} nats at s = {float(ds.pf_ode_s.values[i]):g} "
                             f"(the prior's own gap {float(ds.energy_gap_truth_minus_dirac.values[i]):.1f}); "
                             f"{float(ds.pf_ode_fine_gap_truth_minus_dirac.values[i]):.1f} ± "
                             f"{float(ds.pf_ode_fine_gap_se.values[i]):.1f} at the ODE's finest s = "
                             f"{float(ds.pf_ode_fine_s.values[i]):g}")
    lines.append("  (ii′) = (ii) on the profile branch warm-started from x* alone (a joint local minimum in the truth's basin of x);\n"
                 "  argmin E* = grid theta (first parameter) of the profile's global minimum; "
                 "gap = E*(theta*) - E*(delta); unconverged = inner solves that hit max_iter (their energies are upper "
                 "bounds);\n  max ρ = largest spectral radius of the HQS map at an unconverged solve (≥ 1: the fixed "
                 "point repels, no cap would converge)")
    return "\n".join(lines)


def plot(ds: xr.Dataset, ax: Any = None):
    """Left: profile branches per case with θ* and the minima marked; right: descent paths
    in the (kernel path t, image path u) plane for the first case. Returns the first axes."""
    import matplotlib.pyplot as plt
    many = ds.sizes["case"] > 3            # many cases: lower branch only, against theta / theta*
    if ax is None:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15 if many else 11, 4.8),
                                      gridspec_kw={"width_ratios": (1.6, 1) if many else (1, 1)})
    else:
        ax2 = None
    for k, c in enumerate(ds.case.values):
        th = ds.theta_value.sel(case=c).values
        ts = float(ds.case_theta_true.sel(case=c))
        xs = th / ts if many else th
        e = ds.profile_energy_branch.sel(case=c)
        base = float(np.nanmin(e))
        pe = ds.profile_energy.sel(case=c).values - base
        if many:
            ax.plot(xs, pe, "-", color=f"C{k % 10}", lw=1, label=str(c))
        else:
            for b, ls_ in zip(ds.branch.values, ("-", "--")):
                ax.plot(xs, e.sel(branch=b) - base, ls_, color=f"C{k}", label=f"{c} ({b})")
            ax.axvline(ts, color=f"C{k}", ls=":", lw=1)
        i = int(np.nanargmin(pe))
        ax.plot(xs[i], pe[i], "o", color=f"C{k % 10}", ms=6)
        fin = np.flatnonzero(np.isfinite(pe))
        loc = [j for j in fin[scan.local_minima(pe[fin])] if j != i]
        ax.plot(xs[loc], pe[loc], "v", color=f"C{k % 10}", ms=7, mfc="none")
    if many:
        ax.axvline(1.0, color="0.4", ls=":")
    ax.set_xlabel("θ / θ*" if many else ds.attrs.get("scanned_param", "theta"))
    ax.set_ylabel("E*(θ) − min (nats)")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0) if many else None, ncol=1)
    ax.set_title("profile energy" + (" (lower branch)" if many else ", both continuation branches")
                 + " — dotted: θ*, dot: global min, triangle: other local min", fontsize=9)
    if ax2 is not None:
        c = ds.case.values[0]
        if "plane_energy" in ds:
            pl = ds.plane_energy.sel(case=c)
            cs = ax2.contourf(ds.t.values, ds.u.values, np.log10(1 + (pl - pl.min()).values.T), levels=25,
                              cmap="Greys_r")
            ax2.figure.colorbar(cs, ax=ax2, label="log10(1 + E − min on the plane), nats")
        for j, init in enumerate(ds.init.values):
            t = ds.descent_t.sel(case=c, init=init)
            u = ds.descent_u.sel(case=c, init=init)
            ax2.plot(t, u, "-", color=f"C{j}", lw=1.5, label=f"{init}: {str(ds.descent_end_class.sel(case=c, init=init).values)}")
            ax2.plot(t[0], u[0], "o", color=f"C{j}", ms=4)
            ax2.plot(t[-1], u[-1], "s", color=f"C{j}", ms=6)
        ax2.plot([0], [0], "k*", ms=12)
        ax2.plot([1], [1], "r*", ms=12)
        ax2.annotate("(δ, y)", (0, 0), textcoords="offset points", xytext=(5, -12))
        ax2.annotate("(h*, x*)", (1, 1), textcoords="offset points", xytext=(5, 5))
        ax2.set_xlabel("kernel coordinate t (δ → h*)")
        ax2.set_ylabel("image coordinate u (y → x*)")
        ax2.set_title(f"descents ({c})")
        ax2.legend(fontsize=7)
        ax.figure.tight_layout()
    return ax
