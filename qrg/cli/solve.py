"""``qrg solve [CONFIG.toml]``: find a ground state with the learned RG-bridge flow.

Flags override the config file, which overrides the defaults (the default problem: a 1D chain
N = 16, m² = 1, λ = 6). Prints the final energy ± error and writes ``DIR/result.json``,
``DIR/history.csv``, ``DIR/energy.png`` and checkpoints to ``--out DIR``; ``--resume``
continues the run saved in DIR; ``--init-from RUN_DIR`` starts from the trained run in RUN_DIR,
on a lattice of the same d at least as large (size transfer) or the same (warm start).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from .._validation import QRGInputError
from ..flow import ADJOINTS, INTEGRATORS, SOLVERS
from ..groundstate.config import CONTROL_VARIATES, REFINE_PROPOSALS, REPORTED_ESTIMATORS, SolveConfig
from ..groundstate.estimators import LAPLACIANS
from ..models import MODELS
from ..optim import OPTIMIZERS
from ..optim.loop import rolled_back
from ..rg import SCHEMES
from . import add_theory_args

# flag -> config field (beyond --d --N --a --m2 --lam)
_FLAGS = {
    "model": dict(choices=MODELS.names(), help="score model (default: 'default')"),
    "scheme": dict(choices=SCHEMES.names(), help="RG scheme (default: carosso)"),
    "M": dict(type=float, help="scheme mass M > 0 (default 1)"),
    "T": dict(type=float, help="prior time T (default 1)"),
    "solver": dict(choices=SOLVERS.names(), help="ODE solver (default rk4)"),
    "n_steps": dict(type=int, help="fixed ODE steps in training (0 = adaptive; default 16)"),
    "eval_n_steps": dict(type=int, help="ODE steps of the final evaluation (default 32)"),
    "adjoint": dict(choices=[a for a in ADJOINTS if ADJOINTS.get(a).reverse_mode],
                    help="gradient through the ODE (default recursive)"),
    "integrator": dict(choices=INTEGRATORS.names(), help="plain or exponential (integrating factor; default plain)"),
    "steps": dict(type=int, help="optimisation steps"),
    "batch": dict(type=int, help="samples per step"),
    "seed": dict(type=int, help="PRNG seed"),
    "optimizer": dict(choices=OPTIMIZERS.names(), help="optimiser (default adam)"),
    "lr": dict(type=float, help="peak learning rate"),
    "lr_final": dict(type=float, help="final / peak learning rate of the cosine schedule"),
    "warmup": dict(type=int, help="steps of the linear warm-up of the learning rate (default 10; 100 at 8x8 "
                   "near the transition, docs/scan.md)"),
    "average": dict(type=float, help="average the parameters over this final fraction of the steps and "
                    "evaluate the average (0 = off, the default; docs/solver.md)"),
    "lr_recover": dict(type=int, help="double a learning rate halved by a rolled-back step back after this many "
                       "steps without one (0 = never, the default; docs/solver.md)"),
    "sample_clip": dict(type=float, help="clip each sample's energy gradient to this many times the batch median "
                        "norm (0 = off, the default; >= 1; docs/solver.md)"),
    "refine_steps": dict(type=int, help="after the optimisation, this many steps of stochastic reconfiguration "
                         "with the zero-variance force on importance-weighted samples (0 = off, the default; "
                         "lowers Var(E_loc) where Adam stalls; docs/solver.md, Refinement)"),
    "refine_batch": dict(type=int, help="samples per refinement step (default 128)"),
    "refine_dtau": dict(type=float, help="imaginary-time step of the refinement (default 0.1)"),
    "refine_shift": dict(type=float, help="diagonal shift of the refinement's sample-space system (default 1e-4)"),
    "refine_broaden": dict(type=float, help="prior-noise scale of the refinement samples (0 = automatic: 3 "
                           "for the site proposal, effective sample fraction 1/2 for the global one; else in [1, 10])"),
    "refine_proposal": dict(choices=REFINE_PROPOSALS, help="refinement samples: broaden one site's prior noise at "
                            "a time (site, the default) or all of it (global)"),
    "beta_rg": dict(type=float, help="weight of the RG-consistency term (default 0.1; 0 = energy only)"),
    "control_variates": dict(choices=CONTROL_VARIATES,
                             help="zero-mean Stein control variates in the training energy (default stein)"),
    "eval_batch": dict(type=int, help="samples of the final evaluation"),
    "local_batch": dict(type=int, help="samples of the final evaluation used for E_loc (default 1024)"),
    "eval_max_batch": dict(type=int, help="cap of the evaluation's growth while the tails of the energy or E_loc "
                           "are not resolved (default 0 = 2 x eval_batch; <= eval_batch = no growth)"),
    "systematic_batch": dict(type=int, help="paired samples of the ODE step-doubling error estimate "
                             "(eval_n_steps vs 2 eval_n_steps; 0 = off; default 4096)"),
    "estimator": dict(choices=REPORTED_ESTIMATORS,
                      help="reported estimator, fixed in advance (default cv); auto = smallest error bar"),
    "collective": dict(action=argparse.BooleanOptionalAction,
                       help="mean-field channel h(M, t) in the score (helps near the broken phase; default off)"),
    "growth": dict(action=argparse.BooleanOptionalAction,
                   help="φ sqrt(1 + φ²) feature in the score: the large-field growth of the exact ground state "
                        "(default on; --no-growth to resume runs made before it)"),
    "pair": dict(action=argparse.BooleanOptionalAction,
                 help="pair channel u(φ(n)) (P * q(φ))(n) in the score: two-site terms of log p (default off)"),
    "hidden": dict(type=int, help="hidden fields of the score's two-layer channel (default 0 = off)"),
    "devices": dict(type=int, help="devices the batch is sharded over (0 = all; default 0)"),
    "consistency": dict(choices=("dsm", "nll"), help="form of the RG-consistency term"),
    "rg_batch": dict(type=int, help="kernel draws (t, φ_t) per step of the RG-consistency term (default 1024; "
                     "the batch's samples reused when larger than batch)"),
    "consistency_batch": dict(type=int, help="samples per set of the RG-consistency diagnostic (0 = off)"),
    "laplacian": dict(choices=LAPLACIANS.names(), help="Δ log p for E_loc: exact / hutchinson / auto / none"),
    "checkpoint_every": dict(type=int, help="checkpoint every K steps (0 = at the end only)"),
}


def add_parser(sub) -> None:
    p = sub.add_parser("solve", help="find the ground state with a learned RG diffusion flow",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", default=None, help="TOML file with SolveConfig keys (optional)")
    add_theory_args(p)
    for name, kw in _FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=None, **kw)
    p.add_argument("--out", default=None, help="output directory (result.json, history.csv, energy.png, checkpoints)")
    p.add_argument("--resume", action="store_true", help="continue the run checkpointed in --out")
    p.add_argument("--init-from", default=None, metavar="RUN_DIR",
                   help="start from the parameters of the run in RUN_DIR (same d, a and model options; N at least "
                        "its N: size transfer, docs/solver.md; m2, lam may differ); not with --resume")
    p.add_argument("--force", action="store_true", help="replace a run that --out already holds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    add_distributed_args(p)
    p.set_defaults(run=run)


def add_distributed_args(p) -> None:
    """Multi-process flags (docs/cluster.md): every process runs the same command with its own --process-id."""
    g = p.add_argument_group("multi-process (jax.distributed)")
    g.add_argument("--distributed", action="store_true",
                   help="run as one process of a multi-process job; unset values below come from the cluster "
                        "environment (SLURM, Open MPI) or JAX_COORDINATOR_ADDRESS")
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="address of process 0 (implies --distributed)")
    g.add_argument("--num-processes", type=int, default=None, help="processes of the job (implies --distributed)")
    g.add_argument("--process-id", type=int, default=None, help="this process, 0 ... num-processes-1 (implies --distributed)")


def start_distributed(args) -> bool:
    """Start jax.distributed when the flags ask for it (before any JAX computation); True on the process
    that prints and writes (process 0, or the only process)."""
    from ..parallel import initialize_distributed, is_main_process

    if args.distributed or any(v is not None for v in (args.coordinator, args.num_processes, args.process_id)):
        initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    return is_main_process()


def resolve_config(args) -> SolveConfig:
    cfg = SolveConfig.from_toml(args.config) if args.config else SolveConfig()
    overrides = {k: getattr(args, k, None) for k in ("d", "N", "a", "m2", "lam", *_FLAGS)}
    return cfg.replace(**overrides)


def run(args) -> int:
    from ..groundstate import solve

    main = start_distributed(args)
    # the other processes of a multi-process run compute the same thing silently; process 0 reports
    say = print if main else (lambda *a, **k: None)
    cfg = resolve_config(args)
    if args.print_config:
        say(cfg.to_toml(), end="")
        return 0
    if args.resume and not args.out:
        raise QRGInputError("--resume needs --out DIR (the directory holding the checkpoint)")
    if args.resume and args.init_from:
        raise QRGInputError("--init-from cannot be combined with --resume: a resumed run continues from its checkpoint")
    out = pathlib.Path(args.out) if args.out else None
    th = cfg.theory()
    say(f"qrg solve: d={th.d} N={th.N} a={th.a:g} m2={th.m2:g} lam={th.lam:g}, model={cfg.model}, "
          f"scheme={cfg.scheme}, steps={cfg.steps}, batch={cfg.batch}", file=sys.stderr)
    from ..optim.loop import RunInterrupted

    try:
        result = solve(config=cfg, out=out, resume=args.resume, force=args.force, init_from=args.init_from,
                       progress=main and not args.no_progress)
    except RunInterrupted as stop:
        where = f"; checkpoint saved in {out}, continue with --resume" if out is not None else ""
        say(f"qrg solve: interrupted after {stop.state.step} steps{where}", file=sys.stderr)
        return 130
    if result.init_from is not None:
        src = result.init_from
        say(f"qrg solve: started from the run in {src['run']} (N={src['N']} m2={src['m2']:g} lam={src['lam']:g})",
            file=sys.stderr)
    say(result)
    rolled = rolled_back(result.events)
    if rolled:
        restores = [e["restored_step"] for e in rolled if "restored_step" in e]
        further = (f", {len(restores)} of them back to the last state before the losses left their band "
                   f"(step {', '.join(map(str, restores))})") if restores else ""
        say(f"qrg solve: {len(rolled)} step(s) rolled back (non-finite or runaway loss; learning rate "
              f"lowered{further}); status: {result.status}", file=sys.stderr)
    drifts = [e for e in result.events if "drifted" in e["event"] and "restored_step" in e]
    if drifts:
        say(f"qrg solve: the batch losses drifted up {len(drifts)} time(s) (at step "
            f"{', '.join(str(e['step']) for e in drifts)}): the state of step "
            f"{', '.join(str(e['restored_step']) for e in drifts)} restored, learning rate halved; "
            f"status: {result.status}", file=sys.stderr)
    if result.refine is not None:
        r = result.refine
        first, last = r["first"] or {}, r["last"] or {}
        say(f"qrg solve: refined {r['steps']} SR step(s) of {r['batch']} samples ({r.get('proposal', 'global')} "
            f"proposal, tau = {r['tau']:.3g}): weighted batch Var(E_loc) {first.get('variance', float('nan')):.3g} -> "
            f"{last.get('variance', float('nan')):.3g} in {r['time_s']:.0f} s; status: {r['status']}", file=sys.stderr)
        if r.get("recoveries"):
            say(f"qrg solve: the refinement blew up {r['recoveries']} time(s) (non-finite, runaway or exploding batch "
                f"variance): rolled back to its lowest-variance parameters, dtau halved to {r['dtau_final']:.3g}",
                file=sys.stderr)
        if r["status"] == "nonfinite":
            why = (r["last"] or {}).get("stopped", "a non-finite local energy or update")
            kept = "its starting parameters are" if r.get("best_step") is None else \
                f"the parameters of its lowest-variance batch (step {r['best_step']}) are"
            say(f"qrg solve: the refinement stopped at step {r['steps']} ({why}); {kept} evaluated; lower --refine-dtau",
                file=sys.stderr)
    if out is not None:
        say(f"wrote {out / 'result.json'}, {out / 'history.csv'}, {out / 'energy.png'}", file=sys.stderr)
    else:
        say(json.dumps({k: result.to_json()[k] for k in ("energy", "energy_err", "variance", "reference")}))
    if result.status != "completed":
        why = result.events[-1]["event"] if result.events else "no step succeeded"
        say(f"qrg solve: the optimisation {result.status} ({why}): the numbers above are those of the last "
            "good state; lower --lr", file=sys.stderr)
        return 3
    return 0

