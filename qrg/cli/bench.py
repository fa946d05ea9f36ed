"""``qrg bench --suite quick|full``: qrg's solver against ED/DMRG references and NetKet ansätze.

Writes ``OUT/results.json``, ``OUT/results.md`` and plots (see :mod:`qrg.bench`); ``--resume``
continues a run in ``OUT`` (finished problems are kept).
"""

from __future__ import annotations

from .._validation import QRGInputError
from . import parse_list


def add_parser(sub) -> None:
    from ..baselines import BASELINES
    from ..bench import METHODS, SUITES

    p = sub.add_parser("bench", help="benchmark qrg against ED/DMRG/NetKet on identical Hamiltonians",
                       description=__doc__)
    p.add_argument("--suite", default="quick", help=f"one of {sorted(SUITES)} (default quick)")
    p.add_argument("--out", default="bench", help="output directory (default bench/)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated methods (default {','.join(METHODS)}): reference (the best that "
                        f"applies: exact > ed > dmrg), qrg, or any baseline: {', '.join(BASELINES)}")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the stochastic methods")
    p.add_argument("--d", default=None, help="only problems of these dimensions, comma-separated (e.g. 1)")
    p.add_argument("--N", default=None, help="only problems of these sizes, comma-separated (e.g. 8,16)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out (finished problems are kept, not rerun)")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --resume: rerun the methods that failed in finished problems, keeping the rest")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..bench import run_suite

    methods = tuple(m.strip() for m in str(args.methods).split(",") if m.strip())
    if not methods:
        raise QRGInputError("--methods must name at least one method")
    result = run_suite(args.suite, out=args.out, methods=methods, seed=args.seed, d=_int_list("--d", args.d),
                       N=_int_list("--N", args.N), resume=args.resume,
                       retry_failed=args.retry_failed)
    status = "" if result["complete"] else " (suite not complete: rerun with --resume and the other sizes)"
    print(f"wrote {args.out}/results.json, results.md and plots ({result['total_wall_time_s']:.0f} s){status}")
    return 0


def _int_list(flag: str, text):
    if text is None:
        return None
    values = tuple(parse_list(flag, text))
    if not values or min(values) < 1:
        raise QRGInputError(f"{flag} must be comma-separated positive integers (got {text!r})")
    return values
