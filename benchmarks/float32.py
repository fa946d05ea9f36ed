"""What float32 costs: the default `qrg solve` problem trained and evaluated in float64 and in float32.

    python benchmarks/float32.py [--N 16] [--steps 600] [--seed 0]

GPUs run float32 much faster than float64; this measures, on the CPU, what the precision costs in
accuracy. Three rows, each in its own process (QRG_DISABLE_X64 must be set before JAX starts):

* f64      — train and evaluate in float64 (qrg's default);
* f32      — train and evaluate in float32 (``QRG_DISABLE_X64=1``);
* f32→f64  — the float32-trained parameters evaluated in float64 (``qrg.groundstate.load_run``), which
             separates the cost of training in float32 from the cost of evaluating in it.

The DMRG energy of the same chain is the reference. Writes ``benchmarks/float32.json`` (machine,
versions, rows) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

TRAIN = """
import json, sys, time
import jax, numpy as np, qrg
N, steps, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
res = qrg.solve(qrg.Phi4.chain(N, 1.0, 6.0), steps=steps, seed=seed, out=out, force=True, consistency_batch=0)
t = np.diff([r["time"] for r in res.history])[2:]
print("RESULT" + json.dumps({"dtype": str(jax.numpy.zeros(()).dtype), "energy": res.energy.mean, "err": res.energy.err,
                             "variance": res.stats.variance, "status": res.status, "median_step_s": float(np.median(t)),
                             "train_s": res.train_time_s, "wall_s": res.wall_time_s}))
"""

REEVALUATE = """
import json, sys
import jax, qrg
from qrg.groundstate import load_run
from qrg.groundstate.evaluation import evaluate
out = sys.argv[1]
gs = load_run(out)  # float32 checkpoint -> float64 parameters; the flow has the run's eval_n_steps
cfg = gs.config
key_eval = jax.random.split(jax.random.PRNGKey(cfg.seed), 3)[2]  # the solve's evaluation key
stats = evaluate(gs.flow, gs.params, gs.theory, key_eval, cfg.eval_batch, laplacian=cfg.laplacian,
                 n_probes=cfg.n_probes, local_batch=cfg.local_batch)
e = stats.estimates[cfg.estimator if cfg.estimator in stats.estimates else "cv"]
print("RESULT" + json.dumps({"dtype": str(jax.numpy.zeros(()).dtype), "energy": e.mean, "err": e.err,
                             "variance": stats.variance}))
"""


def _run(code, args, env_extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", **env_extra)
    if "QRG_DISABLE_X64" not in env_extra:
        env.pop("QRG_DISABLE_X64", None)
    t0 = time.time()
    res = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(res.stderr[-4000:])
    row = json.loads(res.stdout.split("RESULT", 1)[1])
    row["process_wall_s"] = time.time() - t0
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--N", type=int, default=16)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(pathlib.Path(__file__).with_name("float32.json")))
    args = p.parse_args(argv)
    import jax
    import numpy as np

    import qrg
    from qrg.baselines import DMRG

    t0 = time.time()
    ref = DMRG().run(qrg.Phi4.chain(args.N, 1.0, 6.0))
    dmrg = {"energy": ref.energy, "error_estimate": ref.error_estimate, "wall_s": time.time() - t0}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in (("f64", {}), ("f32", {"QRG_DISABLE_X64": "1"})):
            rows[name] = _run(TRAIN, (args.N, args.steps, args.seed, f"{tmp}/{name}"), env)
            print(name, json.dumps(rows[name]), flush=True)
        rows["f32->f64"] = _run(REEVALUATE, (f"{tmp}/f32",), {})
    for name, r in rows.items():
        r["dev_sigma"] = (r["energy"] - dmrg["energy"]) / r["err"]
        r["rel_error"] = abs(r["energy"] - dmrg["energy"]) / abs(dmrg["energy"])
        step = f", {r['median_step_s']:.3f} s/step" if "median_step_s" in r else ""
        print(f"{name:9s} E = {r['energy']:.7f} ± {r['err']:.1g} ({r['dev_sigma']:+.1f}σ vs DMRG), "
              f"Var(E_loc) {r['variance']:.2g}{step}", flush=True)
    versions = {"jax": jax.__version__, "numpy": np.__version__, "qrg": qrg.__version__}
    out = {"machine": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_average_at_end": os.getloadavg(), "date": time.strftime("%Y-%m-%d"), "versions": versions},
           "problem": {"d": 1, "N": args.N, "m2": 1.0, "lam": 6.0, "steps": args.steps, "seed": args.seed,
                       "settings": "qrg solve defaults, consistency_batch = 0"},
           "dmrg": dmrg, "rows": rows}
    pathlib.Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
