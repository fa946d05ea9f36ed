"""Honest error bars (issue 15): the variance with its error, the tail diagnostics, and the evaluation sized by them."""

import json
import math

import numpy as np
import pytest

from qrg import QRGInputError
from qrg.groundstate import SolveConfig
from qrg.groundstate.evaluation import _worth_growing, grow_until_resolved
from qrg.stats import MAX_VARIANCE_REL_ERR, Stats, statistics, tail_diagnostics


def _mixture(rng, n, p=0.005, scale=30.0):
    """A Gaussian plus a rare one-sided component (share p, exponential of mean ``scale`` σ): it carries 0.15 σ
    of the mean (1.5 error bars at n = 1024) and 90 % of the variance."""
    return rng.normal(size=n) + (rng.random(n) < p) * rng.exponential(scale, size=n)


HEAVY = {
    "t3": lambda rng, n: rng.standard_t(3, size=n),
    "lognormal2": lambda rng, n: rng.lognormal(0.0, 2.0, size=n),
    "mixture": _mixture,
}


# ---------------------------------------------------------------------------- the diagnostics
@pytest.mark.parametrize("n", [1024, 4096, 65536])
def test_gaussian_samples_are_resolved(n):
    rng = np.random.default_rng(n)
    for _ in range(10 if n < 65536 else 3):
        t = tail_diagnostics(rng.normal(3.0, 0.5, size=n))
        assert t.resolved, t.reason
        assert t.reason == "" and t.samples_needed == n
        assert t.n_tail == max(1, math.ceil(1e-3 * n))
        assert 0.005 < t.tail_share < 0.05 and t.tail_shift_sigma < 1.0
        assert t.variance_err == pytest.approx(0.25 * math.sqrt(2 / n), rel=0.15)  # σ² sqrt(2/n)


@pytest.mark.parametrize("name", sorted(HEAVY))
@pytest.mark.parametrize("n", [1024, 4096])
def test_heavy_tails_are_flagged(name, n):
    rng = np.random.default_rng(7)
    flags = [tail_diagnostics(HEAVY[name](rng, n)) for _ in range(50)]
    assert sum(not t.resolved for t in flags) >= 45, [t.reason for t in flags]  # calibrated rates 96-100 %
    bad = next(t for t in flags if not t.resolved)
    assert "Var known only to" in bad.reason and bad.samples_needed > n


def test_hill_tail_index_separates_light_from_heavy_tails_and_is_reported():
    """The Hill index of |x − x̄| (k = 20 on 4096 samples) is large for Gaussian samples, near 3 for Student t3
    (whose fourth moment is infinite), recovers a Pareto index, and is reported with the diagnostics from 1000
    samples on (NaN, null in JSON, below); the warning that names it: test_tiny_solve_writes_tails_and_grows."""
    from qrg.stats import hill_tail_index

    rng = np.random.default_rng(11)
    gauss = [hill_tail_index(rng.normal(size=4096)) for _ in range(20)]
    t3 = [hill_tail_index(rng.standard_t(3, size=4096)) for _ in range(20)]
    assert min(gauss) > 5.0 and 2.0 < np.median(t3) < 4.0 and max(t3) < 6.0, (gauss, t3)
    # exact for a Pareto tail: P(|d| > x) = x^-alpha, alpha = 2.5, on a large sample
    pareto = rng.pareto(2.5, size=200_000) + 1.0
    assert hill_tail_index(pareto, k=2000) == pytest.approx(2.5, rel=0.1)
    small = tail_diagnostics(rng.normal(size=999))
    assert math.isnan(small.tail_index) and small.to_dict()["tail_index"] is None
    x = rng.standard_t(3, size=4096)
    t = tail_diagnostics(x)
    assert t.tail_index == pytest.approx(hill_tail_index(x - x.mean())) and t.to_dict()["tail_index"] == t.tail_index


def test_one_sided_tail_moves_the_mean():
    rng = np.random.default_rng(3)
    x = rng.normal(size=4096)
    x[:3] += 40.0  # three far outliers on one side
    t = tail_diagnostics(x)
    assert not t.resolved and t.n_tail == 5 and t.tail_share > 0.5 and t.tail_shift_sigma > 0.5 * math.sqrt(5)
    assert "moves the mean" in t.reason
    rest = np.argsort(np.abs(x - x.mean()))[:-5]
    assert t.tail_shift_sigma == pytest.approx(abs(x.mean() - x[rest].mean()) / math.sqrt(x.var(ddof=1) / 4096))
    assert t.tail_share == pytest.approx(1 - np.sum((x[rest] - x.mean()) ** 2) / np.sum((x - x.mean()) ** 2))


@pytest.mark.parametrize("name,draw,n", [("gaussian", lambda r, n: r.normal(size=n), 1000),
                                         ("exponential", lambda r, n: r.exponential(size=n), 2000),
                                         ("student t5", lambda r, n: r.standard_t(5, size=n), 4000)])
def test_variance_err_matches_the_spread_of_the_sample_variance(name, draw, n):
    rng = np.random.default_rng(11)
    reps = 1000
    out = [tail_diagnostics(draw(rng, n)) for _ in range(reps)]
    var = np.array([t.variance for t in out])
    err = np.array([t.variance_err for t in out])
    spread = var.std(ddof=1)
    # the spread itself is known to ~ sqrt((κ₄(var) - 1)/(4 reps)): 2-8 % here; t5 has a heavy fourth moment,
    # so its typical variance_err (median) sits below the spread, as heavy tails make it
    assert err.mean() == pytest.approx(spread, rel=0.12 if name != "student t5" else 0.3), name
    assert np.median(err) <= 1.05 * spread


def test_constant_and_degenerate_samples():
    t = tail_diagnostics(np.full(10, 2.5))
    assert t.resolved and t.variance == 0 and t.tail_share == 0
    t = tail_diagnostics(14.0 + 1e-12 * np.random.default_rng(0).normal(size=100))  # rounding noise of an eigenstate
    assert t.resolved
    with pytest.raises(ValueError):
        tail_diagnostics([1.0])


def test_too_few_samples_for_the_tail_and_the_projection():
    rng = np.random.default_rng(5)
    t = tail_diagnostics(rng.normal(size=256))
    assert not t.resolved and "cannot contain" in t.reason
    assert t.samples_needed == 1000  # sqrt(2/256)/0.05 projects to ~800 < 1/fraction
    t = tail_diagnostics(rng.exponential(size=1024))  # κ = 9: Var known to sqrt(8/1024) = 9 %
    assert not t.resolved and 2000 < t.samples_needed < 6000
    assert t.samples_needed == math.ceil(1024 * (t.variance_err / (MAX_VARIANCE_REL_ERR * t.variance)) ** 2)


def test_stats_carry_tails_in_to_dict():
    from qrg.groundstate.estimators.base import finite_stats

    x = np.random.default_rng(1).normal(size=2000)
    st = finite_stats(x, "x", tails=True)
    assert st.variance_err == st.tails.variance_err and st.tails.variance == pytest.approx(st.variance)
    d = st.to_dict()
    assert d["variance_err"] == st.variance_err and d["tails"]["resolved"] is True
    plain = statistics(x)
    assert plain.tails is None and plain.variance_err is None and "tails" not in plain.to_dict()
    assert Stats(1.0, 0.1, 0.2).tails is None


# ---------------------------------------------------------------------------- the sizing loop
def _sampler(gen, seed=0):
    """draw(r, k) / local(r, samples) / estimate for synthetic samples: x, with 'local' values 2x."""
    rng = np.random.default_rng(seed)
    calls = []

    def draw(r, k):
        calls.append(("draw", r, k))
        return (gen(rng, k),)

    def local(r, samples):
        calls.append(("local", r, samples[0].shape[0]))
        return 2.0 * np.asarray(samples[0])

    def estimate(samples, values):
        from qrg.groundstate.estimators.base import finite_stats

        e = finite_stats(np.asarray(samples[0]), "x", tails=True)
        loc = None if values is None else finite_stats(np.asarray(values), "loc", tails=True)
        # the local values belong to the first len(values) samples
        assert values is None or np.allclose(np.asarray(values), 2.0 * np.asarray(samples[0])[:len(values)])
        return e, loc

    return draw, local, estimate, calls


def test_growth_stops_at_the_cap_on_heavy_tails():
    draw, local, estimate, calls = _sampler(lambda r, k: r.lognormal(0.0, 2.0, size=k))

    def needs(stats):  # every unresolved tail asks for more (no projection)
        return tuple(st is not None and not st.tails.resolved for st in stats)

    (e, loc), rounds, n, m = grow_until_resolved(draw, local, estimate, needs, 1024, 256, 8192, 2048)
    assert (n, m, rounds) == (8192, 2048, 3)
    assert e.n_samples == 8192 and loc.n_samples == 2048 and not e.tails.resolved
    assert [c for c in calls if c[0] == "draw"] == [("draw", 0, 1024), ("draw", 1, 1024), ("draw", 2, 2048),
                                                    ("draw", 3, 4096)]
    assert [c for c in calls if c[0] == "local"] == [("local", 0, 256), ("local", 1, 256), ("local", 2, 512),
                                                     ("local", 3, 1024)]


def test_growth_resolves_a_light_tail_and_stops():
    draw, local, estimate, calls = _sampler(lambda r, k: r.exponential(size=k), seed=2)

    def needs(stats):
        return tuple(_worth_growing(st, cap) for st, cap in zip(stats, (65536, 65536)))

    (e, loc), rounds, n, m = grow_until_resolved(draw, local, estimate, needs, 512, 512, 65536, 65536)
    assert e.tails.resolved and loc.tails.resolved
    assert 1 <= rounds <= 5 and n == m == 512 * 2**rounds < 65536
    # the local values need fresh samples only when all drawn ones have them
    assert all(c[1] > 0 for c in calls[2:])


def test_growth_only_where_the_cap_can_resolve_it():
    rng = np.random.default_rng(4)
    from qrg.groundstate.estimators.base import finite_stats

    st = finite_stats(_mixture(rng, 1024), "x", tails=True)  # κ ~ 1000: needs ~1e5 samples
    assert not st.tails.resolved and st.tails.samples_needed > 16384
    assert not _worth_growing(st, 16384) and _worth_growing(st, 10**9)
    st = finite_stats(rng.exponential(size=1024), "x", tails=True)
    assert _worth_growing(st, 16384) and not _worth_growing(st, 1024)
    assert not _worth_growing(None, 16384) and not _worth_growing(finite_stats(rng.normal(size=2048), "x"), 4096)


def test_no_growth_without_a_cap_above_the_batch():
    draw, local, estimate, calls = _sampler(lambda r, k: r.lognormal(0.0, 2.0, size=k))
    (e, loc), rounds, n, m = grow_until_resolved(draw, local, estimate, lambda s: (True, True), 1024, 0, 1024, 0)
    assert (rounds, n, m, loc) == (0, 1024, 0, None) and calls == [("draw", 0, 1024)]


# ---------------------------------------------------------------------------- config
def test_eval_max_batch_config_field(tmp_path):
    assert SolveConfig().eval_max_batch == 0 and SolveConfig().eval_cap == 8192
    assert SolveConfig(eval_batch=128).eval_cap == 256 and SolveConfig(eval_max_batch=100).eval_cap == 100
    assert SolveConfig(eval_max_batch=0).eval_max_batch == 0
    for bad, match in ((-1, "eval_max_batch must be an integer >= 0"), (2.5, "eval_max_batch must be an integer"),
                       ("many", "eval_max_batch must be an integer")):
        with pytest.raises(QRGInputError, match=match):
            SolveConfig(eval_max_batch=bad)
    path = tmp_path / "c.toml"
    path.write_text("[evaluation]\neval_max_batch = 2048\n")
    assert SolveConfig.from_toml(path).eval_max_batch == 2048
    path.write_text("eval_max_batch = -4\n")
    with pytest.raises(QRGInputError, match="eval_max_batch"):
        SolveConfig.from_toml(path)
    old = {k: v for k, v in SolveConfig().to_dict().items() if k != "eval_max_batch"}  # a config from before
    assert SolveConfig.from_dict(old).eval_max_batch == 0


def test_eval_max_batch_memory_check_names_the_field():
    from qrg.groundstate.solve import check_memory

    check_memory(SolveConfig(eval_max_batch=16384), available=2**34)
    with pytest.raises(QRGInputError, match="eval_max_batch = 1000000000"):
        check_memory(SolveConfig(eval_max_batch=10**9), available=2**34)
    with pytest.raises(QRGInputError, match=r"eval_max_batch = 0 \(2·eval_batch = 600000000\)"):
        check_memory(SolveConfig(eval_batch=3 * 10**8), available=2**37)  # eval_batch fits, twice it does not


# ---------------------------------------------------------------------------- a tiny solve
TINY = dict(N=4, lam=0.0, model="gaussian", steps=3, batch=8, n_steps=4, eval_n_steps=4, eval_batch=256,
            local_batch=64, lr=0.02, systematic_batch=0, consistency_batch=0, checkpoint_every=0)


def test_resume_of_a_checkpoint_without_eval_max_batch(tmp_path, monkeypatch):
    from qrg.groundstate import load_run, solve
    from qrg.optim import checkpoint as ckpt

    # the checkpoint of a run made before eval_max_batch existed: its config has no such key
    original = SolveConfig.to_dict
    monkeypatch.setattr(SolveConfig, "to_dict",
                        lambda self: {k: v for k, v in original(self).items() if k != "eval_max_batch"})
    fast = {**TINY, "laplacian": "none", "eval_batch": 64, "eval_max_batch": 0}
    solve(out=tmp_path, **{**fast, "steps": 2})
    monkeypatch.undo()
    assert "eval_max_batch" not in ckpt.read_meta(tmp_path)["config"]
    assert load_run(tmp_path).config.eval_max_batch == 0  # missing keys are the defaults
    res = solve(out=tmp_path, resume=True, **fast)
    assert res.steps_done == 3 and res.stats.sizing.rounds == 0 and res.stats.ibp.n_samples == 64
    assert json.loads((tmp_path / "result.json").read_text())["config"]["eval_max_batch"] == 0


def test_tiny_solve_writes_tails_and_grows(tmp_path):
    from qrg.groundstate import solve

    res = solve(out=tmp_path, eval_max_batch=8192, **TINY)
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["config"]["eval_max_batch"] == 8192
    assert data["variance_err"] == res.variance_err > 0
    assert set(data["tails"]) == {"ibp", "cv", "local"}
    for block in data["tails"].values():
        assert {"variance", "variance_err", "tail_share", "tail_shift_sigma", "resolved", "tail_index"} <= set(block)
    sizing = data["eval_sizing"]
    # 64 E_loc samples cannot contain a 0.1 % tail: the evaluation grew, E_loc by the factor 8192 / 256
    assert data["eval_grown"] is True and sizing["rounds"] >= 1
    assert data["eval_samples"] == sizing["n_samples"] and data["local_energy_samples"] == sizing["n_local"] >= 1024
    assert sizing["max_batch"] == 8192 and sizing["max_local"] == 2048
    assert isinstance(data["warnings"], list) and data["warnings"] == res.warnings
    unresolved = [k for k in ("cv", "local") if not data["tails"][k]["resolved"]]
    assert len(data["warnings"]) == len(unresolved)
    for name, warning in zip(unresolved, data["warnings"]):  # a tail index below 4 is named in the warning
        index = data["tails"][name]["tail_index"]  # None (not NaN: result.json is strict JSON) below 1000 samples
        assert ("tail index is ~" in warning) == (index is not None and index < 4), warning
    line = str(res)
    assert f"Var(E_loc) = {res.variance:.3g} ± {res.variance_err:.2g}" in line
    assert line.count("WARNING:") == len(unresolved)


def test_a_large_ode_systematic_is_a_warning(tmp_path):
    import dataclasses

    from qrg.groundstate import solve
    from qrg.groundstate.evaluation import DiscretisationCheck
    from qrg.groundstate.result import SYSTEMATIC_WARN
    from qrg.stats import Stats

    res = solve(out=tmp_path, **{**TINY, "laplacian": "none", "eval_batch": 64, "eval_max_batch": 0,
                                 "systematic_batch": 64})
    assert res.discretisation is not None
    base = [w for w in res.warnings if "ODE discretisation" not in w]
    err = res.energy.err

    def with_delta(mean):  # a step-doubling difference of this mean on the reported estimator
        d = DiscretisationCheck(n_steps=8, n_steps_fine=16, order=4,
                                delta={res.estimator: Stats(mean=mean, err=1e-3 * err, variance=0.0, n_samples=64)})
        return dataclasses.replace(res, discretisation=d)

    factor = with_delta(1.0).discretisation.richardson  # bias = factor · delta
    small = with_delta(0.9 * SYSTEMATIC_WARN * err / factor)
    assert small.warnings == base
    large = with_delta(-2.0 * SYSTEMATIC_WARN * err / factor)
    (extra,) = [w for w in large.warnings if w not in base]
    assert "ODE discretisation systematic" in extra and "eval_n_steps = 8" in extra and "8 vs 16 steps" in extra
    assert f"{large.systematic / err:.3g}× the statistical error" in extra
    assert str(large).count("WARNING:") == len(base) + 1
