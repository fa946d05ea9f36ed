"""The probability-flow ODE: exact log p and score, round trips, brute-force change of variables."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qrg
from qrg.flow import ProbabilityFlow
from qrg.models import GaussianBridge

TIGHT = dict(rtol=1e-10, atol=1e-10)


def _free(d, N, m2=1.0):
    return qrg.Phi4.from_params(d=d, N=N, a=1.0, m2=m2, lam=0.0)


@pytest.mark.parametrize("scheme_name", ["carosso", "polchinski"])
@pytest.mark.parametrize("d,N", [(1, 8), (2, 3)])
def test_gaussian_bridge_is_exact_free_ground_state(key, scheme_name, d, N):
    """C_0 = free ground-state variance: sample's log p and score equal the exact Gaussian's."""
    theory = _free(d, N, m2=0.7)
    scheme = qrg.make_scheme(scheme_name, theory.lattice, M=1.0)
    model = GaussianBridge.create(theory.lattice, scheme, theory.free_ground_variance())
    # Polchinski's kernel K_t = exp(−(p̂²+M²)(e^{2t}−1)/Λ0²) collapses super-exponentially: at
    # large T, |u_T| = |C_T^-1 φ_T| is huge and rtol·|u| dominates; T = 0.6 keeps it conditioned.
    T = 1.3 if scheme_name == "carosso" else 0.6
    flow = ProbabilityFlow(model, scheme, T=T, **TIGHT)
    params = flow.init(key)
    phi, log_p, score = flow.sample(params, jax.random.fold_in(key, 1), 16)
    exact = theory.free_ground_state()
    np.testing.assert_allclose(log_p, exact.log_prob(phi), rtol=0, atol=1e-7)
    np.testing.assert_allclose(score, exact.score(phi), rtol=0, atol=1e-7)
    # forward log_prob at the samples (round trip)
    np.testing.assert_allclose(flow.log_prob(params, phi), log_p, rtol=0, atol=1e-7)


def test_gaussian_bridge_sample_at_matches_scheme_bridge(key):
    """Samples at t: log p and score equal those of scheme.bridge(t, C0); covariance within k·σ."""
    theory = _free(1, 6, m2=1.5)
    scheme = qrg.CarossoM(theory.lattice, 1.0)
    c0 = theory.free_ground_variance()
    model = GaussianBridge.create(theory.lattice, scheme, c0)
    flow = ProbabilityFlow(model, scheme, T=1.0, **TIGHT)
    params = flow.init(key)
    t = 0.35
    n = 4000
    phi_t, log_p, score = flow.sample_at(params, jax.random.fold_in(key, 2), n, t)
    bridge = scheme.bridge(t, c0)
    np.testing.assert_allclose(log_p, bridge.log_prob(phi_t), atol=1e-7)
    np.testing.assert_allclose(score, bridge.score(phi_t), atol=1e-7)
    np.testing.assert_allclose(flow.log_prob(params, phi_t[:8], t), log_p[:8], atol=1e-7)
    # per-mode power |φ̃(k)|²/N^d has mean C_t(k) and (for k ≠ -k modes too) variance ≤ 2 C_t²
    power = np.abs(np.fft.fft(np.asarray(phi_t), axis=-1)) ** 2 / theory.lattice.n_sites
    mean = power.mean(axis=0)
    err = power.std(axis=0) / np.sqrt(n)
    target = np.asarray(scheme.bridge_variance(t, c0))
    assert np.all(np.abs(mean - target) < 5 * err), (mean, target, err)


def test_gaussian_bridge_prior_is_bridge_at_T(key):
    theory = _free(1, 5)
    scheme = qrg.CarossoM(theory.lattice, 1.0)
    c0 = theory.free_ground_variance()
    flow = ProbabilityFlow(GaussianBridge.create(theory.lattice, scheme, c0), scheme, T=0.8)
    params = flow.init(key)
    np.testing.assert_allclose(flow.prior(params).variance, scheme.bridge_variance(0.8, c0), rtol=1e-12)
    np.testing.assert_allclose(
        flow.model.apply(params, method="variance0"), c0, rtol=1e-12
    )


def test_log_prob_hessian_free_theory(key):
    """log_prob is twice differentiable in φ (DirectAdjoint): Hessian = −C_0^-1 exactly."""
    theory = _free(1, 4)
    scheme = qrg.CarossoM(theory.lattice, 1.0)
    flow = ProbabilityFlow(GaussianBridge.create(theory.lattice, scheme, theory.free_ground_variance()), scheme, **TIGHT)
    params = flow.init(key)
    phi = jax.random.normal(key, (4,))
    hess = jax.hessian(lambda x: flow.log_prob(params, x[None])[0])(phi)
    np.testing.assert_allclose(hess, -np.linalg.inv(theory.free_ground_state().covariance_matrix()), atol=1e-7)


@pytest.mark.parametrize("adjoint", ["recursive", "backsolve"])
def test_param_gradient_through_sample_matches_closed_form(key, adjoint):
    """E(θ) = mean(|score|² + |φ0|²) by reparameterisation equals the closed form for the bridge.

    For the Gaussian bridge φ_0 = C_0^{1/2} ε in Fourier space, score = −C_0^{-1} φ_0, so
    E = mean over the same ε of |C_0^{-1/2}ε|² + |C_0^{1/2}ε|² (per-mode), differentiable in C_0.
    """
    theory = _free(1, 4)
    scheme = qrg.CarossoM(theory.lattice, 1.0)
    model = GaussianBridge(theory.lattice, scheme)
    flow = ProbabilityFlow(model, scheme, T=1.0, adjoint=adjoint, **TIGHT)
    params = flow.init(key)
    params = jax.tree_util.tree_map(lambda x: x + 0.1 * jnp.arange(x.size), params)
    sample_key = jax.random.fold_in(key, 3)

    def energy_flow(p):
        phi, _, s = flow.sample(p, sample_key, 5)
        return jnp.mean(jnp.sum(s**2, -1) + jnp.sum(phi**2, -1))

    def energy_exact(p):
        c0 = model.apply(p, method="variance0")
        c_t = scheme.bridge_variance(1.0, c0)
        phi_T = qrg.FourierGaussian(theory.lattice, c_t).sample(sample_key, (5,))
        phi0 = theory.lattice.apply_diagonal(phi_T, jnp.sqrt(c0 / c_t))
        s = -theory.lattice.apply_diagonal(phi0, 1.0 / c0)
        return jnp.mean(jnp.sum(s**2, -1) + jnp.sum(phi0**2, -1))

    np.testing.assert_allclose(energy_flow(params), energy_exact(params), rtol=1e-8)
    g_flow = jax.grad(energy_flow)(params)["params"]["log_variance0"]
    g_exact = jax.grad(energy_exact)(params)["params"]["log_variance0"]
    np.testing.assert_allclose(g_flow, g_exact, rtol=1e-6, atol=1e-8)


def test_fixed_step_rk4_converges_fourth_order(key):
    """Fixed-step RK4: log p error falls like h^4 (fit of log error vs log n_steps)."""
    theory = _free(1, 4)
    scheme = qrg.CarossoM(theory.lattice, 1.0)
    model = GaussianBridge(theory.lattice, scheme)  # default C_0 ≠ free: a nontrivial flow
    errors = []
    steps = [4, 8, 16]
    for n in steps:
        flow = ProbabilityFlow(model, scheme, T=2.0, solver="rk4", n_steps=n)
        params = flow.init(key)
        phi, log_p, _ = flow.sample(params, jax.random.fold_in(key, 4), 3)
        exact = qrg.FourierGaussian(theory.lattice, model.apply(params, method="variance0"))
        errors.append(float(jnp.max(jnp.abs(log_p - exact.log_prob(phi)))))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert -4.6 < slope < -3.5, (errors, slope)


# ---------------------------------------------------------------------- validation
def test_flow_input_validation(key):
    lat = qrg.Lattice(1, 4)
    scheme = qrg.CarossoM(lat, 1.0)
    model = GaussianBridge(lat, scheme)
    with pytest.raises(qrg.QRGInputError, match="T"):
        ProbabilityFlow(model, scheme, T=0.0)
    with pytest.raises(qrg.QRGInputError, match="T"):
        ProbabilityFlow(model, scheme, T=-1.0)
    with pytest.raises(qrg.QRGInputError, match="solver"):
        ProbabilityFlow(model, scheme, solver="rk45")
    with pytest.raises(qrg.QRGInputError, match="adjoint"):
        ProbabilityFlow(model, scheme, adjoint="magic")
    with pytest.raises(qrg.QRGInputError, match="n_steps"):
        ProbabilityFlow(model, scheme, solver="rk4")
    with pytest.raises(qrg.QRGInputError, match="scheme"):
        ProbabilityFlow(model, qrg.CarossoM(lat, 2.0))
    flow = ProbabilityFlow(model, scheme, n_steps=4, solver="rk4")
    params = flow.init(key)
    with pytest.raises(qrg.QRGInputError, match="phi"):
        flow.log_prob(params, jnp.zeros((2, 5)))
    with pytest.raises(qrg.QRGInputError, match="phi"):
        flow.log_prob(params, jnp.zeros((4,)))
    with pytest.raises(qrg.QRGInputError, match="t"):
        flow.log_prob(params, jnp.zeros((2, 4)), t=2.0)
    with pytest.raises(qrg.QRGInputError, match="t"):
        flow.sample_at(params, key, 2, -0.1)
    with pytest.raises(qrg.QRGInputError, match="n"):
        flow.sample(params, key, 0)
    with pytest.raises(qrg.QRGInputError, match="variance0"):
        GaussianBridge.create(lat, scheme, -np.ones(4))
    with pytest.raises(qrg.QRGInputError, match="variance0"):
        GaussianBridge.create(lat, scheme, np.ones(5))


def test_flow_is_hashable_and_jit_static(key):
    lat = qrg.Lattice(1, 4)
    scheme = qrg.CarossoM(lat, 1.0)
    a = ProbabilityFlow(GaussianBridge(lat, scheme), scheme, n_steps=4, solver="rk4")
    b = ProbabilityFlow(GaussianBridge(lat, scheme), scheme, n_steps=4, solver="rk4")
    assert a == b and hash(a) == hash(b)
    params = a.init(key)
    out1 = a.sample(params, key, 2)
    out2 = b.sample(params, key, 2)
    for x, y in zip(out1, out2):
        np.testing.assert_array_equal(x, y)
