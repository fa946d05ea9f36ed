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
  It matters when ``2d/a²`` is far from the true site stiffness (small m², small a).
* ``"oscillator"``: the harmonic-oscillator eigenstates of mass ``M`` and frequency ``ω_b``,
  ``φ = (b + b†)/sqrt(2 M ω_b)``, ``π = i sqrt(M ω_b/2) (b† − b)``. The default ``ω_b`` is the
  self-consistent Hartree (best Gaussian) frequency of ``h``:
  ``ω² = m_eff² + (λ/2) <φ²>``, ``<φ²> = 1/(2 M ω)``.
* ``"meanfield"`` (default, peers.md): the ``local_dim`` lowest eigenstates of ``h``, computed
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


def hartree_frequency(m2_eff: float, lam: float, mass: float) -> float:
    """Self-consistent Gaussian (Hartree) frequency of ``π²/(2M) + M(½ m2_eff φ² + λ/24 φ⁴)``.

    Solves ``ω² = m2_eff + (λ/2) <φ²>`` with ``<φ²> = 1/(2 M ω)``: ``f(ω) = ω³ − m2_eff ω −
    λ/(4M)`` has a unique positive root when λ > 0 (or m2_eff > 0 at λ = 0).
    """
    if lam == 0.0:
        if m2_eff <= 0:
            raise QRGInputError(f"effective mass squared must be > 0 at lam = 0 (got {m2_eff})")
        return float(np.sqrt(m2_eff))
    c = lam / (4.0 * mass)
    roots = np.roots([1.0, 0.0, -m2_eff, -c])
    real = [r.real for r in roots if abs(r.imag) < 1e-9 * max(1.0, abs(r)) and r.real > 0]
    # polish the largest positive real root by Newton's method
    w = max(real)
    for _ in range(50):
        f = w**3 - m2_eff * w - c
        w_new = w - f / (3 * w**2 - m2_eff)
        if abs(w_new - w) < 1e-15 * w:
            w = w_new
            break
        w = w_new
    return float(w)


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


def lattice_hartree(theory) -> dict:
    """Self-consistent lattice Hartree Gaussian of ``theory`` (see module docstring).

    Returns ``{"m2_hartree", "phi2", "pi2", "omega_site"}`` with ``omega_site = sqrt(P/X)/M``.
    Solves ``m_H² = m² + (λ/2) X(m_H²)`` by bisection (the left side minus the right is
    increasing in m_H²; the root is > 0 because X diverges with the zero mode).
    """
    lat = theory.lattice
    M = lat.volume_element
    p2 = lat.phat2.ravel()
    V = lat.n_sites
    lam, m2 = float(theory.lam), float(theory.m2)

    def X(mh2):
        return float(np.sum(1.0 / np.sqrt(p2 + mh2)) / (2.0 * M * V))

    if lam == 0.0:
        mh2 = m2
    else:
        lo, hi = 1e-300, max(1.0, abs(m2))
        while hi - m2 - 0.5 * lam * X(hi) < 0:
            hi *= 2.0
        lo = min(1e-12, hi)
        while lo - m2 - 0.5 * lam * X(lo) > 0:  # only if the root is tiny
            lo *= 1e-3
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid - m2 - 0.5 * lam * X(mid) > 0:
                hi = mid
            else:
                lo = mid
            if hi - lo <= 1e-15 * hi:
                break
        mh2 = 0.5 * (lo + hi)
    w = np.sqrt(p2 + mh2)
    x = float(np.sum(1.0 / w) / (2.0 * M * V))
    p = float(M * np.sum(w) / (2.0 * V))
    return {"m2_hartree": float(mh2), "phi2": x, "pi2": p, "omega_site": float(np.sqrt(p / x) / M)}


def site_mass2(theory) -> float:
    """The on-site mass² of the decomposition ``H = Σ h_n − (M/a²) Σ φ_n φ_{n+e_i}``.

    ``m² + 2d/a²`` (the hopping's diagonal part) when ``N > 1``; ``m²`` on a single site.
    """
    if theory.N == 1:
        return float(theory.m2)
    return float(theory.m2 + 2.0 * theory.d / theory.a**2)


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
    mass = float(theory.lattice.volume_element)
    m2s = site_mass2(theory)
    lam = float(theory.lam)
    m2b = m2s  # mass² of the Hamiltonian whose eigenstates form the basis
    if basis == "hartree":
        w1 = lattice_hartree(theory)["omega_site"]
        m2b = w1**2 - 0.5 * lam / (2.0 * mass * w1)
        if omega is None:
            omega = w1
    if omega is None:
        omega = hartree_frequency(m2s, lam, mass)
    omega = check_real("omega (basis frequency)", omega, positive=True)

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
    h_big = h_of(big, m2b)
    # diagonalise h in the even and odd blocks separately: exact parity labels even for
    # (near-)degenerate doublets of a double well
    vecs, evals, par = [], [], []
    for p, idx in ((1, np.arange(0, n_big, 2)), (-1, np.arange(1, n_big, 2))):
        e, v = np.linalg.eigh(h_big[np.ix_(idx, idx)])
        full = np.zeros((n_big, len(idx)))
        full[idx, :] = v
        vecs.append(full)
        evals.append(e)
        par.append(np.full(len(idx), p))
    evals = np.concatenate(evals)
    order = np.argsort(evals, kind="stable")[:local_dim]
    V = np.concatenate(vecs, axis=1)[:, order]
    parity = np.concatenate(par)[order]
    # fix the sign convention: largest component positive (reproducible matrices)
    V = V * np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(local_dim)])

    def proj(A):
        return V.T @ A @ V

    mats = {k: proj(v) for k, v in big.items()}
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
