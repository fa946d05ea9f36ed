"""Samplers for the Euclidean lattice φ⁴ theory (design §5).

* :mod:`.nuts` — NUTS / HMC via BlackJAX with per-chain window adaptation;
* :mod:`.langevin` — MALA and unadjusted Langevin with a Fourier-diagonal kernel;
* :mod:`.complex_langevin` — complex Langevin for the one-variable toy model with a kernel;
* :mod:`.imh` — independence Metropolis with a flow (exact log-density) as proposal.
"""

from .complex_langevin import QuarticToyModel, complex_langevin, exact_moments
from .imh import IMHResult, flow_imh, independence_metropolis
from .langevin import sample_langevin, sample_mala, sample_ula
from .nuts import MCMCResult, sample_nuts

__all__ = ["MCMCResult", "sample_nuts", "sample_langevin", "sample_mala", "sample_ula", "QuarticToyModel",
           "complex_langevin", "exact_moments", "IMHResult", "flow_imh", "independence_metropolis"]
