"""What ``qrg bench`` writes besides ``results.json``: the ``results.md`` table and the plots
``rel_error.png``, ``variance.png``, ``wall_time.png``, ``time_to_accuracy.png`` (relative error
of the training-step energies vs seconds) and ``time_per_iter.png`` (with the fitted exponent α
of time/iteration ∝ sites^α)."""

from __future__ import annotations

import math
import pathlib

import numpy as np

from .analysis import is_reference, reference_error

_HEADER = (
    "Errors are statistical (1σ); qrg's ⊕ term is its ODE-discretisation systematic (step doubling, "
    "qrg.groundstate.evaluation.discretisation_check), combined in quadrature into σ where σ is used; the σ of a "
    "relative error also includes the reference's truncation estimate."
)


def _fmt(x, nd=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{nd}g}"


def _row(r: dict) -> str:
    """One table row: energy ± error bar (a reference's is its truncation estimate), accuracy, cost."""
    if "error" in r:
        return f"| {r['problem']} | {r['method']} | FAILED: {r['error'][:80]} | | | | |"
    err = reference_error(r) if is_reference(r) else r.get("energy_err", r.get("error_estimate"))
    e = f"{r['energy']:.10g} ± {_fmt(err, 2)}"
    if r.get("energy_sys") is not None:
        e += f" ⊕ {_fmt(r['energy_sys'], 2)} (ODE)"
    if "rel_error" in r:
        acc = f"{r['rel_error']:.2e} ({r['rel_error_sigma']:.1e})"
    elif "delta_vs_best" in r:
        acc = "best (variational)" if r.get("is_best") else f"+{r['delta_vs_best']:.3g}"
        if "delta_sigma" in r:
            acc += f" ({r['delta_sigma']:.2g}σ)"
    else:
        acc = "reference"
    return (f"| {r['problem']} | {r['method']} | {e} | {acc} | {_fmt(r.get('variance'))} | "
            f"{_fmt(r.get('wall_time_s'))} | {_fmt(r.get('time_per_iter_s'))} |")


def _scaling_line(scaling: dict) -> str:
    return "Time per iteration ∝ sites^α: " + "; ".join(
        f"{m}: α = {s['alpha']:.2f}" + (f" ± {s['alpha_err']:.2f}" if math.isfinite(s["alpha_err"]) else "")
        + f" (sizes {s['sizes']})" for m, s in scaling.items())


def _equal_time_table(rows: list[dict]) -> list[str]:
    lines = ["", "Equal wall time (NetKet neural gets qrg's wall time as its budget); ratio of the 2σ upper "
             "bounds |δE|/|E| + 2σ/|E| (> 1: qrg more accurate):", "",
             "| problem | qrg rel. error ± σ | NetKet neural rel. error ± σ | ratio NetKet/qrg (bounds) |",
             "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['problem']} | {row['qrg_rel_error']:.2e} ± {row['qrg_rel_sigma']:.1e} | "
                     f"{row['netket_rel_error']:.2e} ± {row['netket_rel_sigma']:.1e} | {row['ratio']:.3g} |")
    return lines


def markdown_table(result: dict) -> str:
    """``results.md``: machine, one row per record, the scaling fit and the equal-time comparison."""
    machine = result["machine"]
    lines = [f"# qrg bench — suite `{result['suite']}`", "",
             f"Machine: {machine['platform']}, {machine['cpu_count']} CPUs; "
             f"date {machine['date']}; versions {machine['versions']}.", "", _HEADER, "",
             "| problem | method | energy ± err | rel. error (σ) or Δ vs best | Var(E_loc) | wall s | s/iter |",
             "|---|---|---|---|---|---|---|"]
    lines += [_row(r) for r in result["records"]]
    if result["scaling"]:
        lines += ["", _scaling_line(result["scaling"])]
    if result["equal_time"]:
        lines += _equal_time_table(result["equal_time"])
    return "\n".join(lines)


# ---------------------------------------------------------------------------- plots
def _save(fig, path: pathlib.Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _per_problem(plt, recs, problems, methods, key, path, ylabel):
    """One point per (problem, method) of ``key`` on a log scale."""
    xpos = {p: i for i, p in enumerate(problems)}
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(problems) + 3), 4))
    for j, m in enumerate(methods):
        pts = [(xpos[r["problem"]] + 0.1 * (j - len(methods) / 2), r[key]) for r in recs
               if r["method"] == m and r.get(key) is not None and r[key] > 0]
        if pts:
            ax.plot(*zip(*pts), "o", label=m)
    ax.set_xticks(range(len(problems)), problems, rotation=60, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    _save(fig, path)


def _time_to_accuracy(plt, recs, problems, refs, path):
    """Training-step energies vs seconds (running mean over ~5 % of the run), per problem with a reference."""
    with_ref = [p for p in problems if p in refs]
    if not with_ref:
        return
    ncol = min(3, len(with_ref))
    nrow = math.ceil(len(with_ref) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.5 * ncol, 3.3 * nrow), squeeze=False)
    for ax, p in zip(axes.ravel(), with_ref):
        for r in recs:
            if r["problem"] == p and r.get("history"):
                h = np.asarray(r["history"], dtype=float)
                w = max(1, len(h) // 20)
                e = np.convolve(h[:, 1], np.ones(w) / w, mode="valid")
                ax.plot(h[w - 1:, 0], np.abs(e - refs[p]) / abs(refs[p]), label=r["method"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(p, fontsize=8)
        ax.set_xlabel("seconds")
        ax.set_ylabel("rel. error (training batches)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    for ax in axes.ravel()[len(with_ref):]:
        ax.axis("off")
    _save(fig, path)


def _time_per_iter(plt, recs, methods, scaling, path):
    fig, ax = plt.subplots(figsize=(5, 4))
    for m in methods:
        pts = sorted((r["sites"], r["time_per_iter_s"]) for r in recs if r["method"] == m and r.get("time_per_iter_s"))
        if pts:
            fit = scaling.get(m)
            ax.loglog(*zip(*pts), "o-", label=m + (f" (α = {fit['alpha']:.2f})" if fit else ""))
    ax.set_xlabel("sites")
    ax.set_ylabel("seconds per iteration")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    _save(fig, path)


def make_plots(result: dict, out) -> None:
    """Write the five plots of the module docstring into the directory ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = pathlib.Path(out)
    recs = [r for r in result["records"] if "energy" in r and not is_reference(r)]
    problems = list(dict.fromkeys(r["problem"] for r in result["records"]))
    methods = list(dict.fromkeys(r["method"] for r in recs))
    for key, fname, ylabel in (("rel_error", "rel_error.png", "|E − E_ref| / |E_ref|"),
                               ("variance", "variance.png", "Var(E_loc)"),
                               ("wall_time_s", "wall_time.png", "wall time [s]")):
        _per_problem(plt, recs, problems, methods, key, out / fname, ylabel)
    refs = {r["problem"]: r["energy"] for r in result["records"] if is_reference(r) and "energy" in r}
    _time_to_accuracy(plt, recs, problems, refs, out / "time_to_accuracy.png")
    _time_per_iter(plt, recs, methods, result["scaling"], out / "time_per_iter.png")
