"""Checkpoints that cannot run code: arrays in an ``.npz`` archive plus JSON metadata, hashed.

A checkpoint is ONE file, ``checkpoint.npz`` (numpy's zip of ``.npy`` arrays, read with
``allow_pickle=False``):

* ``leaf_<i>``: the array leaves of the state's pytrees (parameters, optimiser state, ...),
  stored with their dtype, so float64 round-trips exactly and a resumed run is bit-identical;
* ``meta``: UTF-8 JSON with the format version, the scalar state (step, history, events,
  config, ...) and, per pytree, its number of leaves with their shapes and dtypes;
* ``digest``: SHA-256 of ``meta`` and every leaf's bytes.

Loading needs a *template* for each pytree (the freshly initialised parameters and optimiser
state of the same configuration): the stored leaves must match the template's number, shapes and
dtypes, and are put into the template's structure. So a file never creates objects by itself,
and a corrupted file (flipped bytes, wrong structure) raises :class:`CheckpointError` (a
:class:`~qrg.QRGInputError`) naming the file: it never loads silently changed parameters.
The file is written to a temporary name in the same directory and moved into place with an
atomic ``os.replace``, so a run killed mid-write keeps its previous checkpoint. A readable
``checkpoint.json`` summary is written beside it (it is not read back).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import tempfile

import jax
import numpy as np

from .._validation import QRGInputError

CHECKPOINT_FILE = "checkpoint.npz"
SUMMARY_FILE = "checkpoint.json"
FORMAT_VERSION = 2


class CheckpointError(QRGInputError):
    """A checkpoint file is missing, corrupted, or does not fit the run."""


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory + os.replace)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _digest(meta: bytes, leaves: list[np.ndarray]) -> str:
    h = hashlib.sha256(meta)
    for x in leaves:
        h.update(str((x.dtype.str, x.shape)).encode())
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def _json_default(x):
    if isinstance(x, (np.generic, np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    raise TypeError(f"cannot store {type(x).__name__} in checkpoint metadata")


def save_checkpoint(directory, trees: dict, meta: dict) -> pathlib.Path:
    """Save the pytrees ``trees`` (name -> pytree of arrays) and JSON-able ``meta`` atomically."""
    directory = pathlib.Path(directory)
    leaves, layout = [], {}
    for name, tree in trees.items():
        flat = [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]
        layout[name] = [[x.dtype.str, list(x.shape)] for x in flat]
        leaves += flat
    meta_bytes = json.dumps({"format_version": FORMAT_VERSION, "layout": layout, **meta},
                            default=_json_default).encode()
    arrays = {f"leaf_{i}": x for i, x in enumerate(leaves)}
    arrays["meta"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    arrays["digest"] = np.frombuffer(_digest(meta_bytes, leaves).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = directory / CHECKPOINT_FILE
    atomic_write_bytes(path, buf.getvalue())
    summary = {"format_version": FORMAT_VERSION, **{k: meta[k] for k in ("step", "status", "config") if k in meta}}
    if meta.get("history"):
        summary["last"] = meta["history"][-1]
    atomic_write_text(directory / SUMMARY_FILE, json.dumps(summary, indent=2, default=_json_default) + "\n")
    return path


def has_checkpoint(directory) -> bool:
    return directory is not None and (pathlib.Path(directory) / CHECKPOINT_FILE).is_file()


def _read(path: pathlib.Path) -> tuple[dict, list[np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            if not {"meta", "digest"} <= names:
                raise ValueError("meta or digest missing")
            n = len(names) - 2
            if names != {"meta", "digest"} | {f"leaf_{i}" for i in range(n)}:
                raise ValueError("unexpected entries")
            meta_bytes = z["meta"].tobytes()
            digest = z["digest"].tobytes().decode("ascii")
            leaves = [z[f"leaf_{i}"] for i in range(n)]
    except Exception as err:  # noqa: BLE001 - any failure to parse an untrusted file means it is corrupted
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable or corrupted "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if _digest(meta_bytes, leaves) != digest:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupted: its content does not match its hash")
    try:
        meta = json.loads(meta_bytes)
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"checkpoint {str(path)!r} has unreadable metadata") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {version}, expected {FORMAT_VERSION}")
    return meta, leaves


def read_meta(directory) -> dict:
    """The JSON metadata of the checkpoint in ``directory`` (verified against its hash)."""
    path = pathlib.Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"no checkpoint in {str(directory)!r}: {str(path)!r} does not exist")
    return _read(path)[0]


def _fits(stored: np.ndarray, dtype: np.dtype, shape: tuple) -> bool:
    """Same shape, and the same dtype up to the width of a floating type."""
    same_kind = stored.dtype == dtype or (stored.dtype.kind == "f" and dtype.kind == "f")
    return stored.shape == tuple(shape) and same_kind


def load_checkpoint(directory, templates: dict) -> tuple[dict, dict]:
    """(pytrees, meta) saved by :func:`save_checkpoint`; each pytree takes the structure of its template
    (arrays or ``jax.ShapeDtypeStruct`` leaves: only shapes and dtypes are read).

    Raises :class:`CheckpointError` (naming the file) if the file is absent, corrupted, or its
    arrays do not fit the templates (another model, lattice or optimiser). Floating arrays are
    converted to the templates' precision, so a run trained in float32 loads into a float64 process.
    """
    path = pathlib.Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to resume from: {str(path)!r} does not exist")
    meta, leaves = _read(path)
    layout = meta.get("layout")
    if not isinstance(layout, dict) or set(layout) != set(templates):
        raise CheckpointError(f"checkpoint {str(path)!r} holds {sorted(layout or {})}, expected {sorted(templates)}")
    trees, pos = {}, 0
    for name in layout:  # the stored order (the leaves are concatenated in it)
        t_leaves, treedef = jax.tree_util.tree_flatten(templates[name])
        stored = leaves[pos:pos + len(layout[name])]
        pos += len(layout[name])
        # template leaves are arrays or ShapeDtypeStructs (both have .dtype), or Python scalars
        dtypes = [np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype for x in t_leaves]
        if len(stored) != len(t_leaves) or any(not _fits(x, dt, np.shape(t)) for x, dt, t in zip(stored, dtypes, t_leaves)):
            raise CheckpointError(f"checkpoint {str(path)!r}: the stored {name} do not fit this run "
                                  "(different model, lattice or optimiser)")
        # floats take the running precision (a float32-trained run evaluated in float64, or back)
        trees[name] = jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(x.astype(dt))
                                                             for x, dt in zip(stored, dtypes)])
    return trees, meta
