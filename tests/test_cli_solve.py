"""``qrg solve`` end to end, and the TOML configuration it reads."""

import csv
import json

import pytest

from qrg import QRGInputError
from qrg.cli import main
from qrg.groundstate import SolveConfig

TINY = ["--N", "4", "--lam", "0", "--model", "gaussian", "--steps", "4", "--batch", "8", "--n-steps", "4",
        "--eval-n-steps", "8", "--eval-batch", "64", "--no-progress"]


def test_cli_tiny_run_writes_result_history_plot(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["solve", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "E = " in printed and "±" in printed
    data = json.loads((out / "result.json").read_text())
    for key in ("energy", "energy_err", "energy_per_site", "variance", "phi2", "abs_m", "steps", "wall_time_s",
                "n_params", "config", "reference"):
        assert key in data, key
    assert data["steps"] == 4
    assert data["config"]["N"] == 4 and data["config"]["model"] == "gaussian"
    assert data["reference"] == pytest.approx(sum(  # exact E0 = ½ Σ_k ω_k for the 4-site chain
        0.5 * (4 * s**2 + 1.0) ** 0.5 for s in (0.0, 2**-0.5, 1.0, 2**-0.5)))
    assert data["n_params"] == 3
    # variational: not below the exact energy beyond the error bar
    assert data["energy"] > data["reference"] - 5 * data["energy_err"]
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3]
    assert {"energy", "energy_err", "grad_norm", "lr", "time"} <= set(rows[0])
    assert (out / "energy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "checkpoint.npz").is_file()


def test_cli_config_file_and_flag_override(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[theory]\nN = 6\nm2 = 2.0\nlam = 1.5\n[optimization]\nsteps = 11\nbatch = 32\nlr = 0.003\n')
    assert main(["solve", str(cfg), "--N", "8", "--print-config"]) == 0
    printed = capsys.readouterr().out
    resolved = SolveConfig.from_dict(__import__("tomllib").loads(printed))
    assert (resolved.N, resolved.m2, resolved.lam, resolved.steps, resolved.batch, resolved.lr) == (8, 2.0, 1.5, 11, 32,
                                                                                                     0.003)
    assert resolved.model == "default"


def test_cli_bad_input_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("N = 4\nstepz = 3\n")
    assert main(["solve", str(bad)]) == 2
    assert "stepz" in capsys.readouterr().err
    assert main(["solve", "--lam", "0", "--m2", "-1", "--print-config"]) == 2
    assert "m2" in capsys.readouterr().err
    assert main(["solve", "--resume", "--steps", "1"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["solve", "--resume", "--out", str(tmp_path / "nothing"), *TINY]) == 2
    assert "no checkpoint" in capsys.readouterr().err


# ---------------------------------------------------------------------------- config validation
def test_config_defaults_are_the_default_problem():
    cfg = SolveConfig()
    assert (cfg.d, cfg.N, cfg.a, cfg.m2, cfg.lam) == (1, 16, 1.0, 1.0, 6.0)
    assert cfg.theory().lattice.n_sites == 16


def test_config_toml_round_trip(tmp_path):
    for cfg in (SolveConfig(N=8, lam=0.0, model="gaussian", lr=3e-3, beta_rg=0.5), SolveConfig(collective=True)):
        path = tmp_path / "x.toml"
        path.write_text(cfg.to_toml())
        assert SolveConfig.from_toml(path) == cfg


def test_collective_option_builds_the_mean_field_channel():
    from qrg.groundstate.ansatz import build_flow

    for on in (False, True):
        cfg = SolveConfig(N=4, m2=-0.7, lam=2.4, collective=on, growth=not on, pair=on, hidden=2 * on)
        kernel = build_flow(cfg.theory(), cfg).model.members[1]
        assert kernel.collective is on and kernel.growth is (not on) and kernel.pair is on and kernel.hidden == 2 * on
        assert kernel.n_features == 2 + kernel.n_sin + int(not on)
    for option, value in (("collective", True), ("pair", True), ("hidden", 4)):
        with pytest.raises(QRGInputError, match=option):
            SolveConfig(model="gaussian", **{option: value})
    with pytest.raises(QRGInputError, match="hidden"):
        SolveConfig(hidden=-1)
    assert SolveConfig().growth is True  # default on; ignored by models without a kernel network
    assert build_flow(SolveConfig(N=4, model="gaussian").theory(), SolveConfig(N=4, model="gaussian")).model.lattice.N == 4
    from qrg.cli import build_parser

    args = build_parser().parse_args(["solve", "--growth", "--pair", "--hidden", "8", "--rg-batch", "256"])
    assert (args.growth, args.pair, args.hidden, args.rg_batch) == (True, True, 8, 256)
    assert SolveConfig().pair is False


@pytest.mark.parametrize("text,name", [
    ("N = 4\nfoo = 1\n", "foo"),
    ("N = 'four'\n", "N"),
    ("N = 4.5\n", "N"),
    ("lr = 'fast'\n", "lr"),
    ("steps = true\n", "steps"),
    ("collective = 1\n", "collective"),
    ("growth = 'yes'\n", "growth"),
    ("model = 3\n", "model"),
    ("model = 'transformer'\n", "model"),
    ("batch = 0\n", "batch"),
    ("lr = -1.0\n", "lr"),
    ("solver = 'rk4'\nn_steps = 0\n", "n_steps"),
    ("[theory]\nN = 4\n[optimization]\nN = 5\n", "twice"),
    ("N = [\n", "TOML"),
])
def test_config_validation_names_the_key(tmp_path, text, name):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(QRGInputError, match=name):
        SolveConfig.from_toml(path)


def test_config_replace_ignores_unset_and_rejects_unknown():
    cfg = SolveConfig().replace(N=None, steps=7)
    assert cfg.N == 16 and cfg.steps == 7
    with pytest.raises(QRGInputError, match="bogus"):
        SolveConfig().replace(bogus=1)
    with pytest.raises(QRGInputError, match="cannot read"):
        SolveConfig.from_toml("/nonexistent/file.toml")


def test_a_run_from_before_the_growth_feature_still_loads_and_resumes(tmp_path, monkeypatch):
    """Checkpoints written before ``growth`` existed were trained without the feature: they load as
    growth = false (LEGACY), a resume with today's default is refused naming the key, --no-growth resumes."""
    from qrg.groundstate import load_run, solve
    from qrg.optim import checkpoint as ckpt

    tiny = dict(N=4, m2=1.0, lam=1.0, steps=2, batch=8, n_steps=2, eval_n_steps=2, eval_batch=64, laplacian="none",
                lr=0.01, systematic_batch=0, consistency_batch=0, checkpoint_every=0, beta_rg=0.0)
    original = SolveConfig.to_dict
    monkeypatch.setattr(SolveConfig, "to_dict", lambda self: {k: v for k, v in original(self).items() if k != "growth"})
    solve(out=tmp_path, growth=False, **tiny)
    monkeypatch.undo()
    assert "growth" not in ckpt.read_meta(tmp_path)["config"]
    state = load_run(tmp_path)
    assert state.config.growth is False and state.flow.model.members[1].growth is False
    with pytest.raises(QRGInputError, match="growth"):
        solve(out=tmp_path, resume=True, **{**tiny, "steps": 3})
    res = solve(out=tmp_path, resume=True, growth=False, **{**tiny, "steps": 3})
    assert res.steps_done == 3
