"""The Gerdes et al. (2022) φ⁴ point and its mapping onto qrg's Euclidean action (benchmarks/gerdes_flow.py)."""

import importlib.util
import math
import pathlib

import jax
import numpy as np
import pytest

import qrg
from qrg._validation import QRGInputError

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gerdes_flow.py"
_spec = importlib.util.spec_from_file_location("gerdes_flow", _PATH)
gerdes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gerdes)


def _gerdes_action_loops(phi, m2, lam):
    """Their action written out site by site (independent of the vectorised version)."""
    L = phi.shape[0]
    s = 0.0
    for x in range(L):
        for y in range(L):
            v = phi[x, y]
            s += (phi[(x + 1) % L, y] - v) ** 2 + (phi[x, (y + 1) % L] - v) ** 2 + m2 * v**2 + lam * v**4
    return s


@pytest.mark.parametrize("L", [4, 6])
def test_gerdes_action_matches_site_sum(L):
    rng = np.random.default_rng(L)
    phi = rng.normal(size=(3, L, L))
    lam = gerdes.gerdes_lambda(6)
    got = np.asarray(gerdes.gerdes_action(phi, -4.0, lam))
    want = np.array([_gerdes_action_loops(p, -4.0, lam) for p in phi])
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("L, lam_g", [(6, 6.975), (8, 6.008), (16, None)])
def test_action_mapping_is_exact(L, lam_g):
    """S_G(ϕ) = S_E(√2 ϕ) with m² = m_G², λ = 6 λ_G, for random (also large, non-Gaussian) fields."""
    theory = gerdes.qrg_theory(L, -4.0, lam_g)
    lam_g = gerdes.gerdes_lambda(L) if lam_g is None else lam_g
    assert theory.m2 == -4.0 and theory.lam == pytest.approx(6.0 * lam_g)
    rng = np.random.default_rng(0)
    phi_g = rng.normal(scale=1.5, size=(5, L, L))
    s_g = np.asarray(gerdes.gerdes_action(phi_g, -4.0, lam_g))
    s_e = np.asarray(theory.euclidean_action(gerdes.FIELD_SCALE * phi_g))
    np.testing.assert_allclose(s_e, s_g, rtol=1e-12)
    # differences of the action (what importance weights and Metropolis ratios see) agree too
    np.testing.assert_allclose(np.diff(s_e), np.diff(s_g), rtol=1e-10, atol=1e-9)


def test_log_density_offset_is_the_jacobian():
    """log p_G(ϕ) = log p_E(√2 ϕ) + (L²/2) log 2: checked on a Gaussian (λ = 0, m² > 0), where both
    normalisations are known in closed form."""
    L, m2 = 4, 0.7
    lat = qrg.Lattice(2, L)
    # Gerdes quadratic form: S_G = ϕᵀ A_G ϕ with A_G(k) = p̂² + m²  ->  log Z_G = Σ_k ½ log(π / A_G(k))
    a_g = lat.phat2 + m2
    log_z_g = float(np.sum(0.5 * np.log(np.pi / a_g)))
    # qrg: S_E = ½ φᵀ (p̂² + m²) φ  ->  log Z_E = Σ_k ½ log(2π / (p̂² + m²))
    log_z_e = float(np.sum(0.5 * np.log(2 * np.pi / (lat.phat2 + m2))))
    theory = qrg.Phi4(lat, m2, 0.0)
    phi_g = np.random.default_rng(1).normal(size=(L, L))
    log_p_g = -float(gerdes.gerdes_action(phi_g, m2, 0.0)) - log_z_g
    log_p_e = -float(theory.euclidean_action(gerdes.FIELD_SCALE * phi_g)) - log_z_e
    assert log_p_g - log_p_e == pytest.approx(gerdes.log_jacobian(L), rel=1e-12)


def test_gerdes_lambda_table_and_interpolation():
    assert gerdes.gerdes_lambda(12) == 5.276 and gerdes.gerdes_lambda(32) == 4.572
    lam16 = gerdes.gerdes_lambda(16)
    # linear in 1/L between L = 12 and L = 20
    w = (1 / 12 - 1 / 16) / (1 / 12 - 1 / 20)
    assert lam16 == pytest.approx(5.276 + w * (4.807 - 5.276), abs=5e-4)
    assert 4.807 < lam16 < 5.276
    with pytest.raises(QRGInputError, match="L"):
        gerdes.gerdes_lambda(4)


def test_timeslice_xi_of_a_free_field():
    """Gerdes et al.'s time-slice estimator recovers ξ = 1/m_eff of a free field with cosh m_eff = 1 + m²/2."""
    L, m2 = 16, 0.25
    lat = qrg.Lattice(2, L)
    theory = qrg.Phi4(lat, m2, 0.0)
    # exact Gaussian samples of the free Euclidean field: <|φ̃(k)|²> = L² / (p̂² + m²)
    key = jax.random.PRNGKey(0)
    white = np.asarray(jax.random.normal(key, (4000, L, L)))
    phi = np.real(np.fft.ifft2(np.fft.fft2(white) / np.sqrt(lat.phat2 + m2)))
    xi_exact = 1.0 / math.acosh(1.0 + m2 / 2.0)
    xi = gerdes.timeslice_xi(phi)
    assert xi == pytest.approx(xi_exact, rel=0.05)
    assert theory.is_free


def test_weight_diagnostics_locates_the_heavy_weights():
    rng = np.random.default_rng(3)
    phi = rng.normal(scale=0.1, size=(400, 4, 4))
    log_w = np.zeros(400)
    d = gerdes.weight_diagnostics(phi, log_w, np.abs(phi.mean(axis=(1, 2))))
    assert d["top1pct_weight_share"] == pytest.approx(0.01)
    # make the 4 largest-|M| samples carry almost all the weight
    m = gerdes.abs_magnetisation(phi)
    log_w[np.argsort(m)[-4:]] = 20.0
    d = gerdes.weight_diagnostics(phi, log_w, m)
    assert d["top1pct_weight_share"] > 0.99
    assert d["top1pct_mean_abs_M"] == pytest.approx(np.sort(m)[-4:].mean())
    assert d["corr_logw_abs_M"] > 0.3
