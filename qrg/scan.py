"""Ground states along a line of couplings: ``qrg scan`` (the Z2 transition of lattice φ⁴).

:func:`scan` computes the ground state of ``Phi4(d, N, a, m², λ)`` for each m² of a list (in the
given order) with one method and measures the order parameter of the φ → −φ symmetry on it:

* ``M = N^-d Σ_n φ_n`` (design §2), per sample; ``M`` (the signed mean, which vanishes by symmetry:
  a check), ``abs_M`` = ⟨|M|⟩, ``M2`` = ⟨M²⟩, ``M4`` = ⟨M⁴⟩, ``phi2`` = ⟨φ_n²⟩ (site average);
* the Binder cumulant ``U4 = 1 − ⟨M⁴⟩/(3⟨M²⟩²)``: 0 for a Gaussian M (disordered phase, large N),
  2/3 for two sharp peaks at ±M₀ (ordered phase); the curves of different N cross near the
  transition (:func:`binder_crossing`);
* ``peak_weight`` = the fraction of samples with M > 0: ½ by symmetry. A state that has collapsed
  into one well of the double-well (a broken-symmetry variational state) shows up as a peak
  weight away from ½ and a nonzero ⟨M⟩.

Methods:

* ``"qrg"``: :func:`qrg.solve` per point (``out = DIR/points/<label>``), **warm-started** from the
  trained parameters of the previous point of the list (``init_params``); observables from
  ``n_samples`` independent draws of |Ψ|² at t = 0 (:meth:`~qrg.groundstate.GroundState.sample`):
  errors are standard errors of the mean, and a 20-block jackknife (:func:`qrg.stats.jackknife`)
  for U4. ``energy``, ``energy_err`` (statistical), ``energy_sys`` (ODE discretisation) and
  ``variance`` = Var(E_loc) are those of the solve's final evaluation, and ``warnings`` its
  :attr:`~qrg.groundstate.SolveResult.warnings` (unresolved tails; an ODE systematic above 3 statistical
  errors, which marks a point whose samples, and so its ⟨M²⟩ and U4, are not trustworthy), printed by
  ``qrg scan`` under the point's row.
* ``"dmrg"``: :class:`qrg.baselines.DMRG` (TeNPy) per point: ``energy_err`` is the DMRG truncation
  estimate (``error_estimate``); ``M2``, ``M4``, ``U4`` and ``phi2`` are MPS expectation values
  (exact for the MPS; their truncation error is not estimated: ``err`` 0); ``abs_M``, ``M`` and
  ``peak_weight`` need the distribution of M, which the MPS does not sample: None. No Var(E_loc).
* ``"netket"``: NetKet VMC with the translation-invariant neural ansatz (the ``netket-neural``
  baseline, :func:`qrg.baselines.netket_vmc.vmc_ground_state`) per point, not warm-started;
  observables from the ``n_eval_samples`` Metropolis samples of its final evaluation (default:
  ``n_samples``) by the same formulas as for qrg, with errors from the chains' integrated
  autocorrelation time (:func:`qrg.stats.statistics`) and the blocked jackknife for U4.

Files in ``out``: ``scan.json`` (settings, machine, one record per point; rewritten atomically
after every point, so a killed scan keeps its finished points), ``scan.csv`` (one row per point),
``scan.png`` (⟨|M|⟩, ⟨M²⟩, U4, ⟨φ²⟩, E per site and Var(E_loc) against m²) and, for qrg, the run
directory of every point under ``points/``. ``resume=True`` keeps the finished points of an
existing scan with the same settings and computes the others.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import pathlib
import time
import zlib

import numpy as np

from ._validation import QRGInputError, check_int, check_real, check_writable_dir
from .stats import format_value_error, jackknife, statistics

METHODS = ("qrg", "dmrg", "netket")
SCAN_FILE, CSV_FILE, PLOT_FILE = "scan.json", "scan.csv", "scan.png"
POINTS_DIR = "points"
FORMAT_VERSION = 1
#: settings that must agree for a scan to be resumed
SETTINGS = ("d", "N", "a", "lam", "method", "options", "n_samples")
#: the observables of every point, each ``{"mean": ..., "err": ...}`` or None where not measurable
OBSERVABLES = ("M", "abs_M", "M2", "M4", "U4", "phi2", "peak_weight", "variance")
#: smallest N per method (DMRG: the baseline's own rule, see :meth:`qrg.baselines.DMRG.why_not`)
MIN_N = {"qrg": 2, "netket": 2, "dmrg": 2}
_PROBLEM_KEYS = ("d", "N", "a", "m2", "lam")


# ============================================================================ observables
def magnetisation_observables(phi, lattice, *, chains: bool = False, n_blocks: int = 20) -> dict:
    """``M``, ``abs_M``, ``M2``, ``M4``, ``phi2``, ``peak_weight`` and ``U4`` of field samples ``phi``.

    ``phi``: shape ``(n, *lattice.shape)`` of independent samples, or with ``chains=True``
    ``(n_chains, n_per_chain, *lattice.shape)`` of Markov chains. Per sample ``M = N^-d Σ_n φ_n``;
    means of M, |M|, M², M⁴, the site average of φ² and the indicator M > 0 (``peak_weight``), with
    the standard error of the mean (chains: with τ_int, :func:`qrg.stats.statistics`);
    ``U4 = 1 − ⟨M⁴⟩/(3⟨M²⟩²)`` of the sample means, its error by a blocked jackknife over ``n_blocks``
    blocks of consecutive samples (chain by chain for Markov chains). Returns ``{name: {"mean", "err"}}``.
    """
    phi = np.asarray(phi, dtype=float)
    lead = phi.shape[: phi.ndim - lattice.d]
    if tuple(phi.shape[len(lead):]) != tuple(lattice.shape) or len(lead) != (2 if chains else 1):
        raise QRGInputError(f"phi must have shape {'(n_chains, n, ' if chains else '(n, '}"
                            f"{', '.join(map(str, lattice.shape))}) (got {phi.shape})")
    flat = phi.reshape(lead + (-1,))
    m = flat.mean(axis=-1)
    per_sample = {"M": m, "abs_M": np.abs(m), "M2": m**2, "M4": m**4, "phi2": (flat**2).mean(axis=-1),
                  "peak_weight": (m > 0).astype(float)}
    out = {}
    for name, x in per_sample.items():
        s = statistics(x, correlated=chains)
        out[name] = {"mean": _num(s.mean), "err": _num(s.err)}
    rows = np.stack([m.reshape(-1) ** 2, m.reshape(-1) ** 4], axis=1)  # chain-major: blocks stay in a chain
    u4 = binder_cumulant(rows[:, 0].mean(), rows[:, 1].mean())
    _, err = jackknife(rows, lambda r: binder_cumulant(r[:, 0].mean(), r[:, 1].mean()), n_blocks=n_blocks)
    out["U4"] = {"mean": _num(u4), "err": _num(err)}
    return out


def binder_cumulant(m2: float, m4: float) -> float:
    """``1 − ⟨M⁴⟩/(3⟨M²⟩²)``."""
    return 1.0 - float(m4) / (3.0 * float(m2) ** 2)


def params_digest(params) -> str:
    """SHA-256 of a parameter pytree's leaves (dtype, shape and bytes, in tree order): equal digests mean
    bit-identical parameters (how ``scan.json`` records that a point started from its neighbour's state)."""
    import jax

    h = hashlib.sha256()
    for x in jax.tree_util.tree_leaves(params):
        x = np.ascontiguousarray(np.asarray(x))
        h.update(str((x.dtype.str, x.shape)).encode())
        h.update(x.tobytes())
    return h.hexdigest()


def _num(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _obs(mean, err=0.0):
    return None if mean is None else {"mean": _num(mean), "err": _num(err) if err is not None else None}


# ============================================================================ inputs
def point_label(m2: float) -> str:
    """The name of a point (and of its run directory): ``m2_<value>``, e.g. ``m2_-0.5``."""
    return f"m2_{float(m2):.12g}"


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
    from .theory import Phi4

    theories = [Phi4.from_params(d=d, N=N, a=a, m2=v, lam=lam) for v in values]
    if method == "qrg":
        from .groundstate.config import SolveConfig
        from .groundstate.solve import check_memory

        for bad in ("init_params", "out", "resume", "force"):
            if bad in options:
                raise QRGInputError(f"options may not set {bad!r}: the scan manages it")
        cfg = SolveConfig().replace(**options, **theories[0].params())
        check_memory(cfg)
        if cfg.model == "custom":  # pragma: no cover - a ready model is not JSON
            raise QRGInputError("options: model must be a registered score model name")
    elif method == "dmrg":
        from .baselines import DMRG

        dmrg = DMRG()
        dmrg.check_options(options)
        reason = dmrg.why_not(theories[0], **options)
        if reason is not None:
            raise QRGInputError(reason)
    else:
        from .baselines import NetKetNeural

        NetKetNeural().check_options(options)
    n_samples = None if method == "dmrg" else check_int("n_samples", n_samples, minimum=40)
    return {"d": d, "N": N, "a": a, "lam": lam, "method": method, "options": options, "n_samples": n_samples,
            "m2_values": values, "theories": theories}


# ============================================================================ one point per method
def _run_qrg(theory, label, point_dir, options, n_samples, warm, *, continue_point: bool, replace: bool):
    """Solve one point (warm-started from ``warm``) and measure it. Returns (record, params, status)."""
    import jax

    from .groundstate import solve
    from .optim.checkpoint import atomic_write_text

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
    }
    return record, result.params, result.status


def _run_dmrg(theory, options):
    from .baselines import DMRG

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
    from .baselines.netket_vmc import evaluation_fields, vmc_ground_state

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


def _json_ready(x):
    if isinstance(x, dict):
        return {str(k): _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, (np.generic, np.ndarray)):
        return _json_ready(np.asarray(x).tolist())
    if isinstance(x, float):
        return _num(x)
    return x


# ============================================================================ files
def _machine() -> dict:
    from . import __version__
    from .bench.results import machine_info

    info = machine_info()
    info["versions"]["qrg"] = __version__
    return info


def read_scan(source) -> dict:
    """A scan's data from a dict (returned as is), a ``scan.json`` path or the scan's directory."""
    if isinstance(source, dict):
        return source
    path = pathlib.Path(source)
    if path.is_dir():
        path = path / SCAN_FILE
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise QRGInputError(f"cannot read the scan {str(path)!r}: {err.strerror}") from None
    except ValueError as err:
        raise QRGInputError(f"{str(path)!r} is not a scan.json ({err})") from None
    if not isinstance(data, dict) or "points" not in data or "method" not in data:
        raise QRGInputError(f"{str(path)!r} is not a scan.json (no points/method)")
    return data


def _write(out: pathlib.Path, data: dict, *, plot: bool = True) -> None:
    from .optim.checkpoint import atomic_write_text

    data["updated"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    atomic_write_text(out / SCAN_FILE, json.dumps(data, indent=1) + "\n")
    atomic_write_text(out / CSV_FILE, scan_csv(data))
    if plot:
        plot_scan(data, out / PLOT_FILE)


CSV_COLUMNS = ("m2", "lam", "method", "status", "energy", "energy_err", "energy_per_site", "energy_per_site_err",
               *[c for name in OBSERVABLES for c in (name, name + "_err")], "wall_time_s")


def scan_csv(data: dict) -> str:
    """One row per point: m², the energy (and per site) with errors, every observable's mean and err."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for p in sorted(data["points"], key=lambda p: p["m2"]):
        row = []
        for c in CSV_COLUMNS:
            if c.endswith("_err") and c[:-4] in OBSERVABLES:
                v = (p.get(c[:-4]) or {}).get("err")
            elif c in OBSERVABLES:
                v = (p.get(c) or {}).get("mean")
            else:
                v = p.get(c)
            row.append("" if v is None else v)
        w.writerow(row)
    return buf.getvalue()


# ============================================================================ the scan
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
        from .optim.checkpoint import has_checkpoint

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
    from .groundstate import load_run

    try:
        state = load_run(out / POINTS_DIR / prev["label"])
    except QRGInputError as err:
        return {"label": None, "params": None,
                "note": f"the run of {prev['label']} could not be loaded ({err}): started from init"}
    return {"label": prev["label"], "params": state.params}


# ============================================================================ several seeds
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


# ============================================================================ pieces of one line
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


# ============================================================================ Binder crossing
def _u4_curve(data: dict):
    pts = sorted((p for p in data["points"] if p.get("U4") and p["U4"].get("mean") is not None),
                 key=lambda p: p["m2"])
    x = np.array([p["m2"] for p in pts], dtype=float)
    u = np.array([p["U4"]["mean"] for p in pts], dtype=float)
    err = [p["U4"].get("err") for p in pts]
    e = None if any(v is None for v in err) or not any(err) else np.array(err, dtype=float)
    return x, u, e


def _interp_weights(x: np.ndarray, at: float) -> dict[int, float]:
    """Weights of the nodes of ``x`` (ascending) in the linear interpolation at ``at`` (x[0] <= at <= x[-1])."""
    i = int(np.searchsorted(x, at, side="right")) - 1
    i = min(max(i, 0), len(x) - 1)
    if i == len(x) - 1 or x[i] == at:
        return {i: 1.0}
    w = (at - x[i]) / (x[i + 1] - x[i])
    return {i: 1.0 - w, i + 1: w}


def binder_crossing(scan_a, scan_b) -> dict:
    """The m² where the U4 curves of two scans of different N (same d, a, lam and method) cross.

    Each curve is the linear interpolation of its U4 values in m²; on the union of both grids within
    their common m² range the difference D = U4_a − U4_b is linear between neighbouring nodes, and a
    sign change of D between two nodes brackets a crossing, found by linear interpolation
    ``m²* = x0 + D0 (x1 − x0)/(D0 − D1)``. Its error propagates the U4 errors of the points that enter
    (independent; ∂m²*/∂U4_i from the interpolation weights); None when the U4 values carry no error
    (deterministic methods). With several sign changes (noise near the crossing) the one at the lowest
    m² is reported under ``m2`` and all of them under ``crossings``.

    ``scan_a``, ``scan_b``: scan data (dicts) or paths (``scan.json`` or its directory). Returns
    ``{"m2", "err", "bracket", "U4", "N": [N_a, N_b], "lam", "method", "d", "a", "crossings", "reason"}``;
    ``m2`` None and ``reason`` a sentence when the curves do not cross in the common range.
    """
    a, b = read_scan(scan_a), read_scan(scan_b)
    for key in ("d", "a", "lam", "method"):
        if a.get(key) != b.get(key):
            raise QRGInputError(f"binder_crossing needs scans with the same {key} (got {a.get(key)} and {b.get(key)})")
    if a.get("N") == b.get("N"):
        raise QRGInputError(f"binder_crossing needs scans of different N (both have N = {a.get('N')})")
    out = {"m2": None, "err": None, "bracket": None, "U4": None, "N": [a["N"], b["N"]], "lam": a["lam"],
           "method": a["method"], "d": a.get("d"), "a": a.get("a", 1.0), "crossings": [], "reason": None}
    xa, ua, ea = _u4_curve(a)
    xb, ub, eb = _u4_curve(b)
    if len(xa) < 2 or len(xb) < 2:
        out["reason"] = (f"each scan needs U4 at two m² values at least (N = {a['N']}: {len(xa)}, "
                         f"N = {b['N']}: {len(xb)})")
        return out
    lo, hi = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if not lo < hi:
        out["reason"] = f"the m² ranges [{xa[0]:g}, {xa[-1]:g}] and [{xb[0]:g}, {xb[-1]:g}] do not overlap"
        return out
    grid = np.unique(np.concatenate([xa[(xa >= lo) & (xa <= hi)], xb[(xb >= lo) & (xb <= hi)], [lo, hi]]))

    def diff_weights(at):
        """D(at) and its gradient: {("a", i): ∂D/∂U4_a[i]} and {("b", j): ...}."""
        wa, wb = _interp_weights(xa, at), _interp_weights(xb, at)
        value = sum(w * ua[i] for i, w in wa.items()) - sum(w * ub[j] for j, w in wb.items())
        grad = {("a", i): w for i, w in wa.items()}
        grad.update({("b", j): -w for j, w in wb.items()})
        return value, grad

    deterministic = ea is None and eb is None
    sigma = {("a", i): (0.0 if ea is None else ea[i]) for i in range(len(xa))}
    sigma.update({("b", j): (0.0 if eb is None else eb[j]) for j in range(len(xb))})
    values = [diff_weights(x) for x in grid]
    for k in range(len(grid) - 1):
        (d0, g0), (d1, g1) = values[k], values[k + 1]
        x0, x1 = grid[k], grid[k + 1]
        if d0 == 0 and d1 == 0:
            continue  # the curves coincide on this interval: no isolated crossing
        if d0 == 0 and k > 0:
            continue  # a crossing exactly on a node was reported by the interval that ends there
        if d0 != 0 and d1 != 0 and (d0 < 0) == (d1 < 0):
            continue
        dx = x1 - x0
        m = x0 + d0 * dx / (d0 - d1)
        # ∂m/∂D0 = −dx·D1/(D0−D1)², ∂m/∂D1 = dx·D0/(D0−D1)²; D0, D1 are linear in the U4 values (weights g0, g1)
        c0, c1 = -dx * d1 / (d0 - d1) ** 2, dx * d0 / (d0 - d1) ** 2
        grad: dict = {}
        for g, c in ((g0, c0), (g1, c1)):
            for key, w in g.items():
                grad[key] = grad.get(key, 0.0) + c * w
        err = None if deterministic else float(math.sqrt(sum((gv * sigma[key]) ** 2 for key, gv in grad.items())))
        out["crossings"].append({"m2": float(m), "err": err, "bracket": [float(x0), float(x1)],
                                 "U4": float(np.interp(m, xa, ua))})
    if not out["crossings"]:
        out["reason"] = (f"the U4 curves of N = {a['N']} and N = {b['N']} do not cross in the common range "
                         f"m² ∈ [{lo:g}, {hi:g}] (U4_a − U4_b keeps the sign {'+' if values[0][0] > 0 else '−'})")
        return out
    first = out["crossings"][0]
    out.update(m2=first["m2"], err=first["err"], bracket=first["bracket"], U4=first["U4"])
    return out


def crossings(scans) -> list[dict]:
    """:func:`binder_crossing` of every pair of neighbouring N among ``scans`` with the same d, a, lam and method."""
    data = [read_scan(s) for s in scans]
    groups: dict = {}
    for s in data:
        groups.setdefault((s.get("d"), s.get("a"), s.get("lam"), s.get("method")), []).append(s)
    out = []
    for group in groups.values():
        group = sorted(group, key=lambda s: s["N"])
        for sa, sb in zip(group, group[1:]):
            if sa["N"] != sb["N"]:
                out.append(binder_crossing(sa, sb))
    return out


# ============================================================================ plots
def _series(data: dict, name: str):
    pts = sorted(data["points"], key=lambda p: p["m2"])
    x, y, e = [], [], []
    for p in pts:
        if name in ("energy_per_site",):
            v, err = p.get("energy_per_site"), p.get("energy_per_site_err")
        else:
            o = p.get(name) or {}
            v, err = o.get("mean"), o.get("err")
        if v is None:
            continue
        x.append(p["m2"])
        y.append(v)
        e.append(0.0 if err is None else err)
    return np.array(x), np.array(y), np.array(e)


PANELS = (("abs_M", "⟨|M|⟩"), ("M2", "⟨M²⟩"), ("U4", "U4 = 1 − ⟨M⁴⟩/3⟨M²⟩²"), ("phi2", "⟨φ²⟩"),
          ("energy_per_site", "E / site"), ("variance", "Var(E_loc)"))


def plot_scan(data: dict, path) -> None:
    """``scan.png``: ⟨|M|⟩, ⟨M²⟩, U4, ⟨φ²⟩, energy per site and Var(E_loc) against m², with error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, (name, title) in zip(axes.ravel(), PANELS):
        x, y, e = _series(data, name)
        if x.size:
            ax.errorbar(x, y, yerr=e, marker="o", ms=3, lw=1, capsize=2)
        else:
            ax.text(0.5, 0.5, f"not measured by {data['method']}", ha="center", va="center", transform=ax.transAxes)
        if name == "variance" and x.size and np.all(y > 0):
            ax.set_yscale("log")
        ax.set_xlabel("m²")
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"qrg scan: {data['method']}, d={data['d']} N={data['N']} a={data['a']:g} λ={data['lam']:g}")
    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scans(scans, path, crossing_list=None) -> list[dict]:
    """U4 against m² for several scans (N and methods), with the Binder crossings of :func:`crossings`
    marked (a vertical line and its ±1σ band). Returns the crossings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [read_scan(s) for s in scans]
    if crossing_list is None:
        crossing_list = crossings(data)
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    markers = {"qrg": "o", "dmrg": "s", "netket": "^"}
    for s in sorted(data, key=lambda s: (s["method"], s["N"])):
        x, y, e = _series(s, "U4")
        if x.size:
            ax.errorbar(x, y, yerr=e, marker=markers.get(s["method"], "o"), ms=3, lw=1, capsize=2,
                        label=f"{s['method']} N={s['N']} (λ={s['lam']:g})")
    for c in crossing_list:
        if c["m2"] is None:
            continue
        label = f"crossing N={c['N'][0]},{c['N'][1]} ({c['method']}, λ={c['lam']:g}): m²={c['m2']:.4g}"
        if c["err"]:
            label += f" ± {c['err']:.2g}"
            ax.axvspan(c["m2"] - c["err"], c["m2"] + c["err"], color="grey", alpha=0.2, lw=0)
        ax.axvline(c["m2"], color="grey", ls="--", lw=1, label=label)
    ax.set_xlabel("m²")
    ax.set_ylabel("U4 = 1 − ⟨M⁴⟩/(3⟨M²⟩²)")
    if len(ax.get_legend_handles_labels()[0]) > 6:  # many curves: the legend beside the axes, not over the data
        fig.set_size_inches(10.5, 4.8)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.legend(fontsize=7)
    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return crossing_list


def phase_diagram_rows(crossing_list) -> list[dict]:
    """The lattice critical points m²_c(λ) of Binder crossings (:func:`crossings`, or the infinite-size
    estimates of :func:`qrg.continuum.size_extrapolated_crossings`), one row per crossing that has an m²:
    ``{"d", "a", "method", "sizes", "N", "lam", "m2", "err"}``, sorted by (d, method, sizes, λ). ``sizes``
    is e.g. ``"N = 16, 32"`` (``"4×4, 8×8"`` for squares)."""
    rows = []
    for c in crossing_list:
        if c.get("m2") is None:
            continue
        d = c.get("d") or 1
        sizes = c.get("sizes") or ("N = " + ", ".join(str(n) for n in c["N"]) if d == 1
                                   else ", ".join("×".join([str(n)] * d) for n in c["N"]))
        rows.append({"d": d, "a": c.get("a", 1.0), "method": c["method"], "sizes": sizes, "N": list(c["N"]),
                     "lam": c["lam"], "m2": c["m2"], "err": c.get("err")})
    # size-extrapolated estimates ("N → ∞ ...") after the pairs they come from
    return sorted(rows, key=lambda r: (r["d"], r["method"], r["sizes"].startswith("N →"), r["N"], r["lam"]))


def plot_phase_diagram(crossing_list, path, *, continuum_f: float | None = None) -> list[dict]:
    """The phase diagram in the (λ, m²) plane: the critical points of :func:`phase_diagram_rows` with their
    error bars, one panel per dimension d and one series per method and pair of sizes; the symmetric
    phase lies above the points (m² > m²_c) and the broken Z2 phase below. Chains (d = 1) also get the
    continuum asymptote m²_c(λ) of the continuum critical coupling ``continuum_f`` (λ'φ⁴/4 convention;
    default the Monte Carlo value of :data:`qrg.continuum.PUBLISHED`) from
    :func:`qrg.continuum.continuum_critical_m2`: the line the lattice points approach as λa² → 0.
    Returns the rows plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .continuum import PUBLISHED, continuum_critical_m2

    rows = phase_diagram_rows(crossing_list)
    if not rows:
        raise QRGInputError("plot_phase_diagram: no Binder crossing with an m² to plot")
    dims = sorted({r["d"] for r in rows})
    fig, axes = plt.subplots(2, len(dims), figsize=(6.4 * len(dims), 6.6), squeeze=False,
                             gridspec_kw={"height_ratios": [3.0, 1.5]})
    markers = {"qrg": "o", "dmrg": "s", "netket": "^"}
    f_c = PUBLISHED[0][0] if continuum_f is None else float(continuum_f)
    for ax, low, d in zip(axes[0], axes[1], dims):
        sub = [r for r in rows if r["d"] == d]
        series: dict = {}
        for r in sub:  # infinite-size estimates of several λ (each from its own sizes) are one series
            key = r["sizes"].split(";")[0] + ")" if r["sizes"].startswith("N →") and ";" in r["sizes"] else r["sizes"]
            series.setdefault((r["method"], key), []).append(r)
        lam_max = max(r["lam"] for r in sub)
        for k, ((method, sizes), pts) in enumerate(series.items()):
            lam = np.array([r["lam"] for r in pts])
            m2 = np.array([r["m2"] for r in pts])
            err = np.array([0.0 if r["err"] is None else r["err"] for r in pts])
            shift = 0.012 * (k - (len(series) - 1) / 2) * max(lam_max, 1.0)  # side by side, not on top
            line = ax.errorbar(lam + shift, m2, yerr=err, marker=markers.get(method, "D"), ms=4, lw=0.8,
                               elinewidth=1, capsize=2, label=f"{method}, Binder crossing {sizes}")
            if d == 1:  # the distance to the continuum asymptote: the lattice artefact and the finite size
                asym = np.array([continuum_critical_m2(r["lam"], a=r["a"], f=f_c) for r in pts])
                low.errorbar(lam + shift, m2 - asym, yerr=err, marker=markers.get(method, "D"), ms=4, lw=0.8,
                             elinewidth=1, capsize=2, color=line[0].get_color())
        if d == 1:
            for a in sorted({r["a"] for r in sub}):
                xs = np.linspace(lam_max * 0.02, lam_max * 1.08, 80)
                ys = [continuum_critical_m2(x, a=a, f=f_c) for x in xs]
                ax.plot(xs, ys, color="grey", ls=":", lw=1,
                        label=f"continuum asymptote (f_c = {f_c:g}, a = {a:g}), exact as λa² → 0")
            low.axhline(0.0, color="grey", ls=":", lw=1)
            low.set_xlim(0.0, lam_max * 1.1)
            low.set_xlabel("λ (λφ⁴/4! convention)")
            low.set_ylabel("m²_c − asymptote")
        else:
            low.set_axis_off()
            ax.set_xlabel("λ (λφ⁴/4! convention)")
        ax.set_xlim(0.0, lam_max * 1.1)
        lo = min(r["m2"] - (r["err"] or 0.0) for r in sub)
        hi = max(0.0, max(r["m2"] + (r["err"] or 0.0) for r in sub))
        pad = 0.15 * max(hi - lo, 0.1)
        ax.set_ylim(lo - pad, hi + pad)  # m² = 0 in view: the scale of the shift from the free theory's m²_c
        ax.text(0.97, 0.95, "symmetric (m² > m²_c)", transform=ax.transAxes, ha="right", va="top", fontsize=8)
        ax.text(0.03, 0.05, "broken Z2 (m² < m²_c)", transform=ax.transAxes, ha="left", va="bottom", fontsize=8)
        ax.set_ylabel("m²_c")
        ax.set_title({1: "chains (1+1D)", 2: "squares (2+1D)", 3: "cubes (3+1D)"}.get(d, f"d = {d}"), fontsize=10)
        ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 0.1))
    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return rows


# ============================================================================ printing
TABLE_COLUMNS = (("m²", 10), ("E/site", 22), ("⟨M²⟩", 24), ("U4", 22), ("⟨|M|⟩", 22), ("peak w.", 18),
                 ("Var(E_loc)", 11))


def _fmt(o) -> str:
    if o is None or o.get("mean") is None:
        return "-"
    err = o.get("err")
    return format_value_error(o["mean"], err) if err else f"{o['mean']:.6g}"


def table_header() -> str:
    return "  ".join(f"{name:>{w}}" for name, w in TABLE_COLUMNS)


def table_row(p: dict, kept: bool = False) -> str:
    """One line of the ``qrg scan`` table for point record ``p``."""
    e = {"mean": p.get("energy_per_site"), "err": p.get("energy_per_site_err")}
    var = p.get("variance")
    cells = [f"{p['m2']:.6g}", _fmt(e), _fmt(p.get("M2")), _fmt(p.get("U4")), _fmt(p.get("abs_M")),
             _fmt(p.get("peak_weight")), "-" if not var or var.get("mean") is None else f"{var['mean']:.3g}"]
    line = "  ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, TABLE_COLUMNS))
    status = p.get("status")
    if status and status != "completed":
        line += f"  [{status}]"
    return line + ("  (kept)" if kept else "")
