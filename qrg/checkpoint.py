"""Checkpoints of an optimisation: everything needed to continue the same run bit for bit.

A checkpoint is a directory entry ``checkpoint.pkl`` (pickle of a dict of numpy pytrees:
parameters, optimiser state, PRNG key, step, history, learning-rate scale, events, config) plus
a human-readable ``checkpoint.json`` summary. Both are written to a temporary file in the same
directory, flushed to disk and moved into place with an atomic ``os.replace``: a run killed
mid-write leaves the previous checkpoint intact.

Arrays are stored as numpy arrays of the same dtype (float64 round trips exactly), so a resumed
run computes with bit-identical inputs.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import tempfile

import jax
import numpy as np

from ._validation import QRGInputError

CHECKPOINT_FILE = "checkpoint.pkl"
SUMMARY_FILE = "checkpoint.json"
FORMAT_VERSION = 1


def _to_numpy(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x) if isinstance(x, (jax.Array, np.ndarray)) else x, tree)


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


def save_checkpoint(directory, state: dict) -> pathlib.Path:
    """Save ``state`` (a dict with at least ``step``) to ``directory/checkpoint.pkl`` atomically."""
    if "step" not in state:
        raise ValueError("a checkpoint state needs a 'step'")
    directory = pathlib.Path(directory)
    payload = {"format_version": FORMAT_VERSION, **_to_numpy(state)}
    path = directory / CHECKPOINT_FILE
    atomic_write_bytes(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    summary = {"step": int(state["step"]), "format_version": FORMAT_VERSION}
    if "config" in state:
        summary["config"] = state["config"]
    if state.get("history"):
        summary["last"] = state["history"][-1]
    atomic_write_text(directory / SUMMARY_FILE, json.dumps(summary, indent=2, default=float) + "\n")
    return path


def has_checkpoint(directory) -> bool:
    return directory is not None and (pathlib.Path(directory) / CHECKPOINT_FILE).is_file()


def load_checkpoint(directory) -> dict:
    """Load the state saved by :func:`save_checkpoint` (raises QRGInputError if absent or unreadable)."""
    path = pathlib.Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        raise QRGInputError(f"no checkpoint to resume from: {str(path)!r} does not exist")
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError) as err:
        raise QRGInputError(f"checkpoint {str(path)!r} is unreadable: {err}") from None
    if state.get("format_version") != FORMAT_VERSION:
        raise QRGInputError(f"checkpoint {str(path)!r} has format version {state.get('format_version')}, "
                            f"expected {FORMAT_VERSION}")
    return state
