"""``qrg flow RUN_DIR``: the RG flow of a trained ground state (paper 6.3: "Ψ_t for various t").

Loads the run saved in RUN_DIR by ``qrg solve --out RUN_DIR``, samples Ψ_t at the RG times
``--times`` (default 0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1 × T), measures ⟨φ²⟩, ⟨φ⁴⟩,
G2 per momentum shell, m_R, Z, λ_R and the running couplings (the projection of the learned score
on Δφ, φ, φ³), and writes ``RUN_DIR/flow.json``, ``flow.csv`` and ``flow.png``. With ``--check`` it
also runs the RG-consistency diagnostic (the flow's own p_θ,t against the exact-kernel flow of
its p_θ,0) and stores it in flow.json under ``rg_consistency``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from .._validation import QRGInputError, check_int
from . import parse_list


def add_parser(sub) -> None:
    p = sub.add_parser("flow", help="the RG-flowed ground states Ψ_t and running couplings of a solved run",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="output directory of a qrg solve run (holds its checkpoint)")
    p.add_argument("--times", default=None, help="comma-separated RG times in [0, T] (increasing)")
    p.add_argument("--n", type=int, default=4096, help="samples per time (default 4096)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the samples")
    p.add_argument("--check", action="store_true", help="also run the RG-consistency diagnostic")
    p.set_defaults(run=run)


def run(args) -> int:
    import jax

    from ..groundstate import load_run
    from ..groundstate.consistency import rg_consistency
    from ..groundstate.flow_report import flow_table, write_flow

    run_dir = pathlib.Path(args.run_dir)
    if not run_dir.is_dir():
        raise QRGInputError(f"run_dir {str(run_dir)!r} is not a directory")
    n = check_int("--n", args.n, minimum=40)
    seed = check_int("--seed", args.seed, minimum=0)
    state = load_run(run_dir)
    th = state.theory
    key = jax.random.PRNGKey(seed)
    print(f"qrg flow: d={th.d} N={th.N} m2={th.m2:g} lam={th.lam:g}, T={state.flow.T:g}, {n} samples per time",
          file=sys.stderr)
    points = flow_table(state, key, times=parse_list("--times", args.times, float, "RG times"), n=n)
    meta = {"theory": th.params(), "config": state.config.to_dict(), "n_samples": n, "seed": seed}
    if args.check:
        report = rg_consistency(state, jax.random.fold_in(key, 0xC0), n)
        meta["rg_consistency"] = report.to_json()
        print(report)
    for p in points:
        c = p["couplings"]
        fmt = lambda v: "n/a" if v is None or v["mean"] is None else f"{v['mean']:.5g} ± {v['err'] or 0:.2g}"  # noqa: E731
        print(f"t = {p['t']:.4g}: <φ²> = {fmt(p['phi2'])}, m_R = {fmt(p['m_R'])}, λ_R = {fmt(p['lambda_R'])}, "
              f"f = ({fmt(c['f_laplacian'])}, {fmt(c['f_phi'])}, {fmt(c['f_phi3'])})")
    paths = write_flow(run_dir, points, meta=meta, title=f"d={th.d} N={th.N} m²={th.m2:g} λ={th.lam:g}")
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0
