"""The probability-flow ODE of a learned RG bridge (design §3.2).

* :class:`ProbabilityFlow` (:mod:`qrg.flow.ode`): samples with exact log p and score in one
  backward solve, log p by the forward solve, transport;
* :mod:`qrg.flow.solvers`: the ODE solvers (``SOLVERS``) and adjoints (``ADJOINTS``) by name;
* :mod:`qrg.flow.integrators`: the "plain" and "exponential" (integrating-factor) frames
  (``INTEGRATORS``);
* :func:`make_flow`: a flow from a lattice, a scheme name, a score-model name and solver settings.
"""

from .integrators import INTEGRATORS, Exponential, Integrator, Plain
from .ode import ProbabilityFlow
from .solvers import ADJOINTS, RK4, SOLVERS, AdjointSpec, SolverSpec, solver_order
from .factory import make_flow

__all__ = ["ProbabilityFlow", "make_flow", "SOLVERS", "ADJOINTS", "INTEGRATORS", "SolverSpec", "AdjointSpec", "RK4",
           "Integrator", "Plain", "Exponential", "solver_order"]
