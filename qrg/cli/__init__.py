"""The ``qrg`` command line. Each sub-command lives in its own module with
``add_parser(subparsers)`` and ``run(args)``; register it in ``_COMMANDS``."""

from __future__ import annotations

import argparse
import importlib
import sys

from .._validation import QRGInputError, check_writable_dir

# sub-command name -> module (relative to qrg.cli)
_COMMANDS = {
    "reference": ".reference",
    "solve": ".solve",
    "flow": ".flow",
    "sample": ".sample",
    "bench": ".bench",
    "rgflow": ".rgflow",
    "scan": ".scan",
    "critical": ".critical",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qrg", description="Learned-RG ground states of lattice φ⁴ theory")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, mod in _COMMANDS.items():
        module = importlib.import_module(mod, __name__)
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except QRGInputError as err:
        print(f"qrg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before a run's loop started (set-up, compilation): nothing to save yet
        print(f"qrg {args.command}: interrupted (nothing saved)", file=sys.stderr)
        return 130


def add_theory_args(parser: argparse.ArgumentParser, *, defaults: dict | None = None) -> None:
    """The shared problem flags --d --N --a --m2 --lam."""
    defaults = defaults or {}
    parser.add_argument("--d", type=int, default=defaults.get("d"), help="spatial dimensions (default 1)")
    parser.add_argument("--N", type=int, default=defaults.get("N"), help="sites per side")
    parser.add_argument("--a", type=float, default=defaults.get("a"), help="lattice spacing (default 1)")
    parser.add_argument("--m2", type=float, default=defaults.get("m2"), help="bare mass squared")
    parser.add_argument("--lam", type=float, default=defaults.get("lam"), help="quartic coupling λ (λ/4! φ⁴)")


def theory_from_args(args, *, fallback: dict | None = None):
    """Build a Phi4 from parsed flags, filling unset ones from ``fallback``."""
    from ..theory import Phi4

    fallback = {"d": 1, "a": 1.0, **(fallback or {})}
    vals = {}
    for key in ("d", "N", "a", "m2", "lam"):
        v = getattr(args, key, None)
        if v is None:
            v = fallback.get(key)
        if v is None:
            raise QRGInputError(f"--{key} is required")
        vals[key] = v
    return Phi4.from_params(**vals)


def check_out_dir(path, flag: str = "--out"):
    """A writable output directory (created if missing), checked before any work."""
    return check_writable_dir(path, flag)


def check_out_file(path, flag: str = "--out"):
    """A writable output file path (its directory created if missing), checked before any work."""
    import pathlib

    out = pathlib.Path(path)
    if out.is_dir():
        raise QRGInputError(f"{flag} {str(out)!r} is a directory; give a file name")
    check_out_dir(out.parent if str(out.parent) else ".", flag)
    return out


def parse_list(flag: str, text, kind=int, what: str = "integers"):
    """``"1,2,3"`` -> [1, 2, 3] (None stays None); a malformed list is a QRGInputError naming ``flag``."""
    if text is None:
        return None
    try:
        return [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise QRGInputError(f"{flag} must be a comma-separated list of {what} (got {text!r})") from None
