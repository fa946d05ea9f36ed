"""The self-consistent Gaussian (Hartree) approximation of lattice φ⁴, solved once for all of qrg.

Lattice gap equation. For |Ψ|² = N(0, C) with C diagonal in k the energy of H (design §2) is
Σ_k [1/(8a^d c_k) + ½ a^d (p̂² + m²) c_k] + a^d N^d (λ/8) ⟨φ²⟩², minimised by

    c_k = 1/(2 a^d sqrt(p̂² + μ²)),     μ² = m² + (λ/2) X(μ²),     X(μ²) = N^-d Σ_k c_k(μ²).

F(μ²) = m² + (λ/2) X(μ²) − μ² is strictly decreasing, and on a finite lattice the zero mode makes
X → ∞ as μ² → 0⁺, so for λ > 0 there is exactly one root μ² > 0, also in the double well
(m² < 0). At λ = 0 the state is the free ground state (μ² = m² > 0). The root is found by
``scipy.optimize.brentq`` on log μ².

Single-site gap equation (the on-site Hamiltonian π²/(2M) + M(½ m² φ² + λ/24 φ⁴)):
ω² = m² + (λ/2)⟨φ²⟩ with ⟨φ²⟩ = 1/(2Mω), i.e. the unique positive root of ω³ − m² ω − λ/(4M).

Users: the Hartree start of the solver's Gaussian bridge (:func:`hartree_variance`), the local
bases of exact diagonalisation and DMRG and NetKet's Gaussian start (:func:`lattice_hartree`,
:func:`site_hartree_frequency`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from ._validation import QRGInputError


def _phi2(p2: np.ndarray, mu2: float, volume_element: float) -> float:
    """X(μ²) = N^-d Σ_k 1/(2 a^d sqrt(p̂² + μ²))."""
    return float(np.mean(1.0 / (2.0 * volume_element * np.sqrt(p2 + mu2))))


def hartree_mass2(theory) -> float:
    """The self-consistent mass² μ² > 0 of the lattice gap equation (module docstring)."""
    lat = theory.lattice
    p2 = np.asarray(lat.phat2, dtype=float).ravel()
    m2, lam, ad = float(theory.m2), float(theory.lam), lat.volume_element
    if lam == 0.0:
        if m2 <= 0:
            raise QRGInputError(f"with lam = 0 the Hartree state needs m2 > 0 (got {m2})")
        return m2

    return gap_root(m2, lam, lambda mu2: _phi2(p2, mu2, ad), start=max(m2, 1.0))


def gap_root(m2: float, lam: float, tadpole, *, start: float) -> float:
    """The root μ² > 0 of F(μ²) = m² + (λ/2) tadpole(μ²) − μ² for λ > 0 and a tadpole that decreases in
    μ² and diverges as μ² → 0⁺ (F is then strictly decreasing, the root unique): bracketed by halving and
    doubling from ``start``, then ``brentq`` on log μ². Shared by the lattice Hartree equation (a lattice
    sum) and :func:`qrg.continuum.normal_ordered_mass2` (the infinite-volume integral)."""

    def excess(log_mu2):  # F(μ²), strictly decreasing in log μ²
        mu2 = math.exp(log_mu2)
        return m2 + 0.5 * lam * tadpole(mu2) - mu2

    lo = hi = math.log(start)
    while excess(lo) <= 0:  # bracket the root: F(lo) > 0 > F(hi)
        lo -= math.log(2.0)
    while excess(hi) >= 0:
        hi += math.log(2.0)
    return math.exp(brentq(excess, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def hartree_variance(theory) -> np.ndarray:
    """Covariance eigenvalues c_k = 1/(2 a^d sqrt(p̂² + μ²)) of the best symmetric Gaussian state."""
    lat = theory.lattice
    return 1.0 / (2.0 * lat.volume_element * np.sqrt(np.asarray(lat.phat2) + hartree_mass2(theory)))


def lattice_hartree(theory) -> dict:
    """The lattice Hartree state: ``{"m2_hartree", "phi2", "pi2", "omega_site"}``.

    ``phi2`` = ⟨φ_n²⟩, ``pi2`` = ⟨π_n²⟩ = (a^d/(2N^d)) Σ_k sqrt(p̂² + μ²) and the single-site frequency
    ``omega_site`` = sqrt(pi2/phi2)/a^d of the on-site Gaussian with those moments.
    """
    lat = theory.lattice
    ad = lat.volume_element
    mh2 = hartree_mass2(theory)
    w = np.sqrt(np.asarray(lat.phat2, dtype=float).ravel() + mh2)
    x = float(np.sum(1.0 / w) / (2.0 * ad * lat.n_sites))
    p = float(ad * np.sum(w) / (2.0 * lat.n_sites))
    return {"m2_hartree": float(mh2), "phi2": x, "pi2": p, "omega_site": float(np.sqrt(p / x) / ad)}


def site_hartree_frequency(m2_eff: float, lam: float, mass: float) -> float:
    """Hartree frequency ω of π²/(2M) + M(½ m2_eff φ² + λ/24 φ⁴): the positive root of ω³ − m2_eff ω − λ/(4M)."""
    if lam == 0.0:
        if m2_eff <= 0:
            raise QRGInputError(f"effective mass squared must be > 0 at lam = 0 (got {m2_eff})")
        return float(np.sqrt(m2_eff))
    c = lam / (4.0 * mass)

    def cubic(w):
        return w**3 - m2_eff * w - c

    lo = math.sqrt(max(m2_eff, 0.0))  # cubic(lo) = −c < 0; the root is the largest real one
    hi = max(2.0 * lo, 1.0)
    while cubic(hi) <= 0:
        hi *= 2.0
    return float(brentq(cubic, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))
