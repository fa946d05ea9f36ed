"""Hypercubic periodic lattices and Fourier-diagonal operators (design §1).

Conventions
-----------
* ``d`` dimensions, ``N`` sites per side, spacing ``a``, periodic boundaries.
  A field is a real array whose trailing ``d`` axes have shape ``(N,)*d``;
  leading axes are batch axes.
* ``(Δφ)(n) = a^-2 Σ_i [φ(n+e_i) − 2φ(n) + φ(n−e_i)]``.
* ``k_i = 2π j_i/(N a)``; ``p̂² = Σ_i (4/a²) sin²(k_i a/2)`` are the eigenvalues of −Δ.
* ``φ̃ = fftn(φ)`` (unnormalised), so ``Σ_n φ(n)² = N^-d Σ_k |φ̃(k)|²``.

An operator diagonal in Fourier space is described by its eigenvalues, an array of
shape ``lattice.shape`` indexed like ``fftn`` output; it is applied in O(N^d log N).
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np

from ._validation import QRGInputError, check_int, check_real


@dataclasses.dataclass(frozen=True)
class Lattice:
    """A periodic hypercubic lattice with ``N`` sites per side in ``d`` dimensions.

    ``N = 1`` is allowed: a single site with no hopping (the anharmonic oscillator).
    Instances are hashable and can be passed as static arguments to ``jax.jit``.
    """

    d: int
    N: int
    a: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "d", check_int("d (number of dimensions)", self.d, minimum=1))
        object.__setattr__(self, "N", check_int("N (sites per side)", self.N, minimum=1))
        object.__setattr__(self, "a", check_real("a (lattice spacing)", self.a, positive=True))

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, ...]:
        return (self.N,) * self.d

    @property
    def n_sites(self) -> int:
        """Number of sites N^d."""
        return self.N**self.d

    @property
    def volume_element(self) -> float:
        """a^d, the volume per site."""
        return self.a**self.d

    @property
    def length(self) -> float:
        """Physical side length L = N a."""
        return self.N * self.a

    @property
    def axes(self) -> tuple[int, ...]:
        """The (negative) axes of a field that are lattice axes."""
        return tuple(range(-self.d, 0))

    @property
    def cutoff(self) -> float:
        """UV cutoff Λ0 = 2√d / a = max |p̂| (paper 5.6.1)."""
        return 2.0 * np.sqrt(self.d) / self.a

    # ------------------------------------------------------------------ momenta
    @functools.cached_property
    def momenta(self) -> np.ndarray:
        """Momentum components k_i, shape ``(d, N, ..., N)``, in fftn ordering."""
        k1 = 2.0 * np.pi * np.fft.fftfreq(self.N, d=self.a)
        return np.stack(np.meshgrid(*([k1] * self.d), indexing="ij"))

    @functools.cached_property
    def phat2(self) -> np.ndarray:
        """p̂² = Σ_i (4/a²) sin²(k_i a/2): eigenvalues of −Δ, shape ``lattice.shape``."""
        return np.sum((4.0 / self.a**2) * np.sin(self.momenta * self.a / 2.0) ** 2, axis=0)

    def momentum_shells(self) -> tuple[np.ndarray, int]:
        """(index of every momentum into the distinct values of p̂², number of such shells).

        Shells are sorted by p̂²; values equal to 1e-10 relative (to max(p̂²_max, 1)) are one shell.
        A Fourier-diagonal operator c(k) = c̄[shell(k)] is a function of p̂² only, hence invariant
        under translations, the hypercubic group and k → −k (real in real space).
        """
        scale = max(float(np.max(self.phat2)), 1.0)
        _, inverse = np.unique(np.round(self.phat2 / scale, 10).ravel(), return_inverse=True)
        inverse = inverse.reshape(self.shape)
        return inverse, int(inverse.max()) + 1

    def momentum_shell_masks(self) -> np.ndarray:
        """Indicator masks (n_shells,) + shape of the momenta of each shell of :meth:`momentum_shells`."""
        index, n = self.momentum_shells()
        return np.stack([index == s for s in range(n)]).astype(float)

    # ------------------------------------------------------------------ fields
    def check_field(self, phi, name: str = "phi"):
        """Raise a clear error unless ``phi``'s trailing axes are ``lattice.shape``."""
        shape = tuple(np.shape(phi))
        if len(shape) < self.d or shape[len(shape) - self.d :] != self.shape:
            raise QRGInputError(
                f"{name} must have trailing shape {self.shape} for a d={self.d}, N={self.N} "
                f"lattice (got shape {shape})"
            )
        return phi

    def batch_shape(self, phi) -> tuple[int, ...]:
        self.check_field(phi)
        return tuple(np.shape(phi))[: np.ndim(phi) - self.d]

    def fft(self, phi):
        """Unnormalised fftn over the lattice axes."""
        return jnp.fft.fftn(phi, axes=self.axes)

    def power(self, phi):
        """|φ̃(k)|² of :meth:`fft`, as Re² + Im²: twice differentiable everywhere (|·|² through ``abs`` has the
        wrong second derivative where a mode vanishes, e.g. every k ≠ 0 of a uniform field)."""
        phi_k = self.fft(phi)
        return jnp.real(phi_k) ** 2 + jnp.imag(phi_k) ** 2

    def ifft(self, phi_k):
        """Inverse of :meth:`fft` (real part not taken)."""
        return jnp.fft.ifftn(phi_k, axes=self.axes)

    def apply_diagonal(self, phi, eigenvalues):
        """Apply the Fourier-diagonal operator with the given eigenvalues to a real field.

        ``eigenvalues`` has shape ``lattice.shape`` (or broadcasts to the field's shape)
        and must be even in k (``c(k) = c(−k)``) so that the result is real.
        """
        return jnp.real(self.ifft(eigenvalues * self.fft(phi)))

    def laplacian(self, phi):
        """(Δφ)(n) by neighbour shifts (no FFT)."""
        out = -2.0 * self.d * phi
        for ax in self.axes:
            out = out + jnp.roll(phi, 1, axis=ax) + jnp.roll(phi, -1, axis=ax)
        return out / self.a**2

    def gradient_energy(self, phi):
        """½ Σ_n Σ_i ((φ(n+e_i) − φ(n))/a)², summed over sites (batch axes kept)."""
        out = 0.0
        for ax in self.axes:
            out = out + jnp.sum((jnp.roll(phi, -1, axis=ax) - phi) ** 2, axis=self.axes)
        return 0.5 * out / self.a**2

    def sum_sites(self, x):
        return jnp.sum(x, axis=self.axes)

    def mean_sites(self, x):
        return jnp.mean(x, axis=self.axes)

    def inner(self, x, y):
        """Σ_n x(n) y(n) over lattice axes."""
        return jnp.sum(x * y, axis=self.axes)

    def diagonal_matrix(self, eigenvalues) -> np.ndarray:
        """Dense N^d × N^d matrix of a Fourier-diagonal operator. For tests on small lattices."""
        n = self.n_sites
        eye = np.eye(n).reshape((n,) + self.shape)
        cols = np.real(np.fft.ifftn(np.asarray(eigenvalues) * np.fft.fftn(eye, axes=self.axes), axes=self.axes))
        return cols.reshape(n, n).T

    def laplacian_matrix(self) -> np.ndarray:
        """Dense Laplacian built site by site from neighbour links. For tests on small lattices."""
        n = self.n_sites
        idx = np.arange(n).reshape(self.shape)
        mat = np.zeros((n, n))
        for ax in range(self.d):
            for shift in (1, -1):
                nb = np.roll(idx, shift, axis=ax).ravel()
                mat[idx.ravel(), nb] += 1.0
        mat[np.arange(n), np.arange(n)] -= 2.0 * self.d
        return mat / self.a**2
