"""Samplers for the Euclidean lattice φ⁴ theory (design §5).

* :mod:`.base` — the shared result type, starting fields and the ``SAMPLERS`` registry;
* :mod:`.nuts` — NUTS / HMC via BlackJAX with per-chain window adaptation;
* :mod:`.langevin` — MALA (``blackjax.mala``) and unadjusted Langevin with a Fourier-diagonal kernel;
* :mod:`.imh` — independence Metropolis (``blackjax.irmh``) with a flow (exact log-density) as proposal;
* :mod:`.complex_langevin` — complex Langevin for the one-variable toy model with a kernel.

``SAMPLERS`` (names "nuts", "hmc", "mala", "flow") is what ``qrg sample --method`` chooses from.
"""

from .base import SAMPLERS, MCMCResult, initial_positions
from .complex_langevin import QuarticToyModel, complex_langevin, exact_moments
from .imh import IMHResult, flow_imh, independence_metropolis
from .langevin import sample_langevin, sample_mala, sample_ula
from .nuts import sample_nuts

__all__ = ["SAMPLERS", "MCMCResult", "initial_positions", "sample_nuts", "sample_langevin", "sample_mala",
           "sample_ula", "IMHResult", "flow_imh", "independence_metropolis", "QuarticToyModel", "complex_langevin",
           "exact_moments"]
