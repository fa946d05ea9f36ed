"""Kernelled Langevin samplers on the free theory and complex Langevin on the one-variable toy model."""

import jax
import numpy as np
import pytest

from qrg._validation import QRGInputError
from qrg.observables import independent_momenta, two_point
from qrg.samplers.langevin import sample_mala, sample_ula, ula_free_stationary_variance
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
