"""Kill a solve at random moments (SIGKILL and Ctrl-C) and resume it: is the result bit-identical?

    python benchmarks/interrupt_trials.py [--trials 10] [--steps 120] [--out /tmp/qrg_interrupt]

A reference run goes straight through; every trial starts the same ``qrg solve`` and sends
SIGKILL or SIGINT (alternating trials) at a random training step (watching the checkpoints, see
``trial``), then runs ``--resume`` until the run completes (up to 3 interruptions per trial).
SIGKILL trials checkpoint every step (a kill loses at most the step in flight); SIGINT trials
checkpoint every 7 steps and are interrupted a few steps after one, so the steps since then are
saved only by the Ctrl-C handler (the last completed step). The trial passes if the final
parameters (hash of the checkpoint's arrays) and the reported energy equal the reference's
exactly. Writes ``interrupt_trials.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np


def solve_cmd(out, steps, resume=False, every=1):
    cmd = [sys.executable, "-m", "qrg.cli", "solve", "--N", "8", "--m2", "1", "--lam", "6", "--steps", str(steps),
           "--batch", "16", "--eval-batch", "256", "--local-batch", "32", "--systematic-batch", "0",
           "--consistency-batch", "0", "--checkpoint-every", str(every), "--no-progress", "--out", str(out)]
    return cmd + (["--resume"] if resume else [])


def params_hash(out) -> str:
    with np.load(pathlib.Path(out) / "checkpoint.npz", allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes())
        n = len(meta["layout"]["params"])
        h = hashlib.sha256()
        for i in range(n):
            h.update(z[f"leaf_{i}"].tobytes())
        return h.hexdigest()[:16]


def checkpoint_step(out) -> int:
    try:
        with np.load(pathlib.Path(out) / "checkpoint.npz", allow_pickle=False) as z:
            return int(json.loads(z["meta"].tobytes())["step"])
    except FileNotFoundError:
        return 0


def checkpoint_step_safe(out) -> int:
    try:
        return checkpoint_step(out)
    except (OSError, ValueError, KeyError):  # read while being replaced
        return 0


def trial(out, steps, sig, rng, max_kills=3) -> dict:
    """One trial: up to ``max_kills`` interruptions, each at a random training step, then resume to the end.

    SIGKILL: checkpoints every step; the kill is sent as soon as the checkpoint of a random step k
    appears (so it lands in step k + 1 or in the next checkpoint write). SIGINT: checkpoints only
    every 7 steps; once the periodic checkpoint at or after k appears, Ctrl-C follows after a random
    0-30 ms (a few more steps), so only the Ctrl-C handler can save the steps since that checkpoint.
    """
    shutil.rmtree(out, ignore_errors=True)
    kills, resume = [], False
    every = 1 if sig == signal.SIGKILL else 7
    while True:
        proc = subprocess.Popen(solve_cmd(out, steps, resume, every), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        done = checkpoint_step_safe(out) if resume else 0
        if len(kills) < max_kills and done < steps - 8:
            target = rng.randint(done + 1, steps - 8)
            while proc.poll() is None and checkpoint_step_safe(out) < target:
                time.sleep(0.01)
            if proc.poll() is None:
                seen = checkpoint_step_safe(out)
                if sig == signal.SIGINT:  # a step takes ~5 ms without checkpoint writes (N = 8, batch 16)
                    time.sleep(rng.uniform(0.0, 0.03))
                proc.send_signal(sig)
                proc.wait()
                kills.append({"signal": sig.name, "target_step": target, "last_checkpoint_seen": seen,
                              "returncode": proc.returncode, "checkpoint_step": checkpoint_step_safe(out)})
                resume = True
                continue
        proc.wait()
        if proc.returncode == 0:
            break
        raise RuntimeError(f"solve failed: {proc.stderr.read().decode()[-2000:]}")
    result = json.loads((pathlib.Path(out) / "result.json").read_text())
    return {"kills": kills, "energy": result["energy"], "hash": params_hash(out)}


def main(argv=None):
    # a job started with `&` from a non-interactive shell ignores SIGINT, and so would every qrg process it
    # starts (an ignored signal survives exec): take the default back so Ctrl-C reaches the children
    signal.signal(signal.SIGINT, signal.default_int_handler)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="/tmp/qrg_interrupt")
    args = p.parse_args(argv)
    base = pathlib.Path(args.out)
    rng = random.Random(args.seed)
    shutil.rmtree(base / "reference", ignore_errors=True)
    subprocess.run(solve_cmd(base / "reference", args.steps), check=True, capture_output=True)
    ref = {"energy": json.loads((base / "reference" / "result.json").read_text())["energy"],
           "hash": params_hash(base / "reference")}
    rows = []
    for i in range(args.trials):
        sig = signal.SIGKILL if i % 2 == 0 else signal.SIGINT
        t0 = time.time()
        r = trial(base / f"trial{i}", args.steps, sig, rng)
        r["identical"] = r["hash"] == ref["hash"] and r["energy"] == ref["energy"]
        r["wall_s"] = time.time() - t0
        rows.append(r)
        print(f"trial {i} ({sig.name}): {len(r['kills'])} interruptions at checkpoint steps "
              f"{[k['checkpoint_step'] for k in r['kills']]} (last periodic checkpoint seen "
              f"{[k['last_checkpoint_seen'] for k in r['kills']]}), bit-identical: {r['identical']}", flush=True)
    out = {"reference": ref, "trials": rows, "all_identical": all(r["identical"] for r in rows),
           "date": time.strftime("%Y-%m-%d")}
    path = pathlib.Path(__file__).with_name("interrupt_trials.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"all bit-identical: {out['all_identical']}; wrote {path}")


if __name__ == "__main__":
    main()
