"""Monte Carlo statistics: every estimate carries its error bar.

``Stats`` holds mean, error of the mean, variance and integrated autocorrelation time.
For independent samples (flow / exact sampling) use ``statistics(x)`` with one chain;
for Markov chains pass shape ``(n_chains, n_samples)`` and the error is
``sqrt(var · 2 τ_int / n_total)``, with τ_int from Sokal's automatic window (c = 5)
on the chain-averaged normalised autocorrelation, and the Gelman–Rubin R̂
(``blackjax.diagnostics.potential_scale_reduction``).

τ_int is ours (the Madras–Sokal windowed estimator standard in lattice field theory, whose
statistical error σ(τ) ≈ τ sqrt(2(2W + 1)/n) is known); tests/test_stats.py checks it on AR(1)
chains against the exact τ_int = ½(1 + ρ)/(1 − ρ) and against BlackJAX's effective sample size
(Stan's initial-monotone-sequence estimator, τ_int = n_total / (2 ESS)).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Stats:
    """mean ± err, with variance of the samples, τ_int (1/2 = uncorrelated) and R̂ (NaN for one chain)."""

    mean: float
    err: float
    variance: float
    tau_int: float = 0.5
    n_samples: int = 0
    r_hat: float = float("nan")

    def to_dict(self) -> dict:
        return {"mean": self.mean, "err": self.err, "variance": self.variance, "tau_int": self.tau_int,
                "n_samples": self.n_samples}

    def __str__(self) -> str:
        return f"{format_value_error(self.mean, self.err)} [var={self.variance:.3g}, tau={self.tau_int:.2f}]"


def format_value_error(value: float, err: float) -> str:
    """``1.23456(12)``-style: value rounded to two significant digits of the error."""
    if not (math.isfinite(err) and err > 0):
        return f"{value:.10g}"
    digits = max(0, 1 - int(math.floor(math.log10(err))))
    return f"{value:.{digits}f} ± {err:.2g}"


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation ρ(τ) of each chain (last axis), averaged over chains (FFT)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    n = x.shape[-1]
    xc = x - x.mean(axis=-1, keepdims=True)
    f = np.fft.rfft(xc, n=2 * n, axis=-1)
    acf = np.fft.irfft(f * np.conj(f), axis=-1)[..., :n]
    acf = acf.mean(axis=0)
    if acf[0] <= 0:
        return np.ones(n) if n else acf
    return acf / acf[0]


def integrated_autocorrelation_time(x: np.ndarray, c: float = 5.0) -> float:
    """τ_int = ½ + Σ_{τ≥1} ρ(τ), summed up to Sokal's window W = min{W : W ≥ c τ_int(W)}."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if x.shape[-1] < 4:
        return 0.5
    rho = autocorrelation(x)
    taus = 0.5 + np.cumsum(rho[1:])
    for w in range(1, len(taus) + 1):
        if w >= c * taus[w - 1]:
            return float(max(taus[w - 1], 0.5))
    return float(max(taus[-1], 0.5))


def gelman_rubin(x: np.ndarray) -> float:
    """Gelman–Rubin R̂ = sqrt(((n−1)/n W + B/n) / W) of chains x (n_chains, n_samples), by
    ``blackjax.diagnostics.potential_scale_reduction``; NaN for one chain, one sample or W = 0."""
    from blackjax.diagnostics import potential_scale_reduction

    x = np.atleast_2d(np.asarray(x, dtype=float))
    m, n = x.shape
    if m < 2 or n < 2 or x.var(axis=1, ddof=1).mean() == 0:
        return float("nan")
    return float(potential_scale_reduction(x))


def statistics(x, *, correlated: bool | None = None) -> Stats:
    """Statistics of samples ``x``: shape (n,) for one chain / iid, (n_chains, n) for Markov chains.

    ``correlated=False`` treats all samples as independent (τ = ½); by default a 1-D input is
    treated as independent and a 2-D input as Markov chains.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 0 or x.size == 0:
        raise ValueError("statistics needs at least one sample")
    if correlated is None:
        correlated = x.ndim == 2
    flat = x.reshape(-1)
    n = flat.size
    var = float(flat.var(ddof=1)) if n > 1 else 0.0
    mean = float(flat.mean())
    if not correlated:
        return Stats(mean, math.sqrt(var / n) if n > 1 else float("nan"), var, 0.5, n)
    chains = x.reshape(-1, x.shape[-1])
    tau = integrated_autocorrelation_time(chains)
    err = math.sqrt(var * 2.0 * tau / n) if n > 1 else float("nan")
    return Stats(mean, err, var, tau, n, gelman_rubin(chains))


def jackknife(samples: np.ndarray, estimator, n_blocks: int = 20) -> tuple[float, float]:
    """Jackknife (blocked along axis 0) mean and error of a nonlinear ``estimator(samples)``."""
    samples = np.asarray(samples)
    n = samples.shape[0]
    n_blocks = min(n_blocks, n)
    edges = np.linspace(0, n, n_blocks + 1).astype(int)
    full = float(estimator(samples))
    vals = np.array([
        estimator(np.concatenate([samples[: edges[i]], samples[edges[i + 1]:]], axis=0)) for i in range(n_blocks)
    ], dtype=float)
    err = math.sqrt((n_blocks - 1) / n_blocks * np.sum((vals - vals.mean()) ** 2))
    bias_corrected = n_blocks * full - (n_blocks - 1) * vals.mean()
    return float(bias_corrected), float(err)
