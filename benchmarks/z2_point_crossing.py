"""The Binder crossing of qrg's re-evaluated runs (``z2/points.json``) against DMRG's.

    python benchmarks/z2_point_crossing.py --runs16 RUN16 [RUN16 ...] --runs32 RUN32 [RUN32 ...] \
        [--points benchmarks/z2/points.json] [--dmrg benchmarks/z2/dmrg16 benchmarks/z2/dmrg32]

The records of ``z2_point_eval.py`` are grouped by (N, m²). Where several runs (seeds) share a point,
U4 is their mean and its error ``qrg.scan.combine_values`` (the standard error of that mean from the
spread between the runs, which contains the sampling error and the optimisation's spread, and never
below the sampling error of the mean; what ``qrg scan --combine`` uses); a point with one run carries its
sampling error only (the optimisation spread, about 0.0035 in U4 at m² = −0.7 for N = 16 per
docs/scan.md, is not in it: the script says which points have one run). The crossing is
``qrg.scan.binder_crossing`` of the two curves, the same function `qrg scan` uses, and DMRG's from the
DMRG scans; prints both and their relative difference.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from qrg.scan import binder_crossing, combine_values, read_scan


def qrg_curve(records: list[dict], N: int | None = None) -> dict:
    """A scan dict (as ``qrg scan`` writes it) of the records of one N (default: the first record's), one
    point per m²."""
    if N is None:
        N = records[0]["N"]
    by_m2: dict = {}
    for r in records:
        by_m2.setdefault(r["m2"], []).append(r)
    points = []
    for m2, group in sorted(by_m2.items()):
        u4 = combine_values([g["U4"]["mean"] for g in group], [g["U4"]["err"] for g in group])
        points.append({"m2": m2, "U4": {"mean": u4["mean"], "err": u4["err"]}, "runs": len(group)})
    first = records[0]
    return {"d": first["d"], "a": 1.0, "lam": first["lam"], "N": N, "method": "qrg", "points": points}


def pick(records: list[dict], runs, moments_key: int = 3, key: int = 777, source: str = "points.json") -> list[dict]:
    """One record per run spec (``RUN`` or ``RUN@K``: K the moments key, else ``moments_key``); any energy key
    (U4 does not depend on it; ``key`` preferred)."""
    out = []
    for spec in runs:
        run, _, k = spec.partition("@")
        mk = int(k) if k else moments_key
        found = sorted((r for r in records if r["run"] == run and r.get("moments_key", 3) == mk),
                       key=lambda r: r.get("energy_key", 777) != key)
        if not found:
            raise SystemExit(f"no record with moments key {mk} in {source} for {run}: run z2_point_eval.py first")
        out.append(found[0])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs16", nargs="+", required=True,
                   help="run directories of the smaller N (RUN or RUN@K: the record of moments key K)")
    p.add_argument("--runs32", nargs="+", required=True, help="run directories of the larger N (likewise)")
    p.add_argument("--points", default="benchmarks/z2/points.json")
    p.add_argument("--dmrg", nargs=2, default=["benchmarks/z2/dmrg16", "benchmarks/z2/dmrg32"])
    p.add_argument("--key", type=int, default=777, help="energy key of the records to use (the moments do not depend on it)")
    p.add_argument("--moments-key", type=int, default=3, help="moments key of the records of runs given without @K")
    args = p.parse_args(argv)
    records = json.loads(pathlib.Path(args.points).read_text())["points"]

    curves = [qrg_curve(pick(records, runs, args.moments_key, args.key, args.points))
              for runs in (args.runs16, args.runs32)]
    for c in curves:
        for q in c["points"]:
            print(f"qrg N={c['N']:3d} m2={q['m2']:+.3f} U4 = {q['U4']['mean']:.4f} ± {q['U4']['err']:.4f} "
                  f"({q['runs']} run{'s' if q['runs'] > 1 else ''})")
    ours = binder_crossing(*curves)
    ref = binder_crossing(read_scan(args.dmrg[0]), read_scan(args.dmrg[1]))
    print(f"DMRG crossing N={ref['N']}: m2_c = {ref['m2']}")
    if ours["m2"] is None:
        print(f"qrg: no crossing ({ours['reason']})")
        return
    rel = (ours["m2"] - ref["m2"]) / abs(ref["m2"])
    print(f"qrg  crossing N={ours['N']}: m2_c = {ours['m2']:.5f} ± {ours['err']:.5f}; "
          f"relative difference from DMRG {rel:+.2%} ({(ours['m2'] - ref['m2']) / ours['err']:+.1f} sigma)")


if __name__ == "__main__":
    main()
