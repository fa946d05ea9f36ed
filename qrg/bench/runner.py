"""Running a suite: every method on every problem, one results file rewritten after each problem
(so a long run can be resumed), failures recorded rather than raised.

Methods: ``"reference"`` (the suite's most trusted baseline that applies: exact > ED > DMRG),
``"qrg"`` (:func:`qrg.solve`), and any baseline of :data:`qrg.baselines.BASELINES` by name.
Squares with λ > 0 have no reference: the comparison is then variational (the lowest energy within
its error bar wins) and ``delta_vs_best`` is reported instead of a relative error.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
import traceback

from .._validation import QRGInputError
from ..baselines import Reference, get_baseline
from ..theory import Phi4
from .analysis import annotate, equal_time_ratios, fit_scaling, is_reference, steady_time_per_iter
from .report import make_plots, markdown_table
from .results import RunState, load_partial, machine_info, reference_of, suite_method, write_results
from .suites import METHODS, Suite, check_methods, get_suite, problem_label, select_problems


# ---------------------------------------------------------------------------- one method
def run_reference(theory, suite: Suite) -> Reference | None:
    """The first of ``suite.references`` that applies to ``theory`` within the suite's limits, run; or None."""
    for name in suite.references:
        baseline, options = get_baseline(name, "references"), suite.options(name)
        if suite.skip_reason(name, theory) is None and baseline.applies(theory, **options):
            return baseline.run(theory, **options)
    return None


def run_qrg(theory, options: dict, seed: int) -> dict:
    from qrg import solve

    res = solve(theory, seed=seed, progress=False, **options)
    out = res.to_json()
    hist = [(float(r["time"]), float(r["energy"])) for r in res.history]
    return {
        "method": "qrg",
        "energy": out["energy"],
        "energy_err": out["energy_err"],
        "energy_sys": out["energy_sys"],
        "estimator": out["estimator"],
        "variance": out["variance"],
        "wall_time_s": out["wall_time_s"],
        "time_per_iter_s": steady_time_per_iter(hist, out["time_per_step_s"]),
        "n_iter": out["steps"],
        "n_params": out["n_params"],
        "status": out["status"],
        "history": hist,
    }


def record_of(ref: Reference) -> dict:
    """A bench record from a baseline's result: its JSON without the correlation function, the
    training history cut to ``(seconds, energy)`` and the steady time per iteration."""
    rec = {k: v for k, v in ref.to_json().items() if k != "correlation"}
    if "history" in rec:
        rec["time_per_iter_s"] = steady_time_per_iter(rec["history"], rec.get("time_per_iter_s"))
        rec["history"] = [(h[0], h[1]) for h in rec["history"]]
    return rec


def run_baseline(name: str, theory, options: dict, seed: int, time_budget_s=None) -> dict:
    """Run the registered baseline ``name`` (``seed`` and ``time_budget_s`` go to those that take them)."""
    baseline = get_baseline(name, "methods")
    opts = dict(options)
    extra = {"seed": seed, "time_budget_s": time_budget_s}
    opts.update({k: v for k, v in extra.items() if v is not None and k in baseline.option_names()})
    return record_of(baseline.run(theory, **opts))


def run_netket(theory, ansatz: str, options: dict, seed: int, time_budget_s=None) -> dict:
    """``run_baseline(f"netket-{ansatz}", ...)`` (kept for the recipes in BENCHMARKS.md)."""
    return run_baseline(f"netket-{ansatz}", theory, options, seed, time_budget_s)


def _safe(fn, *args, **kwargs):
    """Run one method; a failure is recorded (with its message), not hidden, and does not stop the suite."""
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - recorded in the results
        where = traceback.extract_tb(err.__traceback__)[-1]
        return {"error": f"{type(err).__name__}: {err} (at {where.filename}:{where.lineno})",
                "wall_time_s": time.perf_counter() - t0}


# ---------------------------------------------------------------------------- one problem
@dataclasses.dataclass
class _Problem:
    """One problem while its methods run: the reference and qrg's wall time so far."""

    theory: Phi4
    base: dict  # problem, d, N, m2, lam, sites: the start of every record
    suite: Suite
    seed: int
    log: object
    reference: dict | None = None
    qrg_wall_s: float | None = None


def _step_reference(p: _Problem) -> dict | None:
    res = _safe(run_reference, p.theory, p.suite)
    if res is None:
        return None
    if isinstance(res, dict):  # failed
        p.reference = None
        return {**p.base, "method": "reference", **res}
    p.reference = {"energy": res.energy, "error_estimate": res.error_estimate}
    p.log(f"    reference {res.method}: {res.energy:.12g} ± {res.error_estimate:.2g}")
    return {**p.base, **record_of(res), "method": f"reference:{res.method}"}


def _step_qrg(p: _Problem) -> dict:
    rec = {**p.base, "method": "qrg", **_safe(run_qrg, p.theory, p.suite.options("qrg"), p.seed)}
    if "energy" in rec:
        p.qrg_wall_s = rec["wall_time_s"]
    return rec


def _step_baseline(p: _Problem, name: str) -> dict | None:
    reason = p.suite.skip_reason(name, p.theory) or get_baseline(name).why_not(p.theory, **p.suite.options(name))
    if reason is not None:
        p.log(f"    {name:16s} not run: {reason}")
        return None
    budget = p.qrg_wall_s if name in p.suite.equal_time else None
    return {**p.base, "method": name,
            **_safe(run_baseline, name, p.theory, p.suite.options(name), p.seed, time_budget_s=budget)}


_STEPS = {"reference": _step_reference, "qrg": _step_qrg}


def _run_problem(p: _Problem, todo: tuple, kept: list[dict]) -> list[dict]:
    """Run ``todo`` (reference first, then qrg, then the baselines) and annotate with ``kept`` records."""
    p.reference = reference_of(kept)
    q = next((r for r in kept if r["method"] == "qrg" and "energy" in r), None)
    p.qrg_wall_s = None if q is None else q["wall_time_s"]
    records = []
    for method in sorted(todo, key=lambda m: METHODS.index(m) if m in _STEPS else len(_STEPS)):
        rec = _STEPS[method](p) if method in _STEPS else _step_baseline(p, method)
        if rec is not None:
            records.append(rec)
    annotate([r for r in kept + records if not is_reference(r)], p.reference)
    for r in records:
        if "energy" in r and not is_reference(r):
            p.log(f"    {r['method']:16s} E = {r['energy']:.10g} ± {r.get('energy_err', 0):.2g}  "
                  f"Var = {r.get('variance', float('nan')):.3g}  {r['wall_time_s']:.1f} s")
        elif "error" in r:
            p.log(f"    {r['method']:16s} FAILED: {r['error']}")
    return records


def _plan(label: str, state: RunState, methods: tuple, retry_failed: bool, log) -> tuple | None:
    """``(todo, kept)`` for one problem, or None when a resumed run has nothing to do for it."""
    if label not in state.done:
        log(f"[bench] {label}")
        return methods, []
    old = [r for r in state.records if r.get("problem") == label]
    failed = {suite_method(r) for r in old if "error" in r}
    todo = tuple(m for m in methods if m in failed) if retry_failed else ()
    if not todo:
        log(f"[bench] {label}: done in the previous run (resume), skipped")
        return None
    log(f"[bench] {label}: retrying the failed {', '.join(todo)}")
    state.records[:] = [r for r in state.records if not (r.get("problem") == label and "error" in r)]
    return todo, [r for r in old if "error" not in r]


# ---------------------------------------------------------------------------- the suite
def _result(suite: Suite, methods: tuple, seed: int, state: RunState, complete: bool) -> dict:
    return {
        "suite": suite.name,
        "methods": list(methods),
        "seed": seed,
        "complete": complete,
        "problems_done": sorted(state.done),
        "machine": state.machine,
        "total_wall_time_s": state.elapsed + time.perf_counter() - state.t_start,
        "records": state.records,
        "scaling": fit_scaling(state.records),
        "equal_time": equal_time_ratios(state.records),
    }


def run_suite(suite: str | Suite = "quick", *, out="bench", methods=METHODS, seed: int = 0, d=None, N=None,
              resume: bool = False, retry_failed: bool = False, log=print) -> dict:
    """Run ``suite`` and write ``results.json``, ``results.md`` and the plots into ``out``.

    ``d``, ``N``: run only the problems with these dimensions / sizes (sequences; None = all).
    ``results.json`` is rewritten after every problem (``complete``: every problem of the suite is
    done; ``problems_done`` lists them), so a long suite can be interrupted and continued with
    ``resume=True`` (same suite, methods and seed): finished problems are kept, the others are run.
    With ``retry_failed=True`` as well, the methods that failed in a finished problem are run again
    (the others are kept; NetKet neural gets the kept qrg run's wall time as its budget). ``machine``
    describes the machine of the last session that ran something.
    """
    suite, methods = get_suite(suite), check_methods(methods)
    if retry_failed and not resume:
        raise QRGInputError("retry_failed (--retry-failed) needs resume (--resume): it reruns failed methods "
                            "of a previous run in the same --out")
    problems = select_problems(suite, d=d, N=N)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = load_partial(out, suite, methods, seed) if resume else RunState()
    for d_, N_, m2, lam in problems:
        label = problem_label(d_, N_, m2, lam)
        plan = _plan(label, state, methods, retry_failed, log)
        if plan is None:
            continue
        state.machine = machine_info()
        theory = Phi4.from_params(d=d_, N=N_, m2=m2, lam=lam)
        base = {"problem": label, "d": d_, "N": N_, "m2": m2, "lam": lam, "sites": theory.lattice.n_sites}
        state.records.extend(_run_problem(_Problem(theory, base, suite, seed, log), *plan))
        state.done.add(label)
        write_results(out, _result(suite, methods, seed, state, complete=False))
    result = _result(suite, methods, seed, state, complete=all(problem_label(*p) in state.done for p in suite.problems))
    write_results(out, result)
    (out / "results.md").write_text(markdown_table(result) + "\n")
    make_plots(result, out)
    return result
