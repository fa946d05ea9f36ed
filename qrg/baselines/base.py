"""The baseline interface: one result type (:class:`Reference`) and one base class (:class:`Baseline`).

A baseline solves the same :class:`qrg.Phi4` as the solver (design §2, §6) by a method physicists
trust: the closed-form free theory, exact diagonalisation, DMRG, NetKet VMC. Every member

* says whether it applies to a theory, and why not when it does not (:meth:`Baseline.why_not`);
* runs with keyword options (``run(theory, **options) -> Reference``), rejecting unknown ones;
* registers itself in :data:`BASELINES` under its ``name`` (``@register_baseline``), which is how
  ``qrg reference --method`` and ``qrg bench`` find it.

Error bars of a :class:`Reference`:

* ``energy_err`` — statistical (the Monte Carlo error of the mean, with autocorrelation); 0 for
  deterministic methods;
* ``error_estimate`` — truncation (local dimension, bond dimension, Lanczos residual) for ED and
  DMRG; 0 for exact and Monte Carlo methods.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import math
from typing import Any, ClassVar, Mapping

import numpy as np

from .._validation import QRGInputError
from ..registry import Registry

# keys of Reference.to_json() that method-specific details may not reuse
_STANDARD_KEYS = ("method", "d", "N", "a", "m2", "lam", "energy", "energy_per_site", "energy_err",
                  "error_estimate", "phi2", "M2", "rms_M", "M4", "U4", "correlation", "wall_time_s")


@dataclasses.dataclass(frozen=True)
class Reference:
    """A ground-state result of one baseline on one theory (data only).

    Attributes
    ----------
    method : registered name of the baseline (``"exact"``, ``"ed"``, ``"dmrg"``, ``"netket-gaussian"``, ...).
    theory : the :class:`qrg.Phi4` solved.
    energy : ground-state energy E0.
    energy_err : statistical error of ``energy`` (1σ); 0 for deterministic methods.
    error_estimate : truncation-error estimate of ``energy``; 0 for exact and Monte Carlo methods.
    wall_time_s : wall time of the computation.
    phi2 : ⟨φ_n²⟩ (site average), where the method measures it.
    M2 : ⟨M²⟩ with ``M = N^-d Σ_n φ_n``, where the method measures it.
    M4 : ⟨M⁴⟩ with the same ``M``, where the method measures it (keyword-only field).
    U4 : (property) the Binder cumulant ``1 − ⟨M⁴⟩/(3⟨M²⟩²)`` (design §3.4), when both moments exist.
    correlation : ⟨φ_0 φ_r⟩ over displacements r, shape ``lattice.shape``, where measured.
    details : method-specific, JSON-ready values (basis, bond dimensions, Var(E_loc), history, ...).
    """

    method: str
    theory: Any
    energy: float
    energy_err: float = 0.0
    error_estimate: float = 0.0
    wall_time_s: float = 0.0
    phi2: float | None = None
    M2: float | None = None
    correlation: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    M4: float | None = dataclasses.field(default=None, kw_only=True)

    def __post_init__(self):
        clash = sorted(set(self.details) & set(_STANDARD_KEYS))
        if clash:
            raise ValueError(f"details of a {self.method} reference reuse the standard keys {clash}")
        if self.correlation is not None:
            corr = np.asarray(self.correlation, dtype=float).reshape(self.theory.lattice.shape)
            corr.setflags(write=False)
            object.__setattr__(self, "correlation", corr)

    @property
    def energy_per_site(self) -> float:
        return self.energy / self.theory.lattice.n_sites

    @property
    def rms_M(self) -> float | None:
        """sqrt(⟨M²⟩): the ⟨|M|⟩-type order parameter (⟨M⟩ = 0 by the φ → −φ symmetry)."""
        return None if self.M2 is None else math.sqrt(max(self.M2, 0.0))

    @property
    def U4(self) -> float | None:
        """Binder cumulant ``1 − ⟨M⁴⟩/(3⟨M²⟩²)`` (0 for a Gaussian M); None unless both moments exist."""
        if self.M2 is None or self.M4 is None or self.M2 <= 0.0:
            return None
        return 1.0 - self.M4 / (3.0 * self.M2**2)

    def to_json(self) -> dict:
        """Method, theory parameters, energy and its error bars, observables, details, wall time."""
        out = {"method": self.method, **self.theory.params(), "energy": float(self.energy),
               "energy_per_site": float(self.energy_per_site), "energy_err": float(self.energy_err),
               "error_estimate": float(self.error_estimate)}
        if self.phi2 is not None:
            out["phi2"] = float(self.phi2)
        if self.M2 is not None:
            out.update(M2=float(self.M2), rms_M=self.rms_M)
        if self.M4 is not None:
            out["M4"] = float(self.M4)
        if self.U4 is not None:
            out["U4"] = float(self.U4)
        if self.correlation is not None:
            out["correlation"] = self.correlation.tolist()
        out.update(self.details)
        out["wall_time_s"] = float(self.wall_time_s)
        return out


class Baseline(abc.ABC):
    """A ground-state method to compare with. Subclasses set ``name`` (the registry key),
    ``summary`` (one line for ``--help``), ``deterministic`` and implement :meth:`compute`
    with keyword-only options (their names are the options :meth:`run` accepts)."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    deterministic: ClassVar[bool] = True

    def why_not(self, theory, **options) -> str | None:
        """Why this method cannot run on ``theory`` with ``options``; None when it can."""
        return None

    def applies(self, theory, **options) -> bool:
        return self.why_not(theory, **options) is None

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The keyword options of :meth:`compute`."""
        return keyword_options(cls.compute)

    def check_options(self, options: Mapping) -> None:
        unknown = sorted(set(options) - set(self.option_names()))
        if unknown:
            raise QRGInputError(f"options {unknown} do not apply to the {self.name} baseline; "
                                f"its options are {list(self.option_names())}")

    def run(self, theory, **options) -> Reference:
        """The ground state of ``theory``; QRGInputError naming the reason when the method does not apply."""
        self.check_options(options)
        reason = self.why_not(theory, **options)
        if reason is not None:
            raise QRGInputError(reason)
        return self.compute(theory, **options)

    @abc.abstractmethod
    def compute(self, theory, **options) -> Reference:
        """Run the method (inputs already checked by :meth:`run`)."""


def keyword_options(fn) -> tuple[str, ...]:
    """Names of the keyword-only parameters of ``fn``."""
    params = inspect.signature(fn).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


BASELINES: Registry[type[Baseline]] = Registry("baseline")


def register_baseline(cls: type[Baseline]) -> type[Baseline]:
    """Class decorator: register ``cls`` in :data:`BASELINES` under ``cls.name``."""
    return BASELINES.register(cls.name, cls)


def get_baseline(name: str, parameter: str = "method") -> Baseline:
    """The registered baseline ``name`` (an instance); QRGInputError naming ``parameter`` if unknown."""
    return BASELINES.get(name, parameter)()
