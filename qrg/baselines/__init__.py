"""Baselines on the same Hamiltonian (design §2, §6): exact diagonalisation, TeNPy DMRG, NetKet VMC.

All take a :class:`qrg.Phi4` so every method solves the identical problem. The heavy
dependencies (TeNPy, NetKet) are imported lazily by their modules.
"""

from .ed import ed_ground_state, ed_reference
from .local_basis import LocalBasis, hartree_frequency, local_basis, neighbour_couplings, oscillator_matrices

__all__ = [
    "LocalBasis",
    "local_basis",
    "oscillator_matrices",
    "hartree_frequency",
    "neighbour_couplings",
    "ed_ground_state",
    "ed_reference",
]
