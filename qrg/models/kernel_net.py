"""Equivariant kernel network (Gerdes, Klein, Nicoli, ... 2022, "Learning lattice quantum field
theories with equivariant continuous flows"): convolutions of odd pointwise features.

    s(φ, t)(n) = Σ_j Σ_m w_j(n − m, t) f_j(φ(m)),

* features f_j odd (φ → −φ symmetry): f = (φ, tanh φ, sin(ωφ), sin(2ωφ), …, sin(Kωφ)): a
  truncated odd Fourier series in φ with a learned base frequency ω > 0 (Gerdes et al. learn the
  sine frequencies; harmonics of one learned ω need only one sin and one cos per site, the rest by
  the angle-addition recurrence, which makes the network ~2× cheaper on CPU); with ``growth`` also
  φ sqrt(1 + φ²) ~ φ|φ|, the large-field growth of the exact ground state's score (on in the
  default model);
* kernels w_j(r, t) = W_{j,o(r)}(t) constant on the orbits o(r) of the hypercubic group acting on
  displacements r ∈ Z_N^d (axis permutations and reflections, see ``hypercubic_orbits``): the
  model is equivariant under lattice translations (convolution) and the point group (D4 in 2D);
  w_j(−r) = w_j(r), so ŵ_j(k) = Σ_o W_{j,o} F_o(k), F_o(k) = Σ_{r∈o} e^{−ik·r} is real;
* W(t) from a small MLP on a Fourier time embedding of t; the last layer starts near zero so
  the network starts as a small correction;
* applied by FFT: s = Re ifft(Σ_j ŵ_j(k, t) fft(f_j(φ))) in O(n_f N^d log N);
* optional ``collective`` channel: + h(M, t) = Σ_j b_j(t) f_j(M) on every site, M = mean φ: the
  score of an extensive term V·F(M) of log p, which the pointwise features cannot express (the
  double-peaked magnetisation of the broken-symmetry regime); its divergence is h'(M).

Exact divergence in O(N^d): ∂s(n)/∂φ(m) = Σ_j w_j(n − m) f_j'(φ(m)), so

    ∇·s = Σ_j w_j(0, t) Σ_m f_j'(φ(m)),
    tr(W J_s) = Σ_j [Σ_r W(r) w_j(r)] Σ_m f_j'(φ(m)) = Σ_j [N^-d Σ_k W_k ŵ_j(k)] Σ_m f_j'(φ(m)).

Alone, this model has no separate linear Gaussian part; its prior at T is the Gaussian bridge
of a reference C_0 (``init_variance0``, default 1/(2a^d sqrt(p̂²+1))): C_T = α_T² C_0 + Σ_T. In the
default model it is the correction on top of a :class:`GaussianBridge`, whose C_T is the prior.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .base import MODELS, ScoreModel, TimeMLP, hypercubic_orbits


def orbit_fourier_matrix(lattice) -> np.ndarray:
    """F_o(k) = Σ_{r ∈ orbit o} e^{−ik·r}, real, shape (n_orbits,) + lattice.shape."""
    orbits, n_orbits = hypercubic_orbits(lattice)
    onehot = (orbits[None, ...] == np.arange(n_orbits).reshape((n_orbits,) + (1,) * lattice.d)).astype(float)
    axes = tuple(range(1, lattice.d + 1))
    return np.real(np.fft.fftn(onehot, axes=axes))


def odd_features(phi, omega, n_sin: int, growth: bool = False):
    """f(φ) = (φ, tanh φ, [φ sqrt(1 + φ²)], sin(kωφ)_{k=1..n_sin}) and f'(φ) = (1, 1 − tanh² φ,
    [(1 + 2φ²)/sqrt(1 + φ²)], kω cos(kωφ)), stacked.

    sin(kωφ), cos(kωφ) by the angle-addition recurrence from sin(ωφ), cos(ωφ). ``growth`` adds
    φ sqrt(1 + φ²) ~ φ|φ|, the large-field behaviour of the exact ground state's score (WKB for a
    quartic potential: log|Ψ_0|² ~ −(2/3) sqrt(λ/12) |φ|³), smooth at φ = 0.
    """
    tanh = jnp.tanh(phi)
    feats = [phi, tanh]
    derivs = [jnp.ones_like(phi), 1.0 - tanh**2]
    if growth:
        root = jnp.sqrt(1.0 + phi**2)
        feats.append(phi * root)
        derivs.append((1.0 + 2.0 * phi**2) / root)
    if n_sin:
        s1, c1 = jnp.sin(omega * phi), jnp.cos(omega * phi)
        s, c = s1, c1
        for k in range(1, n_sin + 1):
            if k > 1:
                s, c = s * c1 + c * s1, c * c1 - s * s1
            feats.append(s)
            derivs.append(k * omega * c)
    return jnp.stack(feats), jnp.stack(derivs)


def convolve_features(lattice, phi, kernel_ft, omega, weight=None, growth: bool = False):
    """(s, tr(W J_s)) of the kernel network for given Fourier kernels ŵ_j(k) (pure function of φ)."""
    f, df = odd_features(phi, omega, kernel_ft.shape[0] - 2 - int(growth), growth)
    axes = tuple(range(1, lattice.d + 1))
    s = jnp.real(jnp.fft.ifftn(jnp.sum(kernel_ft * jnp.fft.fftn(f, axes=axes), axis=0), axes=tuple(range(lattice.d))))
    if weight is None:
        coeff = jnp.mean(kernel_ft, axis=axes)  # w_j(0) = N^-d Σ_k ŵ_j(k)
    else:
        coeff = jnp.mean(jnp.asarray(weight)[None] * kernel_ft, axis=axes)
    return s, jnp.sum(coeff * jnp.sum(df, axis=axes))


@MODELS.register("kernel")
class KernelNet(ScoreModel):
    """Translation/point-group equivariant, odd, time-dependent kernel network with exact divergence."""

    supports_weighted_trace = True

    n_sin: int = 4
    base_frequency: float = 0.75
    width: int = 32
    depth: int = 2
    n_freq: int = 4
    time_scale: float = 1.0
    out_scale: float = 1e-3
    collective: bool = False
    growth: bool = False

    @property
    def n_features(self) -> int:
        return 2 + int(self.growth) + self.n_sin

    def setup(self):
        self._orbit_ft = orbit_fourier_matrix(self.lattice)
        n_orbits = self._orbit_ft.shape[0]
        self.log_frequency = self.param("log_frequency", lambda key: jnp.log(jnp.asarray(self.base_frequency, dtype=float)))
        n_out = self.n_features * (n_orbits + int(self.collective))
        self.kernel_net = TimeMLP(n_out, self.width, self.depth, self.n_freq, self.time_scale, self.out_scale)

    def _time_weights(self, t):
        """The network's output at t: kernel weights per orbit (and the collective b_j last)."""
        return self.kernel_net(t).reshape(self.n_features, -1)

    def kernel_weights(self, t):
        """W_{j,o}(t): kernel value of feature j on displacement orbit o, shape (n_features, n_orbits)."""
        w = self._time_weights(t)
        return w[:, :-1] if self.collective else w

    def kernel_spectra(self, t, weights=None):
        """(ŵ_j(k, t) of shape (n_features,) + lattice.shape, base frequency ω); ``weights``: the
        orbit weights W_{j,o}(t) if already evaluated."""
        w = self.kernel_weights(t) if weights is None else weights
        kernel_ft = jnp.tensordot(w, jnp.asarray(self._orbit_ft), axes=1)
        return kernel_ft, jnp.exp(self.log_frequency)

    def score_and_divergence(self, phi, t, weight=None):
        w = self._time_weights(t)  # one evaluation of the time network for both channels
        kernel_ft, omega = self.kernel_spectra(t, w[:, :-1] if self.collective else w)
        s, div = convolve_features(self.lattice, phi, kernel_ft, omega, weight, self.growth)
        if not self.collective:
            return s, div
        # the same h(M) on every site, M = mean φ: ∂s(n)/∂φ(m) = h'(M)/V, so ∇·s_c = h'(M) and
        # tr(W J_c) = h'(M) Ŵ(k = 0)
        b = w[:, -1]
        f, df = odd_features(jnp.mean(phi), omega, self.n_sin, self.growth)
        h, dh = jnp.sum(b * f), jnp.sum(b * df)
        if weight is not None:
            dh = dh * jnp.asarray(weight).reshape(-1)[0]
        return s + h, div + dh

    def prior_variance(self, T):
        return self.scheme.bridge_variance(T, jnp.asarray(self.reference_variance0()))
