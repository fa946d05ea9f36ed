"""Evaluation of a trained flow: energy statistics on fresh samples and the ODE-discretisation check."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_int
from ..flow import solver_order
from ..stats import Stats, statistics
from .ansatz import draw, laplacians
from .estimators import (ESTIMATORS, estimate_energy, fit_control_variates, ibp_energy_values, local_energy_values,
                         resolve_laplacian_method, stein_feature_values)


#: folded into the evaluation key for the fresh samples of growth round r (round 0 uses the key itself)
_GROWTH_KEY = 0x7A11


def reported_estimator(estimates: dict, wanted: str) -> str:
    """The estimator whose estimate is reported: ``wanted`` ("cv", "ibp", "local") if it was evaluated, else
    "ibp"; ``"auto"`` takes the one with the smallest error bar (a choice made after the fact)."""
    if wanted == "auto":
        return min(estimates, key=lambda k: estimates[k].err)
    return wanted if wanted in estimates else "ibp"


@dataclasses.dataclass(frozen=True)
class Sizing:
    """How :func:`evaluate` sized its sample.

    It starts with ``eval_batch`` samples (E_loc on the first ``local_batch``) and, while the
    :func:`~qrg.stats.tail_diagnostics` of the reported estimator (``estimator``) or of E_loc are not
    resolved but projected to be within the cap (``TailDiagnostics.samples_needed``), adds as many
    fresh, independent samples again (doubling) for the one that is not, up to ``max_batch`` energy
    samples and ``max_local`` E_loc samples. ``rounds`` growth rounds were done;
    the final sample has ``n_samples`` and ``n_local``. Samples are only ever added, never dropped.
    """

    estimator: str
    eval_batch: int
    local_batch: int
    max_batch: int
    max_local: int
    rounds: int
    n_samples: int
    n_local: int

    @property
    def grown(self) -> bool:
        return self.rounds > 0

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "grown": self.grown}


def grow_until_resolved(draw, local, estimate, needs, n: int, m: int, max_n: int, max_m: int):
    """The sizing loop of :func:`evaluate`, independent of flows (unit-testable with any sampler).

    ``draw(r, k)``: k fresh samples (a tuple of arrays, samples on axis 0) for round r (0 = the first
    batch); ``local(r, samples)``: per-sample local data (the Laplacians) of the given samples, in
    round r; ``estimate(samples, local_values)``: the statistics of all samples, with the local data
    belonging to the first ``len(local_values)`` samples; ``needs(stats)`` -> (more energy samples?,
    more local samples?). Starts with n samples (local data on the first m ≤ n; m = 0: none) and
    doubles n (m) while ``needs`` asks for it and n < max_n (m < max_m ≤ max_n). Local data go to the
    samples after the first m (drawn first if there are not enough), so they are always the first m.
    Returns (stats, rounds, n, m).
    """
    samples = draw(0, n)
    values = local(0, tuple(a[:m] for a in samples)) if m else None
    stats = estimate(samples, values)
    rounds = 0
    while True:
        more_n, more_m = needs(stats)
        more_n = bool(more_n) and n < max_n
        more_m = bool(more_m) and 0 < m < max_m
        if not (more_n or more_m):
            return stats, rounds, n, m
        rounds += 1
        add_m = min(m, max_m - m) if more_m else 0
        target = max(min(2 * n, max_n) if more_n else n, m + add_m)
        if target > n:
            samples = tuple(jnp.concatenate([a, b]) for a, b in zip(samples, draw(rounds, target - n)))
            n = target
        if add_m:
            values = jnp.concatenate([values, local(rounds, tuple(a[m:m + add_m] for a in samples))])
            m += add_m
        stats = estimate(samples, values)


def evaluate(flow, params, theory, key, n: int, *, laplacian: str = "auto", n_probes: int = 4,
             chunk_size: int = 512, laplacian_chunk: int = 256, local_batch: int | None = None,
             max_batch: int | None = None, max_local: int | None = None, estimator: str = "cv"):
    """:class:`~qrg.groundstate.estimators.EnergyStats` of the trained flow on ``n`` fresh samples.

    The local energy (which needs Δ log p: one second derivative through the ODE per site, or
    per Hutchinson probe) uses the first ``local_batch`` samples (all if None).

    Sizing (:class:`Sizing`, kept in ``EnergyStats.sizing``): while the tail diagnostics
    (:func:`~qrg.stats.tail_diagnostics`) of the reported ``estimator`` (see :func:`reported_estimator`)
    or of E_loc are not resolved, and their ``samples_needed`` is within the cap, fresh independent
    samples are added, doubling the sample, up to ``max_batch`` samples (None or ≤ n: no growth) and
    ``max_local`` E_loc samples (default local_batch · max_batch / n, the same factor). Tails projected
    to need more than the cap are not grown for (the cap would not resolve them; E_loc costs one
    second derivative through the ODE per site and sample): they stay unresolved, and
    :attr:`~qrg.groundstate.result.SolveResult.warnings` says so. Without growth the result is that of
    the first ``n`` samples alone (the same numbers as an evaluation that cannot grow).
    """
    k_sample, k_lap = jax.random.split(key)
    method = resolve_laplacian_method(laplacian, theory.lattice)
    m = 0 if method == "none" else (n if local_batch is None else min(local_batch, n))
    max_n = max(n, int(max_batch or 0))
    if max_local is None:
        max_local = m * max_n // n
    max_m = min(max(m, int(max_local)), max_n)

    def round_keys(r):
        if r == 0:
            return k_sample, k_lap
        return tuple(jax.random.split(jax.random.fold_in(jax.random.fold_in(key, _GROWTH_KEY), r)))

    # growth rounds reuse the chunk shapes of the first batch (no new compilation)
    def draw_batch(r, k):
        return draw(flow, params, round_keys(r)[0], k, chunk_size if r == 0 else min(chunk_size, n))

    def local_batch_values(r, samples):
        return laplacians(flow, params, samples[0], round_keys(r)[1], method, n_probes,
                          laplacian_chunk if r == 0 else min(laplacian_chunk, m))

    def estimate(samples, lap):
        try:
            return estimate_energy(theory, *samples, laplacian_values=lap, laplacian=method)
        except FloatingPointError as err:
            raise RuntimeError(f"the trained flow produced non-finite values on evaluation ({err}); "
                               "try a smaller learning rate or more ODE steps") from None

    def needs(stats):
        return tuple(_worth_growing(st, cap) for st, cap in zip(_watched(stats, estimator), (max_n, max_m)))

    stats, rounds, n_final, m_final = grow_until_resolved(draw_batch, local_batch_values, estimate, needs, n, m,
                                                          max_n, max_m)
    sizing = Sizing(estimator=estimator, eval_batch=n, local_batch=m, max_batch=max_n, max_local=max_m,
                    rounds=rounds, n_samples=n_final, n_local=m_final)
    return dataclasses.replace(stats, sizing=sizing)


def _watched(stats, estimator: str):
    """(Stats of the reported estimator, Stats of E_loc or None): the ones the evaluation is sized for."""
    return stats.estimates[reported_estimator(stats.estimates, estimator)], stats.local


def _worth_growing(st, cap: int) -> bool:
    """Tails not resolved, and projected to be resolved within ``cap`` samples (TailDiagnostics.samples_needed)."""
    t = None if st is None else st.tails
    return t is not None and not t.resolved and t.samples_needed <= cap


@dataclasses.dataclass
class DiscretisationCheck:
    """Step-doubling estimate of the ODE discretisation error of the evaluation solve.

    The same prior draws φ_T are transported with ``n_steps`` and ``n_steps_fine`` = r·``n_steps``
    fixed steps (r = 2 by default), and every energy estimator is evaluated on both: ``delta[name]``
    holds the statistics of the paired per-sample differences e(φ_n) − e(φ_rn), whose mean is
    E_n − E_rn (paired, so its error bar is tiny compared with that of E itself). For a solver of
    order p the bias of the n-step estimate is E_n − E_∞ ≈ r^p/(r^p − 1)·(E_n − E_rn) (``bias``).
    Measured on φ⁴ flows the energy bias falls at least as fast as h^p (rk4: by 20–24× per
    halving of h, heun: 7–8×), so the factor from the nominal order p is conservative.
    ``systematic(name)`` = sqrt(bias² + σ_bias²): the size of that bias, or its statistical
    resolution when it is not resolved. The fixed-step ODE map is a bijection with an exactly
    computable density only in the limit of many steps, so the finite-step bias is not
    variational: it can lower the energy below E_0, and belongs in the error budget.
    """

    n_steps: int
    n_steps_fine: int
    order: int
    delta: dict  # estimator name -> Stats of e(φ_n) − e(φ_rn)

    @property
    def richardson(self) -> float:
        q = (self.n_steps_fine / self.n_steps) ** self.order
        return q / (q - 1.0)

    def bias(self, estimator: str) -> Stats | None:
        d = self.delta.get(estimator)
        if d is None:
            return None
        f = self.richardson
        return Stats(mean=f * d.mean, err=f * d.err, variance=f * f * d.variance, n_samples=d.n_samples)

    def systematic(self, estimator: str) -> float | None:
        b = self.bias(estimator)
        return None if b is None else float(np.hypot(b.mean, b.err))

    def to_json(self) -> dict:
        return {"n_steps": self.n_steps, "n_steps_fine": self.n_steps_fine, "order": self.order,
                "n_samples": next(iter(self.delta.values())).n_samples if self.delta else 0,
                "delta": {k: {"mean": v.mean, "err": v.err} for k, v in self.delta.items()},
                "bias": {k: {"mean": self.bias(k).mean, "err": self.bias(k).err} for k in self.delta}}


def _paired_differences(theory, coarse, fine, estimators) -> dict:
    """Stats of e(φ_n) − e(φ_rn) per estimator, from (φ, g[, Δ log p]) of both solves."""
    (phi_c, g_c, lap_c), (phi_f, g_f, lap_f) = coarse, fine
    e_c, e_f = np.asarray(ibp_energy_values(theory, phi_c, g_c)), np.asarray(ibp_energy_values(theory, phi_f, g_f))
    delta = {}
    if "ibp" in estimators:
        delta["ibp"] = statistics(e_c - e_f, correlated=False)
    if "cv" in estimators:
        h_c = np.asarray(stein_feature_values(theory.lattice, phi_c, g_c))
        h_f = np.asarray(stein_feature_values(theory.lattice, phi_f, g_f))
        if phi_c.shape[0] >= h_c.shape[1] + 2:
            c = fit_control_variates(e_c, h_c)  # fitted on the n-step samples, held fixed for both
            delta["cv"] = statistics((e_c - h_c @ c) - (e_f - h_f @ c), correlated=False)
    if lap_c is not None:
        m = lap_c.shape[0]
        d = (np.asarray(local_energy_values(theory, phi_c[:m], g_c[:m], lap_c))
             - np.asarray(local_energy_values(theory, phi_f[:m], g_f[:m], lap_f)))
        delta["local"] = statistics(d, correlated=False)
    return delta


def discretisation_check(flow, params, theory, key, n: int, *, estimators=("ibp", "cv"), laplacian: str = "auto",
                         n_probes: int = 4, local_batch: int = 256, chunk_size: int = 512,
                         laplacian_chunk: int = 256, factor: int = 2) -> DiscretisationCheck | None:
    """:class:`DiscretisationCheck` of a fixed-step ``flow`` on ``n`` paired samples (None when the
    flow is adaptive: its error is controlled by rtol/atol instead). The comparison solve has
    ``factor`` × as many steps.

    ``estimators``: any of "ibp", "cv" (Stein control variates with coefficients fitted on the
    n-step samples and held fixed for both) and "local" (on the first ``local_batch`` samples).
    """
    n = check_int("n (samples of the discretisation check)", n, minimum=1)
    factor = check_int("factor (step refinement of the discretisation check)", factor, minimum=2)
    for name in estimators:
        ESTIMATORS.check("estimators", name)
    if not flow.n_steps:
        return None
    fine = flow.replace(n_steps=factor * flow.n_steps)
    k_sample, k_lap = jax.random.split(key)
    method = resolve_laplacian_method(laplacian, theory.lattice) if "local" in estimators else "none"
    solves = []
    for f in (flow, fine):
        phi, g = draw(f, params, k_sample, n, chunk_size)
        lap = None
        if method != "none":
            lap = laplacians(f, params, phi[:min(local_batch, n)], k_lap, method, n_probes, laplacian_chunk)
        solves.append((phi, g, lap))
    delta = _paired_differences(theory, *solves, estimators)
    for name, st in delta.items():
        if not (np.isfinite(st.mean) and np.isfinite(st.err)):
            raise RuntimeError(f"the discretisation check of the {name} estimator gave non-finite values: "
                               f"the {fine.n_steps}-step solve of the trained flow diverged")
    return DiscretisationCheck(n_steps=flow.n_steps, n_steps_fine=fine.n_steps, order=solver_order(flow.solver),
                               delta=delta)
