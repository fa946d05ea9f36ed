"""A Var(E_loc) term in the training loss: an experiment (issue 15).

    python benchmarks/variance_term.py --out DIR [--kappa K] [--var-batch 16] [--laplacian exact|hutchinson]
        [--score-term] [--broaden S] [--batch 64] [--steps 300] [--lr 1e-3] [--lr-final 0.1] [--N 16]
        [--seed 1] [--init-from RUN_DIR]

qrg trains on the integrated-by-parts energy, which sees only the score ∇ log p, while the local energy
E_loc = −(½ Δ log p + ¼ |∇ log p|²)/(2a^d) + V also has the Laplacian. A state can keep its energy while
log p acquires small, rapidly varying terms that only E_loc's variance sees (docs/solver.md, "What sets
Var(E_loc)"). This script adds to the solver's loss κ times the variance of E_loc on m = ``--var-batch``
of the step's samples φ_b held fixed (stop-gradient), c = sg(mean of the E_b):

* ``--laplacian exact`` (default): (1/m) Σ_b (E_b − c)², Δ log p from the Hessian's diagonal (one
  forward-over-reverse derivative per site);
* ``--laplacian hutchinson``: (1/m) Σ_b (Ê¹_b − c)(Ê²_b − c) with Ê¹, Ê² from two independent Rademacher
  probes, an unbiased estimate of (E_b − c)² (one probe squared would add the probe variance
  2 Σ_{i≠j} H_ij², which would penalise the correlations of the ground state);
* ``--score-term``: + (1/m) Σ_b sg((E_b − c)² − mean) log p_θ(φ_b), the score-function part of the
  gradient from the θ-dependence of the samples' density (exact Laplacian only);
* ``--broaden S``: the fields from the prior noise times S (> 1 puts weight on the large-field tail; the
  fixed-sample variance vanishes at an eigenstate whatever the fields are drawn from).

Each E_b is qrg's local energy with log p_θ(φ) from the forward solve φ → T ("direct" adjoint), its
gradient in φ (reverse), Hessian-vector products (forward over that) and the θ-gradient (reverse over
all). The minimum of the term is an eigenstate (E_loc constant), and the energy term keeps the exact
reparameterised gradient. ``--kappa 0`` is the plain solver on the same code path (the control).

Result in ``DIR/result.json`` as for any solve; one JSON line with E, Var(E_loc) and times is printed.
Measured: docs/solver.md ("A Var(E_loc) term in the loss").
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from _gradient_experiment import add_training_args, run

from qrg.groundstate.estimators import local_energy


def local_energy_along(flow, theory, params, phi, tangents):
    """E_loc(φ) of one field (qrg's :func:`~qrg.groundstate.estimators.local_energy`) with Δ log p taken as
    Σ_r t_rᵀ H t_r over the rows of ``tangents``: the identity's rows give the exact Laplacian, one
    Rademacher row the single-probe Hutchinson estimate. g and H t_r by forward-over-reverse through the
    forward solve, differentiable in ``params``."""
    def log_p(x):
        return flow.log_prob(params, x[None])[0]

    g, hv = jax.vmap(lambda t: jax.jvp(jax.grad(log_p), (phi,), (t,)))(tangents)
    return local_energy(theory, phi[None], g[:1], jnp.sum(tangents * hv)[None])[0]


def variance_term(flow, theory, params, phi, key, laplacian: str = "exact", score_term: bool = False):
    """The batch variance of E_loc on the fixed fields ``phi`` (m, ...): with the exact Laplacian
    (1/m) Σ_b (E_b − c)², with Hutchinson (1/m) Σ_b (Ê¹_b − c)(Ê²_b − c) from two independent probes."""
    if laplacian == "exact":
        eye = jnp.eye(phi[0].size, dtype=phi.dtype).reshape((phi[0].size,) + phi.shape[1:])
        e = jax.vmap(lambda x: local_energy_along(flow, theory, params, x, eye))(phi)
        c = jax.lax.stop_gradient(jnp.mean(e))
        d2 = (e - c) ** 2
        if not score_term:
            return jnp.mean(d2), (e, e)
        # + the θ-dependence of the samples' density: E[(d² − mean d²) ∇θ log p_θ(φ)] (score function)
        w = jax.lax.stop_gradient(d2 - jnp.mean(d2))
        return jnp.mean(d2) + jnp.mean(w * flow.log_prob(params, phi)), (e, e)
    v = jax.random.rademacher(key, (2,) + phi.shape, dtype=phi.dtype)
    one = jax.vmap(lambda x, a: local_energy_along(flow, theory, params, x, a[None]))
    e1, e2 = one(phi, v[0]), one(phi, v[1])
    c = jax.lax.stop_gradient(0.5 * jnp.mean(e1 + e2))
    return jnp.mean((e1 - c) * (e2 - c)), (e1, e2)


def with_variance_term(self, params, key, cv_coef, *, kappa: float, var_batch: int, laplacian: str = "exact",
                       score_term: bool = False, broaden: float = 1.0):
    """((loss, aux), grads) of :class:`qrg.groundstate.objective.EnergyObjective` plus κ · the variance term."""
    (loss, aux), grads = jax.value_and_grad(lambda p: self(p, key, cv_coef), has_aux=True)(params)
    if kappa <= 0:
        return (loss, aux), grads
    # the step's own samples (same key as the objective's backward solve), held fixed
    k_sample, _ = jax.random.split(key)
    if broaden == 1.0:
        phi, _, _ = self.flow.sample(params, k_sample, self.batch)
        phi = jax.lax.stop_gradient(phi[:var_batch])
    else:  # fields from the prior noise scaled by ``broaden``: more weight on the large-field tails
        white = broaden * jax.random.normal(jax.random.fold_in(k_sample, 1), (var_batch,) + self.flow.lattice.shape)
        phi = jax.lax.stop_gradient(self.flow.push_white(params, white)[0])
    flow = self.flow.replace(log_prob_adjoint="direct")
    (var, _), var_grad = jax.value_and_grad(
        lambda p: variance_term(flow, self.theory, p, phi, jax.random.fold_in(key, 7), laplacian, score_term),
        has_aux=True)(params)
    grads = jax.tree_util.tree_map(lambda a, b: a + kappa * b, grads, var_grad)
    return (loss + kappa * var, aux), grads


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kappa", type=float, default=1.0, help="weight of the variance term (0 = off)")
    p.add_argument("--var-batch", type=int, default=16, help="samples of the step that enter the variance term")
    p.add_argument("--laplacian", choices=("exact", "hutchinson"), default="exact")
    p.add_argument("--score-term", action="store_true", help="add the score-function term of the samples' density")
    p.add_argument("--broaden", type=float, default=1.0,
                   help="variance-term fields from the prior noise times this (> 1: more large-field samples; the "
                        "fixed-sample variance vanishes at an eigenstate for any sampling distribution)")
    p.add_argument("--batch", type=int, default=64)
    add_training_args(p, steps=300, lr=1e-3, lr_final=0.1)
    args = p.parse_args(argv)
    run(args, lambda self, params, key, cv: with_variance_term(
        self, params, key, cv, kappa=args.kappa, var_batch=args.var_batch, laplacian=args.laplacian,
        score_term=args.score_term, broaden=args.broaden), batch=args.batch)

if __name__ == "__main__":
    main()
