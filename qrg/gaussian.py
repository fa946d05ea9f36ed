"""Gaussian fields whose covariance is diagonal in Fourier space.

A covariance operator C is described by its eigenvalues ``c(k)`` (array of shape
``lattice.shape``, even in k): ``Cov[φ(n), φ(m)] = N^-d Σ_k c(k) e^{ik(n−m)}``. Then

    log p(φ) = −½ N^-d Σ_k |φ̃(k) − μ̃(k)|²/c(k) − ½ Σ_k log(2π c(k)),
    ∇ log p(φ) = −C^-1 (φ − μ),

with φ̃ = fftn(φ) (design §1). Sampling applies C^{1/2} to real white noise.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .lattice import Lattice


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FourierGaussian:
    """N(mean, C) on a lattice with Fourier-diagonal covariance eigenvalues ``variance``."""

    lattice: Lattice = dataclasses.field(metadata=dict(static=True))
    variance: jax.Array
    mean: jax.Array | None = None

    def sample(self, key, batch_shape: tuple[int, ...] = ()):
        """Draw fields of shape ``batch_shape + lattice.shape``."""
        return self.from_white(jax.random.normal(key, tuple(batch_shape) + self.lattice.shape))

    def from_white(self, white):
        """The fields C^{1/2} ε (+ mean) for white noise ``white`` of shape batch + lattice.shape: the
        reparameterisation of :meth:`sample` (``sample(key, b) == from_white(normal(key, b + shape))``)."""
        phi = self.lattice.apply_diagonal(white, jnp.sqrt(self.variance))
        return phi if self.mean is None else phi + self.mean

    def _centred(self, phi):
        self.lattice.check_field(phi)
        return phi if self.mean is None else phi - self.mean

    def log_prob(self, phi):
        """Normalised log-density; batch axes kept."""
        x = self._centred(phi)
        quad = jnp.sum(self.lattice.power(x) / self.variance, axis=self.lattice.axes) / self.lattice.n_sites
        return -0.5 * quad - 0.5 * jnp.sum(jnp.log(2.0 * jnp.pi * self.variance))

    def score(self, phi):
        """∇_φ log p = −C^-1 (φ − mean)."""
        return -self.lattice.apply_diagonal(self._centred(phi), 1.0 / self.variance)

    def score_divergence(self):
        """∇·score = −Σ_k 1/c(k) (constant)."""
        return -jnp.sum(1.0 / self.variance)

    def covariance_matrix(self) -> np.ndarray:
        """Dense covariance (small lattices, tests only)."""
        return self.lattice.diagonal_matrix(np.asarray(self.variance))
