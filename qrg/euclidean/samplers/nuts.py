"""NUTS and HMC for the Euclidean lattice action (design §5) via BlackJAX.

Target density (design §5)::

    p(φ) ∝ exp(−S_E(φ)),   S_E(φ) = a^d Σ_n [ ½ Σ_i ((φ(n+e_i) − φ(n))/a)² + ½ m² φ² + (λ/4!) φ⁴ ].

Many independent chains run in one ``jax.vmap``. Each chain is tuned by its own Stan-style
window adaptation (``blackjax.window_adaptation``: dual-averaging step size towards the target
acceptance and a diagonal inverse mass matrix from the Welford variance of the later windows),
i.e. **adaptation is per chain**: chains share no information, so they stay independent and
the between-chain spread (Gelman–Rubin R̂) is a valid diagnostic. The adapted parameters are
then frozen and ``n_samples`` draws are taken with the plain NUTS (or HMC) kernel. HMC has a
fixed number of leapfrog steps L; its step size is jittered per transition, ε·U(0.8, 1.2)
(Neal 2011), because a fixed trajectory length resonates with the harmonic modes of a nearly
Gaussian target (huge τ_int in some momenta).

Start (``init=None``): :func:`.base.initial_positions` (both wells for m² < 0).

All functions are pure and take their PRNG key explicitly.
"""

from __future__ import annotations

import functools
import time

import blackjax
import jax
import numpy as np

from ..._validation import QRGInputError, check_int, check_real
from ...theory import Phi4
from .base import SAMPLERS, MCMCResult, starting_fields

METHODS = ("nuts", "hmc")
HMC_JITTER = 0.2


def log_density(theory: Phi4):
    """The unnormalised log-density −S_E(φ) of one configuration."""

    def logdensity(phi):
        return -theory.euclidean_action(phi)

    return logdensity


def _algorithm(method: str, num_integration_steps: int, max_num_doublings: int):
    if method == "nuts":
        return blackjax.nuts, {"max_num_doublings": max_num_doublings}
    return blackjax.hmc, {"num_integration_steps": num_integration_steps}


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5, 6, 7))
def _warmup(theory, keys, positions, n_warmup, method, num_integration_steps, max_num_doublings, target_acceptance):
    algo, extra = _algorithm(method, num_integration_steps, max_num_doublings)
    warmup = blackjax.window_adaptation(
        algo,
        log_density(theory),
        target_acceptance_rate=target_acceptance,
        adaptation_info_fn=blackjax.adaptation.base.get_filter_adapt_info_fn(),
        **extra,
    )

    def one(key, pos):
        (state, params), _ = warmup.run(key, pos, num_steps=n_warmup)
        return state, params["step_size"], params["inverse_mass_matrix"]

    return jax.vmap(one)(keys, positions)


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 7, 8))
def _run_chains(theory, keys, states, step_sizes, inv_mass, n_samples, method, num_integration_steps,
                max_num_doublings):
    algo, extra = _algorithm(method, num_integration_steps, max_num_doublings)

    def one(key, state, step_size, imm):
        def step(st, k):
            k_jit, k_step = jax.random.split(k)
            eps = step_size
            if method == "hmc":
                # step-size jitter ε·U(1−j, 1+j) breaks the resonances of a fixed trajectory length
                eps = step_size * jax.random.uniform(k_jit, minval=1.0 - HMC_JITTER, maxval=1.0 + HMC_JITTER)
            st, info = algo(log_density(theory), eps, imm, **extra).step(k_step, st)
            return st, (st.position, info.acceptance_rate, info.is_divergent, info.num_integration_steps)

        _, out = jax.lax.scan(step, state, jax.random.split(key, n_samples))
        return out

    return jax.vmap(one)(keys, states, step_sizes, inv_mass)


def sample_nuts(
    theory: Phi4,
    key,
    *,
    n_samples: int,
    n_chains: int = 4,
    n_warmup: int = 1000,
    method: str = "nuts",
    num_integration_steps: int = 16,
    max_num_doublings: int = 10,
    target_acceptance: float = 0.8,
    init=None,
) -> MCMCResult:
    """Draw ``n_samples`` per chain from p ∝ e^{−S_E} with NUTS (default) or HMC.

    ``n_warmup`` window-adaptation steps per chain (the paper used 4000) precede the draws;
    ``num_integration_steps`` is the fixed trajectory length of ``method="hmc"``;
    ``init`` optional starting fields (n_chains, *shape). Returns an :class:`MCMCResult`.
    """
    if not isinstance(theory, Phi4):
        raise QRGInputError(f"theory must be a qrg.Phi4 (got {type(theory).__name__})")
    n_samples = check_int("n_samples", n_samples, minimum=1)
    n_chains = check_int("n_chains", n_chains, minimum=1)
    n_warmup = check_int("n_warmup", n_warmup, minimum=1)
    num_integration_steps = check_int("num_integration_steps", num_integration_steps, minimum=1)
    max_num_doublings = check_int("max_num_doublings", max_num_doublings, minimum=1)
    target_acceptance = check_real("target_acceptance", target_acceptance, positive=True)
    if not target_acceptance < 1:
        raise QRGInputError(f"target_acceptance must lie in (0, 1) (got {target_acceptance})")
    if method not in METHODS:
        raise QRGInputError(f"method must be one of {METHODS} (got {method!r})")
    k_init, k_warm, k_run = jax.random.split(key, 3)
    positions = starting_fields(theory, k_init, n_chains, init)

    t0 = time.perf_counter()
    states, step_sizes, inv_mass = _warmup(theory, jax.random.split(k_warm, n_chains), positions, n_warmup, method,
                                           num_integration_steps, max_num_doublings, target_acceptance)
    jax.block_until_ready(states)
    t1 = time.perf_counter()
    # compile the sampling loop first so that wall_time_s is the pure sampling time
    run_keys = jax.random.split(k_run, n_chains)
    lowered = _run_chains.lower(theory, run_keys, states, step_sizes, inv_mass, n_samples, method,
                                num_integration_steps, max_num_doublings).compile()
    t2 = time.perf_counter()
    samples, acc, div, nsteps = lowered(run_keys, states, step_sizes, inv_mass)
    jax.block_until_ready(samples)
    t3 = time.perf_counter()
    return MCMCResult(
        samples=np.asarray(samples),
        acceptance=np.asarray(acc),
        divergent=np.asarray(div),
        n_integration_steps=np.asarray(nsteps),
        step_size=np.asarray(step_sizes),
        inverse_mass_matrix=np.asarray(inv_mass).reshape(n_chains, -1),
        wall_time_s=t3 - t2,
        warmup_time_s=t1 - t0,
        method=method,
    )


SAMPLERS.register("nuts", functools.partial(sample_nuts, method="nuts"))
SAMPLERS.register("hmc", functools.partial(sample_nuts, method="hmc"))
