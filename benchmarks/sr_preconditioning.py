"""Stochastic reconfiguration (natural-gradient) preconditioning of qrg's energy gradient: an experiment.

    python benchmarks/sr_preconditioning.py --out DIR [--mode sr|plain] [--shift EPS] [--lr LR]
        [--optimizer sgd|adam] [--steps 600] [--N 16] [--seed 1] [--init-from RUN_DIR]

Issue 15 lists SR / natural-gradient preconditioning on the flow's exact, independent samples as a
candidate against the Var(E_loc) floor of Adam. This script trains the default chain (m² = 1, λ = 6)
with ``qrg.solve`` and replaces the objective's gradient by

    δ = (S + ε 1)⁻¹ g,    S = Cov_b(O_b),    O_b = ∂_θ log Ψ_θ(φ_b) = ½ ∂_θ [log p_θ(Φ_θ(w_b)) − sg(s_b)·Φ_θ(w_b)],

with g the solver's gradient (the reparameterised energy + β·RG term, the same samples and control
variates), Φ_θ(w) the backward solve from the prior noise w, s_b its exact score and sg the stop-gradient
(the total θ-derivative of log p_θ(Φ_θ(w)) minus s·∂_θΦ is the derivative at fixed φ). O_b comes from a
per-sample ``jax.jacrev`` through the solve (two reverse passes per sample) and δ from the Woodbury form
in sample space, δ = (g − Xᵀ(XXᵀ + ε)⁻¹ X g)/ε with X = (O − Ō)/sqrt(n): an n × n solve (n = batch).
``--mode plain`` keeps g (the same per-sample code path: a check of the plumbing).
The optimiser then applies δ (``--optimizer sgd``: momentum 0.9, qrg's ``sgd``). The result is in
``DIR/result.json`` like any solve's; one JSON line with the settings, E, Var(E_loc) and times is printed.

Measured (docs/solver.md, "SR preconditioning"): worse than Adam in every setting tried.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from _gradient_experiment import add_training_args, run
from jax.flatten_util import ravel_pytree

from qrg.groundstate import objective as obj
from qrg.groundstate.estimators import ibp_energy, stein_features


def sr_value_and_grad(self, params, key, cv_coef, *, mode: str, shift: float):
    """((loss, aux), δ) for :class:`qrg.groundstate.objective.EnergyObjective` (module docstring)."""
    flow, theory, batch = self.flow, self.theory, self.batch
    k_sample, k_rg = jax.random.split(key)
    white = flow._shard(jax.random.normal(k_sample, (batch,) + flow.lattice.shape))

    def one(p, w):
        phi, log_p, s = flow.push_white(p, w[None])
        e_ibp = ibp_energy(theory, phi, s)[0]
        h = stein_features(theory.lattice, phi, s)[0]
        e = e_ibp - h @ cv_coef
        log_psi = 0.5 * (log_p[0] - jnp.sum(jax.lax.stop_gradient(s[0]) * phi[0]))
        return jnp.stack([e, log_psi]), (phi[0], e_ibp, h, e)

    jac, (phi, e_ibp, h, e) = jax.vmap(jax.jacrev(one, has_aux=True), in_axes=(None, 0))(params, white)
    # (batch, 2, P): the leaves in ravel_pytree's order (tree_leaves), each flattened per sample and output
    rows = jnp.concatenate([x.reshape(batch, 2, -1) for x in jax.tree_util.tree_leaves(jac)], axis=2)
    _, unravel = ravel_pytree(params)
    g = jnp.mean(rows[:, 0], axis=0)
    loss, rg = jnp.mean(e), jnp.zeros(())
    if self.beta_rg > 0:
        phi_rg = obj._rg_fields(phi, self.rg_batch)
        consistency_loss = obj.CONSISTENCY.get(self.consistency, "consistency")
        rg, rg_grad = jax.value_and_grad(lambda p: consistency_loss(flow, p, phi_rg, k_rg))(params)
        loss = loss + self.beta_rg * rg
        g = g + self.beta_rg * ravel_pytree(rg_grad)[0]
    if mode == "sr":
        x = (rows[:, 1] - jnp.mean(rows[:, 1], axis=0)) / jnp.sqrt(batch)
        g = (g - x.T @ jnp.linalg.solve(x @ x.T + shift * jnp.eye(batch), x @ g)) / shift
    energy, err = obj._mean_err(e)
    return (loss, (energy, err, rg, obj._cv_moments(h, e_ibp))), unravel(g)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=("sr", "plain"), default="sr")
    p.add_argument("--shift", type=float, default=1e-2, help="ε, the diagonal shift of S")
    p.add_argument("--optimizer", default="sgd")
    add_training_args(p, steps=600, lr=1e-2, lr_final=0.02)
    args = p.parse_args(argv)
    run(args, lambda self, params, key, cv: sr_value_and_grad(self, params, key, cv, mode=args.mode,
                                                              shift=args.shift), optimizer=args.optimizer)

if __name__ == "__main__":
    main()
