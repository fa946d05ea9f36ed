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


def _int_list(name: str, text):
    if text is None:
        return None
    try:
        return [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise QRGInputError(f"{name} must be a comma-separated list of integers (got {text!r})") from None


def _ed(theory, args) -> dict:
    from ..baselines.ed import ed_reference

    dims = _int_list("--local-dims", args.local_dims)
    if dims is None and args.local_dim is not None:
        dims = [args.local_dim - 2, args.local_dim]
    return ed_reference(theory, local_dims=dims, basis=args.basis)


def _dmrg(theory, args) -> dict:
    from ..baselines.dmrg import dmrg_ground_state

    dims = _int_list("--local-dims", args.local_dims)
    if dims is None:
        L = 10 if args.local_dim is None else args.local_dim
        dims = [L - 2, L]
    chis = _int_list("--chis", args.chis)
    if chis is None:
        chi = 64 if args.chi is None else args.chi
        chis = [chi // 2, chi]
    return dmrg_ground_state(theory, local_dims=dims, chis=chis, basis=args.basis)


METHODS = {"exact": _exact, "ed": _ed, "dmrg": _dmrg}


def add_parser(sub) -> None:
    p = sub.add_parser("reference", help="print a reference ground-state energy as JSON")
    add_theory_args(p)
    p.add_argument("--method", default="exact",
                   help="exact (free theory), ed (tiny lattices), dmrg (chains; small tori such as 4x4)")
    p.add_argument("--local-dim", type=int, default=None, help="ed/dmrg: states per site (largest of the sequence)")
    p.add_argument("--local-dims", default=None, help="ed/dmrg: increasing comma-separated local dimensions")
    p.add_argument("--chi", type=int, default=None, help="dmrg: largest bond dimension (runs chi/2, chi)")
    p.add_argument("--chis", default=None, help="dmrg: increasing comma-separated bond dimensions")
    p.add_argument("--basis", default="hartree", help="ed/dmrg local basis: hartree, meanfield or oscillator")
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
