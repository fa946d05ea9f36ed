"""The ``results.json`` file of a bench run: writing it atomically, and reading it back to resume."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
import time

from .._validation import QRGInputError
from .analysis import annotate, is_reference, reference_error
from .suites import Suite


def machine_info() -> dict:
    versions = {}
    for mod in ("jax", "numpy", "netket", "tenpy", "flax", "diffrax"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional
            versions[mod] = None
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "versions": versions,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


@dataclasses.dataclass
class RunState:
    """Records and finished problems of a run (with those of the run it resumes)."""

    records: list = dataclasses.field(default_factory=list)
    done: set = dataclasses.field(default_factory=set)
    elapsed: float = 0.0  # wall seconds of the resumed sessions
    machine: dict = dataclasses.field(default_factory=machine_info)
    t_start: float = dataclasses.field(default_factory=time.perf_counter)


def suite_method(record: dict) -> str:
    """The suite method a record belongs to (``reference:dmrg`` → ``reference``)."""
    return record.get("method", "").split(":")[0]


def reference_of(problem_records: list[dict]) -> dict | None:
    """The reference (energy and error estimate) among one problem's saved records, or None."""
    for r in problem_records:
        if is_reference(r) and "energy" in r:
            return {"energy": r["energy"], "error_estimate": reference_error(r)}
    return None


def write_results(out: pathlib.Path, result: dict) -> None:
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, default=float) + "\n")
    tmp.replace(out / "results.json")


def load_partial(out: pathlib.Path, suite: Suite, methods: tuple, seed: int) -> RunState:
    """The state of an interrupted run in ``out`` (for resume; empty if there is none)."""
    path = out / "results.json"
    if not path.exists():
        return RunState()
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
        annotate([r for r in recs if not is_reference(r)], reference_of(recs))
    state = RunState(records, done, float(old.get("total_wall_time_s", 0.0)))
    if "machine" in old:
        state.machine = old["machine"]
    return state
