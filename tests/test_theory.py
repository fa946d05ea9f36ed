import jax
import numpy as np
import pytest

from qrg import Lattice, Phi4, QRGInputError


def brute_force_free(lat, m2):
    """Normal modes of the N^d × N^d coupling matrix a^d(−Δ + m²) with masses a^d."""
    ad = lat.volume_element
    coupling = ad * (-lat.laplacian_matrix() + m2 * np.eye(lat.n_sites))
    # H = Σ p²/(2 a^d) + ½ φᵀ coupling φ  →  ω² = eig(coupling)/a^d
    omega2 = np.linalg.eigvalsh(coupling / ad)
    omega = np.sqrt(omega2)
    e0 = 0.5 * omega.sum()
    # ground-state covariance (2 a^d Ω)^-1 with Ω = sqrt(coupling/a^d)
    w, v = np.linalg.eigh(coupling / ad)
    cov = v @ np.diag(1.0 / (2 * ad * np.sqrt(w))) @ v.T
    return e0, np.mean(np.diag(cov)), cov


@pytest.mark.parametrize("d,N,a,m2", [(1, 9, 1.0, 1.0), (1, 16, 0.5, 0.3), (2, 5, 1.0, 0.7), (2, 4, 0.6, 2.0),
                                      (3, 3, 1.0, 1.0), (3, 4, 0.8, 0.5)])
def test_free_energy_and_phi2_against_brute_force(d, N, a, m2):
    th = Phi4(Lattice(d, N, a), m2, 0.0)
    e0, phi2, cov = brute_force_free(th.lattice, m2)
    np.testing.assert_allclose(th.free_ground_energy(), e0, rtol=1e-12)
    np.testing.assert_allclose(th.free_phi2(), phi2, rtol=1e-12)
    np.testing.assert_allclose(th.free_ground_state().covariance_matrix(), cov, atol=1e-12)


def test_single_site_free_oscillator():
    th = Phi4(Lattice(1, 1), 4.0, 0.0)
    assert np.isclose(th.free_ground_energy(), 1.0)  # ω = 2
    assert np.isclose(th.free_phi2(), 0.25)


def explicit_potential(phi, lat, m2, lam):
    """V by an explicit loop over sites and links (independent of the vectorised code)."""
    phi = np.asarray(phi)
    v = 0.0
    for n in np.ndindex(lat.shape):
        for i in range(lat.d):
            nb = list(n)
            nb[i] = (nb[i] + 1) % lat.N
            v += 0.5 * ((phi[tuple(nb)] - phi[n]) / lat.a) ** 2
        v += 0.5 * m2 * phi[n] ** 2 + lam / 24 * phi[n] ** 4
    return lat.volume_element * v


@pytest.mark.parametrize("d,N,a", [(1, 6, 1.0), (2, 3, 0.5), (3, 2, 1.2)])
def test_potential_and_gradient(d, N, a, key):
    th = Phi4(Lattice(d, N, a), -0.5, 2.4)
    phi = jax.random.normal(key, th.lattice.shape)
    np.testing.assert_allclose(th.potential(phi), explicit_potential(phi, th.lattice, -0.5, 2.4), rtol=1e-12)
    np.testing.assert_allclose(th.potential_grad(phi), jax.grad(th.potential)(phi), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(th.hmc_force(phi), -jax.grad(th.euclidean_action)(phi), rtol=1e-10, atol=1e-12)
    batch = jax.random.normal(key, (3,) + th.lattice.shape)
    assert th.potential(batch).shape == (3,)


def test_free_propagator_formula():
    th = Phi4(Lattice(2, 4, 0.5), 1.5, 0.0)
    # <|φ̃(k)|²> = N^d c(k) for a Gaussian with covariance eigenvalues c(k)
    np.testing.assert_allclose(th.free_propagator(), th.lattice.n_sites * th.free_euclidean_variance())
    # the Euclidean free field is e^{-S_E}: its score is −∇S_E
    phi = np.linspace(-1, 1, 16).reshape(4, 4)
    np.testing.assert_allclose(th.free_euclidean().score(phi), th.hmc_force(phi), atol=1e-12)


@pytest.mark.parametrize(
    "m2,lam,match",
    [(1.0, -0.1, "lam"), (0.0, 0.0, "m2 must be > 0"), (-1.0, 0.0, "m2 must be > 0"), (float("nan"), 1.0, "m2"),
     ("x", 1.0, "m2")],
)
def test_theory_validation(m2, lam, match):
    with pytest.raises(QRGInputError, match=match):
        Phi4(Lattice(1, 4), m2, lam)


def test_free_quantities_require_free_theory():
    th = Phi4(Lattice(1, 4), 1.0, 6.0)
    with pytest.raises(QRGInputError, match="free theory"):
        th.free_ground_energy()


def test_wrong_field_shape_is_clear_error():
    th = Phi4(Lattice(2, 4), 1.0, 1.0)
    with pytest.raises(QRGInputError, match="phi must have trailing shape"):
        th.potential(np.zeros((4, 3)))
