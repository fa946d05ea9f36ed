"""The records and files of a scan: settings, the observables of a point (magnetisation moments and the
Binder cumulant), ``scan.json`` / ``scan.csv`` (see :mod:`qrg.scan` for their contents)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import pathlib
import time

import numpy as np

from .._validation import QRGInputError
from ..stats import jackknife, statistics

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


def point_label(m2: float) -> str:
    """The name of a point (and of its run directory): ``m2_<value>``, e.g. ``m2_-0.5``."""
    return f"m2_{float(m2):.12g}"


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


def _machine() -> dict:
    from .. import __version__
    from ..bench.results import machine_info

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
    from ..optim.checkpoint import atomic_write_text

    data["updated"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    atomic_write_text(out / SCAN_FILE, json.dumps(data, indent=1) + "\n")
    atomic_write_text(out / CSV_FILE, scan_csv(data))
    if plot:
        from .plots import plot_scan

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
