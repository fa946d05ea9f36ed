"""``qrg scan``: ground states along a line of m² at fixed λ (the Z2 transition), and Binder crossings.

    qrg scan --N 8 --lam 2.4 --m2=-1,-0.8,-0.6,-0.4 --out runs/scan8            # qrg, warm-started
    qrg scan --N 8 --lam 2.4 --m2=-1,-0.8,-0.6,-0.4 --method dmrg --out runs/dmrg8
    qrg scan --N 8 --lam 2.4 --m2=-1,-0.8,-0.6,-0.4,-0.2 --out runs/scan8 --resume   # adds m² = -0.2
    qrg scan --crossing runs/scan8 runs/scan16 [--plot crossing.png]
    qrg scan --crossing runs/dmrg16-l1 runs/dmrg32-l1 runs/dmrg16-l6 runs/dmrg32-l6 --continuum
    qrg scan --crossing runs/dmrg16-l1 runs/dmrg32-l1 runs/dmrg16-l6 runs/dmrg32-l6 --phase-diagram
    qrg scan --combine runs/scan16-s0 runs/scan16-s1 --out runs/scan16   # one scan from several seeds
    qrg scan --merge runs/scan16-a runs/scan16-b --out runs/scan16       # pieces of one line, other m²

Prints one table row per point as it finishes (m², E/site, ⟨M²⟩, U4, ⟨|M|⟩, the weight of the
M > 0 peak, Var(E_loc)) and writes DIR/scan.json, scan.csv, scan.png (docs/scan.md). Negative m²
lists must be attached to the flag: ``--m2=-1,-0.5``. ``--crossing DIR1 DIR2 ...`` prints the m² where
the U4 curves of neighbouring N cross and writes crossing.png into DIR1 (``--out DIR``: into DIR;
``--plot PATH``: that file, the other plots beside it); with
``--continuum`` also the dimensionless critical coupling f = λ'/μ² of each crossing (normal-ordered
mass, λ'φ⁴/4 convention) and its extrapolation to λa² → 0 (``qrg.continuum``, continuum.png); with
``--phase-diagram`` the critical points m²_c against λ, chains with the continuum asymptote
(``qrg.scan.plot_phase_diagram``, phase_diagram.png).
``--combine DIR1 DIR2 ... --out DIR`` writes one scan from scans of the same line made with different
``--seed``: per point the mean over the seeds, with an error bar that holds the spread between them
(``qrg.scan.combine_seeds``); with ``--pick lowest`` per point the run of the lowest energy instead
(variational selection: a seed that failed to train is dropped, not averaged in).
``--merge DIR1 DIR2 ... --out DIR`` joins pieces of one line computed separately (the same settings and
seed, different m²: points run in parallel or on other machines) into one scan, and copies the pieces'
qrg run directories so that ``--resume`` on DIR warm-starts from them (``qrg.scan.merge_scans``).
"""

from __future__ import annotations

import argparse
import json
import sys

from .._validation import QRGInputError, check_writable_dir
from . import check_out_file, parse_list

# qrg solve options settable here: flag dest -> (SolveConfig field, argparse kwargs)
_QRG_FLAGS = {
    "model": dict(type=str, help="qrg: score model (default 'default')"),
    "steps": dict(type=int, help="qrg: optimisation steps per point"),
    "batch": dict(type=int, help="qrg: samples per step"),
    "lr": dict(type=float, help="qrg: peak learning rate"),
    "average": dict(type=float, help="qrg: average the parameters over this final fraction of the steps "
                    "(0 = off)"),
    "warmup": dict(type=int, help="qrg: steps of the linear warm-up of the learning rate (default 10)"),
    "lr_recover": dict(type=int, help="qrg: double a learning rate halved by a rolled-back step back after this "
                       "many steps without one (0 = never)"),
    "n_steps": dict(type=int, help="qrg: ODE steps in training"),
    "eval_n_steps": dict(type=int, help="qrg: ODE steps of the final evaluation"),
    "eval_batch": dict(type=int, help="qrg: samples of the final energy evaluation"),
    "local_batch": dict(type=int, help="qrg: evaluation samples used for E_loc and Var(E_loc)"),
    "beta_rg": dict(type=float, help="qrg: weight of the RG-consistency term"),
    "T": dict(type=float, help="qrg: prior time T of the RG flow (default 1; docs/scan.md measures T = 2 "
                               "near the transition)"),
    "collective": dict(action=argparse.BooleanOptionalAction,
                       help="qrg: mean-field channel h(M, t) in the score (recommended near the broken phase)"),
    "growth": dict(action=argparse.BooleanOptionalAction,
                   help="qrg: φ sqrt(1 + φ²) feature in the score (default on; --no-growth for runs made before it)"),
    "pair": dict(action=argparse.BooleanOptionalAction, help="qrg: pair channel (two-site terms) in the score"),
    "hidden": dict(type=int, help="qrg: hidden fields of the score's two-layer channel (0 = off)"),
    "systematic_batch": dict(type=int, help="qrg: samples of the ODE step-doubling check (0 = off)"),
    "consistency_batch": dict(type=int, help="qrg: samples of the RG-consistency diagnostic (0 = off)"),
    "checkpoint_every": dict(type=int, help="qrg: checkpoint every K steps (0 = at the end only)"),
    "refine_steps": dict(type=int, help="qrg: SR refinement steps after each point's optimisation (0 = off; "
                         "measured to move the broken phase's ⟨M²⟩ towards DMRG, docs/scan.md)"),
    "refine_batch": dict(type=int, help="qrg: samples per refinement step (default 128)"),
    "refine_dtau": dict(type=float, help="qrg: imaginary-time step of the refinement (default 0.1)"),
}


def add_parser(sub) -> None:
    from ..scan import METHODS

    p = sub.add_parser("scan", help="ground states along a line of m² (order parameter, Binder cumulant U4)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=int, default=1, help="spatial dimensions (default 1)")
    p.add_argument("--N", type=int, default=None, help="sites per side")
    p.add_argument("--a", type=float, default=1.0, help="lattice spacing (default 1)")
    p.add_argument("--lam", type=float, default=None, help="quartic coupling λ (λ/4! φ⁴)")
    p.add_argument("--m2", default=None, help="comma-separated m² values, in the order they are solved "
                   "(negative ones: --m2=-1,-0.5)")
    p.add_argument("--method", default="qrg", choices=METHODS, help="qrg (default), dmrg or netket (neural ansatz)")
    p.add_argument("--out", default=None, help="scan directory (scan.json, scan.csv, scan.png, points/)")
    p.add_argument("--resume", action="store_true", help="keep the finished points of the scan in --out")
    p.add_argument("--force", action="store_true", help="replace the scan that --out holds")
    p.add_argument("--samples", type=int, default=None,
                   help="samples the observables are measured on (qrg, netket; default 4096)")
    p.add_argument("--seed", type=int, default=None, help="qrg, netket: PRNG seed")
    for name, kw in _QRG_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=None, **kw)
    p.add_argument("--local-dims", default=None, help="dmrg: increasing comma-separated local dimensions")
    p.add_argument("--chis", default=None, help="dmrg: increasing comma-separated bond dimensions")
    p.add_argument("--n-iter", type=int, default=None, help="netket: VMC steps per point")
    p.add_argument("--vmc-samples", type=int, default=None, help="netket: samples per VMC step")
    p.add_argument("--crossing", nargs="+", default=None, metavar="DIR",
                   help="print the Binder crossings of these scans (different N) and plot U4; no scan is run")
    p.add_argument("--plot", default=None, help="with --crossing: the plot file (default DIR1/crossing.png, or "
                   "OUT/crossing.png with --out OUT; continuum.png and phase_diagram.png go beside it)")
    p.add_argument("--continuum", action="store_true",
                   help="with --crossing (chains): the critical coupling f = lam'/mu^2 of every crossing and its "
                        "extrapolation to lam*a^2 -> 0, plotted into DIR1/continuum.png (docs/scan.md)")
    p.add_argument("--phase-diagram", action="store_true",
                   help="with --crossing: plot the critical points m2_c against lam (one panel per d; chains with "
                        "the continuum asymptote) into DIR1/phase_diagram.png and print them (docs/scan.md)")
    p.add_argument("--order", type=int, default=None,
                   help="with --continuum: the polynomial order in lam*a^2 of the extrapolation (default 1)")
    p.add_argument("--size-exponent", type=float, default=None, metavar="P",
                   help="with --continuum or --phase-diagram: also extrapolate each lam's crossings of several size "
                        "pairs to N -> oo assuming a shift ∝ N^-P (P = 1/nu + omega, 3 for 2D Ising) and use those")
    p.add_argument("--combine", nargs="+", default=None, metavar="DIR",
                   help="write one scan into --out from these scans of the same line with different --seed "
                        "(mean over the seeds, error bar with their spread); no scan is run")
    p.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                   help="write one scan into --out from pieces of the same line (same settings and seed, other "
                        "m²) computed separately; no scan is run")
    p.add_argument("--pick", default="mean", choices=("mean", "lowest"),
                   help="with --combine: mean over the seeds (default) or, at every point, the run with the lowest "
                        "energy (variational selection; docs/scan.md)")
    p.set_defaults(run=run)


def _options(args) -> dict:
    """The method's options from the flags; a flag that does not apply to --method is an error."""
    given = {name: getattr(args, name) for name in _QRG_FLAGS if getattr(args, name) is not None}
    dmrg = {"local_dims": parse_list("--local-dims", args.local_dims), "chis": parse_list("--chis", args.chis)}
    dmrg = {k: v for k, v in dmrg.items() if v is not None}
    netket = {"n_iter": args.n_iter, "n_samples": args.vmc_samples}
    netket = {k: v for k, v in netket.items() if v is not None}
    flag = {"local_dims": "--local-dims", "chis": "--chis", "n_iter": "--n-iter", "n_samples": "--vmc-samples",
            **{k: "--" + k.replace("_", "-") for k in _QRG_FLAGS}}
    own = {"qrg": given, "dmrg": dmrg, "netket": netket}
    foreign = [flag[k] for method, opts in own.items() if method != args.method for k in opts]
    if foreign:
        raise QRGInputError(f"{', '.join(foreign)} do not apply to --method {args.method}")
    options = dict(own[args.method])
    if args.seed is not None:
        if args.method == "dmrg":
            raise QRGInputError("--seed does not apply to --method dmrg (deterministic)")
        options["seed"] = args.seed
    if args.samples is not None and args.method == "dmrg":
        raise QRGInputError("--samples does not apply to --method dmrg (the moments are MPS expectation values)")
    return options


def run(args) -> int:
    if args.crossing:
        return _crossing(args)
    if args.combine and args.merge:
        raise QRGInputError("--combine (seeds of the same points) and --merge (pieces at other m²) exclude each other")
    if args.combine:
        return _combine(args)
    if args.merge:
        return _merge(args)
    from ..scan import scan, table_header, table_row

    for flag in ("N", "lam", "m2", "out"):
        if getattr(args, flag) is None:
            raise QRGInputError(f"--{flag} is required (or --crossing DIR1 DIR2 ...)")
    if args.plot is not None:
        raise QRGInputError("--plot goes with --crossing")
    if args.continuum or args.phase_diagram or args.order is not None or args.size_exponent is not None:
        raise QRGInputError("--continuum, --phase-diagram, --order and --size-exponent go with --crossing")
    m2_values = parse_list("--m2", args.m2, float, "numbers")
    options = _options(args)
    print(f"qrg scan: {args.method}, d={args.d} N={args.N} a={args.a:g} lam={args.lam:g}, "
          f"{len(m2_values)} m² values, options {json.dumps(options)}", file=sys.stderr)
    header = {"printed": False}

    def on_point(record, kept):
        if not header["printed"]:
            print(table_header())
            header["printed"] = True
        print(table_row(record, kept), flush=True)
        for line in record.get("warnings") or ():
            print(f"WARNING (m² = {record['m2']:g}): {line}", file=sys.stderr, flush=True)

    from ..optim.loop import RunInterrupted

    try:
        data = scan(args.d, args.N, args.lam, m2_values, method=args.method, a=args.a, out=args.out,
                    resume=args.resume, force=args.force, options=options,
                    n_samples=4096 if args.samples is None else args.samples, on_point=on_point)
    except (RunInterrupted, KeyboardInterrupt):
        print(f"qrg scan: interrupted; the finished points are in {args.out}/scan.json, continue with --resume",
              file=sys.stderr)
        return 130
    bad = [p["label"] for p in data["points"] if p.get("status") not in (None, "completed")]
    print(f"wrote {args.out}/scan.json, scan.csv, scan.png ({len(data['points'])} points)", file=sys.stderr)
    if bad:
        print(f"qrg scan: points {bad} did not complete (see their status)", file=sys.stderr)
        return 3
    return 0


def _combine(args) -> int:
    from ..scan import combine_seeds, table_header, table_row

    if args.out is None:
        raise QRGInputError("--combine needs --out (the directory of the combined scan)")
    data = combine_seeds(args.combine, out=args.out, pick=args.pick)
    if args.pick == "lowest":
        print(f"qrg scan: {len(args.combine)} scans, seeds {data['seeds']}: at every point the run of the lowest "
              "energy", file=sys.stderr)
        print(table_header() + "  seed  gap/σ")
        for p in data["points"]:
            gap = "" if p["selection_gap"] is None else f"{p['selection_gap']:.3g}"
            print(table_row(p) + f"  {p['selected_seed']}  {gap}")
    else:
        print(f"qrg scan: {len(args.combine)} scans, seeds {data['seeds']}: mean over the seeds, error bars with "
              "their spread", file=sys.stderr)
        print(table_header() + "  spread ⟨M²⟩ (χ²/dof)")
        for p in data["points"]:
            m2 = p.get("M2") or {}
            extra = "" if m2.get("spread") is None else (f"  {m2['spread']:.2g}" + (
                f" ({m2['chi2_dof']:.3g})" if m2.get("chi2_dof") is not None else ""))
            print(table_row(p) + extra)
    for note in data["notes"][1:]:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {args.out}/scan.json, scan.csv, scan.png ({len(data['points'])} points)", file=sys.stderr)
    return 0


def _merge(args) -> int:
    from ..scan import merge_scans, table_header, table_row

    if args.out is None:
        raise QRGInputError("--merge needs --out (the directory of the merged scan)")
    data = merge_scans(args.merge, out=args.out, force=args.force)
    print(f"qrg scan: {len(args.merge)} pieces of the line d={data['d']} N={data['N']} lam={data['lam']:g} "
          f"({data['method']}) merged", file=sys.stderr)
    print(table_header())
    for p in data["points"]:
        print(table_row(p))
    print(f"wrote {args.out}/scan.json, scan.csv, scan.png ({len(data['points'])} points)", file=sys.stderr)
    return 0


def _crossing(args) -> int:
    import pathlib

    from ..scan import crossings, plot_scans, read_scan

    if args.order is not None and not args.continuum:
        raise QRGInputError("--order goes with --continuum")
    if args.size_exponent is not None and not (args.continuum or args.phase_diagram):
        raise QRGInputError("--size-exponent goes with --continuum or --phase-diagram")
    scans = [read_scan(d) for d in args.crossing]
    if len(scans) < 2:
        raise QRGInputError("--crossing needs at least two scan directories (of different N)")
    if args.plot:
        path = check_out_file(args.plot, "--plot")
    elif args.out is not None:  # a directory for the plots, made if needed
        path = check_writable_dir(pathlib.Path(args.out), "--out") / "crossing.png"
    else:
        path = pathlib.Path(args.crossing[0]) / "crossing.png"
    found = crossings(scans)
    if not found:
        raise QRGInputError("--crossing: no two scans have the same d, a, lam and method with different N")
    for c in found:
        where = f"N = {c['N'][0]} and {c['N'][1]} ({c['method']}, lam = {c['lam']:g})"
        if c["m2"] is None:
            print(f"{where}: no crossing: {c['reason']}")
        else:
            err = "" if c["err"] is None else f" ± {c['err']:.2g}"
            more = f" ({len(c['crossings'])} sign changes; the lowest m² shown)" if len(c["crossings"]) > 1 else ""
            print(f"{where}: U4 curves cross at m² = {c['m2']:.6g}{err} (U4 = {c['U4']:.4g}, between m² = "
                  f"{c['bracket'][0]:g} and {c['bracket'][1]:g}){more}")
    plot_scans(scans, path, found)
    print(f"wrote {path}", file=sys.stderr)
    if args.size_exponent is not None:  # the infinite-size estimates, for --continuum and --phase-diagram
        from ..continuum import size_extrapolated_crossings

        found = list(found) + size_extrapolated_crossings(found, args.size_exponent)
    if args.continuum:
        _continuum(found, 1 if args.order is None else args.order, path.parent / "continuum.png")
    if args.phase_diagram:
        _phase_diagram(found, path.parent / "phase_diagram.png")
    return 0


def _phase_diagram(found, path) -> None:
    from ..scan import plot_phase_diagram

    rows = plot_phase_diagram(found, path)
    print("critical points m2_c(lam) (symmetric phase above, broken Z2 phase below):")
    for r in rows:
        err = "" if r["err"] is None else f" ± {r['err']:.2g}"
        print(f"  d = {r['d']}, {r['method']}, {r['sizes']}: lam = {r['lam']:g}, m2_c = {r['m2']:.6g}{err}")
    print(f"wrote {path}", file=sys.stderr)


def _continuum(found, order, path) -> None:
    from ..continuum import PUBLISHED, continuum_from_crossings, plot_continuum

    results = continuum_from_crossings(found, order)
    if not results:
        raise QRGInputError("--continuum: no Binder crossing was found to convert")
    for r in results:
        print(f"{r['method']}, {r['sizes']}: f = lam'/mu^2 at the crossing "
              f"(lam' phi^4/4 convention; lam/mu^2 = 6 f in lam/4!)")
        for q in r["points"]:
            err = "" if q["f_err"] is None else f" ± {q['f_err']:.3g}"
            print(f"  lam*a^2 = {q['x']:g}: m2_c = {q['m2c']:.6g}, mu^2 = {q['mu2']:.6g}, f = {q['f']:.5g}{err}")
        fit = r["fit"]
        if fit is None:
            print(f"  no extrapolation: {r['reason']}")
        else:
            err = "" if fit["fc_err"] is None else f" ± {fit['fc_err']:.3g}"
            chi2 = "" if fit["chi2_dof"] is None else f", chi2/dof = {fit['chi2_dof']:.3g}"
            print(f"  order-{order} extrapolation to lam*a^2 -> 0: f_c = {fit['fc']:.5g}{err} "
                  f"({fit['dof']} degrees of freedom{chi2}); published {PUBLISHED[0][0]} ({PUBLISHED[0][2]})")
    plot_continuum(results, path)
    print(f"wrote {path}", file=sys.stderr)
