"""The conclusions of ``local-recovery`` as pure functions of what a case measured: C1 (the trivial pair is
lower), C3 (the certified branch along σ) and C4 (the basin's return fractions), and ``conclusions``, which reads
C1-C3 off a case's stored arrays."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import xarray as xr

#: a level's minimiser with theta below this fraction of theta* has merged into the trivial basin
MERGED = 0.1
#: a descent returned to the certified minimiser when it ends within this fraction of theta* of it
RETURN_TOL = 0.05
#: energies closer than this (nats) are a tie in C1 (the solves stop far below it)
GAP_TOL = 1e-2
SCORE_ONLY = "n/a (score-only prior: no energy to descend)"


def verdict_c3(levels: np.ndarray, verdicts: list[str], th: np.ndarray, theta_true: float) -> tuple[str, float]:
    r"""C3 from draw 0's branch: the first level whose point is not a certified minimiser or has merged into
    the trivial basin; the fitted slope of :math:`\hat\theta(\sigma) - \theta^\star`."""
    if verdicts[0].startswith("n/a") or (len(verdicts) > 1 and verdicts[1].startswith("n/a")):
        return SCORE_ONLY, np.nan
    ok = [v.startswith("certified") and t > MERGED * theta_true for v, t in zip(verdicts, th)]
    fin = np.isfinite(th)
    slope = float(np.polyfit(levels[fin], th[fin] - theta_true, 1)[0]) if fin.sum() >= 2 else np.nan
    if all(ok):
        return f"holds (certified branch to σ = {levels[-1]:g}, dθ/dσ = {slope:.3g})", slope
    i = ok.index(False)
    why = "merged into the trivial basin" if th[i] <= MERGED * theta_true else verdicts[i]
    return f"{'undecided' if why.startswith('undecided') else 'fails'} at σ = {levels[i]:g} ({why})", slope


def verdict_c1(gap: np.ndarray, levels: np.ndarray, th: np.ndarray, theta_true: float, cert: list[str]) -> str:
    """C1 from draw 0, level by level: is :math:`E` lower at the trivial pair than at the local minimiser (by
    more than :data:`GAP_TOL`)? Levels whose local point is not a certified minimiser, or has merged into
    the trivial basin, are said so (a score-only prior's points cannot be certified: every level counts)."""
    merged = th <= MERGED * theta_true
    scored = np.array([v.startswith("n/a") for v in cert])
    none = ~merged & ~scored & ~np.array([v.startswith("certified") for v in cert])
    valid = ~merged & ~none
    parts = []
    for word, sel in (("holds", (gap < -GAP_TOL) & valid), ("fails", (gap > GAP_TOL) & valid),
                      ("ties", (np.abs(gap) <= GAP_TOL) & valid), ("no certified local minimiser", none),
                      ("merged", merged)):
        if sel.any():
            parts.append(f"{word} at σ = " + ", ".join(f"{v:g}" for v in levels[sel]))
    first = [f"E(δ) − E(local) at σ = {v:g}: {g:+.4g} nats" for v, g, ok in zip(levels, gap, valid) if ok][:1]
    return "; ".join(parts + first)


def verdict_c4(radii: np.ndarray, returned: np.ndarray, starts: list[str], classes: list[str]) -> str:
    """C4: the fraction of descents that returned at each radius (``returned``: radius × direction), the
    largest radius up to which every one did, and where the descents from (δ, y) and random kernels ended."""
    frac = returned.reshape(len(radii), -1).mean(1)
    full = list(itertools.takewhile(lambda rf: rf[1] == 1, zip(radii, frac)))     # every radius up to r returns
    ends = ", ".join(f"{s}: {c}" for s, c in zip(starts, classes))
    return (f"return fraction {', '.join(f'{f:.2g}' for f in frac)} at r = "
            f"{', '.join(f'{r:g}' for r in radii)}; basin radius ≥ {full[-1][0] if full else 0:g}; from {ends}")


def conclusions(part: xr.Dataset, theta_true: float) -> dict[str, Any]:
    """C1, C2, C3 of one case from its stored arrays (draw 0), and C4's caveat when its reference point has
    merged into the trivial basin."""
    levels = part.noise_level.values
    th = part.theta_hat.values[:, 0]
    cert = [str(v) for v in part.cert_verdict.values]
    c3, slope = verdict_c3(levels, cert, th, theta_true)
    c2 = cert[0] if cert[0].startswith(("certified", "undecided")) else f"fails ({cert[0]})"
    ref = int(np.argmin(np.abs(levels - part.attrs["evidence"]["reference_noise"])))
    c4 = part.attrs["evidence"]["c4_verdict"]
    if th[ref] <= MERGED * theta_true and not c4.startswith("("):
        c4 = f"(the point at σ = {levels[ref]:g} has merged into the trivial basin) " + c4
    c1 = verdict_c1(part.energy_gap_dirac_minus_local.values[:, 0], levels, th, theta_true, cert)
    return {"c4_verdict": c4, "c1_verdict": c1, "c2_verdict": c2, "c3_verdict": c3, "c3_slope": slope}
