"""qrg: ground states of quantum lattice field theories from learned RG diffusion flows.

Importing qrg enables JAX float64 (as NetKet does): energies to 1e-6 relative and better need
it. Set the environment variable ``QRG_DISABLE_X64=1`` before importing to keep float32.
"""

import os as _os

import jax as _jax

if _os.environ.get("QRG_DISABLE_X64", "0") not in ("1", "true", "True"):
    _jax.config.update("jax_enable_x64", True)

from ._validation import QRGInputError
from .gaussian import FourierGaussian
from .lattice import Lattice
from .rg import Carosso, CarossoM, Polchinski, PolchinskiM, RGScheme, make_scheme
from .theory import Phi4

__version__ = "0.1.0"

__all__ = [
    "QRGInputError",
    "Lattice",
    "Phi4",
    "FourierGaussian",
    "RGScheme",
    "Carosso",
    "CarossoM",
    "Polchinski",
    "PolchinskiM",
    "make_scheme",
]

# score models and the probability-flow ODE (design §3.2, §4)
from .flow import ProbabilityFlow
from .models import Composite, EFTScore, GaussianBridge, KernelNet, ScoreModel, make_model

__all__ += ["ProbabilityFlow", "ScoreModel", "GaussianBridge", "EFTScore", "KernelNet", "Composite", "make_model"]

# the Section 6 ground-state solver (design §3.3)
from .groundstate import EnergyStats, SolveConfig, SolveResult, estimate_energy, solve
from .stats import Stats, statistics

__all__ += ["solve", "SolveConfig", "SolveResult", "estimate_energy", "EnergyStats", "Stats", "statistics"]
