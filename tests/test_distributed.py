"""Multi-process JAX (jax.distributed): two local CPU processes with a localhost coordinator.

Each process is a subprocess (jax.distributed must start before any JAX computation); gloo carries
the CPU collectives between them.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run_processes(argvs, timeout=900, env_extra=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu", **(env_extra or {}))
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for argv in argvs]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            outs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outs


def test_two_processes_shard_and_gather_the_batch():
    port = _free_port()
    outs = _run_processes([[sys.executable, str(HERE / "_distributed_worker.py"), str(i), "2", str(port), "sample"]
                           for i in range(2)], timeout=600)
    for rc, out, err in outs:
        assert rc == 0, err[-3000:]
    lines = [out.strip().splitlines()[-1].split() for _, out, _ in outs]
    assert [ln[0] for ln in lines] == ["OK", "OK"]
    assert [ln[1] for ln in lines] == ["True", "False"]  # process 0 is the main one
    assert lines[0][2] == lines[1][2]  # both processes hold the same gathered batch


@pytest.mark.slow
def test_cli_solve_on_two_processes_matches_two_devices_in_one_process(tmp_path):
    """`qrg solve` run by two processes gives one run (one writer, n_processes = 2) with the numbers of
    the same solve sharded over 2 devices of one process."""
    common = ["--N", "4", "--steps", "4", "--batch", "8", "--n-steps", "4", "--eval-n-steps", "4",
              "--eval-batch", "64", "--local-batch", "16", "--systematic-batch", "16", "--consistency-batch", "32",
              "--checkpoint-every", "2", "--no-progress"]
    port = _free_port()
    multi = tmp_path / "multi"
    outs = _run_processes([[sys.executable, "-m", "qrg.cli", "solve", *common, "--out", str(multi), "--coordinator",
                            f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)] for i in range(2)])
    for rc, _, err in outs:
        assert rc == 0, err[-3000:]
    assert "E =" in outs[0][1] or "energy" in outs[0][1]
    # process 1 computes silently (gloo's own connection message aside)
    assert [ln for ln in outs[1][1].splitlines() if not ln.startswith("[Gloo]")] == []
    single = tmp_path / "single"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    res = subprocess.run([sys.executable, "-m", "qrg.cli", "solve", *common, "--out", str(single)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = (json.loads((d / "result.json").read_text()) for d in (multi, single))
    assert a["n_processes"] == 2 and a["n_devices"] == 2 and b["n_processes"] == 1 and b["n_devices"] == 2
    # same global batch, same devices in the mesh: the numbers agree up to the float64 reduction order
    np.testing.assert_allclose(a["energy"], b["energy"], rtol=1e-9)
    np.testing.assert_allclose(a["energy_err"], b["energy_err"], rtol=1e-6)
    np.testing.assert_allclose(a["rg_consistency"]["chi2_dof"], b["rg_consistency"]["chi2_dof"], rtol=1e-6)
    assert sorted(p.name for p in multi.iterdir() if not p.name.startswith(".")) == \
        sorted(p.name for p in single.iterdir() if not p.name.startswith("."))
