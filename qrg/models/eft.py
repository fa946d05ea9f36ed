"""EFT-structured score (paper 5.26): running couplings times local operators, plus a residual.

    s(φ, t) = f_Δ(t) Δφ + f_φ(t) φ + f_3(t) φ³ + ŝ_⊥(φ, t),     g = (Δφ, φ, φ³),

so that −log p_t ≈ ½ f_Δ Σ(∇φ)² − ½ f_φ Σφ² − ¼ f_3 Σφ⁴ + …: the f_i(t) are the running kinetic,
mass and quartic couplings (``couplings(t)`` returns them for plotting). They come from a small
MLP on a Fourier time embedding, f_Δ = softplus(·) > 0 (a positive kinetic term), started at the
local fit c_1 p̂² + c_0 of the precision C_τ^-1(k) of the reference Gaussian bridge at τ =
``time_scale`` (least squares over k): f_Δ = c_1, f_φ = −c_0, f_3 = 0.

Residual: a :class:`KernelNet` ŝ projected per configuration orthogonal to span{g_i}:

    ŝ_⊥ = ŝ − Σ_i g_i c_i(φ),    c_i = Σ_j (G̃ + ε 1)^-1_ij ⟨g_j, ŝ⟩ / (|g_i| |g_j|),
    G̃_ij = ⟨g_i, g_j⟩ / (|g_i| |g_j|)   (the normalised Gram matrix, unit diagonal),

with ε = 1e-12 (a ridge that only keeps G̃ invertible when the g_i are nearly collinear, e.g. for
a constant field; it leaves overlaps ⟨g_i, ŝ_⊥⟩/(|g_i||ŝ_⊥|) of order ε·cond(G̃)). Exact divergence, weighted by a
circulant W (W = 1: plain divergence):

    tr(W J_{Δφ}) = −Σ_k W_k p̂²   (= −2d N^d / a² for W = 1),
    tr(W J_φ)    = Σ_k W_k        (= N^d),
    tr(W J_{φ³}) = W(0) Σ_n 3φ(n)²,  W(0) = N^-d Σ_k W_k,
    tr(W J_{ŝ⊥}) = tr(W J_ŝ) − Σ_i [ c_i tr(W J_{g_i}) + ⟨∇_φ c_i, W g_i⟩ ],

where tr(W J_ŝ) is the kernel network's O(N^d) trace and ∇_φ c_i are three reverse-mode
gradients of scalars (O(N^d log N) each), so the divergence is exact and cheap.

Prior at T: the Gaussian of the linear couplings, precision π_T(k) = f_Δ(T) p̂² − f_φ(T); the
mass term is floored at 1e-6·Σ_T^-1(0) so that the prior exists even if training drives
f_φ(T) ≥ 0 (it is then no longer the model's linear part; at large T the drift dominates and
this does not happen in practice).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from .._validation import QRGInputError
from .base import MODELS, ScoreModel, TimeMLP, weight_diagonal
from .kernel_net import KernelNet, convolve_features

RIDGE = 1e-12


def _softplus_inverse(y):
    return float(np.log(np.expm1(y)))


@MODELS.register("eft")
class EFTScore(ScoreModel):
    """Σ_i f_i(t) g_i(φ) with g = (Δφ, φ, φ³) plus an orthogonally projected kernel-net residual."""

    supports_weighted_trace = True

    residual: bool = True
    width: int = 32
    depth: int = 2
    n_freq: int = 4
    time_scale: float = 1.0
    out_scale: float = 1e-3
    n_sin: int = 4
    base_frequency: float = 0.75

    @classmethod
    def create(cls, lattice, scheme, variance0=None, **kw):
        if kw.get("residual", True) and lattice.n_sites < 4:
            raise QRGInputError(
                f"model 'eft' with its projected residual needs a lattice of at least 4 sites (got "
                f"{lattice.n_sites}): on fewer sites Δφ, φ, φ³ are linearly dependent and the projection "
                "is singular; use residual=False or model 'default'"
            )
        return super().create(lattice, scheme, variance0, **kw)

    def _reference_fit(self):
        """(c_1, c_0): least-squares fit of the reference bridge precision C_τ^-1(k) by c_1 p̂² + c_0."""
        c0 = self.reference_variance0()
        with jax.ensure_compile_time_eval():  # static numbers, also when traced inside jit
            c_tau = np.asarray(self.scheme.bridge_variance(self.time_scale, jnp.asarray(c0)))
        p2 = self.lattice.phat2.ravel()
        if np.ptp(p2) > 0:
            c1, c0_ = np.polyfit(p2, 1.0 / c_tau.ravel(), 1)
        else:
            c1, c0_ = 1.0, float(np.mean(1.0 / c_tau))
        return max(float(c1), 1e-3), float(c0_)

    def setup(self):
        c1, c0 = self._reference_fit()
        self._offsets = (_softplus_inverse(c1), -c0)
        self.coupling_net = TimeMLP(3, self.width, self.depth, self.n_freq, self.time_scale, self.out_scale)
        if self.residual:
            self.residual_net = KernelNet(self.lattice, self.scheme, **self._residual_options())

    @nn.nowrap
    def _residual_options(self) -> dict:
        """The options of the residual :class:`KernelNet` (besides lattice and scheme)."""
        return dict(n_sin=self.n_sin, base_frequency=self.base_frequency, width=self.width, depth=self.depth,
                    n_freq=self.n_freq, time_scale=self.time_scale, out_scale=self.out_scale)

    @nn.nowrap
    def transfer(self, params, source):
        """This model's parameters from the trained ``params`` of ``source`` (the same options on a lattice of
        the same d, at most as large): the coupling network is copied with its output bias shifted by the
        change of the offsets (the local fit of the initial Gaussian depends on the lattice's momenta: a fit,
        not physics), so the running couplings f_i(t) are the trained ones at every t; the residual kernel
        network by :meth:`KernelNet.transfer`."""
        last = f"Dense_{self.depth}"
        (c1_s, c0_s), (c1_t, c0_t) = source._reference_fit(), self._reference_fit()
        shift = np.array([_softplus_inverse(c1_s) - _softplus_inverse(c1_t), c0_t - c0_s, 0.0])
        net = params["coupling_net"]
        out = {**params, "coupling_net": {**net, last: {**net[last], "bias": np.asarray(net[last]["bias"]) + shift}}}
        if self.residual:
            residual = KernelNet(self.lattice, self.scheme, parent=None, **self._residual_options())
            source_residual = KernelNet(source.lattice, source.scheme, parent=None, **source._residual_options())
            out["residual_net"] = residual.transfer(params["residual_net"], source_residual)
        return out

    def couplings(self, t):
        """Running couplings (f_Δ(t), f_φ(t), f_3(t)) as an array of shape (3,)."""
        h = self.coupling_net(t)
        return jnp.stack([nn.softplus(h[0] + self._offsets[0]), h[1] + self._offsets[1], h[2]])

    def _operators(self, phi):
        return jnp.stack([self.lattice.laplacian(phi), phi, phi**3])

    def _operator_traces(self, phi, weight):
        p2 = jnp.asarray(self.lattice.phat2)
        if weight is None:
            tr_lap, tr_id = -jnp.sum(p2), float(self.lattice.n_sites)
        else:
            tr_lap, tr_id = -jnp.sum(weight * p2), jnp.sum(weight)
        tr_cube = weight_diagonal(self.lattice, weight) * jnp.sum(3.0 * phi**2)
        return jnp.stack([tr_lap, jnp.broadcast_to(tr_id, ()), tr_cube])

    def score_and_divergence(self, phi, t, weight=None):
        f = self.couplings(t)
        g = self._operators(phi)
        tr_g = self._operator_traces(phi, weight)
        score = jnp.tensordot(f, g, axes=1)
        div = jnp.dot(f, tr_g)
        if not self.residual:
            return score, div
        kernel_ft, omega = self.residual_net.kernel_spectra(t)
        lattice = self.lattice
        sum_axes = tuple(range(1, lattice.d + 1))

        def projection_coefficients(x):
            gx = self._operators(x)
            sx, _ = convolve_features(lattice, x, kernel_ft, omega)
            gram = jnp.tensordot(gx, gx, axes=(sum_axes, sum_axes))
            # normalised Gram matrix (unit diagonal) plus a ridge ε: well conditioned at any scale of φ
            # g_i ≡ 0 (e.g. Δφ on a single site) contributes nothing; the double where keeps the
            # derivative of sqrt at 0 out of the Jacobian (otherwise 0·∞ = NaN)
            sq = jnp.diagonal(gram)
            inv = jnp.where(sq > 0, 1.0 / jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)
            corr = gram * inv[:, None] * inv[None, :] + RIDGE * jnp.eye(3)
            overlaps = jnp.sum(gx * sx[None], axis=sum_axes) * inv
            return jnp.linalg.solve(corr, overlaps) * inv

        s_res, tr_res = convolve_features(lattice, phi, kernel_ft, omega, weight)
        c = projection_coefficients(phi)
        grad_c = jax.jacrev(projection_coefficients)(phi)  # (3,) + lattice.shape
        wg = g if weight is None else jax.vmap(lambda x: lattice.apply_diagonal(x, weight))(g)
        tr_proj = jnp.dot(c, tr_g) + jnp.sum(grad_c * wg)
        score = score + s_res - jnp.tensordot(c, g, axes=1)
        return score, div + tr_res - tr_proj

    def prior_variance(self, T):
        f = self.couplings(T)
        c1, c0 = self._reference_fit()
        floor = 1e-6 * max(c0, 1e-6)
        mass = jnp.maximum(-f[1], floor)
        return 1.0 / (f[0] * jnp.asarray(self.lattice.phat2) + mass)
