"""Baselines on the same Hamiltonian (design §2, §6): the exact free theory, exact diagonalisation,
TeNPy DMRG and NetKet VMC.

Every baseline is a :class:`Baseline` registered in :data:`BASELINES` under its name; ``run(theory,
**options)`` returns a :class:`Reference`. All take a :class:`qrg.Phi4`, so every method solves the
identical problem. The heavy dependencies (TeNPy, NetKet) are imported lazily when a method runs.

Adding a baseline: one file with a ``@register_baseline`` subclass of :class:`Baseline`, and its
import below.
"""

from .base import BASELINES, Baseline, Reference, get_baseline, register_baseline
from .exact import ExactFree
from .ed import ExactDiagonalisation, ed_ground_state, ed_reference
from .dmrg import DMRG, dmrg_ground_state
from .netket_vmc import NetKetGaussian, NetKetNeural, NetKetVMC, run_vmc
from .local_basis import LocalBasis, local_basis, neighbour_couplings, oscillator_matrices

__all__ = [
    "BASELINES",
    "Baseline",
    "Reference",
    "get_baseline",
    "register_baseline",
    "ExactFree",
    "ExactDiagonalisation",
    "DMRG",
    "NetKetVMC",
    "NetKetGaussian",
    "NetKetNeural",
    "ed_ground_state",
    "ed_reference",
    "dmrg_ground_state",
    "run_vmc",
    "LocalBasis",
    "local_basis",
    "oscillator_matrices",
    "neighbour_couplings",
]
