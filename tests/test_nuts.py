"""NUTS/HMC on the free Euclidean theory against the exact propagator N^d/(a^d(p̂²+m²))."""

import jax
import numpy as np
import pytest
from scipy import stats as sps

from qrg._validation import QRGInputError
from qrg.observables import independent_momenta, measure, two_point
from qrg.euclidean.samplers import initial_positions, sample_nuts
from qrg.theory import Phi4


def _chi2_check(res, theory):
    lat = theory.lattice
    g2 = two_point(res.samples, lat)
    exact = lat.volume_element / lat.n_sites * theory.free_propagator()  # = 1/(p̂²+m²)
    mask = independent_momenta(lat)
    z = ((g2["mean"] - exact) / g2["err"])[mask]
    chi2 = float(np.sum(z**2))
    dof = int(mask.sum())
    # error bars from finite chains are themselves uncertain (~10%): allow the 99.9% quantile
    assert chi2 < sps.chi2.ppf(0.999, dof) * 1.2, (chi2, dof)
    assert np.max(np.abs(z)) < 5.0
    return chi2, dof


@pytest.mark.parametrize("method", ["nuts", "hmc"])
def test_free_propagator_2d(method):
    theory = Phi4.from_params(d=2, N=6, a=0.8, m2=0.6, lam=0.0)
    res = sample_nuts(theory, jax.random.PRNGKey(7), n_samples=600, n_chains=4, n_warmup=300, method=method,
                      num_integration_steps=8)
    assert res.samples.shape == (4, 600, 6, 6)
    assert res.n_divergences == 0
    assert 0.6 < res.mean_acceptance <= 1.0
    _chi2_check(res, theory)
    o = measure(res.samples, theory.lattice)
    assert abs(o["m_R2"].mean - 0.6) < 4 * o["m_R2"].err
    assert abs(o["Z"].mean - 1.0) < 4 * o["Z"].err


@pytest.mark.slow
def test_free_propagator_1d_chain():
    theory = Phi4.chain(16, m2=0.3, lam=0.0)
    res = sample_nuts(theory, jax.random.PRNGKey(1), n_samples=800, n_chains=2, n_warmup=300)
    _chi2_check(res, theory)


@pytest.mark.slow
def test_interacting_symmetric_chains_agree():
    # with λ > 0 no exact answer: check the per-chain adapted chains agree (R-hat) and φ → −φ symmetry
    theory = Phi4.from_params(d=2, N=4, m2=-0.5, lam=3.0)
    res = sample_nuts(theory, jax.random.PRNGKey(2), n_samples=800, n_chains=4, n_warmup=300)
    o = measure(res.samples, theory.lattice)
    assert o["phi2"].r_hat < 1.1
    m = res.samples.mean(axis=(-1, -2))
    from qrg.stats import statistics

    s = statistics(m)
    assert abs(s.mean) < 5 * s.err


def test_double_well_initialisation():
    theory = Phi4.from_params(d=2, N=4, a=0.25, m2=-2.0, lam=0.0017)
    phi = initial_positions(theory, jax.random.PRNGKey(0), 16)
    vmin = np.sqrt(12 / 0.0017)
    means = np.asarray(phi.mean(axis=(-1, -2)))
    assert np.all(np.abs(np.abs(means) - vmin) < 0.05 * vmin)
    assert np.any(means > 0) and np.any(means < 0)


def test_bad_input():
    theory = Phi4.from_params(d=1, N=4, m2=1.0, lam=0.0)
    with pytest.raises(QRGInputError, match="method"):
        sample_nuts(theory, jax.random.PRNGKey(0), n_samples=10, method="mala")
    with pytest.raises(QRGInputError, match="n_samples"):
        sample_nuts(theory, jax.random.PRNGKey(0), n_samples=0)
    with pytest.raises(QRGInputError, match="init"):
        sample_nuts(theory, jax.random.PRNGKey(0), n_samples=10, n_chains=2, init=np.zeros((3, 4)))
