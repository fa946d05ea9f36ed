"""Energy estimators of a wavefunction Ψ = sqrt(p) = exp(−S/2) (design §3.3).

With ``g = ∇_φ log p(φ)`` and V(φ) the lattice potential (design §2), for the Hamiltonian
H = Σ_n [−1/(2a^d) ∂²/∂φ_n²] + V(φ) two unbiased estimators of <H> under φ ~ p are

* integrated by parts (first derivatives only; what the optimiser differentiates)::

      e_ibp(φ) = |g|² / (8 a^d) + V(φ),         <H> = E_p[e_ibp],

  because <Ψ|−∂²|Ψ> = ∫ |∂Ψ|² = ∫ p |∂ log p|²/4  (Ψ = p^{1/2}, ∂Ψ = ½ Ψ ∂ log p);

* the local energy (paper 6.10–6.12, zero variance at an eigenstate)::

      E_loc(φ) = (HΨ)(φ)/Ψ(φ) = −(1/(2a^d)) [ ½ Δ_φ log p + ¼ |g|² ] + V(φ),

  since ΔΨ/Ψ = ½ Δ log p + ¼ |∇ log p|².  Δ_φ log p = tr ∇∇ᵀ log p is computed exactly
  (Σ_i e_iᵀ H e_i, one Hessian–vector product per site: small lattices) or by the
  Hutchinson estimate E_v[vᵀ H v] with Rademacher v (large lattices; unbiased, adds variance).

* the zero-variance control-variate estimator (first derivatives only, like e_ibp, but with a
  variance of the order of Var(E_loc)): Stein's identity E_p[g·∇f + Δf] = 0 holds for every smooth
  f of moderate growth, with g the score of p itself, so every

      h_f(φ) = g·∇f + Δf

  has mean zero under p, for any θ, and  e_cv = e_ibp − Σ_j c_j h_j  is unbiased for any fixed
  coefficients c (Assaraf & Caffarel's zero-variance principle). ``stein_features`` gives the
  translation-invariant family f_s = ½ φᵀ P_s φ (P_s: projector on the Fourier modes with one value
  of p̂², one feature per such shell), f = ¼ Σ_n φ(n)⁴, ⅙ Σ φ⁶ and near-neighbour quartic terms:

      h_s = g·P_s φ + tr P_s,         h_4 = Σ_n [g(n) φ(n)³ + 3 φ(n)²],   ...

  The quadratic ones cancel the O(N^d) Gaussian fluctuations of |g|²/(8a^d) + V (for a Gaussian p
  with precision P, c_s = (P_s²/(8a^d) + a^d(p̂²+m²)/2)/P_s removes them exactly), the others
  most of the rest (f = ½ log p would turn e_ibp into E_loc exactly). ``control_variate_energy`` fits c by least squares with two-fold cross-fitting
  (coefficients from one half applied to the other), so the estimate stays unbiased.

Both Laplacian methods use second directional derivatives vᵀHv computed forward-over-forward (jvp of jvp) of
a *batched* log-density ``log_prob(φ_batch) -> (n,)``: samples are independent, so a tangent
that is the same one-hot vector e_i in every sample gives every sample's H_ii at once.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._validation import QRGInputError, check_int
from .stats import Stats, format_value_error, statistics

#: lattices with at most this many sites get the exact Laplacian by default
EXACT_LAPLACIAN_MAX_SITES = 64

LAPLACIAN_METHODS = ("auto", "exact", "hutchinson", "none")


# ---------------------------------------------------------------------------- per-sample estimators
def kinetic_ibp(lattice, score):
    """Integrated-by-parts kinetic energy |g|²/(8 a^d) per sample (batch axes kept)."""
    return jnp.sum(score**2, axis=lattice.axes) / (8.0 * lattice.volume_element)


def ibp_energy(theory, phi, score):
    """e_ibp(φ) = |g|²/(8 a^d) + V(φ) per sample; its mean is <H> (design §3.3)."""
    return kinetic_ibp(theory.lattice, score) + theory.potential(phi)


def local_energy(theory, phi, score, laplacian_log_prob):
    """E_loc(φ) = −(1/(2a^d)) [½ Δ_φ log p + ¼ |g|²] + V(φ) per sample (design §3.3)."""
    lat = theory.lattice
    g2 = jnp.sum(score**2, axis=lat.axes)
    return -(0.5 * laplacian_log_prob + 0.25 * g2) / (2.0 * lat.volume_element) + theory.potential(phi)


# ---------------------------------------------------------------------------- Stein control variates
def momentum_shells(lattice) -> np.ndarray:
    """Indicator masks (S,) + lattice.shape of the Fourier modes with equal p̂² (one per shell)."""
    p2 = np.round(np.asarray(lattice.phat2), 10)
    return np.stack([(p2 == v) for v in np.unique(p2)]).astype(float)


def stein_features(lattice, phi, score, *, quartic: bool = True, neighbours: int = 3, collective: bool = True):
    """Zero-mean Stein features h_j(φ) = g·∇f_j + Δf_j of a batch, shape (n, n_features).

    ``score`` must be g = ∇ log p of the distribution ``phi`` is drawn from; then E_p[h_j] = 0
    exactly. The functions f_j (all translation and reflection invariant):

    * f_s = ½ φᵀ P_s φ for every momentum shell s (``momentum_shells``): h_s = g·P_sφ + tr P_s;
    * if ``quartic``: f = ¼ Σ φ⁴ (h = Σ g φ³ + 3 Σ φ²), f = ⅙ Σ φ⁶ (h = Σ g φ⁵ + 5 Σ φ⁴), and for
      r = 1 … min(``neighbours``, N // 2), summed over the d axes with unit vector e:
      f = Σ_n φ(n)² φ(n+re)²  (∇f = 2φ [φ(·+re)² + φ(·−re)²], Δf = 4 Σ φ²) and
      f = Σ_n [φ(n)³ φ(n+re) + φ(n) φ(n+re)³]  (∇f = 3φ²[φ(·+re) + φ(·−re)] + φ(·+re)³ + φ(·−re)³,
      Δf = 12 Σ φ(n) φ(n+re));
    * if ``quartic`` and ``collective``: functions of the field sum S = Σ φ (V = number of sites,
      Q = Σ φ²): f = S⁴/(4V) (∇f = S³/V, Δf = 3S²), f = S⁶/(6V²) (∇f = S⁵/V², Δf = 5S⁴/V) and
      f = S²Q/V (∇f = (2SQ + 2S²φ)/V, Δf = 2Q + 8S²/V + 2S²): the shape of the magnetisation
      distribution, which is double-peaked in the broken-symmetry (m² < 0) regime where the local
      terms alone leave most of the variance.

    The span contains the leading terms of log p of a φ⁴ ground state (Gaussian part, local and
    near-neighbour quartic terms), and with f = ½ log p the corrected estimator would be E_loc
    itself: measured on the trained N = 32 chain the variance of e_ibp − Σ c h is below Var(E_loc).
    Cost: two FFTs and a few shifts per sample.
    """
    masks = jnp.asarray(momentum_shells(lattice))
    sum_axes = tuple(range(1, masks.ndim))
    ax = lattice.axes
    cross = jnp.real(jnp.conj(lattice.fft(score)) * lattice.fft(phi)) / lattice.n_sites  # Σ_k = g·φ
    quad = jnp.einsum("b...,s...->bs", cross, masks) + jnp.sum(masks, axis=sum_axes)[None]
    if not quartic:
        return quad
    total = lambda x: jnp.sum(x, axis=ax)  # noqa: E731
    feats = [total(score * phi**3) + 3.0 * total(phi**2), total(score * phi**5) + 5.0 * total(phi**4)]
    for r in range(1, min(int(neighbours), lattice.N // 2) + 1):
        pair_sq = jnp.zeros(phi.shape[:1], phi.dtype)
        pair_odd = jnp.zeros(phi.shape[:1], phi.dtype)
        for axis in ax:
            up, dn = jnp.roll(phi, -r, axis), jnp.roll(phi, r, axis)
            pair_sq = pair_sq + total(score * 2.0 * phi * (up**2 + dn**2)) + 4.0 * total(phi**2)
            pair_odd = (pair_odd + total(score * (3.0 * phi**2 * (up + dn) + up**3 + dn**3))
                        + 12.0 * total(phi * up))
        feats += [pair_sq, pair_odd]
    if collective:
        V = float(lattice.n_sites)
        S = total(phi)
        Q = total(phi**2)
        G = total(score)
        feats += [S**3 * G / V + 3.0 * S**2,
                  S**5 * G / V**2 + 5.0 * S**4 / V,
                  (2.0 * S * Q * G + 2.0 * S**2 * total(score * phi)) / V + 2.0 * Q + 8.0 * S**2 / V + 2.0 * S**2]
    return jnp.concatenate([quad, jnp.stack(feats, axis=1)], axis=1)


def fit_control_variates(values, features, ridge: float = 1e-10):
    """Least-squares c of values ≈ c_0 + features @ c (see :func:`solve_control_variates`)."""
    y = np.asarray(values, dtype=float)
    H = np.asarray(features, dtype=float)
    Hc = H - H.mean(axis=0)
    return solve_control_variates(Hc.T @ Hc, Hc.T @ (y - y.mean()), ridge)


def solve_control_variates(cov, cross, ridge: float = 1e-10):
    """c = cov^-1 cross for the feature covariance ``cov`` and feature–value covariance ``cross``.

    Solved in standardised features (each scaled by its standard deviation) with a ridge
    ``ridge`` · 1, so that the regularisation does not depend on the features' scales; features
    with zero variance get c = 0.
    """
    cov = np.asarray(cov, dtype=float)
    cross = np.asarray(cross, dtype=float)
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    live = sd > 0
    c = np.zeros(cov.shape[0])
    if not np.any(live):
        return c
    s = sd[live]
    corr = cov[np.ix_(live, live)] / np.outer(s, s)
    c[live] = np.linalg.solve(corr + ridge * np.eye(corr.shape[0]), cross[live] / s) / s
    return c


def control_variate_energy(values, features, *, folds: int = 2) -> Stats:
    """Unbiased zero-variance estimate of E[values] with Stein features (cross-fitted).

    The samples are split into ``folds`` parts; each part's residuals values − features @ c use
    coefficients c fitted on the other parts only, so E[residual] = E[values] exactly (the
    features have mean zero). Returns the statistics of the pooled residuals (independent samples).
    """
    y = np.asarray(values, dtype=float)
    H = np.asarray(features, dtype=float)
    n = y.shape[0]
    if n < folds * (H.shape[1] + 2):
        raise QRGInputError(f"the control-variate estimate needs at least {folds * (H.shape[1] + 2)} samples "
                            f"for {H.shape[1]} features (got {n})")
    parts = np.array_split(np.arange(n), folds)
    resid = np.empty(n)
    for i, idx in enumerate(parts):
        rest = np.concatenate([q for j, q in enumerate(parts) if j != i])
        c = fit_control_variates(y[rest], H[rest])
        resid[idx] = y[idx] - H[idx] @ c
    return _finite_stats(resid, "the control-variate energy")


# ---------------------------------------------------------------------------- Laplacian of log p
def second_directional_derivative(log_prob_batch, phi, tangent):
    """vᵀ H_b v for every sample b: forward-over-forward derivative of the batched log p.

    ``log_prob_batch`` maps (n,) + lattice.shape -> (n,); samples are independent, so the
    tangent v (per-sample, same shape as ``phi``) gives d²/dε² log p(φ_b + ε v_b) per sample.
    Pure forward mode: works through ODE solves whose adjoint only supports jvp.
    """
    def first(x):
        return jax.jvp(log_prob_batch, (x,), (tangent,))[1]

    return jax.jvp(first, (phi,), (tangent,))[1]


def laplacian_exact(log_prob_batch, phi, lattice):
    """Δ_φ log p(φ_b) = Σ_i e_iᵀ H_b e_i for a batch ``phi`` of shape (n,) + lattice.shape.

    One second directional derivative per site (``lax.map`` over sites keeps memory at one).
    """
    n_sites = lattice.n_sites

    def diagonal_element(i):
        e = jnp.zeros(n_sites, dtype=phi.dtype).at[i].set(1.0).reshape(lattice.shape)
        return second_directional_derivative(log_prob_batch, phi, jnp.broadcast_to(e, phi.shape))

    return jnp.sum(jax.lax.map(diagonal_element, jnp.arange(n_sites)), axis=0)


def laplacian_hutchinson(log_prob_batch, phi, lattice, key, n_probes: int = 4):
    """Hutchinson estimate (1/P) Σ_p v_pᵀ H v_p with Rademacher v_p (unbiased for Δ log p)."""
    keys = jax.random.split(key, n_probes)

    def probe(k):
        v = jax.random.rademacher(k, phi.shape, dtype=phi.dtype)
        return second_directional_derivative(log_prob_batch, phi, v)

    return jnp.mean(jax.lax.map(probe, keys), axis=0)


def resolve_laplacian_method(method: str, lattice) -> str:
    if method not in LAPLACIAN_METHODS:
        raise QRGInputError(f"laplacian must be one of {LAPLACIAN_METHODS} (got {method!r})")
    if method == "auto":
        return "exact" if lattice.n_sites <= EXACT_LAPLACIAN_MAX_SITES else "hutchinson"
    return method


# ---------------------------------------------------------------------------- results
@dataclasses.dataclass(frozen=True)
class EnergyStats:
    """Energy and field observables of a wavefunction from independent samples.

    ``energy``: the integrated-by-parts estimator (mean ± err); ``cv_energy``: the same with the
    cross-fitted Stein control variates (``control_variate_energy``; None if too few samples);
    ``local_energy``: E_loc
    statistics (None if no Laplacian was computed, or if it was not finite: ``laplacian`` says so) — its ``variance`` is Var(E_loc), the
    zero-variance quality diagnostic; ``phi2`` = <φ(n)²> (site average), ``abs_m`` = <|M|>
    with M = N^-d Σ_n φ(n) the mean field.
    """

    energy: Stats
    local_energy: Stats | None
    phi2: Stats
    abs_m: Stats
    n_sites: int
    laplacian: str = "none"
    cv_energy: Stats | None = None

    @property
    def energy_per_site(self) -> float:
        return self.energy.mean / self.n_sites

    @property
    def variance(self) -> float:
        """Var(E_loc) if available, else the variance of the ibp estimator."""
        return self.local_energy.variance if self.local_energy is not None else self.energy.variance

    def to_dict(self) -> dict:
        out = {
            "energy": self.energy.mean,
            "energy_err": self.energy.err,
            "energy_per_site": self.energy_per_site,
            "energy_per_site_err": self.energy.err / self.n_sites,
            "energy_ibp_variance": self.energy.variance,
            "variance": self.variance,
            "laplacian": self.laplacian,
            "phi2": self.phi2.mean,
            "phi2_err": self.phi2.err,
            "abs_m": self.abs_m.mean,
            "abs_m_err": self.abs_m.err,
            "n_samples": self.energy.n_samples,
        }
        if self.local_energy is not None:
            out["energy_local"] = self.local_energy.mean
            out["energy_local_err"] = self.local_energy.err
        if self.cv_energy is not None:
            out["energy_cv"] = self.cv_energy.mean
            out["energy_cv_err"] = self.cv_energy.err
        return out

    def __str__(self) -> str:
        s = f"E = {format_value_error(self.energy.mean, self.energy.err)}"
        if self.cv_energy is not None:
            s += f", E_cv = {format_value_error(self.cv_energy.mean, self.cv_energy.err)}"
        if self.local_energy is not None:
            s += (f", E_loc = {format_value_error(self.local_energy.mean, self.local_energy.err)}, "
                  f"Var(E_loc) = {self.local_energy.variance:.3g}")
        return s + f", <φ²> = {format_value_error(self.phi2.mean, self.phi2.err)}"


def _finite_stats(x, name: str) -> Stats:
    x = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x)))
        raise FloatingPointError(f"{bad} of {x.size} samples of {name} are not finite")
    return statistics(x, correlated=False)


def estimate_energy(theory, phi, score, *, log_prob=None, laplacian: str = "auto", key=None,
                    n_probes: int = 4, chunk_size: int = 256, laplacian_values=None,
                    control_variates: bool = True) -> EnergyStats:
    """Energy statistics of the samples ``phi`` (shape (n,) + lattice.shape, independent draws
    of p) with their scores ``g = ∇ log p(phi)``.

    ``log_prob``: a batched log-density φ_batch -> (n,), twice differentiable (needed for
    E_loc). ``laplacian``: "exact" (Σ_i e_iᵀ H e_i), "hutchinson" (``n_probes`` Rademacher
    probes, needs ``key``), "auto" (exact up to ``EXACT_LAPLACIAN_MAX_SITES`` sites), or "none"
    (ibp estimator only). Evaluated in chunks of ``chunk_size`` samples.
    ``laplacian_values``: precomputed Δ log p of the first m ≤ n samples (then ``log_prob`` is not
    needed, ``laplacian`` only labels the method, and E_loc uses those m samples).
    ``control_variates``: also the cross-fitted Stein control-variate estimate (``cv_energy``), when
    there are at least 2 (features + 2) samples.
    """
    lat = theory.lattice
    lat.check_field(phi)
    if np.ndim(phi) != lat.d + 1 or np.shape(score) != np.shape(phi):
        raise QRGInputError(f"phi and score must be batches of shape (n,) + {lat.shape} "
                            f"(got {np.shape(phi)} and {np.shape(score)})")
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    if laplacian_values is not None:
        method = resolve_laplacian_method(laplacian, lat)
    else:
        method = resolve_laplacian_method(laplacian, lat) if log_prob is not None else "none"
    if laplacian not in LAPLACIAN_METHODS:
        raise QRGInputError(f"laplacian must be one of {LAPLACIAN_METHODS} (got {laplacian!r})")
    if method == "hutchinson" and key is None and laplacian_values is None:
        raise QRGInputError("the Hutchinson Laplacian needs a PRNG key (key=...)")

    phi = jnp.asarray(phi)
    score = jnp.asarray(score)
    e_ibp = np.asarray(ibp_energy(theory, phi, score))
    phi2 = np.asarray(lat.mean_sites(phi**2))
    abs_m = np.asarray(jnp.abs(lat.mean_sites(phi)))

    e_loc_stats = None
    if laplacian_values is not None:
        lap_values = jnp.asarray(laplacian_values)
    elif method != "none":
        n = phi.shape[0]
        size = min(chunk_size, n)
        if method == "exact":
            lap_fn = jax.jit(lambda x, k: laplacian_exact(log_prob, x, lat))
        else:
            lap_fn = jax.jit(lambda x, k: laplacian_hutchinson(log_prob, x, lat, k, n_probes))
        lap = []
        for c, start in enumerate(range(0, n, size)):
            x = phi[start:start + size]
            m = x.shape[0]
            if m < size:  # pad the last chunk: one compiled shape
                x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (size - m,) + x.shape[1:])])
            k = jax.random.fold_in(key, c) if key is not None else jax.random.PRNGKey(0)
            lap.append(lap_fn(x, k)[:m])
        lap_values = jnp.concatenate(lap)
    if method != "none":
        m = lap_values.shape[0]  # E_loc may use only the first m samples (the Laplacian is costly)
        e_loc = np.asarray(local_energy(theory, phi[:m], score[:m], lap_values))
        if np.all(np.isfinite(e_loc)):
            e_loc_stats = statistics(e_loc, correlated=False)
        else:  # a failed Laplacian must not poison the (finite) ibp estimate: report it instead
            method = f"{method} (failed: {int(np.sum(~np.isfinite(e_loc)))} non-finite E_loc values)"

    cv_stats = None
    if control_variates:
        features = np.asarray(stein_features(lat, phi, score))
        if phi.shape[0] >= 2 * (features.shape[1] + 2) and np.all(np.isfinite(features)):
            cv_stats = control_variate_energy(e_ibp, features)

    return EnergyStats(
        energy=_finite_stats(e_ibp, "the energy"),
        local_energy=e_loc_stats,
        phi2=_finite_stats(phi2, "φ²"),
        abs_m=_finite_stats(abs_m, "|M|"),
        n_sites=lat.n_sites,
        laplacian=method,
        cv_energy=cv_stats,
    )


def energy_of_distribution(theory, dist, key, n: int, **kwargs) -> EnergyStats:
    """Energy statistics of any object with ``sample(key, (n,))``, ``score`` and ``log_prob``
    (e.g. a :class:`~qrg.gaussian.FourierGaussian` such as ``theory.free_ground_state()``)."""
    n = check_int("n (number of samples)", n, minimum=2)
    k_sample, k_lap = jax.random.split(key)
    phi = dist.sample(k_sample, (n,))
    return estimate_energy(theory, phi, dist.score(phi), log_prob=dist.log_prob, key=k_lap, **kwargs)


def sigma_distance(value: float, err: float, reference: float) -> float:
    """|value − reference| / err (inf if err is 0 and they differ)."""
    diff = abs(value - reference)
    if err > 0:
        return diff / err
    return 0.0 if diff == 0 else math.inf
