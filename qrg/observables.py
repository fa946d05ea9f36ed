"""Estimators for batches of lattice fields: Euclidean samples, RG-flowed samples, |Ψ|² samples.

One set of estimators (paper Section 7.2, eqs. 7.3–7.11, written here in the standard lattice
form because the OCR of the paper's formulas is garbled). Notation: lattice ``d, N, a``,
volume V = (N a)^d, site-mean magnetisation m = N^-d Σ_n φ(n), φ̃ = fftn(φ) (design §1).

Two-point function (7.5), normalised as the lattice Fourier transform of ⟨φ(n)φ(0)⟩::

    G2(p) = a^d N^-d ⟨|φ̃(p)|²⟩  = a^d Σ_n e^{−ipn} ⟨φ(n) φ(0)⟩,
    free theory:  G2(p) = 1/(p̂² + m²)   (i.e. ⟨|φ̃(p)|²⟩ = N^d/(a^d (p̂² + m²))).

Near p = 0, G2(p) ≈ Z/(p̂² + m_R²) (7.7). With p1 = 2π/(Na) the smallest nonzero momentum
(G2(p1) averaged over the 2d momenta ±p1 e_i), p̂1² = (4/a²) sin²(π/N):

    χ2   = G2(0) = V ⟨m²⟩                                  (susceptibility, = 1/m² free)
    m_R² = p̂1² / (G2(0)/G2(p1) − 1)                        (second-moment mass, 7.8)
    ξ    = 1/m_R                                            (correlation length)
    Z    = m_R² G2(0)                                       (7.9)

Connected four-point function at zero momentum (7.6), with the delta function stripped,
χ4 = a^{3d} N^-d ⟨φ̃(0)⁴⟩_c = V³ (⟨m⁴⟩ − 3⟨m²⟩²), and the renormalised coupling (7.10)
in the standard amputated, field-renormalised form (Lüscher–Weisz):

    λ_R = −χ4 m_R⁴ / χ2²       (= λ at tree level: χ4 = −λ/m⁸, χ2 = 1/m²),
    g_R = λ_R / m_R^{4−d} = −χ4 m_R^d / χ2²      (dimensionless).

``subtract_mean=True`` (broken phase, where chains stay in one well): χ2 and χ4 are built from
the cumulants of |m| instead (χ2 = V(⟨m²⟩ − ⟨|m|⟩²), χ4 = V³ κ4(|m|)); the default follows
the paper (zero-mean formulas 7.5, 7.6).

Rescaling along the RG flow (7.3, 7.4): after an RG time t the effective cutoff is
Λ_t = r_t Λ0 (``scheme.cutoff_ratio(t)``). The Carosso flow does not rescale momenta p → p/r_t,
so couplings in units of the running cutoff are m_R²/r_t² (``m_R2_rescaled``) and
λ_R/r_t^{4−d} (``lambda_R_rescaled``); dimensionless Z, g_R, binder are unchanged. For r_t = 0
(t ≥ 1/M² in Carosso-M) the rescaled values are reported as NaN.

Other observables: ⟨φ²⟩ (site average), ⟨|m|⟩, ⟨m²⟩, the connected susceptibility
χ_c = V(⟨m²⟩ − ⟨|m|⟩²), the Binder cumulant U4 = 1 − ⟨m⁴⟩/(3⟨m²⟩²), ⟨max_n |φ(n)|⟩ (7.11).

Statistics: samples of shape (n_chains, n_samples, *lattice.shape) are Markov chains; shape
(n, *lattice.shape) are independent draws. Primary observables (averages of a per-configuration
quantity) get ``qrg.stats.statistics`` of their per-chain time series (error from τ_int).
Derived observables (m_R, Z, λ_R, g_R, ξ, binder, χ_c) get a blocked jackknife over blocks of
the time axis (all chains together) for mean and error; their τ_int is that of the linearised
time series ∇f(μ̄)·(x_t − μ̄) (Wolff's Γ-method projection).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._validation import QRGInputError
from .lattice import Lattice
from .stats import Stats, jackknife, statistics

# per-configuration primary quantities, in the order of the columns of ``primary_series``
PRIMARIES = ("m", "abs_m", "m2", "abs_m3", "m4", "g2_p1", "phi2", "max_abs_phi")
DERIVED = ("chi_connected", "binder", "m_R2", "m_R", "xi", "Z", "lambda_R", "g_R",
           "m_R2_rescaled", "lambda_R_rescaled")


def smallest_momentum_phat2(lattice: Lattice) -> float:
    """p̂1² = (4/a²) sin²(π/N) of the smallest nonzero lattice momentum."""
    if lattice.N < 2:
        raise QRGInputError("renormalised mass estimators need N >= 2 (a nonzero momentum)")
    return float(4.0 / lattice.a**2 * np.sin(np.pi / lattice.N) ** 2)


def _p1_mask(lattice: Lattice) -> np.ndarray:
    """Mask of the 2d momenta ±p1 e_i (d momenta if N = 2, where +p1 = −p1)."""
    mask = np.zeros(lattice.shape, dtype=bool)
    for i in range(lattice.d):
        for j in (1, lattice.N - 1):
            idx = [0] * lattice.d
            idx[i] = j
            mask[tuple(idx)] = True
    return mask


def power_spectrum(phi, lattice: Lattice):
    """a^d N^-d |φ̃(p)|² per configuration (batch axes kept): the estimator of G2(p)."""
    lattice.check_field(phi)
    return lattice.volume_element / lattice.n_sites * lattice.power(phi)


def primary_series(phi, lattice: Lattice) -> np.ndarray:
    """Per-configuration quantities ``PRIMARIES``, shape batch_shape + (len(PRIMARIES),)."""
    lattice.check_field(phi)
    phi = jnp.asarray(phi)
    m = lattice.mean_sites(phi)
    pk = power_spectrum(phi, lattice)
    mask = jnp.asarray(_p1_mask(lattice))
    g2_p1 = jnp.sum(jnp.where(mask, pk, 0.0), axis=lattice.axes) / mask.sum()
    cols = [m, jnp.abs(m), m**2, jnp.abs(m) ** 3, m**4, g2_p1, lattice.mean_sites(phi**2),
            jnp.max(jnp.abs(phi), axis=lattice.axes)]
    return np.asarray(jnp.stack(cols, axis=-1))


def _derived(mu, lattice: Lattice, r_t: float, subtract_mean: bool, xp=np):
    """Derived observables from the means ``mu`` of the primaries (``xp=jnp``: differentiable)."""
    m, x, m2, x3, m4, gp1 = (mu[..., i] for i in range(6))
    d = lattice.d
    vol = lattice.length**d
    if subtract_mean:
        chi2 = vol * (m2 - x**2)
        kappa4 = m4 - 4.0 * x3 * x - 3.0 * m2**2 + 12.0 * m2 * x**2 - 6.0 * x**4
    else:
        chi2 = vol * m2
        kappa4 = m4 - 3.0 * m2**2
    chi4 = vol**3 * kappa4
    p1 = smallest_momentum_phat2(lattice)
    mr2 = p1 / (chi2 / gp1 - 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mr = xp.sqrt(mr2)
    lam_r = -chi4 * mr2**2 / chi2**2
    out = {
        "chi_connected": vol * (m2 - x**2),
        "binder": 1.0 - m4 / (3.0 * m2**2),
        "m_R2": mr2,
        "m_R": mr,
        "xi": 1.0 / mr,
        "Z": mr2 * chi2,
        "lambda_R": lam_r,
        "g_R": lam_r / mr ** (4 - d),
        "m_R2_rescaled": xp.where(r_t > 0, mr2 / xp.where(r_t > 0, r_t, 1.0) ** 2, xp.nan),
        "lambda_R_rescaled": xp.where(r_t > 0, lam_r / xp.where(r_t > 0, r_t, 1.0) ** (4 - d), xp.nan),
    }
    return out


@functools.partial(jax.jit, static_argnums=(1, 3))
def _derived_gradients(mu, lattice: Lattice, r_t, subtract_mean: bool):
    """∂(derived)/∂(primary means), shape (len(DERIVED), len(PRIMARIES)), one jacobian for all."""

    def vec(m):
        out = _derived(m, lattice, r_t, subtract_mean, xp=jnp)
        return jnp.stack([out[name] for name in DERIVED])

    return jax.jacfwd(vec)(mu)


def _as_chains(samples, lattice: Lattice) -> tuple[np.ndarray, bool]:
    lattice.check_field(samples, "samples")
    nd = np.ndim(samples) - lattice.d
    if nd == 1:
        return np.asarray(samples)[None], False
    if nd == 2:
        return np.asarray(samples), True
    raise QRGInputError(
        f"samples must have shape (n, *{lattice.shape}) (independent) or (n_chains, n_samples, *{lattice.shape}) "
        f"(Markov chains); got {np.shape(samples)}"
    )


def _stats_from_series(series: np.ndarray, markov: bool) -> Stats:
    """series (n_chains, n_samples)."""
    if markov:
        return statistics(series)
    return statistics(series.reshape(-1), correlated=False)


def _quiet(fn):
    """Degenerate inputs (e.g. fields flowed to ~0 by Polchinski at large t) give NaN, not warnings."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return fn(*args, **kwargs)

    return wrapper


@_quiet
def measure(samples, lattice: Lattice, *, r_t: float = 1.0, subtract_mean: bool = False,
            n_blocks: int = 20, markov: bool | None = None) -> dict[str, Stats]:
    """All scalar observables of the module docstring as ``{name: Stats}``.

    ``samples``: (n_chains, n_samples, *shape) Markov chains or (n, *shape) independent draws
    (``markov`` overrides the guess from the shape). ``r_t``: cutoff ratio of 7.4 for the
    rescaled couplings. Keys: phi2, abs_m, m2, chi (= G2(0)), max_abs_phi, g2_p1 (primary) and
    ``DERIVED``.
    """
    chains, is_markov = _as_chains(samples, lattice)
    if markov is not None:
        is_markov = bool(markov)
    if chains.shape[1] < 2:
        raise QRGInputError("measure needs at least 2 samples per chain")
    r_t = float(r_t)
    prim = primary_series(chains, lattice)  # (C, S, k)
    vol = lattice.length**lattice.d
    out: dict[str, Stats] = {}
    for name, col, scale in (("phi2", 6, 1.0), ("abs_m", 1, 1.0), ("m2", 2, 1.0), ("chi", 2, vol),
                             ("max_abs_phi", 7, 1.0), ("g2_p1", 5, 1.0)):
        out[name] = _stats_from_series(scale * prim[..., col], is_markov)

    mu = prim.reshape(-1, prim.shape[-1]).mean(axis=0)
    by_time = np.swapaxes(prim, 0, 1)  # (S, C, k): jackknife blocks along the time axis
    n_blocks = max(2, min(int(n_blocks), by_time.shape[0]))
    centred = prim - mu

    grads = np.asarray(_derived_gradients(jnp.asarray(mu), lattice, r_t, bool(subtract_mean)))
    for i, name in enumerate(DERIVED):
        def est(x, name=name):
            with np.errstate(invalid="ignore", divide="ignore"):
                return float(_derived(x.reshape(-1, x.shape[-1]).mean(axis=0), lattice, r_t, subtract_mean)[name])

        value = est(by_time)
        if not math.isfinite(value):
            out[name] = Stats(float("nan"), float("nan"), float("nan"), float("nan"), int(prim[..., 0].size))
            continue
        mean, err = jackknife(by_time, est, n_blocks=n_blocks)
        proj = centred @ grads[i]  # linearised series (C, S)
        lin = _stats_from_series(proj, is_markov)
        out[name] = Stats(mean, err, lin.variance, lin.tau_int, lin.n_samples, lin.r_hat)
    return out


@_quiet
def two_point(samples, lattice: Lattice, *, markov: bool | None = None) -> dict[str, np.ndarray]:
    """G2(p) = a^d N^-d ⟨|φ̃(p)|²⟩ per momentum with errors: {"mean", "err", "tau_int"}, each of
    shape lattice.shape (fftn ordering), plus "phat2"."""
    chains, is_markov = _as_chains(samples, lattice)
    if markov is not None:
        is_markov = bool(markov)
    pk = np.asarray(power_spectrum(chains, lattice))  # (C, S, *shape)
    flat = pk.reshape(pk.shape[:2] + (-1,))
    res = [_stats_from_series(flat[..., j], is_markov) for j in range(flat.shape[-1])]
    shape = lattice.shape
    return {
        "mean": np.array([s.mean for s in res]).reshape(shape),
        "err": np.array([s.err for s in res]).reshape(shape),
        "tau_int": np.array([s.tau_int for s in res]).reshape(shape),
        "phat2": lattice.phat2,
    }


def independent_momenta(lattice: Lattice) -> np.ndarray:
    """Boolean mask selecting one momentum of each pair {p, −p} (|φ̃(p)|² = |φ̃(−p)|² for real φ)."""
    idx = np.stack(np.meshgrid(*([np.arange(lattice.N)] * lattice.d), indexing="ij"), axis=-1).reshape(-1, lattice.d)
    seen, mask = set(), np.zeros(lattice.n_sites, dtype=bool)
    for i, k in enumerate(map(tuple, idx)):
        neg = tuple((-np.asarray(k)) % lattice.N)
        if neg in seen:
            continue
        seen.add(k)
        mask[i] = True
    return mask.reshape(lattice.shape)


def to_json(obs: dict[str, Stats]) -> dict:
    """{name: {"mean", "err", "tau_int", "variance", "n_samples"}} with NaN → None (valid JSON)."""

    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return {k: {kk: clean(vv) for kk, vv in s.to_dict().items()} for k, s in obs.items()}
