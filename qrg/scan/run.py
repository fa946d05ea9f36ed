"""Running a scan: :func:`scan` computes one point per m² with qrg (warm-started), DMRG or NetKet, resumably."""

from __future__ import annotations

import json
import pathlib
import time
import zlib

import numpy as np

from .._validation import QRGInputError, check_int, check_real, check_writable_dir
from .records import (_PROBLEM_KEYS, FORMAT_VERSION, METHODS, MIN_N, POINTS_DIR, SCAN_FILE, SETTINGS, _json_ready,
                      _machine, _num, _obs, _write, magnetisation_observables, params_digest, point_label, read_scan)

def _check_inputs(d, N, a, lam, m2_values, method, options, n_samples) -> dict:
    if not isinstance(method, str) or method not in METHODS:
        raise QRGInputError(f"method must be one of {METHODS} (got {method!r})")
    d = check_int("d", d, minimum=1)
    N = check_int("N", N, minimum=1)
    a = check_real("a (lattice spacing)", a, positive=True)
    lam = check_real("lam (quartic coupling λ)", lam)
    if lam < 0:
        raise QRGInputError(f"lam (quartic coupling λ) must be >= 0 (got {lam}): H is unbounded below")
    if isinstance(m2_values, (str, bytes)) or not hasattr(m2_values, "__iter__"):
        raise QRGInputError(f"m2_values must be a list of m² values (got {m2_values!r})")
    values = []
    for v in m2_values:
        try:
            values.append(check_real("m2_values", v))
        except QRGInputError:
            raise QRGInputError(f"m2_values must be finite real numbers (got {v!r} in {list(m2_values)!r})") from None
    if not values:
        raise QRGInputError("m2_values is empty: give at least one m² value")
    labels = [point_label(v) for v in values]
    dup = sorted({v for v, lab in zip(values, labels) if labels.count(lab) > 1})
    if dup:
        raise QRGInputError(f"m2_values has duplicate values {dup}: every m² must appear once")
    if lam == 0 and min(values) <= 0:
        bad = [v for v in values if v <= 0]
        raise QRGInputError(f"with lam = 0 every m² must be > 0 (H has no ground state): m2_values has {bad}")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise QRGInputError(f"options must be a dict of the method's options (got {type(options).__name__})")
    try:
        options = json.loads(json.dumps(options))  # JSON-ready (tuples become lists), compared on resume
    except (TypeError, ValueError) as err:
        raise QRGInputError(f"options must be JSON-serialisable ({err})") from None
    problem = sorted(set(options) & set(_PROBLEM_KEYS))
    if problem:
        raise QRGInputError(f"options may not set {problem}: the scan sets the problem (d, N, a, lam, m2_values)")
    if N < MIN_N[method]:
        raise QRGInputError(f"N must be >= {MIN_N[method]} for a {method} scan (got N = {N}): the magnetisation "
                            "of a single site is not an order parameter")
    from ..theory import Phi4

    theories = [Phi4.from_params(d=d, N=N, a=a, m2=v, lam=lam) for v in values]
    if method == "qrg":
        from ..groundstate.config import SolveConfig
        from ..groundstate.solve import check_memory

        for bad in ("init_params", "out", "resume", "force"):
            if bad in options:
                raise QRGInputError(f"options may not set {bad!r}: the scan manages it")
        cfg = SolveConfig().replace(**options, **theories[0].params())
        check_memory(cfg)
        if cfg.model == "custom":  # pragma: no cover - a ready model is not JSON
            raise QRGInputError("options: model must be a registered score model name")
    elif method == "dmrg":
        from ..baselines import DMRG

        dmrg = DMRG()
        dmrg.check_options(options)
        reason = dmrg.why_not(theories[0], **options)
        if reason is not None:
            raise QRGInputError(reason)
    else:
        from ..baselines import NetKetNeural

        NetKetNeural().check_options(options)
    n_samples = None if method == "dmrg" else check_int("n_samples", n_samples, minimum=40)
    return {"d": d, "N": N, "a": a, "lam": lam, "method": method, "options": options, "n_samples": n_samples,
            "m2_values": values, "theories": theories}


def _run_qrg(theory, label, point_dir, options, n_samples, warm, *, continue_point: bool, replace: bool):
    """Solve one point (warm-started from ``warm``) and measure it. Returns (record, params, status)."""
    import jax

    from ..groundstate import solve
    from ..optim.checkpoint import atomic_write_text

    warm_file = point_dir / "warm_start.json"
    if continue_point:  # an interrupted scan left this point's checkpoint: continue that solve bit for bit
        result = solve(theory, out=point_dir, resume=True, **options)
        try:
            warm_record = json.loads(warm_file.read_text())
        except (OSError, ValueError):
            warm_record = {"from": None, "init_params_sha256": None, "note": "warm_start.json missing"}
    else:
        init = None if warm is None else warm.get("params")
        warm_record = {"from": None if init is None else warm["label"],
                       "init_params_sha256": None if init is None else params_digest(init)}
        if warm is not None and warm.get("note"):
            warm_record["note"] = warm["note"]
        point_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(warm_file, json.dumps(warm_record, indent=1) + "\n")
        result = solve(theory, out=point_dir, force=replace, init_params=init, **options)
    cfg = result.config
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), zlib.crc32(f"scan-observables-{label}".encode()))
    chunk = min(512, n_samples)
    parts = []
    for c in range(-(-n_samples // chunk)):  # equal chunks (one compiled sampler), the last one truncated
        phi, _, _ = result.sample(jax.random.fold_in(key, c), chunk, 0.0)
        parts.append(np.asarray(phi))
    phi = np.concatenate(parts)[:n_samples]
    record = {
        "energy": _num(result.energy.mean), "energy_err": _num(result.energy.err),
        "energy_sys": _num(result.systematic), "energy_total_err": _num(result.total_error),
        "estimator": result.estimator,
        **magnetisation_observables(phi, theory.lattice),
        "variance": _obs(result.variance, None),
        "n_samples": int(phi.shape[0]), "sampling": "independent draws of |Ψ|² at t = 0",
        "status": result.status, "steps": result.steps_done, "seed": cfg.seed, "model": cfg.model,
        "n_params": result.n_params, "train_time_s": result.train_time_s,
        "run_dir": f"{POINTS_DIR}/{label}", "warm_start": warm_record, "params_sha256": params_digest(result.params),
        "continued_from_checkpoint": bool(continue_point),
        "warnings": list(result.warnings),
        "refine": None if result.refine is None else {k: result.refine[k] for k in ("steps", "status", "time_s",
                                                                                     "proposal", "batch", "dtau",
                                                                                     "recoveries", "dtau_final")},
    }
    return record, result.params, result.status


def _run_dmrg(theory, options):
    from ..baselines import DMRG

    ref = DMRG().run(theory, **options)
    record = {
        "energy": _num(ref.energy), "energy_err": _num(ref.error_estimate),
        "energy_err_kind": "DMRG truncation estimate (error_estimate)",
        "M": None, "abs_M": None, "M2": _obs(ref.M2), "M4": _obs(ref.M4), "U4": _obs(ref.U4),
        "phi2": _obs(ref.phi2), "peak_weight": None, "variance": None,
        "notes": ["M2, M4, U4, phi2: MPS expectation values without an error estimate (err 0)",
                  ("M, abs_M, peak_weight: not measurable from the MPS (they need samples of M); "
                   "<M> = 0 exactly in the parity-even MPS"),
                  "variance: Var(E_loc) does not exist for an MPS"],
        "status": "completed", "details": _json_ready(dict(ref.details)),
    }
    return record, None, "completed"


def _run_netket(theory, options, n_samples):
    from ..baselines.netket_vmc import evaluation_fields, vmc_ground_state

    opts = dict(options)
    opts.setdefault("n_eval_samples", n_samples)
    ref, vs = vmc_ground_state(theory, ansatz="neural", **opts)
    phi = evaluation_fields(vs, theory)
    details = {k: v for k, v in ref.details.items() if k != "history"}
    record = {
        "energy": _num(ref.energy), "energy_err": _num(ref.energy_err),
        **magnetisation_observables(phi, theory.lattice, chains=True),
        "variance": _obs(ref.details.get("variance"), None),
        "n_samples": int(phi.shape[0] * phi.shape[1]),
        "sampling": "Metropolis chains of the final evaluation (errors with tau_int)",
        "status": "completed", "baseline": "netket-neural", "seed": opts.get("seed", 0),
        "details": _json_ready(details),
    }
    return record, None, "completed"


def scan(d: int, N: int, lam: float, m2_values, *, method: str = "qrg", a: float = 1.0, out, resume: bool = False,
         force: bool = False, options: dict | None = None, n_samples: int = 4096, on_point=None) -> dict:
    """Ground states and the order parameter of ``Phi4(d, N, a, m², lam)`` for each m² in ``m2_values``.

    ``method``: ``"qrg"`` (:func:`qrg.solve`, warm-started point to point), ``"dmrg"`` or ``"netket"``
    (module docstring); ``options``: the method's options (qrg: :class:`~qrg.groundstate.SolveConfig`
    fields such as ``steps``, ``batch``, ``seed``, ``model``; dmrg: :class:`~qrg.baselines.DMRG`'s;
    netket: :func:`~qrg.baselines.netket_vmc.vmc_ground_state`'s). ``n_samples``: samples of each
    state the observables are measured on (qrg: fresh draws of |Ψ|²; netket: the default of
    ``n_eval_samples``; unused by dmrg).

    ``out``: the scan directory (``scan.json``, ``scan.csv``, ``scan.png``, ``points/``). An existing
    scan there is refused unless ``resume=True`` (keep its finished points — the settings d, N, a, lam,
    method, options and n_samples must be the same — and compute the missing ones; a point whose solve
    was interrupted continues from its checkpoint) or ``force=True`` (start afresh, replacing it).
    ``scan.json`` is rewritten after every point.

    qrg warm starts: each point starts from the trained parameters of the previous point in the list
    (loaded from its run directory when that point was computed in an earlier session); the first
    point, and a point after one that did not complete, start from the solver's own ``init``. Every
    qrg record holds ``warm_start`` (``from``: the label of the neighbour, ``init_params_sha256``) and
    ``params_sha256`` of its trained parameters.

    ``on_point(record, kept)``: called for every point in order as it is finished (``kept=True``: taken
    from the resumed scan). Returns the scan data (the content of ``scan.json``).
    """
    s = _check_inputs(d, N, a, lam, m2_values, method, options, n_samples)
    settings = {k: s[k] for k in SETTINGS}
    out, old_points, created = _open_scan(out, settings, resume=resume, force=force)
    finished = {p["label"]: p for p in old_points}
    data = {"format": FORMAT_VERSION, **settings,
            "created": created or time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "machine": _machine(), "points": []}
    labels = [point_label(v) for v in s["m2_values"]]
    extra = [p for p in old_points if p["label"] not in labels]  # kept, listed after this session's points
    # the finished points of the list are in the file from the start: a scan killed during its first new
    # point keeps them
    records: dict[str, dict] = {lab: finished[lab] for lab in labels if lab in finished}

    def points():
        return [records[lab] for lab in labels if lab in records] + extra

    data["points"] = points()
    _write(out, data, plot=False)
    prev = None  # {"label", "params", "status"} of the previous point in the list
    for m2, label, theory in zip(s["m2_values"], labels, s["theories"]):
        if label in finished:  # its record is in `records` from the start
            if on_point is not None:
                on_point(finished[label], True)
            prev = {"label": label, "params": None, "status": finished[label].get("status")}
            continue
        r, params, status = _compute_point(s, m2, label, theory, out, prev, resume=resume, force=force)
        records[label] = r
        data["points"] = points()
        _write(out, data)
        if on_point is not None:
            on_point(r, False)
        prev = {"label": label, "params": params, "status": status}
    data["points"] = points()
    _write(out, data)
    return data


def _open_scan(out, settings: dict, *, resume: bool, force: bool):
    """(out as a writable directory, the points of the scan being resumed, its creation time). A directory
    holding another scan is refused unless ``resume`` (with the same settings) or ``force``."""
    if resume and force:
        raise QRGInputError("resume and force exclude each other: resume keeps the finished points, force "
                            "replaces them")
    if out is None:
        raise QRGInputError("out (the scan directory) is required")
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise QRGInputError(f"out {str(out)!r} exists and is not a directory")
    old_points: list[dict] = []
    created = None
    points_dir = out / POINTS_DIR
    if resume:
        if not (out / SCAN_FILE).exists():
            raise QRGInputError(f"resume: there is no {SCAN_FILE} in {str(out)!r} to resume; start the scan "
                                "without --resume")
        old = read_scan(out)
        diff = [k for k in SETTINGS if old.get(k) != settings[k]]
        if diff:
            raise QRGInputError(f"cannot resume the scan in {str(out)!r}: it was made with different {diff} "
                                f"({ {k: old.get(k) for k in diff} }, now { {k: settings[k] for k in diff} }); "
                                "pass the same settings or start a new scan (another out, or --force)")
        old_points = list(old["points"])
        created = old.get("created")
    elif not force and ((out / SCAN_FILE).exists() or (points_dir.is_dir() and any(points_dir.iterdir()))):
        raise QRGInputError(f"out {str(out)!r} holds a scan ({SCAN_FILE} or {POINTS_DIR}/): continue it with "
                            "resume (--resume) or replace it with force (--force)")
    check_writable_dir(out, "out")
    return out, old_points, created


def _compute_point(s: dict, m2: float, label: str, theory, out: pathlib.Path, prev, *, resume: bool, force: bool):
    """(record, trained params or None, status) of one point with the scan's method (module docstring)."""
    t0 = time.perf_counter()
    method = s["method"]
    if method == "qrg":
        from ..optim.checkpoint import has_checkpoint

        point_dir = out / POINTS_DIR / label
        continue_point = resume and has_checkpoint(point_dir)
        warm = None if continue_point else _warm_start(out, prev)
        rec, params, status = _run_qrg(theory, label, point_dir, s["options"], s["n_samples"], warm,
                                       continue_point=continue_point, replace=resume or force)
    elif method == "dmrg":
        rec, params, status = _run_dmrg(theory, s["options"])
    else:
        rec, params, status = _run_netket(theory, s["options"], s["n_samples"])
    n_sites = theory.lattice.n_sites
    energy, energy_err = rec.pop("energy"), rec.pop("energy_err")
    record = {
        "label": label, "m2": m2, "lam": s["lam"], "method": method,
        "energy": energy, "energy_err": energy_err,
        "energy_per_site": None if energy is None else energy / n_sites,
        "energy_per_site_err": None if energy_err is None else energy_err / n_sites,
        **rec, "wall_time_s": time.perf_counter() - t0,
    }
    return record, params, status


def _warm_start(out: pathlib.Path, prev) -> dict | None:
    """The parameters the next qrg point starts from: the previous point's (in memory, or loaded from its run
    directory with :func:`qrg.groundstate.load_run`), None for the first point or after a failed one."""
    if prev is None:
        return None
    if prev["status"] != "completed":
        return {"label": None, "params": None,
                "note": f"previous point {prev['label']} has status {prev['status']!r}: started from init"}
    if prev["params"] is not None:
        return {"label": prev["label"], "params": prev["params"]}
    from ..groundstate import load_run

    try:
        state = load_run(out / POINTS_DIR / prev["label"])
    except QRGInputError as err:
        return {"label": None, "params": None,
                "note": f"the run of {prev['label']} could not be loaded ({err}): started from init"}
    return {"label": prev["label"], "params": state.params}
