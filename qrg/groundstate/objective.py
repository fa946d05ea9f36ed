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
        hs, es = jax.lax.stop_gradient(h), jax.lax.stop_gradient(e)
        moments = (jnp.asarray(batch, dtype=e.dtype), jnp.sum(hs, axis=0), hs.T @ hs, jnp.sum(es), hs.T @ es)
        e = e - h @ cv_coef
    energy = jnp.mean(e)
    err = jnp.std(e, ddof=1) / jnp.sqrt(batch) if batch > 1 else jnp.zeros(())
    loss = energy
    rg = jnp.zeros(())
    if beta_rg > 0:
        phi_rg = phi[:rg_batch] if rg_batch <= batch else _repeat_to(phi, rg_batch)
        rg = CONSISTENCY.get(consistency, "consistency")(flow, params, jax.lax.stop_gradient(phi_rg), k_rg)
        loss = loss + beta_rg * rg
    return loss, (energy, err, rg, moments)


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

    def __call__(self, params, key, cv_coef):
        return energy_objective(self.flow, self.theory, params, key, self.batch, beta_rg=self.beta_rg,
                                rg_batch=self.rg_batch, cv_coef=cv_coef, consistency=self.consistency)

    def metrics(self, loss, aux) -> dict:
        energy, err, rg = (float(x) for x in aux[:3])
        return {"energy": energy, "energy_err": err, "loss": float(loss), "rg_loss": rg}
