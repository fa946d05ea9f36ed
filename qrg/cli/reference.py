"""``qrg reference``: a ground-state energy from one baseline (``qrg.baselines.BASELINES``), as JSON.

``--method`` is any registered baseline: ``exact`` (free theory, closed form), ``ed``, ``dmrg``,
``netket-gaussian``, ``netket-neural``. The flags below become the baseline's options; a flag
the chosen method does not take is an error, and flags left unset keep the method's defaults.
"""

from __future__ import annotations

import json

from .._validation import QRGInputError
from . import add_theory_args, check_out_file, parse_list, theory_from_args

# baseline option -> the flags that set it (for error messages)
_FLAGS = {"local_dims": "--local-dim/--local-dims", "chis": "--chi/--chis", "basis": "--basis",
          "n_iter": "--n-iter", "n_samples": "--n-samples", "seed": "--seed"}


def _options(args) -> dict:
    """The baseline options set on the command line. ``--local-dim L`` means the sequence
    ``L−2, L`` and ``--chi c`` the sequence ``c/2, c`` (the last two give the truncation error)."""
    dims = parse_list("--local-dims", args.local_dims)
    if dims is None and args.local_dim is not None:
        dims = [args.local_dim - 2, args.local_dim]
    chis = parse_list("--chis", args.chis)
    if chis is None and args.chi is not None:
        chis = [args.chi // 2, args.chi]
    given = {"local_dims": dims, "chis": chis, "basis": args.basis, "n_iter": args.n_iter,
             "n_samples": args.n_samples, "seed": args.seed}
    return {k: v for k, v in given.items() if v is not None}


def add_parser(sub) -> None:
    from ..baselines import BASELINES

    methods = "; ".join(f"{name}: {BASELINES.get(name).summary}" for name in BASELINES)
    p = sub.add_parser("reference", help="print a reference ground-state energy as JSON", description=__doc__)
    add_theory_args(p)
    p.add_argument("--method", default="exact", help=f"one of: {methods} (default exact)")
    p.add_argument("--local-dim", type=int, default=None, help="ed/dmrg: states per site (largest of the sequence)")
    p.add_argument("--local-dims", default=None, help="ed/dmrg: increasing comma-separated local dimensions")
    p.add_argument("--chi", type=int, default=None, help="dmrg: largest bond dimension (runs chi/2, chi)")
    p.add_argument("--chis", default=None, help="dmrg: increasing comma-separated bond dimensions")
    p.add_argument("--basis", default=None, help="ed/dmrg local basis: hartree (default), meanfield or oscillator")
    p.add_argument("--n-iter", type=int, default=None, help="netket-*: VMC steps")
    p.add_argument("--n-samples", type=int, default=None, help="netket-*: samples per VMC step")
    p.add_argument("--seed", type=int, default=None, help="netket-*: PRNG seed")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..baselines import get_baseline

    theory = theory_from_args(args)
    path = check_out_file(args.out) if args.out else None
    baseline = get_baseline(args.method, "--method")
    options = _options(args)
    unknown = [_FLAGS[k] for k in options if k not in baseline.option_names()]
    if unknown:
        raise QRGInputError(f"{', '.join(unknown)} do not apply to --method {baseline.name}")
    result = baseline.run(theory, **options).to_json()
    text = json.dumps(result, indent=2)
    print(text)
    if path is not None:
        path.write_text(text + "\n")
    return 0
