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

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from .base import MODELS, ScoreModel, weighted_trace_diagonal


def shell_means(lattice, values) -> np.ndarray:
    """The mean of ``values`` (shape lattice.shape, fftn order) over every p̂² shell of
    :meth:`~qrg.Lattice.momentum_shells` (exact for a function of p̂²), shape (n_shells,)."""
    classes, n_classes = lattice.momentum_shells()
    counts = np.bincount(classes.ravel(), minlength=n_classes)
    return np.bincount(classes.ravel(), weights=np.asarray(values).ravel(), minlength=n_classes) / counts


def shell_phat2(lattice) -> np.ndarray:
    """p̂² of every shell of :meth:`~qrg.Lattice.momentum_shells` (increasing), shape (n_shells,)."""
    return shell_means(lattice, lattice.phat2)


@MODELS.register("gaussian")
class GaussianBridge(ScoreModel):
    """Linear score −C_t^-1 φ with learnable C_0(p̂²) > 0.

    ``init_variance0``: initial C_0 eigenvalues (array of shape lattice.shape, fftn ordering,
    or a tuple of the flattened values); default ``1/(2 a^d sqrt(p̂² + 1))``. Use
    :func:`GaussianBridge.create` to pass an array.
    """

    supports_weighted_trace = True



    def setup(self):
        classes, _ = self.lattice.momentum_shells()
        init = shell_means(self.lattice, np.log(self.reference_variance0()))
        self._classes = classes
        self.log_variance0 = self.param("log_variance0", lambda key: jnp.asarray(init))

    @nn.nowrap
    def transfer(self, params, source):
        """log C_0 per p̂² shell of this lattice from the trained ``params`` of ``source`` (a smaller or equal
        lattice, possibly another theory): this model's initial log C_0 (the Hartree Gaussian of its own
        theory and lattice with ``init = "hartree"``) plus the trained change from the initial value of
        ``source``, interpolated linearly in p̂² (both are functions of p̂²; p̂² spans [0, 4d/a²] on
        every even lattice, so the interpolation is within range; beyond the source's largest p̂² it is
        held constant).

        Only the learned change is interpolated, so what depends on N and on the couplings exactly (the
        self-consistent Hartree mass, finite-size effects) is recomputed for the new lattice, and the
        smooth correction the training found is carried over. The momenta of the small lattice are
        momenta of the large one with the same p̂², so there C_0 changes only by the change of the initial
        Gaussian (none with ``init = "default"``); on the same lattice and theory the parameters are
        returned bit for bit."""
        p2_s, p2_t = shell_phat2(source.lattice), shell_phat2(self.lattice)
        init_s = shell_means(source.lattice, np.log(source.reference_variance0()))
        init_t = shell_means(self.lattice, np.log(self.reference_variance0()))
        trained = np.asarray(params["log_variance0"], dtype=float)
        # interp(trained) + (init_t − interp(init_s)), which is exact at coinciding shells and theories
        value = np.interp(p2_t, p2_s, trained) + (init_t - np.interp(p2_t, p2_s, init_s))
        return {**params, "log_variance0": value}

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
