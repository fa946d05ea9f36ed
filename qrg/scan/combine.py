"""Several scans into one: independent seeds of the same line (:func:`combine_seeds`, the optimisation's spread
in the error bar, or variational selection) and pieces of one line at different m² (:func:`merge_scans`)."""

from __future__ import annotations

import math
import pathlib
import time

import numpy as np

from .._validation import QRGInputError, check_writable_dir
from .records import FORMAT_VERSION, POINTS_DIR, SCAN_FILE, SETTINGS, _machine, _num, _obs, _write, read_scan

def combine_values(values, errors) -> dict:
    """The mean of K independent runs' estimates ``values`` (sampling errors ``errors``) with an error bar
    that contains the spread between the runs.

    A run's estimate is the exact value + its optimisation's deviation (a different trained state per
    seed) + sampling noise; one run's error bar holds the sampling noise only. The sample variance s² of
    the K values estimates both together, so the mean's error is ``sqrt(max(s², mean σ_i²) / K)``: the
    spread when it is larger, never less than the sampling error alone (s² from 1 or 2 degrees of freedom
    can be small by chance). ``chi2_dof`` = Σ (x_i − x̄)²/σ_i² / (K − 1) tests whether the runs agree
    within their sampling errors (≫ 1: an optimisation spread), ``spread`` = s. K = 1 returns the run
    itself with ``spread`` None (not measured).
    """
    x = np.asarray(values, dtype=float)
    e = np.asarray(errors, dtype=float)
    if x.ndim != 1 or x.shape != e.shape or x.size == 0:
        raise QRGInputError(f"combine_values needs equally long, non-empty lists (got {x.shape} and {e.shape})")
    k = x.size
    mean = float(x.mean())
    if k == 1:
        return {"mean": mean, "err": _num(e[0]), "spread": None, "chi2_dof": None, "runs": 1}
    s2 = float(x.var(ddof=1))
    sampling2 = float(np.mean(e**2))
    chi2 = float(np.sum((x - mean) ** 2 / e**2) / (k - 1)) if np.all(e > 0) else None
    return {"mean": mean, "err": math.sqrt(max(s2, sampling2) / k), "spread": math.sqrt(s2), "chi2_dof": _num(chi2),
            "runs": int(k)}


#: the observables :func:`combine_seeds` averages over runs (besides the energy)
COMBINED = ("M", "abs_M", "M2", "M4", "U4", "phi2", "peak_weight")


#: how :func:`combine_seeds` makes one point from several seeds' runs
PICK_RULES = ("mean", "lowest")


def combine_seeds(scans, *, out=None, pick: str = "mean") -> dict:
    """One scan from several scans of the same line that differ only in the seed (independent runs).

    ``pick="lowest"`` keeps, at every m², the run with the lowest energy instead of the mean (the
    variational principle: every run's energy is an upper bound, so the lowest is the best state; a
    seed that failed to train is dropped rather than averaged in). The point is that run's record
    (its energy, observables and error bars), with ``selected_seed`` and ``selection_gap`` = (second
    lowest − lowest energy) / their combined error: when it is below 2 the energies do not decide
    between the runs, the reported energy (the minimum of several estimates) is biased low by up to
    about its error bar, and a note names the point.

    ``scans``: scan data or paths (:func:`read_scan`), all with the same d, N, a, lam, method, n_samples
    and options apart from ``seed``, each seed once. For every m² that all of them hold, the energy and
    each observable of :data:`COMBINED` is :func:`combine_values` of the runs (mean; error bar with the
    spread between seeds: the optimisation's own spread is in it, which one run cannot show), with
    ``spread`` and ``chi2_dof`` added to each; Var(E_loc) is the mean over the runs; ``runs`` lists
    each run's seed, status, energy, ⟨M²⟩ and U4; a point's status is "completed" only when all its
    runs completed. Points missing from some scans are left out (named in ``notes``). The result has the
    layout of a scan (``seeds`` lists the seeds, ``options`` has no ``seed``), so :func:`binder_crossing`,
    :func:`plot_scan` and ``qrg scan --crossing`` take it. ``out``: a directory to write ``scan.json``,
    ``scan.csv`` and ``scan.png`` into (``qrg scan --combine DIR ... --out DIR``).
    """
    if pick not in PICK_RULES:
        raise QRGInputError(f"pick must be one of {', '.join(PICK_RULES)} (got {pick!r})")
    data = [read_scan(s) for s in scans]
    options, seeds = _check_seed_scans(data)
    first = data[0]
    by_label = [{p["label"]: p for p in s["points"]} for s in data]
    common = [lab for lab in by_label[0] if all(lab in b for b in by_label[1:])]
    left_out = sorted({lab for b in by_label for lab in b} - set(common))
    points, undecided = [], []
    for label in sorted(common, key=lambda lab: by_label[0][lab]["m2"]):
        runs = [b[label] for b in by_label]
        if pick == "mean":
            points.append(_mean_point(label, runs, seeds, first))
            continue
        rec = _lowest_energy_run(runs, seeds)
        points.append(rec)
        if rec["selection_gap"] is not None and rec["selection_gap"] < 2:
            undecided.append(label)
    notes = ["each observable: mean over the seeds; err = sqrt(max(s^2, mean sampling err^2) / K) "
             "(qrg.scan.combine_values)"] if pick == "mean" else [
        "each point: the run of the lowest energy (variational selection); selected_seed, selection_gap in sigma"]
    if undecided:
        notes.append(f"points whose two lowest energies are within 2 sigma (the selection is not decided by the "
                     f"energy; the reported energy is biased low): {undecided}")
    if left_out:
        notes.append(f"points not in every scan, left out: {left_out}")
    combined = {"format": FORMAT_VERSION, "d": first["d"], "N": first["N"], "a": first["a"], "lam": first["lam"],
                "method": first["method"], "options": options, "n_samples": first.get("n_samples"),
                "seeds": seeds, "pick": pick, "sources": [str(s) if not isinstance(s, dict) else None for s in scans],
                "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": _machine(),
                "notes": notes, "points": points}
    if out is not None:
        out = check_writable_dir(pathlib.Path(out), "out")
        _write(out, combined)
    return combined


def _require_same(data, keys, needs: str) -> None:
    """QRGInputError "<needs> the same <key> (got [...])" for the first of ``keys`` whose values differ
    between the scans ``data``."""
    for key in keys:
        values = [s.get(key) for s in data]
        if any(v != values[0] for v in values):
            raise QRGInputError(f"{needs} the same {key} (got {values})")


def _check_seed_scans(data) -> tuple[dict, list]:
    """(the common options without ``seed``, the seeds) of scans that :func:`combine_seeds` may combine;
    QRGInputError naming what differs otherwise."""
    if len(data) < 2:
        raise QRGInputError(f"combine_seeds needs two scans at least (got {len(data)})")
    _require_same(data, ("d", "N", "a", "lam", "method", "n_samples"), "combine_seeds needs scans with")
    if data[0]["method"] == "dmrg":
        raise QRGInputError("combine_seeds: DMRG is deterministic (no seeds to combine)")
    strip = [{k: v for k, v in (s.get("options") or {}).items() if k != "seed"} for s in data]
    if any(o != strip[0] for o in strip):
        raise QRGInputError(f"combine_seeds needs scans with the same options apart from the seed (got {strip})")
    seeds = [(s.get("options") or {}).get("seed", 0) for s in data]
    if len(set(seeds)) != len(seeds):
        raise QRGInputError(f"combine_seeds needs a different seed in every scan (got seeds {seeds}): runs with "
                            "the same seed are not independent")
    return strip[0], seeds


def _mean_point(label, runs, seeds, first) -> dict:
    """The point ``label`` as the mean over ``runs`` (one per seed) of the energy and each observable."""
    rec = {"label": label, "m2": runs[0]["m2"], "lam": first["lam"], "method": first["method"]}
    energy = _combine_field(runs, lambda p: (p.get("energy"), p.get("energy_err")))
    n_sites = first["N"] ** first["d"]
    rec.update(energy=None if energy is None else energy["mean"], energy_err=None if energy is None else energy["err"])
    rec["energy_per_site"] = None if energy is None else energy["mean"] / n_sites
    rec["energy_per_site_err"] = None if energy is None else energy["err"] / n_sites
    rec["energy_combined"] = energy
    for name in COMBINED:
        rec[name] = _combine_field(runs, lambda p, n=name: ((p.get(n) or {}).get("mean"), (p.get(n) or {}).get("err")))
    variances = [(p.get("variance") or {}).get("mean") for p in runs]
    rec["variance"] = None if any(v is None for v in variances) else _obs(float(np.mean(variances)), None)
    statuses = [p.get("status") for p in runs]
    rec["status"] = "completed" if all(st == "completed" for st in statuses) else \
        next(st for st in statuses if st != "completed")
    rec["runs"] = [_run_summary(seed, p) for seed, p in zip(seeds, runs)]
    rec["wall_time_s"] = float(sum(p.get("wall_time_s") or 0.0 for p in runs))
    return rec


def _run_summary(seed, p) -> dict:
    return {"seed": seed, "status": p.get("status"), "energy": p.get("energy"), "energy_err": p.get("energy_err"),
            "M2": p.get("M2"), "U4": p.get("U4")}


def _lowest_energy_run(runs, seeds) -> dict:
    """The point of the run with the lowest energy among ``runs`` (seeds ``seeds``), with the selection."""
    have = [i for i, p in enumerate(runs) if p.get("energy") is not None]
    if not have:
        raise QRGInputError(f"pick='lowest': no run of point {runs[0].get('label')} has an energy")
    order = sorted(have, key=lambda i: runs[i]["energy"])
    best = runs[order[0]]
    gap = None
    if len(order) > 1:
        second = runs[order[1]]
        err = math.hypot(best.get("energy_err") or 0.0, second.get("energy_err") or 0.0)
        gap = (second["energy"] - best["energy"]) / err if err > 0 else None
    rec = dict(best)
    rec.update(selected_seed=seeds[order[0]], selection_gap=_num(gap),
               runs=[_run_summary(seed, p) for seed, p in zip(seeds, runs)],
               wall_time_s=float(sum(p.get("wall_time_s") or 0.0 for p in runs)))
    return rec


def _combine_field(runs, get):
    pairs = [get(p) for p in runs]
    if any(v is None or e is None for v, e in pairs):
        return None
    return combine_values([v for v, _ in pairs], [e for _, e in pairs])


def merge_scans(scans, *, out=None, force: bool = False) -> dict:
    """One scan from pieces of the same line computed separately (other m², run in parallel or on other
    machines): ``qrg scan --merge DIR1 DIR2 ... --out DIR``.

    ``scans``: scan data or paths (:func:`read_scan`), at least two, with the same settings (d, N, a, lam,
    method, options including the seed, n_samples; and the same ``seeds``/``pick`` when they are
    combined scans) and no m² in two of them (several runs of one point are seeds: :func:`combine_seeds`).
    The records are kept as they are (each keeps its ``warm_start``: a piece's first point started from
    the solver's init, not from its neighbour in the merged line), ordered by m²; ``sources`` names the
    pieces and ``machines`` lists each piece's machine. ``out``: the directory to write ``scan.json``,
    ``scan.csv`` and ``scan.png`` into; the qrg run directories ``points/<label>`` of the pieces are
    copied there, so the merged scan can be resumed (``qrg scan --resume``) with warm starts from them.
    An ``out`` that already holds a scan is refused unless ``force``.
    """
    if isinstance(scans, (str, pathlib.Path, dict)) or len(scans) < 2:
        raise QRGInputError("merge_scans needs two scans at least (a list of scan directories or data)")
    data = [read_scan(s) for s in scans]
    _require_same(data, (*SETTINGS, "seeds", "pick"), "merge_scans needs pieces of one line, with")
    owner: dict = {}
    for i, s in enumerate(data):
        for p in s["points"]:
            if p["label"] in owner:
                raise QRGInputError(
                    f"m² = {p['m2']:g} is in scan {owner[p['label']]} and in scan {i}: merge_scans joins pieces "
                    "of a line at different m² (several runs of one point with different seeds: combine_seeds, "
                    "qrg scan --combine)")
            owner[p["label"]] = i
    sources = [None if isinstance(s, dict) else str(s) for s in scans]
    if out is not None:
        out = pathlib.Path(out)
        resolved = [None if s is None else (pathlib.Path(s) if pathlib.Path(s).is_dir()
                                            else pathlib.Path(s).parent).resolve() for s in sources]
        if out.resolve() in resolved:
            raise QRGInputError(f"out {str(out)!r} is one of the scans being merged: write the merged scan "
                                "into a new directory")
        if (out / SCAN_FILE).exists() and not force:
            raise QRGInputError(f"out {str(out)!r} holds a scan already: choose another directory or force "
                                "(--force) to replace it")
    first = data[0]
    merged = {"format": FORMAT_VERSION, **{k: first.get(k) for k in SETTINGS},
              **{k: first[k] for k in ("seeds", "pick") if k in first},
              "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": _machine(),
              "sources": sources, "machines": [s.get("machine") for s in data],
              "notes": [f"merged from {len(data)} scans of the same line (qrg.scan.merge_scans); the first point "
                        "of each piece was not warm-started from its neighbour here (see its warm_start)"],
              "points": sorted((p for s in data for p in s["points"]), key=lambda p: p["m2"])}
    if out is not None:
        import shutil

        out = check_writable_dir(out, "out")
        for src, s in zip(resolved, data):
            if src is None:
                continue
            for p in s["points"]:
                run, target = src / POINTS_DIR / p["label"], out / POINTS_DIR / p["label"]
                if run.is_dir():
                    if target.exists():  # a run of the scan that force replaces: not mixed with the new one
                        shutil.rmtree(target)
                    shutil.copytree(run, target)
        _write(out, merged)
    return merged
