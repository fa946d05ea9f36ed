"""qrg.euclidean.learning: objectives, training, exact flow-based IMH sampling."""

import jax
import numpy as np
import pytest

from qrg._validation import QRGInputError
from qrg.optim.optimizers import paper_adam
from qrg.euclidean.learning import (make_flow, reverse_kl_loss, reverse_sde_sample, score_matching_loss, train)
from qrg.observables import measure
from qrg.euclidean.samplers.imh import ess_per_sample, flow_imh, independence_metropolis
from qrg.theory import Phi4

FREE = Phi4.from_params(d=2, N=4, a=1.0, m2=0.7, lam=0.0)


@pytest.fixture(scope="module")
def exact_flow():
    # Gaussian bridge whose C_0 is the free Euclidean variance: the flow IS the free theory
    flow = make_flow(FREE, model="gaussian", T=1.0, n_steps=None, solver="tsit5", rtol=1e-10, atol=1e-10,
                     variance0=FREE.free_euclidean_variance())
    return flow, flow.init(jax.random.PRNGKey(0))


def test_imh_acceptance_one_for_exact_flow(exact_flow):
    flow, params = exact_flow
    res = flow_imh(FREE, jax.random.PRNGKey(1), n_samples=200, n_chains=2, flow=flow, params=params, batch=16)
    assert res.samples.shape == (2, 200, 4, 4)
    assert np.std(res.log_w) < 1e-6
    assert res.acceptance == 1.0
    assert res.ess_per_sample > 1 - 1e-10
    # the log-weight is the constant log Z of the free theory: −S − log q = log Z
    lat = FREE.lattice
    log_z = 0.5 * np.sum(np.log(2 * np.pi * FREE.free_euclidean_variance()))
    assert np.mean(res.log_w) == pytest.approx(log_z, abs=1e-6)
    o = measure(res.samples, lat)
    assert abs(o["chi"].mean - 1 / 0.7) < 4 * o["chi"].err


def test_reverse_kl_at_exact_flow_is_minus_log_z(exact_flow):
    flow, params = exact_flow
    loss, aux = reverse_kl_loss(flow, params, jax.random.PRNGKey(2), FREE, 16)
    log_z = 0.5 * np.sum(np.log(2 * np.pi * FREE.free_euclidean_variance()))
    assert float(loss) == pytest.approx(-log_z, abs=1e-6)
    assert float(aux["ess"]) == pytest.approx(1.0, abs=1e-9)


def test_imh_rejects_with_bad_proposal():
    # proposal q = N(0, 1) per component for the target p ∝ e^{−|x|²}: acceptance < 1 and the chain repeats states
    key = jax.random.PRNGKey(0)
    props = jax.random.normal(key, (1, 500, 2, 2))
    log_p = -np.asarray(props**2).sum(axis=(-1, -2))
    log_q = -0.5 * np.asarray(props**2).sum(axis=(-1, -2))
    xs, acc = independence_metropolis(jax.random.PRNGKey(1), props, log_p, log_q)
    acc = np.asarray(acc)
    assert 0.1 < acc.mean() < 0.95
    rejected = np.where(~acc[0])[0]
    assert np.all(np.asarray(xs)[0, rejected] == np.asarray(xs)[0, rejected - 1])
    accepted = np.where(acc[0])[0]
    assert np.all(np.asarray(xs)[0, accepted] == np.asarray(props)[0, accepted])
    assert ess_per_sample(np.zeros(10)) == pytest.approx(1.0)


@pytest.mark.parametrize("objective", [pytest.param("rg_matching", marks=pytest.mark.slow), "reverse_kl",
                                       "score_matching"])
def test_training_moves_gaussian_bridge_to_truth(objective):
    theory = Phi4.from_params(d=1, N=6, a=1.0, m2=0.5, lam=0.0)
    # start from a wrong Gaussian (C_0 of mass² 4); the true p_0 is the bridge with C_0 = 1/(p̂² + 0.5)
    c_bad = 1.0 / (theory.lattice.phat2 + 4.0)
    c_true = 1.0 / (theory.lattice.phat2 + 0.5)
    flow = make_flow(theory, model="gaussian", T=1.0, n_steps=8, variance0=c_bad)
    params = flow.init(jax.random.PRNGKey(0))
    data = theory.free_euclidean().sample(jax.random.PRNGKey(1), (1024,))
    res = train(flow, params, jax.random.PRNGKey(2), objective=objective, n_steps=200, theory=theory, data=data,
                batch_size=32, log_every=10, optimizer=paper_adam(0.05, 100, 0.1))
    c0 = np.exp(np.asarray(res.params["params"]["log_variance0"]))
    shells = [c_true.ravel()[j] for j in range(4)]  # shells p̂² of j = 0..3 on a 6-chain
    err0 = np.abs(np.log(np.array([c_bad.ravel()[j] for j in range(4)]) / shells))
    err1 = np.abs(np.log(c0 / shells))
    # every shell's log-error shrinks at least twofold
    assert np.all(err1 < 0.5 * err0), (objective, c0, shells)
    assert np.isfinite(res.history["loss"]).all()


def test_score_matching_target_is_zero_for_exact_gaussian():
    # for Gaussian data and the exact bridge, E|Σ^{1/2}s + ξ|² is minimal; compare with a wrong C_0
    theory = FREE
    data = theory.free_euclidean().sample(jax.random.PRNGKey(3), (4096,))
    good = make_flow(theory, model="gaussian", variance0=theory.free_euclidean_variance(), n_steps=4)
    bad = make_flow(theory, model="gaussian", variance0=4 * theory.free_euclidean_variance(), n_steps=4)
    key = jax.random.PRNGKey(4)
    lg, _ = score_matching_loss(good, good.init(key), key, data, 2048)
    lb, _ = score_matching_loss(bad, bad.init(key), key, data, 2048)
    assert float(lg) < float(lb)


def test_reverse_sde_samples_exact_bridge(exact_flow):
    flow, params = exact_flow
    phi = reverse_sde_sample(flow, params, jax.random.PRNGKey(5), 3000, n_steps=200)
    o = measure(np.asarray(phi), FREE.lattice)
    # Euler–Maruyama bias O(dt) is below the statistical error at 200 steps
    assert abs(o["chi"].mean - 1 / 0.7) < 4 * o["chi"].err
    assert abs(o["m_R2"].mean - 0.7) < 4 * o["m_R2"].err


def test_train_input_errors(exact_flow):
    flow, params = exact_flow
    with pytest.raises(QRGInputError, match="objective"):
        train(flow, params, jax.random.PRNGKey(0), objective="ml", n_steps=1)
    with pytest.raises(QRGInputError, match="data"):
        train(flow, params, jax.random.PRNGKey(0), objective="rg_matching", n_steps=1, theory=FREE)
