"""``qrg sample``: Euclidean φ⁴ sampling with every observable and its statistics, as JSON.

    qrg sample --d 2 --N 8 --m2 0.5 --lam 0 --method nuts --n-samples 1000 --chains 4 --out DIR

writes ``DIR/result.json`` (parameters, sampler diagnostics, every observable of
:mod:`qrg.observables` as {"mean", "err", "tau_int", ...}, the momentum-space G2(p) and, for the
free theory, its exact value) and ``DIR/samples.npz`` (the configurations).

Methods: the names of :data:`qrg.euclidean.samplers.SAMPLERS` — ``nuts`` / ``hmc`` (BlackJAX,
per-chain window adaptation), ``mala`` (Fourier-preconditioned Metropolis-adjusted Langevin),
``flow`` (a flow trained by reverse KL, used as the proposal of an independence Metropolis
sampler: exact, reports ESS per sample). Each sampler receives the options below that it accepts.
"""

from __future__ import annotations

import inspect
import json
import time

import jax
import numpy as np

from .._validation import QRGInputError, check_int
from . import add_theory_args, check_out_dir, theory_from_args

#: sampler keyword -> attribute of the parsed flags; passed only to samplers that accept it
_SAMPLER_OPTIONS = {"n_warmup": "n_warmup", "num_integration_steps": "n_leapfrog", "train_steps": "train_steps"}


def _samplers():
    from ..euclidean.samplers import SAMPLERS

    return SAMPLERS


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="sample the Euclidean φ⁴ theory and measure observables (JSON)")
    add_theory_args(p, defaults={"d": 2, "a": 1.0})
    # the registry is not imported here (BlackJAX takes a second to import): a wrong name lists them
    p.add_argument("--method", default="nuts",
                   help="a sampler of qrg.euclidean.samplers.SAMPLERS: nuts (default), hmc, mala, flow")
    p.add_argument("--n-samples", dest="n_samples", type=int, default=1000, help="samples per chain")
    p.add_argument("--chains", type=int, default=4, help="independent chains")
    p.add_argument("--n-warmup", dest="n_warmup", type=int, default=500, help="adaptation steps per chain")
    p.add_argument("--n-leapfrog", dest="n_leapfrog", type=int, default=16, help="HMC leapfrog steps")
    p.add_argument("--train-steps", dest="train_steps", type=int, default=500, help="flow training steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(run=run)


def draw(theory, args, key):
    """Run the sampler ``args.method`` with the options it accepts; returns (samples, summary dict)."""
    sampler = _samplers().get(args.method, "--method")
    accepted = inspect.signature(sampler).parameters
    options = {kw: getattr(args, attr) for kw, attr in _SAMPLER_OPTIONS.items() if kw in accepted}
    res = sampler(theory, key, n_samples=args.n_samples, n_chains=args.chains, **options)
    return res.samples, res.summary()


def run(args) -> int:
    theory = theory_from_args(args)
    _samplers().check("--method", args.method)
    check_int("--n-samples", args.n_samples, minimum=2)
    check_int("--chains", args.chains, minimum=1)
    check_int("--n-warmup", args.n_warmup, minimum=1)
    check_int("--seed", args.seed, minimum=0)
    out = check_out_dir(args.out)
    if theory.lattice.N < 2:
        raise QRGInputError("--N must be >= 2 for the momentum-space estimators")
    from ..observables import measure, to_json, two_point

    t0 = time.perf_counter()
    samples, info = draw(theory, args, jax.random.PRNGKey(args.seed))
    total = time.perf_counter() - t0
    lat = theory.lattice
    obs = measure(samples, lat)
    g2 = two_point(samples, lat)
    result = {
        "command": "sample",
        **theory.params(),
        "method": args.method,
        "seed": args.seed,
        "n_chains": int(samples.shape[0]),
        "n_samples": int(samples.shape[1]),
        "wall_time_s": info.get("wall_time_s", total),
        "total_time_s": total,
        "acceptance": info.get("acceptance"),
        "ess_per_sample": info.get("ess_per_sample"),
        "sampler": info,
        **to_json(obs),
        "G2": {"mean": g2["mean"].tolist(), "err": g2["err"].tolist(), "tau_int": g2["tau_int"].tolist()},
    }
    if theory.is_free:
        result["G2_exact"] = (lat.volume_element / lat.n_sites * theory.free_propagator()).tolist()
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    np.savez_compressed(out / "samples.npz", samples=samples)
    summary = {k: result[k] for k in ("method", "wall_time_s", "acceptance", "ess_per_sample")}
    summary.update({k: result[k] for k in ("phi2", "abs_m", "chi", "binder", "m_R")})
    print(json.dumps(summary, indent=2))
    return 0
