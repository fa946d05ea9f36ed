"""The RG flow of a trained ground state as a table and a plot: ``flow.json``, ``flow.csv``, ``flow.png``.

:func:`flow_table` measures Ψ_t (:func:`qrg.groundstate.flowed.flowed_state`) on a grid of RG
times; :func:`write_flow` writes the three files (the ``qrg flow RUN_DIR`` command).
"""

from __future__ import annotations

import csv
import io
import json
import pathlib

import jax
import numpy as np

from .._validation import QRGInputError
from ..optim.checkpoint import atomic_write_text
from .flowed import COUPLINGS, flowed_state

#: default times of ``qrg flow``, as fractions of T
DEFAULT_FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
SCALARS = ("phi2", "phi4", "abs_m", "M2", "M4", "m_R", "Z", "lambda_R", "g_R", "binder")


def flow_table(state, key, *, times=None, n: int = 4096) -> list[dict]:
    """``flow.json`` points: one dict per t (see :meth:`~qrg.groundstate.flowed.FlowedState.to_json`)."""
    T = state.flow.T
    times = [f * T for f in DEFAULT_FRACTIONS] if times is None else [float(t) for t in times]
    if not times or any(not 0 <= t <= T for t in times) or any(b <= a for a, b in zip(times, times[1:])):
        raise QRGInputError(f"times must increase strictly within [0, T={T}] (got {times})")
    return [flowed_state(state, t, jax.random.fold_in(key, i), n).to_json() for i, t in enumerate(times)]


def flow_csv(points: list[dict]) -> str:
    """One row per t: the scalars and couplings as mean and err columns."""
    cols = ["t", "r_t"] + [f"{s}{e}" for s in SCALARS + COUPLINGS for e in ("", "_err")]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for p in points:
        row = [p["t"], p["r_t"]]
        for name in SCALARS + COUPLINGS:
            v = p["couplings"].get(name) if name in COUPLINGS else p.get(name)
            row += [None, None] if v is None else [v["mean"], v["err"]]
        w.writerow(row)
    return buf.getvalue()


def _series(points, name, coupling=False):
    vals = [(p["couplings"] if coupling else p).get(name) for p in points]
    t = np.array([p["t"] for p, v in zip(points, vals) if v is not None and v["mean"] is not None])
    m = np.array([v["mean"] for v in vals if v is not None and v["mean"] is not None])
    e = np.array([v["err"] or 0.0 for v in vals if v is not None and v["mean"] is not None])
    return t, m, e


def plot_flow(points: list[dict], path, title: str = "") -> None:
    """Running couplings, ⟨φ²⟩/⟨φ⁴⟩, m_R and Z, and λ_R against t, with error bars. λ_R (a zero-mode
    four-point function: noisy), m_R and Z (second-moment estimators: noisy when ξ is short) are drawn on
    symmetric-log axes so that unresolved points do not hide the resolved ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for name, label in zip(COUPLINGS, ("f_Δ (kinetic)", "f_φ (−mass)", "f_3 (−quartic)")):
        axes[0].errorbar(*_series(points, name, coupling=True), marker="o", ms=3, capsize=2, label=label)
    axes[0].set_title("running couplings: s ≈ f_Δ Δφ + f_φ φ + f_3 φ³", fontsize=9)
    for name in ("phi2", "phi4"):
        axes[1].errorbar(*_series(points, name), marker="o", ms=3, capsize=2, label=f"<{name[:3]}{name[3:]}>")
    axes[1].set_title("local moments", fontsize=9)
    for name in ("m_R", "Z"):
        axes[2].errorbar(*_series(points, name), marker="o", ms=3, capsize=2, label=name)
    axes[2].set_yscale("symlog", linthresh=1.0)
    axes[2].set_title("second-moment mass and Z (symlog)", fontsize=9)
    axes[3].errorbar(*_series(points, "lambda_R"), marker="o", ms=3, capsize=2, label="λ_R", color="C2")
    axes[3].set_yscale("symlog", linthresh=1.0)
    axes[3].set_title("renormalised coupling λ_R (symlog)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("RG time t")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_flow(directory, points: list[dict], *, meta: dict | None = None, title: str = "") -> list[pathlib.Path]:
    """Write ``flow.json`` (``{"points": [...], **meta}``), ``flow.csv`` and ``flow.png`` into ``directory``."""
    directory = pathlib.Path(directory)
    paths = [directory / "flow.json", directory / "flow.csv", directory / "flow.png"]
    atomic_write_text(paths[0], json.dumps({**(meta or {}), "points": points}, indent=1) + "\n")
    atomic_write_text(paths[1], flow_csv(points))
    plot_flow(points, paths[2], title)
    return paths
