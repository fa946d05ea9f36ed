"""What every Euclidean sampler shares: the result type, the starting fields, the registry.

``SAMPLERS`` maps a method name to a sampling function

    sample(theory, key, *, n_samples, n_chains, ...) -> result with ``.samples``
    (n_chains, n_samples, *lattice.shape) and ``.summary()`` (a JSON-able dict),

whose further keyword options (``n_warmup``, ``num_integration_steps``, ``train_steps``, ...) the
``qrg sample`` command passes when the function accepts them. A new sampler is one file with one
``SAMPLERS.register(name, function)`` and an import in ``samplers/__init__.py``.

Starting fields (``initial_positions``): every chain starts at a draw of the Gaussian with
covariance 1/(a^d (p̂² + |m²| + 1)); for m² < 0 the constant classical minimum ±sqrt(−6 m²/λ)
(random sign per chain) is added, so that both wells are visited by different chains.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..._validation import QRGInputError
from ...registry import Registry
from ...theory import Phi4

SAMPLERS: Registry = Registry("sampler")


@dataclasses.dataclass(frozen=True)
class MCMCResult:
    """Output of the Markov-chain samplers (:func:`.nuts.sample_nuts`, :func:`.langevin.sample_langevin`; numpy arrays).

    samples        (n_chains, n_samples, *lattice.shape)
    acceptance     (n_chains, n_samples): Metropolis acceptance probability of each transition
                   (NUTS: average over the trajectory)
    divergent      (n_chains, n_samples) bool
    n_integration_steps (n_chains, n_samples): leapfrog steps (= gradient evaluations) per draw
    step_size      (n_chains,)  adapted step sizes
    inverse_mass_matrix (n_chains, n_sites) adapted diagonal inverse mass matrices
    wall_time_s    sampling wall time (after warm-up, compiled), warmup_time_s the warm-up's
    """

    samples: np.ndarray
    acceptance: np.ndarray
    divergent: np.ndarray
    n_integration_steps: np.ndarray
    step_size: np.ndarray
    inverse_mass_matrix: np.ndarray
    wall_time_s: float
    warmup_time_s: float
    method: str = "nuts"

    @property
    def n_chains(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def mean_acceptance(self) -> float:
        return float(np.mean(self.acceptance))

    @property
    def n_divergences(self) -> int:
        return int(np.sum(self.divergent))

    def summary(self) -> dict:
        return {
            "method": self.method,
            "n_chains": self.n_chains,
            "n_samples": self.n_samples,
            "acceptance": self.mean_acceptance,
            "divergences": self.n_divergences,
            "mean_integration_steps": float(np.mean(self.n_integration_steps)),
            "step_size": [float(s) for s in self.step_size],
            "wall_time_s": self.wall_time_s,
            "warmup_time_s": self.warmup_time_s,
        }


def initial_positions(theory: Phi4, key, n_chains: int):
    """Starting fields (n_chains, *lattice.shape): see the module docstring."""
    lat = theory.lattice
    k_noise, k_sign = jax.random.split(key)
    var = 1.0 / (lat.volume_element * (lat.phat2 + abs(theory.m2) + 1.0))
    white = jax.random.normal(k_noise, (n_chains,) + lat.shape)
    phi = lat.apply_diagonal(white, jnp.sqrt(jnp.asarray(var)))
    if theory.m2 < 0:
        vmin = float(np.sqrt(-6.0 * theory.m2 / theory.lam))
        sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n_chains,)), 1.0, -1.0)
        phi = phi + vmin * sign.reshape((n_chains,) + (1,) * lat.d)
    return phi


def starting_fields(theory: Phi4, key, n_chains: int, init=None):
    """``init`` (checked to have shape (n_chains, *lattice.shape)) or :func:`initial_positions`."""
    if init is None:
        return initial_positions(theory, key, n_chains)
    theory.lattice.check_field(init, "init")
    positions = jnp.asarray(init, dtype=float)
    if positions.shape != (n_chains,) + theory.lattice.shape:
        raise QRGInputError(f"init must have shape {(n_chains,) + theory.lattice.shape} (got {positions.shape})")
    return positions
