"""``qrg rgflow``: the paper's RG-learning experiment (its Section 7: learning the RG flow of 2D
lattice φ⁴), as JSON + PNG.

    qrg rgflow --N 20 --L 1 --lam 0.0017 --m2 0.01 -2 --train-steps 1000 --out DIR

For each bare m²: NUTS draws of e^{−S_E}, the true Carosso-M / Polchinski-M flow of m_R, Z, λ_R,
max|φ| (Figure 6), two flows of the same architecture trained for the same number of Adam steps
with RG matching (paper 5.22) and reverse KL (5.5) and measured with the same estimators
(Figures 7-8), and independence Metropolis with each flow as the proposal. Writes
``DIR/section7_m2_<m2>.json``, ``DIR/fig6_m2_<m2>.png``, ``DIR/fig78_m2_<m2>.png`` and
``DIR/summary.json`` (printed). ``--quick`` starts from a small preset (N = 8, short runs).
See :mod:`qrg.euclidean.experiment`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys

from .._validation import QRGInputError

_FLAGS = (
    # (flag, attribute, type, help)
    ("--N", "N", int, "sites per side (paper 20)"),
    ("--L", "L", float, "physical size L = N a (paper 1)"),
    ("--lam", "lam", float, "quartic coupling λ (λ/4! φ⁴; paper 0.0017)"),
    ("--chains", "chains", int, "NUTS chains"),
    ("--n-warmup", "n_warmup", int, "NUTS adaptation steps per chain (paper 4000)"),
    ("--n-samples", "n_samples", int, "NUTS draws per chain"),
    ("--train-steps", "train_steps", int, "Adam steps per objective (same for both; 0: no learned flows)"),
    ("--batch", "batch", int, "training batch size (paper 64)"),
    ("--T", "T", float, "prior time of the learned flows"),
    ("--n-t", "n_t", int, "RG times on [0, T] where the flows are compared"),
    ("--n-eval", "n_eval", int, "learned-flow samples per RG time"),
    ("--n-imh", "n_imh", int, "independence-Metropolis proposals per learned flow"),
    ("--ode-steps", "ode_steps", int, "fixed ODE steps per solve (0: adaptive Tsit5 with --rtol)"),
    ("--solver", "solver", str, "ODE solver (default: rk4 for fixed steps, tsit5 for --ode-steps 0)"),
    ("--integrator", "integrator", str, "'exponential' (default: linear part in closed form) or 'plain'"),
    ("--rtol", "rtol", float, "tolerance of adaptive solves"),
    ("--lr", "lr", float, "initial Adam learning rate (paper 5e-3)"),
    ("--net-lr-scale", "kernel_lr_scale", str,
     "learning-rate factor of the kernel network's parameters: a number, 'a^d', or 'a^d/N' (default)"),
    ("--seed", "seed", int, "PRNG seed"),
)


def add_parser(sub) -> None:
    p = sub.add_parser("rgflow", help="learn the RG flow of 2D φ⁴ with (5.22) vs reverse KL (paper §7; JSON, PNG)")
    p.add_argument("--quick", action="store_true", help="small preset (N=8, short runs); other flags override it")
    p.add_argument("--m2", type=float, nargs="+", default=None, help="bare mass(es) squared (paper 0.01 -2)")
    for flag, attr, typ, help_ in _FLAGS:
        p.add_argument(flag, dest=attr, type=typ, default=None, help=help_)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=run)


def config_from_args(args):
    """A validated :class:`qrg.euclidean.experiment.ExperimentConfig` from the parsed flags."""
    from ..euclidean.experiment import ExperimentConfig

    overrides = {attr: getattr(args, attr) for _, attr, _, _ in _FLAGS if getattr(args, attr) is not None}
    if args.m2 is not None:
        overrides["m2"] = tuple(args.m2)
    scale = overrides.pop("kernel_lr_scale", None)
    defaults = ExperimentConfig.quick() if args.quick else ExperimentConfig()
    for name in ("N", "L"):
        value = overrides.get(name, getattr(defaults, name))
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise QRGInputError(f"--{name} must be > 0 (got {value})")
    if scale == "a^d":
        overrides["kernel_lr_scale"] = (overrides.get("L", defaults.L) / overrides.get("N", defaults.N)) ** 2
    elif scale not in (None, "a^d/N"):  # "a^d/N" is the config's default (None)
        try:
            overrides["kernel_lr_scale"] = float(scale)
        except ValueError:
            raise QRGInputError(f"--net-lr-scale must be a number, 'a^d' or 'a^d/N' (got {scale!r})") from None
    return dataclasses.replace(defaults, **overrides)


def run(args) -> int:
    from ..euclidean.experiment import run as run_experiment

    cfg = config_from_args(args)
    summary = run_experiment(cfg, args.out, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(json.dumps(summary, indent=2))
    return 0
