"""Re-evaluate trained `qrg solve` runs near the Z2 transition against a DMRG scan of the same line.

    python benchmarks/z2_point_eval.py RUN [RUN ...] --dmrg benchmarks/z2/dmrg16/scan.json \
        [--energy-samples 32768] [--samples 16384] [--out benchmarks/z2/points.json]

For every run directory (a finished `qrg solve --out RUN`; its iterate average if it kept one, ``--average``): the Stein-control-variate energy on
``--energy-samples`` fresh samples drawn with a key independent of the run's own evaluation (``--key``,
default 777: runs of the same seed share their evaluation draws, see docs/rg_flow.md; so do runs evaluated
with the same key, whose flows are alike: use several keys for a claim across runs), and ⟨M²⟩, U4, ⟨M⟩ and the
weight of the M > 0 peak on ``--samples`` further draws (``--moments-key``, default 3; `qrg.scan.magnetisation_observables`,
as `qrg scan` measures them);
each against the DMRG point of the same m² (Δ in units of qrg's error bar). Appends one JSON record per
run and pair of keys to ``--out`` (replacing a record of the same run directory and keys) and prints it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform

import jax
import numpy as np

from qrg.groundstate.evaluation import evaluate
from qrg.groundstate.solve import load_run
from qrg.optim.loop import rolled_back
from qrg.scan import magnetisation_observables


def evaluate_run(run: str, dmrg_scan: dict, n_energy: int, n_samples: int, key: int = 777, moments_key: int = 3) -> dict:
    state = load_run(run)
    theory = state.theory
    if (theory.lam, theory.lattice.N, theory.lattice.d) != (dmrg_scan["lam"], dmrg_scan["N"], dmrg_scan["d"]):
        raise SystemExit(f"{run} has lam = {theory.lam}, N = {theory.lattice.N}, d = {theory.lattice.d}; the DMRG "
                         f"scan has lam = {dmrg_scan['lam']}, N = {dmrg_scan['N']}, d = {dmrg_scan['d']}")
    ref = {pt["m2"]: pt for pt in dmrg_scan["points"]}.get(theory.m2)
    if ref is None:
        raise SystemExit(f"{run}: the DMRG scan has no point at m2 = {theory.m2}")
    stats = evaluate(state.flow, state.params, theory, jax.random.PRNGKey(key), n_energy, laplacian="none",
                     max_batch=0)
    cv = stats.estimates["cv"]
    obs = magnetisation_observables(np.asarray(state.sample(jax.random.PRNGKey(moments_key), n_samples)[0]), theory.lattice)
    result = json.loads((pathlib.Path(run) / "result.json").read_text())
    cfg = result["config"]
    sites = theory.lattice.n_sites
    return {
        "run": run, "m2": theory.m2, "lam": theory.lam, "N": theory.lattice.N, "d": theory.lattice.d,
        "settings": {k: cfg.get(k, 0.0) for k in ("steps", "seed", "lr", "T", "collective", "hidden", "pair", "beta_rg",
                                                  "batch", "average", "n_steps", "grad_clip")},
        "init_from": (result.get("init_from") or {}).get("run"),  # a size transfer's / warm start's source run
        "averaged_steps": result.get("averaged_steps", 0),  # the evaluated parameters: an average of these steps
        "energy": cv.mean, "energy_err": cv.err, "n_energy": n_energy, "energy_key": key,
        "energy_per_site_minus_dmrg": (cv.mean - ref["energy"]) / sites,
        "z_energy": (cv.mean - ref["energy"]) / cv.err,
        **{name: {**obs[name], "dmrg": ref[name]["mean"], "z": (obs[name]["mean"] - ref[name]["mean"]) / obs[name]["err"]}
           for name in ("M2", "U4")},
        "M": obs["M"], "peak_weight": obs["peak_weight"],
        "n_samples": n_samples, "moments_key": moments_key, "variance": result.get("variance"),
        "rg_consistency_chi2_dof": (result.get("rg_consistency") or {}).get("chi2_dof"),
        "train_time_s": result.get("train_time_s"),
        "status": result.get("status"), "roll_backs": len(rolled_back(result.get("events") or [])),
        "anchor_restores": sum("restored_step" in e for e in result.get("events") or []),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--dmrg", required=True, help="scan.json of `qrg scan --method dmrg` on the same line")
    p.add_argument("--energy-samples", type=int, default=32768)
    p.add_argument("--samples", type=int, default=16384)
    p.add_argument("--key", type=int, default=777, help="PRNG key of the energy samples")
    p.add_argument("--moments-key", type=int, default=3, help="PRNG key of the samples of <M^2>, U4, <M>")
    p.add_argument("--out", default="benchmarks/z2/points.json")
    args = p.parse_args(argv)
    dmrg_scan = json.loads(pathlib.Path(args.dmrg).read_text())
    out = pathlib.Path(args.out)
    data = json.loads(out.read_text()) if out.exists() else {"points": []}
    data["machine"] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "jax": jax.__version__}
    for run in args.runs:
        rec = evaluate_run(run, dmrg_scan, args.energy_samples, args.samples, args.key, args.moments_key)
        data["points"] = [r for r in data["points"] if (r["run"], r.get("energy_key", 777), r.get("moments_key", 3))
                          != (run, args.key, args.moments_key)] + [rec]
        print(json.dumps(rec), flush=True)
    out.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
