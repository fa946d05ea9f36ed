"""Refinement of a trained ground state: stochastic reconfiguration with the zero-variance force.

Training minimises the energy with Adam on reparameterised gradients, whose noise does not vanish at the
ground state; near it the energy surface is flat (E − E_0 is second order in the error of log Ψ) and the
state stops improving at a Var(E_loc) floor set by the noise, not by the model (docs/solver.md: on the single
site, noise-free minimisation of the variance by quadrature goes 100× below the floor with the same model).
The refinement phase continues from the trained parameters with imaginary-time steps projected on the
ansatz (:func:`qrg.optim.sr.min_sr_direction`):

    θ ← θ − dτ δ,   δ = argmin Σ_b w_b |(O_b − Ō)·δ − (E_loc,b − Ē)|² + ε|δ|²,   O_b = ∂_θ log Ψ_θ(φ_b),

on ``batch`` exact samples of the flow per step, drawn from prior noise with one site's noise at a time
broadened by τ and weighted back to p_θ (:func:`qrg.optim.sr.site_broadened_noise`; or all of it,
:func:`qrg.optim.sr.broadened_noise`), so that the large-field tail that carries most of Var(E_loc) — one
site at a large field — is in the fit. O_b comes from one reverse pass per sample through the backward solve that draws it
(O_b = ½ ∂_θ[log p_θ(Φ_θ(z_b)) − sg(s_b)·Φ_θ(z_b)], s_b the exact score: the total derivative along the
sample minus the part that moves the sample is the derivative at fixed φ); E_loc needs Δ log p (exact up to
64 sites, else Hutchinson, whose probe noise then enters the force). Cost per step: ``batch`` per-sample
backward solves with their gradient and ``batch`` Laplacians (≈ 1 s per step of 128 samples on the 16-site
chain, 2 CPU cores, measured in whole runs; of it the exact Laplacians ~0.4 s and the per-sample gradients
~0.1 s), an n × n solve.

Every parameter set is checked on its own batch before the next update. A batch that is not finite, whose
energy runs away, or whose variance blows up (above :data:`BLOWUP` × the median batch variance of the last
steps on two steps in a row, or :data:`BLOWUP_ONCE` × on one) rolls the phase back to the checked parameters
with the lowest batch variance and halves dτ, at most :data:`MAX_RECOVERIES` times; after that it stops with
status ``"nonfinite"`` and those parameters are kept (and reported). Measured on the 16-site chain: dτ = 0.2
diverges within 10 steps (the batch variance ×28 in 6 steps, then ×1e5), while a healthy dτ = 0.05 run had one
isolated batch at 26× its lowest in 200 steps (a rare large-field sample), hence two strikes at 30×.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..optim.sr import SITE_BROADENING, broadened_noise, broadening_for, min_sr_direction, site_broadened_noise
from .ansatz import laplacians
from .estimators import local_energy_values, resolve_laplacian_method


@dataclasses.dataclass(frozen=True)
class RefineSettings:
    """``steps`` SR steps of ``batch`` samples, imaginary-time step ``dtau``, diagonal shift ``shift`` (ε of the
    n × n system), the ``proposal`` of the samples: "site" (one site's prior noise at a time broadened,
    :func:`qrg.optim.sr.site_broadened_noise`) or "global" (all of it, :func:`qrg.optim.sr.broadened_noise`),
    with broadening ``broaden`` τ ≥ 1 (0 = automatic: 3 for "site", :data:`qrg.optim.sr.SITE_BROADENING`; for
    "global" the τ whose expected effective sample fraction is ½, :func:`qrg.optim.sr.broadening_for`)."""

    steps: int = 0
    batch: int = 128
    dtau: float = 0.1
    shift: float = 1e-4
    broaden: float = 0.0
    proposal: str = "site"

    def tau(self, n_sites: int) -> float:
        if self.broaden:
            return self.broaden
        return SITE_BROADENING if self.proposal == "site" else broadening_for(n_sites)

    def noise(self, key, n_sites: int, shape: tuple):
        """The white noise of one step's ``batch`` samples and its normalised importance weights."""
        draw = site_broadened_noise if self.proposal == "site" else broadened_noise
        return draw(key, self.batch, shape, self.tau(n_sites))


#: a batch energy above first + RUNAWAY · max(|first|, 1) stops the refinement (the optimisation loop's factor)
RUNAWAY = 10.0
#: a batch variance above BLOWUP × the median of the last BLOWUP_WINDOW updating steps on two consecutive steps
#: (or BLOWUP_ONCE × on one) is a blow-up; checked once BLOWUP_MIN_STEPS steps have updated
BLOWUP = 30.0
BLOWUP_ONCE = 1000.0
BLOWUP_WINDOW = 20
BLOWUP_MIN_STEPS = 3
#: roll-backs to the lowest-variance parameters (dτ halved each time) before the phase stops
MAX_RECOVERIES = 3


@dataclasses.dataclass
class RefineState:
    """Where a refinement stands: its parameters θ_step, the steps done, their records and the status
    ("running", "completed", "nonfinite"), the loop step of the trained parameters it started from, and the
    blow-up guard: the checked parameters with the lowest batch variance (``best``, of step ``best_step``),
    the factor on dτ (halved by each roll-back), the roll-backs done and the consecutive high batches (the
    reference level is read from ``history``, so a resumed state continues the same guard)."""

    params: object
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    status: str = "running"
    from_step: int = 0
    time_s: float = 0.0
    check: dict | None = None  # the record of the batch that checked the final parameters
    best: object = None
    best_variance: float | None = None
    best_step: int | None = None
    dtau_scale: float = 1.0
    recoveries: int = 0
    strikes: int = 0

    def meta(self) -> dict:
        return {"step": self.step, "history": self.history, "status": self.status, "from_step": self.from_step,
                "time_s": self.time_s, "check": self.check, "best_variance": self.best_variance,
                "best_step": self.best_step, "dtau_scale": self.dtau_scale, "recoveries": self.recoveries,
                "strikes": self.strikes}

    @classmethod
    def restore(cls, params, meta: dict, best=None) -> "RefineState":
        """The state a checkpoint's ``meta`` record describes (``best``: its lowest-variance parameters, None for
        a checkpoint written before the guard kept them: the guard then starts from the resumed batch)."""
        has_best = best is not None and meta.get("best_variance") is not None
        return cls(params=params, step=int(meta["step"]), history=list(meta.get("history", [])),
                   status=str(meta.get("status", "running")), from_step=int(meta.get("from_step", 0)),
                   time_s=float(meta.get("time_s", 0.0)), check=meta.get("check"), best=best if has_best else None,
                   best_variance=float(meta["best_variance"]) if has_best else None,
                   best_step=int(meta["best_step"]) if has_best else None,
                   dtau_scale=float(meta.get("dtau_scale", 1.0)), recoveries=int(meta.get("recoveries", 0)),
                   strikes=int(meta.get("strikes", 0)))

    def reference_variance(self) -> float | None:
        """The median batch variance of the last :data:`BLOWUP_WINDOW` steps that updated the parameters (None
        before :data:`BLOWUP_MIN_STEPS` of them): the level a blow-up is measured against (a median, since a
        single batch's variance scatters over orders of magnitude when it is small)."""
        recent = [r["variance"] for r in self.history if "stopped" not in r][-BLOWUP_WINDOW:]
        return float(np.median(recent)) if len(recent) >= BLOWUP_MIN_STEPS else None

    def blown_up(self, record) -> tuple[str | None, int]:
        """(why the batch ``record`` of the current parameters is a variance blow-up, or None; the count of
        consecutive high batches including it). Changes nothing: the loop commits the count with :meth:`accept`."""
        v, ref = record["variance"], self.reference_variance()
        if ref is None or not v > BLOWUP * ref:
            return None, 0
        strikes, ratio = self.strikes + 1, v / ref
        if strikes >= 2 or ratio > BLOWUP_ONCE:
            return (f"batch Var(E_loc) {v:.3g} is {ratio:.3g}x the median of the last steps ({ref:.3g})"
                    + (" for two steps in a row" if strikes >= 2 else "")), strikes
        return None, strikes

    def accept(self, record, strikes: int) -> None:
        """The current parameters' batch ``record`` passed: commit the strike count, and keep the parameters as
        the roll-back target if their batch variance is the lowest so far."""
        self.strikes = strikes
        if self.best_variance is None or record["variance"] < self.best_variance:
            self.best, self.best_variance, self.best_step = self.params, record["variance"], self.step

    def roll_back(self) -> bool:
        """Back to the lowest-variance parameters with dτ halved (True), or False when no roll-back is left."""
        if self.best is None or self.recoveries >= MAX_RECOVERIES:
            return False
        self.params, self.dtau_scale, self.strikes = self.best, 0.5 * self.dtau_scale, 0
        self.recoveries += 1
        return True


@functools.partial(jax.jit, static_argnums=0)
def log_psi_jacobian(flow, params, white):
    """(O, φ, s): per-sample ∂_θ log Ψ_θ(φ_b) at fixed φ_b (rows of shape (n, P), in ``ravel_pytree`` order),
    the samples φ_b = Φ_θ(white_b) and their exact scores, one reverse pass per sample."""

    def one(p, w):
        phi, log_p, s = flow.push_white(p, w[None])
        return 0.5 * (log_p[0] - jnp.sum(jax.lax.stop_gradient(s[0]) * phi[0])), (phi[0], s[0])

    grads, (phi, s) = jax.vmap(jax.grad(one, has_aux=True), in_axes=(None, 0))(params, white)
    rows = jax.vmap(lambda g: ravel_pytree(g)[0])(grads)
    return rows, phi, s


@functools.partial(jax.jit, static_argnames=("shift",))
def _direction(rows, e, w, shift):
    return min_sr_direction(rows, e, w, shift)


def refine_batch(flow, theory, params, key, settings: RefineSettings, laplacian: str = "auto", n_probes: int = 4):
    """The samples of one SR step at ``params``: (record, (O rows, E_loc, weights)); the record holds the weighted
    mean and variance of E_loc, the effective sample size and τ."""
    lat = theory.lattice
    tau = settings.tau(lat.n_sites)
    k_noise, k_lap = jax.random.split(key)
    white, w = settings.noise(k_noise, lat.n_sites, lat.shape)
    rows, phi, s = log_psi_jacobian(flow, params, white)
    method = resolve_laplacian_method(laplacian, lat)
    e = local_energy_values(theory, phi, s, laplacians(flow, params, phi, k_lap, method, n_probes))
    mean = float(jnp.sum(w * e))
    record = {"energy": mean, "variance": float(jnp.sum(w * (e - mean) ** 2)), "ess": float(1.0 / jnp.sum(w**2)),
              "tau": tau}
    return record, (rows, e, w)


def _bad(record, rows, first) -> str | None:
    """Why a step's batch cannot be used (non-finite, or a runaway energy as the optimisation loop defines it), or None."""
    if not (np.isfinite(record["energy"]) and np.isfinite(record["variance"]) and bool(jnp.all(jnp.isfinite(rows)))):
        return "non-finite local energies or log-derivatives"
    if first is not None and record["energy"] > first + RUNAWAY * max(abs(first), 1.0):
        return f"runaway energy {record['energy']:.6g} (first step {first:.6g})"
    return None


def refine(flow, theory, state: RefineState, key, settings: RefineSettings, *, laplacian: str = "auto",
           n_probes: int = 4, checkpointer=None, checkpoint_every: int = 50, callback=None) -> RefineState:
    """Run the refinement from ``state`` to ``settings.steps`` steps; step k draws with fold_in(key, k), so a
    resumed run repeats the same draws and ends bit for bit where an uninterrupted one does.

    Every parameter set is checked on its own batch before it is used: the batch of step k is drawn at θ_k. If it
    is not finite, its energy runs away or its variance blows up (:meth:`RefineState.blown_up`), step k rolls
    back to the checked parameters with the lowest batch variance and halves dτ (the record says so, the step
    counts); after :data:`MAX_RECOVERIES` roll-backs the phase stops with status "nonfinite" and those
    parameters are kept. After the last update one more batch checks θ_steps (its record is ``state.check``).
    ``checkpointer(state)`` every ``checkpoint_every`` steps and at the end; ``callback(record)`` after every
    step. The flow runs unsharded (the per-sample gradients are a vmap over single-sample solves)."""
    flow = flow.replace(mesh=None)
    t0 = time.perf_counter() - state.time_s
    if state.status == "completed":  # resumed with more steps
        state.status = "running"
    first = state.history[0]["energy"] if state.history else None
    while state.status == "running":
        record, (rows, e, w) = refine_batch(flow, theory, state.params, jax.random.fold_in(key, state.step), settings,
                                            laplacian, n_probes)
        record["step"] = state.step
        why, strikes = _bad(record, rows, first), 0
        if why is None:
            why, strikes = state.blown_up(record)
        if why is not None:
            record["stopped"] = why
            if not state.roll_back():
                state.check = record
                state.status = "nonfinite"
                if state.best is not None:
                    state.params = state.best
                break
            record["rolled_back_to"] = state.best_step
            record["dtau"] = settings.dtau * state.dtau_scale
        elif state.step >= settings.steps:
            state.check = record
            state.status = "completed"
            break
        else:
            state.accept(record, strikes)
            first = record["energy"] if first is None else first
            dtau = settings.dtau * state.dtau_scale
            delta = _direction(rows, e, w, settings.shift)
            record["step_norm"] = float(dtau * jnp.linalg.norm(delta))
            flat, unravel = ravel_pytree(state.params)
            state.params = unravel(flat - dtau * delta)
        state.step += 1
        state.history.append(record)
        state.time_s = time.perf_counter() - t0
        if callback is not None:
            callback(record)
        if checkpointer is not None and checkpoint_every and state.step % checkpoint_every == 0:
            checkpointer(state)
    state.time_s = time.perf_counter() - t0
    if checkpointer is not None:
        checkpointer(state)
    return state


def refine_summary(state: RefineState, settings: RefineSettings) -> dict:
    """The JSON record of a refinement (``result.json`` ``refine``)."""
    h = state.history
    return {"steps": state.step, "status": state.status, "batch": settings.batch, "dtau": settings.dtau,
            "recoveries": state.recoveries, "dtau_final": settings.dtau * state.dtau_scale, "best_step": state.best_step,
            "shift": settings.shift, "proposal": settings.proposal, "tau": (h[0] if h else state.check or {}).get("tau"),
            "time_s": state.time_s,
            "first": h[0] if h else None, "last": state.check or (h[-1] if h else None), "history": h}
