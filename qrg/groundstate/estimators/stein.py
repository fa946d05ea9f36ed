"""Zero-variance Stein control variates (first derivatives only, variance of the order of Var(E_loc)).

Stein's identity E_p[g·∇f + Δf] = 0 holds for every smooth f of moderate growth, with g the score
of p itself, so every

    h_f(φ) = g·∇f + Δf

has mean zero under p, for any θ, and  e_cv = e_ibp − Σ_j c_j h_j  is unbiased for any fixed
coefficients c (Assaraf & Caffarel's zero-variance principle). :func:`stein_features` gives the
translation-invariant family f_s = ½ φᵀ P_s φ (P_s: projector on the Fourier modes with one value
of p̂², one feature per shell of :meth:`~qrg.Lattice.momentum_shells`), f = ¼ Σ_n φ(n)⁴, ⅙ Σ φ⁶,
near-neighbour quartic terms and functions of the field sum:

    h_s = g·P_s φ + tr P_s,         h_4 = Σ_n [g(n) φ(n)³ + 3 φ(n)²],   ...

The quadratic ones cancel the O(N^d) Gaussian fluctuations of |g|²/(8a^d) + V (for a Gaussian p
with precision P, c_s = (P_s²/(8a^d) + a^d(p̂²+m²)/2)/P_s removes them exactly), the others most
of the rest (f = ½ log p would turn e_ibp into E_loc exactly). :func:`control_variate_energy`
fits c by least squares with two-fold cross-fitting (coefficients from one half applied to the
other), so the estimate stays unbiased; :class:`ControlVariateFit` keeps the running fit used in
training (coefficients from earlier batches only).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..._validation import QRGInputError
from ...stats import Stats
from .base import ESTIMATORS, EnergyEstimator, finite_stats
from .ibp import ibp_energy_values


def stein_features(lattice, phi, score, *, quartic: bool = True, neighbours: int = 3, collective: bool = True):
    """Zero-mean Stein features h_j(φ) = g·∇f_j + Δf_j of a batch, shape (n, n_features).

    ``score`` must be g = ∇ log p of the distribution ``phi`` is drawn from; then E_p[h_j] = 0
    exactly. The functions f_j (all translation and reflection invariant):

    * f_s = ½ φᵀ P_s φ for every momentum shell s (:meth:`~qrg.Lattice.momentum_shells`): h_s = g·P_sφ + tr P_s;
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
    masks = jnp.asarray(lattice.momentum_shell_masks())
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


#: :func:`stein_features` compiled once per lattice, options and batch shape (for concrete samples)
stein_feature_values = jax.jit(stein_features, static_argnums=0, static_argnames=("quartic", "neighbours", "collective"))


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
    return finite_stats(resid, "the control-variate energy", tails=True)


class ControlVariateFit:
    """Coefficients of the Stein control variates from an exponential moving average of batch moments.

    ``update(moments)`` adds one batch's sums (n, Σh, Σhhᵀ, Σe, Σeh) with weight 1 after scaling
    the old ones by ``decay``; ``coef`` is the least-squares c of e ≈ c_0 + h·c on the averaged
    moments (zeros until there are more samples than features). The coefficients used at a step
    come only from earlier batches, so the training estimate stays exactly unbiased.
    """

    def __init__(self, n_features: int, decay: float, state: dict | None = None):
        self.decay = float(decay)
        if state is None:
            f = int(n_features)
            state = {"n": 0.0, "h": np.zeros(f), "hh": np.zeros((f, f)), "e": 0.0, "eh": np.zeros(f)}
        self.state = {k: np.asarray(v, dtype=float) for k, v in state.items()}

    def inputs(self):
        """The coefficients for the next training step (a jax array)."""
        return jnp.asarray(self.coef)

    def metrics(self, aux) -> dict:
        """The plain integrated-by-parts batch energy of a step (before the control variates)."""
        moments = aux[3]
        return {"energy_ibp": float(moments[3]) / float(moments[0])}

    def observe(self, aux) -> None:
        """Training-loop hook: add the batch moments of an applied step (``aux[3]`` of the objective)."""
        self.update(aux[3])

    def update(self, moments) -> None:
        for name, value in zip(("n", "h", "hh", "e", "eh"), moments):
            self.state[name] = self.decay * self.state[name] + np.asarray(value, dtype=float)

    @property
    def coef(self) -> np.ndarray:
        st = self.state
        n, f = float(st["n"]), st["h"].shape[0]
        if n < f + 2:
            return np.zeros(f)
        mh, me = st["h"] / n, float(st["e"]) / n
        cov = st["hh"] / n - np.outer(mh, mh)
        cross = st["eh"] / n - mh * me
        try:
            c = solve_control_variates(cov, cross)
        except np.linalg.LinAlgError:
            return np.zeros(f)
        return c if np.all(np.isfinite(c)) else np.zeros(f)


def n_stein_features(lattice) -> int:
    """Number of columns of :func:`stein_features` on ``lattice``."""
    zero = jax.ShapeDtypeStruct((1,) + lattice.shape, jnp.float32)
    return int(jax.eval_shape(lambda x: stein_features(lattice, x, x), zero).shape[1])  # traced, not run


class SteinControlVariates(EnergyEstimator):
    """e_ibp with cross-fitted Stein control variates (None when there are too few samples)."""

    name = "cv"
    label = "Stein control variates"

    def estimate(self, theory, phi, score, laplacian=None):
        features = np.asarray(stein_feature_values(theory.lattice, phi, score))
        if phi.shape[0] < 2 * (features.shape[1] + 2) or not np.all(np.isfinite(features)):
            return None
        return control_variate_energy(np.asarray(ibp_energy_values(theory, phi, score)), features)


ESTIMATORS.register("cv", SteinControlVariates())
