"""Exact diagonalisation of the lattice φ⁴ Hamiltonian (design §2) on tiny lattices.

The Hilbert space is the tensor product of truncated single-site bases
(:mod:`qrg.baselines.local_basis`), ``local_dim`` states per site, so its dimension is
``local_dim ** N^d``. With ``H = Σ_n h_n − (a^d/a²) Σ_{n,i} φ_n φ_{n+e_i}`` (see
:mod:`~qrg.baselines.local_basis`), ``H|ψ>`` is applied matrix-free on the state tensor
``ψ[s_0, …, s_{V−1}]`` (one single-site matrix per axis), and the lowest eigenvalue is
found by Lanczos (``scipy.sparse.linalg.eigsh``).

Truncation error: the energy is computed for a sequence of increasing ``local_dim``; the
reported ``error_estimate`` is ``|E(L_last) − E(L_previous)|`` plus the Lanczos residual
``‖Hψ − Eψ‖`` (Weinstein bound) (the truncated-basis energy is variational, so it decreases monotonically toward
the exact value in the mean-field and oscillator bases).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse.linalg as spla

from .._validation import QRGInputError, check_int
from .local_basis import local_basis, neighbour_couplings

MAX_DIM = 3_000_000  # largest Hilbert-space dimension ED accepts (a ~24 MB state vector)

# default local-dimension sequences (lattice-Hartree basis) per number of sites
_DEFAULT_DIMS = {1: (20, 30, 40), 2: (16, 20, 24), 3: (12, 14, 16), 4: (8, 10, 12)}


def _apply_site(op: np.ndarray, psi: np.ndarray, axis: int) -> np.ndarray:
    """(op acting on tensor factor ``axis``) ψ."""
    return np.moveaxis(np.tensordot(op, psi, axes=([1], [axis])), 0, axis)


def _check_size(theory, local_dim: int, max_dim: int) -> None:
    n = theory.lattice.n_sites
    dim = float(local_dim) ** n
    if dim > max_dim:
        raise QRGInputError(
            f"N = {theory.N} (d = {theory.d}, {n} sites) is too large for exact diagonalisation with "
            f"local_dim = {local_dim}: the Hilbert space has local_dim**sites = {dim:.3g} states "
            f"> {max_dim:.3g}; use N^d <= 4 (e.g. chains N <= 4, the 2x2 square) or DMRG"
        )


def ed_ground_state(theory, local_dim: int, *, basis: str = "hartree", omega: float | None = None,
                    n_big: int | None = None, max_dim: int = MAX_DIM, tol: float = 1e-14) -> dict:
    """Ground state of ``theory`` in one truncated product basis of ``local_dim`` states per site.

    Returns a dict with ``energy``, ``phi2`` (<φ_n²>, site-averaged), ``correlation``
    (<φ_0 φ_n> over flat site index n), ``residual`` (‖Hψ − Eψ‖) and the basis parameters.
    """
    local_dim = check_int("local_dim (states per site)", local_dim, minimum=2)
    _check_size(theory, local_dim, max_dim)
    lb = local_basis(theory, local_dim, basis=basis, omega=omega, n_big=n_big)
    n = theory.lattice.n_sites
    shape = (local_dim,) * n
    dim = local_dim**n
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

    if dim <= 400:
        H = np.stack([matvec(e) for e in np.eye(dim)], axis=1)
        evals, evecs = np.linalg.eigh(0.5 * (H + H.T))
        e0, psi0 = float(evals[0]), evecs[:, 0]
    else:
        op = spla.LinearOperator((dim, dim), matvec=matvec, dtype=float)
        # start from the product of single-site ground states (even sector)
        v0 = np.zeros(shape)
        v0[(0,) * n] = 1.0
        v0 = v0.reshape(-1) + 1e-3 * np.cos(np.arange(dim))  # not an exact eigenvector
        evals, evecs = spla.eigsh(op, k=1, which="SA", v0=v0, tol=tol, ncv=min(dim - 1, 40))
        e0, psi0 = float(evals[0]), evecs[:, 0]
    psi0 = psi0 / np.linalg.norm(psi0)
    residual = float(np.linalg.norm(matvec(psi0) - e0 * psi0))
    psi = psi0.reshape(shape)
    phi2 = np.array([np.vdot(psi, _apply_site(lb.phi2, psi, s)) for s in range(n)])
    phi_psi0 = _apply_site(lb.phi, psi, 0)
    corr = np.array([np.vdot(phi_psi0, _apply_site(lb.phi, psi, s)) if s else phi2[0] for s in range(n)])
    return {
        "energy": e0,
        "phi2": float(np.mean(phi2)),
        "correlation": corr.tolist(),
        "residual": residual,
        **lb.describe(),
    }


def ed_reference(theory, *, local_dims=None, basis: str = "hartree", omega: float | None = None,
                 n_big: int | None = None, max_dim: int = MAX_DIM) -> dict:
    """ED ground-state reference with its truncation error, converged in the local dimension.

    Runs :func:`ed_ground_state` for each entry of ``local_dims`` (increasing; default by
    the number of sites, e.g. ``(10, 12, 14)`` for 4 sites) and reports the last one with
    ``error_estimate = |E(L_last) − E(L_prev)| + ‖Hψ − Eψ‖``. Keys: those of
    ``Phi4.exact_reference`` (``method, d, N, a, m2, lam, energy, energy_per_site, phi2``)
    plus ``error_estimate``, ``local_dim``, ``local_dims``, ``energies`` (the sequence),
    ``basis``, ``basis_omega``, ``correlation`` (<φ_0 φ_n>), ``wall_time_s``.
    """
    n = theory.lattice.n_sites
    if local_dims is None:
        if n not in _DEFAULT_DIMS:
            _check_size(theory, 2, 0)  # raises with the size message
        local_dims = _DEFAULT_DIMS[n]
    local_dims = [check_int("local_dims entries (states per site)", L, minimum=2) for L in np.atleast_1d(local_dims)]
    if len(local_dims) < 2:
        raise QRGInputError(f"local_dims needs at least two sizes to estimate the truncation error (got {local_dims})")
    if sorted(local_dims) != list(local_dims) or len(set(local_dims)) != len(local_dims):
        raise QRGInputError(f"local_dims must be strictly increasing (got {local_dims})")
    for L in local_dims:
        _check_size(theory, L, max_dim)
    t0 = time.perf_counter()
    runs = [ed_ground_state(theory, L, basis=basis, omega=omega, n_big=n_big, max_dim=max_dim) for L in local_dims]
    wall = time.perf_counter() - t0
    last, prev = runs[-1], runs[-2]
    # Weinstein bound: some eigenvalue lies within ‖Hψ − Eψ‖ of the Ritz value
    err = abs(last["energy"] - prev["energy"]) + last["residual"]
    return {
        "method": "ed",
        **theory.params(),
        "energy": last["energy"],
        "energy_per_site": last["energy"] / n,
        "phi2": last["phi2"],
        "error_estimate": err,
        "local_dim": local_dims[-1],
        "local_dims": list(local_dims),
        "energies": [r["energy"] for r in runs],
        "basis": last["basis"],
        "basis_omega": last["basis_omega"],
        "correlation": last["correlation"],
        "residual": last["residual"],
        "wall_time_s": wall,
    }
