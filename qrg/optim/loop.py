"""The one training loop of qrg: ground-state energy, RG-learning objectives and flow samplers.

An *objective* is a hashable callable ``objective(params, key, inputs) -> (loss, aux)``
(differentiable in ``params``) with a method ``metrics(loss, aux) -> dict`` of floats for the
history, and optionally ``value_and_grad(params, key, inputs) -> ((loss, aux), grads)`` when its
gradient is not the plain ``jax.value_and_grad`` (e.g. per-sample clipping). ``inputs`` are extra arrays for the step (e.g. control-variate coefficients) supplied by
an optional *accumulator*, an object with ``inputs()``, ``observe(aux)`` (after every applied
step) and ``metrics(aux)`` (extra history entries).

The step (BlackJAX style: a pure, jitted function of the state) computes the loss and gradient,
the global gradient norm and whether both are finite, and the optimiser update scaled by the
current learning-rate factor. The loop (:func:`run`) applies it under one policy:

* a step with a non-finite loss or gradient is not applied; parameters and optimiser state
  return to the last state whose loss was finite (the one just evaluated), the learning-rate
  factor is halved and the event is recorded; after ``max_failures`` consecutive failures, or
  ``max_failures`` halvings in all, the run stops with status ``"diverged"``, keeping the last
  good state; with ``lr_recover`` = K > 0 the factor is doubled back (up to 1) after every K accepted
  steps without a failure (the policy of dynamic loss scaling: a rare heavy-tailed batch, e.g. in the
  first steps from a poor start, otherwise lowers the learning rate for the rest of the run);
* the key of step s is ``fold_in(key, s)`` (``key_schedule="fold_in"``: a resumed run is
  bit-identical) or the next split of a carried key (``"split"``);
* with a ``checkpointer`` the state is saved every ``checkpoint_every`` steps and at the end;
* with a :class:`DivergenceGuard`, a finite runaway loss is rolled back like a non-finite one, and a
  failure that follows an *excursion* (an accepted loss far above the running band of the recent
  losses: the state was already degrading before the failure) restores the last *anchor* instead of
  the previous step: a state saved every ``window`` steps and kept only once the ``window`` steps
  after it stayed in the band;
* with ``average_from`` = s0, the parameters of every accepted step from step s0 on are averaged
  (Polyak–Ruppert iterate averaging, ``state.average``): the random walk that a stochastic optimiser
  keeps making along directions where the loss is nearly flat (e.g. the zero mode near a phase
  transition) averages out of the mean. An anchor restore starts the average afresh;
* Ctrl-C (KeyboardInterrupt) saves the state of the last completed step and raises
  :class:`RunInterrupted`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

#: consecutive non-finite steps after which a run stops (keeping the last good state)
MAX_CONSECUTIVE_FAILURES = 20


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run`: the state (and its checkpoint, if any) is that of the last completed step."""

    def __init__(self, state):
        super().__init__(f"interrupted after {state.step} steps")
        self.state = state


@dataclasses.dataclass(frozen=True)
class DivergenceGuard:
    """Treat a finite but runaway loss like a non-finite one, and roll a degrading run back far enough.

    *Runaway*: a step is rejected (rolled back, learning rate halved) when its loss exceeds
    ref + factor·max(|ref|, 1), ref = the loss of the first applied step. A learning rate far too
    large gives energies of 1e5–1e12 that are finite but meaningless.

    *Excursion*: an accepted loss above median + n_sigma·1.4826·MAD of the last ``window`` accepted
    losses (a robust band; needs ``window`` of them). A run that blows up usually climbs out of its
    band for a few steps before its first rejected step, so the previous step is already broken and
    halving the learning rate from it cannot recover. The guard therefore keeps an *anchor*: a state
    is saved as a candidate every ``window`` steps and becomes the anchor once the ``window`` steps
    after it had no excursion and no drift (below). A rejected step within ``window`` steps after an
    excursion restores the anchor (learning rate halved) instead of the previous step.

    *Drift*: the median of the last ``window`` accepted losses above the anchor's median (that of the
    ``window`` losses before it) by more than ``drift_sigma`` standard errors of a median of ``window``
    losses (from the anchor window's MAD). A run can leave its optimum for a worse state and stay there
    with every step finite and no single loss out of band (a default-rate run of 3000 steps rose by ~12
    batch error bars within ~100 steps, docs/solver.md); the variational loss of a run that trains only
    falls, so its running median does not rise that far above an earlier one (the default 16 standard
    errors of the median are ~2.8 batch standard deviations: that run's drift was caught 5 steps into
    its jump, while a bump of 1.3 standard deviations that it undid by itself at step 300 was left
    alone, as were all 600 steps of the default run). A drift restores the anchor and
    halves the learning rate. After ``max_restores`` anchor restores in all the run stops as
    "diverged". Runs without excursions or drifts are not affected at all.
    """

    factor: float = 10.0
    window: int = 50
    n_sigma: float = 8.0
    max_restores: int = 10
    drift_sigma: float = 16.0

    def rejects(self, state, loss: float) -> bool:
        if not state.history:
            return False
        ref = state.history[0]["loss"]
        return loss > ref + self.factor * max(abs(ref), 1.0)

    def band(self, losses) -> float:
        """The upper edge of the running band of ``losses`` (inf until there are ``window`` of them)."""
        if len(losses) < self.window:
            return float("inf")
        med, mad = _median_mad(losses[-self.window:])
        return med + self.n_sigma * 1.4826 * mad

    def drift_limit(self, losses) -> float:
        """The highest median of a later window of losses that is not a drift from ``losses`` (a full window):
        their median + drift_sigma standard errors of a median (1.2533·1.4826·MAD/√window, floored at
        1e-9·|median| so that a run whose losses are constant to rounding is not flagged by rounding)."""
        med, mad = _median_mad(losses)
        se = 1.2533 * 1.4826 * mad / np.sqrt(len(losses))
        return med + self.drift_sigma * max(se, 1e-9 * abs(med))

    def drifted(self, state) -> bool:
        """Whether the losses of the last ``window`` accepted steps have drifted up from the anchor's."""
        return (state.anchor is not None and len(state.recent) >= self.window
                and float(np.median(state.recent)) > self.drift_limit(state.anchor[4]))

    def observe(self, state, loss: float) -> None:
        """Book-keeping after an accepted step (``state.step`` is that step; ``state.params`` its result)."""
        if loss > self.band(state.recent):
            state.last_excursion = state.step
        state.recent = (state.recent + [float(loss)])[-self.window:]
        if len(state.recent) < self.window:
            return
        pend = state.pending
        if pend is not None and state.step - pend[3] < self.window:
            return
        if (pend is not None and state.last_excursion <= pend[3]  # the window after it stayed in the band
                and float(np.median(state.recent)) <= self.drift_limit(pend[4])):  # and did not drift up
            state.anchor = pend
        state.pending = (state.params, state.opt_state, state.n_updates, state.step, list(state.recent))

    def should_restore(self, state) -> bool:
        """Whether a rejected step at ``state.step`` goes back to the anchor rather than the previous step."""
        return (state.anchor is not None and state.last_excursion > state.anchor[3]
                and state.step - state.last_excursion <= self.window)


def _median_mad(losses) -> tuple[float, float]:
    """The median of ``losses`` and their median absolute deviation from it."""
    x = np.asarray(losses, dtype=float)
    med = float(np.median(x))
    return med, float(np.median(np.abs(x - med)))


@functools.partial(jax.jit, static_argnames=("objective", "tx"))
def train_step(params, opt_state, key, lr_scale, poison, inputs, *, objective, tx):
    """One optimiser step; returns (new params, new opt state, loss, aux, |grad|, finite): not yet accepted.

    ``poison`` (a bool) replaces the loss and gradient by NaN (tests the recovery path).
    """
    if hasattr(objective, "value_and_grad"):  # an objective with its own gradient (e.g. per-sample clipping)
        (loss, aux), grads = objective.value_and_grad(params, key, inputs)
    else:
        (loss, aux), grads = jax.value_and_grad(lambda p: objective(p, key, inputs), has_aux=True)(params)
    loss = jnp.where(poison, jnp.nan, loss)
    grads = jax.tree_util.tree_map(lambda g: jnp.where(poison, jnp.nan, g), grads)
    gnorm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(gnorm)
    updates, new_opt_state = tx.update(grads, opt_state, params)
    updates = jax.tree_util.tree_map(lambda u: lr_scale * u, updates)
    return optax.apply_updates(params, updates), new_opt_state, loss, aux, gnorm, finite


@dataclasses.dataclass
class LoopState:
    """Everything the loop carries; ``good`` = (params, opt_state, n_updates) of the last good state."""

    params: Any
    opt_state: Any
    good: tuple
    step: int = 0
    n_updates: int = 0
    lr_scale: float = 1.0
    failures: int = 0
    history: list = dataclasses.field(default_factory=list)
    events: list = dataclasses.field(default_factory=list)
    train_time: float = 0.0
    status: str = "running"
    key: Any = None  # the carried key of key_schedule="split"
    # DivergenceGuard book-keeping: recent accepted losses, step of the last excursion, anchor and its
    # candidate as (params, opt_state, n_updates, step, recent losses), anchors restored so far
    recent: list = dataclasses.field(default_factory=list)
    last_excursion: int = -1
    anchor: tuple | None = None
    pending: tuple | None = None
    restores: int = 0
    # iterate averaging: the mean of the parameters of the n_average accepted steps since average_from
    average: Any = None
    n_average: int = 0

    @classmethod
    def create(cls, params, tx, key=None) -> "LoopState":
        opt_state = tx.init(params)
        return cls(params=params, opt_state=opt_state, good=(params, opt_state, 0), key=key)

    def scalars(self) -> dict:
        """The JSON part of the state (for checkpoints)."""
        return {"step": self.step, "n_updates": self.n_updates, "good_n_updates": self.good[2],
                "lr_scale": self.lr_scale, "failures": self.failures, "history": self.history,
                "events": self.events, "train_time_s": self.train_time, "status": self.status,
                "n_average": self.n_average,
                "guard": {"recent": self.recent, "last_excursion": self.last_excursion, "restores": self.restores,
                          "anchor": None if self.anchor is None else list(self.anchor[2:]),
                          "pending": None if self.pending is None else list(self.pending[2:])}}

    def trees(self) -> dict:
        """The array part of the state (for checkpoints)."""
        trees = {"params": self.params, "opt_state": self.opt_state, "good_params": self.good[0],
                 "good_opt_state": self.good[1]}
        if self.key is not None:
            trees["loop_key"] = self.key
        for name, saved in (("anchor", self.anchor), ("pending", self.pending)):
            if saved is not None:
                trees[f"{name}_params"], trees[f"{name}_opt_state"] = saved[0], saved[1]
        if self.average is not None:
            trees["average_params"] = self.average
        return trees

    @classmethod
    def restore(cls, trees: dict, scalars: dict) -> "LoopState":
        return cls(params=trees["params"], opt_state=trees["opt_state"],
                   good=(trees["good_params"], trees["good_opt_state"], int(scalars["good_n_updates"])),
                   step=int(scalars["step"]), n_updates=int(scalars["n_updates"]),
                   lr_scale=float(scalars["lr_scale"]), failures=int(scalars["failures"]),
                   history=list(scalars["history"]), events=list(scalars["events"]),
                   train_time=float(scalars["train_time_s"]), status=str(scalars["status"]),
                   key=trees.get("loop_key"), average=trees.get("average_params"),
                   n_average=int(scalars.get("n_average", 0)), **_guard_fields(trees, scalars.get("guard")))

    @property
    def averaged_params(self):
        """The iterate average if the loop has one, else the current parameters."""
        return self.params if self.average is None else self.average


def _guard_fields(trees: dict, guard: dict | None) -> dict:
    """The DivergenceGuard fields of a checkpoint (absent in checkpoints written before the guard kept anchors)."""
    if not guard:
        return {}
    fields = {"recent": [float(x) for x in guard["recent"]], "last_excursion": int(guard["last_excursion"]),
              "restores": int(guard["restores"])}
    for name in ("anchor", "pending"):
        if guard.get(name) is not None:
            n_updates, step, recent = guard[name]
            fields[name] = (trees[f"{name}_params"], trees[f"{name}_opt_state"], int(n_updates), int(step),
                            [float(x) for x in recent])
    return fields


@dataclasses.dataclass
class Loop:
    """The settings of :func:`run` (see the module docstring)."""

    objective: Callable
    tx: optax.GradientTransformation
    schedule: Callable = None
    accumulator: Any = None
    max_failures: int = MAX_CONSECUTIVE_FAILURES
    key_schedule: str = "fold_in"
    checkpointer: Callable[[LoopState], None] | None = None
    checkpoint_every: int = 0
    callback: Callable[[dict], None] | None = None
    progress: Any = None  # an object with update(n) and set_postfix_str(s), e.g. a tqdm bar
    poison_steps: frozenset = frozenset()
    stop: Callable[[LoopState], bool] | None = None  # e.g. a wall-time budget: stop when it returns True
    divergence: DivergenceGuard | None = None
    average_from: int | None = None  # average the parameters of the accepted steps from this step on
    lr_recover: int = 0  # double a halved learning-rate factor back after this many steps without a failure (0 = never)

    def averages(self, state: LoopState) -> bool:
        return self.average_from is not None and state.step >= self.average_from

    def step_key(self, state: LoopState, key):
        if self.key_schedule == "split":
            state.key, k = jax.random.split(state.key)
            return k
        return jax.random.fold_in(key, state.step)

    def lr(self, state: LoopState) -> float:
        base = float(self.schedule(state.n_updates)) if self.schedule is not None else 1.0
        return base * state.lr_scale


def _accept(loop: Loop, state: LoopState, new, loss, aux, gnorm) -> dict:
    """Apply a finite step; returns its history record."""
    state.good = (state.params, state.opt_state, state.n_updates)  # the state just evaluated without trouble
    state.params, state.opt_state = new
    state.failures = 0
    record = {"step": state.step, **loop.objective.metrics(loss, aux), "grad_norm": float(gnorm),
              "lr": loop.lr(state)}
    if loop.accumulator is not None:
        record.update(loop.accumulator.metrics(aux))
        loop.accumulator.observe(aux)
    state.n_updates += 1
    if loop.averages(state):
        state.average = state.params if state.average is None else _running_mean(state.average, state.params,
                                                                                 state.n_average)
        state.n_average += 1
    if loop.divergence is not None:
        loop.divergence.observe(state, float(loss))
        if loop.divergence.drifted(state):
            limit = loop.divergence.drift_limit(state.anchor[4])
            _restore_anchor(loop, state, f"the median of the last {len(state.recent)} losses, "
                            f"{float(np.median(state.recent)):.8g}, drifted above {limit:.8g} (the anchor's median + "
                            f"{loop.divergence.drift_sigma:g} standard errors)", "")
            return record
    if loop.lr_recover and state.lr_scale < 1.0:
        _recover_lr(loop, state)
    return record


def _recover_lr(loop: Loop, state: LoopState) -> None:
    """Double the learning-rate factor back once ``lr_recover`` steps have passed since it last changed (its last
    event: a halving or an earlier doubling; the events are in the checkpoint, so a resumed run does the same)."""
    last = max((e["step"] for e in state.events if "lr_scale" in e), default=-1)
    if state.step - last >= loop.lr_recover:
        state.lr_scale = min(1.0, 2.0 * state.lr_scale)
        state.events.append({"step": state.step, "event": f"{state.step - last} steps without a failure: learning "
                             "rate doubled back", "lr_scale": state.lr_scale})


@jax.jit
def _running_mean(mean, x, n):
    """The mean of n + 1 values from the mean of the first n and the next one."""
    return jax.tree_util.tree_map(lambda m, v: m + (v - m) / (n + 1), mean, x)


def _reject(loop: Loop, state: LoopState, reason: str = "non-finite loss or gradient") -> None:
    """Roll back a failed step: last good state (or the guard's anchor after an excursion), half the
    learning rate, record the event."""
    guard = loop.divergence
    state.failures += 1
    if guard is not None and guard.should_restore(state):
        _restore_anchor(loop, state, f"{reason} after the losses had left their running band (latest excursion "
                        f"at step {state.last_excursion})", "step skipped, ")
    else:
        state.lr_scale *= 0.5
        state.params, state.opt_state, state.n_updates = state.good
        state.events.append({"step": state.step, "event": f"{reason}: step skipped, last good "
                             "state restored, learning rate halved", "lr_scale": state.lr_scale})
    if state.failures >= loop.max_failures:
        state.status = "diverged"
    elif state.lr_scale <= 0.5 ** loop.max_failures:  # halved so often (not in a row) that it no longer trains
        state.status = "diverged"
        state.events.append({"step": state.step, "event": f"the learning rate has been halved {loop.max_failures} "
                             "times: the run no longer trains; stopped", "lr_scale": state.lr_scale})


def _restore_anchor(loop: Loop, state: LoopState, reason: str, skipped: str) -> None:
    """Go back to the divergence guard's anchor, halve the learning rate, record the event (``skipped``:
    "step skipped, " when the current step is not applied, "" when it was and is now undone)."""
    params, opt_state, n_updates, step, recent = state.anchor
    state.lr_scale *= 0.5
    state.params, state.opt_state, state.n_updates = params, opt_state, n_updates
    state.good = (params, opt_state, n_updates)
    state.recent, state.pending, state.last_excursion = list(recent), None, -1
    state.restores += 1
    dropped = state.n_average
    state.average, state.n_average = None, 0  # it holds the degraded steps: start afresh
    state.events.append({"step": state.step, "event": f"{reason}: {skipped}the state of step {step} restored, "
                         "learning rate halved" + (f", the parameter average of {dropped} steps restarted"
                                                   if dropped else ""),
                         "lr_scale": state.lr_scale, "restored_step": step})
    if state.restores > loop.divergence.max_restores:
        state.status = "diverged"


def rolled_back(events: list) -> list:
    """The events of ``events`` that are rolled-back steps (not the notes of a stopped run or of a runaway
    final evaluation); the text is that of :func:`_reject`, also in results written by earlier releases."""
    return [e for e in events if "step skipped" in e["event"]]


def _snapshot(loop: Loop, state: LoopState):
    fields = tuple(getattr(state, f.name) for f in dataclasses.fields(state))
    acc = None if loop.accumulator is None else dict(loop.accumulator.state)
    return fields, len(state.history), len(state.events), acc


def _restore(loop: Loop, state: LoopState, snap) -> None:
    """Undo a step that was interrupted half-way (so a checkpoint holds whole steps only)."""
    fields, n_hist, n_events, acc = snap
    for f, value in zip(dataclasses.fields(state), fields):
        setattr(state, f.name, value)
    del state.history[n_hist:], state.events[n_events:]
    if acc is not None:
        loop.accumulator.state = acc


def run(loop: Loop, state: LoopState, n_steps: int, key) -> LoopState:
    """Advance ``state`` until ``state.step == n_steps`` (or the run stops); returns the state."""
    snap = _snapshot(loop, state)
    try:
        while state.step < n_steps and state.status == "running" and not (loop.stop and loop.stop(state)):
            snap = _snapshot(loop, state)
            t0 = time.perf_counter()
            inputs = None if loop.accumulator is None else loop.accumulator.inputs()
            *new, loss, aux, gnorm, finite = train_step(
                state.params, state.opt_state, loop.step_key(state, key), state.lr_scale,
                state.step in loop.poison_steps, inputs, objective=loop.objective, tx=loop.tx)
            if not bool(finite):
                record = _reject(loop, state)
            elif loop.divergence is not None and loop.divergence.rejects(state, float(loss)):
                record = _reject(loop, state, f"runaway loss {float(loss):.4g}")
            else:
                record = _accept(loop, state, new, loss, aux, gnorm)
            state.train_time += time.perf_counter() - t0
            if record is not None:
                record["time"] = state.train_time
                state.history.append(record)
                if loop.callback is not None:
                    loop.callback(record)
            if loop.progress is not None:
                loop.progress.update(1)
                if record is not None and "energy" in record:
                    from ..stats import format_value_error

                    loop.progress.set_postfix_str(f"E = {format_value_error(record['energy'], record['energy_err'])}")
            state.step += 1
            if loop.checkpointer is not None and loop.checkpoint_every and state.step % loop.checkpoint_every == 0:
                loop.checkpointer(state)
        if state.status == "running":
            state.status = "completed"
    except KeyboardInterrupt:
        _restore(loop, state, snap)  # the state of the last completed step
        if loop.checkpointer is not None:
            loop.checkpointer(state)
        raise RunInterrupted(state) from None
    finally:
        if loop.progress is not None:
            loop.progress.close()
    if loop.checkpointer is not None:
        loop.checkpointer(state)
    return state
