"""ODE solvers and adjoints of the probability-flow solve (diffrax strategy objects by name).

``SOLVERS`` maps a name to a :class:`SolverSpec` (the diffrax solver class, its order of
accuracy and whether it needs fixed steps or is implicit); ``ADJOINTS`` maps a name to the
diffrax adjoint, i.e. how gradients flow through the solve:

* ``"recursive"`` RecursiveCheckpointAdjoint: discretise-then-optimise, exact gradients of the
  discrete solve; reverse mode only (custom_vjp: no jax.jvp / jacfwd / hessian). With a fixed
  number of steps every step is a checkpoint (the reverse pass recomputes nothing: the same
  gradients, 27 % less time per training step on the default chain; the memory is what
  ``check_memory`` of the solver already budgets); adaptive solves keep diffrax's O(sqrt(max_steps))
  checkpoints.
* ``"backsolve"`` BacksolveAdjoint: optimise-then-discretise continuous adjoint (the paper's
  algorithm); O(1) memory, gradients accurate to solver tolerance; reverse mode only.
* ``"direct"`` DirectAdjoint: differentiates through the solver's operations; reverse AND
  forward mode (jax.hessian, jvp-of-grad), at higher memory and compile cost.
* ``"forward"`` ForwardMode: forward mode only (jvp/jacfwd), cheapest for few tangents.

A new solver is one ``SOLVERS.register(name, SolverSpec(...))`` line.
"""

from __future__ import annotations

import dataclasses

import diffrax
import numpy as np

from .._validation import QRGInputError
from ..registry import Registry


class RK4(diffrax.AbstractERK):
    """The classical 4-stage, 4th-order Runge–Kutta method (fixed step only: no error estimate)."""

    tableau = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )
    interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return 4


@dataclasses.dataclass(frozen=True)
class SolverSpec:
    """A diffrax solver with what qrg needs to know about it.

    ``order``: global order of accuracy (used by the step-doubling error estimate; the
    exponential integrator applies the solver to the residual velocity, so the order is the
    same); ``fixed_step_only``: no embedded error estimate (needs ``n_steps``); ``implicit``:
    Newton solves with a dense Jacobian, so the batch is vmapped (one Jacobian per field).
    """

    cls: type
    order: int
    fixed_step_only: bool = False
    implicit: bool = False

    def make(self):
        return self.cls()


SOLVERS: Registry[SolverSpec] = Registry("ODE solver")
for _name, _spec in {
    "euler": SolverSpec(diffrax.Euler, 1, fixed_step_only=True),
    "heun": SolverSpec(diffrax.Heun, 2),
    "midpoint": SolverSpec(diffrax.Midpoint, 2),
    "bosh3": SolverSpec(diffrax.Bosh3, 3),
    "rk4": SolverSpec(RK4, 4, fixed_step_only=True),
    "tsit5": SolverSpec(diffrax.Tsit5, 5),
    "dopri5": SolverSpec(diffrax.Dopri5, 5),
    "dopri8": SolverSpec(diffrax.Dopri8, 8),
    # implicit (L-stable) solvers for stiff flows, e.g. fine lattices where κ_max = 4d/a² + M² ≫ 1/T
    "implicit_euler": SolverSpec(diffrax.ImplicitEuler, 1, fixed_step_only=True, implicit=True),
    "kvaerno3": SolverSpec(diffrax.Kvaerno3, 3, implicit=True),
    "kvaerno5": SolverSpec(diffrax.Kvaerno5, 5, implicit=True),
}.items():
    SOLVERS.register(_name, _spec)

@dataclasses.dataclass(frozen=True)
class AdjointSpec:
    """A diffrax adjoint; ``reverse_mode``: supports jax.grad (what training differentiates);
    ``checkpointed``: takes diffrax's ``checkpoints`` (RecursiveCheckpointAdjoint)."""

    cls: type
    reverse_mode: bool = True
    checkpointed: bool = False

    def make(self, fixed_steps: int | None = None):
        if self.checkpointed and fixed_steps is not None:
            return self.cls(checkpoints=fixed_steps)
        return self.cls()


ADJOINTS: Registry[AdjointSpec] = Registry("adjoint")
ADJOINTS.register("recursive", AdjointSpec(diffrax.RecursiveCheckpointAdjoint, checkpointed=True))
ADJOINTS.register("backsolve", AdjointSpec(diffrax.BacksolveAdjoint))
ADJOINTS.register("direct", AdjointSpec(diffrax.DirectAdjoint))
ADJOINTS.register("forward", AdjointSpec(diffrax.ForwardMode, reverse_mode=False))


def solver_order(name: str) -> int:
    """Global order of accuracy of the ODE solver ``name`` (one of ``SOLVERS``)."""
    return SOLVERS.get(name, "solver").order


def check_solver(name: str, n_steps: int | None) -> str:
    """The validated solver name; fixed-step-only solvers need ``n_steps``."""
    name = SOLVERS.check("solver", name)
    if n_steps is None and SOLVERS.get(name).fixed_step_only:
        raise QRGInputError(f"solver {name!r} has no error estimate: give n_steps (fixed step)")
    return name


def make_adjoint(name: str, fixed_steps: int | None = None):
    """The diffrax adjoint ``name``; ``fixed_steps``: the step budget of a fixed-step solve, all of which
    a checkpointed adjoint then stores (None: adaptive, diffrax's default number of checkpoints)."""
    return ADJOINTS.get(name, "adjoint").make(fixed_steps)
