"""Langevin sampling of e^{−S_E} with a Fourier-diagonal kernel (stochastic quantisation), via BlackJAX.

The kernelled Langevin equation (stochastic quantisation with a kernel; seed 002) is

    dφ = −K ∇S_E(φ) dt + sqrt(2K) dW,

whose stationary density is e^{−S_E} for any positive kernel K. Here K is diagonal in Fourier
space with eigenvalues κ(p) > 0 (a preconditioner: Fourier acceleration). The default is the
inverse free Hessian, κ(p) = 1/(a^d (p̂² + μ²)) with μ² = max(m², 0) + 1/(N a)², so that every
mode of the free theory relaxes at the same rate.

The chains run in the preconditioned variable ψ = K^{-1/2} φ, whose density
e^{−S_E(K^{1/2} ψ)} (constant Jacobian) has the gradient ∇_ψ log p = −K^{1/2} ∇S_E(φ). The plain
(identity-kernel) Langevin step of BlackJAX in ψ,

    ψ' = ψ + ε ∇_ψ log p(ψ) + sqrt(2ε) ξ,   ξ ~ N(0, 1),

is, mapped back by φ = K^{1/2} ψ, exactly the kernelled Euler–Maruyama step

    φ' = φ − ε K ∇S_E(φ) + sqrt(2ε) K^{1/2} ξ.

``ula`` (unadjusted, ``blackjax.mcmc.diffusions.overdamped_langevin``) is biased at finite ε: for
the free theory, mode by mode with h(p) = a^d (p̂² + m²), the chain is an AR(1) process with the
exact stationary variance 1 / (h (1 − ε κ h / 2)) (not 1/h), an O(ε) bias.

``mala`` (``blackjax.mala``) adds the Metropolis–Hastings test with the Gaussian proposal
q(ψ'|ψ) = N(ψ + ε∇_ψ log p, 2ε), which makes the chain exact; the acceptance ratio is the same in
ψ and φ (the Jacobian cancels). Step size: ``n_warmup`` steps of BlackJAX's dual-averaging
adaptation (Hoffman & Gelman 2014, the step-size part of NUTS's window adaptation) towards the
acceptance 0.574 optimal for MALA (Roberts & Rosenthal 1998), per chain; then frozen. For ULA ε
is fixed by the user and the warm-up steps are plain burn-in.
"""

from __future__ import annotations

import functools
import time

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.mcmc.diffusions import overdamped_langevin
from blackjax.mcmc.mala import MALAState

from ..._validation import QRGInputError, check_int, check_real
from ...theory import Phi4
from .base import SAMPLERS, MCMCResult, starting_fields

MALA_TARGET_ACCEPTANCE = 0.574


def default_kernel(theory: Phi4) -> np.ndarray:
    """κ(p) = 1/(a^d (p̂² + μ²)), μ² = max(m², 0) + 1/(N a)² (the inverse free Hessian)."""
    lat = theory.lattice
    mu2 = max(theory.m2, 0.0) + 1.0 / lat.length**2
    return 1.0 / (lat.volume_element * (lat.phat2 + mu2))


def preconditioned_log_density(theory: Phi4, sqrt_kernel):
    """log p(ψ) = −S_E(K^{1/2} ψ) of the preconditioned variable ψ = K^{-1/2} φ (up to a constant)."""
    lat = theory.lattice

    def logdensity(psi):
        return -theory.euclidean_action(lat.apply_diagonal(psi, sqrt_kernel))

    return logdensity


def _transition(logdensity, adjust: bool):
    """One step (key, state, ε) -> (state, acceptance probability): blackjax.mala or its unadjusted diffusion."""
    if adjust:
        kernel = blackjax.mala.build_kernel()

        def step(key, state, eps):
            state, info = kernel(key, state, logdensity, eps)
            return state, info.acceptance_rate

        return step
    diffusion = overdamped_langevin(jax.value_and_grad(logdensity))

    def step(key, state, eps):
        return MALAState(*diffusion(key, state, eps)), jnp.asarray(1.0)

    return step


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _chains(theory, sqrt_kernel, keys, psi0, n_warmup, n_samples, adjust, eps0, target):
    logdensity = preconditioned_log_density(theory, sqrt_kernel)
    step = _transition(logdensity, adjust)
    da_init, da_update, da_final = dual_averaging_adaptation(target)

    def one(key, psi, eps):
        k_warm, k_run = jax.random.split(key)

        def warm(carry, k):
            state, da = carry
            state, acc = step(k, state, jnp.exp(da.log_step_size) if adjust else eps)
            return (state, da_update(da, acc) if adjust else da), None

        state = blackjax.mala.init(psi, logdensity)
        (state, da), _ = jax.lax.scan(warm, (state, da_init(eps)), jax.random.split(k_warm, n_warmup))
        eps = da_final(da) if adjust and n_warmup > 0 else eps

        def run(state, k):
            state, acc = step(k, state, eps)
            return state, (state.position, acc)

        _, (psis, accs) = jax.lax.scan(run, state, jax.random.split(k_run, n_samples))
        return psis, accs, eps

    return jax.vmap(one)(keys, psi0, eps0)


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
    target = check_real("target_acceptance", target_acceptance, positive=True)
    if not target < 1:
        raise QRGInputError(f"target_acceptance must lie in (0, 1) (got {target})")
    lat = theory.lattice
    kernel = default_kernel(theory) if kernel is None else np.asarray(kernel, dtype=float)
    if kernel.shape != lat.shape or not np.all(kernel > 0):
        raise QRGInputError(f"kernel must be positive Fourier eigenvalues of shape {lat.shape}")
    k_init, k_run = jax.random.split(key)
    phi0 = starting_fields(theory, k_init, n_chains, init)
    sqrt_kernel = jnp.sqrt(jnp.asarray(kernel))
    args = (theory, sqrt_kernel, jax.random.split(k_run, n_chains), lat.apply_diagonal(phi0, 1.0 / sqrt_kernel),
            n_warmup, n_samples * thin, bool(adjust), jnp.full(n_chains, eps), target)
    compiled = _chains.lower(*args).compile()
    t1 = time.perf_counter()
    psis, accs, eps_final = compiled(*args[1:4], args[7], args[8])
    xs = lat.apply_diagonal(psis, sqrt_kernel)
    jax.block_until_ready(xs)
    t2 = time.perf_counter()
    xs, accs = np.asarray(xs)[:, thin - 1::thin], np.asarray(accs)[:, thin - 1::thin]
    return MCMCResult(samples=xs, acceptance=accs, divergent=np.zeros(accs.shape, dtype=bool),
                      n_integration_steps=np.full(accs.shape, thin), step_size=np.asarray(eps_final),
                      inverse_mass_matrix=np.broadcast_to(kernel.ravel(), (n_chains, kernel.size)).copy(),
                      wall_time_s=t2 - t1, warmup_time_s=0.0, method="mala" if adjust else "ula")


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


SAMPLERS.register("mala", functools.partial(sample_langevin, adjust=True))
