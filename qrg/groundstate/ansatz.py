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
from ..hartree import hartree_variance
from ..parallel import gather
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
        variance0 = hartree_variance(theory)
    n_steps = cfg.n_steps if n_steps is None else n_steps
    model_options = None
    if model is None and cfg.model in ("default", "kernel"):
        model_options = {"collective": cfg.collective, "growth": cfg.growth, "pair": cfg.pair, "hidden": cfg.hidden}
    return make_flow(theory.lattice, scheme=cfg.scheme, M=cfg.M, model=cfg.model if model is None else model,
                     T=cfg.T, variance0=variance0, model_options=model_options, solver=cfg.solver, n_steps=n_steps or None, rtol=cfg.rtol,
                     atol=cfg.atol, adjoint=cfg.adjoint, integrator=cfg.integrator)


def draw(flow, params, key, n: int, chunk_size: int = 512):
    """(φ, ∇ log p) of ``n`` samples of ``flow`` in chunks; chunk c starts from the prior draw of
    fold_in(key, c), so two flows of the same bridge given the same key transport the same φ_T."""
    phis, scores = [], []
    for c, start in enumerate(range(0, n, chunk_size)):
        phi, _, g = flow.sample(params, jax.random.fold_in(key, c), min(chunk_size, n - start))
        phis.append(phi)
        scores.append(g)
    return gather((jnp.concatenate(phis), jnp.concatenate(scores)))  # readable on every process


@functools.partial(jax.jit, static_argnames=("flow", "method", "n_probes"))
def flow_laplacian(flow, params, phi, key, method, n_probes):
    """Δ_φ log p_θ(φ) of the flow's forward log-density (exact or Hutchinson), forward-over-forward.

    On a sharded flow (a device ``mesh``) one tangent per pass: with several, XLA's CPU FFT (jax 0.10.2) rejects
    the layout the partitioner gives the batched tangents (a RET_CHECK in fft_thunk.cc)."""
    if flow.log_prob_adjoint != "forward":  # ForwardMode: jvp only, the cheapest for few tangents
        flow = flow.replace(log_prob_adjoint="forward")
    group = 1 if flow.mesh is not None else None
    return laplacian_fn(lambda x: flow.log_prob(params, x), flow.lattice, method, n_probes, group)(phi, key)


def laplacians(flow, params, phi, key, method: str, n_probes: int = 4, chunk_size: int = 256):
    """Δ_φ log p_θ of the batch ``phi`` in chunks of ``chunk_size`` (chunk c uses fold_in(key, c))."""
    lap = chunked_laplacians(lambda x, k: flow_laplacian(flow, params, x, k, method, n_probes), phi, key, chunk_size)
    return gather(lap)


def checked_params(params, template, name: str, what: str = "the model's parameters", hint: str = ""):
    """``params`` cast to the dtypes of ``template`` (a parameter pytree, arrays or ShapeDtypeStructs) if it has
    its tree structure and leaf shapes and finite values, else a QRGInputError naming ``name`` (``what``:
    what the template is; ``hint`` appended to the structure and shape messages)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    t_leaves, t_treedef = jax.tree_util.tree_flatten(template)
    if treedef != t_treedef:
        raise QRGInputError(f"{name} does not have the structure of {what}: got {treedef}, expected {t_treedef}{hint}")
    for i, (x, t) in enumerate(zip(leaves, t_leaves)):
        if tuple(jnp.shape(x)) != tuple(t.shape):
            raise QRGInputError(f"{name} leaf {i} has shape {tuple(jnp.shape(x))}, but {what} have {tuple(t.shape)}{hint}")
        if not bool(jnp.all(jnp.isfinite(jnp.asarray(x)))):
            raise QRGInputError(f"{name} leaf {i} has non-finite values")
    return jax.tree_util.tree_unflatten(t_treedef, [jnp.asarray(x, dtype=t.dtype) for x, t in zip(leaves, t_leaves)])
