"""The outcome of a ground-state solve: data and the quantities derived from it (no I/O here)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..stats import Stats
from .config import SolveConfig
from .consistency import ConsistencyReport
from .estimators import EnergyStats
from .evaluation import DiscretisationCheck, reported_estimator


#: :attr:`SolveResult.warnings` flags an ODE discretisation systematic above this many statistical errors
SYSTEMATIC_WARN = 3.0


@dataclasses.dataclass
class GroundState:
    """A trained ground state: the problem, its config, the flow and its parameters.

    ``sample(key, n, t)`` and ``log_prob(phi, t)`` give the RG-flowed state Ψ_t (t = 0: Ψ itself).
    :func:`qrg.groundstate.load_run` rebuilds one from the output directory of a solve.
    """

    theory: object
    config: SolveConfig
    flow: object
    params: object

    def sample(self, key, n: int, t=0.0):
        """(φ_t, log p_θ,t(φ_t), ∇ log p_θ,t(φ_t)) for ``n`` samples of the RG-flowed ground state at t."""
        from ..parallel import gather

        return gather(self.flow.sample_at(self.params, key, n, t))

    def log_prob(self, phi, t=0.0):
        from ..parallel import gather

        return gather(self.flow.log_prob(self.params, phi, t))

    def flowed(self, t: float, key=None, n: int = 4096):
        """Ψ_t: a :class:`~qrg.groundstate.flowed.FlowedState` with ``n`` samples of p_θ,t, their log p and
        scores, and the observables and running couplings measured on them (key default: PRNGKey(0))."""
        import jax

        from .flowed import flowed_state

        return flowed_state(self, t, jax.random.PRNGKey(0) if key is None else key, n)

    def consistency_check(self, key=None, n: int = 4096, times=None):
        """:func:`~qrg.groundstate.consistency.rg_consistency` of this state (key default: PRNGKey(0))."""
        import jax

        from .consistency import rg_consistency

        return rg_consistency(self, jax.random.PRNGKey(0) if key is None else key, n, times=times)


@dataclasses.dataclass
class SolveResult(GroundState):
    """Outcome of :func:`qrg.solve`: the final evaluation, the optimisation history and the trained flow.

    ``energy`` is the reported estimate: of the unbiased estimators in ``stats.estimates``
    (integrated by parts, the same with cross-fitted Stein control variates, the local energy)
    the one with the smallest error bar on the final evaluation batch (``estimator`` says which).
    ``variance`` = Var(E_loc) (None if the local energy was not computed), ``variance_err`` its error;
    ``warnings``: the tails of the reported estimator or of E_loc that the evaluation did not resolve.
    Writers (``to_json``, ``save``, ``history_csv``, ``plot_energy``) are in :mod:`qrg.groundstate.report`.
    """

    stats: EnergyStats
    history: list
    events: list
    n_params: int
    wall_time_s: float
    train_time_s: float
    steps_done: int
    status: str
    reference: float | None
    discretisation: DiscretisationCheck | None = None  # step-doubling check of the evaluation solve
    consistency: ConsistencyReport | None = None  # is p_θ,t the exact RG flow of p_θ,0?
    n_devices: int = 1  # devices the Monte Carlo batch was sharded over
    n_processes: int = 1
    schedule_steps: int | None = None  # steps of the learning-rate schedule (the original run's on resume)
    averaged_steps: int = 0  # accepted steps in the iterate average that ``params`` is (0: the last step's)
    init_from: dict | None = None  # the run it started from (solve's init_from): run, d, N, m2, lam, params_sha256
    refine: dict | None = None  # the refinement phase (qrg.groundstate.refine.refine_summary), None if not run

    # ---------------------------------------------------------------- estimates
    @property
    def estimator(self) -> str:
        """The reported estimator, fixed in advance by ``config.estimator`` ("cv" by default: Stein control
        variates; "ibp" if too few samples made it unavailable); ``"auto"`` takes the one with the
        smallest error bar on the evaluation samples, a choice made after the fact (disclosed in
        result.json as ``estimator_rule``)."""
        return reported_estimator(self.stats.estimates, self.config.estimator)

    @property
    def energy(self) -> Stats:
        return self.stats.estimates[self.estimator]

    @property
    def systematic(self) -> float | None:
        """Estimated size of the ODE discretisation bias of ``energy`` (:class:`DiscretisationCheck`;
        None when not measured: adaptive solves, ``systematic_batch = 0``)."""
        if self.discretisation is None:
            return None
        return self.discretisation.systematic(self.estimator)

    @property
    def total_error(self) -> float:
        """Statistical error ⊕ discretisation systematic (the statistical error alone if the latter is unknown)."""
        sys_ = self.systematic
        return self.energy.err if sys_ is None else float(np.hypot(self.energy.err, sys_))

    @property
    def variance(self) -> float | None:
        return self.stats.variance

    @property
    def variance_err(self) -> float | None:
        """Error of Var(E_loc) from its fourth moment (None if the local energy was not computed)."""
        return self.stats.variance_err

    @property
    def warnings(self) -> list[str]:
        """One line per unresolved tail (:func:`~qrg.stats.tail_diagnostics`) of the reported estimator
        and of E_loc at the final sample size, naming what to raise, and one when the ODE discretisation
        systematic exceeds ``SYSTEMATIC_WARN`` times the statistical error (the samples the energy and
        every observable are measured on are then not those of the trained flow); empty when all is
        resolved."""
        cfg, sizing = self.config, self.stats.sizing
        watch = [(f"E ({self.estimator} estimator)", self.energy, "eval_batch",
                  None if sizing is None else (sizing.eval_batch, sizing.max_batch))]
        if self.stats.local is not None and self.estimator != "local":
            watch.append(("Var(E_loc)", self.stats.local, "local_batch",
                          None if sizing is None else (sizing.local_batch, sizing.max_local)))
        out = []
        for label, st, field, sizes in watch:
            t = st.tails
            if t is None or t.resolved:
                continue
            where = f"{t.n_samples} samples"
            if sizes is not None and t.n_samples > sizes[0]:
                where += f" (grown from {field} = {sizes[0]})"
            what = "energy" if field == "eval_batch" else "E_loc"
            cap = "" if sizes is None else f": at most {sizes[1]} {what} samples"
            if t.tail_index < 4:  # NaN compares False
                caveat = (f"an underestimate: the deviations' tail index is ~{t.tail_index:.2g} < 4, so the fourth "
                          "moment this projection rests on may be infinite and Var may keep growing with the sample")
            else:
                caveat = "fewer than needed if the tail is heavier"
            out.append(f"{label}: tails not resolved on {where}: {t.reason}; its error bar may be too small. "
                       f"Projected need ~{t.samples_needed} samples ({caveat}): "
                       f"raise eval_max_batch (now {cfg.eval_cap}{cap}) or {field} (now {getattr(cfg, field)})")
        sys_ = self.systematic
        if sys_ is not None and sys_ > SYSTEMATIC_WARN * self.energy.err:
            d, b = self.discretisation, self.discretisation.bias(self.estimator)
            out.append(f"E ({self.estimator} estimator): the ODE discretisation systematic {sys_:.3g} (bias "
                       f"{b.mean:.3g} ± {b.err:.2g} from {d.n_steps} vs {d.n_steps_fine} steps) is "
                       f"{sys_ / self.energy.err:.3g}× the statistical error {self.energy.err:.3g}: the flow is "
                       f"not resolved with eval_n_steps = {d.n_steps} ODE steps, so the energy and the observables "
                       "of its samples are off by more than their error bars. Raise eval_n_steps; if the bias "
                       "stays, the trained vector field is stiff (a failed run: retrain, e.g. with a lower lr)")
        return out

    @property
    def relative_error(self) -> float | None:
        if self.reference is None:
            return None
        return abs(self.energy.mean - self.reference) / abs(self.reference)

    # ---------------------------------------------------------------- output (qrg.groundstate.report)
    def to_json(self) -> dict:
        from .report import result_json

        return result_json(self)

    def history_csv(self) -> str:
        from .report import history_csv

        return history_csv(self.history)

    def plot_energy(self, path) -> None:
        from .report import plot_energy

        plot_energy(self, path)

    def save(self, directory) -> None:
        """Write ``result.json``, ``history.csv`` and ``energy.png`` into ``directory``."""
        from .report import save

        save(self, directory)

    def __str__(self) -> str:
        from .report import summary

        return summary(self)
