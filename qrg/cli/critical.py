"""``qrg critical``: the critical point of the infinite φ⁴ chain by iDMRG, and the continuum coupling f_c.

For each ``--lam``, iDMRG (TeNPy, two-site unit cell, no symmetry imposed) at every m² of a grid, each ramped
through the bond dimensions ``--chis``; the order parameter ⟨φ⟩ on the broken side is fitted by
log ⟨φ⟩ = c₀ + β log t + c₁ t (t = m²_c − m², β = 1/8 of the 2D Ising class) to give m²_c with an error from
variant fits and the bond-dimension change (:func:`qrg.baselines.idmrg.order_parameter_critical_point`). No finite-size
shift enters: the chain is infinite. With two or more λ the critical ratios f = λ'/μ² (μ² the normal-ordered
mass, :mod:`qrg.continuum`) are extrapolated to λa² → 0 and plotted (docs/scan.md).

    qrg critical --lam 2.4 --out runs/crit                      # default grid around the expected point
    qrg critical --lam 1,2.4,6 --chis 16,32,48 --out runs/crit  # + f_c, continuum.png
    qrg critical --lam 1,2.4,6 --out runs/crit --fit-only       # refit what is there, compute nothing
"""

from __future__ import annotations

import json
import pathlib

from .._validation import QRGInputError, check_int
from . import check_out_dir, parse_list


def add_parser(sub) -> None:
    p = sub.add_parser("critical", help="critical point of the infinite chain (iDMRG) and the continuum f_c",
                       description=__doc__)
    p.add_argument("--lam", required=True, help="comma-separated quartic couplings λ (λ/4! φ⁴)")
    p.add_argument("--a", type=float, default=1.0, help="lattice spacing (default 1)")
    p.add_argument("--m2", default=None, help="comma-separated m² grid (one --lam only; default: around the "
                                              "continuum asymptote of the critical line)")
    p.add_argument("--chis", default="16,32,48", help="increasing bond dimensions of each ramp (default 16,32,48)")
    p.add_argument("--local-dim", type=int, default=8, help="states per site (default 8)")
    p.add_argument("--max-sweeps", type=int, default=1000,
                   help="iDMRG sweeps per state before it is recorded as not converged (default 1000; near the "
                        "transition more are needed)")
    p.add_argument("--order", type=int, default=1, help="polynomial order in λa² of the f_c extrapolation")
    p.add_argument("--out", required=True,
                   help="directory: lam_<λ>/points.jsonl, critical.json; continuum.json/png")
    p.add_argument("--resume", action="store_true", help="keep the records already in --out")
    p.add_argument("--fit-only", action="store_true",
                   help="compute nothing: fit every record in --out of each --lam (any chi; e.g. after adding points)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..baselines.idmrg import continuum_from_idmrg, critical_point

    lams = parse_list("--lam", args.lam, float, "numbers")
    if not lams:
        raise QRGInputError("--lam needs at least one value")
    m2 = parse_list("--m2", args.m2, float, "numbers")
    if m2 is not None and len(lams) > 1:
        raise QRGInputError("--m2 sets the grid of one --lam; with several values leave it out (default grids)")
    chis = parse_list("--chis", args.chis)
    max_sweeps = check_int("--max-sweeps", args.max_sweeps, minimum=10)
    out = pathlib.Path(args.out)
    check_out_dir(out, "--out")
    results = []
    for lam in lams:
        print(f"qrg critical: lam = {lam:g}, a = {args.a:g}, chis {chis}, local_dim {args.local_dim}", flush=True)

        def show(r):
            print(f"  m2 = {r['m2']:+.6f} chi = {r['chi']:3d}  <phi> = {r['phi']:+.7f}  xi = {r['xi']:8.3f}  "
                  f"E/site = {r['energy_per_site']:.12f}  sweeps {r['sweeps']:4d}  {r['wall_time_s']:6.1f} s"
                  + ("" if r["converged"] else "  (not converged)"),
                  flush=True)

        res = critical_point(lam, m2, chis=chis, local_dim=args.local_dim, a=args.a, out=out / f"lam_{lam:g}",
                             resume=args.resume, fit_only=args.fit_only, on_record=show,
                             max_sweeps=max_sweeps)
        fit = res["fit"]
        if fit is None:
            print(f"  no critical point: {res['reason']}")
        else:
            print(f"  m2_c = {fit['m2c']:.6f} ± {fit['m2c_err']:.6f} (fits: "
                  + ", ".join(f"{k} {v:.6f}" for k, v in fit["fits"].items() if v is not None) + ")")
            if fit["unconverged_m2"]:
                print(f"  left out (largest chi not converged): m2 = {fit['unconverged_m2']}")
        results.append(res)
    fitted = [r for r in results if r["fit"]]
    if fitted:
        cont = continuum_from_idmrg(fitted, order=args.order)
        groups = cont.get("groups", [cont])
        for g in groups:
            for pnt in g["points"]:
                print(f"lam = {pnt['lam']:g}: m2_c = {pnt['m2c']:.6f} ± {pnt['m2c_err']:.6f}, mu2 = {pnt['mu2']:.6f}, "
                      f"f = lam'/mu2 = {pnt['f']:.4f} ± {pnt['f_err']:.4f} (lam/mu2 = {pnt['f_lambda4!']:.3f})")
            if g["fit"]:
                fit = g["fit"]
                err = "" if fit["fc_err"] is None else f" ± {fit['fc_err']:.4f}"
                chi2 = ""
                if fit["chi2_dof"] is not None:
                    hint = f": well above 1, try --order {fit['order'] + 1}" if fit["chi2_dof"] > 1.5 else ""
                    chi2 = f" (chi2/dof = {fit['chi2_dof']:.2f}{hint})"
                print(f"f_c (order-{fit['order']} extrapolation to lam*a^2 -> 0) = {fit['fc']:.4f}{err}{chi2}")
            elif g["reason"]:
                print(f"no extrapolation: {g['reason']}")
        (out / "continuum.json").write_text(json.dumps(cont, indent=1) + "\n")
        if any(g["fit"] for g in groups):
            from ..continuum import plot_continuum

            plot_continuum(groups, out / "continuum.png")
            print(f"wrote {out / 'continuum.png'}")
    return 0
