"""Compare a qrg (or NetKet) scan with a DMRG scan of the same line, point by point, in σ.

    python benchmarks/z2_compare.py DMRG_SCAN_DIR SCAN_DIR [SCAN_DIR ...]

For every m² in both: the energy per site, ⟨M²⟩ and U4 of the scan against DMRG (difference / the
scan's error bar; DMRG's truncation error is added in quadrature for the energy), and the two
symmetry checks ⟨M⟩ = 0 and peak weight = ½ (in σ). Prints a markdown table.
"""

from __future__ import annotations

import math
import sys

from qrg.scan import read_scan


def _sigma(value, err, ref, ref_err=0.0):
    s = math.hypot(err or 0.0, ref_err or 0.0)
    return (value - ref) / s if s > 0 else float("nan")


def compare(ref: dict, data: dict) -> list[str]:
    by_m2 = {p["m2"]: p for p in ref["points"]}
    lines = [f"{data['method']} N = {data['N']} λ = {data['lam']} against {ref['method']} N = {ref['N']}:", "",
             "| m² | E/site (Δ vs DMRG) | ⟨M²⟩ (DMRG) | U4 (DMRG) | ⟨M⟩ | peak weight | Var(E_loc) |",
             "|---|---|---|---|---|---|---|"]
    for p in data["points"]:
        r = by_m2.get(p["m2"])
        if r is None:
            continue
        e, ee = p["energy_per_site"], p.get("energy_per_site_err") or 0.0
        re_, ree = r["energy_per_site"], r.get("energy_per_site_err") or 0.0
        row = [f"{p['m2']:g}",
               f"{e:.6f} ± {ee:.1g} ({e - re_:+.2e}, {_sigma(e, ee, re_, ree):+.1f}σ)"]
        for k, fmt in (("M2", ".4f"), ("U4", ".4f")):
            v, rv = p[k], r[k]
            row.append(f"{v['mean']:{fmt}} ± {v['err']:.1g} ({rv['mean']:{fmt}}; {_sigma(v['mean'], v['err'], rv['mean']):+.1f}σ)")
        m, w = p.get("M"), p.get("peak_weight")
        row.append("—" if m is None else f"{m['mean']:+.4f} ± {m['err']:.1g} ({m['mean'] / m['err']:+.1f}σ)")
        row.append("—" if w is None else f"{w['mean']:.4f} ± {w['err']:.1g} ({(w['mean'] - 0.5) / w['err']:+.1f}σ)")
        var = p.get("variance")
        row.append("—" if var is None else f"{var['mean']:.3g}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ref = read_scan(argv[0])
    for path in argv[1:]:
        print("\n".join(compare(ref, read_scan(path))) + "\n")


if __name__ == "__main__":
    main()
