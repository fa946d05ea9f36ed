"""Shared driver of the training-gradient experiments (``sr_preconditioning.py``, ``variance_term.py``).

Each replaces :meth:`qrg.groundstate.objective.EnergyObjective.value_and_grad` by its own
``(self, params, key, cv_coef) -> ((loss, aux), grads)`` and trains the default chain (m² = 1, λ = 6)
with ``qrg.solve``, evaluated on 8192 samples (E_loc on 4096) so that runs share their evaluation draws.
"""

from __future__ import annotations

import json
import time

import qrg
from qrg.groundstate import objective as obj


def add_training_args(p, *, steps: int, lr: float, lr_final: float) -> None:
    """The options common to the experiments (training length and schedule, chain, seed, start, output)."""
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--lr-final", type=float, default=lr_final)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--N", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--init-from", default=None, help="a qrg solve --out directory to start from")
    p.add_argument("--out", required=True)


def run(args, value_and_grad, **solve_options):
    """Train with ``value_and_grad`` in place of the objective's; print one JSON line; return the result."""
    obj.EnergyObjective.value_and_grad = value_and_grad
    t0 = time.time()
    res = qrg.solve(qrg.Phi4.chain(args.N, 1.0, 6.0), steps=args.steps, seed=args.seed, lr=args.lr,
                    lr_final=args.lr_final, warmup=args.warmup, init_from=args.init_from,
                    eval_batch=8192, local_batch=4096, eval_max_batch=8192, out=args.out, force=True, **solve_options)
    print(json.dumps({"args": vars(args), "E": res.energy.mean, "err": res.energy.err, "var": res.variance,
                      "var_err": res.variance_err, "train_time": res.train_time_s, "wall": time.time() - t0}))
    return res
