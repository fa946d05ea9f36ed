"""Energy estimators (design §3.3) on exactly known Gaussian wavefunctions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qrg import FourierGaussian, Lattice, Phi4, QRGInputError
from qrg.groundstate.estimators import (
    energy_of_distribution,
    estimate_energy,
    laplacian_exact,
    laplacian_hutchinson,
    local_energy,
)

K_SIGMA = 5.0


def gaussian_energy(theory, variance):
    """<H> of |Ψ|² = N(0, C), C = diag c_k, at λ = 0: Σ_k [1/(8 a^d c_k) + (a^d/2) ω_k² c_k]."""
    ad = theory.lattice.volume_element
    w2 = theory.lattice.phat2 + theory.m2
    return float(np.sum(1.0 / (8 * ad * variance) + 0.5 * ad * w2 * variance))


@pytest.mark.parametrize("d,N,a", [(1, 8, 1.0), (2, 3, 0.7), (1, 1, 1.0)])
def test_exact_free_ground_state(key, d, N, a):
    theory = Phi4(Lattice(d, N, a), m2=0.8, lam=0.0)
    e0 = theory.free_ground_energy()
    st = energy_of_distribution(theory, theory.free_ground_state(), key, 4000, laplacian="exact")
    # ibp estimator: unbiased, fluctuates
    assert abs(st.ibp.mean - e0) < K_SIGMA * st.ibp.err
    assert st.ibp.err > 0
    # local energy: constant = E0 at the exact eigenstate (zero-variance principle)
    assert st.local.variance < 1e-20
    assert abs(st.local.mean - e0) < 1e-10 * max(1.0, e0)
    # <φ²>
    assert abs(st.phi2.mean - theory.free_phi2()) < K_SIGMA * st.phi2.err


def test_laplacian_exact_matches_dense_hessian(key):
    lat = Lattice(2, 3, 1.0)
    c = jnp.asarray(0.3 + lat.phat2 / 10.0)
    dist = FourierGaussian(lat, c)
    phi = dist.sample(key, (5,))
    # a non-Gaussian log density: Gaussian plus a quartic term coupling neighbours
    def logp(x):
        return dist.log_prob(x) - 0.1 * jnp.sum((x * jnp.roll(x, 1, axis=-1)) ** 2, axis=(-2, -1))

    lap = laplacian_exact(logp, phi, lat)
    hess = jax.jit(jax.vmap(jax.hessian(lambda y: logp(y[None])[0])))
    dense = jnp.trace(hess(phi).reshape(5, 9, 9), axis1=1, axis2=2)
    np.testing.assert_allclose(lap, np.array(dense), rtol=1e-12)


def test_hutchinson_is_unbiased(key):
    lat = Lattice(1, 6)
    dist = FourierGaussian(lat, jnp.asarray(0.2 + lat.phat2 / 7.0))
    phi = dist.sample(key, (2000,))
    est = laplacian_hutchinson(dist.log_prob, phi, lat, jax.random.fold_in(key, 1), n_probes=2)
    exact = float(dist.score_divergence())
    err = float(jnp.std(est) / np.sqrt(est.size))
    assert err > 0  # a circulant (non-diagonal) Hessian: Rademacher probes do fluctuate
    assert abs(float(jnp.mean(est)) - exact) < K_SIGMA * err


@pytest.mark.parametrize("laplacian", ["exact", "hutchinson"])
def test_wrong_gaussian_both_estimators_agree_and_are_variational(key, laplacian):
    theory = Phi4.chain(8, m2=1.0, lam=0.0)
    e0 = theory.free_ground_energy()
    wrong = 1.0 / (2.0 * np.sqrt(theory.lattice.phat2 + 3.0))  # free state of the wrong mass
    dist = FourierGaussian(theory.lattice, jnp.asarray(wrong))
    st = energy_of_distribution(theory, dist, key, 6000, laplacian=laplacian)
    exact_e = gaussian_energy(theory, wrong)
    assert exact_e > e0
    e_ibp, e_loc = st.ibp, st.local
    assert abs(e_ibp.mean - exact_e) < K_SIGMA * e_ibp.err
    assert abs(e_loc.mean - exact_e) < K_SIGMA * e_loc.err
    assert abs(e_ibp.mean - e_loc.mean) < K_SIGMA * np.hypot(e_ibp.err, e_loc.err)
    assert e_loc.variance > 1e-3  # not an eigenstate
    assert e_ibp.mean - e0 > K_SIGMA * e_ibp.err  # variational principle, resolved


def test_interacting_energy_of_gaussian_matches_wick(key):
    """At λ > 0 a Gaussian trial state has <φ⁴> = 3 <φ²>²: the estimators must agree with that."""
    theory = Phi4.chain(4, m2=1.0, lam=6.0)
    lat = theory.lattice
    c = 1.0 / (2.0 * np.sqrt(lat.phat2 + 1.5))
    dist = FourierGaussian(lat, jnp.asarray(c))
    st = energy_of_distribution(theory, dist, key, 8000, laplacian="exact")
    phi2 = np.sum(c) / lat.n_sites
    w2 = lat.phat2 + theory.m2
    exact_e = float(np.sum(1.0 / (8 * c) + 0.5 * w2 * c) + lat.n_sites * theory.lam / 24 * 3 * phi2**2)
    assert abs(st.ibp.mean - exact_e) < K_SIGMA * st.ibp.err
    assert abs(st.local.mean - exact_e) < K_SIGMA * st.local.err


def test_local_energy_formula_by_hand():
    """Single site, p = N(0, s²): E_loc(x) = 1/(4 s²) − x²/(8 s⁴) + ½ m² x² + λ x⁴/24."""
    theory = Phi4.chain(1, m2=1.3, lam=2.0)
    s2 = 0.37
    x = jnp.array([[0.3], [-1.1]])
    g = -x / s2
    lap = jnp.full((2,), -1.0 / s2)
    el = local_energy(theory, x, g, lap)
    xx = np.array([0.3, -1.1])
    ref = 1 / (4 * s2) - xx**2 / (8 * s2**2) + 0.5 * 1.3 * xx**2 + 2.0 * xx**4 / 24
    np.testing.assert_allclose(el, ref, rtol=1e-13)


def test_bad_input(key):
    theory = Phi4.chain(4, m2=1.0, lam=0.0)
    phi = jnp.zeros((3, 4))
    with pytest.raises(QRGInputError, match="laplacian"):
        estimate_energy(theory, phi, phi, log_prob=lambda x: jnp.zeros(3), laplacian="magic")
    with pytest.raises(QRGInputError, match="key"):
        estimate_energy(theory, phi, phi, log_prob=lambda x: jnp.zeros(3), laplacian="hutchinson")
    with pytest.raises(QRGInputError, match="shape"):
        estimate_energy(theory, phi, jnp.zeros((3, 5)))
    with pytest.raises(FloatingPointError):
        estimate_energy(theory, phi.at[0, 0].set(jnp.nan), phi)


# ---------------------------------------------------------------------------- Stein control variates
@pytest.mark.parametrize("d,N", [(1, 8), (2, 4)])
def test_stein_features_have_zero_mean(key, d, N):
    """E_p[g·∇f + Δf] = 0 for the exact score g of p (here a non-free Gaussian)."""
    from qrg.groundstate.estimators import stein_features

    lat = Lattice(d, N, 1.0)
    c = 1.0 / (2.0 * np.sqrt(lat.phat2 + 0.7)) * (1.0 + 0.3 * np.cos(np.sqrt(lat.phat2)))
    dist = FourierGaussian(lat, jnp.asarray(c))
    phi = dist.sample(key, (20000,))
    h = np.asarray(stein_features(lat, phi, dist.score(phi)))
    assert h.shape == (20000, lat.momentum_shells()[1] + 2 + 2 * min(3, N // 2) + 3)
    z = h.mean(axis=0) / (h.std(axis=0, ddof=1) / np.sqrt(h.shape[0]))
    assert np.all(np.abs(z) < K_SIGMA), z
    # and they are not trivially zero: a wrong score breaks the identity
    h_wrong = np.asarray(stein_features(lat, phi, 1.5 * dist.score(phi)))
    z_wrong = h_wrong.mean(axis=0) / (h_wrong.std(axis=0, ddof=1) / np.sqrt(h.shape[0]))
    assert np.max(np.abs(z_wrong)) > 20


def test_control_variates_are_exact_at_the_free_ground_state(key):
    """At the exact Gaussian ground state e_ibp − Σ c h is constant = E0 (quadratic features suffice)."""
    theory = Phi4.chain(8, m2=0.8, lam=0.0)
    e0 = theory.free_ground_energy()
    st = energy_of_distribution(theory, theory.free_ground_state(), key, 512, laplacian="none")
    assert st.ibp.variance > 0.1  # the plain estimator fluctuates
    # zero up to the 1e-10 relative ridge of the least-squares fit
    assert st.cv.variance < 1e-15 * st.ibp.variance and abs(st.cv.mean - e0) < 1e-10 * e0


def test_control_variates_unbiased_and_smaller_error_for_interacting_gaussian(key):
    """A Gaussian trial state at λ > 0 (exact <H> by Wick): the cross-fitted estimate is unbiased
    and its error bar is much smaller than the plain estimator's."""
    theory = Phi4.chain(8, m2=1.0, lam=6.0)
    lat = theory.lattice
    c = 1.0 / (2.0 * np.sqrt(lat.phat2 + 2.0))
    dist = FourierGaussian(lat, jnp.asarray(c))
    phi2 = np.sum(c) / lat.n_sites
    exact_e = float(np.sum(1.0 / (8 * c) + 0.5 * (lat.phat2 + theory.m2) * c) + lat.n_sites * theory.lam / 8 * phi2**2)
    errs = []
    for i in range(3):
        st = energy_of_distribution(theory, dist, jax.random.fold_in(key, i), 4000, laplacian="none")
        cv = st.cv
        assert abs(cv.mean - exact_e) < K_SIGMA * cv.err, (cv, exact_e)
        errs.append(cv.err / st.ibp.err)
    assert max(errs) < 0.1, errs


def test_control_variate_fit_from_moments_matches_least_squares():
    from qrg.groundstate.estimators import ControlVariateFit, fit_control_variates

    rng = np.random.default_rng(0)
    h = rng.normal(size=(300, 4))
    e = 2.0 + h @ np.array([0.5, -1.0, 0.0, 3.0]) + 0.01 * rng.normal(size=300)
    fit = ControlVariateFit(4, decay=0.5)
    assert np.all(fit.coef == 0)  # no data yet: no correction
    for part in np.array_split(np.arange(300), 3):
        # decay 0.5: later batches weigh more; compare with the weighted least squares
        fit.update((len(part), h[part].sum(0), h[part].T @ h[part], e[part].sum(), h[part].T @ e[part]))
    np.testing.assert_allclose(fit.coef, [0.5, -1.0, 0.0, 3.0], atol=0.01)
    np.testing.assert_allclose(fit_control_variates(e, h), [0.5, -1.0, 0.0, 3.0], atol=0.01)
    with pytest.raises(QRGInputError, match="needs at least"):
        from qrg.groundstate.estimators import control_variate_energy

        control_variate_energy(e[:8], h[:8])


@pytest.mark.parametrize("d,N", [(1, 7), (2, 4)])
def test_stein_features_match_autodiff(key, d, N):
    """The hand-written g·∇f + Δf of every feature against jax.grad / jax.hessian of f itself."""
    from qrg.groundstate.estimators import stein_features

    lat = Lattice(d, N, 1.0)
    k1, k2 = jax.random.split(key)
    phi = jax.random.normal(k1, (3,) + lat.shape)
    g = jax.random.normal(k2, (3,) + lat.shape)
    masks = lat.momentum_shell_masks()
    fs = [lambda x, m=m: 0.5 * jnp.sum(x * lat.apply_diagonal(x, m)) for m in masks]
    fs += [lambda x: 0.25 * jnp.sum(x**4), lambda x: jnp.sum(x**6) / 6.0]
    for r in range(1, min(3, N // 2) + 1):
        fs.append(lambda x, r=r: sum(jnp.sum(x**2 * jnp.roll(x, -r, a) ** 2) for a in range(d)))
        fs.append(lambda x, r=r: sum(jnp.sum(x**3 * jnp.roll(x, -r, a) + x * jnp.roll(x, -r, a) ** 3)
                                     for a in range(d)))
    V = lat.n_sites
    fs += [lambda x: jnp.sum(x) ** 4 / (4 * V), lambda x: jnp.sum(x) ** 6 / (6 * V**2),
           lambda x: jnp.sum(x) ** 2 * jnp.sum(x**2) / V]
    expected = np.array([[float(jnp.sum(gb * jax.grad(f)(pb)) + jnp.trace(jax.hessian(f)(pb).reshape(
        lat.n_sites, lat.n_sites))) for f in fs] for pb, gb in zip(phi, g)])
    np.testing.assert_allclose(np.asarray(stein_features(lat, phi, g)), expected, rtol=1e-10, atol=1e-10)
