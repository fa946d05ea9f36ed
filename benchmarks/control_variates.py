"""Variance of the energy estimators on a trained state: plain ibp vs Stein control variates.

    python benchmarks/control_variates.py RUN_DIR [--n 16384] [--n-steps 32]

RUN_DIR is the ``--out`` directory of a ``qrg solve`` run (its checkpoint). Draws ``--n`` fresh
samples, and prints Var(e_ibp), Var(e_cv) with the quadratic features only, with the local
(quadratic and quartic) ones, and with all features of ``qrg.groundstate.estimators.stein_features`` (adding the
collective S = Σφ ones), with the cross-fitted estimates ± errors.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import qrg  # noqa: F401  (float64)
from qrg.groundstate import load_run
from qrg.groundstate.estimators import control_variate_energy, ibp_energy, stein_features


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=16384)
    p.add_argument("--n-steps", type=int, default=32, help="ODE steps of the sampling solve")
    p.add_argument("--seed", type=int, default=10)
    args = p.parse_args(argv)
    run = load_run(args.run_dir, n_steps=args.n_steps)
    theory, flow, params = run.theory, run.flow, run.params
    phis, scores = [], []
    for i, start in enumerate(range(0, args.n, 4096)):
        phi, _, g = flow.sample(params, jax.random.PRNGKey(args.seed + i), min(4096, args.n - start))
        phis.append(phi)
        scores.append(g)
    phi, g = jnp.concatenate(phis), jnp.concatenate(scores)
    e = np.asarray(ibp_energy(theory, phi, g))
    print(f"{theory.params()}: {args.n} samples, {args.n_steps} ODE steps")
    print(f"  ibp             : E = {e.mean():.8f} ± {e.std(ddof=1) / np.sqrt(e.size):.2g}   Var = {e.var(ddof=1):.3g}")
    for label, kw in (("cv quadratic", {"quartic": False}), ("cv local", {"collective": False}),
                      ("cv all features", {})):
        h = np.asarray(stein_features(theory.lattice, phi, g, **kw))
        st = control_variate_energy(e, h)
        print(f"  {label:16s}: E = {st.mean:.8f} ± {st.err:.2g}   Var = {st.variance:.3g}   ({h.shape[1]} features)")


if __name__ == "__main__":
    main()
