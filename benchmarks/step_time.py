"""Time per optimisation step of qrg's solver against lattice size (issue 3 target).

    python benchmarks/step_time.py [--steps 25] [--batch 64] [--lattices 1:8,2:16,3:8] [--out benchmarks/step_time.json]

For each lattice (chains N = 8, 16, 32, 64; squares 4×4, 8×8, 16×16; cubes 4×4×4, 8×8×8) runs ``qrg.solve`` with the
default model (Gaussian bridge + kernel network, RK4 with 16 steps, recursive adjoint) for a few
steps and reports the median wall time of one step after the first (compilation) step, and the
compile time. Physics is irrelevant here (m² = 1, λ = 6); the final evaluation is kept tiny.
Fits time per step ∝ sites^α per dimension and over all lattices (issue 15's target: α ≤ 1 up to
16×16 and 8×8×8).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np

import qrg

LATTICES = [(1, 8), (1, 16), (1, 32), (1, 64), (2, 4), (2, 8), (2, 16), (3, 4), (3, 8)]


def _lattices(text: str | None):
    if not text:
        return LATTICES
    out = []
    for item in text.split(","):
        d, _, n = item.partition(":")
        out.append((int(d), int(n)))
    return out


def _alpha(rows) -> float | None:
    """The exponent of a least-squares fit of log(median step time) against log(sites); None below 2 sizes."""
    if len({r["sites"] for r in rows}) < 2:
        return None
    sites = np.array([r["sites"] for r in rows], float)
    med = np.array([r["median_step_s"] for r in rows])
    return float(np.polyfit(np.log(sites), np.log(med), 1)[0])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lattices", default=None, help="d:N,d:N,... (default: all of LATTICES)")
    p.add_argument("--out", default="benchmarks/step_time.json")
    args = p.parse_args()
    load_start = os.getloadavg()
    rows = []
    for d, n in _lattices(args.lattices):
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
    alpha = {f"d={d}": _alpha([r for r in rows if r["d"] == d]) for d in sorted({r["d"] for r in rows})}
    alpha["all"] = _alpha(rows)
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                       "jax": jax.__version__, "qrg": qrg.__version__,
                       "load_average_start": load_start, "load_average_end": os.getloadavg()},
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows, "alpha": alpha}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    for k, v in alpha.items():
        if v is not None:
            print(f"time per step ∝ sites^{v:.2f} ({k})")


if __name__ == "__main__":
    main()
