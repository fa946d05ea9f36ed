"""The score-model interface (design §3.2, §4).

A score model is a flax module ``s_θ(φ, t) ≈ ∇_φ log p_t(φ)`` on one lattice field φ (shape
``lattice.shape``) at one RG time t. Every model returns, together with the score, the EXACT
trace of its Jacobian J_s = ∂s/∂φ, optionally weighted by a symmetric circulant operator W
(given by its Fourier eigenvalues W_k, even in k):

    tr(W J_s) = Σ_{n,m} W(n−m) ∂s(m)/∂φ(n),          W = 1  →  ∇_φ·s .

The weighted form is what the probability-flow divergence needs when the scheme's diffusion
rate B(t) is not a multiple of the identity (Polchinski, paper 5.41): ∇·(B s) = tr(B J_s).
All models shipped here have an exact trace in O(N^d) or O(N^d log N) (no Hutchinson
estimate: an estimate is unbiased for log p but biases |∇ log p|², which the energy needs).

Each model also names the Gaussian that its linear part implies at the prior time T
(``prior_variance(T)``, Fourier eigenvalues C_T): the flow starts its backward solve from
N(0, C_T) (design §3.2), which makes the free theory exactly representable.

Symmetries: the models are built from translation-equivariant (convolution or Fourier-
diagonal) operators whose kernels are invariant under the hypercubic group (axis
permutations and reflections), and from odd pointwise functions, so that

    s(T_r φ) = T_r s(φ),   s(Rφ) = R s(φ),   s(−φ) = −s(φ).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from .._validation import QRGInputError
from ..lattice import Lattice
from ..registry import Registry
from ..rg.base import RGScheme

#: score models by name; each member is a factory ``(lattice, scheme, **options) -> ScoreModel``
#: with ``options`` the model's own fields (see :func:`qrg.models.make_model`)
MODELS: Registry = Registry("score model")


def weight_diagonal(lattice: Lattice, weight) -> jnp.ndarray | float:
    """The real-space diagonal W(0) = N^-d Σ_k W_k of a circulant operator (1 for W = None).

    For a pointwise (diagonal) Jacobian J = diag(j(n)), tr(W J) = W(0) Σ_n j(n).
    """
    if weight is None:
        return 1.0
    return jnp.mean(jnp.asarray(weight))


def weighted_trace_diagonal(lattice: Lattice, operator_eigenvalues, weight) -> jnp.ndarray:
    """tr(W C) = Σ_k W_k c_k for two Fourier-diagonal operators (W = 1 if ``weight`` is None)."""
    if weight is None:
        return jnp.sum(operator_eigenvalues)
    return jnp.sum(jnp.asarray(weight) * operator_eigenvalues)


def hypercubic_orbits(lattice: Lattice) -> tuple[np.ndarray, int]:
    """Orbit index of every displacement r ∈ Z_N^d under the hypercubic group.

    Two displacements are in the same orbit iff they are related by axis permutations and
    reflections r_i → −r_i (mod N); the canonical representative is the sorted tuple of
    min(r_i, N − r_i). Returns (index array of shape lattice.shape, number of orbits).
    A kernel w(r) = w_o[orbit(r)] is then invariant under the whole point group, and even
    (w(r) = w(−r)) so its Fourier transform is real.
    """
    _, inverse = np.unique(_canonical_displacements(lattice), axis=0, return_inverse=True)
    inverse = inverse.reshape(lattice.shape)
    return inverse, int(inverse.max()) + 1


def orbit_representatives(lattice: Lattice) -> np.ndarray:
    """The canonical representative (sorted min(r_i, N − r_i), 0 ≤ entries ≤ N/2) of every orbit of
    :func:`hypercubic_orbits`, in its orbit order: an integer array of shape (n_orbits, d)."""
    return np.unique(_canonical_displacements(lattice), axis=0)


def _canonical_displacements(lattice: Lattice) -> np.ndarray:
    """Sorted min(r_i, N − r_i) of every displacement r ∈ Z_N^d, shape (N^d, d), rows in C order of r."""
    grids = np.meshgrid(*([np.arange(lattice.N)] * lattice.d), indexing="ij")
    folded = np.stack([np.minimum(g, lattice.N - g) for g in grids], axis=-1)
    return np.sort(folded, axis=-1).reshape(-1, lattice.d)


def default_variance0(lattice: Lattice) -> np.ndarray:
    """Default t = 0 covariance: the free ground state of mass 1, C_0(k) = 1/(2 a^d sqrt(p̂² + 1))."""
    return 1.0 / (2.0 * lattice.volume_element * np.sqrt(lattice.phat2 + 1.0))


def as_variance_tuple(lattice: Lattice, variance0, name: str = "variance0"):
    """Validate an initial C_0 (array of shape lattice.shape, > 0, even in k) and freeze it as a tuple."""
    if variance0 is None:
        return None
    arr = np.asarray(variance0, dtype=float)
    if arr.ndim == 0:
        arr = np.full(lattice.shape, float(arr))
    if arr.shape != lattice.shape:
        raise QRGInputError(f"{name} must have shape {lattice.shape} (Fourier eigenvalues; got {arr.shape})")
    if not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise QRGInputError(f"{name} must be finite and > 0 in every mode")
    return tuple(arr.ravel().tolist())


class FourierTimeEmbedding(nn.Module):
    """Fourier time embedding e(t) = (t/τ, sin(π j t/τ), cos(π j t/τ))_{j=1..n_freq}."""

    n_freq: int = 4
    time_scale: float = 1.0

    def __call__(self, t):
        x = jnp.asarray(t, dtype=float) / self.time_scale
        j = jnp.arange(1, self.n_freq + 1)
        return jnp.concatenate([x[None], jnp.sin(jnp.pi * j * x), jnp.cos(jnp.pi * j * x)])


class TimeMLP(nn.Module):
    """Small MLP on a Fourier time embedding: t ↦ R^n_out. The last layer starts at ``out_scale``·N(0,1)/√width."""

    n_out: int
    width: int = 32
    depth: int = 2
    n_freq: int = 4
    time_scale: float = 1.0
    out_scale: float = 1e-3

    @nn.compact
    def __call__(self, t):
        h = FourierTimeEmbedding(self.n_freq, self.time_scale)(t)
        for _ in range(self.depth):
            h = nn.silu(nn.Dense(self.width)(h))
        init = nn.initializers.normal(self.out_scale / np.sqrt(self.width))
        return nn.Dense(self.n_out, kernel_init=init, bias_init=nn.initializers.zeros)(h)


class ScoreModel(nn.Module):
    """Abstract base of all score models.

    Subclasses implement ``score_and_divergence(phi, t, weight=None)`` and
    ``prior_variance(T)``; ``__call__(phi, t)`` returns (s_θ(φ, t), ∇_φ·s_θ(φ, t)) for ONE
    configuration ``phi`` of shape ``lattice.shape`` and a scalar ``t``.
    """

    lattice: Lattice
    scheme: RGScheme
    #: initial / reference C_0 eigenvalues (flattened, fftn order; None = :func:`default_variance0`)
    init_variance0: tuple | None = None
    #: True if ``score_and_divergence`` accepts a circulant ``weight`` W and returns the exact
    #: tr(W J_s): needed by schemes whose diffusion rate B(t) is not a multiple of 1 (Polchinski).
    supports_weighted_trace: ClassVar[bool] = False

    def __call__(self, phi, t):
        return self.score_and_divergence(phi, t)

    def score_and_divergence(self, phi, t, weight=None):
        """(s, tr(W J_s)); W = identity when ``weight`` is None. Implemented by every model."""
        raise NotImplementedError(f"{type(self).__name__} must implement score_and_divergence")

    def prior_variance(self, T):
        """Fourier eigenvalues C_T of the Gaussian the model's linear part implies at time T."""
        raise NotImplementedError(f"{type(self).__name__} must implement prior_variance")

    def reference_variance0(self) -> np.ndarray:
        """The C_0 eigenvalues (shape lattice.shape) the model was built with, or the default."""
        if self.init_variance0 is None:
            return default_variance0(self.lattice)
        return np.asarray(self.init_variance0, dtype=float).reshape(self.lattice.shape)

    @nn.nowrap
    def transfer(self, params, source: "ScoreModel"):
        """This model's parameters from ``params``, the trained parameters of ``source`` (the same model and
        options on a lattice of the same d and a, at most as large; its theory may differ): the start of a
        larger run (:func:`qrg.groundstate.transfer.transfer_params`). Models with leaves that depend on the
        lattice size override it; here the parameters are returned unchanged on the same lattice and
        refused on another."""
        if source.lattice == self.lattice:
            return params
        raise QRGInputError(f"score model {type(self).__name__} has no size transfer: its parameters cannot be "
                            f"moved from N = {source.lattice.N} to N = {self.lattice.N}")

    def score(self, phi, t):
        return self.score_and_divergence(phi, t)[0]

    def divergence(self, phi, t, weight=None):
        return self.score_and_divergence(phi, t, weight)[1]

    # ------------------------------------------------------------------ construction by name
    @classmethod
    def options(cls) -> tuple[str, ...]:
        """Keyword options of :meth:`create` (``variance0`` and the model's own fields)."""
        skip = {"lattice", "scheme", "parent", "name", "init_variance0"}
        return ("variance0",) + tuple(f for f in cls.__dataclass_fields__ if f not in skip)

    @classmethod
    def create(cls, lattice, scheme, variance0=None, **options):
        """The model on ``lattice``/``scheme`` with initial Gaussian C_0 = ``variance0`` (None: default)."""
        unknown = sorted(set(options) - set(cls.options()))
        if unknown:
            raise QRGInputError(f"unknown options {unknown} for {cls.__name__}; allowed: {sorted(cls.options())}")
        return cls(lattice, scheme, init_variance0=as_variance_tuple(lattice, variance0), **options)
