"""The lattice φ⁴ theory: quantum Hamiltonian (design §2) and Euclidean action (design §5).

One :class:`Phi4` object defines a problem; the ground-state solver, the Euclidean
samplers and all baselines (ED, DMRG, NetKet) take it.

Quantum Hamiltonian (paper 6.3/6.9, ``[φ_n, π_m] = i δ_nm / a^d``)::

    H = Σ_n [ −1/(2 a^d) ∂²/∂φ_n² + a^d U_n(φ) ],
    U_n = ½ Σ_i ((φ(n+e_i) − φ(n))/a)² + ½ m² φ(n)² + (λ/4!) φ(n)⁴,
    V(φ) = a^d Σ_n U_n.

Euclidean action on the same lattice (d = number of Euclidean dimensions)::

    S_E(φ) = a^d Σ_n [ ½ Σ_i ((φ(n+e_i) − φ(n))/a)² + ½ m² φ² + (λ/4!) φ⁴ ]  (= V(φ)).

Free theory (λ = 0, m² > 0), ω_k = sqrt(p̂² + m²)::

    E0 = ½ Σ_k ω_k,   |Ψ0|² = N(0, (2 a^d Ω)^-1),   <φ(n)²> = (2 a^d N^d)^-1 Σ_k 1/ω_k,
    Euclidean propagator  <|φ̃(k)|²> = N^d / (a^d (p̂² + m²)).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from ._validation import QRGInputError, check_real
from .gaussian import FourierGaussian
from .lattice import Lattice


@dataclasses.dataclass(frozen=True)
class Phi4:
    """Lattice φ⁴ theory with bare mass² ``m2`` and quartic coupling ``lam`` (λ, as in λ/4! φ⁴).

    Construct with ``Phi4(Lattice(d, N, a), m2, lam)`` or ``Phi4.chain(N, m2, lam)``,
    ``Phi4.from_params(d=..., N=..., a=..., m2=..., lam=...)``. Hashable (jit-static).
    """

    lattice: Lattice
    m2: float
    lam: float

    def __post_init__(self):
        if not isinstance(self.lattice, Lattice):
            raise QRGInputError(f"lattice must be a qrg.Lattice (got {type(self.lattice).__name__})")
        m2 = check_real("m2 (bare mass squared)", self.m2)
        lam = check_real("lam (quartic coupling λ)", self.lam)
        if lam < 0:
            raise QRGInputError(f"lam (quartic coupling λ) must be >= 0 (got {lam}): H is unbounded below")
        if lam == 0 and m2 <= 0:
            raise QRGInputError(
                f"with lam = 0 the mass m2 must be > 0 (got m2 = {m2}): the free Hamiltonian "
                "has no ground state (or the Euclidean action is not normalisable) for m2 <= 0"
            )
        object.__setattr__(self, "m2", m2)
        object.__setattr__(self, "lam", lam)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_params(cls, *, d: int = 1, N: int, a: float = 1.0, m2: float, lam: float) -> "Phi4":
        return cls(Lattice(d, N, a), m2, lam)

    @classmethod
    def chain(cls, N: int, m2: float, lam: float, a: float = 1.0) -> "Phi4":
        return cls(Lattice(1, N, a), m2, lam)

    # ------------------------------------------------------------------ parameters
    @property
    def d(self) -> int:
        return self.lattice.d

    @property
    def N(self) -> int:
        return self.lattice.N

    @property
    def a(self) -> float:
        return self.lattice.a

    @property
    def is_free(self) -> bool:
        return self.lam == 0.0

    def params(self) -> dict:
        return {"d": self.d, "N": self.N, "a": self.a, "m2": self.m2, "lam": self.lam}

    # ------------------------------------------------------------------ potential / action
    def site_potential(self, phi):
        """On-site part ½ m² φ² + (λ/4!) φ⁴ per site (no hopping)."""
        return 0.5 * self.m2 * phi**2 + (self.lam / 24.0) * phi**4

    def potential(self, phi):
        """V(φ) = a^d Σ_n U_n(φ); batch axes kept."""
        self.lattice.check_field(phi)
        lat = self.lattice
        return lat.volume_element * (lat.gradient_energy(phi) + lat.sum_sites(self.site_potential(phi)))

    def potential_grad(self, phi):
        """∂V/∂φ(n) = a^d (−Δφ + m² φ + (λ/6) φ³)(n)."""
        self.lattice.check_field(phi)
        lat = self.lattice
        return lat.volume_element * (-lat.laplacian(phi) + self.m2 * phi + (self.lam / 6.0) * phi**3)

    def euclidean_action(self, phi):
        """S_E(φ) of design §5 (the same function as V on the same lattice)."""
        return self.potential(phi)

    def euclidean_action_grad(self, phi):
        """∇S_E; the HMC force is its negative."""
        return self.potential_grad(phi)

    def hmc_force(self, phi):
        """−∇S_E."""
        return -self.potential_grad(phi)

    # ------------------------------------------------------------------ exact free solution
    def _require_free(self, what: str):
        if not self.is_free:
            raise QRGInputError(f"{what} is exact only for the free theory (lam = 0); got lam = {self.lam}")

    def free_omega(self) -> np.ndarray:
        """ω_k = sqrt(p̂² + m²), shape lattice.shape (requires m2 > 0)."""
        if self.m2 <= 0:
            raise QRGInputError(f"free mode frequencies need m2 > 0 (got m2 = {self.m2})")
        return np.sqrt(self.lattice.phat2 + self.m2)

    def free_ground_energy(self) -> float:
        """E0 = ½ Σ_k ω_k (exact at lam = 0)."""
        self._require_free("free_ground_energy")
        return float(0.5 * np.sum(self.free_omega()))

    def free_ground_variance(self) -> np.ndarray:
        """Eigenvalues 1/(2 a^d ω_k) of the covariance of |Ψ0|²."""
        self._require_free("free_ground_variance")
        return 1.0 / (2.0 * self.lattice.volume_element * self.free_omega())

    def free_ground_state(self) -> FourierGaussian:
        """|Ψ0|² as a Fourier-diagonal Gaussian (sample / log_prob / score)."""
        return FourierGaussian(self.lattice, jnp.asarray(self.free_ground_variance()))

    def free_phi2(self) -> float:
        """<φ(n)²> in the free ground state = (2 a^d N^d)^-1 Σ_k 1/ω_k."""
        self._require_free("free_phi2")
        return float(np.sum(self.free_ground_variance()) / self.lattice.n_sites)

    def free_propagator(self) -> np.ndarray:
        """Euclidean <|φ̃(k)|²> = N^d / (a^d (p̂² + m²)) at lam = 0."""
        self._require_free("free_propagator")
        return self.lattice.n_sites / (self.lattice.volume_element * (self.lattice.phat2 + self.m2))

    def free_euclidean_variance(self) -> np.ndarray:
        """Covariance eigenvalues 1/(a^d (p̂² + m²)) of the free Euclidean field."""
        self._require_free("free_euclidean_variance")
        return 1.0 / (self.lattice.volume_element * (self.lattice.phat2 + self.m2))

    def free_euclidean(self) -> FourierGaussian:
        return FourierGaussian(self.lattice, jnp.asarray(self.free_euclidean_variance()))
