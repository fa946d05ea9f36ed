"""The Gaussian RG bridge: the linear, Fourier-diagonal score model (design §3.1, §4).

If φ_0 ~ N(0, C_0) with C_0 diagonal in k, every RG scheme of qrg (a linear Fourier-diagonal
SDE) keeps it Gaussian:

    C_t(k) = α_k(t)² C_0(k) + Σ_k(t)            (scheme.bridge_variance),
    s(φ, t) = ∇ log p_t(φ) = −C_t^-1 φ,          ∇·s = −Σ_k 1/C_t(k),
    tr(W J_s) = −Σ_k W_k / C_t(k).

The parameters are log C_0 per distinct value of p̂² (one number per shell of the lattice
dispersion), so the model respects translations, the hypercubic point group and φ → −φ, and
contains the free ground state C_0 = 1/(2 a^d sqrt(p̂² + m²)) (design §2) exactly. With this
model alone the probability flow represents that state exactly for any T, because the prior
N(0, C_T) is the bridge's own marginal at T.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .base import MODELS, ScoreModel, weighted_trace_diagonal


@MODELS.register("gaussian")
class GaussianBridge(ScoreModel):
    """Linear score −C_t^-1 φ with learnable C_0(p̂²) > 0.

    ``init_variance0``: initial C_0 eigenvalues (array of shape lattice.shape, fftn ordering,
    or a tuple of the flattened values); default ``1/(2 a^d sqrt(p̂² + 1))``. Use
    :func:`GaussianBridge.create` to pass an array.
    """

    supports_weighted_trace = True



    def setup(self):
        classes, n_classes = self.lattice.momentum_shells()
        c0 = self.reference_variance0()
        # initial value per p̂² shell: mean of log C_0 over the shell (exact for a function of p̂²)
        counts = np.bincount(classes.ravel(), minlength=n_classes)
        init = np.bincount(classes.ravel(), weights=np.log(c0).ravel(), minlength=n_classes) / counts
        self._classes = classes
        self.log_variance0 = self.param("log_variance0", lambda key: jnp.asarray(init))

    def variance0(self):
        """C_0(k), shape lattice.shape."""
        return jnp.exp(self.log_variance0)[self._classes]

    def variance(self, t):
        """C_t(k) = α_t² C_0 + Σ_t."""
        return self.scheme.bridge_variance(t, self.variance0())

    def prior_variance(self, T):
        return self.variance(T)

    def score_and_divergence(self, phi, t, weight=None):
        precision = 1.0 / self.variance(t)
        score = -self.lattice.apply_diagonal(phi, precision)
        return score, -weighted_trace_diagonal(self.lattice, precision, weight)
