"""Input checks that fail early with a message naming the parameter.

Every public constructor of qrg validates its arguments here, so that bad input
gives a readable ``QRGInputError`` instead of a NaN or a traceback from inside JAX.
"""

from __future__ import annotations

import math
import numbers
import os
import pathlib
import socket

import jax
import numpy as np


class QRGInputError(ValueError):
    """Raised for invalid user input; the message names the parameter and the allowed range."""


def check_int(name: str, value, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise QRGInputError(f"{name} must be an integer >= {minimum} (got {value!r})")
    value = int(value)
    if value < minimum:
        raise QRGInputError(f"{name} must be an integer >= {minimum} (got {value})")
    return value


def check_real(name: str, value, *, positive: bool = False, nonnegative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise QRGInputError(f"{name} must be a real number (got {value!r})") from None
    value = float(value)
    if not math.isfinite(value):
        raise QRGInputError(f"{name} must be finite (got {value})")
    if positive and not value > 0:
        raise QRGInputError(f"{name} must be > 0 (got {value})")
    if nonnegative and not value >= 0:
        raise QRGInputError(f"{name} must be >= 0 (got {value})")
    return value


def check_time(t, name: str = "t"):
    """Reject negative RG times when ``t`` is concrete; traced values pass through."""
    if isinstance(t, jax.core.Tracer):
        return t
    arr = np.asarray(t)
    if arr.dtype.kind not in "iuf":
        raise QRGInputError(f"{name} must be a real RG time >= 0 (got {t!r})")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise QRGInputError(f"{name} must be a finite RG time >= 0 (got {t!r})")
    return t


def check_writable_dir(path, name: str = "out"):
    """``path`` as a writable directory (created if missing), checked before any work; a
    :class:`QRGInputError` naming ``name`` if it is a file or cannot be written."""
    out = pathlib.Path(path)
    if out.exists() and not out.is_dir():
        raise QRGInputError(f"{name} {str(out)!r} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        # per host and process: the processes of a multi-process run check the same directory at once
        probe = out / f".qrg-write-test-{socket.gethostname()}-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise QRGInputError(f"{name} {str(out)!r} is not writable ({err.strerror})") from None
    return out
