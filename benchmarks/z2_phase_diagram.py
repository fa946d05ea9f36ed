"""The phase diagram of the lattice chains and squares at a = 1 from the stored scans and re-evaluated runs.

    python benchmarks/z2_phase_diagram.py [--out benchmarks/z2/phase_diagram.png]

Collects every Binder crossing this repository has measured: DMRG's from the scans in ``benchmarks/z2``
(``qrg.scan.crossings``: N = 8, 16, 32, 64 at λ = 1, 2.4, 6), qrg's chain crossings of N = 16, 32 from the
re-evaluated runs in ``benchmarks/z2/points.json`` (the run selections of docs/scan.md, through
``z2_point_crossing.py``), and the squares' (qrg 4×4, 8×8 scans, when they cross). Prints a table of
m²_c(λ) with each crossing's distance from DMRG's of the same sizes and from the continuum asymptote
(``qrg.continuum.continuum_critical_m2``, f_c = 11.1097), and plots ``qrg.scan.plot_phase_diagram``.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from z2_point_crossing import pick, qrg_curve

from qrg.continuum import continuum_critical_m2
from qrg.scan import binder_crossing, crossings, plot_phase_diagram

Z2 = pathlib.Path(__file__).resolve().parent / "z2"
DMRG_SCANS = ["dmrg8_l1", "dmrg16_l1", "dmrg32_l1", "dmrg8", "dmrg16", "dmrg32", "dmrg64",
              "dmrg8_l6", "dmrg16_l6", "dmrg32_l6", "dmrg64_l6"]
SQUARE_SCANS = ["qrg4x4", "qrg8x8"]
# the runs of qrg's chain crossings (docs/scan.md, "qrg's Binder crossing with the averaged runs" at
# λ = 2.4 and "qrg at λ = 6"): (runs of N = 16, runs of N = 32, moments key of runs given without @K)
QRG_CHAIN_RUNS = {
    2.4: (["/work/out/s6/m06_T2_h8_4k", "/work/out/s7/m065_lr5_s0", "/work/out/s8/m07_avg_s0@4",
           "/work/out/s8/m07_avg_s1@4", "/work/out/s6/m08_T2_h8_4k_lr5"],
          ["/work/out/s8/n32_m06_avg_s0@4", "/work/out/s7/n32_m065_lr5_s0", "/work/out/s8/n32_m07_avg_s0@4"], 3),
    6.0: (["/work/runs/qrg16_l6/points/m2_-1.4", "/work/runs/qrg16_l6/points/m2_-1.46"],
          ["/work/runs/q32_l6_m-1.40", "/work/runs/q32_l6_m-1.46"], 4),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(Z2 / "phase_diagram.png"))
    args = p.parse_args(argv)
    dmrg = crossings([Z2 / name for name in DMRG_SCANS])
    records = json.loads((Z2 / "points.json").read_text())["points"]
    ours = [binder_crossing(qrg_curve(pick(records, small, mk, 778)), qrg_curve(pick(records, large, mk, 778)))
            for small, large, mk in QRG_CHAIN_RUNS.values()]
    squares = crossings([Z2 / name for name in SQUARE_SCANS])
    for c in squares:
        if c["m2"] is None:
            print(f"squares {c['N']} ({c['method']}, lam = {c['lam']:g}): no crossing: {c['reason']}")
    rows = plot_phase_diagram(dmrg + ours + squares, args.out)
    ref = {(r["d"], tuple(r["N"]), r["lam"]): r["m2"] for r in rows if r["method"] == "dmrg"}
    print("| d | method | sizes | λ | m²_c | − DMRG (same sizes) | − continuum asymptote |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        err = "" if r["err"] is None else f" ± {r['err']:.5f}"
        other = ref.get((r["d"], tuple(r["N"]), r["lam"]))
        vs = "—" if other is None or r["method"] == "dmrg" else f"{r['m2'] - other:+.5f}"
        if other is not None and r["method"] != "dmrg" and r["err"]:
            vs += f" ({(r['m2'] - other) / r['err']:+.1f}σ)"
        asym = f"{r['m2'] - continuum_critical_m2(r['lam'], a=r['a']):+.5f}" if r["d"] == 1 else "—"
        print(f"| {r['d']} | {r['method']} | {r['sizes']} | {r['lam']:g} | {r['m2']:.5f}{err} | {vs} | {asym} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
