"""RG-flowed ground states Ψ_t (paper 6.3): consistency diagnostic, exact references, running couplings."""

import json
import math

import jax
import numpy as np
import pytest

import qrg
from qrg.baselines.grid import grid_ground_state, hellinger
from qrg.flow import make_flow
from qrg.groundstate import GroundState, SolveConfig, load_run, solve
from qrg.groundstate.consistency import chi2_test, rg_consistency
from qrg.groundstate.flowed import flowed_state, running_couplings, shell_phat2

K_SIGMA = 5.0


def exact_free_state(N=6, m2=1.0, n_steps=16, model="gaussian", **options):
    theory = qrg.Phi4.chain(N, m2, 0.0)
    flow = make_flow(theory.lattice, model=model, variance0=theory.free_ground_variance(), solver="rk4",
                     n_steps=n_steps, model_options=options or None)
    return GroundState(theory, SolveConfig(N=N, m2=m2, lam=0.0), flow, flow.init(jax.random.PRNGKey(0)))


# ---------------------------------------------------------------------------- the consistency diagnostic
def test_chi2_test_is_calibrated_on_pure_noise():
    """Differences of means of two samples of one distribution: p-values uniform (KS test), χ²/dof ≈ 1."""
    rng = np.random.default_rng(1)
    n, p, pvals = 500, 12, []
    for _ in range(200):
        a, b = rng.standard_t(6, size=(n, p)), rng.standard_t(6, size=(n, p))
        cov = (np.cov(a, rowvar=False) + np.cov(b, rowvar=False)) / n
        pvals.append(chi2_test(a.mean(0) - b.mean(0), cov, n)[2])
    from scipy import stats

    assert stats.kstest(pvals, "uniform").pvalue > 1e-3


def test_exact_gaussian_bridge_is_rg_consistent_and_a_random_flow_is_not(key):
    """λ = 0: the Gaussian bridge is an exact RG flow by construction; a random kernel network is not."""
    state = exact_free_state()
    report = rg_consistency(state, key, 1024)
    assert report.dof == 8 * (len(shell_phat2(state.theory.lattice)) + 2)
    assert report.p_value > 1e-3 and report.max_dev_sigma < K_SIGMA, str(report)
    data = report.to_json()
    assert {"chi2_dof", "p_value", "max_dev_sigma", "per_t"} <= set(data) and len(data["per_t"]) == 8
    broken = exact_free_state(model="default", out_scale=1.0)
    broken.params = jax.tree_util.tree_map(lambda x: x + 0.05, broken.params)
    bad = rg_consistency(broken, key, 1024)
    assert bad.p_value < 1e-6, str(bad)
    with pytest.raises(qrg.QRGInputError, match="times"):
        rg_consistency(state, key, 64, times=[0.5, 0.2])


def test_flow_two_point_is_exact_for_a_non_gaussian_p0(key):
    """G2_t = α_t² G2_0 + a^d Σ_t for any p_0: a two-peaked p_0 pushed through the exact kernel."""
    lat = qrg.Lattice(1, 8)
    scheme = qrg.CarossoM(lat, 1.0)
    k1, k2, k3 = jax.random.split(key, 3)
    n = 20000
    phi0 = jax.random.choice(k1, np.array([-1.0, 1.0]), (n, 1)) + 0.3 * jax.random.normal(k2, (n,) + lat.shape)
    ts = [0.05, 0.3, 1.0]
    path = scheme.sample_path(k3, phi0, ts)
    g2_0 = np.mean(np.abs(np.fft.fft(np.asarray(phi0), axis=-1)) ** 2, axis=0) / lat.n_sites
    for i, t in enumerate(ts):
        power = np.abs(np.fft.fft(np.asarray(path[i]), axis=-1)) ** 2 / lat.n_sites
        expected = np.asarray(scheme.flow_two_point(t, g2_0))
        # the sampling error of g2_0 enters the expectation too: compare with twice the sample error
        err = 2.0 * power.std(axis=0, ddof=1) / math.sqrt(n)
        assert np.all(np.abs(power.mean(axis=0) - expected) < K_SIGMA * err), t


# ---------------------------------------------------------------------------- Ψ_t and running couplings
def test_flowed_free_state_matches_the_bridge_and_its_couplings(key):
    """At λ = 0, G2_t per shell is a^d C_t, and the running couplings are the C_t-weighted fit of −C_t^{-1}."""
    state = exact_free_state(N=8)
    lat, scheme = state.theory.lattice, state.flow.scheme
    t = 0.3
    fs = flowed_state(state, t, key, 4000)
    c_t = np.asarray(scheme.bridge_variance(t, state.theory.free_ground_variance()))
    index, n_shells = lat.momentum_shells()
    exact_g2 = np.array([c_t[index == s].mean() for s in range(n_shells)])
    assert np.all(np.abs(np.array(fs.g2["mean"]) - exact_g2) < K_SIGMA * np.array(fs.g2["err"]))
    # the weighted least squares: minimise Σ_k C_t(k) (−1/C_t(k) + f_Δ p̂² − f_φ)², with f_3 = 0
    p2, w = np.asarray(lat.phat2).ravel(), c_t.ravel()
    A = np.stack([-p2, np.ones_like(p2)], axis=1) * np.sqrt(w)[:, None]
    f_lap, f_phi = np.linalg.lstsq(A, -np.sqrt(w) / w, rcond=None)[0]
    c = fs.couplings
    assert abs(c["f_laplacian"].mean - f_lap) < K_SIGMA * c["f_laplacian"].err
    assert abs(c["f_phi"].mean - f_phi) < K_SIGMA * c["f_phi"].err
    assert abs(c["f_phi3"].mean) < K_SIGMA * c["f_phi3"].err
    data = fs.to_json()
    for name in ("phi2", "phi4", "m_R", "Z", "lambda_R"):
        assert set(data[name]) == {"mean", "err"}


def test_projection_returns_the_eft_couplings_exactly(key):
    """The eft model's residual is orthogonal to (Δφ, φ, φ³) per configuration: the projection is f(t)."""
    lat = qrg.Lattice(1, 6)
    model = qrg.make_model("eft", lat, qrg.CarossoM(lat, 1.0), out_scale=1.0)
    params = model.init(key, np.zeros(lat.shape), 0.5)
    phi = jax.random.normal(key, (64,) + lat.shape)
    t = 0.4
    score = jax.vmap(lambda x: model.apply(params, x, t, method="score"))(phi)
    got = running_couplings(lat, phi, score)
    f = np.asarray(model.apply(params, t, method="couplings"))
    np.testing.assert_allclose([got[k].mean for k in ("f_laplacian", "f_phi", "f_phi3")], f, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------- exact one- and two-site references
def test_grid_ground_states_match_published_and_ed():
    g1 = grid_ground_state(qrg.Phi4.chain(1, 1.0, 24.0))
    assert g1.energy == pytest.approx(0.8037706512343, abs=1e-11)  # H = −½∂² + ½x² + x⁴
    th2 = qrg.Phi4.chain(2, 1.0, 6.0)
    from qrg.baselines.ed import ed_reference

    assert grid_ground_state(th2).energy == pytest.approx(ed_reference(th2)["energy"], rel=1e-10)
    with pytest.raises(qrg.QRGInputError, match="1 or 2 sites"):
        grid_ground_state(qrg.Phi4.chain(3, 1.0, 6.0))


@pytest.mark.parametrize("N", [1, 2])
def test_exact_flow_of_the_free_grid_state_is_the_bridge_and_the_learned_bridge_matches(N, key):
    """The grid density convolved with the kernel is the Gaussian bridge N(0, C_t); the exact Gaussian
    bridge flow's log p_θ,t on the grid gives Hellinger distance ~0 against it."""
    state = exact_free_state(N=N, m2=0.7)
    grid = grid_ground_state(state.theory, n_points=121)
    fields = grid.fields()
    for t in (0.0, 0.1, 1.0):
        exact = grid.flowed_density(state.flow.scheme, t)
        assert np.sum(exact) * grid.cell == pytest.approx(1.0, abs=1e-10)
        learned = np.exp(np.asarray(state.log_prob(fields, t))).reshape(exact.shape)
        assert hellinger(exact, learned, grid.cell) < 1e-5, t


# ---------------------------------------------------------------------------- through qrg solve and qrg flow
@pytest.fixture(scope="module")
def tiny_consistent_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rgrun")
    res = solve(qrg.Phi4.chain(4, 1.0, 6.0), steps=6, batch=8, n_steps=4, eval_n_steps=4, eval_batch=128,
                local_batch=16, systematic_batch=0, consistency_batch=64, beta_rg=1.0, rg_batch=8, out=out,
                checkpoint_every=0)
    return res, out


def test_solve_reports_rg_consistency_and_reloads(tiny_consistent_run):
    res, out = tiny_consistent_run
    data = json.loads((out / "result.json").read_text())
    assert {"chi2_dof", "p_value", "max_dev_sigma"} <= set(data["rg_consistency"])
    assert data["config"]["beta_rg"] == 1.0
    assert all(r["loss"] == pytest.approx(r["energy"] + r["rg_loss"], rel=1e-12) for r in res.history)
    assert "RG consistency" in str(res)
    state = load_run(out)
    for x, y in zip(jax.tree_util.tree_leaves(res.params), jax.tree_util.tree_leaves(state.params)):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_nll_consistency_objective_trains():
    res = solve(qrg.Phi4.chain(4, 1.0, 6.0), steps=3, batch=8, n_steps=4, eval_n_steps=4, eval_batch=64,
                laplacian="none", systematic_batch=0, consistency_batch=0, beta_rg=0.5, consistency="nll",
                rg_batch=4, checkpoint_every=0)
    assert res.status == "completed" and all(math.isfinite(r["rg_loss"]) for r in res.history)
    with pytest.raises(qrg.QRGInputError, match="consistency"):
        SolveConfig(consistency="kl")


def test_cli_flow_writes_json_csv_png(tiny_consistent_run, capsys):
    from qrg.cli import main

    _, out = tiny_consistent_run
    assert main(["flow", str(out), "--times", "0,0.1,0.5,1", "--n", "64", "--check"]) == 0
    data = json.loads((out / "flow.json").read_text())
    assert [p["t"] for p in data["points"]] == [0.0, 0.1, 0.5, 1.0]
    p = data["points"][1]
    for name in ("phi2", "phi4", "m_R", "Z", "lambda_R"):
        assert set(p[name]) == {"mean", "err"}
    assert set(p["couplings"]) == {"f_laplacian", "f_phi", "f_phi3"} and "mean" in p["G2"]
    assert "p_value" in data["rg_consistency"]
    assert (out / "flow.csv").read_text().startswith("t,r_t,phi2") and (out / "flow.png").stat().st_size > 0
    assert main(["flow", str(out), "--times", "0.5,0.1"]) == 2
    assert "times" in capsys.readouterr().err


def test_example_rg_flowed_ground_state_runs(tmp_path, capsys):
    """examples/rg_flowed_ground_state.py end to end (its --quick smoke mode)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "rg_flowed_ground_state.py"
    spec = importlib.util.spec_from_file_location("rg_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--quick", "--out", str(tmp_path / "ex")])
    data = json.loads((tmp_path / "ex" / "flow.json").read_text())
    assert len(data["points"]) == 10 and "RG consistency" in capsys.readouterr().out
