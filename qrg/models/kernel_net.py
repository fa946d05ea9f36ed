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
  double-peaked magnetisation of the broken-symmetry regime); its divergence is h'(M);
* optional ``pair`` channel: products of a field function at n with a convolution of another,

      s_pair(n) = Σ_a u_a(φ(n)) (P_a ∗ q(φ))(n) + q(φ(n)) Σ_a (Q_a ∗ u_a(φ))(n),

  u = (φ, tanh φ) odd, q = φ²/(1 + φ²) even and bounded, P_a, Q_a four more orbit kernels: the
  score of two-site terms Σ_{n,m} J(n − m) u(φ(n)) q(φ(m)) of log p (φ²φ² and φ³φ couplings of
  the ground state's non-local effective action), which sums of convolutions of single-site
  features cannot express. Odd, equivariant, growing at most linearly in φ, with exact trace
  (below) in O(N^d log N);
* optional ``hidden = C`` two-layer channel: C hidden fields h_c = Σ_j U_cj ∗ f_j(φ) through tanh,

      s_hid(n) = Σ_c (V_c ∗ tanh(h_c))(n),

  U_cj, V_c orbit kernels (U from a second time network started at O(1), V started near zero):
  a translation-equivariant two-layer network, odd (no biases, tanh odd), bounded. Its Jacobian
  trace stays exact and O(C J N^d log N) (below).

Exact divergence in O(N^d): ∂s(n)/∂φ(m) = Σ_j w_j(n − m) f_j'(φ(m)), so

    ∇·s = Σ_j w_j(0, t) Σ_m f_j'(φ(m)),
    tr(W J_s) = Σ_j [Σ_r W(r) w_j(r)] Σ_m f_j'(φ(m)) = Σ_j [N^-d Σ_k W_k ŵ_j(k)] Σ_m f_j'(φ(m)).

Pair channel: ∂s_pair(m)/∂φ(n) = δ_mn D(n) + Σ_a [u_a(φ(m)) P_a(m − n) q'(φ(n)) + q(φ(m)) Q_a(m − n) u_a'(φ(n))]
with D = Σ_a u_a' (P_a ∗ q) + q' Σ_a Q_a ∗ u_a, so tr(W J) = W(0) Σ_n D(n) + Σ_a Σ_m [u_a ((W P_a) ∗ q')
+ q ((W Q_a) ∗ u_a')](m), with (W K)(r) = W(r) K(r) (both kernels even).

Hidden channel: ∂s_hid(m)/∂φ(n) = Σ_{c,l,j} V_c(m − l) tanh'(h_c(l)) U_cj(l − n) f_j'(φ(n)), so
tr(W J) = Σ_j Σ_n f_j'(φ(n)) Σ_c (K_cj ∗ tanh'(h_c))(n) with K_cj(r) = (W ∗ V_c)(r) U_cj(r) (kernels
even; W = 1: K_cj(r) = V_c(r) U_cj(r), orbit by orbit).

Alone, this model has no separate linear Gaussian part; its prior at T is the Gaussian bridge
of a reference C_0 (``init_variance0``, default 1/(2a^d sqrt(p̂²+1))): C_T = α_T² C_0 + Σ_T. In the
default model it is the correction on top of a :class:`GaussianBridge`, whose C_T is the prior.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from .._validation import QRGInputError
from .base import MODELS, ScoreModel, TimeMLP, hypercubic_orbits, orbit_representatives


def orbit_fourier_matrix(lattice) -> np.ndarray:
    """F_o(k) = Σ_{r ∈ orbit o} e^{−ik·r}, real, shape (n_orbits,) + lattice.shape."""
    orbits, n_orbits = hypercubic_orbits(lattice)
    onehot = (orbits[None, ...] == np.arange(n_orbits).reshape((n_orbits,) + (1,) * lattice.d)).astype(float)
    axes = tuple(range(1, lattice.d + 1))
    return np.real(np.fft.fftn(onehot, axes=axes))


def orbit_transfer(source, target) -> tuple[np.ndarray, np.ndarray]:
    """How orbit kernels of the lattice ``source`` become those of the lattice ``target`` (same d, N_target ≥
    N_source): (index, factor), each of shape (n_orbits of target,); W_target[o] = factor[o] · W_source[index[o]],
    and 0 where index[o] = −1.

    An orbit of canonical displacement c (0 ≤ c_i ≤ N/2) exists on both lattices iff every c_i ≤ N_source/2;
    the orbits beyond exist only on the target and start at zero (kernels decay with distance in the gapped
    phase). The antipodal displacement c_i = N_source/2 (N_source even) is ONE site along that axis on the
    periodic source lattice but two, ±c_i, on a larger target: its value is halved once per such axis, so
    the kernel keeps its weight there. Then Σ_{r' ≡ r mod N_source} w_target(r') = w_source(r) for every r:
    on a field that repeats the source lattice periodically, every convolution (w ∗ f)(n) of the kernel
    network, and hence its score, is the source's repeated (and ŵ(k) is unchanged at the source's momenta,
    the uniform response ŵ(0) = Σ_r w(r) included). Copying the full value would double the antipodal
    coupling; on the same lattice nothing is halved and the kernels are copied bit for bit.
    """
    if source.d != target.d or target.N < source.N:
        raise QRGInputError(f"orbit kernels move to a lattice of the same d and at least the size: got d = "
                            f"{source.d}, N = {source.N} -> d = {target.d}, N = {target.N}")
    src = {tuple(int(v) for v in c): i for i, c in enumerate(orbit_representatives(source))}
    reps = orbit_representatives(target)
    index = np.array([src.get(tuple(int(v) for v in c), -1) for c in reps], dtype=int)
    antipodal = np.sum((2 * reps == source.N) & (target.N != source.N), axis=1)
    factor = np.where(index >= 0, 0.5**antipodal, 0.0)
    return index, factor


def output_map(rows: int, index, factor, n_source_orbits: int, extra: int = 0, offset: int = 0):
    """(source column, factor) of every column of a block of ``rows`` × (n_orbits + ``extra``) outputs of the
    time network (row-major; the ``extra`` last columns of a row are not orbit values and are copied) whose
    source block starts at column ``offset``; column −1: no source (set to zero)."""
    width_s = n_source_orbits + extra
    row_cols = np.concatenate([np.where(index >= 0, index, -1), n_source_orbits + np.arange(extra)])
    row_fac = np.concatenate([factor, np.ones(extra)])
    cols = [np.where(row_cols >= 0, offset + r * width_s + row_cols, -1) for r in range(rows)]
    return np.concatenate(cols), np.tile(row_fac, rows)


def transfer_time_mlp(params, depth: int, columns, factors) -> dict:
    """The parameters of a :class:`TimeMLP` whose outputs are ``factors`` × the source network's outputs
    ``columns`` (0 where the column is −1): its hidden layers are copied and the output layer's weights
    and biases are taken column by column (exact: the output layer is linear)."""
    last = f"Dense_{depth}"
    keep = columns >= 0
    take = np.where(keep, columns, 0)
    scale = np.where(keep, factors, 0.0)
    dense = {name: np.where(keep, np.asarray(value)[..., take] * scale, 0.0) for name, value in params[last].items()}
    return {**params, last: dense}


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


def pair_channel(lattice, phi, features, pair_weights, orbit_ft, orbit_index, weight=None):
    """(s_pair, tr(W J)) of the pair channel for orbit weights ``pair_weights`` of shape (4, n_orbits):
    rows 0, 1 the P_a (u_a(φ(n)) times P_a ∗ q), rows 2, 3 the Q_a (q(φ(n)) times Q_a ∗ u_a).
    u = (φ, tanh φ) are the first two of the kernel network's ``features`` (f, f', fft f)."""
    axes = tuple(range(lattice.d))
    baxes = tuple(range(1, lattice.d + 1))
    u, du, u_ft = (x[:2] for x in features)
    r2 = 1.0 + phi**2
    q, dq = phi**2 / r2, 2.0 * phi / r2**2
    spectra = jnp.tensordot(pair_weights, jnp.asarray(orbit_ft), axes=1)  # (4,) + lattice.shape
    pq = jnp.real(jnp.fft.ifftn(spectra[:2] * jnp.fft.fftn(q)[None], axes=baxes))  # P_a ∗ q
    qu = jnp.real(jnp.fft.ifftn(jnp.sum(spectra[2:] * u_ft, axis=0), axes=axes))  # Σ Q_a ∗ u_a
    s = jnp.sum(u * pq, axis=0) + q * qu
    diag = jnp.sum(du * pq) + jnp.sum(dq * qu)
    if weight is None:  # W = 1: only the kernels' values at r = 0 enter
        k0 = pair_weights[:, int(np.asarray(orbit_index).flat[0])]
        off = jnp.sum(k0[:2] * jnp.sum(u * dq[None], axis=baxes)) + jnp.sum(k0[2:] * jnp.sum(q[None] * du, axis=baxes))
        return s, diag + off
    w_k = jnp.asarray(weight)
    w_r = jnp.real(jnp.fft.ifftn(w_k))  # W(r), real and even
    kern = jnp.fft.fftn(pair_weights[:, jnp.asarray(orbit_index)] * w_r[None], axes=baxes)  # FT of W(r) K(r)
    conv_dq = jnp.real(jnp.fft.ifftn(kern[:2] * jnp.fft.fftn(dq)[None], axes=baxes))
    conv_du = jnp.real(jnp.fft.ifftn(kern[2:] * jnp.fft.fftn(du, axes=baxes), axes=baxes))
    off = jnp.sum(u * conv_dq) + jnp.sum(q[None] * conv_du)
    return s, jnp.mean(w_k) * diag + off


def hidden_channel(lattice, features, u_weights, v_weights, orbit_ft, orbit_index, weight=None):
    """(s_hid, tr(W J)) of the two-layer channel for ``features`` (f, f', fft f), each (J,) + lattice.shape,
    orbit weights ``u_weights`` (C, J, n_orbits) and ``v_weights`` (C, n_orbits)."""
    f, df, f_ft = features
    d = lattice.d
    axes, b1, b2 = tuple(range(d)), tuple(range(1, d + 1)), tuple(range(2, d + 2))
    oft = jnp.asarray(orbit_ft)
    u_ft = jnp.tensordot(u_weights, oft, axes=1)  # (C, J) + shape
    v_ft = jnp.tensordot(v_weights, oft, axes=1)  # (C,) + shape
    h = jnp.real(jnp.fft.ifftn(jnp.sum(u_ft * f_ft[None], axis=1), axes=b1))
    act = jnp.tanh(h)
    s = jnp.real(jnp.fft.ifftn(jnp.sum(v_ft * jnp.fft.fftn(act, axes=b1), axis=0), axes=axes))
    if weight is None:
        k_ft = jnp.tensordot(v_weights[:, None, :] * u_weights, oft, axes=1)  # V_c(r) U_cj(r), orbit-wise
    else:
        wv = jnp.real(jnp.fft.ifftn(jnp.asarray(weight)[None] * v_ft, axes=b1))  # (W ∗ V_c)(r)
        k_ft = jnp.fft.fftn(wv[:, None] * u_weights[..., jnp.asarray(orbit_index)], axes=b2)
    dact_ft = jnp.fft.fftn(1.0 - act**2, axes=b1)
    diag = jnp.real(jnp.fft.ifftn(jnp.sum(k_ft * dact_ft[:, None], axis=0), axes=b1))  # (J,) + shape
    return s, jnp.sum(df * diag)


def feature_transforms(lattice, phi, omega, n_sin: int, growth: bool = False):
    """(f, f', fft f) of :func:`odd_features` on one field (the transform over the lattice axes)."""
    f, df = odd_features(phi, omega, n_sin, growth)
    return f, df, jnp.fft.fftn(f, axes=tuple(range(1, lattice.d + 1)))


def convolve_features(lattice, phi, kernel_ft, omega, weight=None, growth: bool = False, features=None):
    """(s, tr(W J_s)) of the kernel network for given Fourier kernels ŵ_j(k) (pure function of φ);
    ``features``: (f, f', fft f) if already computed (:func:`feature_transforms`)."""
    if features is None:
        features = feature_transforms(lattice, phi, omega, kernel_ft.shape[0] - 2 - int(growth), growth)
    f, df, f_ft = features
    axes = tuple(range(1, lattice.d + 1))
    s = jnp.real(jnp.fft.ifftn(jnp.sum(kernel_ft * f_ft, axis=0), axes=tuple(range(lattice.d))))
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
    pair: bool = False
    hidden: int = 0

    @property
    def n_features(self) -> int:
        return 2 + int(self.growth) + self.n_sin

    def setup(self):
        self._orbit_ft = orbit_fourier_matrix(self.lattice)
        self._orbit_index = hypercubic_orbits(self.lattice)[0]
        n_orbits = self._orbit_ft.shape[0]
        self.log_frequency = self.param("log_frequency", lambda key: jnp.log(jnp.asarray(self.base_frequency, dtype=float)))
        self._n_main = self.n_features * (n_orbits + int(self.collective))
        self._n_pair = 4 * n_orbits if self.pair else 0
        n_out = self._n_main + self._n_pair + self.hidden * n_orbits  # then the pair kernels, then the V_c
        self.kernel_net = TimeMLP(n_out, self.width, self.depth, self.n_freq, self.time_scale, self.out_scale)
        if self.hidden:  # U_cj at O(1) so that the hidden fields h_c = Σ_j U_cj ∗ f_j are O(1) from the start
            self.hidden_net = TimeMLP(self.hidden * self.n_features * n_orbits, self.width, self.depth, self.n_freq,
                                      self.time_scale, 1.0 / np.sqrt(self.n_features * self.lattice.n_sites))

    @nn.nowrap
    def transfer(self, params, source):
        """This network's parameters from the trained ``params`` of ``source`` (the same options on a lattice of
        the same d, at most as large): the log frequency and the time networks' hidden layers are copied;
        the output columns of the orbit kernels (main, pair and hidden-channel U and V kernels) by
        :func:`orbit_transfer` (shared orbits copied, an antipodal orbit of the source halved per axis,
        orbits that exist only on this lattice zero); the collective channel's b_j are copied."""
        index, factor = orbit_transfer(source.lattice, self.lattice)
        n_s = hypercubic_orbits(source.lattice)[1]
        n_f, extra = self.n_features, int(self.collective)
        blocks = [output_map(n_f, index, factor, n_s, extra)]
        offset = n_f * (n_s + extra)
        if self.pair:
            blocks.append(output_map(4, index, factor, n_s, offset=offset))
            offset += 4 * n_s
        if self.hidden:
            blocks.append(output_map(self.hidden, index, factor, n_s, offset=offset))
        columns, factors = (np.concatenate(x) for x in zip(*blocks))
        out = {**params, "kernel_net": transfer_time_mlp(params["kernel_net"], self.depth, columns, factors)}
        if self.hidden:
            columns, factors = output_map(self.hidden * n_f, index, factor, n_s)
            out["hidden_net"] = transfer_time_mlp(params["hidden_net"], self.depth, columns, factors)
        return out

    def _time_weights(self, t):
        """The network's output at t: kernel weights per orbit (and the collective b_j last), shape
        (n_features, n_orbits [+ 1]); without the pair and hidden-channel kernels."""
        return self.kernel_net(t)[: self._n_main].reshape(self.n_features, -1)

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
        out = self.kernel_net(t)  # one evaluation of the time network for all channels
        w = out[: self._n_main].reshape(self.n_features, -1)
        kernel_ft, omega = self.kernel_spectra(t, w[:, :-1] if self.collective else w)
        features = feature_transforms(self.lattice, phi, omega, self.n_sin, self.growth)
        s, div = convolve_features(self.lattice, phi, kernel_ft, omega, weight, self.growth, features)
        if self.pair:
            s_p, div_p = pair_channel(self.lattice, phi, features,
                                      out[self._n_main: self._n_main + self._n_pair].reshape(4, -1),
                                      self._orbit_ft, self._orbit_index, weight)
            s, div = s + s_p, div + div_p
        if self.hidden:
            u = self.hidden_net(t).reshape(self.hidden, self.n_features, -1)
            v = out[self._n_main + self._n_pair:].reshape(self.hidden, -1)
            s_h, div_h = hidden_channel(self.lattice, features, u, v, self._orbit_ft, self._orbit_index, weight)
            s, div = s + s_h, div + div_h
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
