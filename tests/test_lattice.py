import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qrg import Lattice, QRGInputError


@pytest.mark.parametrize("d,N,a", [(1, 7, 1.0), (1, 8, 0.5), (2, 4, 1.3), (3, 3, 0.7)])
def test_laplacian_matches_neighbour_matrix_and_phat2(d, N, a, key):
    lat = Lattice(d, N, a)
    phi = jax.random.normal(key, lat.shape)
    dense = lat.laplacian_matrix()
    np.testing.assert_allclose(lat.laplacian(phi).ravel(), dense @ np.asarray(phi).ravel(), atol=1e-12)
    # eigenvalues of −Δ are p̂²
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(-dense)), np.sort(lat.phat2.ravel()), atol=1e-10)
    # and the Laplacian is the Fourier-diagonal operator −p̂²
    np.testing.assert_allclose(lat.apply_diagonal(phi, -lat.phat2), lat.laplacian(phi), atol=1e-12)


def test_parseval_and_gradient_energy(key):
    lat = Lattice(2, 5, 0.8)
    phi = jax.random.normal(key, (3,) + lat.shape)
    lhs = jnp.sum(phi**2, axis=lat.axes)
    rhs = jnp.sum(jnp.abs(lat.fft(phi)) ** 2, axis=lat.axes) / lat.n_sites
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)
    # ½ Σ (∇φ)² = −½ φᵀ Δ φ  (summation by parts on the torus)
    np.testing.assert_allclose(lat.gradient_energy(phi), -0.5 * lat.inner(phi, lat.laplacian(phi)), rtol=1e-12)


def test_apply_diagonal_matches_dense(key):
    lat = Lattice(2, 4)
    eig = 1.0 / (lat.phat2 + 0.3)
    phi = jax.random.normal(key, lat.shape)
    dense = lat.diagonal_matrix(eig)
    np.testing.assert_allclose(dense, dense.T, atol=1e-12)
    np.testing.assert_allclose(lat.apply_diagonal(phi, eig).ravel(), dense @ np.asarray(phi).ravel(), atol=1e-12)


def test_momenta_and_cutoff():
    lat = Lattice(2, 6, 0.25)
    assert lat.momenta.shape == (2, 6, 6)
    assert np.isclose(lat.phat2.max(), 2 * 4 / 0.25**2)
    assert np.isclose(lat.cutoff, np.sqrt(lat.phat2.max()))


@pytest.mark.parametrize(
    "kwargs,name",
    [({"d": 0, "N": 4}, "d"), ({"d": 1, "N": 0}, "N"), ({"d": 1, "N": -3}, "N"), ({"d": 1, "N": 2.5}, "N"),
     ({"d": 1, "N": 4, "a": 0.0}, "a"), ({"d": 1, "N": 4, "a": -1.0}, "a")],
)
def test_lattice_validation(kwargs, name):
    with pytest.raises(QRGInputError, match=rf"^{name} "):
        Lattice(**kwargs)


def test_single_site_allowed():
    lat = Lattice(1, 1)
    assert lat.n_sites == 1 and np.all(lat.phat2 == 0)


def test_field_shape_checked():
    lat = Lattice(2, 4)
    with pytest.raises(QRGInputError, match="phi must have trailing shape"):
        lat.check_field(np.zeros((4, 5)))
    with pytest.raises(QRGInputError, match="phi must have trailing shape"):
        lat.check_field(np.zeros(16))


@pytest.mark.parametrize("d,N", [(1, 1), (1, 6), (2, 3)])
def test_gaussian_log_prob_hessian_is_minus_the_precision_even_where_modes_vanish(d, N, key):
    """|φ̃(k)|² taken through abs has second derivative 0 where a mode vanishes (every k ≠ 0 of a uniform
    field, the single site at φ = 0): the Hessian of the Gaussian's log-density must be −C^-1 there too,
    as it is anywhere else (it entered E_loc through the prior of every flow)."""
    from qrg.gaussian import FourierGaussian

    lat = Lattice(d, N, 1.0)
    gauss = FourierGaussian(lat, 1.0 / (lat.phat2 + 0.7))
    precision = np.linalg.inv(gauss.covariance_matrix())
    for phi in (jnp.zeros(lat.shape), jnp.full(lat.shape, 0.3), jax.random.normal(key, lat.shape)):
        hess = jax.hessian(lambda x: gauss.log_prob(x[None])[0])(phi).reshape(lat.n_sites, lat.n_sites)
        np.testing.assert_allclose(hess, -precision, atol=1e-10)
    np.testing.assert_allclose(lat.power(phi), jnp.abs(lat.fft(phi)) ** 2, rtol=1e-12)
