"""Truncated single-site bases for the Hamiltonian-based baselines (ED, DMRG).

Units (design §2): with ``M = a^d`` the "mass" of each field coordinate,

    H = Σ_n [ π_n² / (2 M) + M U_n(φ) ],   π_n = −i ∂/∂φ_n,
    M U_n = M [ ½ Σ_i ((φ(n+e_i) − φ(n))/a)² + ½ m² φ_n² + (λ/4!) φ_n⁴ ].

Expanding the gradient term, ``Σ_n ½ Σ_i (φ(n+e_i) − φ(n))²/a² = Σ_n (d/a²) φ_n² − Σ_{n,i}
φ_n φ_{n+e_i}/a²``, so

    H = Σ_n h_n  −  (M/a²) Σ_{n,i} φ_n φ_{n+e_i},
    h_n = π_n²/(2M) + M [ ½ (m² + 2d/a²) φ_n² + (λ/24) φ_n⁴ ],

where ``h`` is the single-site *mean-field* Hamiltonian (at ``<φ> = 0`` the neighbour
coupling has no mean-field part; its diagonal ``2d/a²`` is the effective mass). On a
single site (``N = 1``) ``φ(n+e_i) = φ(n)`` and the hopping vanishes: the bare mass ``m²``
is used.

Three bases are provided:

* ``"hartree"`` (default): like ``"meanfield"`` (eigenstates of an anharmonic on-site
  Hamiltonian ``h_b = π²/(2M) + M(½ μ² φ² + λ/24 φ⁴)``) but with ``μ²`` tuned so that the basis
  has the single-site width of the self-consistent *lattice* Hartree (best Gaussian) state,
  ``ω_k² = p̂² + m_H²``, ``m_H² = m² + (λ/2) X``, ``X = <φ_n²> = (2M N^d)^-1 Σ_k 1/ω_k``,
  ``P = <π_n²> = (M/2N^d) Σ_k ω_k``. The one-site reduced density matrix of that Gaussian is
  diagonal in the oscillator basis of frequency ``ω_1 = sqrt(P/X)/M`` with geometrically
  decaying weights, so at λ = 0 this basis is the exact eigenbasis of the one-site density
  matrix (optimal truncation); ``μ² = ω_1² − (λ/2)/(2Mω_1)`` gives ``h_b`` Hartree frequency ω_1.
  It matters when ``2d/a²`` is far from the true site stiffness (small m², small a). The
  lattice gap equation is solved by :func:`qrg.hartree.lattice_hartree`.
* ``"oscillator"``: the harmonic-oscillator eigenstates of mass ``M`` and frequency ``ω_b``,
  ``φ = (b + b†)/sqrt(2 M ω_b)``, ``π = i sqrt(M ω_b/2) (b† − b)``. The default ``ω_b`` is the
  self-consistent Hartree (best Gaussian) frequency of ``h``:
  ``ω² = m_eff² + (λ/2) <φ²>``, ``<φ²> = 1/(2 M ω)`` (:func:`qrg.hartree.site_hartree_frequency`).
* ``"meanfield"`` (peers.md): the ``local_dim`` lowest eigenstates of ``h``, computed
  in a large oscillator basis (``n_big`` states at the Hartree frequency). This converges far
  faster in ``local_dim`` than bare oscillator states.

All matrices are computed *exactly* in the truncated space: φ², φ⁴ and π² are evaluated as
products in an oscillator basis 4 states larger and then truncated (truncating φ before
taking powers would corrupt the top states). Every state has a definite parity under
φ → −φ (the mean-field Hamiltonian is diagonalised separately in the even and odd blocks).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._validation import QRGInputError, check_int, check_real
from ..hartree import lattice_hartree, site_hartree_frequency

BASES = ("hartree", "meanfield", "oscillator")


# ---------------------------------------------------------------------------- oscillator
def oscillator_matrices(n_states: int, mass: float, omega: float) -> dict[str, np.ndarray]:
    """Exact matrices of φ, φ², φ⁴ and π² in the lowest ``n_states`` oscillator states.

    Oscillator of mass ``mass`` and frequency ``omega``:
    ``φ = (b + b†)/sqrt(2 mass ω)``, ``π = i sqrt(mass ω/2)(b† − b)``, so that
    ``π²/(2 mass) + ½ mass ω² φ² = ω (b†b + ½)``.
    """
    n_states = check_int("n_states", n_states, minimum=1)
    big = n_states + 4
    b = np.diag(np.sqrt(np.arange(1, big, dtype=float)), k=1)  # annihilation operator
    x = (b + b.T) / np.sqrt(2.0 * mass * omega)
    # π = i sqrt(mω/2)(b† − b)  ⇒  π² = −(mω/2)(b† − b)²
    q = b.T - b
    p2 = -(mass * omega / 2.0) * (q @ q)
    x2 = x @ x
    x4 = x2 @ x2
    cut = slice(0, n_states)
    return {
        "phi": x[cut, cut].copy(),
        "phi2": x2[cut, cut].copy(),
        "phi4": x4[cut, cut].copy(),
        "pi2": p2[cut, cut].copy(),
    }


# ---------------------------------------------------------------------------- local basis
@dataclasses.dataclass(frozen=True)
class LocalBasis:
    """Matrices of the single-site operators in a truncated basis of ``local_dim`` states.

    Attributes: ``phi`` (φ), ``phi2`` (φ²), ``phi4`` (φ⁴), ``pi2`` (π² = −∂²/∂φ²), ``h_site`` (the
    on-site part of H, ``π²/(2M) + M(½ m_s² φ² + λ/24 φ⁴)`` with ``m_s² =`` :func:`site_mass2`),
    ``parity`` (+1/−1 per state under φ → −φ), and the parameters used (``m2_site`` is the
    mass² of the Hamiltonian whose eigenstates form the basis).
    """

    kind: str
    local_dim: int
    mass: float
    m2_site: float
    lam: float
    omega: float
    n_big: int
    phi: np.ndarray
    phi2: np.ndarray
    phi4: np.ndarray
    pi2: np.ndarray
    h_site: np.ndarray
    parity: np.ndarray

    @property
    def parity_bits(self) -> np.ndarray:
        """0 for even, 1 for odd states (Z2 charges)."""
        return ((1 - self.parity) // 2).astype(int)

    def describe(self) -> dict:
        return {"basis": self.kind, "local_dim": self.local_dim, "basis_omega": self.omega,
                "basis_m2": self.m2_site, **({"n_big": self.n_big} if self.kind != "oscillator" else {})}


def site_mass2(theory) -> float:
    """The on-site mass² of the decomposition ``H = Σ h_n − (M/a²) Σ φ_n φ_{n+e_i}``.

    ``m² + 2d/a²`` (the hopping's diagonal part) when ``N > 1``; ``m²`` on a single site.
    """
    if theory.N == 1:
        return float(theory.m2)
    return float(theory.m2 + 2.0 * theory.d / theory.a**2)


def _basis_hamiltonian(theory, basis: str, omega: float | None) -> tuple[float, float]:
    """``(m2b, ω_b)``: mass² of the on-site Hamiltonian whose eigenstates form the basis, and the
    frequency of the oscillator basis it is expanded in (module docstring)."""
    mass, lam = float(theory.lattice.volume_element), float(theory.lam)
    m2s = site_mass2(theory)
    m2b = m2s
    if basis == "hartree":
        w1 = lattice_hartree(theory)["omega_site"]
        m2b = w1**2 - 0.5 * lam / (2.0 * mass * w1)
        if omega is None:
            omega = w1
    if omega is None:
        omega = site_hartree_frequency(m2s, lam, mass)
    return m2b, check_real("omega (basis frequency)", omega, positive=True)


def _parity_eigenbasis(h_big: np.ndarray, local_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``local_dim`` lowest eigenvectors of ``h_big`` (columns) and their parities.

    ``h`` is diagonalised in the even and odd oscillator blocks separately, so the parity labels
    are exact even for (near-)degenerate doublets of a double well; the sign convention (largest
    component positive) makes the matrices reproducible.
    """
    n_big = h_big.shape[0]
    vecs, evals, par = [], [], []
    for p, idx in ((1, np.arange(0, n_big, 2)), (-1, np.arange(1, n_big, 2))):
        e, v = np.linalg.eigh(h_big[np.ix_(idx, idx)])
        full = np.zeros((n_big, len(idx)))
        full[idx, :] = v
        vecs.append(full)
        evals.append(e)
        par.append(np.full(len(idx), p))
    order = np.argsort(np.concatenate(evals), kind="stable")[:local_dim]
    V = np.concatenate(vecs, axis=1)[:, order]
    V = V * np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(local_dim)])
    return V, np.concatenate(par)[order]


def local_basis(theory, local_dim: int, *, basis: str = "hartree", omega: float | None = None,
                n_big: int | None = None) -> LocalBasis:
    """Build the truncated local basis for ``theory`` (a :class:`qrg.Phi4`).

    Parameters
    ----------
    local_dim : number of states kept per site (>= 2).
    basis : ``"meanfield"`` (lowest eigenstates of the on-site Hamiltonian h) or
        ``"oscillator"`` (oscillator eigenstates of frequency ``omega``) or ``"hartree"`` (default
        of the ED/DMRG drivers; mean-field shape with the lattice-Hartree site width).
    omega : basis frequency ω_b; default: the Hartree frequency of h (``"meanfield"``,
        ``"oscillator"``) or the lattice-Hartree site frequency ω_1 (``"hartree"``).
    n_big : size of the oscillator basis in which h is diagonalised (meanfield only;
        default ``max(120, 4 local_dim)``).
    """
    local_dim = check_int("local_dim (states per site)", local_dim, minimum=2)
    if basis not in BASES:
        raise QRGInputError(f"basis must be one of {BASES} (got {basis!r})")
    mass, lam, m2s = float(theory.lattice.volume_element), float(theory.lam), site_mass2(theory)
    m2b, omega = _basis_hamiltonian(theory, basis, omega)

    def h_of(mats, m2=m2s):
        return mats["pi2"] / (2.0 * mass) + mass * (0.5 * m2 * mats["phi2"] + (lam / 24.0) * mats["phi4"])

    if basis == "oscillator":
        mats = oscillator_matrices(local_dim, mass, omega)
        parity = np.where(np.arange(local_dim) % 2 == 0, 1, -1)
        return LocalBasis("oscillator", local_dim, mass, m2s, lam, omega, local_dim, mats["phi"],
                          mats["phi2"], mats["phi4"], mats["pi2"], h_of(mats), parity)

    if n_big is None:
        n_big = max(120, 4 * local_dim)
    n_big = check_int("n_big (oscillator states for the mean-field basis)", n_big, minimum=local_dim + 2)
    big = oscillator_matrices(n_big, mass, omega)
    V, parity = _parity_eigenbasis(h_of(big, m2b), local_dim)
    mats = {k: V.T @ A @ V for k, A in big.items()}
    return LocalBasis(basis, local_dim, mass, m2b, lam, omega, n_big, mats["phi"], mats["phi2"],
                      mats["phi4"], mats["pi2"], h_of(mats), parity)


def neighbour_couplings(theory) -> tuple[dict[tuple[int, int], float], np.ndarray]:
    """The hopping of design §2 as ``−(M/a²) Σ_{n,i} φ_n φ_{n+e_i}`` over flat site indices.

    Returns ``(pairs, onsite_phi2)``: ``pairs[(i, j)]`` (i < j) is the coefficient of
    ``φ_i φ_j`` (ordered pairs (n, n+e_i) and (n+e_i, n) summed, so ``N = 2`` counts the bond
    twice, as the periodic gradient term does), and ``onsite_phi2[n]`` collects terms with
    ``n + e_i = n`` (``N = 1``), which cancel the ``2d/a²`` in the on-site mass — so they are
    only returned for completeness and are zero whenever :func:`site_mass2` already used ``m²``.
    """
    lat = theory.lattice
    coeff = -lat.volume_element / lat.a**2
    idx = np.arange(lat.n_sites).reshape(lat.shape)
    pairs: dict[tuple[int, int], float] = {}
    onsite = np.zeros(lat.n_sites)
    if lat.N == 1:
        return pairs, onsite
    for axis in range(lat.d):
        nb = np.roll(idx, -1, axis=axis)
        for i, j in zip(idx.ravel(), nb.ravel()):
            if i == j:
                onsite[i] += coeff
                continue
            key = (min(i, j), max(i, j))
            pairs[key] = pairs.get(key, 0.0) + coeff
    return pairs, onsite
