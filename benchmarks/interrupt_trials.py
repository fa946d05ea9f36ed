"""Kill a solve at random moments (SIGKILL and Ctrl-C) and resume it: is the result bit-identical?

    python benchmarks/interrupt_trials.py [--trials 10] [--steps 120] [--out /tmp/qrg_interrupt]

A reference run goes straight through and records when each step completed; every trial starts
the same ``qrg solve``, sends SIGKILL or SIGINT (alternating trials) at a time drawn uniformly from
the reference's training window (first to last step; compilation takes longer than training here), then runs ``--resume`` until the run completes
(up to 3 interruptions per trial). SIGKILL trials checkpoint every step (a kill loses at most the
step in flight); SIGINT trials never checkpoint periodically, so only the Ctrl-C handler saves
(the last completed step). The trial passes if the final parameters (hash of the checkpoint's
arrays) and the reported energy equal the reference's exactly. Writes ``interrupt_trials.json``.
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


def timeline(out, steps) -> list[float]:
    """Run the reference (checkpoint every step) and record when each step's checkpoint appeared,
    in seconds from the start of the process: the window in which a kill lands inside training."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    proc = subprocess.Popen(solve_cmd(out, steps), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = {}
    while proc.poll() is None:
        k = checkpoint_step_safe(out) if (pathlib.Path(out) / "checkpoint.npz").exists() else 0
        seen.setdefault(k, time.time() - t0)
        time.sleep(0.05)
    if proc.returncode != 0:
        raise RuntimeError(f"reference solve failed: {proc.stderr.read().decode()[-2000:]}")
    return [seen[k] for k in sorted(seen) if k > 0]


def checkpoint_step_safe(out) -> int:
    try:
        return checkpoint_step(out)
    except (OSError, ValueError, KeyError):  # read while being replaced
        return 0


def trial(out, steps, sig, rng, window, max_kills=3) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    kills, resume = [], False
    every = 1 if sig == signal.SIGKILL else 10**6
    while True:
        proc = subprocess.Popen(solve_cmd(out, steps, resume, every), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if len(kills) < max_kills:
            delay = rng.uniform(*window)  # inside the training steps of the reference timeline
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(sig)
                proc.wait()
                kills.append({"signal": sig.name, "after_s": delay, "returncode": proc.returncode,
                              "checkpoint_step": checkpoint_step(out)})
                resume = checkpoint_step(out) > 0
                continue
        else:
            proc.wait()
        if proc.returncode == 0:
            break
        raise RuntimeError(f"solve failed: {proc.stderr.read().decode()[-2000:]}")
    result = json.loads((pathlib.Path(out) / "result.json").read_text())
    return {"kills": kills, "energy": result["energy"], "hash": params_hash(out)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="/tmp/qrg_interrupt")
    args = p.parse_args(argv)
    base = pathlib.Path(args.out)
    rng = random.Random(args.seed)
    times = timeline(base / "reference", args.steps)
    window = (times[0], times[-1])
    print(f"reference: step 1 checkpointed after {times[0]:.1f} s, step {len(times)} after {times[-1]:.1f} s",
          flush=True)
    ref = {"energy": json.loads((base / "reference" / "result.json").read_text())["energy"],
           "hash": params_hash(base / "reference"), "window_s": window}
    rows = []
    for i in range(args.trials):
        sig = signal.SIGKILL if i % 2 == 0 else signal.SIGINT
        t0 = time.time()
        r = trial(base / f"trial{i}", args.steps, sig, rng, window)
        r["identical"] = r["hash"] == ref["hash"] and r["energy"] == ref["energy"]
        r["wall_s"] = time.time() - t0
        rows.append(r)
        print(f"trial {i} ({sig.name}): {len(r['kills'])} interruptions at checkpoint steps "
              f"{[k['checkpoint_step'] for k in r['kills']]}, bit-identical: {r['identical']}", flush=True)
    out = {"reference": ref, "trials": rows, "all_identical": all(r["identical"] for r in rows),
           "date": time.strftime("%Y-%m-%d")}
    path = pathlib.Path(__file__).with_name("interrupt_trials.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"all bit-identical: {out['all_identical']}; wrote {path}")


if __name__ == "__main__":
    main()
