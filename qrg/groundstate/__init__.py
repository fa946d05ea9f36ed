"""The ground-state side of qrg (paper Section 6): Ψ_θ = e^{−S_θ/2} from a learned RG-bridge flow.

* :mod:`.config`: :class:`SolveConfig`, every setting of a run (TOML-loadable);
* :mod:`.ansatz`: the flow of a config, samples with scores, Laplacians through the flow;
* :mod:`.estimators`: the energy estimators (ibp, Stein control variates, local energy);
* :mod:`.objective`: the training loss (energy + RG consistency);
* :mod:`.evaluation`: final statistics and the ODE-discretisation check;
* :mod:`.result` / :mod:`.report`: :class:`SolveResult` and its writers;
* :mod:`.solve`: the driver :func:`solve` (the training loop is :mod:`qrg.optim.loop`).
"""

from .config import SolveConfig
from .estimators import ESTIMATORS, EnergyStats, estimate_energy
from .result import GroundState, SolveResult
from .solve import load_run, solve

__all__ = ["solve", "load_run", "SolveConfig", "SolveResult", "GroundState", "EnergyStats", "estimate_energy",
           "ESTIMATORS"]
