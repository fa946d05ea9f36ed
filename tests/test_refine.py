"""The refinement phase: minSR with the zero-variance force on broadened, importance-weighted samples."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qrg
from qrg.cli import main
from qrg.groundstate import solve
from qrg.groundstate.ansatz import draw, laplacians
from qrg.groundstate.estimators import local_energy_values
from qrg.groundstate.refine import MAX_RECOVERIES, RefineState
from qrg.optim import read_meta
from qrg.optim.sr import (broadened_noise, broadening_for, effective_sample_fraction, min_sr_direction,
                          site_broadened_noise)

SITE = qrg.Phi4.chain(1, 1.0, 24.0)
TINY = dict(steps=5, batch=8, n_steps=4, eval_n_steps=4, eval_batch=64, local_batch=64, systematic_batch=0,
            consistency_batch=0, checkpoint_every=0, refine_batch=8)


def test_min_sr_direction_is_the_weighted_ridge_least_squares_solution(key):
    """Xᵀ(XXᵀ + ε)⁻¹ r (sample space) = (XᵀX + ε)⁻¹ Xᵀ r (parameter space), X and r centred and weighted."""
    k1, k2, k3 = jax.random.split(key, 3)
    n, p, eps = 12, 30, 1e-3
    jac, e = jax.random.normal(k1, (n, p)), jax.random.normal(k2, (n,))
    w = jax.random.uniform(k3, (n,)) + 0.1
    delta = min_sr_direction(jac, e, w, eps)
    wn = w / w.sum()
    x = (jac - wn @ jac) * jnp.sqrt(wn)[:, None]
    r = (e - wn @ e) * jnp.sqrt(wn)
    np.testing.assert_allclose(delta, jnp.linalg.solve(x.T @ x + eps * jnp.eye(p), x.T @ r), rtol=1e-8, atol=1e-10)
    # a constant shift of the local energies (E itself) does not move the parameters
    np.testing.assert_allclose(min_sr_direction(jac, e + 7.0, w, eps), delta, atol=1e-10)


def test_broadened_noise_weights_give_standard_normal_moments(key):
    """Weighted means under the broadened proposal estimate N(0, 1) moments: E z² = 1, E z⁴ = 3 (within 4σ of
    the weighted estimate's own spread over independent batches)."""
    z, w = broadened_noise(key, 200_000, (1,), 2.0)
    assert float(w.sum()) == pytest.approx(1.0) and float(jnp.std(z)) > 1.9  # the proposal is wide
    m2 = [float(jnp.sum(wb * zb[:, 0] ** 2)) for zb, wb in zip(jnp.split(z, 20), jnp.split(w * 20, 20))]
    m4 = [float(jnp.sum(wb * zb[:, 0] ** 4)) for zb, wb in zip(jnp.split(z, 20), jnp.split(w * 20, 20))]
    for vals, exact in ((m2, 1.0), (m4, 3.0)):
        assert abs(np.mean(vals) - exact) < 4 * np.std(vals, ddof=1) / np.sqrt(len(vals))
    z1, w1 = broadened_noise(key, 64, (3,), 1.0)
    np.testing.assert_allclose(w1, 1 / 64)


def test_site_broadened_noise_weights_give_standard_normal_moments_on_every_site(key):
    """The site proposal on 4 sites: one site's noise is wide in about α = ½ of the draws, and the weighted means
    give E z_j² = 1 and E z_j⁴ = 3 on every site and E z_0² z_1² = 1 (within 4σ of the spread over batches); its
    weights are bounded (at most 1/(1 − α) = 2 times their mean), so the effective sample fraction is ≥ ½ on any
    lattice, 256 sites included."""
    z, w = site_broadened_noise(key, 200_000, (4,), 3.0)
    wide = jnp.sum(jnp.abs(z) > 4.5, axis=0)  # P(|z| > 4.5) is 7e-6 under N(0, 1), 13 % under N(0, 9)
    assert np.all(np.asarray(wide) > 0.5 * 200_000 / 4 * 0.13)
    chunks = list(zip(jnp.split(z, 20), jnp.split(w * 20, 20)))
    for j in range(4):
        for power, exact in ((2, 1.0), (4, 3.0)):
            vals = [float(jnp.sum(wb * zb[:, j] ** power)) for zb, wb in chunks]
            assert abs(np.mean(vals) - exact) < 4 * np.std(vals, ddof=1) / np.sqrt(len(vals)), (j, power)
    cross = [float(jnp.sum(wb * zb[:, 0] ** 2 * zb[:, 1] ** 2)) for zb, wb in chunks]
    assert abs(np.mean(cross) - 1.0) < 4 * np.std(cross, ddof=1) / np.sqrt(len(cross))
    for dim in (4, 256):
        _, w = site_broadened_noise(key, 20_000, (dim,), 3.0)
        assert float(1 / jnp.sum(w**2)) / 20_000 >= 0.5


@pytest.mark.parametrize("dim", [1, 16, 256])
def test_automatic_broadening_has_half_the_samples_effective(dim, key):
    tau = broadening_for(dim)
    assert tau > 1 and effective_sample_fraction(tau, dim) == pytest.approx(0.5, rel=1e-6)
    _, w = broadened_noise(key, 20_000, (dim,), tau)
    assert 0.35 < float(1 / jnp.sum(w**2)) / 20_000 < 0.65  # measured ESS of the weights, loose (heavy for dim 256)
    with pytest.raises(qrg.QRGInputError, match="dim"):
        broadening_for(0)


@pytest.mark.parametrize("bad,match", [(dict(refine_batch=1), "refine_batch"), (dict(refine_dtau=0.0), "refine_dtau"),
                                       (dict(refine_shift=-1.0), "refine_shift"), (dict(refine_broaden=0.5), "refine_broaden"),
                                       (dict(refine_steps=-1), "refine_steps"),
                                       (dict(refine_steps=3, laplacian="none"), "laplacian"),
                                       (dict(refine_proposal="tails"), "refine_proposal")])
def test_bad_refine_settings_are_refused_by_name(bad, match):
    with pytest.raises(qrg.QRGInputError, match=match):
        qrg.groundstate.SolveConfig(**bad)


def test_refinement_resumed_is_bit_identical_to_uninterrupted(tmp_path, monkeypatch):
    """3 refinement steps, then resumed to 6 (continuing: only steps 3–5 and the final check draw batches), give the
    parameters and records of 6 in one go; the checkpoint holds the refined parameters, which load_run returns; the
    loop's own parameters are untouched."""
    straight = solve(SITE, out=tmp_path / "a", refine_steps=6, **TINY)
    solve(SITE, out=tmp_path / "b", refine_steps=3, **TINY)
    batches = []
    counted = qrg.groundstate.refine.refine_batch
    monkeypatch.setattr(qrg.groundstate.refine, "refine_batch", lambda *a, **k: batches.append(1) or counted(*a, **k))
    resumed = solve(SITE, out=tmp_path / "b", resume=True, refine_steps=6, **TINY)
    assert len(batches) == 4
    assert straight.refine["steps"] == resumed.refine["steps"] == 6 and resumed.refine["status"] == "completed"
    assert straight.refine["history"] == resumed.refine["history"]
    for x, y in zip(jax.tree_util.tree_leaves(straight.params), jax.tree_util.tree_leaves(resumed.params)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    loaded = qrg.groundstate.load_run(tmp_path / "b")
    for x, y in zip(jax.tree_util.tree_leaves(loaded.params), jax.tree_util.tree_leaves(resumed.params)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    meta = read_meta(tmp_path / "b")
    assert meta["refine"]["step"] == 6 and meta["refine"]["from_step"] == 5
    data = json.loads((tmp_path / "b" / "result.json").read_text())
    assert data["refine"]["steps"] == 6 and len(data["refine"]["history"]) == 6
    # other settings: the refinement starts again from the loop's parameters (its first record is the same)
    other = solve(SITE, out=tmp_path / "b", resume=True, refine_steps=2, refine_dtau=0.01, **TINY)
    assert other.refine["steps"] == 2 and other.refine["history"][0]["energy"] == straight.refine["history"][0]["energy"]


def test_a_refinement_that_blows_up_rolls_back_then_stops_with_its_lowest_variance_state(tmp_path):
    """dτ = 1e12 blows up on every update: each time the phase rolls back to the start (the only checked batch)
    with dτ halved, and after MAX_RECOVERIES it stops there: the evaluated parameters are the loop's own."""
    result = solve(SITE, out=tmp_path / "a", refine_steps=10, refine_dtau=1e12, **TINY)
    r = result.refine
    assert r["status"] == "nonfinite" and r["recoveries"] == MAX_RECOVERIES and r["best_step"] == 0
    assert r["dtau_final"] == 1e12 / 2**MAX_RECOVERIES and r["steps"] == 2 * MAX_RECOVERIES + 1
    loop = solve(SITE, out=tmp_path / "b", **TINY)
    for x, y in zip(jax.tree_util.tree_leaves(result.params), jax.tree_util.tree_leaves(loop.params)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert np.isfinite(result.energy.mean)


def test_refine_guard_counts_two_strikes_or_one_huge_batch_and_rolls_back_to_the_lowest_variance():
    """Blow-ups are measured against the median variance of the last updating steps (a lone low batch does not
    move it), need two strikes at BLOWUP× or one at BLOWUP_ONCE×, and roll back to the lowest-variance parameters."""
    state = RefineState(params=None)

    def step(params, v):  # the loop's bookkeeping for a batch of variance v at ``params``
        state.params = params
        why, strikes = state.blown_up({"variance": v})
        if why is None:
            state.accept({"variance": v}, strikes)
            state.history.append({"variance": v})
            state.step += 1
        return why

    for i, v in enumerate([1e-4, 2e-4, 1e-4, 1e-9, 1e-3]):  # no check before 3 steps; the 1e-9 fluke is the best
        assert step(f"p{i}", v) is None
    assert state.reference_variance() == 1e-4 and (state.best, state.best_step) == ("p3", 3)
    assert step("p5", 40 * 1e-4) is None and state.strikes == 1  # first strike
    assert step("p6", 1e-4) is None and state.strikes == 0  # a normal batch resets it
    assert step("p7", 40 * 1e-4) is None
    assert "two steps in a row" in step("p8", 50 * 1.5e-4)
    assert state.roll_back() and (state.params, state.dtau_scale, state.strikes) == ("p3", 0.5, 0)
    assert "x the median" in step("p9", 2000 * 2e-4)  # one batch above BLOWUP_ONCE x
    assert state.roll_back() and state.roll_back() and state.params == "p3" and state.dtau_scale == 0.125
    assert not state.roll_back() and state.recoveries == MAX_RECOVERIES


def test_refinement_lowers_the_variance_of_the_local_energy_of_a_trained_site(tmp_path):
    """Single site (m² = 1, λ = 24) after 150 Adam steps, then (added to the finished run with resume) 40 refinement
    steps of 128 samples: the spread of E_loc on 4096 fresh samples (mean absolute deviation: the variance itself is
    too heavy-tailed before the refinement for a fourth-moment error bar) drops by more than half with 6σ margins
    (measured: 4×; the variance 67×), and the energy stays within 4σ of the exact 0.8037706512343."""
    settings = dict(steps=150, n_steps=8, eval_n_steps=16, eval_batch=512, local_batch=512, systematic_batch=0,
                    consistency_batch=0, checkpoint_every=0, estimator="local")
    trained = solve(SITE, out=tmp_path, **settings)
    result = solve(SITE, out=tmp_path, resume=True, refine_steps=40, refine_batch=128, **settings)
    assert result.steps_done == 150 and result.refine["steps"] == 40

    def var(params):
        phi, g = draw(result.flow, params, jax.random.PRNGKey(3), 4096, 1024)
        e = np.asarray(local_energy_values(SITE, phi, g, laplacians(result.flow, params, phi, jax.random.PRNGKey(3),
                                                                    "exact")))
        dev = np.abs(e - e.mean())  # mean absolute deviation: its error bar needs only a finite variance
        return e.mean(), e.var(), dev.mean(), dev.std() / np.sqrt(e.size)

    _, v_loop, d_loop, s_loop = var(trained.params)
    e_ref, v_ref, d_ref, s_ref = var(result.params)
    assert 2 * (d_ref + 6 * s_ref) < d_loop - 6 * s_loop
    assert abs(e_ref - 0.8037706512343) < 4 * np.sqrt(v_ref / 4096)
    assert abs(result.energy.mean - 0.8037706512343) < 4 * result.energy.err


def test_cli_reports_the_refinement(tmp_path, capsys):
    code = main(["solve", "--N", "1", "--m2", "1", "--lam", "24", "--steps", "5", "--batch", "8", "--n-steps", "4",
                 "--eval-n-steps", "4", "--eval-batch", "64", "--local-batch", "64", "--systematic-batch", "0",
                 "--consistency-batch", "0", "--refine-steps", "2", "--refine-batch", "8", "--no-progress",
                 "--out", str(tmp_path)])
    assert code == 0
    captured = capsys.readouterr()
    err = captured.err
    assert "refined 2 SR step(s) of 8 samples (site proposal, tau = 3)" in err and "status: completed" in err
    assert "local energy: E = " in captured.out and "(64 samples)" in captured.out
