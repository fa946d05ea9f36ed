"""The free theory (λ = 0, m² > 0) in closed form (design §2).

With ``ω_k = sqrt(p̂² + m²)`` and ``c_k = 1/(2 a^d ω_k)`` the covariance eigenvalues of |Ψ0|²::

    E0 = ½ Σ_k ω_k,    ⟨φ_0 φ_r⟩ = N^-d Σ_k c_k e^{ik·r},    ⟨φ_n²⟩ = N^-d Σ_k c_k,
    ⟨M²⟩ = c_0 / N^d   (M = N^-d Σ_n φ_n = N^-d φ̃(0), ⟨|φ̃_k|²⟩ = N^d c_k),
    ⟨M⁴⟩ = 3 ⟨M²⟩²     (M is a Gaussian variable), so the Binder cumulant U4 = 0.
"""

from __future__ import annotations

import time

import numpy as np

from .base import Baseline, Reference, register_baseline


@register_baseline
class ExactFree(Baseline):
    """The exact free ground state: energy, ⟨φ²⟩, ⟨M²⟩, ⟨M⁴⟩ and ⟨φ_0 φ_r⟩ without truncation."""

    name = "exact"
    summary = "free theory (lam = 0) in closed form"

    def why_not(self, theory, **options) -> str | None:
        if not theory.is_free:
            return (f"the exact reference is the free theory (lam = 0) in closed form; got lam = {theory.lam} "
                    "(use ed or dmrg)")
        return None

    def compute(self, theory) -> Reference:
        t0 = time.perf_counter()
        c = theory.free_ground_variance()
        energy = theory.free_ground_energy()
        phi2 = theory.free_phi2()
        corr = np.real(np.fft.ifftn(c))
        m2_field = float(c.flat[0] / theory.lattice.n_sites)
        return Reference("exact", theory, energy, phi2=phi2, M2=m2_field, M4=3.0 * m2_field**2, correlation=corr,
                         wall_time_s=time.perf_counter() - t0)
