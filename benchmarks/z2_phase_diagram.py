"""The phase diagram of the lattice chains and squares at a = 1 from the stored scans and re-evaluated runs.

    python benchmarks/z2_phase_diagram.py [--out benchmarks/z2/phase_diagram.png]

Collects every Binder crossing this repository has measured: DMRG's from the scans in ``benchmarks/z2``
(``qrg.scan.binder_crossing`` of the pairs in ``DMRG_PAIRS``: N = 8, 16, 32, 64 at λ = 1, 2.4, 6), qrg's
chain crossings of N = 16, 32 from the re-evaluated runs in ``benchmarks/z2/points.json`` (the run
selections of docs/scan.md, through ``z2_point_crossing.py``), the squares' (qrg 4×4, 8×8 scans, when
they cross), and the infinite chain's critical points from iDMRG (``qrg critical --out benchmarks/z2/idmrg``:
``idmrg/lam_*/critical.json``; no finite-size shift). Prints a table of m²_c(λ) with each qrg crossing's
distance from DMRG's on the same m² grid (DMRG's scans of the same N restricted to qrg's m² values, so that the comparison is not one of
interpolation grids) and from the continuum asymptote (``qrg.continuum.continuum_critical_m2``,
f_c = 11.1097), and plots ``qrg.scan.plot_phase_diagram``.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from z2_point_crossing import pick, qrg_curve

from qrg.baselines.idmrg import as_crossing
from qrg.continuum import continuum_critical_m2
from qrg.scan import binder_crossing, crossings, plot_phase_diagram, read_scan

Z2 = pathlib.Path(__file__).resolve().parent / "z2"
# DMRG's crossings, pair by pair: U4 is interpolated linearly in m², so both scans of a pair must share
# their grid near the crossing (a point that only one of them has moves the crossing: at λ = 2.4 N = 32's
# extra −0.68 moves the coarse-grid (16, 32) crossing by 0.004). The *_fine scans add −0.68 at λ = 2.4.
DMRG_PAIRS = [("dmrg8_l1", "dmrg16_l1"), ("dmrg16_l1", "dmrg32_l1"), ("dmrg32_l1", "dmrg64_l1"),
              ("dmrg8", "dmrg16"), ("dmrg16_fine", "dmrg32_fine"), ("dmrg32_fine", "dmrg64"),
              ("dmrg8_l6", "dmrg16_l6"), ("dmrg16_l6", "dmrg32_l6"), ("dmrg32_l6", "dmrg64_l6")]
SQUARE_SCANS = ["qrg4x4", "qrg8x8_w100"]  # the 8×8 points trained with --warmup 100 (docs/scan.md)
IDMRG = Z2 / "idmrg"  # `qrg critical --out` of the infinite chain: lam_<λ>/critical.json
# DMRG scans of the sizes of qrg's chain crossings, per λ
QRG_DMRG = {1.0: ("dmrg16_l1", "dmrg32_l1"), 2.4: ("dmrg16_fine", "dmrg32_fine"), 6.0: ("dmrg16_l6", "dmrg32_l6")}
# the runs of qrg's chain crossings (docs/scan.md: "qrg's Binder crossing with the averaged runs" at
# λ = 2.4 with the −0.68 runs of 2026-12-02 on DMRG's finer grid, "qrg at λ = 6", "qrg at λ = 1"), as the
# ``run`` keys of the points.json records (the run directories themselves are not read):
# (runs of N = 16, runs of N = 32, moments key of runs given without @K)
QRG_CHAIN_RUNS = {
    1.0: (["/work/runs/qrg16_l1/points/m2_-0.3", "/work/runs/qrg16_l1/points/m2_-0.32"],
          ["/work/runs/s14/l1n32_m-0.30", "/work/runs/s14/l1n32_m-0.32"], 4),
    2.4: (["/work/out/s6/m06_T2_h8_4k", "/work/out/s7/m065_lr5_s0", "/work/runs/s14/n16_m068@4",
           "/work/out/s8/m07_avg_s0@4", "/work/out/s8/m07_avg_s1@4", "/work/out/s6/m08_T2_h8_4k_lr5"],
          ["/work/out/s8/n32_m06_avg_s0@4", "/work/out/s7/n32_m065_lr5_s0", "/work/runs/s14/n32_m068@4",
           "/work/out/s8/n32_m07_avg_s0@4"], 3),
    6.0: (["/work/runs/qrg16_l6/points/m2_-1.4", "/work/runs/qrg16_l6/points/m2_-1.46"],
          ["/work/runs/q32_l6_m-1.40", "/work/runs/q32_l6_m-1.46"], 4),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(Z2 / "phase_diagram.png"))
    args = p.parse_args(argv)
    dmrg = [binder_crossing(Z2 / a, Z2 / b) for a, b in DMRG_PAIRS]
    records = json.loads((Z2 / "points.json").read_text())["points"]
    ours, same_grid = [], {}
    for lam, (small, large, mk) in QRG_CHAIN_RUNS.items():
        curves = [qrg_curve(pick(records, runs, mk, 778)) for runs in (small, large)]
        ours.append(binder_crossing(*curves))
        refs = []
        for name, curve in zip(QRG_DMRG[lam], curves):  # DMRG on qrg's grid
            grid = {q["m2"] for q in curve["points"]}
            ref = read_scan(Z2 / name)
            refs.append(ref | {"points": [q for q in ref["points"] if q["m2"] in grid]})
        same_grid[lam] = binder_crossing(*refs)["m2"]
    squares = crossings([Z2 / name for name in SQUARE_SCANS])
    for c in squares:
        if c["m2"] is None:
            print(f"squares {c['N']} ({c['method']}, lam = {c['lam']:g}): no crossing: {c['reason']}")
    infinite = [as_crossing(c) for c in (json.loads(p.read_text()) for p in sorted(IDMRG.glob("lam_*/critical.json")))
                if c.get("fit")]
    rows = plot_phase_diagram(dmrg + ours + squares + infinite, args.out)
    print("| d | method | sizes | λ | m²_c | − DMRG (same sizes, same m² grid) | − continuum asymptote |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        err = "" if r["err"] is None else f" ± {r['err']:.5f}"
        other = same_grid.get(r["lam"]) if r["method"] == "qrg" and r["d"] == 1 else None
        vs = "—" if other is None else f"{r['m2'] - other:+.5f} (DMRG {other:.5f})"
        if other is not None and r["err"]:
            vs += f" ({(r['m2'] - other) / r['err']:+.1f}σ)"
        asym = f"{r['m2'] - continuum_critical_m2(r['lam'], a=r['a']):+.5f}" if r["d"] == 1 else "—"
        print(f"| {r['d']} | {r['method']} | {r['sizes']} | {r['lam']:g} | {r['m2']:.5f}{err} | {vs} | {asym} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
