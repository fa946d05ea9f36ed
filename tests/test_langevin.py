"""Kernelled Langevin samplers on the free theory and complex Langevin on the one-variable toy model."""

import jax
import numpy as np
import pytest

from qrg._validation import QRGInputError
from qrg.observables import independent_momenta, two_point
from qrg.euclidean.samplers.langevin import sample_mala, sample_ula, ula_free_stationary_variance
from qrg.theory import Phi4

THEORY = Phi4.from_params(d=2, N=6, a=1.0, m2=0.5, lam=0.0)


def _max_z(samples, exact_g2):
    g2 = two_point(samples, THEORY.lattice)
    mask = independent_momenta(THEORY.lattice)
    return float(np.max(np.abs((g2["mean"] - exact_g2) / g2["err"])[mask]))


def test_mala_free_theory_exact():
    res = sample_mala(THEORY, jax.random.PRNGKey(0), n_samples=1500, n_chains=4, n_warmup=300)
    assert 0.45 < res.mean_acceptance < 0.75  # adapted towards 0.574
    exact = 1.0 / (THEORY.lattice.phat2 + THEORY.m2)
    assert _max_z(res.samples, exact) < 4.5


def test_ula_free_theory_matches_its_exact_discretisation_bias():
    eps = 0.6
    res = sample_ula(THEORY, jax.random.PRNGKey(1), n_samples=1500, n_chains=4, n_warmup=100, step_size=eps)
    biased = THEORY.lattice.volume_element * ula_free_stationary_variance(THEORY, eps)
    assert _max_z(res.samples, biased) < 4.5
    # and the bias is visible: the exact propagator is excluded at p = 0
    exact = 1.0 / (THEORY.lattice.phat2 + THEORY.m2)
    assert _max_z(res.samples, exact) > 6.0


def test_kernel_validation():
    with pytest.raises(QRGInputError, match="kernel"):
        sample_mala(THEORY, jax.random.PRNGKey(0), n_samples=2, kernel=-np.ones((6, 6)))
    with pytest.raises(QRGInputError, match="unstable"):
        ula_free_stationary_variance(THEORY, 5.0)


# ---------------------------------------------------------------- complex Langevin toy model
from qrg.euclidean.samplers.complex_langevin import QuarticToyModel, complex_langevin, exact_moments  # noqa: E402


def test_exact_moments_gaussian_limit():
    # λ → 0⁺ is not allowed, but a tiny λ with Re σ > 0 gives <x²> ≈ 1/σ
    m = QuarticToyModel(1.0 + 1.0j, 1e-8)
    assert abs(exact_moments(m)[2] - 1 / (1 + 1j)) < 1e-6
    # real weight: quadrature against the direct real integral value of <x²> at σ=1, λ=1 by symmetry check
    m = QuarticToyModel(1.0, 1.0)
    ex = exact_moments(m)
    assert abs(ex[1]) < 1e-10 and abs(ex[2].imag) < 1e-12 and 0 < ex[2].real < 1


def _z(res, exact, n):
    mean, err = res["moments"][n]
    d = mean - exact[n]
    return abs(d.real) / err.real, abs(d.imag) / err.imag


def test_complex_langevin_kernel_fixes_wrong_convergence():
    m = QuarticToyModel(4j, 1.0)
    exact = exact_moments(m)
    key = jax.random.PRNGKey(5)
    plain = complex_langevin(m, key, kernel="none", n_walkers=32, n_steps=20000)
    kern = complex_langevin(m, key, kernel="thimble", n_walkers=32, n_steps=20000)
    assert max(_z(plain, exact, 2)) > 6.0  # wrong convergence without the kernel
    for n in (2, 4):
        assert max(_z(kern, exact, n)) < 4.0
    assert kern["mean_abs_imag"] < plain["mean_abs_imag"]


def test_complex_langevin_correct_when_no_problem():
    m = QuarticToyModel(1 + 1j, 1.0)
    exact = exact_moments(m)
    res = complex_langevin(m, jax.random.PRNGKey(6), kernel="none", n_walkers=32, n_steps=20000)
    for n in (2, 4):
        assert max(_z(res, exact, n)) < 4.0


def test_toy_model_validation():
    with pytest.raises(QRGInputError, match="Re lam"):
        QuarticToyModel(1.0, -1.0)
    with pytest.raises(QRGInputError, match="kernel"):
        QuarticToyModel(1.0, 1.0).kernel("magic")
