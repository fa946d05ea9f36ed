"""Are a default run's error bars honest? The hidden-style checks of issue 15, re-evaluated 64× larger.

    python benchmarks/honest_errors.py [--problems site2.4,site24,site60,chain8,chain8dw,chain16,chain16dw]
                                       [--factor 64] [--seed 0] [--runs DIR] [--out benchmarks/honest_errors.json]

For each problem: the default ``qrg solve`` (its evaluation as a user gets it: 4096 samples, E_loc on
1024, grown while the tails are not resolved), then ``factor``× larger evaluation of the SAME trained
parameters on fresh samples (``factor``·4096 energy samples, ``factor``·1024 E_loc samples, no growth).
Reported per problem: the default and the large evaluation's energy (reported estimator and E_loc) and
Var(E_loc) with their error bars, z = (default − large)/sqrt(σ_d² + σ_l²) (independent samples), and
z of each against the exact reference (ED for one site, DMRG for chains). A z beyond ±3 between the
two evaluations, or a default energy more than 2σ below the reference, is an error bar that lies.

Trained runs are kept in ``--runs`` (default a temporary directory) and reused when present, so the
script can be re-run for more problems. Machine and versions are written with the rows.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import tempfile
import time

PROBLEMS = {  # label: (d, N, m2, lam)
    "site2.4": (1, 1, 1.0, 2.4),
    "site24": (1, 1, 1.0, 24.0),
    "site60": (1, 1, 1.0, 60.0),
    "chain8": (1, 8, 1.0, 6.0),
    "chain8dw": (1, 8, -1.0, 6.0),
    "chain16": (1, 16, 1.0, 6.0),
    "chain16dw": (1, 16, -1.0, 6.0),
}


def _z(a, ea, b, eb):
    if a is None or b is None or ea is None or eb is None or ea + eb == 0:
        return None
    return (a - b) / math.sqrt(ea**2 + eb**2)


def _summary(stats, estimator):
    """The numbers of an evaluation (EnergyStats) that are compared."""
    est, loc = stats.estimates[estimator], stats.local
    return {"estimator": estimator, "energy": est.mean, "energy_err": est.err,
            "energy_local": None if loc is None else loc.mean, "energy_local_err": None if loc is None else loc.err,
            "variance": stats.variance, "variance_err": stats.variance_err,
            "n_samples": est.n_samples, "n_local": None if loc is None else loc.n_samples}


def _saved_summary(result: dict):
    """The same numbers from a run's result.json (what the user was shown)."""
    return {"estimator": result["estimator"], "energy": result["energy"], "energy_err": result["energy_err"],
            "energy_local": result.get("energy_local"), "energy_local_err": result.get("energy_local_err"),
            "variance": result.get("variance"), "variance_err": result.get("variance_err"),
            "n_samples": result.get("eval_samples"), "n_local": result.get("local_energy_samples")}


def reference(theory):
    from qrg.baselines import get_baseline

    name = "ed" if theory.lattice.n_sites <= 2 else "dmrg"
    ref = get_baseline(name).run(theory)
    return {"method": name, "energy": ref.energy, "energy_err": max(ref.energy_err, ref.error_estimate),
            "wall_time_s": ref.wall_time_s}


def run_problem(label, runs: pathlib.Path, factor: int, seed: int) -> dict:
    import jax

    import qrg
    from qrg.groundstate import load_run
    from qrg.groundstate.evaluation import evaluate

    d, N, m2, lam = PROBLEMS[label]
    theory = qrg.Phi4.from_params(d=d, N=N, m2=m2, lam=lam)
    run_dir = runs / f"{label}_seed{seed}"
    t0 = time.perf_counter()
    if not (run_dir / "result.json").exists():
        qrg.solve(theory, seed=seed, out=run_dir, force=True, progress=False)
    t_solve = time.perf_counter() - t0
    result = json.loads((run_dir / "result.json").read_text())
    default = _saved_summary(result)
    estimator = default["estimator"]
    state = load_run(run_dir)
    cfg = state.config
    t0 = time.perf_counter()
    big = evaluate(state.flow, state.params, theory, jax.random.PRNGKey(10_000 + seed), factor * cfg.eval_batch,
                   laplacian=cfg.laplacian, n_probes=cfg.n_probes, local_batch=factor * cfg.local_batch,
                   max_batch=0, estimator=estimator)
    t_big = time.perf_counter() - t0
    large = _summary(big, estimator)
    ref = reference(theory)
    row = {"problem": label, "d": d, "N": N, "m2": m2, "lam": lam, "seed": seed, "factor": factor,
           "default": default, "large": large, "reference": ref,
           "warnings": result.get("warnings", []), "solve_s": t_solve, "large_eval_s": t_big}
    row["z_energy"] = _z(default["energy"], default["energy_err"], large["energy"], large["energy_err"])
    row["z_energy_local"] = _z(default["energy_local"], default["energy_local_err"], large["energy_local"],
                               large["energy_local_err"])
    row["z_variance"] = _z(default["variance"], default["variance_err"], large["variance"], large["variance_err"])
    for which in ("default", "large"):
        row[f"z_ref_{which}"] = _z(row[which]["energy"], row[which]["energy_err"], ref["energy"], ref["energy_err"])
    return row


def _fmt(x, spec):
    return "—" if x is None else format(x, spec)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problems", default=",".join(PROBLEMS))
    p.add_argument("--factor", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=None, help="directory of the trained runs (reused when present)")
    p.add_argument("--out", default=str(pathlib.Path(__file__).with_name("honest_errors.json")))
    args = p.parse_args(argv)
    from qrg.bench.results import machine_info

    labels = [s for s in args.problems.split(",") if s]
    unknown = sorted(set(labels) - set(PROBLEMS))
    if unknown:
        p.error(f"unknown problems {unknown}; known: {sorted(PROBLEMS)}")
    runs = pathlib.Path(args.runs) if args.runs else pathlib.Path(tempfile.mkdtemp(prefix="qrg_honest_"))
    out = pathlib.Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {"rows": []}
    data["machine"] = machine_info()
    for label in labels:
        row = run_problem(label, runs, args.factor, args.seed)
        data["rows"] = [r for r in data["rows"] if (r["problem"], r["seed"]) != (label, args.seed)] + [row]
        out.write_text(json.dumps(data, indent=1))
        dflt, large = row["default"], row["large"]
        print(f"{label:10s} E {dflt['energy']:.8f} ± {dflt['energy_err']:.1e} | {row['factor']}x "
              f"{large['energy']:.8f} ± {large['energy_err']:.1e} | z {_fmt(row['z_energy'], '+.2f')} "
              f"(E_loc {_fmt(row['z_energy_local'], '+.2f')}) | Var {_fmt(dflt['variance'], '.2e')} ± "
              f"{_fmt(dflt['variance_err'], '.1e')} vs {_fmt(large['variance'], '.2e')} ± {_fmt(large['variance_err'], '.1e')}"
              f" z {_fmt(row['z_variance'], '+.2f')} | ref {row['reference']['energy']:.8f}: z "
              f"{_fmt(row['z_ref_default'], '+.2f')} / {_fmt(row['z_ref_large'], '+.2f')}", flush=True)


if __name__ == "__main__":
    main()
