"""The exponential (integrating-factor) integrator of ProbabilityFlow.

* exact for the pure Gaussian bridge with ONE step of any solver, on a fine (stiff) lattice where
  the plain solver with one step is far off;
* the same ODE as the plain solver: both agree on a non-stiff nonlinear flow at tight tolerance.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qrg
from qrg._validation import QRGInputError
from qrg.flow import ProbabilityFlow
from qrg.euclidean.learning import euclidean_variance0, make_flow
from qrg.models import GaussianBridge, make_model


def _fine_bridge(scheme_name, **kw):
    # a = 1/16 in 2D: κ_max = 8/a² + 1 ≈ 2000, far beyond one explicit step of size T
    theory = qrg.Phi4.from_params(d=2, N=4, a=1 / 16, m2=0.3, lam=0.0)
    scheme = qrg.make_scheme(scheme_name, theory.lattice, M=1.0)
    c0 = euclidean_variance0(theory)
    model = GaussianBridge.create(theory.lattice, scheme, c0)
    T = 1.0 if scheme_name == "carosso" else 0.5
    return theory, scheme, c0, ProbabilityFlow(model, scheme, T=T, **kw)


@pytest.mark.parametrize("scheme_name", ["carosso", pytest.param("polchinski", marks=pytest.mark.slow)])
def test_exponential_is_exact_for_gaussian_bridge_in_one_step(key, scheme_name):
    _, scheme, c0, flow = _fine_bridge(scheme_name, solver="euler", n_steps=1, integrator="exponential")
    params = flow.init(key)
    t = 0.3 * flow.T
    phi, log_p, score = flow.sample_at(params, jax.random.fold_in(key, 1), 16, t)
    bridge = scheme.bridge(t, c0)
    # |log p| ~ 10², the residual velocity is zero up to round-off of b + Lφ
    np.testing.assert_allclose(log_p, bridge.log_prob(phi), rtol=0, atol=1e-7)
    np.testing.assert_allclose(score, bridge.score(phi), rtol=1e-9, atol=1e-9 * float(jnp.max(jnp.abs(score))))
    # φ_t has the bridge's per-mode power: the transport is the exact G(t) = (C_t/C_T)^{1/2}
    phi_T = flow.prior(params).sample(jax.random.fold_in(key, 1), (16,))
    g = jnp.sqrt(scheme.bridge_variance(t, c0) / scheme.bridge_variance(flow.T, c0))
    np.testing.assert_allclose(phi, flow.lattice.apply_diagonal(phi_T, g), atol=1e-10)
    np.testing.assert_allclose(flow.transport(params, phi, t, flow.T), phi_T, atol=1e-10)
    # forward solve (log_prob) and the score-free backward solve agree with it
    np.testing.assert_allclose(flow.log_prob(params, phi, t), log_p, atol=1e-7)
    phi2, log_p2 = flow.sample_log_prob(params, jax.random.fold_in(key, 1), 16, t)
    np.testing.assert_allclose(phi2, phi, atol=1e-12)
    np.testing.assert_allclose(log_p2, log_p, atol=1e-7)
    if scheme_name == "carosso":
        # the plain solver with one step is nowhere near (the test can fail)
        _, _, _, plain = _fine_bridge(scheme_name, solver="euler", n_steps=1)
        _, log_p_plain, _ = plain.sample_at(params, jax.random.fold_in(key, 1), 16, t)
        assert float(np.max(np.abs(log_p_plain - log_p))) > 1e-3


def _nonlinear_flow_pair():
    """A chain with a clearly nonlinear default model, as plain and exponential tight-tolerance flows."""
    theory = qrg.Phi4.from_params(d=1, N=6, a=1.0, m2=0.5, lam=0.5)
    kw = dict(model="default", T=1.0, n_steps=None, solver="tsit5", rtol=1e-10, atol=1e-10, out_scale=0.3)
    return (theory,) + tuple(make_flow(theory, integrator=i, **kw) for i in ("plain", "exponential"))


def test_exponential_agrees_with_plain_on_nonstiff_nonlinear_flow(key):
    """Coarse lattice, nonlinear default model with a sizeable network: the same ODE, same answers."""
    theory, plain, expo = _nonlinear_flow_pair()
    params = plain.init(key)
    k = jax.random.fold_in(key, 1)
    ref = plain.sample_log_prob(params, k, 8, 0.2)
    out = expo.sample_log_prob(params, k, 8, 0.2)
    # the nonlinear part is not negligible: log p differs from the linear part's Gaussian
    gauss = qrg.gaussian.FourierGaussian(theory.lattice, plain.model.apply(params, 0.2, method="prior_variance"))
    assert float(jnp.max(jnp.abs(ref[1] - gauss.log_prob(ref[0])))) > 1e-2
    for a, b in zip(out, ref):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-7)


@pytest.mark.slow
def test_exponential_augmented_solve_agrees_with_plain(key):
    """The (φ, log p, score) augmented backward solve in the frame equals the plain one."""
    theory, plain, expo = _nonlinear_flow_pair()
    params = plain.init(key)
    ref = plain.sample_at(params, jax.random.fold_in(key, 1), 8, 0.2)
    out = expo.sample_at(params, jax.random.fold_in(key, 1), 8, 0.2)
    lin = -theory.lattice.apply_diagonal(ref[0], 1.0 / plain.model.apply(params, 0.2, method="prior_variance"))
    assert float(jnp.max(jnp.abs(ref[2] - lin))) > 1e-2
    for a, b in zip(out, ref):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-7)


@pytest.mark.slow
def test_exponential_log_prob_and_transport_agree_with_plain(key):
    theory, plain, expo = _nonlinear_flow_pair()
    params = plain.init(key)
    ref = plain.sample_log_prob(params, jax.random.fold_in(key, 1), 8, 0.2)
    np.testing.assert_allclose(expo.log_prob(params, ref[0], 0.2), plain.log_prob(params, ref[0], 0.2), atol=1e-7)
    np.testing.assert_allclose(expo.transport(params, ref[0], 0.2, 0.7), plain.transport(params, ref[0], 0.2, 0.7),
                               atol=1e-7)


@pytest.mark.slow
def test_exponential_param_gradient_matches_plain(key):
    """Gradients through the frame (G depends on the learnable C_0) equal the plain solver's."""
    theory, *flows = _nonlinear_flow_pair()
    params = flows[0].init(key)

    def loss(flow, p):
        phi, log_p = flow.sample_log_prob(p, jax.random.fold_in(key, 2), 4)
        return jnp.mean(log_p + theory.euclidean_action(phi))

    g_plain, g_exp = (jax.grad(lambda p, f=f: loss(f, p))(params) for f in flows)
    for a, b in zip(jax.tree_util.tree_leaves(g_exp), jax.tree_util.tree_leaves(g_plain)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_integrator_validation():
    theory = qrg.Phi4.from_params(d=1, N=4, a=1.0, m2=0.5, lam=0.0)
    scheme = qrg.make_scheme("carosso", theory.lattice, M=1.0)
    model = make_model("gaussian", theory.lattice, scheme)
    with pytest.raises(QRGInputError, match="integrator"):
        ProbabilityFlow(model, scheme, integrator="magnus")
    a = ProbabilityFlow(model, scheme, integrator="exponential")
    b = ProbabilityFlow(model, scheme, integrator="plain")
    assert a != b and hash(a) != hash(b) and "exponential" in repr(a)
