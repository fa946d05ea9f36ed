"""The variational ansatz Ψ_θ = p_θ^{1/2} of a solve: its flow, samples, scores and Laplacians.

p_θ is the t = 0 marginal of the probability flow (:class:`~qrg.flow.ProbabilityFlow`) that a
:class:`~qrg.groundstate.config.SolveConfig` describes; one backward solve gives samples with
their exact scores, and Δ_φ log p_θ comes from the forward log-density solve (forward over
forward mode, exact per site or Hutchinson).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .._validation import QRGInputError
from ..flow import make_flow
import math

import numpy as np
from .estimators import chunked_laplacians, laplacian_fn


def build_flow(theory, cfg, model=None, *, n_steps: int | None = None):
    """The :class:`~qrg.flow.ProbabilityFlow` (scheme, score model, solver) of config ``cfg``.

    ``model``: a ready ScoreModel (its scheme must be the config's) or None to build ``cfg.model``
    with C_0 from ``cfg.init`` ("hartree": the self-consistent Gaussian state; "default": the
    model's own). ``n_steps`` overrides ``cfg.n_steps`` (0 = adaptive).
    """
    if model is None and cfg.model == "custom":
        raise QRGInputError("model = 'custom' needs a ready ScoreModel (qrg.solve(..., model=...))")
    variance0 = None
    if model is None and cfg.init == "hartree":
        variance0 = _hartree_variance_bisection(theory)
    n_steps = cfg.n_steps if n_steps is None else n_steps
    return make_flow(theory.lattice, scheme=cfg.scheme, M=cfg.M, model=cfg.model if model is None else model,
                     T=cfg.T, variance0=variance0, solver=cfg.solver, n_steps=n_steps or None, rtol=cfg.rtol,
                     atol=cfg.atol, adjoint=cfg.adjoint, integrator=cfg.integrator)


def draw(flow, params, key, n: int, chunk_size: int = 512):
    """(φ, ∇ log p) of ``n`` samples of ``flow`` in chunks; chunk c starts from the prior draw of
    fold_in(key, c), so two flows of the same bridge given the same key transport the same φ_T."""
    phis, scores = [], []
    for c, start in enumerate(range(0, n, chunk_size)):
        phi, _, g = flow.sample(params, jax.random.fold_in(key, c), min(chunk_size, n - start))
        phis.append(phi)
        scores.append(g)
    return jnp.concatenate(phis), jnp.concatenate(scores)


@functools.partial(jax.jit, static_argnames=("flow", "method", "n_probes"))
def flow_laplacian(flow, params, phi, key, method, n_probes):
    """Δ_φ log p_θ(φ) of the flow's forward log-density (exact or Hutchinson), forward-over-forward."""
    if flow.log_prob_adjoint != "forward":  # ForwardMode: jvp only, the cheapest for few tangents
        flow = flow.replace(log_prob_adjoint="forward")
    return laplacian_fn(lambda x: flow.log_prob(params, x), flow.lattice, method, n_probes)(phi, key)


def laplacians(flow, params, phi, key, method: str, n_probes: int = 4, chunk_size: int = 256):
    """Δ_φ log p_θ of the batch ``phi`` in chunks of ``chunk_size`` (chunk c uses fold_in(key, c))."""
    return chunked_laplacians(lambda x, k: flow_laplacian(flow, params, x, k, method, n_probes), phi, key, chunk_size)


def _hartree_variance_bisection(  # TEMPORARY: old implementation, for the refactor fingerprint
    theory, *, max_iter: int = 200, tol: float = 1e-13):
    """Covariance eigenvalues of the best symmetric Gaussian (self-consistent Hartree) state.

    For |Ψ|² = N(0, C) the energy is Σ_k [1/(8a^d c_k) + ½ a^d (p̂² + m²) c_k] + a^d N^d (λ/8) <φ²>²,
    minimised by c_k = 1/(2 a^d sqrt(p̂² + μ²)) with the self-consistent mass μ² = m² + (λ/2) <φ²>,
    <φ²> = N^-d Σ_k c_k(μ²). F(μ²) = m² + (λ/2)<φ²>(μ²) − μ² is strictly decreasing, and on a
    finite lattice the zero mode makes <φ²> → ∞ as μ² → 0⁺, so for λ > 0 there is exactly one
    root μ² > 0 even in the double well (m² < 0), where the state is wide in the magnetisation;
    it is found by bisection on log μ². At λ = 0 it is the free ground state (μ² = m² > 0).
    Returns None only if no root is bracketed within ``max_iter`` doublings (not expected).
    """
    lat = theory.lattice
    ad = lat.volume_element
    p2 = np.asarray(lat.phat2)

    def variance(mu2):
        return 1.0 / (2.0 * ad * np.sqrt(p2 + mu2))

    def excess(mu2):  # F(μ²), strictly decreasing
        return theory.m2 + 0.5 * theory.lam * float(np.mean(variance(mu2))) - mu2

    if theory.lam == 0:
        return variance(theory.m2) if theory.m2 > 0 else None
    lo = hi = max(theory.m2, 1.0)
    for _ in range(max_iter):  # bracket the root: F(lo) > 0 > F(hi)
        if excess(lo) > 0:
            break
        lo *= 0.5
    else:
        return None
    for _ in range(max_iter):
        if excess(hi) < 0:
            break
        hi *= 2.0
    else:
        return None
    for _ in range(max_iter):
        mid = math.sqrt(lo * hi)
        if excess(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= tol * hi:
            break
    return variance(math.sqrt(lo * hi))
