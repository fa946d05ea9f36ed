"""Exact flow-based sampling: independence Metropolis–Hastings with a flow as the proposal.

A flow with an exact log-density q(φ) = p^θ_0(φ) (one backward ODE solve, design §3.2) gives
an unbiased sampler of p(φ) ∝ e^{−S_E(φ)}: propose φ' ~ q independently of the current state
and accept with probability

    A(φ → φ') = min(1, w(φ')/w(φ)),    log w(φ) = −S_E(φ) − log q(φ).

If q = p exactly, log w is constant and every proposal is accepted. Diagnostics: acceptance
rate, the Kish effective sample size per sample of the importance weights,
ESS/n = (Σ_i w_i)² / (n Σ_i w_i²), and the integrated autocorrelation time of observables
along the Metropolis chain (rejections repeat the current state).

The Metropolis chain is BlackJAX's independence kernel (``blackjax.irmh``) driven by proposals
drawn beforehand in batches: one batched ODE solve for many proposals is far cheaper than one
solve per Metropolis step. Each proposal carries its target log-density log p = −S_E and its
proposal log-density log q (:class:`Proposal`); the kernel's "proposal distribution" at step i
returns the i-th proposal, and its proposal log-density log q(φ_prev | φ_new) = log q(φ_prev)
reads the carried value, so the kernel's acceptance ratio is exactly w(φ')/w(φ) above.
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from ..._validation import QRGInputError, check_int
from .base import SAMPLERS


@dataclasses.dataclass(frozen=True)
class IMHResult:
    """samples (n_chains, n_samples, *shape); accepted (n_chains, n_samples) bool; log_w of the
    proposals (n_chains, n_samples); ess_per_sample of all proposals; wall times."""

    samples: np.ndarray
    accepted: np.ndarray
    log_w: np.ndarray
    ess_per_sample: float
    wall_time_s: float
    train_time_s: float = 0.0
    method: str = "flow-imh"

    @property
    def acceptance(self) -> float:
        return float(np.mean(self.accepted))

    def summary(self) -> dict:
        return {"method": self.method, "n_chains": int(self.samples.shape[0]), "n_samples": int(self.samples.shape[1]),
                "acceptance": self.acceptance, "ess_per_sample": self.ess_per_sample,
                "log_w_std": float(np.std(self.log_w)), "wall_time_s": self.wall_time_s,
                "train_time_s": self.train_time_s}


def ess_per_sample(log_w) -> float:
    """(Σ w)² / (n Σ w²) from log-weights (any shape)."""
    lw = np.asarray(log_w, dtype=float).ravel()
    w = np.exp(lw - lw.max())
    return float(w.sum() ** 2 / (lw.size * np.sum(w**2)))


class Proposal(NamedTuple):
    """A pre-drawn proposal φ with its target log-density log p(φ) (unnormalised) and proposal log q(φ)."""

    phi: jax.Array
    log_p: jax.Array
    log_q: jax.Array


def _carried_target(position: Proposal):
    return position.log_p


def _carried_proposal_density(new_state, prev_state):
    """log q(prev | new) of an independence proposal: q(prev), carried with the state."""
    del new_state
    return prev_state.position.log_q


@jax.jit
def independence_metropolis(key, proposals, log_p, log_q):
    """Run independence-Metropolis chains (``blackjax.irmh``) over pre-drawn proposals.

    proposals (n_chains, n, *shape) with the target's unnormalised log-density ``log_p`` and the
    proposal's log-density ``log_q`` at each of them, both (n_chains, n); only log p − log q = log w
    enters. The chain starts at the first proposal (exact if q = p; otherwise discard a burn-in).
    Returns (samples, accepted), accepted[:, 0] = True.
    """
    kernel = blackjax.irmh.build_kernel()

    def chain(k, props, lp, lq):
        def step(state, inp):
            k_step, prop = inp
            state, info = kernel(k_step, state, _carried_target, lambda _: prop, _carried_proposal_density)
            return state, (state.position.phi, info.is_accepted)

        rest = Proposal(props[1:], lp[1:], lq[1:])
        state = blackjax.irmh.init(Proposal(props[0], lp[0], lq[0]), _carried_target)
        _, (xs, acc) = jax.lax.scan(step, state, (jax.random.split(k, lp.shape[0] - 1), rest))
        xs = jnp.concatenate([props[:1], xs])
        acc = jnp.concatenate([jnp.ones(1, dtype=bool), acc])
        return xs, acc

    keys = jax.random.split(key, proposals.shape[0])
    return jax.vmap(chain)(keys, proposals, log_p, log_q)


def draw_proposals(flow, params, key, theory, n_total: int, batch: int = 256):
    """n_total flow samples φ with log p = −S_E(φ) and log q(φ), in batches of ``batch`` (one compiled size)."""
    batch = min(batch, n_total)
    n_batches = -(-n_total // batch)
    phis, lps, lqs = [], [], []
    for i in range(n_batches):
        phi, log_q, _ = flow.sample(params, jax.random.fold_in(key, i), batch)
        phis.append(np.asarray(phi))
        lps.append(np.asarray(-theory.euclidean_action(phi)))
        lqs.append(np.asarray(log_q))
    return tuple(np.concatenate(x)[:n_total] for x in (phis, lps, lqs))


@SAMPLERS.register("flow")
def flow_imh(theory, key, *, n_samples: int, n_chains: int = 4, flow=None, params=None, train_steps: int = 500,
             train_batch: int = 64, model: str = "default", T: float = 1.0, batch: int = 256) -> IMHResult:
    """Independence Metropolis with a flow proposal.

    Give a trained ``flow`` and ``params``, or let this train the default flow
    (:func:`qrg.euclidean.learning.make_flow`, Carosso-M with M = 1) by reverse KL for ``train_steps`` steps.
    """
    n_samples = check_int("n_samples", n_samples, minimum=1)
    n_chains = check_int("n_chains", n_chains, minimum=1)
    k_train, k_init, k_prop, k_mh = jax.random.split(key, 4)
    train_time = 0.0
    if flow is None:
        from ..learning import make_flow, train

        flow = make_flow(theory, model=model, T=T)
        params = flow.init(k_init)
        if train_steps > 0:
            res = train(flow, params, k_train, objective="reverse_kl", n_steps=train_steps, theory=theory,
                        batch_size=train_batch, log_every=max(1, train_steps // 20))
            params, train_time = res.params, res.wall_time_s
    elif params is None:
        raise QRGInputError("flow_imh: give params together with flow")
    if flow.lattice != theory.lattice:
        raise QRGInputError("the flow's lattice differs from the theory's")
    t0 = time.perf_counter()
    phi, log_p, log_q = draw_proposals(flow, params, k_prop, theory, n_chains * n_samples, batch)
    phi = phi.reshape((n_chains, n_samples) + theory.lattice.shape)
    log_p, log_q = log_p.reshape(n_chains, n_samples), log_q.reshape(n_chains, n_samples)
    log_w = log_p - log_q
    xs, acc = independence_metropolis(k_mh, jnp.asarray(phi), jnp.asarray(log_p), jnp.asarray(log_q))
    jax.block_until_ready(xs)
    return IMHResult(np.asarray(xs), np.asarray(acc), log_w, ess_per_sample(log_w), time.perf_counter() - t0,
                     train_time)
