"""RG schemes: exact kernels against SDE simulation, bridges, scores, priors (design §3.1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from qrg import Carosso, CarossoM, FourierGaussian, Lattice, Polchinski, PolchinskiM, QRGInputError, make_scheme


def mode_stats(lat, samples, mean_field):
    """Per Fourier mode: mean of φ̃ and E|φ̃ − mean|²/N^d with error bars from the samples."""
    fk = np.asarray(jnp.fft.fftn(samples, axes=lat.axes))
    mk = np.asarray(jnp.fft.fftn(mean_field, axes=lat.axes))
    dev = fk - mk
    n = samples.shape[0]
    p = np.abs(dev) ** 2 / lat.n_sites
    return dev.mean(0), np.abs(dev).std(0) / np.sqrt(n), p.mean(0), p.std(0) / np.sqrt(n)


SCHEMES = [
    ("carosso-M", lambda lat: CarossoM(lat, M=1.0)),
    ("polchinski-M", lambda lat: PolchinskiM(lat, M=1.0)),
]


@pytest.mark.parametrize("name,make", SCHEMES)
@pytest.mark.parametrize("d,N,a", [(1, 8, 1.0), (2, 4, 0.7)])
def test_kernel_matches_euler_maruyama(name, make, d, N, a, key):
    lat = Lattice(d, N, a)
    scheme = make(lat)
    t = 0.3
    k0, k1, k2 = jax.random.split(key, 3)
    phi0 = jax.random.normal(k0, lat.shape)
    n = 4000
    batch0 = jnp.broadcast_to(phi0, (n,) + lat.shape)
    em = scheme.simulate_sde(k1, batch0, t, n_steps=1500)
    exact = scheme.sample_transition(k2, batch0, t)
    mean_exact = scheme.transition_mean(phi0, t)
    var_exact = np.asarray(scheme.kernel_variance(t))
    for samples in (em, exact):
        dm, dm_err, p, p_err = mode_stats(lat, samples, mean_exact)
        # mean: deviation of the sample mean from α φ̃_0 within 5σ per mode
        assert np.all(np.abs(dm) < 5 * dm_err + 1e-12), name
        # covariance eigenvalue per mode
        z = (p - var_exact) / p_err
        assert np.max(np.abs(z)) < 5.0, (name, z)


@pytest.mark.parametrize("name,make", SCHEMES)
def test_bridge_against_kernel_applied_to_gaussian_samples(name, make, key):
    lat = Lattice(2, 5, 1.0)
    scheme = make(lat)
    c0 = 1.0 / (2.0 * np.sqrt(lat.phat2 + 0.5))
    k0, k1 = jax.random.split(key)
    n = 6000
    phi0 = FourierGaussian(lat, jnp.asarray(c0)).sample(k0, (n,))
    for t in (0.05, 0.4):
        phit = scheme.sample_transition(k1, phi0, t)
        _, _, p, p_err = mode_stats(lat, phit, jnp.zeros(lat.shape))
        ct = np.asarray(scheme.bridge_variance(t, c0))
        assert np.max(np.abs((p - ct) / p_err)) < 5.0


@pytest.mark.parametrize("name,make", SCHEMES + [("carosso", lambda lat: Carosso(lat, 0.0))])
def test_kernel_score_is_gradient_of_log_density(name, make, key):
    lat = Lattice(2, 4, 0.9)
    scheme = make(lat)
    k0, k1 = jax.random.split(key)
    phi0 = jax.random.normal(k0, lat.shape)
    phit = jax.random.normal(k1, lat.shape)
    t = 0.2
    auto = jax.grad(lambda x: scheme.transition_log_prob(x, phi0, t))(phit)
    np.testing.assert_allclose(scheme.transition_score(phit, phi0, t), auto, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,make", SCHEMES)
def test_log_densities_are_normalised_against_dense_gaussian(name, make, key):
    lat = Lattice(2, 3, 1.1)
    scheme = make(lat)
    phi0 = jax.random.normal(key, lat.shape)
    x = jax.random.normal(jax.random.fold_in(key, 1), lat.shape)
    t = 0.25
    kern = scheme.transition(phi0, t)
    ref = multivariate_normal(np.asarray(kern.mean).ravel(), kern.covariance_matrix()).logpdf(np.asarray(x).ravel())
    np.testing.assert_allclose(kern.log_prob(x), ref, rtol=1e-10)
    prior = scheme.prior(0.3) if name.startswith("polchinski") else scheme.prior()
    ref = multivariate_normal(np.zeros(lat.n_sites), prior.covariance_matrix()).logpdf(np.asarray(x).ravel())
    np.testing.assert_allclose(prior.log_prob(x), ref, rtol=1e-10)
    np.testing.assert_allclose(prior.score(x), jax.grad(prior.log_prob)(x), rtol=1e-10, atol=1e-12)


def test_carosso_prior_is_stationary_and_limit_of_kernel():
    lat = Lattice(1, 6, 0.5)
    sch = CarossoM(lat, 1.0)
    var = np.asarray(sch.prior().variance)
    np.testing.assert_allclose(var, (1 / lat.volume_element) / (2 * (lat.phat2 + 1.0)))
    np.testing.assert_allclose(sch.kernel_variance(50.0), var, rtol=1e-12)
    # stationarity: the bridge from the prior is the prior
    np.testing.assert_allclose(sch.bridge_variance(0.7, var), var, rtol=1e-12)


def test_polchinski_free_flow_is_5_40():
    """With seed mass μ² = m², the free Euclidean theory flows to covariance K_t/(a^d(p̂²+m²)) (paper 5.40)."""
    lat = Lattice(2, 6, 0.5)
    m2 = 1.7
    sch = Polchinski(lat, M=0.8, mu2=m2)
    c0 = 1.0 / (lat.volume_element * (lat.phat2 + m2))
    for t in (0.0, 0.1, 0.6):
        np.testing.assert_allclose(sch.bridge_variance(t, c0), sch.cutoff_function(t) * c0, rtol=1e-12)


@pytest.mark.parametrize("name,make", SCHEMES)
def test_drift_and_noise_rates_generate_the_kernel(name, make):
    """dΣ/dt = −2AΣ + B and dα/dt = −Aα (the kernel solves the SDE's moment equations)."""
    lat = Lattice(1, 8, 1.0)
    sch = make(lat)
    t, h = 0.37, 1e-5
    dsig = (sch.kernel_variance(t + h) - sch.kernel_variance(t - h)) / (2 * h)
    np.testing.assert_allclose(dsig, -2 * sch.drift_rate(t) * sch.kernel_variance(t) + sch.diffusion_rate(t), rtol=1e-7)
    dalpha = (sch.mean_factor(t + h) - sch.mean_factor(t - h)) / (2 * h)
    np.testing.assert_allclose(dalpha, -sch.drift_rate(t) * sch.mean_factor(t), rtol=1e-7)


def test_cutoff_matches_7_3():
    lat = Lattice(2, 20, 0.05)
    sch = CarossoM(lat, 1.0)
    lam0 = 2 * np.sqrt(2) / 0.05
    assert np.isclose(sch.cutoff(0.0), lam0)
    for t in (1e-5, 1e-3, 0.1, 0.9, 2.0):
        expect = max(min(np.sqrt(max(1 / t - 1.0, 0.0)), lam0), 0.0)
        np.testing.assert_allclose(sch.cutoff(t), expect, rtol=1e-12)
        np.testing.assert_allclose(sch.cutoff_ratio(t), expect / lam0, rtol=1e-12)
    pol = PolchinskiM(lat, 1.0)
    assert np.isclose(pol.cutoff(0.0), lam0)
    assert float(pol.cutoff(1.0)) < float(pol.cutoff(0.5)) < lam0
    # Λ_t² = Λ0²/(e^{2t} − 1) − M², clipped to [0, Λ0]
    np.testing.assert_allclose(pol.cutoff(0.5), np.sqrt(lam0**2 / np.expm1(1.0) - 1.0), rtol=1e-12)


def test_unmodified_carosso_has_no_limiting_prior():
    sch = Carosso(Lattice(1, 8), M=0.0)
    with pytest.raises(QRGInputError, match="no limiting prior"):
        sch.prior()
    # but the zero mode has a finite-time kernel: a random walk with variance σ² t
    assert np.isclose(sch.kernel_variance(0.5)[0], 0.5)
    with pytest.raises(QRGInputError, match="no .*limiting prior"):
        PolchinskiM(Lattice(1, 8), 1.0).prior()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: CarossoM(Lattice(1, 4), M=0.0), "M"),
        (lambda: Carosso(Lattice(1, 4), M=-1.0), "M"),
        (lambda: PolchinskiM(Lattice(1, 4), M=-0.5), "M"),
        (lambda: Polchinski(Lattice(1, 4), M=0.0), "mu2"),
        (lambda: CarossoM(Lattice(1, 4)).kernel_variance(-0.1), "t must be"),
        (lambda: CarossoM(Lattice(1, 4)).sample_transition(jax.random.PRNGKey(0), jnp.zeros(4), -1.0), "t must be"),
        (lambda: CarossoM(Lattice(1, 4)).prior(-2.0), "T must be"),
        (lambda: CarossoM(Lattice(1, 4)).transition_mean(jnp.zeros(5), 0.1), "phi0 must have"),
        (lambda: make_scheme("wilson", Lattice(1, 4)), "scheme must be one of"),
    ],
)
def test_scheme_validation(call, match):
    with pytest.raises(QRGInputError, match=match):
        call()


def test_make_scheme_names():
    lat = Lattice(1, 4)
    assert isinstance(make_scheme("carosso", lat, 1.0), Carosso)
    assert isinstance(make_scheme("polchinski-M", lat, 1.0), Polchinski)


def test_schemes_are_jit_static():
    lat = Lattice(1, 8)
    sch = CarossoM(lat, 1.0)
    f = jax.jit(lambda s, x, t: s.transition_mean(x, t), static_argnums=0)
    np.testing.assert_allclose(f(sch, jnp.ones(8), 0.1), np.exp(-0.1) * np.ones(8), rtol=1e-12)
