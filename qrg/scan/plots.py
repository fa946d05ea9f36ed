"""Plots of scans: ``scan.png`` of one scan, U4 of several with their crossings, the phase diagram."""

from __future__ import annotations

import pathlib

import numpy as np

from .._validation import QRGInputError
from .crossing import crossings, phase_diagram_rows
from .records import read_scan

def _series(data: dict, name: str):
    pts = sorted(data["points"], key=lambda p: p["m2"])
    x, y, e = [], [], []
    for p in pts:
        if name in ("energy_per_site",):
            v, err = p.get("energy_per_site"), p.get("energy_per_site_err")
        else:
            o = p.get(name) or {}
            v, err = o.get("mean"), o.get("err")
        if v is None:
            continue
        x.append(p["m2"])
        y.append(v)
        e.append(0.0 if err is None else err)
    return np.array(x), np.array(y), np.array(e)


PANELS = (("abs_M", "⟨|M|⟩"), ("M2", "⟨M²⟩"), ("U4", "U4 = 1 − ⟨M⁴⟩/3⟨M²⟩²"), ("phi2", "⟨φ²⟩"),
          ("energy_per_site", "E / site"), ("variance", "Var(E_loc)"))


def plot_scan(data: dict, path) -> None:
    """``scan.png``: ⟨|M|⟩, ⟨M²⟩, U4, ⟨φ²⟩, energy per site and Var(E_loc) against m², with error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, (name, title) in zip(axes.ravel(), PANELS):
        x, y, e = _series(data, name)
        if x.size:
            ax.errorbar(x, y, yerr=e, marker="o", ms=3, lw=1, capsize=2)
        else:
            ax.text(0.5, 0.5, f"not measured by {data['method']}", ha="center", va="center", transform=ax.transAxes)
        if name == "variance" and x.size and np.all(y > 0):
            ax.set_yscale("log")
        ax.set_xlabel("m²")
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"qrg scan: {data['method']}, d={data['d']} N={data['N']} a={data['a']:g} λ={data['lam']:g}")
    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scans(scans, path, crossing_list=None) -> list[dict]:
    """U4 against m² for several scans (N and methods), with the Binder crossings of :func:`crossings`
    marked (a vertical line and its ±1σ band). Returns the crossings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [read_scan(s) for s in scans]
    if crossing_list is None:
        crossing_list = crossings(data)
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    markers = {"qrg": "o", "dmrg": "s", "netket": "^", "idmrg": "*"}
    for s in sorted(data, key=lambda s: (s["method"], s["N"])):
        x, y, e = _series(s, "U4")
        if x.size:
            ax.errorbar(x, y, yerr=e, marker=markers.get(s["method"], "o"), ms=3, lw=1, capsize=2,
                        label=f"{s['method']} N={s['N']} (λ={s['lam']:g})")
    for c in crossing_list:
        if c["m2"] is None:
            continue
        label = f"crossing N={c['N'][0]},{c['N'][1]} ({c['method']}, λ={c['lam']:g}): m²={c['m2']:.4g}"
        if c["err"]:
            label += f" ± {c['err']:.2g}"
            ax.axvspan(c["m2"] - c["err"], c["m2"] + c["err"], color="grey", alpha=0.2, lw=0)
        ax.axvline(c["m2"], color="grey", ls="--", lw=1, label=label)
    ax.set_xlabel("m²")
    ax.set_ylabel("U4 = 1 − ⟨M⁴⟩/(3⟨M²⟩²)")
    if len(ax.get_legend_handles_labels()[0]) > 6:  # many curves: the legend beside the axes, not over the data
        fig.set_size_inches(10.5, 4.8)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.legend(fontsize=7)
    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return crossing_list


def plot_phase_diagram(crossing_list, path, *, continuum_f: float | None = None) -> list[dict]:
    """The phase diagram in the (λ, m²) plane: the critical points of :func:`phase_diagram_rows` with their
    error bars, one panel per dimension d and one series per method and pair of sizes; the symmetric
    phase lies above the points (m² > m²_c) and the broken Z2 phase below. Chains (d = 1) also get the
    continuum asymptote m²_c(λ) of the continuum critical coupling ``continuum_f`` (λ'φ⁴/4 convention;
    default the Monte Carlo value of :data:`qrg.continuum.PUBLISHED`) from
    :func:`qrg.continuum.continuum_critical_m2`: the line the lattice points approach as λa² → 0.
    Returns the rows plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..continuum import PUBLISHED, continuum_critical_m2, series_label

    rows = phase_diagram_rows(crossing_list)
    if not rows:
        raise QRGInputError("plot_phase_diagram: no Binder crossing with an m² to plot")
    dims = sorted({r["d"] for r in rows})
    fig, axes = plt.subplots(2, len(dims), figsize=(6.4 * len(dims), 6.6), squeeze=False,
                             gridspec_kw={"height_ratios": [3.0, 1.5]})
    markers = {"qrg": "o", "dmrg": "s", "netket": "^", "idmrg": "*"}
    f_c = PUBLISHED[0][0] if continuum_f is None else float(continuum_f)
    for ax, low, d in zip(axes[0], axes[1], dims):
        sub = [r for r in rows if r["d"] == d]
        series: dict = {}
        for r in sub:  # infinite-size estimates of several λ (each from its own sizes) are one series
            key = r["sizes"].split(";")[0] + ")" if r["sizes"].startswith("N →") and ";" in r["sizes"] else r["sizes"]
            series.setdefault((r["method"], key), []).append(r)
        lam_max = max(r["lam"] for r in sub)
        for k, ((method, sizes), pts) in enumerate(series.items()):
            lam = np.array([r["lam"] for r in pts])
            m2 = np.array([r["m2"] for r in pts])
            err = np.array([0.0 if r["err"] is None else r["err"] for r in pts])
            shift = 0.012 * (k - (len(series) - 1) / 2) * max(lam_max, 1.0)  # side by side, not on top
            line = ax.errorbar(lam + shift, m2, yerr=err, marker=markers.get(method, "D"), ms=4, lw=0.8,
                               elinewidth=1, capsize=2, label=series_label(method, sizes))
            if d == 1:  # the distance to the continuum asymptote: the lattice artefact and the finite size
                asym = np.array([continuum_critical_m2(r["lam"], a=r["a"], f=f_c) for r in pts])
                low.errorbar(lam + shift, m2 - asym, yerr=err, marker=markers.get(method, "D"), ms=4, lw=0.8,
                             elinewidth=1, capsize=2, color=line[0].get_color())
        if d == 1:
            for a in sorted({r["a"] for r in sub}):
                xs = np.linspace(lam_max * 0.02, lam_max * 1.08, 80)
                ys = [continuum_critical_m2(x, a=a, f=f_c) for x in xs]
                ax.plot(xs, ys, color="grey", ls=":", lw=1,
                        label=f"continuum asymptote (f_c = {f_c:g}, a = {a:g}), exact as λa² → 0")
            low.axhline(0.0, color="grey", ls=":", lw=1)
            low.set_xlim(0.0, lam_max * 1.1)
            low.set_xlabel("λ (λφ⁴/4! convention)")
            low.set_ylabel("m²_c − asymptote")
        else:
            low.set_axis_off()
            ax.set_xlabel("λ (λφ⁴/4! convention)")
        ax.set_xlim(0.0, lam_max * 1.1)
        lo = min(r["m2"] - (r["err"] or 0.0) for r in sub)
        hi = max(0.0, max(r["m2"] + (r["err"] or 0.0) for r in sub))
        pad = 0.15 * max(hi - lo, 0.1)
        ax.set_ylim(lo - pad, hi + pad)  # m² = 0 in view: the scale of the shift from the free theory's m²_c
        ax.text(0.97, 0.95, "symmetric (m² > m²_c)", transform=ax.transAxes, ha="right", va="top", fontsize=8)
        ax.text(0.03, 0.05, "broken Z2 (m² < m²_c)", transform=ax.transAxes, ha="left", va="bottom", fontsize=8)
        ax.set_ylabel("m²_c")
        ax.set_title({1: "chains (1+1D)", 2: "squares (2+1D)", 3: "cubes (3+1D)"}.get(d, f"d = {d}"), fontsize=10)
        ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 0.1))
    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return rows
