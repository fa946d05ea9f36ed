"""Time per optimisation step of qrg's solver against lattice size (issue 3 target).

    python benchmarks/step_time.py [--steps 25] [--batch 64] [--out benchmarks/step_time.json]

For each lattice (chains N = 8, 16, 32, 64; squares 4×4, 8×8, 16×16) runs ``qrg.solve`` with the
default model (Gaussian bridge + kernel network, RK4 with 16 steps, recursive adjoint) for a few
steps and reports the median wall time of one step after the first (compilation) step, and the
compile time. Physics is irrelevant here (m² = 1, λ = 6); the final evaluation is kept tiny.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

import qrg

LATTICES = [(1, 8), (1, 16), (1, 32), (1, 64), (2, 4), (2, 8), (2, 16)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", default="benchmarks/step_time.json")
    args = p.parse_args()
    rows = []
    for d, n in LATTICES:
        theory = qrg.Phi4(qrg.Lattice(d, n), 1.0, 6.0)
        t0 = time.perf_counter()
        res = qrg.solve(theory, steps=args.steps, batch=args.batch, eval_batch=64, local_batch=64,
                        laplacian="none", checkpoint_every=0, seed=0)
        total = time.perf_counter() - t0
        times = np.array([h["time"] for h in res.history])
        per_step = np.diff(times)
        row = {"d": d, "N": n, "sites": n**d, "batch": args.batch, "steps": args.steps,
               "first_step_s": float(times[0]), "median_step_s": float(np.median(per_step)),
               "min_step_s": float(np.min(per_step)), "total_s": total, "n_params": res.n_params}
        rows.append(row)
        print(json.dumps(row), flush=True)
    sites = np.array([r["sites"] for r in rows], float)
    med = np.array([r["median_step_s"] for r in rows])
    chains = np.array([r["d"] == 1 for r in rows])
    alpha = float(np.polyfit(np.log(sites[chains]), np.log(med[chains]), 1)[0])
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": qrg.__version__},
           "rows": rows, "alpha_chains": alpha}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"time per step ∝ sites^{alpha:.2f} (chains)")


if __name__ == "__main__":
    main()
