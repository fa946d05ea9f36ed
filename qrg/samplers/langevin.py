"""Langevin sampling of e^{−S_E} with a Fourier-diagonal kernel (stochastic quantisation).

The kernelled Langevin equation (stochastic quantisation with a kernel; seed 002) is

    dφ = −K ∇S_E(φ) dt + sqrt(2K) dW,

whose stationary density is e^{−S_E} for any positive kernel K. Here K is diagonal in Fourier
space with eigenvalues κ(p) > 0 (a preconditioner: Fourier acceleration). The default is the
inverse free Hessian, κ(p) = 1/(a^d (p̂² + μ²)) with μ² = max(m², 0) + 1/(N a)², so that every
mode of the free theory relaxes at the same rate.

Euler–Maruyama step (``ula``, unadjusted — biased at finite ε):

    φ' = φ − ε K ∇S_E(φ) + sqrt(2ε) K^{1/2} ξ,   ξ ~ N(0, 1).

For the free theory, mode by mode with h(p) = a^d (p̂² + m²), the ULA chain is an AR(1) process
with the exact stationary variance  1 / (h (1 − ε κ h / 2))  (not 1/h): the bias is O(ε).

``mala`` adds the Metropolis–Hastings test with the Gaussian proposal q(φ'|φ) = N(μ(φ), 2εK),
μ(φ) = φ − εK∇S_E(φ), which makes the chain exact:
    log A = −S(φ') + S(φ) + log q(φ|φ') − log q(φ'|φ),
    log q(y|x) = −|y − μ(x)|²_{K^{-1}} / (4ε) + const,   |x|²_{K^{-1}} = N^-d Σ_p |x̃(p)|² / κ(p).

Step size: ``n_warmup`` steps of Robbins–Monro adaptation of log ε towards the target
acceptance (0.574 for MALA; for ULA ε is fixed by the user), per chain; then frozen.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import QRGInputError, check_int, check_real
from ..theory import Phi4
from .nuts import MCMCResult, initial_positions

MALA_TARGET_ACCEPTANCE = 0.574


def default_kernel(theory: Phi4) -> np.ndarray:
    """κ(p) = 1/(a^d (p̂² + μ²)), μ² = max(m², 0) + 1/(N a)² (the inverse free Hessian)."""
    lat = theory.lattice
    mu2 = max(theory.m2, 0.0) + 1.0 / lat.length**2
    return 1.0 / (lat.volume_element * (lat.phat2 + mu2))


def _kernel_norm2(lat, x, kernel):
    """|x|²_{K^{-1}} = N^-d Σ_p |x̃(p)|²/κ(p) (batch axes kept)."""
    return jnp.sum(jnp.abs(lat.fft(x)) ** 2 / kernel, axis=lat.axes) / lat.n_sites


def langevin_step(theory: Phi4, kernel, key, phi, eps, adjust: bool):
    """One kernelled Langevin step of one configuration; returns (φ_new, acceptance probability)."""
    lat = theory.lattice
    k_noise, k_acc = jax.random.split(key)

    def mean(x):
        return x - eps * lat.apply_diagonal(theory.euclidean_action_grad(x), kernel)

    mu = mean(phi)
    white = jax.random.normal(k_noise, phi.shape)
    prop = mu + jnp.sqrt(2.0 * eps) * lat.apply_diagonal(white, jnp.sqrt(kernel))
    if not adjust:
        return prop, jnp.asarray(1.0)
    log_q_fwd = -_kernel_norm2(lat, prop - mu, kernel) / (4.0 * eps)
    log_q_bwd = -_kernel_norm2(lat, phi - mean(prop), kernel) / (4.0 * eps)
    log_a = theory.euclidean_action(phi) - theory.euclidean_action(prop) + log_q_bwd - log_q_fwd
    log_a = jnp.where(jnp.isfinite(log_a), log_a, -jnp.inf)
    acc = jnp.exp(jnp.minimum(log_a, 0.0))
    accept = jax.random.uniform(k_acc) < acc
    return jnp.where(accept, prop, phi), acc


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _chains(theory, kernel, keys, phi0, n_warmup, n_samples, adjust, log_eps0, target):
    def one(key, phi, log_eps):
        k_warm, k_run = jax.random.split(key)

        def warm(carry, inp):
            x, le = carry
            i, k = inp
            x, acc = langevin_step(theory, kernel, k, x, jnp.exp(le), adjust)
            if adjust:
                le = le + (acc - target) * 2.0 / (1.0 + i) ** 0.6
            return (x, le), None

        (phi, log_eps), _ = jax.lax.scan(warm, (phi, log_eps),
                                         (jnp.arange(n_warmup, dtype=float), jax.random.split(k_warm, n_warmup)))
        eps = jnp.exp(log_eps)

        def run(x, k):
            x, acc = langevin_step(theory, kernel, k, x, eps, adjust)
            return x, (x, acc)

        _, (xs, accs) = jax.lax.scan(run, phi, jax.random.split(k_run, n_samples))
        return xs, accs, eps

    return jax.vmap(one)(keys, phi0, log_eps0)


def sample_langevin(theory: Phi4, key, *, n_samples: int, n_chains: int = 4, n_warmup: int = 500,
                    step_size: float = 0.5, adjust: bool = True, kernel=None, thin: int = 1, init=None,
                    target_acceptance: float = MALA_TARGET_ACCEPTANCE) -> MCMCResult:
    """MALA (``adjust=True``) or ULA (``adjust=False``) with Fourier kernel ``kernel`` (κ(p), shape
    lattice.shape; default :func:`default_kernel`). ``step_size`` is the initial ε (MALA: adapted
    during warm-up) or the fixed ε (ULA). ``thin`` keeps every thin-th step."""
    if not isinstance(theory, Phi4):
        raise QRGInputError(f"theory must be a qrg.Phi4 (got {type(theory).__name__})")
    n_samples = check_int("n_samples", n_samples, minimum=1)
    n_chains = check_int("n_chains", n_chains, minimum=1)
    n_warmup = check_int("n_warmup", n_warmup, minimum=0)
    thin = check_int("thin", thin, minimum=1)
    eps = check_real("step_size", step_size, positive=True)
    lat = theory.lattice
    kernel = default_kernel(theory) if kernel is None else np.asarray(kernel, dtype=float)
    if kernel.shape != lat.shape or not np.all(kernel > 0):
        raise QRGInputError(f"kernel must be positive Fourier eigenvalues of shape {lat.shape}")
    k_init, k_run = jax.random.split(key)
    phi0 = initial_positions(theory, k_init, n_chains) if init is None else jnp.asarray(init, dtype=float)
    if phi0.shape != (n_chains,) + lat.shape:
        raise QRGInputError(f"init must have shape {(n_chains,) + lat.shape} (got {phi0.shape})")
    t0 = time.perf_counter()
    args = (theory, jnp.asarray(kernel), jax.random.split(k_run, n_chains), phi0, n_warmup, n_samples * thin,
            bool(adjust), jnp.full(n_chains, np.log(eps)), float(target_acceptance))
    compiled = _chains.lower(*args).compile()
    t1 = time.perf_counter()
    xs, accs, eps_final = compiled(*args[1:4], args[7], args[8])
    jax.block_until_ready(xs)
    t2 = time.perf_counter()
    xs, accs = np.asarray(xs)[:, thin - 1::thin], np.asarray(accs)[:, thin - 1::thin]
    return MCMCResult(
        samples=xs,
        acceptance=accs,
        divergent=np.zeros(accs.shape, dtype=bool),
        n_integration_steps=np.full(accs.shape, thin),
        step_size=np.asarray(eps_final),
        inverse_mass_matrix=np.broadcast_to(kernel.ravel(), (n_chains, kernel.size)).copy(),
        wall_time_s=t2 - t1,
        warmup_time_s=0.0,
        method="mala" if adjust else "ula",
    )


def sample_mala(theory: Phi4, key, **kw) -> MCMCResult:
    """Metropolis-adjusted Langevin with the Fourier kernel (exact)."""
    return sample_langevin(theory, key, adjust=True, **kw)


def sample_ula(theory: Phi4, key, **kw) -> MCMCResult:
    """Unadjusted Langevin with the Fourier kernel (O(ε) bias)."""
    return sample_langevin(theory, key, adjust=False, **kw)


def ula_free_stationary_variance(theory: Phi4, step_size: float, kernel=None) -> np.ndarray:
    """Exact stationary covariance eigenvalues of ULA on the free theory: 1/(h (1 − ε κ h/2)),
    h = a^d (p̂² + m²). Requires ε κ h < 2 (stability) in every mode."""
    lat = theory.lattice
    kernel = default_kernel(theory) if kernel is None else np.asarray(kernel)
    h = lat.volume_element * (lat.phat2 + theory.m2)
    x = step_size * kernel * h
    if np.any(x >= 2):
        raise QRGInputError(f"ULA is unstable for step_size={step_size}: need ε κ(p) h(p) < 2 in every mode")
    return 1.0 / (h * (1.0 - x / 2.0))
