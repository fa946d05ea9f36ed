"""The variational solver (design §3.3–§3.4): gradients, convergence to exact answers, robustness."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qrg import FourierGaussian, Phi4, QRGInputError
from qrg.groundstate import SolveConfig, load_run, solve
from qrg.groundstate.estimators import energy_of_distribution, n_stein_features
from qrg.hartree import hartree_variance
from qrg.models import GaussianBridge
from qrg.optim import read_meta
from qrg.optim.loop import MAX_CONSECUTIVE_FAILURES
from qrg.rg import make_scheme
from qrg.groundstate.ansatz import build_flow
from qrg.groundstate.evaluation import discretisation_check
from qrg.groundstate.objective import clipped_energy_value_and_grad, energy_objective, rg_consistency_loss

K_SIGMA = 5.0


def wrong_bridge(theory, mass2=3.0):
    scheme = make_scheme("carosso", theory.lattice, 1.0)
    var0 = 1.0 / (2.0 * theory.lattice.volume_element * np.sqrt(theory.lattice.phat2 + mass2))
    return GaussianBridge.create(theory.lattice, scheme, var0)


# ---------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("adjoint", ["recursive", pytest.param("direct", marks=pytest.mark.slow)])
def test_energy_gradient_matches_central_differences(adjoint):
    theory = Phi4.chain(4, m2=0.7, lam=3.0)
    cfg = SolveConfig(**theory.params(), model="custom", n_steps=6, adjoint=adjoint)
    flow = build_flow(theory, cfg, wrong_bridge(theory))
    params = flow.init(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(7)
    f = jax.jit(lambda p: energy_objective(flow, theory, p, key, 16)[0])
    grad = jax.grad(f)(params)["params"]["log_variance0"]
    x0 = params["params"]["log_variance0"]
    h = 1e-5
    fd = []
    for i in range(x0.size):
        e = jnp.zeros_like(x0).at[i].set(h)
        fp = f({"params": {"log_variance0": x0 + e}})
        fm = f({"params": {"log_variance0": x0 - e}})
        fd.append((fp - fm) / (2 * h))
    assert x0.size == 3  # one parameter per p̂² shell of a 4-site chain
    np.testing.assert_allclose(grad, np.array(fd), rtol=1e-7, atol=1e-9)


@pytest.mark.slow
def test_energy_gradient_nonlinear_model_directional_fd():
    """Default model (bridge + kernel network): ∇L·v equals the central difference along random v."""
    theory = Phi4.chain(4, m2=1.0, lam=6.0)
    cfg = SolveConfig(**theory.params(), n_steps=4)
    flow = build_flow(theory, cfg)
    params = flow.init(jax.random.PRNGKey(1))
    # make the nonlinear part non-negligible
    params = jax.tree_util.tree_map(lambda x: x * 1.0, params)
    key = jax.random.PRNGKey(3)
    f = jax.jit(lambda p: energy_objective(flow, theory, p, key, 8)[0])
    leaves, treedef = jax.tree_util.tree_flatten(params)
    vkeys = jax.random.split(jax.random.PRNGKey(5), len(leaves))
    v = jax.tree_util.tree_unflatten(treedef, [jax.random.normal(k, x.shape) for k, x in zip(vkeys, leaves)])
    g = jax.grad(f)(params)
    dir_grad = sum(jnp.vdot(a, b) for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(v)))
    h = 1e-5
    shift = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * d, params, v)  # noqa: E731
    fd = (f(shift(h)) - f(shift(-h))) / (2 * h)
    assert abs(float(dir_grad)) > 1e-6
    assert float(dir_grad) == pytest.approx(float(fd), rel=1e-6)


def test_per_sample_clipped_gradient():
    """sample_clip: with a limit no sample reaches, the loss, diagnostics, control-variate moments and
    gradient are those of energy_objective (same draws); with a tight limit the gradient is the
    weighted sum of the per-sample gradients computed one by one, each capped at c·median norm."""
    import optax

    theory = Phi4.chain(4, m2=1.0, lam=6.0)
    flow = build_flow(theory, SolveConfig(**theory.params(), n_steps=4, collective=True))
    params = flow.init(jax.random.PRNGKey(1))
    params = jax.tree_util.tree_map(lambda x: x + 0.02, params)  # a nonlinear score
    key, n = jax.random.PRNGKey(4), 8
    cv = 0.1 * jnp.arange(1.0, 1.0 + n_stein_features(theory.lattice))
    # both compiled (op by op the two took ~40 s)
    (loss, aux), grad = jax.jit(jax.value_and_grad(
        lambda p: energy_objective(flow, theory, p, key, n, beta_rg=0.1, rg_batch=16, cv_coef=cv), has_aux=True))(params)
    (loss_c, aux_c), grad_c = jax.jit(lambda p: clipped_energy_value_and_grad(flow, theory, p, key, n, 1e9, beta_rg=0.1,
                                                                              rg_batch=16, cv_coef=cv))(params)
    assert float(aux_c[4]) == 0.0
    np.testing.assert_allclose(float(loss_c), float(loss), rtol=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves((aux[:4], grad)), jax.tree_util.tree_leaves((aux_c[:4], grad_c))):
        assert a.dtype == b.dtype
        close_at_precision(b, a)

    # tight limit, no RG term, no control variates: against per-sample gradients taken one at a time
    white = jax.random.normal(jax.random.split(key)[0], (n,) + theory.lattice.shape)

    def e_one(p, w):
        from qrg.groundstate.estimators import ibp_energy
        phi, _, g = flow.push_white(p, w[None])
        return ibp_energy(theory, phi, g)[0]

    grad_one = jax.jit(jax.grad(e_one))  # compiled once for the n samples (op by op it took ~2 min)
    singles = [grad_one(params, white[b]) for b in range(n)]
    norms = np.array([float(optax.tree.norm(g)) for g in singles])
    limit = 1.2 * np.median(norms)
    w = np.minimum(1.0, limit / norms)
    assert 0 < np.sum(w < 1) < n
    expect = jax.tree_util.tree_map(lambda *gs: sum(wb * g for wb, g in zip(w, gs)) / n, *singles)
    (_, aux_t), grad_t = clipped_energy_value_and_grad(flow, theory, params, key, n, 1.2)
    assert float(aux_t[4]) == pytest.approx(np.mean(w < 1))
    for a, b in zip(jax.tree_util.tree_leaves(expect), jax.tree_util.tree_leaves(grad_t)):
        close_at_precision(b, a)


def close_at_precision(actual, desired):
    """Equal up to float32 rounding (the score network's flax Dense parameters are float32, so every
    gradient carries float32 rounding): a few ulps of the leaf's largest element (the batch sums are
    taken in different orders by the two paths)."""
    desired, actual = np.asarray(desired), np.asarray(actual)
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(actual, desired, rtol=64 * eps, atol=64 * eps * float(np.max(np.abs(desired), initial=0)))


def test_sample_clip_is_validated_and_runs_in_solve():
    with pytest.raises(QRGInputError, match="sample_clip"):
        SolveConfig(sample_clip=0.5)
    with pytest.raises(QRGInputError, match="sample_clip"):
        SolveConfig(sample_clip=-1.0)
    theory = Phi4.chain(4, m2=1.0, lam=6.0)
    res = solve(theory, steps=3, batch=8, n_steps=4, sample_clip=3.0, eval_batch=64, local_batch=16,
                systematic_batch=0, consistency_batch=0, progress=False)
    assert all("clipped" in h and 0 <= h["clipped"] <= 1 for h in res.history)
    assert math.isfinite(res.energy.mean)


def test_backsolve_gradient_converges_to_the_discrete_gradient_at_the_solver_order():
    """The continuous adjoint (the paper's algorithm) differs from the exact gradient of the discrete
    solve by O(h^4) for rk4: doubling the steps shrinks the difference by ≥ 8× (16× asymptotically)."""
    theory = Phi4.chain(4, m2=0.7, lam=3.0)
    key = jax.random.PRNGKey(7)
    diffs = []
    for n_steps in (4, 8):
        grads = []
        for adjoint in ("recursive", "backsolve"):
            cfg = SolveConfig(**theory.params(), model="custom", n_steps=n_steps, adjoint=adjoint)
            flow = build_flow(theory, cfg, wrong_bridge(theory))
            params = flow.init(jax.random.PRNGKey(0))
            grads.append(jax.grad(lambda p: energy_objective(flow, theory, p, key, 16)[0])(params))
        diffs.append(max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(*map(jax.tree_util.tree_leaves, grads))))
    assert diffs[0] > 1e-12 and diffs[1] < diffs[0] / 8, diffs


def test_hutchinson_laplacian_through_the_flow_is_unbiased(key):
    """Δ log p_θ through the forward solve: the Hutchinson estimate averages to the exact trace."""
    from qrg.groundstate.ansatz import flow_laplacian

    theory = Phi4.chain(4, m2=1.0, lam=6.0)
    # without the φ|φ| feature: +0.05 on every parameter gives it a large weight of either sign, and
    # an anti-confining φ|φ| velocity blows the backward solve up in finite time (φ ~ 1e3, NaN Laplacians)
    flow = build_flow(theory, SolveConfig(**theory.params(), n_steps=4, growth=False))
    params = jax.tree_util.tree_map(lambda x: x + 0.05, flow.init(jax.random.PRNGKey(2)))
    phi, _, _ = flow.sample(params, key, 6)
    exact = np.asarray(flow_laplacian(flow, params, phi, key, "exact", 1))
    assert np.all(np.isfinite(exact))
    probes = np.stack([np.asarray(flow_laplacian(flow, params, phi, jax.random.fold_in(key, i), "hutchinson", 16))
                       for i in range(8)])  # 8 × 16 probes
    err = probes.std(axis=0, ddof=1) / np.sqrt(probes.shape[0])
    assert np.all(np.abs(probes.mean(axis=0) - exact) < K_SIGMA * err + 1e-10), (probes.mean(0), exact, err)
    assert np.all(err > 0)  # the estimate does fluctuate


# ---------------------------------------------------------------------------- exact answers
def test_free_chain_gaussian_bridge_reaches_exact_ground_state():
    theory = Phi4.chain(8, m2=1.0, lam=0.0)
    e0 = theory.free_ground_energy()
    # energy objective only: its gradient noise vanishes at the exact state (zero-variance principle), which is
    # what lets the parameters settle to 1e-6; the denoising-score-matching term (beta_rg > 0) keeps a noise floor
    # of its own at the optimum, so with it the parameters jitter at the lr_final scale (rel. error ~1e-6).
    res = solve(theory, model=wrong_bridge(theory), steps=200, batch=64, lr=0.05, lr_final=1e-3, n_steps=16,
                eval_n_steps=64, eval_batch=512, seed=1, checkpoint_every=0, beta_rg=0.0, systematic_batch=0,
                consistency_batch=0)
    assert res.reference == pytest.approx(e0)
    start = res.history[0]["energy"]
    assert start - e0 > 0.05  # the start was wrong
    assert res.estimator in ("local", "cv")  # a zero-variance estimator is reported
    rel = abs(res.energy.mean - e0) / e0
    assert rel < 1e-6, rel
    for est in (res.stats.local, res.stats.cv):  # both are exact at the exact state
        assert abs(est.mean - e0) / e0 < 1e-6 and est.variance < 1e-8
    assert res.variance < 1e-8
    # variational principle: never below E0 beyond the error bar (+ solver tolerance ~1e-9)
    assert res.energy.mean > e0 - K_SIGMA * res.energy.err - 1e-8
    assert abs(res.stats.phi2.mean - theory.free_phi2()) < K_SIGMA * res.stats.phi2.err
    assert res.status == "completed" and res.steps_done == 200


def test_single_site_anharmonic_oscillator_fast():
    """CI solves an interacting theory: N = 1, m² = 1, λ = 24 (H = −½∂² + ½x² + x⁴), 200 default steps,
    against the published E0 = 0.8037706512343 within 5σ, and never below it beyond 5σ."""
    res = solve(Phi4.chain(1, m2=1.0, lam=24.0), steps=200, eval_batch=8192, local_batch=8192, seed=0,
                checkpoint_every=0, consistency_batch=0)
    e0 = 0.8037706512343
    assert abs(res.energy.mean - e0) < K_SIGMA * res.total_error, (res.energy, e0)
    assert res.variance < 1e-3 and res.status == "completed"


@pytest.mark.slow
def test_single_site_anharmonic_oscillator():
    """N = 1, m² = 1, λ = 24: H = −½∂² + ½x² + x⁴, E0 = 0.8037706512 (published)."""
    theory = Phi4.chain(1, m2=1.0, lam=24.0)
    res = solve(theory, model="default", steps=400, batch=128, lr=3e-2, eval_batch=8192, seed=0,
                checkpoint_every=0)
    e0 = 0.8037706512
    assert abs(res.energy.mean - e0) < K_SIGMA * res.energy.err, (res.energy, e0)
    assert res.energy.mean > e0 - K_SIGMA * res.energy.err
    # the nonlinear model beats the best Gaussian state: in energy and by far in Var(E_loc)
    s2 = float(hartree_variance(theory)[0])
    e_gauss = 1 / (8 * s2) + 0.5 * s2 + 3 * s2**2  # <H> of N(0, s²): kinetic + ½<x²> + <x⁴>
    assert e_gauss - e0 > 5e-3
    assert e_gauss - res.energy.mean > K_SIGMA * res.energy.err
    gauss = FourierGaussian(theory.lattice, jnp.asarray([s2]))
    g_stats = energy_of_distribution(theory, gauss, jax.random.PRNGKey(0), 8192)
    assert abs(g_stats.local.mean - e_gauss) < K_SIGMA * g_stats.local.err
    assert res.variance < 0.1 * g_stats.variance


@pytest.mark.parametrize("m2,lam", [(1.0, 6.0), (-0.5, 2.4), (-5.0, 0.1)])
def test_hartree_start_is_the_best_gaussian(m2, lam):
    """Single well and double well (m² < 0: the symmetric Gaussian, wide in the magnetisation)."""
    theory = Phi4.chain(6, m2=m2, lam=lam)
    c = hartree_variance(theory)
    lat = theory.lattice

    def gaussian_energy(var):
        phi2 = np.mean(var)
        return np.sum(1 / (8 * var) + 0.5 * (lat.phat2 + theory.m2) * var) + lat.n_sites * theory.lam / 8 * phi2**2

    e = gaussian_energy(c)
    rng = np.random.default_rng(0)
    for _ in range(20):  # any (symmetric) perturbation raises the energy
        d = rng.normal(size=lat.shape)
        d = 0.5 * (d + np.roll(d[::-1], 1))
        assert gaussian_energy(c * np.exp(1e-3 * d)) > e
    # self-consistency: c_k = 1/(2 sqrt(p̂² + μ²)) with μ² = m² + (λ/2)<φ²> > 0 (to round-off of the
    # sum m² + (λ/2)<φ²>, which cancels to a tiny μ² in the deep double well)
    mu2 = 1.0 / (2.0 * c.reshape(-1)[0]) ** 2  # zero mode, p̂² = 0
    assert mu2 > 0
    np.testing.assert_allclose(c, 1.0 / (2.0 * np.sqrt(lat.phat2 + mu2)), rtol=1e-12)
    hartree = 0.5 * theory.lam * np.mean(c)
    assert abs(theory.m2 + hartree - mu2) < 1e-12 * (abs(theory.m2) + hartree)


# ---------------------------------------------------------------------------- ODE discretisation
def test_solver_orders_match_diffrax():
    from qrg.flow import SOLVERS

    for name in SOLVERS:
        spec = SOLVERS.get(name)
        assert spec.make().order(None) == spec.order, name


def test_discretisation_check_predicts_the_bias_of_a_coarse_solve(key):
    """Step doubling (4 vs 8 rk4 steps, Richardson factor 16/15) predicts E_4 − E_∞, measured against
    32 steps (factor 4096/4095) on the same prior draws."""
    theory = Phi4.chain(4, m2=1.0, lam=6.0)
    flow = build_flow(theory, SolveConfig(**theory.params(), solver="rk4"), n_steps=4)
    params = flow.init(jax.random.PRNGKey(1))
    doubled = discretisation_check(flow, params, theory, key, 1024)
    reference = discretisation_check(flow, params, theory, key, 1024, factor=8)
    assert (doubled.n_steps_fine, reference.n_steps_fine) == (8, 32)
    b, t = doubled.bias("ibp"), reference.bias("ibp")
    assert abs(t.mean) > K_SIGMA * t.err  # a resolved bias ...
    # ... predicted by step doubling up to the higher-order terms (measured: 2 %)
    assert abs(b.mean - t.mean) < 0.1 * abs(t.mean)
    # the control variates absorb most of it (here it is not resolved), consistently in both checks
    b, t = doubled.bias("cv"), reference.bias("cv")
    assert abs(b.mean - t.mean) < 0.1 * abs(t.mean) + K_SIGMA * math.hypot(b.err, t.err)
    for name in ("ibp", "cv"):
        b = doubled.bias(name)
        assert doubled.systematic(name) == pytest.approx(math.hypot(b.mean, b.err))
    assert doubled.bias("local") is None and doubled.systematic("local") is None
    local = discretisation_check(flow, params, theory, key, 64, estimators=("local",), laplacian="exact")
    assert set(local.delta) == {"local"} and math.isfinite(local.delta["local"].mean)
    adaptive = build_flow(theory, SolveConfig(**theory.params(), solver="tsit5", n_steps=0))
    assert discretisation_check(adaptive, params, theory, key, 64) is None
    with pytest.raises(QRGInputError, match="estimators"):
        discretisation_check(flow, params, theory, key, 64, estimators=("ibp", "loc"))
    with pytest.raises(QRGInputError, match="factor"):
        discretisation_check(flow, params, theory, key, 64, factor=1)


# ---------------------------------------------------------------------------- robustness
def _tiny(theory, **kw):
    base = dict(model="gaussian", steps=6, batch=8, n_steps=4, eval_n_steps=4, eval_batch=32, lr=0.02,
                laplacian="none")
    base.update(kw)
    return base


TINY_THEORY = Phi4.chain(4, m2=1.0, lam=2.0)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """An uninterrupted tiny run (6 steps, checkpoints every 3): the reference of the robustness tests."""
    return solve(TINY_THEORY, out=tmp_path_factory.mktemp("straight"), checkpoint_every=3, **_tiny(TINY_THEORY))


class _Interrupt(Exception):
    """A run killed from its callback (no Ctrl-C handling: only the periodic checkpoint survives)."""


def _stop_at(step: int):
    """A callback that kills the run when the history record of ``step`` arrives."""
    def stop(record):
        if record["step"] == step:
            raise _Interrupt
    return stop


def test_checkpoint_resume_is_bit_for_bit(tmp_path, straight_run):
    theory = TINY_THEORY
    straight = straight_run

    with pytest.raises(_Interrupt):  # 3 steps done and checkpointed; killed during step index 3
        solve(theory, out=tmp_path / "b", checkpoint_every=3, callback=_stop_at(3), **_tiny(theory))
    assert read_meta(tmp_path / "b")["step"] == 3
    resumed = solve(theory, out=tmp_path / "b", checkpoint_every=3, resume=True, **_tiny(theory))
    for x, y in zip(jax.tree_util.tree_leaves(straight.params), jax.tree_util.tree_leaves(resumed.params)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert [r["energy"] for r in straight.history] == [r["energy"] for r in resumed.history]
    assert straight.energy.mean == resumed.energy.mean
    # a different configuration cannot resume this run
    with pytest.raises(QRGInputError, match="lr"):
        solve(theory, out=tmp_path / "b", resume=True, **_tiny(theory, lr=0.03))
    with pytest.raises(QRGInputError, match="no checkpoint"):
        solve(theory, out=tmp_path / "c", resume=True, **_tiny(theory))


def test_nan_recovery_restores_state_and_halves_lr(tmp_path, straight_run):
    res = solve(TINY_THEORY, out=tmp_path, checkpoint_every=3, inject_nan_at=(2, 3), **_tiny(TINY_THEORY))
    assert [e["step"] for e in res.events] == [2, 3]
    assert res.events[-1]["lr_scale"] == 0.25
    assert [r["step"] for r in res.history] == [0, 1, 4, 5]
    assert res.history[:2] == [dict(r, time=res.history[i]["time"]) for i, r in enumerate(straight_run.history[:2])]
    # at step 2 the run went back to the last state whose loss was finite (the state before step 1's
    # update, optimiser step count included) and continues with a quarter of that step's learning rate
    assert res.history[2]["lr"] == pytest.approx(0.25 * res.history[1]["lr"], rel=1e-12)
    text = (tmp_path / "result.json").read_text()
    data = json.loads(text)
    json.dumps(data, allow_nan=False)  # no NaN/inf anywhere in the output
    assert data["nan_recoveries"] == 2
    assert all(math.isfinite(r["energy"]) for r in res.history)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(res.params))


def test_persistent_nan_stops_with_last_good_state():
    res = solve(TINY_THEORY, inject_nan_at=range(1, 100), **_tiny(TINY_THEORY, steps=40))
    assert res.status == "diverged"
    assert len(res.events) == MAX_CONSECUTIVE_FAILURES
    assert math.isfinite(res.energy.mean) and len(res.history) == 1
    assert res.steps_done == 1 + MAX_CONSECUTIVE_FAILURES


def test_rg_consistency_term_and_sampling_along_the_flow(key):
    """β > 0 runs; at the exact free state the flowed samples have the bridge covariance C_t."""
    theory = Phi4.chain(6, m2=1.0, lam=0.0)
    scheme = make_scheme("carosso", theory.lattice, 1.0)
    exact = GaussianBridge.create(theory.lattice, scheme, theory.free_ground_variance())
    res = solve(theory, model=exact, steps=3, batch=16, lr=1e-4, beta_rg=0.1, n_steps=8, eval_n_steps=8,
                eval_batch=64, laplacian="none", checkpoint_every=0, systematic_batch=0, consistency_batch=0)
    # the training loss is the energy plus β times the RG-consistency term, step by step
    assert all(r["loss"] == pytest.approx(r["energy"] + 0.1 * r["rg_loss"], rel=1e-12) for r in res.history)
    t = 0.4
    phi_t, logp, g = res.sample(key, 2000, t=t)
    c_t = np.asarray(scheme.bridge_variance(t, res.flow.model.apply(res.params, method="variance0")))
    power = np.mean(np.abs(np.fft.fft(np.asarray(phi_t), axis=-1)) ** 2, axis=0) / theory.lattice.n_sites
    # |φ̃_k|²/N is exponential-like with mean C_t(k) and relative std ≈ 1 (≈ √2 for real modes k = 0, π)
    np.testing.assert_allclose(power, c_t, rtol=K_SIGMA * np.sqrt(2.0 / 2000))
    # the DSM loss is minimal at the exact bridge: perturbing the score raises it
    flow = res.flow
    phi0 = theory.free_ground_state().sample(key, (4000,))
    losses = [float(rg_consistency_loss(flow, jax.tree_util.tree_map(lambda x: x + s, res.params), phi0, key))
              for s in (-0.5, 0.0, 0.5)]
    assert losses[1] < losses[0] and losses[1] < losses[2]


def test_bad_options():
    theory = Phi4.chain(4, m2=1.0, lam=0.0)
    with pytest.raises(QRGInputError, match="unknown option"):
        solve(theory, stepz=3)
    with pytest.raises(QRGInputError, match="batch"):
        solve(theory, batch=0)
    with pytest.raises(QRGInputError, match="resume"):
        solve(theory, resume=True)
    with pytest.raises(QRGInputError, match="systematic_batch"):
        solve(theory, systematic_batch=-1)


def test_result_reports_the_discretisation_systematic(straight_run):
    res = straight_run
    chk = res.discretisation
    assert (chk.n_steps, chk.n_steps_fine, chk.order) == (4, 8, 4)
    assert res.systematic == chk.systematic(res.estimator) > 0
    assert res.total_error == pytest.approx(math.hypot(res.energy.err, res.systematic))
    data = res.to_json()
    assert data["energy_sys"] == res.systematic and data["energy_total_err"] == res.total_error
    assert data["discretisation"]["n_steps_fine"] == 8
    assert "ODE systematic" in str(res)
    off = solve(TINY_THEORY, systematic_batch=0, **_tiny(TINY_THEORY, steps=1))
    assert off.discretisation is None and off.systematic is None and off.total_error == off.energy.err


def test_consistency_times_are_stratified_and_samples_reused(key):
    """The kernel times cover [t_min, T] one per equal sub-interval; rg_batch > batch reuses each φ_0."""
    from qrg.groundstate.objective import _kernel_times, _repeat_to

    class _Flow:
        T = 2.0

    n = 64
    t = np.sort(np.asarray(_kernel_times(_Flow, key, n, 1e-3)))
    t_min = 2e-3
    edges = t_min + (2.0 - t_min) * np.arange(n + 1) / n
    assert np.all((t >= edges[:-1]) & (t <= edges[1:]))  # exactly one time in each stratum
    t2 = np.asarray(_kernel_times(_Flow, jax.random.fold_in(key, 1), n, 1e-3))
    assert not np.allclose(np.sort(t2), t)  # fresh draws within the strata
    phi0 = jnp.arange(5.0 * 3).reshape(5, 3)
    rep = np.asarray(_repeat_to(phi0, 12))
    assert rep.shape == (12, 3)
    np.testing.assert_array_equal(rep[:5], phi0)
    np.testing.assert_array_equal(rep[5:10], phi0)
    np.testing.assert_array_equal(rep[10:], phi0[:2])


def test_resume_carries_the_divergence_guards_anchor_and_the_parameter_average(tmp_path):
    """After 2·window steps the checkpoint holds the guard's anchor and its candidate, and (average = 0.25:
    steps 78..103) the iterate average; a resume loads them (the run continues bit for bit: same history
    and the same averaged parameters, evaluated and returned by load_run, as an uninterrupted run)."""
    kw = _tiny(TINY_THEORY, steps=104, systematic_batch=0, consistency_batch=0, average=0.25)
    straight = solve(TINY_THEORY, **kw)
    assert straight.averaged_steps == 26

    with pytest.raises(_Interrupt):  # 101 steps done and checkpointed; killed during step index 101
        solve(TINY_THEORY, out=tmp_path, checkpoint_every=101, callback=_stop_at(101), **kw)
    layout = read_meta(tmp_path)["layout"]
    assert {"anchor_params", "anchor_opt_state", "pending_params", "pending_opt_state",
            "average_params"} <= set(layout)
    resumed = solve(TINY_THEORY, out=tmp_path, resume=True, checkpoint_every=101, **kw)
    assert [r["energy"] for r in straight.history] == [r["energy"] for r in resumed.history]
    assert resumed.averaged_steps == 26 and resumed.energy.mean == straight.energy.mean
    last = solve(TINY_THEORY, **{**kw, "average": 0.0}).params  # the same training: its last step's parameters
    for saved, avg, final in zip(*(jax.tree_util.tree_leaves(t) for t in (load_run(tmp_path).params, straight.params,
                                                                          last))):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(avg))
        assert not np.array_equal(np.asarray(saved), np.asarray(final))  # the average, not the last step's
