"""The training objective of the ground-state solver (paper Section 6.3, design §3.3–§3.4).

One backward augmented solve gives samples φ_0 ~ p_θ with their exact scores g = ∇_φ log p_θ(φ_0),
and the energy is minimised through the integrated-by-parts estimator

    L(θ) = E_{ε}[ |g_θ(φ_0(ε))|² / (8 a^d) + V(φ_0(ε)) ] (+ β L_RG(θ)),    φ_T = C_T^{1/2} ε,

differentiated by reparameterisation through the ODE solve (the adjoint of the solve is the
flow's: discretise-then-optimise or backsolve). With Stein control-variate coefficients c (fitted
on earlier batches, :class:`~qrg.groundstate.estimators.ControlVariateFit`) the per-sample energy is
e_ibp − Σ_j c_j h_j: same mean and gradient, far smaller variance.

L_RG is the RG-consistency term of design §3.4 (``CONSISTENCY``, by name). Both forms draw
t ~ U(t_min, T), push the model's own samples (stop-gradient on φ_0) through the exact kernel
(paper 5.19) to φ_t, and are minimal, at fixed p_θ,0, when p_θ,t is the true RG flow of p_θ,0:

* ``"dsm"``: denoising score matching (paper 5.23),
  L_RG = E λ(t) |s_θ(φ_t, t) − ∇ log p(φ_t|φ_0)|² / N^d, λ(t) = mean_k Σ_k(t) (each term O(1) at
  every t); only score evaluations, no ODE solve;
* ``"nll"``: the paper's inner loop (6.3), the negative log-likelihood L_RG = −E log p_θ,t(φ_t)/N^d
  by the forward solve t → T (the forward KL to the flowed ground state, up to its entropy).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from ..registry import Registry
from .estimators import ibp_energy, stein_features

#: RG-consistency objectives by name: ``(flow, params, phi0, key) -> scalar loss``
CONSISTENCY: Registry = Registry("RG-consistency objective")


def _kernel_times(flow, key, n: int, t_min_fraction: float):
    """n times in [t_min, T], stratified: one uniform draw in each of n equal sub-intervals, in a
    random order (the same marginal U(t_min, T) per entry, lower variance of the batch mean)."""
    t_min = t_min_fraction * flow.T
    k_u, k_perm = jax.random.split(key)
    u = (jnp.arange(n) + jax.random.uniform(k_u, (n,))) / n
    return t_min + (flow.T - t_min) * jax.random.permutation(k_perm, u)


def _repeat_to(phi0, n: int):
    """``n`` rows from the batch ``phi0``: each sample reused ceil(n / len) times (independent kernel
    draws of one φ_0 are cheap: the score-matching noise, not the φ_0 draw, dominates the variance)."""
    reps = -(-n // phi0.shape[0])
    return jnp.tile(phi0, (reps,) + (1,) * (phi0.ndim - 1))[:n]


@CONSISTENCY.register("dsm")
def rg_consistency_loss(flow, params, phi0, key, t_min_fraction: float = 1e-3):
    """Denoising score matching of s_θ on the exact RG kernel from the samples ``phi0`` (design §3.4).

    Returns the batch mean of λ(t)|s_θ(φ_t, t) − ∇ log p(φ_t|φ_0)|² / N^d, λ(t) = mean_k Σ_k(t).
    ``phi0`` should carry ``stop_gradient``: only the score is fitted.
    """
    scheme, lat = flow.scheme, flow.lattice
    n = phi0.shape[0]
    k_t, k_noise = jax.random.split(key)
    t = _kernel_times(flow, k_t, n, t_min_fraction)
    keys = jax.random.split(k_noise, n)

    def one(p0, s, k):
        phi_t = scheme.sample_transition(k, p0, s)
        target = scheme.transition_score(phi_t, p0, s)
        score = flow.model.apply(params, phi_t, s, method="score")
        weight = jnp.mean(scheme.kernel_variance(s))
        return weight * jnp.sum((score - target) ** 2) / lat.n_sites

    return jnp.mean(jax.vmap(one)(phi0, t, keys))


@CONSISTENCY.register("nll")
def rg_likelihood_loss(flow, params, phi0, key, t_min_fraction: float = 1e-3):
    """−E log p_θ,t(φ_t) / N^d with φ_t = the exact kernel applied to ``phi0`` (stop-gradient) at t ~ U."""
    n = phi0.shape[0]
    k_t, k_noise = jax.random.split(key)
    t = _kernel_times(flow, k_t, n, t_min_fraction)
    phi_t = jax.vmap(lambda p0, s, k: flow.scheme.sample_transition(k, p0, s))(phi0, t, jax.random.split(k_noise, n))
    trainable = flow if flow.log_prob_adjoint == "recursive" else flow.replace(log_prob_adjoint="recursive")
    return -jnp.mean(trainable.log_prob(params, jax.lax.stop_gradient(phi_t), t)) / flow.lattice.n_sites


def energy_objective(flow, theory, params, key, batch: int, *, beta_rg: float = 0.0, rg_batch: int = 64,
                     cv_coef=None, consistency: str = "dsm"):
    """The training loss and its diagnostics for one batch: (loss, (energy, energy_err, rg_loss, moments)).

    loss = mean_b e(φ_0^b) + β L_RG with φ_0^b, g^b from one backward solve of ``flow``
    (reparameterised in the prior noise drawn from ``key``) and e = e_ibp = |g|²/(8a^d) + V, or,
    with ``cv_coef`` c (constants), e = e_ibp − Σ_j c_j h_j with the Stein features h_j of
    :func:`qrg.groundstate.estimators.stein_features` (zero mean under p_θ for every θ, so the mean and its
    gradient are unchanged while the variance drops by orders of magnitude). Its ``jax.grad`` in
    ``params`` is the reparameterisation gradient of the variational energy. ``moments``
    (stop-gradient; None without ``cv_coef``) are the batch sums (n, Σh, Σhhᵀ, Σe_ibp, Σ e_ibp h)
    from which the coefficients of later steps are fitted.
    """
    k_sample, k_rg = jax.random.split(key)
    phi, _, g = flow.sample(params, k_sample, batch)
    e = ibp_energy(theory, phi, g)
    moments = None
    if cv_coef is not None:
        h = stein_features(theory.lattice, phi, g)
        moments = _cv_moments(jax.lax.stop_gradient(h), jax.lax.stop_gradient(e))
        e = e - h @ cv_coef
    energy, err = _mean_err(e)
    loss = energy
    rg = jnp.zeros(())
    if beta_rg > 0:
        rg = CONSISTENCY.get(consistency, "consistency")(flow, params, _rg_fields(phi, rg_batch), k_rg)
        loss = loss + beta_rg * rg
    return loss, (energy, err, rg, moments)


def _cv_moments(h, e_ibp):
    """The batch sums (n, Σh, Σhhᵀ, Σe_ibp, Σe_ibp h) the control-variate fit accumulates."""
    return (jnp.asarray(h.shape[0], dtype=e_ibp.dtype), jnp.sum(h, axis=0), h.T @ h, jnp.sum(e_ibp), h.T @ e_ibp)


def _mean_err(e):
    n = e.shape[0]
    return jnp.mean(e), (jnp.std(e, ddof=1) / jnp.sqrt(n) if n > 1 else jnp.zeros(()))


def _rg_fields(phi, rg_batch: int):
    """``rg_batch`` stop-gradient fields φ_0 for the RG-consistency term from the batch ``phi``."""
    return jax.lax.stop_gradient(phi[:rg_batch] if rg_batch <= phi.shape[0] else _repeat_to(phi, rg_batch))


def clipped_energy_value_and_grad(flow, theory, params, key, batch: int, sample_clip: float, *,
                                  beta_rg: float = 0.0, rg_batch: int = 64, cv_coef=None, consistency: str = "dsm"):
    """:func:`energy_objective` and its gradient with every per-sample energy gradient clipped.

    The batch gradient is (1/n) Σ_b w_b ∇_θ e_b with w_b = min(1, c·median_b' |∇e_b'| / |∇e_b|),
    c = ``sample_clip``: a sample whose gradient norm exceeds c times the batch median contributes only
    c times the median norm, in its own direction. The energy gradient of a broken-phase run is heavy-
    tailed (batch gradients 10³× the median, docs/scan.md); one such sample sets the direction of a
    whole Adam step, where global-norm clipping only rescales it. Samples are the same draws as
    :func:`energy_objective` (the prior noise of ``key``), so with no sample clipped the gradient is its
    gradient; the clipped one is biased (towards ignoring rare large-gradient samples). The
    RG-consistency term's gradient is added unclipped. Returns ((loss, aux), grads) with aux as
    :func:`energy_objective`'s plus the fraction of samples clipped. Measured on the N = 32 broken phase
    it is harmful (the energy drifts up as the clipped share grows; docs/scan.md): off by default.
    """
    k_sample, k_rg = jax.random.split(key)
    white = flow._shard(jax.random.normal(k_sample, (batch,) + flow.lattice.shape))

    def one(p, w):
        phi, _, g = flow.push_white(p, w[None])
        e_ibp = ibp_energy(theory, phi, g)[0]
        if cv_coef is None:
            return e_ibp, (phi[0], e_ibp, jnp.zeros(0))
        h = stein_features(theory.lattice, phi, g)[0]
        return e_ibp - h @ cv_coef, (phi[0], e_ibp, h)

    (e, (phi, e_ibp, h)), grads = jax.vmap(jax.value_and_grad(one, has_aux=True), in_axes=(None, 0))(params, white)
    norms = jax.vmap(optax.tree.norm)(grads)
    limit = sample_clip * jnp.median(norms)
    weights = jnp.minimum(1.0, limit / jnp.maximum(norms, jnp.finfo(norms.dtype).tiny))
    grad = jax.tree_util.tree_map(lambda g: (jnp.tensordot(weights, g, axes=1) / batch).astype(g.dtype), grads)
    moments = None if cv_coef is None else _cv_moments(h, e_ibp)
    energy, err = _mean_err(e)
    loss, rg = energy, jnp.zeros(())
    if beta_rg > 0:
        phi_rg = _rg_fields(phi, rg_batch)
        consistency_loss = CONSISTENCY.get(consistency, "consistency")
        rg, rg_grad = jax.value_and_grad(lambda p: consistency_loss(flow, p, phi_rg, k_rg))(params)
        loss = loss + beta_rg * rg
        grad = jax.tree_util.tree_map(lambda a, b: a + beta_rg * b, grad, rg_grad)
    return (loss, (energy, err, rg, moments, jnp.mean(weights < 1.0))), grad


@dataclasses.dataclass(frozen=True)
class EnergyObjective:
    """The solver's loss as a hashable callable for :func:`qrg.optim.loop.run`:
    ``(params, key, cv_coef) -> (loss, (energy, energy_err, rg_loss, moments))``."""

    flow: object
    theory: object
    batch: int
    beta_rg: float = 0.0
    rg_batch: int = 64
    consistency: str = "dsm"
    sample_clip: float = 0.0

    def __call__(self, params, key, cv_coef):
        return energy_objective(self.flow, self.theory, params, key, self.batch, beta_rg=self.beta_rg,
                                rg_batch=self.rg_batch, cv_coef=cv_coef, consistency=self.consistency)

    def value_and_grad(self, params, key, cv_coef):
        """((loss, aux), grads) for the training step: ``jax.value_and_grad`` of the loss, or with
        ``sample_clip`` > 0 the per-sample clipped gradient of :func:`clipped_energy_value_and_grad`."""
        if self.sample_clip > 0:
            return clipped_energy_value_and_grad(self.flow, self.theory, params, key, self.batch, self.sample_clip,
                                                 beta_rg=self.beta_rg, rg_batch=self.rg_batch, cv_coef=cv_coef,
                                                 consistency=self.consistency)
        return jax.value_and_grad(lambda p: self(p, key, cv_coef), has_aux=True)(params)

    def metrics(self, loss, aux) -> dict:
        energy, err, rg = (float(x) for x in aux[:3])
        out = {"energy": energy, "energy_err": err, "loss": float(loss), "rg_loss": rg}
        if len(aux) > 4:
            out["clipped"] = float(aux[4])
        return out
