"""Stochastic reconfiguration in sample space (minSR) with the zero-variance force, and the broadened,
importance-weighted proposal it is fed with.

Imaginary-time evolution projected on the ansatz: choose the parameter change δθ = −dτ δ whose change of
log Ψ best matches −dτ (E_loc − E) in the weighted least-squares sense over the samples,

    δ = argmin_δ Σ_b w_b |(O_b − Ō)·δ − (E_loc,b − Ē)|² + ε |δ|²
      = Xᵀ (X Xᵀ + ε 1)⁻¹ r,     X_b = √w_b (O_b − Ō),   r_b = √w_b (E_loc,b − Ē),

with O_b = ∂_θ log Ψ_θ(φ_b) at fixed φ_b, weights w normalised to 1 and Ō, Ē their weighted means (the
"minSR" form: an n × n solve for n samples, whatever the number of parameters; Chen and Heyl 2024, Rende
et al. 2024). The force Xᵀ r is ½ the energy gradient and vanishes sample by sample at an eigenstate
(E_loc,b = E for every b): unlike the reparameterised gradient that training uses, its noise goes to zero
at the solution, so the update keeps improving the state where Adam on noisy gradients stalls
(docs/solver.md, "Refinement").

Proposal: the prior noise of each sample is scaled by τ ≥ 1 (white noise z ~ N(0, τ² 1) instead of
N(0, 1)), so the flow's large-field tail, which carries most of Var(E_loc) and which exact samples rarely
reach, is visited; the weights w_b ∝ N(z_b; 0, 1)/N(z_b; 0, τ²) ∝ exp(−½ |z_b|² (1 − 1/τ²)) make every
weighted mean an estimate under p_θ itself (the flow map is the same for both, so the Jacobians cancel).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .._validation import QRGInputError


def min_sr_direction(jacobian, residuals, weights, shift: float):
    """δ = Xᵀ (X Xᵀ + ε 1)⁻¹ r (module docstring) for per-sample log-derivatives ``jacobian`` (n, P),
    local energies ``residuals`` (n,) (their weighted mean is subtracted) and ``weights`` (n,) ≥ 0 (normalised
    here); ``shift`` ε > 0. Returns δ of shape (P,); the parameter update is −dτ δ."""
    w = weights / jnp.sum(weights)
    sw = jnp.sqrt(w)
    x = (jacobian - w @ jacobian) * sw[:, None]
    r = (residuals - w @ residuals) * sw
    n = x.shape[0]
    return x.T @ jnp.linalg.solve(x @ x.T + shift * jnp.eye(n, dtype=x.dtype), r)


def broadened_noise(key, n: int, shape: tuple, tau: float):
    """(z, w): ``n`` white-noise draws of ``shape`` with standard deviation ``tau`` and their importance weights
    w ∝ exp(−½ |z|² (1 − 1/τ²)) back to N(0, 1), normalised to sum 1 (log-sum-exp, no underflow)."""
    z = tau * jax.random.normal(key, (n,) + tuple(shape))
    log_w = -0.5 * jnp.sum(z.reshape(n, -1) ** 2, axis=1) * (1.0 - 1.0 / tau**2)
    return z, jax.nn.softmax(log_w)


def effective_sample_fraction(tau: float, dim: int) -> float:
    """The expected effective sample size / n of the weights of :func:`broadened_noise` in ``dim`` dimensions:
    E[w]² / E[w²] = (sqrt(2τ² − 1) / τ²)^dim."""
    return (math.sqrt(2.0 * tau**2 - 1.0) / tau**2) ** dim


def broadening_for(dim: int, ess_fraction: float = 0.5) -> float:
    """The τ ≥ 1 whose expected effective sample fraction in ``dim`` dimensions is ``ess_fraction`` (bisection):
    wide for one degree of freedom (τ ≈ 2.7 at ½), close to 1 on large lattices (the weights of a global
    broadening degenerate with the dimension: ~1.2 for 16 sites, ~1.09 for 64)."""
    if dim < 1:
        raise QRGInputError(f"dim (degrees of freedom) must be >= 1 (got {dim})")
    if not 0 < ess_fraction < 1:
        raise QRGInputError(f"ess_fraction must be in (0, 1) (got {ess_fraction})")
    lo, hi = 1.0, 10.0  # sqrt(2τ²−1)/τ² falls monotonically for τ ≥ 1; 10 is refine_broaden's upper bound
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if effective_sample_fraction(mid, dim) > ess_fraction:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
