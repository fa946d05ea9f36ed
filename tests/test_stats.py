"""qrg.stats on AR(1) chains with known τ_int, against the exact values and BlackJAX's diagnostics."""

import math

import numpy as np
import pytest
from blackjax.diagnostics import effective_sample_size

from qrg.stats import gelman_rubin, integrated_autocorrelation_time, statistics


def _ar1(rho, n_chains, n, seed):
    """x_{t+1} = ρ x_t + sqrt(1 − ρ²) ξ_t started in equilibrium: unit variance, ρ(t) = ρ^t,
    τ_int = ½ + Σ_{t≥1} ρ^t = ½ (1 + ρ)/(1 − ρ)."""
    rng = np.random.default_rng(seed)
    xi = rng.normal(size=(n_chains, n))
    x = np.empty_like(xi)
    x[:, 0] = xi[:, 0]
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + math.sqrt(1 - rho**2) * xi[:, t]
    return x


def _sokal_sigma(tau, n_total, c=5.0):
    """Madras–Sokal: Var(τ̂) ≈ 2(2W + 1) τ² / n with the window W ≈ c τ."""
    return tau * math.sqrt(2 * (2 * c * tau + 1) / n_total)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_tau_int_of_ar1_chains(rho):
    x = _ar1(rho, 8, 20000, seed=int(10 * rho))
    exact = 0.5 * (1 + rho) / (1 - rho)
    sigma = _sokal_sigma(exact, x.size)
    ours = integrated_autocorrelation_time(x)
    assert abs(ours - exact) < 4 * sigma, (ours, exact, sigma)
    # BlackJAX / Stan: ESS = n_total / (1 + 2 Σ ρ(t)) = n_total / (2 τ_int)
    blackjax_tau = x.size / (2.0 * float(effective_sample_size(x)))
    assert abs(blackjax_tau - exact) < 4 * sigma, (blackjax_tau, exact, sigma)
    assert abs(ours - blackjax_tau) < 4 * sigma, (ours, blackjax_tau, sigma)


def test_error_of_the_mean_uses_tau():
    rho = 0.8
    x = _ar1(rho, 8, 20000, seed=3)
    s = statistics(x)
    tau = 0.5 * (1 + rho) / (1 - rho)
    exact_err = math.sqrt(2 * tau / x.size)  # unit variance
    # δerr/err = ½ δτ/τ
    assert abs(s.err / exact_err - 1) < 4 * 0.5 * _sokal_sigma(tau, x.size) / tau
    assert abs(s.mean) < 4 * exact_err
    iid = statistics(x, correlated=False)
    assert iid.tau_int == 0.5 and iid.err < 0.5 * s.err  # ignoring correlations underestimates the error


def test_gelman_rubin():
    x = _ar1(0.5, 4, 5000, seed=4)
    r = gelman_rubin(x)
    assert 1.0 - 1e-3 < r < 1.01
    shifted = x + np.array([0.0, 0.0, 0.0, 1.0])[:, None]  # one chain in another "well"
    assert gelman_rubin(shifted) > 1.1
    assert np.isnan(gelman_rubin(x[:1])) and np.isnan(gelman_rubin(np.ones((3, 10))))
    # the formula sqrt(((n−1)/n W + B/n)/W), written out
    m, n = x.shape
    w = x.var(axis=1, ddof=1).mean()
    b = n * x.mean(axis=1).var(ddof=1)
    assert r == pytest.approx(math.sqrt(((n - 1) / n * w + b / n) / w), rel=1e-12)
