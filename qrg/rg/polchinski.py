"""Polchinski's scheme on the lattice (paper 5.38–5.42) with the M-modified kernel.

    K_t(p) = exp(−(p̂² + M²)(e^{2t} − 1)/Λ0²),     Λ0 = 2√d/a,        (5.42; K_0 = 1)
    φ_t | φ_0 ~ N(K_t φ̃_0, (K_t − K_t²)/(a^d (p̂² + μ²)))                (5.41)

so that the free theory with mass² μ² flows to the covariance K_t/(a^d(p̂² + μ²)) (5.40).
This is the linear SDE with drift rate A_k(t) = 2 e^{2t} (p̂² + M²)/Λ0² and noise rate
B_k(t) = A_k(t) K_t/(a^d (p̂² + μ²)). ``mu2`` is the seed mass² (the paper uses the bare
mass of the theory; it must be > 0 here, default M²). The effective cutoff is the |p̂| where
the exponent reaches 1: Λ_t² = Λ0²/(e^{2t} − 1) − M².

As t → ∞ the distribution collapses onto φ = 0, so there is no limiting prior;
``prior(T)`` at finite T (with M > 0) is the prior to use.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from .._validation import QRGInputError, check_real, check_time
from .base import SCHEMES, RGScheme


@SCHEMES.register("polchinski")
@dataclasses.dataclass(frozen=True)
class Polchinski(RGScheme):
    M: float = 0.0
    mu2: float | None = None
    Lambda0: float | None = None

    def __post_init__(self):
        M = check_real("M (RG mass)", self.M, nonnegative=True)
        object.__setattr__(self, "M", M)
        mu2 = M**2 if self.mu2 is None else self.mu2
        if M == 0 and self.mu2 is None:
            raise QRGInputError("the unmodified Polchinski scheme (M = 0) needs a seed mass mu2 > 0")
        object.__setattr__(self, "mu2", check_real("mu2 (Polchinski seed mass squared)", mu2, positive=True))
        lam0 = self.lattice.cutoff if self.Lambda0 is None else self.Lambda0
        object.__setattr__(self, "Lambda0", check_real("Lambda0 (UV cutoff)", lam0, positive=True))

    @property
    def _p2M2(self):
        return jnp.asarray(self.lattice.phat2 + self.M**2)

    @property
    def _seed_precision(self):
        return jnp.asarray(self.lattice.volume_element * (self.lattice.phat2 + self.mu2))

    def cutoff_function(self, t):
        """K_t(p) of (5.42)."""
        check_time(t)
        return jnp.exp(-self._p2M2 * jnp.expm1(2.0 * t) / self.Lambda0**2)

    def drift_rate(self, t):
        return 2.0 * jnp.exp(2.0 * t) * self._p2M2 / self.Lambda0**2

    def diffusion_rate(self, t):
        return self.drift_rate(t) * self.cutoff_function(t) / self._seed_precision

    def mean_factor(self, t):
        return self.cutoff_function(t)

    def kernel_variance(self, t):
        kt = self.cutoff_function(t)
        # K − K² = K (1 − K) = −K expm1(log K), accurate for K close to 1
        log_k = -self._p2M2 * jnp.expm1(2.0 * jnp.asarray(t, dtype=float)) / self.Lambda0**2
        return -kt * jnp.expm1(log_k) / self._seed_precision

    def stationary_variance(self):
        raise QRGInputError(
            "the Polchinski scheme has no (non-degenerate) limiting prior: every mode is driven to "
            "zero as t → ∞. Use the finite-time prior scheme.prior(T) with M > 0"
        )

    def cutoff(self, t):
        check_time(t)
        t = jnp.asarray(t, dtype=float)
        em1 = jnp.expm1(2.0 * t)
        inv = jnp.where(em1 > 0, self.Lambda0**2 / jnp.where(em1 > 0, em1, 1.0), jnp.inf)
        lam2 = jnp.clip(inv - self.M**2, 0.0, None)
        return jnp.clip(jnp.sqrt(lam2), 0.0, self.lattice.cutoff)


@dataclasses.dataclass(frozen=True)
class PolchinskiM(Polchinski):
    """The M-modified Polchinski scheme of paper (5.41) with kernel (5.42): Polchinski with M > 0."""

    M: float = 1.0

    def __post_init__(self):
        if check_real("M (RG mass)", self.M) <= 0:
            raise QRGInputError(f"M (RG mass) must be > 0 for the M-modified Polchinski scheme (got {self.M})")
        super().__post_init__()
