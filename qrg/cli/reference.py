"""``qrg reference``: a trusted reference energy for a problem, as JSON.

``--method exact`` is the free theory (λ = 0) in closed form. Other methods register in
``METHODS`` (name -> callable(theory, args) -> dict with at least the keys of the exact one).
"""

from __future__ import annotations

import json
import pathlib

from .._validation import QRGInputError
from . import add_theory_args, theory_from_args


def _exact(theory, args) -> dict:
    return theory.exact_reference()


METHODS = {"exact": _exact}


def add_parser(sub) -> None:
    p = sub.add_parser("reference", help="print a reference ground-state energy as JSON")
    add_theory_args(p)
    p.add_argument("--method", default="exact", help="exact (free theory)")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.set_defaults(run=run)


def run(args) -> int:
    theory = theory_from_args(args)
    if args.method not in METHODS:
        raise QRGInputError(f"--method must be one of {sorted(METHODS)} (got {args.method!r})")
    result = METHODS[args.method](theory, args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        path = pathlib.Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return 0
