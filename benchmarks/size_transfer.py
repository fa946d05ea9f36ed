"""Size transfer: does a large chain started from a trained small one (``qrg solve --init-from``) reach a
given accuracy sooner than one started from scratch?

    python benchmarks/size_transfer.py [--m2 1] [--lam 6] [--n-small 16] [--n-large 128]
        [--small-run DIR] [--reference E] [--rel-errors 1e-3,3e-4,1e-4] [--steps-small 600]
        [--steps-large 600] [--window 20] [--set KEY=VALUE ...] [--out-dir DIR] [--force]

1. The small run: trains (d, N_small) with the solve options (``--set``; default model "default"), or
   takes ``--small-run DIR`` (a ``qrg solve --out`` directory; its model options are then those of
   the large runs unless ``--set`` gives them).
2. The reference energy of (d, N_large): ``--reference E``, else DMRG (``qrg.baselines`` DMRG, the
   ``qrg bench --suite full`` options local dims 8, 10 and χ = 24, 48 unless ``--dmrg-local-dims``,
   ``--dmrg-chis``; chains only). In that suite DMRG took 64 s at N = 64, m² = 1, λ = 6 (a
   2-core machine, ``benchmarks/full/results.json``); N = 128 is expected to take about twice that
   (the sweeps are linear in N at fixed χ), not measured. Squares need ``--reference``.
3. The large problem (a) from scratch and (b) with ``init_from`` = the small run, the same options
   and seed (a fresh optimiser and schedule in both); ``--transfer-set KEY=VALUE`` changes options of
   (b) only (e.g. a smaller ``lr``: Adam's first steps move every parameter by about lr, which can
   undo part of a converged start).

Measured for (a) and (b): the wall time from the call of ``qrg.solve`` (flow construction, loading
and transferring the small run, compilation included: JAX's caches are cleared before each run) to
every applied step (the solve's ``callback``) with the batch energy and its error; the running mean of
the last ``--window`` batch energies, weighted by their inverse variances (a full window is required,
for both runs alike; :func:`running_means`); for every target relative error δ the first step and
wall time at which |running mean − E_ref| ≤ δ |E_ref| (null if never); the final evaluated energy
and the per-step trace. The small run's wall time is reported too (what the transfer costs on top
when it is trained for it).

Writes ``OUT_DIR/size_transfer.json`` (machine info from ``qrg.bench.results.machine_info``) and
appends one markdown line to ``OUT_DIR/size_transfer.md`` (a header first if the file is new);
the runs go to ``OUT_DIR/small_N*``, ``OUT_DIR/scratch_N*``, ``OUT_DIR/transfer_N*``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import tomllib

import numpy as np

import qrg
from qrg.bench.results import machine_info
from qrg.groundstate import SolveConfig, load_run
from qrg.groundstate.transfer import TRANSFER_KEYS
from qrg.optim.checkpoint import atomic_write_text

FULL_SUITE_DMRG = {"local_dims": (8, 10), "chis": (24, 48), "correlations": False}


def _value(text: str):
    """A --set value as TOML would read it (numbers, true/false, quoted strings), else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _options(pairs) -> dict:
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or key not in SolveConfig.field_names():
            raise SystemExit(f"--set {pair!r}: expected KEY=VALUE with KEY a SolveConfig field")
        if key in ("d", "N", "m2", "lam", "steps"):
            raise SystemExit(f"--set {key}: use --d, --n-small/--n-large, --m2, --lam, --steps-small/--steps-large")
        out[key] = _value(value)
    return out


def running_means(energies, errors, window: int) -> np.ndarray:
    """The inverse-variance weighted mean of the last ``window`` batch energies at every step (NaN before a
    full window). The weights keep the first steps of a run, whose batches have no control-variate fit
    yet and errors 10-100x larger, from dominating the window; a batch without an error bar (0) is
    weighted like the smallest error bar of the run."""
    e, s = np.asarray(energies, dtype=float), np.asarray(errors, dtype=float)
    positive = s[s > 0]
    floor = positive.min() if positive.size else 1.0
    w = 1.0 / np.maximum(s, floor) ** 2
    out = np.full(len(e), np.nan)
    for i in range(window - 1, len(e)):
        sl = slice(i - window + 1, i + 1)
        out[i] = np.sum(w[sl] * e[sl]) / np.sum(w[sl])
    return out


def first_crossings(times, energies, errors, reference: float, rel_errors, window: int) -> dict:
    """For every δ in ``rel_errors``: the first (step index, wall time) at which the running mean of
    :func:`running_means` is within δ·|reference| of ``reference`` (None if never)."""
    mean = running_means(energies, errors, window)
    out = {}
    for delta in rel_errors:
        hit = None
        for i in range(window - 1, len(mean)):
            if abs(mean[i] - reference) <= delta * abs(reference):
                hit = {"step": i, "wall_s": float(times[i])}
                break
        out[f"{delta:g}"] = hit
    return out


def timed_solve(theory, out, options, **kw):
    """``qrg.solve`` with the wall time (since the call) and batch energy of every applied step. JAX's
    compilation caches are cleared first, so every run pays its own compilation (the second large run
    would otherwise reuse the first one's)."""
    import jax

    jax.clear_caches()
    trace = []
    t0 = time.perf_counter()
    result = qrg.solve(theory, out=out, callback=lambda rec: trace.append(
        (time.perf_counter() - t0, rec["energy"], rec["energy_err"])), **options, **kw)
    wall = time.perf_counter() - t0
    return result, wall, [list(x) for x in zip(*trace)] if trace else [[], [], []]


def summary(result, wall, trace, reference, rel_errors, window) -> dict:
    times, energies, errors = trace
    e = result.energy
    return {"wall_s": wall, "train_s": result.train_time_s, "steps": result.steps_done, "status": result.status,
            "energy": e.mean, "energy_err": e.err, "final_rel_error": abs(e.mean - reference) / abs(reference),
            "init_from": result.init_from,
            "first_step_energy": energies[0] if energies else None,
            "first_step_wall_s": times[0] if times else None,  # set-up and compilation
            "reached": first_crossings(times, energies, errors, reference, rel_errors, window),
            "trace": {"wall_s": times, "energy": energies, "energy_err": errors}}


def _reference(args, theory) -> dict:
    if args.reference is not None:
        return {"energy": args.reference, "method": "given", "error_estimate": None, "wall_s": None}
    if theory.d != 1:
        raise SystemExit("DMRG references are for chains: give --reference E for d >= 2")
    from qrg.baselines import get_baseline

    opts = dict(FULL_SUITE_DMRG)
    if args.dmrg_local_dims:
        opts["local_dims"] = tuple(int(x) for x in args.dmrg_local_dims.split(","))
    if args.dmrg_chis:
        opts["chis"] = tuple(int(x) for x in args.dmrg_chis.split(","))
    t0 = time.perf_counter()
    ref = get_baseline("dmrg").run(theory, **opts)
    return {"energy": ref.energy, "method": "dmrg", "error_estimate": ref.error_estimate,
            "wall_s": time.perf_counter() - t0, "options": {k: list(v) if isinstance(v, tuple) else v
                                                            for k, v in opts.items()}}


def _cell(run, delta) -> str:
    hit = run["reached"][delta]
    return "not reached" if hit is None else f"{hit['wall_s']:.0f} s (step {hit['step']})"


def markdown_line(data) -> str:
    s, r = data["settings"], data["runs"]
    m = data["machine"]
    reached = "; ".join(f"{d}: {_cell(r['scratch'], d)} → {_cell(r['transfer'], d)}" for d in r["scratch"]["reached"])
    small = data["small"]
    small_cost = "given" if small["wall_s"] is None else f"{small['wall_s']:.0f} s"
    return (f"| {m['date']} | {m['processor']}, {m['cpu_count']} cores | d={s['d']} N {s['n_small']}→{s['n_large']}, "
            f"m²={s['m2']:g}, λ={s['lam']:g}, {s['options'].get('model', 'default')}"
            + "".join(f", init-from run {k}={v}" for k, v in s["transfer_options"].items()) + " | "
            f"{data['reference']['energy']:.8f} ({data['reference']['method']}) | {reached} | {small_cost} | "
            f"{r['scratch']['final_rel_error']:.1e} / {r['transfer']['final_rel_error']:.1e} |")


HEADER = ("| date | machine | problem | E_ref | time to rel. error δ of the running mean: scratch → init-from | "
          "small run | final rel. error scratch / init-from |\n|---|---|---|---|---|---|---|\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=int, default=1)
    p.add_argument("--m2", type=float, default=1.0)
    p.add_argument("--lam", type=float, default=6.0)
    p.add_argument("--n-small", type=int, default=16)
    p.add_argument("--n-large", type=int, default=128)
    p.add_argument("--small-run", default=None, help="an existing qrg solve --out directory (not trained here)")
    p.add_argument("--steps-small", type=int, default=600)
    p.add_argument("--steps-large", type=int, default=600)
    p.add_argument("--reference", type=float, default=None, help="reference energy of the large problem")
    p.add_argument("--dmrg-local-dims", default=None, help="comma-separated (default 8,10)")
    p.add_argument("--dmrg-chis", default=None, help="comma-separated (default 24,48)")
    p.add_argument("--rel-errors", default="1e-3,3e-4,1e-4", help="comma-separated target relative errors")
    p.add_argument("--window", type=int, default=20, help="steps in the running mean of the batch energy")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a qrg.solve option (SolveConfig field)")
    p.add_argument("--transfer-set", action="append", metavar="KEY=VALUE",
                   help="a qrg.solve option of the --init-from run only (e.g. lr=0.001)")
    p.add_argument("--out-dir", default="benchmarks/size_transfer")
    p.add_argument("--force", action="store_true", help="replace runs the output directory already holds")
    args = p.parse_args(argv)
    options = _options(args.set)
    transfer_options = _options(args.transfer_set)
    rel_errors = [float(x) for x in args.rel_errors.split(",")]
    if args.window < 1:
        raise SystemExit("--window must be >= 1")
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    small = {"run": None, "wall_s": None}
    if args.small_run:
        src = load_run(args.small_run).config
        if src.d != args.d or src.N != args.n_small:
            raise SystemExit(f"--small-run {args.small_run} is d={src.d}, N={src.N}: pass --d {src.d} --n-small {src.N}")
        for key in TRANSFER_KEYS:  # the large runs share the small run's model options unless given
            if key not in ("d", "a") and key not in options:
                options[key] = getattr(src, key)
        options.setdefault("a", src.a)
        small["run"] = str(pathlib.Path(args.small_run).resolve())
    else:
        run_dir = out_dir / f"small_N{args.n_small}"
        theory_s = qrg.Phi4.from_params(d=args.d, N=args.n_small, a=options.get("a", 1.0), m2=args.m2, lam=args.lam)
        res, wall, _ = timed_solve(theory_s, run_dir, options, steps=args.steps_small, force=args.force)
        small.update(run=str(run_dir.resolve()), wall_s=wall, energy=res.energy.mean, energy_err=res.energy.err,
                     energy_per_site=res.energy.mean / theory_s.lattice.n_sites)
        print(f"small run N={args.n_small}: E = {res.energy.mean:.8f} ± {res.energy.err:.1g} in {wall:.0f} s",
              file=sys.stderr)

    theory = qrg.Phi4.from_params(d=args.d, N=args.n_large, a=options.get("a", 1.0), m2=args.m2, lam=args.lam)
    reference = _reference(args, theory)
    print(f"reference E = {reference['energy']:.10g} ({reference['method']})", file=sys.stderr)
    runs = {}
    for name, opts, extra in (("scratch", options, {}),
                              ("transfer", {**options, **transfer_options}, {"init_from": small["run"]})):
        res, wall, trace = timed_solve(theory, out_dir / f"{name}_N{args.n_large}", opts,
                                       steps=args.steps_large, force=args.force, **extra)
        runs[name] = summary(res, wall, trace, reference["energy"], rel_errors, args.window)
        print(f"{name}: {json.dumps(runs[name]['reached'])}, final E = {res.energy.mean:.8f} ± {res.energy.err:.1g}",
              file=sys.stderr)
    data = {"machine": machine_info(),
            "settings": {"d": args.d, "m2": args.m2, "lam": args.lam, "n_small": args.n_small, "n_large": args.n_large,
                         "steps_small": None if args.small_run else args.steps_small, "steps_large": args.steps_large,
                         "window": args.window, "rel_errors": rel_errors, "options": options,
                         "transfer_options": transfer_options},
            "reference": reference, "small": small, "runs": runs}
    atomic_write_text(out_dir / "size_transfer.json", json.dumps(data, indent=1) + "\n")
    md = out_dir / "size_transfer.md"
    line = markdown_line(data)
    atomic_write_text(md, (md.read_text() if md.exists() else HEADER) + line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
