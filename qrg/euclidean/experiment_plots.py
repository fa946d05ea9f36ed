"""Figures of the RG-learning experiment (:mod:`.experiment`), drawn from its JSON-able results.

* :func:`plot_true_flows` — the paper's Figure 6: RG-trajectory snapshots of the true Carosso-M and
  Polchinski-M flows and m_R, Z, r_t² λ_R, max|φ| along t;
* :func:`plot_learned_vs_true` — Figures 7–8: the flows learned with (5.22) and with reverse KL (5.5)
  against the true Carosso-M flow.

Observables enter as ``{name: {"mean": [...], "err": [...]}}`` along t (``None`` = not finite).
"""

from __future__ import annotations

import numpy as np


def series(obs: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, err) of observable ``name`` along t as float arrays, None → NaN."""
    m = np.array([np.nan if v is None else v for v in obs[name]["mean"]], dtype=float)
    e = np.array([np.nan if v is None else v for v in obs[name]["err"]], dtype=float)
    return m, e


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_true_flows(fc, fp, path, m2):
    """The paper's Figure 6: RG-trajectory snapshots (Carosso-M, Polchinski-M) and r_t² λ_R, m_R, Z along t."""
    plt = _pyplot()
    n = len(fc["t"])
    fig = plt.figure(figsize=(2.0 * n, 12))
    gs = fig.add_gridspec(4, n)
    for row, f in enumerate((fc, fp)):
        for i in range(n):
            ax = fig.add_subplot(gs[row, i])
            ax.imshow(f["snapshots"][i, 0], cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{'Carosso' if row == 0 else 'Polchinski'} t={f['t'][i]:.2g}", fontsize=7)
    quantities = (("m_R", r"$m_R$"), ("Z", "Z"), ("lambda_R", r"$r_t^2\lambda_R$"), ("max_abs_phi", r"max$|\phi|$"))
    width = n // 4
    for j, (name, label) in enumerate(quantities):
        for row, (f, scheme) in enumerate(((fc, "Carosso-M"), (fp, "Polchinski-M"))):
            ax = fig.add_subplot(gs[2 + row, j * width:(j + 1) * width])
            t = np.array(f["t"])
            m, e = series(f["observables"], name)
            if name == "lambda_R":
                r2 = np.array(f["r_t"]) ** 2
                m, e = r2 * m, r2 * e
            ax.errorbar(t, m, e, marker="o", ms=3)
            ax.set_title(f"{scheme}: {label}", fontsize=9)
            ax.set_xlabel("RG time t", fontsize=8)
    fig.suptitle(f"True RG flow (Figure 6), m²={m2}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_learned_vs_true(true_c, learned, path, m2):
    """The paper's Figures 7–8: the learned flows ((5.22) and reverse KL) against the true Carosso-M flow."""
    plt = _pyplot()
    names = [("m_R2", r"$m_R^2$"), ("m_R2_rescaled", r"$m_R^2/r_t^2$"), ("Z", "Z"), ("lambda_R", r"$\lambda_R$"),
             ("lambda_R_rescaled", r"$\lambda_R/r_t^2$"), ("max_abs_phi", r"max$|\phi|$")]
    t = np.array(true_c["t"])
    dt = 0.01 * (t[-1] - t[0])
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    colors = {"true": "tab:red", "rg_matching": "tab:blue", "reverse_kl": "teal"}
    labels = {"rg_matching": "learned (5.22)", "reverse_kl": "learned, reverse KL (5.5)"}
    for ax, (name, label) in zip(axes.ravel(), names):
        m_true, e_true = series(true_c["observables"], name)
        ax.errorbar(t, m_true, e_true, color=colors["true"], marker="o", label="true Carosso-M flow")
        for i, key in enumerate(k for k in ("rg_matching", "reverse_kl") if k in learned):
            m, e = series(learned[key]["observables"], name)
            ax.errorbar(t + (i + 1) * dt, m, e, color=colors[key], marker="s", ls="--", label=labels[key])
        # the axis follows the true flow (±3 times its range); learned values beyond are clipped
        # to the edge and drawn as open triangles, so one diverging estimate does not hide the rest
        lo, hi = np.nanmin(m_true - e_true), np.nanmax(m_true + e_true)
        pad = 3.0 * max(hi - lo, 1e-12)
        ylo, yhi = lo - pad, hi + pad
        for i, key in enumerate(k for k in ("rg_matching", "reverse_kl") if k in learned):
            m, _ = series(learned[key]["observables"], name)
            off = np.isfinite(m) & ((m < ylo) | (m > yhi))
            if off.any():
                ax.plot((t + (i + 1) * dt)[off], np.clip(m[off], ylo, yhi), ls="none", marker="^", mfc="none",
                        color=colors[key])
        ax.set_ylim(ylo, yhi)
        ax.set_title(label)
        ax.set_xlabel("RG time t")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Learning the RG flow (Figures 7-8), m²={m2}  (open triangles: off-scale values, clipped)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
