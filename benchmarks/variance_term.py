"""A Var(E_loc) term in the training loss: an experiment (issue 15).

    python benchmarks/variance_term.py --out DIR [--kappa K] [--var-batch 16] [--steps 300]
        [--lr 1e-3] [--lr-final 0.1] [--N 16] [--seed 1] [--init-from RUN_DIR]

qrg trains on the integrated-by-parts energy, which sees only the score ∇ log p, while the local energy
E_loc = −(½ Δ log p + ¼ |∇ log p|²)/(2a^d) + V also has the Laplacian. A state can keep its energy while
log p acquires small, rapidly varying terms that only E_loc's variance sees (docs/solver.md, "What sets
Var(E_loc)"). This script adds to the solver's loss

    κ · (1/m) Σ_b (Ê¹_b − c)(Ê²_b − c),    c = sg(mean of the Ê),

on m = ``--var-batch`` of the step's samples φ_b held fixed (stop-gradient): Ê¹, Ê² are E_loc(φ_b) with
the Laplacian from two independent Rademacher probes (Hutchinson), so that the product is an unbiased
estimate of (E_loc − c)² (one probe squared would add the probe variance 2 Σ_{i≠j} H_ij², which would
penalise the correlations of the ground state). Each Ê is log p_θ(φ) from the forward solve φ → T
("direct" adjoint), its gradient in φ (reverse), a Hessian-vector product (forward over that) and the
θ-gradient (reverse over all). The fixed-sample gradient ignores the θ-dependence of the samples; the
minimum of the term is still an eigenstate (E_loc constant), and the energy term keeps the exact
reparameterised gradient. ``--kappa 0`` is the plain solver on the same code path (the control).

Result in ``DIR/result.json`` as for any solve; one JSON line with E, Var(E_loc) and times is printed.
Measured: docs/solver.md ("A Var(E_loc) term in the loss").
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from _gradient_experiment import add_training_args, run


def local_energy_probe(flow, theory, params, phi, v):
    """E_loc(φ) of one field with Δ log p replaced by the single-probe estimate vᵀHv."""
    def log_p(x):
        return flow.log_prob(params, x[None])[0]

    g, hv = jax.jvp(jax.grad(log_p), (phi,), (v,))
    lat = theory.lattice
    kinetic = -(0.5 * jnp.sum(v * hv) + 0.25 * jnp.sum(g**2)) / (2.0 * lat.volume_element)
    return kinetic + theory.potential(phi[None])[0]


def local_energy_exact(flow, theory, params, phi):
    """E_loc(φ) of one field with the exact Laplacian (the Hessian's diagonal: one forward-over-reverse
    derivative per site, vectorised)."""
    def log_p(x):
        return flow.log_prob(params, x[None])[0]

    eye = jnp.eye(phi.size, dtype=phi.dtype).reshape((phi.size,) + phi.shape)
    g, hv = jax.vmap(lambda e: jax.jvp(jax.grad(log_p), (phi,), (e,)))(eye)
    lap = jnp.sum(eye * hv)
    kinetic = -(0.5 * lap + 0.25 * jnp.sum(g[0] ** 2)) / (2.0 * theory.lattice.volume_element)
    return kinetic + theory.potential(phi[None])[0]


def variance_term(flow, theory, params, phi, key, laplacian: str = "exact", score_term: bool = False):
    """The batch variance of E_loc on the fixed fields ``phi`` (m, ...): with the exact Laplacian
    (1/m) Σ_b (E_b − c)², with Hutchinson (1/m) Σ_b (Ê¹_b − c)(Ê²_b − c) from two independent probes."""
    if laplacian == "exact":
        e = jax.vmap(lambda x: local_energy_exact(flow, theory, params, x))(phi)
        c = jax.lax.stop_gradient(jnp.mean(e))
        d2 = (e - c) ** 2
        if not score_term:
            return jnp.mean(d2), (e, e)
        # + the θ-dependence of the samples' density: E[(d² − mean d²) ∇θ log p_θ(φ)] (score function)
        w = jax.lax.stop_gradient(d2 - jnp.mean(d2))
        return jnp.mean(d2) + jnp.mean(w * flow.log_prob(params, phi)), (e, e)
    v = jax.random.rademacher(key, (2,) + phi.shape, dtype=phi.dtype)
    one = jax.vmap(lambda x, a: local_energy_probe(flow, theory, params, x, a))
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
