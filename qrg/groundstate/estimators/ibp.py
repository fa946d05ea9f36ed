"""The integrated-by-parts energy estimator (first derivatives only; what the optimiser differentiates).

With g = ∇_φ log p and V(φ) the lattice potential (design §2), under φ ~ p

    e_ibp(φ) = |g|² / (8 a^d) + V(φ),         ⟨H⟩ = E_p[e_ibp],

because ⟨Ψ|−∂²|Ψ⟩ = ∫ |∂Ψ|² = ∫ p |∂ log p|²/4  (Ψ = p^{1/2}, ∂Ψ = ½ Ψ ∂ log p).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import ESTIMATORS, EnergyEstimator, finite_stats


def kinetic_ibp(lattice, score):
    """Integrated-by-parts kinetic energy |g|²/(8 a^d) per sample (batch axes kept)."""
    return jnp.sum(score**2, axis=lattice.axes) / (8.0 * lattice.volume_element)


def ibp_energy(theory, phi, score):
    """e_ibp(φ) = |g|²/(8 a^d) + V(φ) per sample; its mean is ⟨H⟩ (design §3.3)."""
    return kinetic_ibp(theory.lattice, score) + theory.potential(phi)


#: :func:`ibp_energy` compiled once per theory and batch shape (for concrete samples: one compilation
#: instead of one per array operation)
ibp_energy_values = jax.jit(ibp_energy, static_argnums=0)


class IntegratedByParts(EnergyEstimator):
    name = "ibp"
    label = "integrated by parts"

    def estimate(self, theory, phi, score, laplacian=None):
        return finite_stats(ibp_energy_values(theory, phi, score), "the energy", tails=True)


ESTIMATORS.register("ibp", IntegratedByParts())
