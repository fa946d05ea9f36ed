"""Exact ground states of one and two sites on a grid, and their exact RG flow (design §3.4).

For N^d ≤ 2 sites the Schrödinger equation of design §2 is solved on a uniform grid with the
sinc discrete-variable representation (Colbert & Miller 1992): with spacing h and mass a^d,

    T_ij = 1/(2 a^d h²) · { π²/3 (i = j);  2 (−1)^{i−j}/(i − j)² (i ≠ j) },    H = T + diag(V),

which converges exponentially in 1/h for smooth states. Two sites are solved in the orthonormal
Fourier-mode coordinates u = (φ_0 + φ_1)/√2, v = (φ_0 − φ_1)/√2 (a rotation: the Laplacian is
unchanged and the RG kernel is diagonal in them), H = T_u ⊗ 1 + 1 ⊗ T_v + V(u, v), in the product
basis of the lowest ``n_modes`` eigenvectors of the two one-dimensional cuts T + V(u, 0) and
T + V(0, v) (dense diagonalisation of an n_modes² matrix; converged when doubling n_modes leaves
E_0 unchanged to round-off).

The density p_0 = |Ψ_0|² on the grid, convolved with the exact kernel of a linear RG scheme (per
mode: mean factor α_k(t), variance Σ_k(t)), is the exact flowed density

    p_t(x') = ∫ p_0(x) Π_k N(x'_k; α_k(t) x_k, Σ_k(t)) dx,

the reference the learned p_θ,t is compared with (:func:`hellinger`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .._validation import QRGInputError, check_int


def dvr_kinetic(n: int, h: float, mass: float) -> np.ndarray:
    """The sinc-DVR matrix of −1/(2 mass) d²/dx² on n points of spacing h."""
    i = np.arange(n)
    diff = i[:, None] - i[None, :]
    with np.errstate(divide="ignore"):
        off = 2.0 * (-1.0) ** np.abs(diff) / np.where(diff == 0, 1, diff) ** 2
    return np.where(diff == 0, np.pi**2 / 3.0, off) / (2.0 * mass * h**2)


@dataclasses.dataclass
class GridGroundState:
    """Ground state on a grid: ``x`` (1-d grid of each mode coordinate), ``density`` (p_0 on the grid,
    shape (n,)*n_sites, normalised so that Σ density · h^n_sites = 1), ``energy`` E_0."""

    theory: object
    x: np.ndarray
    density: np.ndarray
    energy: float

    @property
    def h(self) -> float:
        return float(self.x[1] - self.x[0])

    @property
    def cell(self) -> float:
        """Volume of one grid cell, h^(number of sites)."""
        return self.h ** self.theory.lattice.n_sites

    def fields(self) -> np.ndarray:
        """The lattice field φ of every grid point, shape (n^sites,) + lattice.shape (mode → site coordinates)."""
        lat = self.theory.lattice
        if lat.n_sites == 1:
            return self.x.reshape((-1,) + lat.shape)
        u, v = np.meshgrid(self.x, self.x, indexing="ij")
        phi = np.stack([(u + v) / math.sqrt(2.0), (u - v) / math.sqrt(2.0)], axis=-1)
        return phi.reshape((-1,) + lat.shape)

    def flowed_density(self, scheme, t: float) -> np.ndarray:
        """Exact p_t on the same grid: p_0 convolved with the kernel of ``scheme`` (module docstring)."""
        alpha = np.asarray(scheme.mean_factor(t)).ravel()  # fftn order: k = 0 (u), k = π (v)
        var = np.asarray(scheme.kernel_variance(t)).ravel()
        if t == 0:
            return self.density.copy()
        out = self.density
        for axis in range(self.density.ndim):
            kern = np.exp(-0.5 * (self.x[:, None] - alpha[axis] * self.x[None, :]) ** 2 / var[axis])
            kern *= self.h / math.sqrt(2.0 * math.pi * var[axis])
            out = np.moveaxis(np.tensordot(kern, out, axes=([1], [axis])), 0, axis)
        return out


def _two_site_ground_state(theory, x, kin, n_modes: int):
    """(E_0, Ψ_0 on the (u, v) grid) in the product basis of the 1-d cuts' lowest n_modes states."""
    lat, n = theory.lattice, len(x)
    u, v = np.meshgrid(x, x, indexing="ij")
    phi = np.stack([(u + v) / math.sqrt(2.0), (u - v) / math.sqrt(2.0)], axis=-1).reshape((-1,) + lat.shape)
    pot = np.asarray(theory.potential(phi)).reshape(n, n)
    k = min(n_modes, n)
    basis_u = np.linalg.eigh(kin + np.diag(pot[:, n // 2]))[1][:, :k]
    basis_v = np.linalg.eigh(kin + np.diag(pot[n // 2, :]))[1][:, :k]
    t_u, t_v = basis_u.T @ kin @ basis_u, basis_v.T @ kin @ basis_v
    w = np.einsum("ia,ic,ij->acj", basis_u, basis_u, pot)  # Σ_i U_ia U_ic V_ij
    h = np.einsum("jb,jd,acj->abcd", basis_v, basis_v, w, optimize=True).reshape(k * k, k * k)
    h += np.kron(t_u, np.eye(k)) + np.kron(np.eye(k), t_v)
    e, vec = np.linalg.eigh(h)
    return float(e[0]), basis_u @ vec[:, 0].reshape(k, k) @ basis_v.T


def grid_ground_state(theory, *, n_points: int = 161, half_width: float = 7.0, n_modes: int = 24) -> GridGroundState:
    """Exact ground state of a 1- or 2-site ``theory`` on n_points per mode coordinate in [−w, w]."""
    lat = theory.lattice
    if lat.n_sites > 2:
        raise QRGInputError(f"the grid solver handles 1 or 2 sites (got {lat.n_sites}); use ED or DMRG")
    n = check_int("n_points", n_points, minimum=16)
    x = np.linspace(-half_width, half_width, n)
    kin = dvr_kinetic(n, float(x[1] - x[0]), lat.volume_element)
    if lat.n_sites == 1:
        pot = np.asarray(theory.potential(x.reshape((-1,) + lat.shape)))
        w, vec = np.linalg.eigh(kin + np.diag(pot))
        energy, psi = float(w[0]), vec[:, 0]
    else:
        energy, psi = _two_site_ground_state(theory, x, kin, n_modes)
    density = psi**2 / np.sum(psi**2) / float(x[1] - x[0]) ** lat.n_sites
    return GridGroundState(theory=theory, x=x, density=density, energy=energy)


def hellinger(p: np.ndarray, q: np.ndarray, cell: float) -> float:
    """Hellinger distance H = sqrt(1 − Σ sqrt(p q) · cell) of two densities on the same grid (each
    renormalised on the grid, so the result measures shape, not quadrature error)."""
    p = np.asarray(p, dtype=float) / (np.sum(p) * cell)
    q = np.asarray(q, dtype=float) / (np.sum(q) * cell)
    return float(math.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(p * q)) * cell)))
