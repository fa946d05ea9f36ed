"""The problems ``qrg bench`` runs and the budget of every method on them.

A problem is ``(d, N, m2, lam)``: one :class:`qrg.Phi4` that the reference, ``qrg.solve`` and every
baseline get unchanged. A :class:`Suite` holds the options of each method (its budget), the
reference methods in order of trust, and the size limits beyond which a method is skipped.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from .._validation import QRGInputError
from ..baselines import BASELINES

COUPLINGS_FULL = ((1.0, 0.0), (1.0, 6.0), (1.0, 24.0), (0.25, 2.4), (-0.5, 2.4))

# what `qrg bench` runs by default: the best reference, qrg's solver and the two NetKet ansätze.
# Besides "reference" and "qrg", any registered baseline name (qrg.baselines.BASELINES) is a method.
METHODS = ("reference", "qrg", "netket-gaussian", "netket-neural")
SPECIAL_METHODS = ("reference", "qrg")


@dataclasses.dataclass(frozen=True)
class Limit:
    """Where a suite runs a method: at most ``max_sites`` sites, only in dimensions ``dims`` (None: any)."""

    max_sites: int | None = None
    dims: tuple[int, ...] | None = None

    def why_not(self, theory) -> str | None:
        if self.max_sites is not None and theory.lattice.n_sites > self.max_sites:
            return f"{theory.lattice.n_sites} sites > the suite's limit of {self.max_sites}"
        if self.dims is not None and theory.d not in self.dims:
            return f"d = {theory.d} is outside the suite's dimensions {self.dims}"
        return None


# DMRG needs a bond dimension ~exp(torus boundary) in d >= 2, so suites use it on chains only;
# NetKet's per-sample Hessians make more than 64 sites a memory problem (peers.md)
DEFAULT_LIMITS = {"dmrg": Limit(dims=(1,)), "netket-gaussian": Limit(max_sites=64),
                  "netket-neural": Limit(max_sites=64)}


@dataclasses.dataclass(frozen=True)
class Suite:
    """A named list of problems and the budget of every method.

    ``qrg``: options of :func:`qrg.solve`; ``netket_gaussian``, ``netket_neural``, ``dmrg``, ``ed``:
    options of those baselines. ``references``: the baselines tried as a problem's reference, in
    order of trust (the first that applies and is within ``limits`` is used; they must be
    deterministic, so their error bar is their truncation estimate). ``equal_time``: baselines that
    get qrg's wall time on the same problem as their ``time_budget_s``.
    """

    name: str
    problems: tuple  # of (d, N, m2, lam)
    qrg: dict
    netket_gaussian: dict
    netket_neural: dict
    dmrg: dict
    ed: dict = dataclasses.field(default_factory=dict)
    references: tuple[str, ...] = ("exact", "ed", "dmrg")
    equal_time: tuple[str, ...] = ("netket-neural",)
    limits: Mapping[str, Limit] = dataclasses.field(default_factory=lambda: dict(DEFAULT_LIMITS))

    def __post_init__(self):
        for name in self.references:
            if not BASELINES.get(name, "references").deterministic:
                raise QRGInputError(f"references must be deterministic baselines (got {name!r})")
        for name in self.equal_time:
            BASELINES.check("equal_time", name)

    def options(self, method: str) -> dict:
        """The options (budget) of ``method`` in this suite ({} for a method it does not configure)."""
        by_method = {"qrg": self.qrg, "netket-gaussian": self.netket_gaussian,
                     "netket-neural": self.netket_neural, "dmrg": self.dmrg, "ed": self.ed}
        return dict(by_method.get(method, {}))

    def skip_reason(self, method: str, theory) -> str | None:
        """Why the suite does not run ``method`` on ``theory`` (its size limits); None if it does."""
        limit = self.limits.get(method)
        return None if limit is None else limit.why_not(theory)


SUITES = {
    "quick": Suite(
        "quick",
        problems=((1, 8, 1.0, 6.0), (1, 16, 1.0, 6.0)),
        qrg={"steps": 120, "batch": 64, "eval_batch": 1024, "local_batch": 256},
        netket_gaussian={"n_iter": 100, "n_samples": 512, "n_eval_samples": 4096},
        netket_neural={"n_iter": 2000, "n_samples": 1024, "n_eval_samples": 4096, "diag_shift": 1e-4},
        dmrg={"local_dims": (6, 8), "chis": (16, 32), "correlations": False},
    ),
    "full": Suite(
        "full",
        problems=tuple((1, N, m2, lam) for N in (8, 16, 32, 64) for m2, lam in COUPLINGS_FULL)
        + tuple((2, N, m2, lam) for N in (4, 8) for m2, lam in COUPLINGS_FULL),
        qrg={"steps": 600, "batch": 64},
        netket_gaussian={"n_iter": 300, "n_samples": 1024, "n_eval_samples": 16384},
        netket_neural={"n_iter": 100000, "n_samples": 2048, "n_eval_samples": 16384, "diag_shift": 1e-4},
        dmrg={"local_dims": (8, 10), "chis": (24, 48), "correlations": False},
    ),
}


def get_suite(suite: str | Suite) -> Suite:
    if isinstance(suite, Suite):
        return suite
    if suite not in SUITES:
        raise QRGInputError(f"suite must be one of {sorted(SUITES)} (got {suite!r})")
    return SUITES[suite]


def check_methods(methods) -> tuple[str, ...]:
    """``methods`` as a tuple; each must be "reference", "qrg" or a registered baseline."""
    methods = tuple(methods)
    allowed = SPECIAL_METHODS + BASELINES.names()
    bad = [m for m in methods if m not in allowed]
    if bad:
        raise QRGInputError(f"methods must be among {allowed} (got {bad})")
    return methods


def problem_label(d, N, m2, lam) -> str:
    size = f"N={N}" if d == 1 else "x".join([str(N)] * d)
    return f"{'chain' if d == 1 else 'square'} {size} (m²={m2:g}, λ={lam:g})"


def select_problems(suite: Suite, *, d=None, N=None) -> tuple:
    """The problems of ``suite`` with dimension in ``d`` and size in ``N`` (None = all)."""
    problems = tuple(p for p in suite.problems
                     if (d is None or p[0] in tuple(d)) and (N is None or p[1] in tuple(N)))
    if not problems:
        raise QRGInputError(f"no problem of suite {suite.name!r} has d in {d} and N in {N} "
                            f"(its sizes: {sorted({(p[0], p[1]) for p in suite.problems})})")
    return problems
