"""Writers of a :class:`~qrg.groundstate.result.SolveResult`: JSON, CSV, the energy plot, the summary line."""

from __future__ import annotations

import csv
import io
import json
import pathlib

import numpy as np

from ..optim.checkpoint import atomic_write_text
from ..optim.loop import rolled_back
from ..stats import format_value_error
from .estimators.summary import format_variance


def result_json(result) -> dict:
    """The JSON record of a :class:`SolveResult` (``result.json``)."""
    e = result.energy
    out = {
        "energy": e.mean,
        "energy_err": e.err,
        "energy_per_site": e.mean / result.theory.lattice.n_sites,
        "energy_per_site_err": e.err / result.theory.lattice.n_sites,
        "estimator": result.estimator,
        "estimator_rule": ("smallest error bar on the evaluation samples (chosen after the fact)"
                           if result.config.estimator == "auto" else f"fixed in advance: {result.config.estimator}"),
        "schedule_steps": result.schedule_steps,
        "averaged_steps": result.averaged_steps,
        "init_from": result.init_from,
        "refine": result.refine,
        "energy_sys": result.systematic,
        "energy_total_err": result.total_error,
        "discretisation": None if result.discretisation is None else result.discretisation.to_json(),
        "variance": result.variance,
        "variance_err": result.variance_err,
        "tails": result.stats.tails(),
        "warnings": result.warnings,
        "phi2": result.stats.phi2.mean,
        "phi2_err": result.stats.phi2.err,
        "abs_m": result.stats.abs_m.mean,
        "abs_m_err": result.stats.abs_m.err,
        "energy_ibp": result.stats.ibp.mean,
        "energy_ibp_err": result.stats.ibp.err,
        "energy_ibp_variance": result.stats.ibp.variance,
        "energy_cv": None if result.stats.cv is None else result.stats.cv.mean,
        "energy_cv_err": None if result.stats.cv is None else result.stats.cv.err,
        "energy_local": None if result.stats.local is None else result.stats.local.mean,
        "energy_local_err": None if result.stats.local is None else result.stats.local.err,
        "laplacian": result.stats.laplacian,
        "eval_samples": result.stats.ibp.n_samples,
        "local_energy_samples": None if result.stats.local is None else result.stats.local.n_samples,
        "eval_grown": None if result.stats.sizing is None else result.stats.sizing.grown,
        "eval_sizing": None if result.stats.sizing is None else result.stats.sizing.to_json(),
        "steps": result.steps_done,
        "status": result.status,
        "wall_time_s": result.wall_time_s,
        "train_time_s": result.train_time_s,
        "time_per_step_s": result.train_time_s / max(1, len(result.history)) if result.history else None,
        "n_params": result.n_params,
        "n_devices": result.n_devices,
        "n_processes": result.n_processes,
        "nan_recoveries": len(rolled_back(result.events)),
        "events": result.events,
        "config": result.config.to_dict(),
        "theory": result.theory.params(),
        "reference": result.reference,
        "relative_error": result.relative_error,
        "rg_consistency": None if result.consistency is None else result.consistency.to_json(),
    }
    return out

def history_csv(history) -> str:
    """The optimisation history as CSV (``history.csv``)."""
    cols = ("step", "energy", "energy_err", "energy_ibp", "loss", "rg_loss", "grad_norm", "lr", "time")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for row in history:
        w.writerow([row.get(c) for c in cols])
    return buf.getvalue()

def plot_energy(result, path) -> None:
    """energy vs step with the ±1σ band of each step's batch and the reference line when known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r["step"] for r in result.history])
    e = np.array([r["energy"] for r in result.history])
    err = np.array([r["energy_err"] for r in result.history])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if steps.size:
        label = "training batch" + (" (Stein control variates)" if result.config.control_variates == "stein"
                                    else " (ibp estimator)")
        ax.plot(steps, e, lw=1.0, label=label)
        ax.fill_between(steps, e - err, e + err, alpha=0.3, lw=0)
        window = max(1, len(e) // 25)
        if window > 1:
            smooth = np.convolve(e, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], smooth, color="C1", lw=1.5, label=f"running mean ({window} steps)")
    final = result.energy
    ax.axhline(final.mean, color="C2", lw=1.0,
               label=f"final: {format_value_error(final.mean, final.err)} ({result.estimator})")
    if result.reference is not None:
        ax.axhline(result.reference, color="k", ls="--", lw=1.0, label=f"exact E0 = {result.reference:.10g}")
    if steps.size:
        lo = min(np.percentile(e - err, 5), final.mean - 3 * final.err)
        hi = np.percentile(e + err, 95)
        if result.reference is not None:
            lo = min(lo, result.reference)
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        ax.set_ylim(lo - pad, hi + pad)
    th = result.theory
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("energy")
    ax.set_title(f"d={th.d} N={th.N} a={th.a:g} m²={th.m2:g} λ={th.lam:g}  ({result.config.model} model)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save(result, directory) -> None:
    """Write ``result.json``, ``history.csv`` and ``energy.png`` into ``directory``."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / "result.json", json.dumps(result.to_json(), indent=2) + "\n")
    atomic_write_text(directory / "history.csv", history_csv(result.history))
    plot_energy(result, directory / "energy.png")


def summary(result) -> str:
    """The summary printed by ``qrg solve``: one line, the local energy after a refinement (when it is not the
    reported estimator), the RG-consistency line and one ``WARNING:`` line per unresolved tail
    (:attr:`SolveResult.warnings`)."""
    e = result.energy
    s = (f"E = {format_value_error(e.mean, e.err)}  ({result.estimator} estimator, "
         f"{e.n_samples} samples), E/N^d = {e.mean / result.theory.lattice.n_sites:.8g}, "
         + (f"Var(E_loc) = {format_variance(result.variance, result.variance_err)}" if result.variance is not None
            else "Var(E_loc) not computed"))
    if result.systematic is not None:
        d = result.discretisation
        s += f", ODE systematic {result.systematic:.2g} ({d.n_steps} vs {d.n_steps_fine} steps)"
    if result.reference is not None:
        s += f", exact E0 = {result.reference:.10g} (rel. err {result.relative_error:.2e})"
    local = result.stats.local
    if result.refine is not None and result.estimator != "local" and local is not None:
        s += (f"\nlocal energy: E = {format_value_error(local.mean, local.err)} ({local.n_samples} samples): after a "
              "refinement its error bar shrinks with Var(E_loc); report it with --estimator local and a larger "
              "--local-batch")
    if result.consistency is not None:
        s += "\n" + str(result.consistency)
    for line in result.warnings:
        s += "\nWARNING: " + line
    return s
