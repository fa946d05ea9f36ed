"""Numbers derived from the records of a bench run: accuracy against the reference (or the
variational ranking without one), equal-time ratios, and the scaling of the time per iteration."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import linregress


def is_reference(record: dict) -> bool:
    """Reference records are named ``reference:<baseline>`` (or ``reference`` when it failed)."""
    return record.get("method", "").startswith("reference")


def reference_error(record: dict) -> float:
    """The error bar of a reference record: its truncation estimate (``error_estimate``).

    Suite references are deterministic (:class:`~qrg.bench.suites.Suite` checks it), so their
    statistical error is 0. Records of the exact reference written before the
    :class:`~qrg.baselines.Reference` type carry only ``energy_err`` (= 0).
    """
    return float(record.get("error_estimate", record.get("energy_err", 0.0)) or 0.0)


def total_error(record: dict) -> float:
    """A record's statistical error ⊕ its systematic (qrg: the ODE discretisation estimate, when measured)."""
    err = record.get("energy_err") or 0.0
    sys_ = record.get("energy_sys")
    return float(math.hypot(err, sys_)) if sys_ is not None else float(err)


def annotate(problem_records: list[dict], reference: dict | None) -> None:
    """Add ``rel_error`` (vs the reference) or ``delta_vs_best`` (variational) to each record.

    ``rel_error_sigma`` combines the record's own error (:func:`total_error`) in quadrature with the
    reference's ``error_estimate`` (DMRG/ED truncation; 0 for the exact free theory), so a loose
    reference widens every method's bar instead of being charged to one of them.
    """
    ok = [r for r in problem_records if "energy" in r]
    if reference is not None:
        e_ref = reference["energy"]
        ref_err = float(reference.get("error_estimate") or 0.0)
        for r in ok:
            r["rel_error"] = abs(r["energy"] - e_ref) / abs(e_ref)
            r["rel_error_sigma"] = math.hypot(total_error(r), ref_err) / abs(e_ref)
    elif ok:
        best = min(ok, key=lambda r: r["energy"])
        for r in ok:
            r["delta_vs_best"] = r["energy"] - best["energy"]
            r["is_best"] = r is best
            sigma = math.hypot(total_error(r), total_error(best))
            if r is not best and sigma > 0:  # the gap in units of the combined error bars
                r["delta_sigma"] = r["delta_vs_best"] / sigma


def steady_time_per_iter(history, fallback=None):
    """Median wall time between consecutive optimisation steps (excludes the JIT compilation of step 1)."""
    t = np.asarray([h[0] for h in history], dtype=float)
    if len(t) >= 3:
        return float(np.median(np.diff(t[1:])))
    return fallback


def fit_scaling(records: list[dict]) -> dict:
    """Least-squares fit log(time per iteration) = α log(sites) + c for every method with ≥ 2 sizes.

    ``alpha_err`` is the standard error of the slope (``scipy.stats.linregress``); NaN when the
    fit has only two points (they are fitted exactly: no scatter to estimate it from).
    """
    out = {}
    methods = dict.fromkeys(r.get("method") for r in records if not is_reference(r) and r.get("time_per_iter_s"))
    for method in methods:
        pts = [(r["sites"], r["time_per_iter_s"]) for r in records
               if r.get("method") == method and r.get("time_per_iter_s")]
        sizes = sorted({s for s, _ in pts})
        if len(sizes) < 2:
            continue
        fit = linregress(np.log([s for s, _ in pts]), np.log([t for _, t in pts]))
        alpha_err = float(fit.stderr) if len(pts) > 2 else float("nan")
        out[method] = {"alpha": float(fit.slope), "alpha_err": alpha_err, "sizes": sizes}
    return out


def equal_time_ratios(records: list[dict]) -> list[dict]:
    """NetKet-neural vs qrg relative errors per interacting problem with a reference.

    ``ratio`` = (NetKet bound)/(qrg bound) with ``bound = |E − E_ref|/|E_ref| + 2σ/|E_ref|`` (a ~95 %
    upper bound on each method's true error): when an error is not resolved statistically the
    ratio of point estimates would be noise, while the ratio of bounds stays meaningful.
    ``ratio > 1`` means qrg is more accurate. ``*_resolved`` says whether |E − E_ref| > 2σ.
    """
    rows = []
    by_problem: dict[str, dict] = {}
    for r in records:
        by_problem.setdefault(r["problem"], {})[r.get("method")] = r
    for label, methods in by_problem.items():
        q, n = methods.get("qrg"), methods.get("netket-neural")
        if not q or not n or "rel_error" not in q or "rel_error" not in n or q.get("lam", 1) == 0:
            continue
        rows.append({
            "problem": label,
            "qrg_rel_error": q["rel_error"], "qrg_rel_sigma": q["rel_error_sigma"], "qrg_wall_s": q["wall_time_s"],
            "netket_rel_error": n["rel_error"], "netket_rel_sigma": n["rel_error_sigma"],
            "netket_wall_s": n["wall_time_s"],
            "qrg_resolved": q["rel_error"] > 2 * q["rel_error_sigma"],
            "netket_resolved": n["rel_error"] > 2 * n["rel_error_sigma"],
            "ratio": (n["rel_error"] + 2 * n["rel_error_sigma"]) / (q["rel_error"] + 2 * q["rel_error_sigma"]),
        })
    return rows
