"""Carosso's stochastic RG (paper 5.9, 5.10) and its mass-modified form (5.20, 7.1).

    dφ_t = −K φ_t dt + σ dW_t,   K = −Δ + M²,   σ² = a^-d.

Per Fourier mode κ_k = p̂² + M²:

    α_k(t) = e^{−t κ_k},   Σ_k(t) = σ² (1 − e^{−2tκ_k}) / (2κ_k)   (σ² t at κ = 0),
    limit (M > 0)  N(0, σ²/(2κ_k)),   cutoff  Λ_t = clip(sqrt(1/t − M²), 0, Λ0)  (7.3).

With M = 0 the zero mode is undamped (a random walk), so there is no limiting prior.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from .._validation import QRGInputError, check_real, check_time
from .base import SCHEMES, RGScheme


@SCHEMES.register("carosso")
@dataclasses.dataclass(frozen=True)
class Carosso(RGScheme):
    """Carosso scheme; ``M > 0`` gives the mass-modified scheme the paper uses (M = 1 there)."""

    M: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "M", check_real("M (RG mass)", self.M, nonnegative=True))

    @property
    def sigma2(self) -> float:
        """σ² = a^-d (paper 5.10)."""
        return 1.0 / self.lattice.volume_element

    @property
    def isotropic_diffusion(self) -> float:
        """B = σ² 1."""
        return self.sigma2

    @property
    def kappa(self):
        """κ_k = p̂² + M²."""
        return self.lattice.phat2 + self.M**2

    def drift_rate(self, t):
        return jnp.broadcast_to(jnp.asarray(self.kappa), self.lattice.shape) + 0.0 * t

    def drift(self, phi, t):
        """Δφ − M²φ in real space (neighbour shifts)."""
        return self.lattice.laplacian(phi) - self.M**2 * phi

    def diffusion_rate(self, t):
        return jnp.full(self.lattice.shape, self.sigma2) + 0.0 * t

    def mean_factor(self, t):
        check_time(t)
        return jnp.exp(-t * jnp.asarray(self.kappa))

    def kernel_variance(self, t):
        check_time(t)
        kappa = jnp.asarray(self.kappa)
        safe = jnp.where(kappa > 0, kappa, 1.0)
        ratio = jnp.where(kappa > 0, -jnp.expm1(-2.0 * t * safe) / (2.0 * safe), t)
        return self.sigma2 * ratio

    def transition_between(self, s, t):
        # time-homogeneous: exact, without cancellation
        check_time(s, "s")
        check_time(t)
        return self.mean_factor(t - s), self.kernel_variance(t - s)

    def stationary_variance(self):
        if self.M <= 0:
            raise QRGInputError(
                "the unmodified Carosso scheme (M = 0) has no limiting prior: its zero mode is "
                "undamped. Use the mass-modified scheme, Carosso(lattice, M=...) with M > 0, or a "
                "finite-time prior scheme.prior(T)"
            )
        return self.sigma2 / (2.0 * jnp.asarray(self.kappa))

    def cutoff(self, t):
        check_time(t)
        lam0 = self.lattice.cutoff
        t = jnp.asarray(t, dtype=float)
        inv_t = jnp.where(t > 0, 1.0 / jnp.where(t > 0, t, 1.0), jnp.inf)
        return jnp.clip(jnp.sqrt(jnp.clip(inv_t - self.M**2, 0.0, None)), 0.0, lam0)


@dataclasses.dataclass(frozen=True)
class CarossoM(Carosso):
    """The mass-modified Carosso scheme (paper 5.20): Carosso with M > 0 (M = 1 in the paper's Section 7)."""

    M: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.M <= 0:
            raise QRGInputError(f"M (RG mass) must be > 0 for the mass-modified Carosso scheme (got {self.M})")
