"""``qrg rgflow`` (the Section 7 experiment) end to end at tiny sizes, and its input errors."""

import json

import numpy as np
import pytest

from qrg.cli import main

TINY = ["--N", "4", "--L", "2", "--lam", "0.5", "--m2", "0.5", "--chains", "2", "--n-warmup", "60", "--n-samples",
        "60", "--n-t", "3", "--batch", "8", "--n-eval", "16", "--n-imh", "16", "--ode-steps", "2", "--seed", "1"]


def test_rgflow_true_flow_only(tmp_path, capsys):
    """--train-steps 0: NUTS and the true Carosso-M / Polchinski-M flows (Figure 6) only."""
    out = tmp_path / "run"
    assert main(["rgflow", *TINY, "--train-steps", "0", "--out", str(out)]) == 0
    rep = json.loads((out / "section7_m2_0.5.json").read_text())
    assert (out / "fig6_m2_0.5.png").stat().st_size > 0 and not (out / "fig78_m2_0.5.png").exists()
    assert rep["params"]["N"] == 4 and rep["params"]["a"] == pytest.approx(0.5)
    true = rep["true_flow"]
    assert true["t"] == pytest.approx([0.0, 0.5, 1.0])
    # the Carosso-M flow with M = 1 drives the field towards N(0, σ²/(2κ)): ⟨φ²⟩ decreases for this p_0
    phi2 = np.array(true["observables"]["phi2"]["mean"])
    assert np.all(np.isfinite(phi2)) and phi2[-1] < phi2[0]
    # at t = 0 the true flow's estimators are the NUTS ones (the same samples)
    assert true["observables"]["m_R"]["mean"][0] == pytest.approx(rep["nuts"]["observables"]["m_R"]["mean"])
    r_t = rep["figure6"]["polchinski"]["r_t"]
    assert r_t[0] == pytest.approx(1.0) and r_t[-1] == pytest.approx(0.0, abs=1e-6)
    summary = json.loads(capsys.readouterr().out)
    assert summary["0.5"]["learned"] == {} and summary["0.5"]["nuts_tau_int_abs_m"] >= 0.5


@pytest.mark.slow
def test_rgflow_with_learned_flows(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["rgflow", *TINY, "--train-steps", "3", "--out", str(out)]) == 0
    assert (out / "fig78_m2_0.5.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())["0.5"]["learned"]
    assert set(summary) == {"rg_matching", "reverse_kl"}
    for v in summary.values():
        assert 0 < v["acceptance"] <= 1 and 0 < v["ess_per_sample"] <= 1 and v["train_time_s"] > 0
        assert all(x is None or x >= 0 for x in v["mean_relative_deviation"].values())
    rep = json.loads((out / "section7_m2_0.5.json").read_text())
    assert rep["settings"]["kernel_lr_scale"] == pytest.approx(0.25 / 4)  # a^d / N = (2/4)^2 / 4
    for name in ("rg_matching", "reverse_kl"):
        assert len(rep["learned"][name]["observables"]["m_R"]["mean"]) == 3


@pytest.mark.parametrize("extra,flag", [
    (["--N", "0"], "--N"),
    (["--L", "-1"], "--L"),
    (["--integrator", "magnus"], "integrator"),
    (["--solver", "leapfrog"], "solver"),
    (["--net-lr-scale", "big"], "--net-lr-scale"),
    (["--train-steps", "-1"], "train_steps"),
    (["--n-t", "1"], "n_t"),
])
def test_rgflow_bad_input(tmp_path, capsys, extra, flag):
    code = main(["rgflow", *TINY, *extra, "--out", str(tmp_path / "x")])
    assert code == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
