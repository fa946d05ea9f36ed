"""Try bad inputs and faults on the ``qrg`` command line and record what each does (docs/bad_inputs.md).

    python benchmarks/bad_inputs.py [--out docs/bad_inputs.md]

Every case runs ``qrg ...`` in a subprocess (a fresh interpreter, as a user would) and records the
exit status and the first line of the error. A case passes if it exits non-zero with a one-line
``qrg <command>: error: ...`` message naming the parameter (no traceback), or, for the faults that
are not input errors (Ctrl-C, a runaway learning rate), behaves as documented.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

TINY = ["--N", "4", "--steps", "3", "--batch", "8", "--n-steps", "4", "--eval-n-steps", "4", "--eval-batch", "64",
        "--laplacian", "none", "--systematic-batch", "0", "--consistency-batch", "0", "--no-progress"]


def cases(tmp: pathlib.Path):
    """(description, argv, expected word in the error or None for 'any clean error')."""
    f = tmp / "a_file"
    f.write_text("x")
    bad_toml = tmp / "bad.toml"
    bad_toml.write_text("N = [1, 2\n")
    latin = tmp / "latin.toml"
    latin.write_bytes(b"N = 16\n\xff = 1\n")
    unknown = tmp / "unknown.toml"
    unknown.write_text("bogus = 1\n")
    done = tmp / "done"
    yield "negative N", ["solve", "--N", "-4", *TINY[2:]], "N"
    yield "N = 0", ["solve", "--N", "0", *TINY[2:]], "N"
    yield "λ < 0", ["solve", "--lam", "-1", *TINY], "lam"
    yield "λ = 0 with m² ≤ 0", ["solve", "--lam", "0", "--m2", "-1", *TINY], "m2"
    yield "d = 0", ["solve", "--d", "0", *TINY], "d"
    yield "lattice spacing a = 0", ["solve", "--a", "0", *TINY], "a"
    yield "batch = 0", ["solve", *TINY, "--batch", "0"], "batch"
    yield "batch 1e11 (cannot fit in memory)", ["solve", *TINY, "--batch", "100000000000"], "batch"
    yield "3D lattice N = 1000 (cannot fit)", ["solve", "--d", "3", "--N", "1000", "--steps", "3", "--no-progress"], "N"
    yield "seed beyond 64 bits", ["solve", *TINY, "--seed", "99999999999999999999999"], "seed"
    yield "negative seed", ["solve", *TINY, "--seed", "-1"], "seed"
    yield "learning rate 0", ["solve", *TINY, "--lr", "0"], "lr"
    yield "lr_final > 1", ["solve", *TINY, "--lr-final", "2"], "lr_final"
    yield "refinement without the local energy", ["solve", *TINY, "--refine-steps", "5"], "laplacian"
    yield "refinement batch of 1", ["solve", *TINY, "--refine-steps", "5", "--refine-batch", "1"], "refine_batch"
    yield "refinement broadening < 1", ["solve", *TINY, "--refine-steps", "5", "--refine-broaden", "0.5"], "refine_broaden"
    yield "unknown model", ["solve", *TINY, "--model", "transformer"], "model"
    yield "unknown scheme", ["solve", *TINY, "--scheme", "wilson"], "scheme"
    yield "rk4 with adaptive steps", ["solve", *TINY, "--solver", "rk4", "--n-steps", "0"], "n_steps"
    yield "forward-mode adjoint for training", ["solve", *TINY, "--adjoint", "forward"], "adjoint"
    yield "eft model on 2 sites", ["solve", "--N", "2", *TINY[2:], "--model", "eft"], "4 sites"
    yield "batch not divisible by devices", ["solve", *TINY, "--devices", "64"], "devices"
    yield "config file: invalid TOML", ["solve", str(bad_toml), "--no-progress"], "TOML"
    yield "config file: not UTF-8", ["solve", str(latin), "--no-progress"], "UTF-8"
    yield "config file: unknown key", ["solve", str(unknown), "--no-progress"], "bogus"
    yield "config file: missing", ["solve", str(tmp / "nope.toml"), "--no-progress"], "nope.toml"
    yield "--out is an existing file", ["solve", *TINY, "--out", str(f)], "not a directory"
    yield "--out not writable", ["solve", *TINY, "--out", "/proc/qrg_out"], "not writable"
    yield "--out holds another run", ["solve", *TINY, "--out", str(done)], "another run"
    yield "--resume without --out", ["solve", *TINY, "--resume"], "--out"
    yield "--resume on an empty directory", ["solve", *TINY, "--out", str(tmp / "empty"), "--resume"], "checkpoint"
    yield "--resume with fewer steps", ["solve", *TINY[:3], "1", *TINY[4:], "--out", str(done), "--resume"], "steps"
    yield "--resume with another lr", ["solve", *TINY, "--lr", "0.5", "--out", str(done), "--resume"], "lr"
    yield "corrupted checkpoint", ["solve", *TINY, "--out", str(tmp / "corrupt"), "--resume"], "corrupted"
    yield "qrg flow on a file", ["flow", str(f)], "not a directory"
    yield "qrg flow: decreasing --times", ["flow", str(done), "--times", "0.5,0.1"], "times"
    yield "qrg flow: time beyond T", ["flow", str(done), "--times", "0,5"], "times"
    yield "qrg reference: ED too large", ["reference", "--method", "ed", "--N", "12", "--m2", "1", "--lam", "6"], None
    yield "qrg reference: unknown method", ["reference", "--method", "qmc", "--N", "4", "--m2", "1", "--lam", "6"], "method"
    yield "qrg reference: --out is a directory", ["reference", "--method", "exact", "--N", "4", "--m2", "1",
                                                  "--lam", "0", "--out", str(tmp)], "directory"
    yield "qrg sample: negative seed", ["sample", "--N", "4", "--m2", "1", "--lam", "0", "--seed", "-5", "--out",
                                        str(tmp / "s")], "seed"
    yield "qrg sample: --out is a file", ["sample", "--N", "4", "--m2", "1", "--lam", "0", "--out", str(f)], "directory"
    yield "qrg sample: unknown method", ["sample", "--N", "4", "--m2", "1", "--lam", "0", "--method", "gibbs",
                                         "--out", str(tmp / "s2")], "method"


def qrg(argv, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "qrg.cli", *argv], capture_output=True, text=True, timeout=timeout,
                          **kw)


def prepare(tmp: pathlib.Path) -> None:
    """A finished tiny run (for the resume / overwrite / flow cases) and a corrupted checkpoint."""
    qrg(["solve", *TINY, "--out", str(tmp / "done")], timeout=900).check_returncode()
    (tmp / "corrupt").mkdir()
    raw = bytearray((tmp / "done" / "checkpoint.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp / "corrupt" / "checkpoint.npz").write_bytes(bytes(raw))


def ctrl_c(tmp: pathlib.Path, name: str, wait_for_training: bool):
    """Ctrl-C during a run (once its first checkpoint exists: training has started) or during start-up
    (1 s after the header line, while the flow is built and compiled): one line, exit 130; in training
    a checkpoint of the last completed step."""
    out = tmp / name
    proc = subprocess.Popen([sys.executable, "-m", "qrg.cli", "solve", *TINY[:3], "100000", *TINY[4:], "--out",
                             str(out), "--checkpoint-every", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    if wait_for_training:
        while not (out / "checkpoint.npz").exists() and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(1.0)
        head = ""
    else:  # the set-up: after the header line (imports done), while the model is built and compiled
        head = proc.stderr.readline()
        time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = head + err
    return proc.returncode, err.strip().splitlines()[-1] if err.strip() else "", "Traceback" in err


def main(argv=None):
    # a job started with `&` from a non-interactive shell ignores SIGINT, and so would every qrg process it
    # starts (an ignored signal survives exec): take the default back so Ctrl-C reaches the children
    signal.signal(signal.SIGINT, signal.default_int_handler)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs/bad_inputs.md")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = pathlib.Path(d)
        prepare(tmp)
        for desc, argv_, word in cases(tmp):
            res = qrg(argv_)
            lines = res.stderr.strip().splitlines()
            last = lines[-1] if lines else ""
            clean = res.returncode == 2 and "Traceback" not in res.stderr and ": error: " in last
            ok = clean and (word is None or word.lower() in last.lower())
            rows.append((desc, " ".join(argv_).replace(d, "TMP"), res.returncode, last.replace(d, "TMP"), ok))
            print(f"{'ok ' if ok else 'BAD'} {desc}: exit {res.returncode}: {last[:150]}", flush=True)
        for name, training, desc, cmd in (
                ("ctrlc", True, "Ctrl-C during training", "solve ... (SIGINT 1 s after the first checkpoint)"),
                ("ctrlc0", False, "Ctrl-C during start-up", "solve ... (SIGINT 1 s after the header line)")):
            code, last, tb = ctrl_c(tmp, name, training)
            ok = code == 130 and not tb and ("checkpoint saved" in last if training else "interrupted" in last)
            rows.append((desc, cmd, code, last.replace(d, "TMP"), ok))
            print(f"{desc}: exit {code}: {last}", flush=True)
    lines = ["# Bad inputs and faults: what qrg does", "",
             "Generated by `python benchmarks/bad_inputs.py` (each case a fresh `qrg` process). A case is **ok** "
             "when it exits with status 2 and a one-line `qrg <command>: error: ...` naming the parameter (no "
             "traceback), or, for Ctrl-C, exits 130 with one line (after saving a checkpoint once training has "
             "started). Runaway learning rates are in the "
             "test suite (`tests/test_run_safety.py`): rolled back, and a run that cannot recover exits 3.", "",
             "| case | command | exit | message | ok |", "|---|---|---|---|---|"]
    for desc, cmd, code, msg, ok in rows:
        lines.append(f"| {desc} | `qrg {cmd[:80]}{'…' if len(cmd) > 80 else ''}` | {code} | "
                     f"{msg[:160].replace('|', '/')} | {'ok' if ok else '**not ok**'} |")
    lines.append("")
    lines.append(f"{sum(r[4] for r in rows)} of {len(rows)} cases ok; machine: {os.uname().machine}, "
                 f"{time.strftime('%Y-%m-%d')}.")
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
