"""``qrg bench``: qrg's solver against every baseline that applies, on identical Hamiltonians.

Every problem is one :class:`qrg.Phi4`; the same object goes to the reference method, to
``qrg.solve`` and to the NetKet ansätze, so all numbers refer to the same H (design §2).

References (the "best reference" of a problem, in this order of trust):
``exact`` (λ = 0, closed form), ``ed`` (N^d ≤ 4 sites), ``dmrg`` (chains, N ≥ 3). Squares with
λ > 0 have none: the comparison is variational (the lowest energy within its error bar wins)
and ``delta_vs_best`` is reported instead of a relative error.

Outputs in ``out`` (default ``bench/``): ``results.json`` (every record with its history),
``results.md`` (the table), and the plots ``rel_error.png``, ``variance.png``,
``wall_time.png``, ``time_to_accuracy.png`` (relative error of the training-step energies vs
seconds) and ``time_per_iter.png`` (with the fitted exponent α of time/iteration ∝ sites^α).

Equal-time comparison: the NetKet neural ansatz gets a wall-time budget equal to qrg's own
wall time on the same problem; :func:`equal_time_ratios` compares the two at equal cost
through 2σ upper bounds on the relative errors (> 1: qrg better).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import platform
import time

import numpy as np

from ._validation import QRGInputError
from .theory import Phi4

COUPLINGS_FULL = ((1.0, 0.0), (1.0, 6.0), (1.0, 24.0), (0.25, 2.4), (-0.5, 2.4))


@dataclasses.dataclass(frozen=True)
class Suite:
    """A named list of problems and the budget of every method."""

    name: str
    problems: tuple  # of (d, N, m2, lam)
    qrg: dict  # options for qrg.solve
    netket_gaussian: dict
    netket_neural: dict
    dmrg: dict
    netket_max_sites: int = 64


SUITES = {
    "quick": Suite(
        "quick",
        problems=((1, 8, 1.0, 6.0), (1, 16, 1.0, 6.0)),
        qrg={"steps": 120, "batch": 64, "eval_batch": 1024, "local_batch": 256},
        netket_gaussian={"n_iter": 100, "n_samples": 512, "n_eval_samples": 4096},
        netket_neural={"n_iter": 2000, "n_samples": 1024, "n_eval_samples": 4096, "diag_shift": 1e-4},
        dmrg={"local_dims": (6, 8), "chis": (16, 32)},
    ),
    "full": Suite(
        "full",
        problems=tuple((1, N, m2, lam) for N in (8, 16, 32, 64) for m2, lam in COUPLINGS_FULL)
        + tuple((2, N, m2, lam) for N in (4, 8) for m2, lam in COUPLINGS_FULL),
        qrg={"steps": 600, "batch": 64},
        netket_gaussian={"n_iter": 300, "n_samples": 1024, "n_eval_samples": 16384},
        netket_neural={"n_iter": 100000, "n_samples": 2048, "n_eval_samples": 16384, "diag_shift": 1e-4},
        dmrg={"local_dims": (8, 10), "chis": (24, 48)},
    ),
}

METHODS = ("reference", "qrg", "netket-gaussian", "netket-neural")


def problem_label(d, N, m2, lam) -> str:
    size = f"N={N}" if d == 1 else "x".join([str(N)] * d)
    return f"{'chain' if d == 1 else 'square'} {size} (m²={m2:g}, λ={lam:g})"


# ---------------------------------------------------------------------------- runners
def run_reference(theory, suite: Suite) -> dict | None:
    """Best available reference for ``theory`` (exact > ED > DMRG), or None."""
    if theory.is_free:
        return theory.exact_reference()
    if theory.lattice.n_sites <= 4:
        from .baselines.ed import ed_reference

        return ed_reference(theory)
    if theory.d == 1 and theory.N >= 3:
        from .baselines.dmrg import dmrg_ground_state

        return dmrg_ground_state(theory, correlations=False, **suite.dmrg)
    return None


def run_qrg(theory, options: dict, seed: int) -> dict:
    from .solver import solve

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


def run_netket(theory, ansatz: str, options: dict, seed: int, time_budget_s=None) -> dict:
    from .baselines.netket_vmc import run_vmc

    opts = dict(options)
    if time_budget_s is not None:
        opts["time_budget_s"] = time_budget_s
    r = run_vmc(theory, ansatz=ansatz, seed=seed, **opts)
    r.pop("state")
    return {
        "method": f"netket-{ansatz}",
        "energy": r["energy"],
        "energy_err": r["energy_err"],
        "variance": r["variance"],
        "tau": r["tau"],
        "acceptance": r["acceptance"],
        "wall_time_s": r["wall_time_s"],
        "time_per_iter_s": steady_time_per_iter(r["history"], r["time_per_iter_s"]),
        "n_iter": r["n_iter"],
        "n_params": r["n_params"],
        "history": [(h[0], h[1]) for h in r["history"]],
    }


def steady_time_per_iter(history, fallback=None):
    """Median wall time between consecutive optimisation steps (excludes the JIT compilation of step 1)."""
    t = np.asarray([h[0] for h in history], dtype=float)
    if len(t) >= 3:
        return float(np.median(np.diff(t[1:])))
    return fallback


def _safe(fn, *args, **kwargs) -> dict:
    """Run one method; a failure is recorded (with its message), not hidden, and does not stop the suite."""
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - recorded in the results
        import traceback

        where = traceback.extract_tb(err.__traceback__)[-1]
        return {"error": f"{type(err).__name__}: {err} (at {where.filename}:{where.lineno})",
                "wall_time_s": time.perf_counter() - t0}


# ---------------------------------------------------------------------------- analysis
def annotate(problem_records: list[dict], reference: dict | None) -> None:
    """Add ``rel_error`` (vs the reference) or ``delta_vs_best`` (variational) to each record.

    ``rel_error_sigma`` combines the record's own error (:func:`total_error`) in quadrature with the
    reference's ``error_estimate`` (DMRG/ED truncation; 0 for the exact free theory), so a loose
    reference widens every method's bar instead of being charged to one of them.
    """
    ok = [r for r in problem_records if "energy" in r]
    if reference is not None:
        e_ref = reference["energy"]
        ref_err = float(reference.get("error_estimate") or 0.0)
        for r in ok:
            r["rel_error"] = abs(r["energy"] - e_ref) / abs(e_ref)
            r["rel_error_sigma"] = math.hypot(total_error(r), ref_err) / abs(e_ref)
    elif ok:
        best = min(ok, key=lambda r: r["energy"])
        for r in ok:
            r["delta_vs_best"] = r["energy"] - best["energy"]
            r["is_best"] = r is best
            sigma = math.hypot(total_error(r), total_error(best))
            if r is not best and sigma > 0:  # the gap in units of the combined error bars
                r["delta_sigma"] = r["delta_vs_best"] / sigma


def total_error(record: dict) -> float:
    """A record's statistical error ⊕ its systematic (qrg: the ODE discretisation estimate, when measured)."""
    err = record.get("energy_err") or 0.0
    sys_ = record.get("energy_sys")
    return float(math.hypot(err, sys_)) if sys_ is not None else float(err)


def fit_scaling(records: list[dict]) -> dict:
    """Least-squares fit log(time per iteration) = α log(sites) + c for every method with ≥ 2 sizes."""
    out = {}
    for method in ("qrg", "netket-gaussian", "netket-neural"):
        pts = [(r["sites"], r["time_per_iter_s"]) for r in records
               if r.get("method") == method and r.get("time_per_iter_s")]
        sizes = sorted({s for s, _ in pts})
        if len(sizes) < 2:
            continue
        x = np.log([s for s, _ in pts])
        y = np.log([t for _, t in pts])
        A = np.stack([x, np.ones_like(x)], axis=1)
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        resid = y - A @ coef
        if len(x) > 2:  # two points fit exactly: no error estimate from the scatter
            cov = np.linalg.inv(A.T @ A) * float(resid @ resid) / (len(x) - 2)
            alpha_err = float(np.sqrt(cov[0, 0]))
        else:
            alpha_err = float("nan")
        out[method] = {"alpha": float(coef[0]), "alpha_err": alpha_err, "sizes": sizes}
    return out


def equal_time_ratios(records: list[dict]) -> list[dict]:
    """NetKet-neural vs qrg relative errors per interacting problem with a reference.

    ``ratio`` = (NetKet bound)/(qrg bound) with ``bound = |E − E_ref|/|E_ref| + 2σ/|E_ref|`` (a ~95 %
    upper bound on each method's true error): when an error is not resolved statistically the
    ratio of point estimates would be noise, while the ratio of bounds stays meaningful.
    ``ratio > 1`` means qrg is more accurate. ``*_resolved`` says whether |E − E_ref| > 2σ.
    """
    rows = []
    by_problem: dict[str, dict] = {}
    for r in records:
        by_problem.setdefault(r["problem"], {})[r.get("method")] = r
    for label, methods in by_problem.items():
        q, n = methods.get("qrg"), methods.get("netket-neural")
        if not q or not n or "rel_error" not in q or "rel_error" not in n or q.get("lam", 1) == 0:
            continue
        rows.append({
            "problem": label,
            "qrg_rel_error": q["rel_error"], "qrg_rel_sigma": q["rel_error_sigma"], "qrg_wall_s": q["wall_time_s"],
            "netket_rel_error": n["rel_error"], "netket_rel_sigma": n["rel_error_sigma"],
            "netket_wall_s": n["wall_time_s"],
            "qrg_resolved": q["rel_error"] > 2 * q["rel_error_sigma"],
            "netket_resolved": n["rel_error"] > 2 * n["rel_error_sigma"],
            "ratio": (n["rel_error"] + 2 * n["rel_error_sigma"]) / (q["rel_error"] + 2 * q["rel_error_sigma"]),
        })
    return rows


# ---------------------------------------------------------------------------- the suite
def select_problems(suite: Suite, *, d=None, N=None) -> tuple:
    """The problems of ``suite`` with dimension in ``d`` and size in ``N`` (None = all)."""
    problems = tuple(p for p in suite.problems
                     if (d is None or p[0] in tuple(d)) and (N is None or p[1] in tuple(N)))
    if not problems:
        raise QRGInputError(f"no problem of suite {suite.name!r} has d in {d} and N in {N} "
                            f"(its sizes: {sorted({(p[0], p[1]) for p in suite.problems})})")
    return problems


def _load_partial(out: pathlib.Path, suite: Suite, methods: tuple, seed: int) -> tuple[list, set, float]:
    """Records, finished problem labels and elapsed seconds of an interrupted run in ``out`` (for resume)."""
    path = out / "results.json"
    if not path.exists():
        return [], set(), 0.0
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise QRGInputError(f"cannot resume: {path} is not a readable results file ({err})") from None
    if old.get("suite") != suite.name or tuple(old.get("methods", methods)) != methods or old.get("seed", seed) != seed:
        raise QRGInputError(f"cannot resume: {path} holds suite {old.get('suite')!r} with methods "
                            f"{old.get('methods')} and seed {old.get('seed')}; pass the same --suite, --methods "
                            f"and --seed, or another --out")
    done = set(old.get("problems_done", []))
    records = [r for r in old.get("records", []) if r.get("problem") in done]
    for label in done:  # re-annotate with the current rules (records of older versions may lack fields)
        recs = [r for r in records if r.get("problem") == label]
        annotate([r for r in recs if not r.get("method", "").startswith("reference")], _reference_of(recs))
    return records, done, float(old.get("total_wall_time_s", 0.0))


def _reference_of(problem_records: list[dict]) -> dict | None:
    """The reference (energy and error estimate) among one problem's saved records, or None."""
    for r in problem_records:
        if r.get("method", "").startswith("reference") and "energy" in r:
            return {"energy": r["energy"], "error_estimate": r.get("error_estimate", r.get("energy_err", 0.0))}
    return None


def _write_results(out: pathlib.Path, result: dict) -> None:
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, default=float) + "\n")
    tmp.replace(out / "results.json")


def _suite_method(record: dict) -> str:
    """The suite method a record belongs to (``reference:dmrg`` → ``reference``)."""
    return record.get("method", "").split(":")[0]


def run_suite(suite: str | Suite = "quick", *, out="bench", methods=METHODS, seed: int = 0, d=None, N=None,
              resume: bool = False, retry_failed: bool = False, log=print) -> dict:
    """Run ``suite`` and write ``results.json``, ``results.md`` and the plots into ``out``.

    ``d``, ``N``: run only the problems with these dimensions / sizes (sequences; None = all).
    ``results.json`` is rewritten after every problem (``complete``: every problem of the suite is
    done; ``problems_done`` lists them), so a long suite can be interrupted and continued with ``resume=True``
    (same suite, methods and seed): finished problems are kept, the others are run. With
    ``retry_failed=True`` as well, the methods that failed in a finished problem are run again
    (the others are kept; NetKet neural gets the kept qrg run's wall time as its budget).
    """
    if isinstance(suite, str):
        if suite not in SUITES:
            raise QRGInputError(f"suite must be one of {sorted(SUITES)} (got {suite!r})")
        suite = SUITES[suite]
    methods = tuple(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise QRGInputError(f"methods must be among {METHODS} (got {bad})")
    if retry_failed and not resume:
        raise QRGInputError("retry_failed (--retry-failed) needs resume (--resume): it reruns failed methods "
                            "of a previous run in the same --out")
    problems = select_problems(suite, d=d, N=N)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records, done, elapsed = _load_partial(out, suite, methods, seed) if resume else ([], set(), 0.0)
    t_start = time.perf_counter()

    def result_dict(complete: bool) -> dict:
        return {
            "suite": suite.name,
            "methods": list(methods),
            "seed": seed,
            "complete": complete,
            "problems_done": sorted(done),
            "machine": machine_info(),
            "total_wall_time_s": elapsed + time.perf_counter() - t_start,
            "records": records,
            "scaling": fit_scaling(records),
            "equal_time": equal_time_ratios(records),
        }

    for d_, N_, m2, lam in problems:
        label = problem_label(d_, N_, m2, lam)
        kept = []  # records of a finished problem that stay (resume)
        todo = methods
        if label in done:
            old = [r for r in records if r.get("problem") == label]
            failed = {_suite_method(r) for r in old if "error" in r}
            todo = tuple(m for m in methods if m in failed) if retry_failed else ()
            if not todo:
                log(f"[bench] {label}: done in the previous run (resume), skipped")
                continue
            log(f"[bench] {label}: retrying the failed {', '.join(todo)}")
            records = [r for r in records if not (r.get("problem") == label and "error" in r)]
            kept = [r for r in old if "error" not in r]
        else:
            log(f"[bench] {label}")
        theory = Phi4.from_params(d=d_, N=N_, m2=m2, lam=lam)
        base = {"problem": label, "d": d_, "N": N_, "m2": m2, "lam": lam, "sites": theory.lattice.n_sites}
        reference = _reference_of(kept)
        q = next((r for r in kept if r["method"] == "qrg"), None)
        problem_records = []
        if "reference" in todo:
            reference = _safe(run_reference, theory, suite)
            if reference is not None and "error" in reference:
                problem_records.append({**base, "method": "reference", **reference})
                reference = None
            elif reference is not None:
                rec = {**base, **{k: v for k, v in reference.items() if k not in ("correlation",)},
                       "method": f"reference:{reference['method']}"}
                rec.setdefault("energy_err", reference.get("error_estimate", 0.0))
                problem_records.append(rec)
                log(f"    reference {reference['method']}: {reference['energy']:.12g} "
                    f"± {reference.get('error_estimate', 0.0):.2g}")
        if "qrg" in todo:
            q = {**base, "method": "qrg", **_safe(run_qrg, theory, suite.qrg, seed)}
            problem_records.append(q)
        n_sites_ok = theory.lattice.n_sites <= suite.netket_max_sites
        if "netket-gaussian" in todo and n_sites_ok:
            problem_records.append({**base, "method": "netket-gaussian",
                                    **_safe(run_netket, theory, "gaussian", suite.netket_gaussian, seed)})
        if "netket-neural" in todo and n_sites_ok:
            budget = q["wall_time_s"] if q is not None and "energy" in q else None
            problem_records.append({**base, "method": "netket-neural",
                                    **_safe(run_netket, theory, "neural", suite.netket_neural, seed,
                                            time_budget_s=budget)})
        annotate([r for r in kept + problem_records if not r["method"].startswith("reference")], reference)
        for r in problem_records:
            if "energy" in r and not r["method"].startswith("reference"):
                log(f"    {r['method']:16s} E = {r['energy']:.10g} ± {r.get('energy_err', 0):.2g}  "
                    f"Var = {r.get('variance', float('nan')):.3g}  {r['wall_time_s']:.1f} s")
            elif "error" in r:
                log(f"    {r['method']:16s} FAILED: {r['error']}")
        records.extend(problem_records)
        done.add(label)
        _write_results(out, result_dict(complete=False))
    result = result_dict(complete=all(problem_label(*p) in done for p in suite.problems))
    _write_results(out, result)
    (out / "results.md").write_text(markdown_table(result) + "\n")
    make_plots(result, out)
    return result


def machine_info() -> dict:
    import os

    versions = {}
    for mod in ("jax", "numpy", "netket", "tenpy", "flax", "diffrax"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional
            versions[mod] = None
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "versions": versions,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _fmt(x, nd=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{nd}g}"


def markdown_table(result: dict) -> str:
    lines = [f"# qrg bench — suite `{result['suite']}`", "",
             f"Machine: {result['machine']['platform']}, {result['machine']['cpu_count']} CPUs; "
             f"date {result['machine']['date']}; versions {result['machine']['versions']}.", "",
             "Errors are statistical (1σ); qrg's ⊕ term is its ODE-discretisation systematic (step doubling, "
             "qrg.solver.discretisation_check), combined in quadrature into σ where σ is used; the σ of a "
             "relative error also includes the reference's truncation estimate.", "",
             "| problem | method | energy ± err | rel. error (σ) or Δ vs best | Var(E_loc) | wall s | s/iter |",
             "|---|---|---|---|---|---|---|"]
    for r in result["records"]:
        if "error" in r:
            lines.append(f"| {r['problem']} | {r['method']} | FAILED: {r['error'][:80]} | | | | |")
            continue
        e = f"{r['energy']:.10g} ± {_fmt(r.get('energy_err', r.get('error_estimate')), 2)}"
        if r.get("energy_sys") is not None:
            e += f" ⊕ {_fmt(r['energy_sys'], 2)} (ODE)"
        if "rel_error" in r:
            acc = f"{r['rel_error']:.2e} ({r['rel_error_sigma']:.1e})"
        elif "delta_vs_best" in r:
            acc = "best (variational)" if r.get("is_best") else f"+{r['delta_vs_best']:.3g}"
            if "delta_sigma" in r:
                acc += f" ({r['delta_sigma']:.2g}σ)"
        else:
            acc = "reference"
        lines.append(f"| {r['problem']} | {r['method']} | {e} | {acc} | {_fmt(r.get('variance'))} | "
                     f"{_fmt(r.get('wall_time_s'))} | {_fmt(r.get('time_per_iter_s'))} |")
    if result["scaling"]:
        lines += ["", "Time per iteration ∝ sites^α: " + "; ".join(
            f"{m}: α = {s['alpha']:.2f}" + (f" ± {s['alpha_err']:.2f}" if math.isfinite(s["alpha_err"]) else "")
            + f" (sizes {s['sizes']})" for m, s in result["scaling"].items())]
    if result["equal_time"]:
        lines += ["", "Equal wall time (NetKet neural gets qrg's wall time as its budget); ratio of the 2σ upper "
                  "bounds |δE|/|E| + 2σ/|E| (> 1: qrg more accurate):", "",
                  "| problem | qrg rel. error ± σ | NetKet neural rel. error ± σ | ratio NetKet/qrg (bounds) |",
                  "|---|---|---|---|"]
        for row in result["equal_time"]:
            lines.append(f"| {row['problem']} | {row['qrg_rel_error']:.2e} ± {row['qrg_rel_sigma']:.1e} | "
                         f"{row['netket_rel_error']:.2e} ± {row['netket_rel_sigma']:.1e} | {row['ratio']:.3g} |")
    return "\n".join(lines)


def make_plots(result: dict, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in result["records"] if "energy" in r and not r["method"].startswith("reference")]
    problems = list(dict.fromkeys(r["problem"] for r in result["records"]))
    methods = list(dict.fromkeys(r["method"] for r in recs))
    xpos = {p: i for i, p in enumerate(problems)}

    def per_problem(key, fname, ylabel, log=True):
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(problems) + 3), 4))
        for j, m in enumerate(methods):
            pts = [(xpos[r["problem"]] + 0.1 * (j - len(methods) / 2), r[key]) for r in recs
                   if r["method"] == m and r.get(key) is not None and r[key] > 0]
            if pts:
                ax.plot(*zip(*pts), "o", label=m)
        ax.set_xticks(range(len(problems)), problems, rotation=60, ha="right", fontsize=7)
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)

    per_problem("rel_error", "rel_error.png", "|E − E_ref| / |E_ref|")
    per_problem("variance", "variance.png", "Var(E_loc)")
    per_problem("wall_time_s", "wall_time.png", "wall time [s]")

    # time to accuracy: training-step energies vs seconds, per problem with a reference
    refs = {r["problem"]: r["energy"] for r in result["records"]
            if r["method"].startswith("reference") and "energy" in r}
    with_ref = [p for p in problems if p in refs]
    if with_ref:
        ncol = min(3, len(with_ref))
        nrow = math.ceil(len(with_ref) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.5 * ncol, 3.3 * nrow), squeeze=False)
        for ax, p in zip(axes.ravel(), with_ref):
            for r in recs:
                if r["problem"] == p and r.get("history"):
                    h = np.asarray(r["history"], dtype=float)
                    w = max(1, len(h) // 20)  # running mean over ~5 % of the run
                    e = np.convolve(h[:, 1], np.ones(w) / w, mode="valid")
                    t = h[w - 1:, 0]
                    ax.plot(t, np.abs(e - refs[p]) / abs(refs[p]), label=r["method"])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(p, fontsize=8)
            ax.set_xlabel("seconds")
            ax.set_ylabel("rel. error (training batches)")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
        for ax in axes.ravel()[len(with_ref):]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(out / "time_to_accuracy.png", dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    for m in methods:
        pts = sorted((r["sites"], r["time_per_iter_s"]) for r in recs if r["method"] == m and r.get("time_per_iter_s"))
        if pts:
            fit = result["scaling"].get(m)
            lab = m + (f" (α = {fit['alpha']:.2f})" if fit else "")
            ax.loglog(*zip(*pts), "o-", label=lab)
    ax.set_xlabel("sites")
    ax.set_ylabel("seconds per iteration")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "time_per_iter.png", dpi=110)
    plt.close(fig)
