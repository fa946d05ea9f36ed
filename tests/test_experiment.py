"""ExperimentConfig (the RG-learning experiment's settings): frozen, validated on construction,
explicit rules instead of silent rewrites; the sampler registry behind ``qrg sample``."""

import dataclasses

import pytest

from qrg._validation import QRGInputError
from qrg.cli import build_parser
from qrg.cli.rgflow import config_from_args
from qrg.euclidean import SAMPLERS, ExperimentConfig
from qrg.euclidean.experiment import relative_deviation
from qrg.euclidean.learning import default_net_scale


def test_defaults_are_the_papers_and_resolve_without_mutation():
    cfg = ExperimentConfig()
    assert (cfg.N, cfg.L, cfg.lam, cfg.m2, cfg.train_steps, cfg.batch) == (20, 1.0, 0.0017, (0.01, -2.0), 1000, 64)
    assert cfg.solver is None and cfg.ode_solver == "rk4"
    assert cfg.kernel_lr_scale is None and cfg.net_lr_scale == pytest.approx((1 / 20) ** 2 / 20)
    assert cfg.settings()["solver"] == "rk4" and cfg.settings()["kernel_lr_scale"] == cfg.net_lr_scale
    assert "m2" not in cfg.settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.N = 8


def test_adaptive_stepping_rule():
    cfg = ExperimentConfig(ode_steps=0)
    assert cfg.solver is None and cfg.ode_solver == "tsit5"
    assert ExperimentConfig(ode_steps=0, solver="dopri5").ode_solver == "dopri5"
    for solver in ("rk4", "euler"):
        with pytest.raises(QRGInputError, match="solver"):
            ExperimentConfig(ode_steps=0, solver=solver)


@pytest.mark.parametrize("field,value", [("N", 1), ("L", 0.0), ("lam", -1.0), ("m2", ()), ("n_t", 1), ("n_imh", 3),
                                         ("train_steps", -1), ("solver", "leapfrog"), ("integrator", "magnus"),
                                         ("kernel_lr_scale", 0.0), ("chains", 0)])
def test_bad_values_name_the_parameter(field, value):
    with pytest.raises(QRGInputError, match=field):
        ExperimentConfig(**{field: value})


def test_types_are_coerced():
    cfg = ExperimentConfig(N=8.0, m2=[1, -2], lam=0)
    assert isinstance(cfg.N, int) and cfg.m2 == (1.0, -2.0) and isinstance(cfg.lam, float)


def _cfg(*flags):
    return config_from_args(build_parser().parse_args(["rgflow", *flags, "--out", "unused"]))


def test_cli_flags_to_config():
    assert _cfg() == ExperimentConfig()
    quick = _cfg("--quick")
    assert quick == ExperimentConfig.quick() and quick.N == 8
    assert _cfg("--quick", "--ode-steps", "0").ode_solver == "tsit5"
    with pytest.raises(QRGInputError, match="solver"):
        _cfg("--ode-steps", "0", "--solver", "rk4")
    assert _cfg("--N", "10", "--L", "2", "--net-lr-scale", "a^d").net_lr_scale == pytest.approx(0.04)
    assert _cfg("--net-lr-scale", "a^d/N").net_lr_scale == pytest.approx(default_net_scale(20, 1.0))
    assert _cfg("--net-lr-scale", "0.5").kernel_lr_scale == 0.5


def test_relative_deviation():
    true = {"Z": {"mean": [1.0, 2.0, None], "err": [0.1, 0.1, None]}}
    learned = {"Z": {"mean": [1.1, 1.8, 3.0], "err": [0.1, 0.1, 0.1]}}
    dev = relative_deviation(learned, true, "Z")
    assert dev["n_t"] == 2
    assert dev["mean_relative_deviation"] == pytest.approx((0.1 + 0.1) / 2)
    assert dev["mean_abs_z"] == pytest.approx((0.1 / 0.1414213562 + 0.2 / 0.1414213562) / 2)


def test_sampler_registry():
    assert set(SAMPLERS.names()) == {"nuts", "hmc", "mala", "flow"}
    with pytest.raises(QRGInputError, match="--method"):
        SAMPLERS.check("--method", "gibbs")
