"""``qrg sample`` end to end on tiny problems."""

import json

import numpy as np
import pytest

from qrg.cli import main

KEYS = ("phi2", "abs_m", "chi", "binder", "m_R", "Z", "lambda_R", "max_abs_phi", "xi")


def _run(tmp_path, *extra):
    out = tmp_path / "run"
    code = main(["sample", "--d", "1", "--N", "6", "--m2", "1.0", "--lam", "0", "--n-samples", "300", "--chains", "2",
                 "--n-warmup", "100", "--seed", "3", "--out", str(out), *extra])
    return code, out


@pytest.mark.parametrize("method", ["nuts", "mala"])
def test_sample_writes_result(tmp_path, method, capsys):
    code, out = _run(tmp_path, "--method", method)
    assert code == 0
    res = json.loads((out / "result.json").read_text())
    for k in KEYS:
        assert set(("mean", "err", "tau_int")) <= set(res[k]), k
    assert res["method"] == method and res["n_chains"] == 2 and res["n_samples"] == 300
    assert 0 < res["acceptance"] <= 1 and res["wall_time_s"] > 0
    samples = np.load(out / "samples.npz")["samples"]
    assert samples.shape == (2, 300, 6)
    # free chain: <φ²> = N^-1 Σ_k 1/(p̂²+1), within error bars
    exact_phi2 = float(np.mean(res["G2_exact"]))
    assert abs(res["phi2"]["mean"] - exact_phi2) < 5 * res["phi2"]["err"]
    assert abs(res["chi"]["mean"] - 1.0) < 5 * res["chi"]["err"]
    printed = json.loads(capsys.readouterr().out)
    assert printed["method"] == method


@pytest.mark.slow
def test_sample_flow_method(tmp_path):
    code, out = _run(tmp_path, "--method", "flow", "--train-steps", "100")
    assert code == 0
    res = json.loads((out / "result.json").read_text())
    assert 0 < res["ess_per_sample"] <= 1 and 0 < res["acceptance"] <= 1


def test_sample_bad_input(tmp_path, capsys):
    code, _ = _run(tmp_path, "--method", "gibbs")
    assert code == 2 and "--method" in capsys.readouterr().err
    code = main(["sample", "--d", "1", "--N", "4", "--m2", "-1", "--lam", "0", "--out", str(tmp_path / "x")])
    assert code == 2
