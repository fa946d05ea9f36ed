"""Estimators on synthetic Gaussian data with known m_R, Z (exact Fourier-Gaussian draws)."""

import jax
import numpy as np
import pytest

from qrg._validation import QRGInputError
from qrg.gaussian import FourierGaussian
from qrg.lattice import Lattice
from qrg.observables import independent_momenta, measure, to_json, two_point


def _gaussian(lat, Z, mR2):
    # G2(p) = a^d N^-d <|φ̃|²> = Z/(p̂² + m_R²) exactly
    return FourierGaussian(lat, Z / (lat.volume_element * (lat.phat2 + mR2)))


@pytest.mark.parametrize("d,N,a,Z,mR2", [(2, 12, 0.5, 1.7, 0.8), (1, 32, 1.0, 0.6, 0.3), (3, 6, 1.0, 1.0, 1.5)])
def test_mass_and_Z_from_gaussian(d, N, a, Z, mR2):
    lat = Lattice(d, N, a)
    phi = _gaussian(lat, Z, mR2).sample(jax.random.PRNGKey(d), (8000,))
    o = measure(phi, lat)
    vol = lat.length**d
    assert abs(o["m_R2"].mean - mR2) < 4 * o["m_R2"].err
    assert abs(o["Z"].mean - Z) < 4 * o["Z"].err
    assert abs(o["chi"].mean - Z / mR2) < 4 * o["chi"].err
    assert abs(o["xi"].mean - 1 / np.sqrt(mR2)) < 4 * o["xi"].err
    # Gaussian: zero connected four-point function, Binder cumulant 0
    assert abs(o["lambda_R"].mean) < 4 * o["lambda_R"].err
    assert abs(o["binder"].mean) < 4 * o["binder"].err
    # <φ²> = N^-d Σ_k c(k)/... : exact site variance
    phi2 = float(np.mean(Z / (lat.volume_element * (lat.phat2 + mR2))))
    assert abs(o["phi2"].mean - phi2) < 4 * o["phi2"].err
    # <|m|> of a Gaussian m with variance chi/V: sqrt(2 var/π)
    assert abs(o["abs_m"].mean - np.sqrt(2 * Z / mR2 / vol / np.pi)) < 4 * o["abs_m"].err
    assert o["m_R"].tau_int == pytest.approx(0.5)


def test_rescaling_by_cutoff_ratio():
    lat = Lattice(2, 8)
    phi = _gaussian(lat, 1.0, 0.5).sample(jax.random.PRNGKey(0), (500,))
    o1 = measure(phi, lat)
    o2 = measure(phi, lat, r_t=0.5)
    assert o2["m_R2_rescaled"].mean == pytest.approx(o1["m_R2"].mean / 0.25)
    assert o2["lambda_R_rescaled"].mean == pytest.approx(o1["lambda_R"].mean / 0.25)
    assert o2["Z"].mean == pytest.approx(o1["Z"].mean)
    o0 = measure(phi, lat, r_t=0.0)
    assert np.isnan(o0["m_R2_rescaled"].mean)
    assert to_json(o0)["m_R2_rescaled"]["mean"] is None


def test_markov_chain_errors_use_tau():
    # AR(1) chains of Gaussian fields: φ_{s+1} = ρ φ_s + sqrt(1-ρ²) ξ  → τ_int = ½ (1+ρ)/(1−ρ)
    lat = Lattice(1, 8)
    g = _gaussian(lat, 1.0, 1.0)
    rho, C, S = 0.8, 8, 4000
    noise = np.asarray(g.sample(jax.random.PRNGKey(3), (C, S)))
    chain = np.empty_like(noise)
    chain[:, 0] = noise[:, 0]
    for s in range(1, S):
        chain[:, s] = rho * chain[:, s - 1] + np.sqrt(1 - rho**2) * noise[:, s]
    o = measure(chain, lat)
    tau_m2 = 0.5 * (1 + rho**2) / (1 - rho**2)  # m² is quadratic: autocorrelation ρ²
    assert o["m2"].tau_int == pytest.approx(tau_m2, rel=0.25)
    assert abs(o["m_R2"].mean - 1.0) < 4 * o["m_R2"].err
    assert o["m_R2"].tau_int > 1.0


def test_two_point_and_independent_momenta():
    lat = Lattice(2, 6)
    mask = independent_momenta(lat)
    # 36 momenta: 4 self-conjugate (components in {0, 3}), 16 pairs → 20 independent
    assert mask.sum() == 20
    phi = _gaussian(lat, 1.0, 1.0).sample(jax.random.PRNGKey(1), (4000,))
    g2 = two_point(phi, lat)
    z = (g2["mean"] - 1.0 / (lat.phat2 + 1.0)) / g2["err"]
    assert np.max(np.abs(z[mask])) < 4.5


def test_bad_shapes():
    lat = Lattice(2, 4)
    with pytest.raises(QRGInputError):
        measure(np.zeros((5, 3, 4)), lat)
    with pytest.raises(QRGInputError):
        measure(np.zeros((2, 3, 4, 4, 4)), lat)
