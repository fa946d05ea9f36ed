"""Strong scaling of a solve over (forced host) devices: time per step at a fixed global batch.

    python benchmarks/strong_scaling.py [--devices 1,2,4] [--N 32] [--batch 64] [--steps 40]

Each device count runs in its own process with ``XLA_FLAGS=--xla_force_host_platform_device_count=D``
(and the batch sharded over all D devices, parameters replicated). On a CPU the forced devices
share the physical cores, so the speed-up is bounded by the core count; the same code shards over
GPUs. Writes ``benchmarks/strong_scaling.json`` with the machine, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

WORKER = """
import json, sys, time
import jax, numpy as np, qrg
N, batch, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
res = qrg.solve(qrg.Phi4.chain(N, 1.0, 6.0), steps=steps, batch=batch, eval_batch=256, local_batch=32,
                systematic_batch=0, consistency_batch=0, checkpoint_every=0)
t = np.diff([r["time"] for r in res.history])[2:]  # steady state: skip the compile of step 1
print("RESULT" + json.dumps({"devices": res.n_devices, "median_s": float(np.median(t)), "min_s": float(np.min(t)),
                             "energy": res.energy.mean, "err": res.energy.err}))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", default="1,2,4")
    p.add_argument("--N", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--out", default=str(pathlib.Path(__file__).with_name("strong_scaling.json")))
    args = p.parse_args(argv)
    rows = []
    for d in (int(x) for x in args.devices.split(",")):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={d}", JAX_PLATFORMS="cpu")
        t0 = time.time()
        res = subprocess.run([sys.executable, "-c", WORKER, str(args.N), str(args.batch), str(args.steps)],
                             capture_output=True, text=True, env=env, check=True)
        row = json.loads(res.stdout.split("RESULT", 1)[1])
        row["wall_s"] = time.time() - t0
        rows.append(row)
        print(f"devices {d}: {row['median_s']:.4f} s/step (min {row['min_s']:.4f}), E = {row['energy']:.6f} ± "
              f"{row['err']:.1g}", flush=True)
    base = rows[0]["median_s"]
    for r in rows:
        r["speedup"] = base / r["median_s"]
    load = os.getloadavg()
    out = {"machine": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_average_at_end": load, "date": time.strftime("%Y-%m-%d")},
           "problem": {"d": 1, "N": args.N, "m2": 1.0, "lam": 6.0, "batch": args.batch, "steps": args.steps},
           "rows": rows}
    pathlib.Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
