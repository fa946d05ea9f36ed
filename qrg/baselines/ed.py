"""Exact diagonalisation of the lattice φ⁴ Hamiltonian (design §2) on tiny lattices.

The Hilbert space is the tensor product of truncated single-site bases
(:mod:`qrg.baselines.local_basis`), ``local_dim`` states per site, so its dimension is
``local_dim ** N^d``. With ``H = Σ_n h_n − (a^d/a²) Σ_{n,i} φ_n φ_{n+e_i}`` (see
:mod:`~qrg.baselines.local_basis`), ``H|ψ>`` is applied matrix-free on the state tensor
``ψ[s_0, …, s_{V−1}]`` (one single-site matrix per axis), and the lowest eigenvalue is
found by Lanczos (``scipy.sparse.linalg.eigsh``).

Truncation error: the energy is computed for a sequence of increasing ``local_dim``; the
reported ``error_estimate`` is ``|E(L_last) − E(L_previous)|`` plus the Lanczos residual
``‖Hψ − Eψ‖`` (Weinstein bound) (the truncated-basis energy is variational, so it decreases
monotonically toward the exact value in the mean-field and oscillator bases).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse.linalg as spla

from .._validation import QRGInputError, check_int
from .base import Baseline, Reference, register_baseline
from .local_basis import local_basis, neighbour_couplings

MAX_DIM = 3_000_000  # largest Hilbert-space dimension ED accepts (a ~24 MB state vector)

# default local-dimension sequences (lattice-Hartree basis) per number of sites
_DEFAULT_DIMS = {1: (20, 30, 40), 2: (16, 20, 24), 3: (12, 14, 16), 4: (8, 10, 12)}


def _apply_site(op: np.ndarray, psi: np.ndarray, axis: int) -> np.ndarray:
    """(op acting on tensor factor ``axis``) ψ."""
    return np.moveaxis(np.tensordot(op, psi, axes=([1], [axis])), 0, axis)


def _size_problem(theory, local_dim: int, max_dim: int) -> str | None:
    n = theory.lattice.n_sites
    dim = float(local_dim) ** n
    if dim > max_dim:
        return (f"N = {theory.N} (d = {theory.d}, {n} sites) is too large for exact diagonalisation with "
                f"local_dim = {local_dim}: the Hilbert space has local_dim**sites = {dim:.3g} states "
                f"> {max_dim:.3g}; use N^d <= 4 (e.g. chains N <= 4, the 2x2 square) or DMRG")
    return None


def _check_size(theory, local_dim: int, max_dim: int) -> None:
    reason = _size_problem(theory, local_dim, max_dim)
    if reason is not None:
        raise QRGInputError(reason)


def _hamiltonian_matvec(theory, lb):
    """``v ↦ H v`` on the flattened product-basis state (matrix-free)."""
    n = theory.lattice.n_sites
    shape = (lb.local_dim,) * n
    pairs, onsite = neighbour_couplings(theory)
    h_sites = [lb.h_site + onsite[s] * lb.phi2 for s in range(n)]
    pair_list = [(i, j, c) for (i, j), c in pairs.items()]

    def matvec(v):
        psi = np.asarray(v, dtype=float).reshape(shape)
        out = np.zeros_like(psi)
        for s in range(n):
            out += _apply_site(h_sites[s], psi, s)
        for i, j, c in pair_list:
            out += c * _apply_site(lb.phi, _apply_site(lb.phi, psi, i), j)
        return out.reshape(-1)

    return matvec


def _lowest_eigenpair(matvec, dim: int, shape: tuple, tol: float) -> tuple[float, np.ndarray]:
    """Dense ``eigh`` up to 400 states, Lanczos beyond; the eigenvector is normalised."""
    if dim <= 400:
        H = np.stack([matvec(e) for e in np.eye(dim)], axis=1)
        evals, evecs = np.linalg.eigh(0.5 * (H + H.T))
    else:
        op = spla.LinearOperator((dim, dim), matvec=matvec, dtype=float)
        # start from the product of single-site ground states (even sector)
        v0 = np.zeros(shape)
        v0[(0,) * len(shape)] = 1.0
        v0 = v0.reshape(-1) + 1e-3 * np.cos(np.arange(dim))  # not an exact eigenvector
        evals, evecs = spla.eigsh(op, k=1, which="SA", v0=v0, tol=tol, ncv=min(dim - 1, 40))
    psi0 = evecs[:, 0]
    return float(evals[0]), psi0 / np.linalg.norm(psi0)


def ed_ground_state(theory, local_dim: int, *, basis: str = "hartree", omega: float | None = None,
                    n_big: int | None = None, max_dim: int = MAX_DIM, tol: float = 1e-14) -> dict:
    """Ground state of ``theory`` in one truncated product basis of ``local_dim`` states per site.

    Returns a dict with ``energy``, ``phi2`` (<φ_n²>, site-averaged), ``M2`` and ``M4`` (<M²>, <M⁴>
    of ``M = N^-d Σ_n φ_n``, as ‖Mψ‖² and ‖M²ψ‖²), ``correlation`` (<φ_0 φ_n> over flat site index n),
    ``residual`` (‖Hψ − Eψ‖) and the basis parameters.
    """
    local_dim = check_int("local_dim (states per site)", local_dim, minimum=2)
    _check_size(theory, local_dim, max_dim)
    lb = local_basis(theory, local_dim, basis=basis, omega=omega, n_big=n_big)
    n = theory.lattice.n_sites
    shape = (local_dim,) * n
    matvec = _hamiltonian_matvec(theory, lb)
    e0, psi0 = _lowest_eigenpair(matvec, local_dim**n, shape, tol)
    residual = float(np.linalg.norm(matvec(psi0) - e0 * psi0))
    psi = psi0.reshape(shape)
    phi2 = np.array([np.vdot(psi, _apply_site(lb.phi2, psi, s)) for s in range(n)])
    phi_psi0 = _apply_site(lb.phi, psi, 0)
    corr = np.array([np.vdot(phi_psi0, _apply_site(lb.phi, psi, s)) if s else phi2[0] for s in range(n)])
    # moments of M = V^-1 Σ_n φ_n (φ the truncated site matrix): ⟨M²⟩ = ‖Mψ‖², ⟨M⁴⟩ = ‖M²ψ‖²
    m_psi = sum(_apply_site(lb.phi, psi, s) for s in range(n)) / n
    m2_psi = sum(_apply_site(lb.phi, m_psi, s) for s in range(n)) / n
    return {
        "energy": e0,
        "phi2": float(np.mean(phi2)),
        "M2": float(np.vdot(m_psi, m_psi)),
        "M4": float(np.vdot(m2_psi, m2_psi)),
        "correlation": corr.tolist(),
        "residual": residual,
        **lb.describe(),
    }


def _local_dims(theory, local_dims) -> list[int] | None:
    """The checked sequence of local dimensions (None: no default for this many sites)."""
    if local_dims is None:
        return list(_DEFAULT_DIMS.get(theory.lattice.n_sites, ())) or None
    dims = [check_int("local_dims entries (states per site)", L, minimum=2) for L in np.atleast_1d(local_dims)]
    if len(dims) < 2:
        raise QRGInputError(f"local_dims needs at least two sizes to estimate the truncation error (got {dims})")
    if sorted(dims) != dims or len(set(dims)) != len(dims):
        raise QRGInputError(f"local_dims must be strictly increasing (got {dims})")
    return dims


@register_baseline
class ExactDiagonalisation(Baseline):
    """ED in a product of truncated local bases, converged in the local dimension.

    Options: ``local_dims`` (increasing; default by the number of sites, e.g. ``(8, 10, 12)`` for 4
    sites), ``basis``, ``omega``, ``n_big`` (:func:`~qrg.baselines.local_basis.local_basis`),
    ``max_dim`` (largest Hilbert space accepted). ``error_estimate = |E(L_last) − E(L_prev)| +
    ‖Hψ − Eψ‖``; details: ``local_dim``, ``local_dims``, ``energies`` (the sequence), ``basis``,
    ``basis_omega``, ``residual``. Observables (at the largest local dimension): ``phi2``, ``M2`` and
    ``M4`` (moments of ``M = N^-d Σ_n φ_n`` from the ground-state vector; hence ``U4``), ``correlation``.
    """

    name = "ed"
    summary = "exact diagonalisation (tiny lattices: N^d <= 4 sites by default)"

    def why_not(self, theory, *, local_dims=None, max_dim=MAX_DIM, **options) -> str | None:
        dims = _local_dims(theory, local_dims)
        if dims is None:
            n = theory.lattice.n_sites
            return (f"N = {theory.N} (d = {theory.d}, {n} sites) is too large for exact diagonalisation "
                    f"with the default local dimensions (defined for N^d <= {max(_DEFAULT_DIMS)} sites): "
                    "pass small local_dims or use DMRG")
        return _size_problem(theory, dims[-1], max_dim)

    def compute(self, theory, *, local_dims=None, basis: str = "hartree", omega: float | None = None,
                n_big: int | None = None, max_dim: int = MAX_DIM) -> Reference:
        dims = _local_dims(theory, local_dims)
        t0 = time.perf_counter()
        runs = [ed_ground_state(theory, L, basis=basis, omega=omega, n_big=n_big, max_dim=max_dim) for L in dims]
        wall = time.perf_counter() - t0
        last, prev = runs[-1], runs[-2]
        # Weinstein bound: some eigenvalue lies within ‖Hψ − Eψ‖ of the Ritz value
        err = abs(last["energy"] - prev["energy"]) + last["residual"]
        details = {"local_dim": dims[-1], "local_dims": dims, "energies": [r["energy"] for r in runs],
                   "basis": last["basis"], "basis_omega": last["basis_omega"], "residual": last["residual"]}
        corr = np.asarray(last["correlation"])  # <φ_0 φ_n>, translation invariant in the ground state
        return Reference("ed", theory, last["energy"], error_estimate=err, wall_time_s=wall, phi2=last["phi2"],
                         M2=last["M2"], M4=last["M4"], correlation=corr, details=details)


def ed_reference(theory, **options) -> dict:
    """``ExactDiagonalisation().run(theory, **options).to_json()`` (the ``qrg reference --method ed`` JSON)."""
    return ExactDiagonalisation().run(theory, **options).to_json()
