"""Binder crossings of U4 curves of different sizes (:func:`binder_crossing`, :func:`crossings`) and the
critical points they give (:func:`phase_diagram_rows`)."""

from __future__ import annotations

import math

import numpy as np

from .._validation import QRGInputError
from .records import read_scan

def _u4_curve(data: dict):
    pts = sorted((p for p in data["points"] if p.get("U4") and p["U4"].get("mean") is not None),
                 key=lambda p: p["m2"])
    x = np.array([p["m2"] for p in pts], dtype=float)
    u = np.array([p["U4"]["mean"] for p in pts], dtype=float)
    err = [p["U4"].get("err") for p in pts]
    e = None if any(v is None for v in err) or not any(err) else np.array(err, dtype=float)
    return x, u, e


def _interp_weights(x: np.ndarray, at: float) -> dict[int, float]:
    """Weights of the nodes of ``x`` (ascending) in the linear interpolation at ``at`` (x[0] <= at <= x[-1])."""
    i = int(np.searchsorted(x, at, side="right")) - 1
    i = min(max(i, 0), len(x) - 1)
    if i == len(x) - 1 or x[i] == at:
        return {i: 1.0}
    w = (at - x[i]) / (x[i + 1] - x[i])
    return {i: 1.0 - w, i + 1: w}


def binder_crossing(scan_a, scan_b) -> dict:
    """The m² where the U4 curves of two scans of different N (same d, a, lam and method) cross.

    Each curve is the linear interpolation of its U4 values in m²; on the union of both grids within
    their common m² range the difference D = U4_a − U4_b is linear between neighbouring nodes, and a
    sign change of D between two nodes brackets a crossing, found by linear interpolation
    ``m²* = x0 + D0 (x1 − x0)/(D0 − D1)``. Its error propagates the U4 errors of the points that enter
    (independent; ∂m²*/∂U4_i from the interpolation weights); None when the U4 values carry no error
    (deterministic methods). With several sign changes (noise near the crossing) the one at the lowest
    m² is reported under ``m2`` and all of them under ``crossings``.

    ``scan_a``, ``scan_b``: scan data (dicts) or paths (``scan.json`` or its directory). Returns
    ``{"m2", "err", "bracket", "U4", "N": [N_a, N_b], "lam", "method", "d", "a", "crossings", "reason"}``;
    ``m2`` None and ``reason`` a sentence when the curves do not cross in the common range.
    """
    a, b = read_scan(scan_a), read_scan(scan_b)
    for key in ("d", "a", "lam", "method"):
        if a.get(key) != b.get(key):
            raise QRGInputError(f"binder_crossing needs scans with the same {key} (got {a.get(key)} and {b.get(key)})")
    if a.get("N") == b.get("N"):
        raise QRGInputError(f"binder_crossing needs scans of different N (both have N = {a.get('N')})")
    out = {"m2": None, "err": None, "bracket": None, "U4": None, "N": [a["N"], b["N"]], "lam": a["lam"],
           "method": a["method"], "d": a.get("d"), "a": a.get("a", 1.0), "crossings": [], "reason": None}
    xa, ua, ea = _u4_curve(a)
    xb, ub, eb = _u4_curve(b)
    if len(xa) < 2 or len(xb) < 2:
        out["reason"] = (f"each scan needs U4 at two m² values at least (N = {a['N']}: {len(xa)}, "
                         f"N = {b['N']}: {len(xb)})")
        return out
    lo, hi = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if not lo < hi:
        out["reason"] = f"the m² ranges [{xa[0]:g}, {xa[-1]:g}] and [{xb[0]:g}, {xb[-1]:g}] do not overlap"
        return out
    grid = np.unique(np.concatenate([xa[(xa >= lo) & (xa <= hi)], xb[(xb >= lo) & (xb <= hi)], [lo, hi]]))

    def diff_weights(at):
        """D(at) and its gradient: {("a", i): ∂D/∂U4_a[i]} and {("b", j): ...}."""
        wa, wb = _interp_weights(xa, at), _interp_weights(xb, at)
        value = sum(w * ua[i] for i, w in wa.items()) - sum(w * ub[j] for j, w in wb.items())
        grad = {("a", i): w for i, w in wa.items()}
        grad.update({("b", j): -w for j, w in wb.items()})
        return value, grad

    deterministic = ea is None and eb is None
    sigma = {("a", i): (0.0 if ea is None else ea[i]) for i in range(len(xa))}
    sigma.update({("b", j): (0.0 if eb is None else eb[j]) for j in range(len(xb))})
    values = [diff_weights(x) for x in grid]
    for k in range(len(grid) - 1):
        (d0, g0), (d1, g1) = values[k], values[k + 1]
        x0, x1 = grid[k], grid[k + 1]
        if d0 == 0 and d1 == 0:
            continue  # the curves coincide on this interval: no isolated crossing
        if d0 == 0 and k > 0:
            continue  # a crossing exactly on a node was reported by the interval that ends there
        if d0 != 0 and d1 != 0 and (d0 < 0) == (d1 < 0):
            continue
        dx = x1 - x0
        m = x0 + d0 * dx / (d0 - d1)
        # ∂m/∂D0 = −dx·D1/(D0−D1)², ∂m/∂D1 = dx·D0/(D0−D1)²; D0, D1 are linear in the U4 values (weights g0, g1)
        c0, c1 = -dx * d1 / (d0 - d1) ** 2, dx * d0 / (d0 - d1) ** 2
        grad: dict = {}
        for g, c in ((g0, c0), (g1, c1)):
            for key, w in g.items():
                grad[key] = grad.get(key, 0.0) + c * w
        err = None if deterministic else float(math.sqrt(sum((gv * sigma[key]) ** 2 for key, gv in grad.items())))
        out["crossings"].append({"m2": float(m), "err": err, "bracket": [float(x0), float(x1)],
                                 "U4": float(np.interp(m, xa, ua))})
    if not out["crossings"]:
        out["reason"] = (f"the U4 curves of N = {a['N']} and N = {b['N']} do not cross in the common range "
                         f"m² ∈ [{lo:g}, {hi:g}] (U4_a − U4_b keeps the sign {'+' if values[0][0] > 0 else '−'})")
        return out
    first = out["crossings"][0]
    out.update(m2=first["m2"], err=first["err"], bracket=first["bracket"], U4=first["U4"])
    return out


def crossings(scans) -> list[dict]:
    """:func:`binder_crossing` of every pair of neighbouring N among ``scans`` with the same d, a, lam and method."""
    data = [read_scan(s) for s in scans]
    groups: dict = {}
    for s in data:
        groups.setdefault((s.get("d"), s.get("a"), s.get("lam"), s.get("method")), []).append(s)
    out = []
    for group in groups.values():
        group = sorted(group, key=lambda s: s["N"])
        for sa, sb in zip(group, group[1:]):
            if sa["N"] != sb["N"]:
                out.append(binder_crossing(sa, sb))
    return out


def phase_diagram_rows(crossing_list) -> list[dict]:
    """The lattice critical points m²_c(λ) of Binder crossings (:func:`crossings`, or the infinite-size
    estimates of :func:`qrg.continuum.size_extrapolated_crossings`), one row per crossing that has an m²:
    ``{"d", "a", "method", "sizes", "N", "lam", "m2", "err"}``, sorted by (d, method, sizes, λ). ``sizes``
    is e.g. ``"N = 16, 32"`` (``"4×4, 8×8"`` for squares)."""
    rows = []
    for c in crossing_list:
        if c.get("m2") is None:
            continue
        d = c.get("d") or 1
        sizes = c.get("sizes") or ("N = " + ", ".join(str(n) for n in c["N"]) if d == 1
                                   else ", ".join("×".join([str(n)] * d) for n in c["N"]))
        rows.append({"d": d, "a": c.get("a", 1.0), "method": c["method"], "sizes": sizes, "N": list(c["N"]),
                     "lam": c["lam"], "m2": c["m2"], "err": c.get("err")})
    # size-extrapolated estimates ("N → ∞ ...") after the pairs they come from
    return sorted(rows, key=lambda r: (r["d"], r["method"], r["sizes"].startswith("N →"), r["N"], r["lam"]))
