"""Configuration of a ground-state solve: one flat, validated dataclass, loadable from TOML.

A TOML file holds any subset of the fields of :class:`SolveConfig` as top-level keys, e.g.::

    # chain.toml
    N = 16
    m2 = 1.0
    lam = 6.0
    model = "default"
    steps = 600
    batch = 256

Keys may also be grouped in tables (``[theory]``, ``[flow]``, ``[optimization]``,
``[evaluation]``, ...): tables are flattened, so ``[theory] N = 16`` is the same as ``N = 16``.
Unknown keys and values of the wrong type raise :class:`~qrg.QRGInputError` naming the key.
Command-line flags override the file (``SolveConfig.replace``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import pathlib
import tomllib

from .._validation import QRGInputError
from ..flow import ADJOINTS, INTEGRATORS, SOLVERS
from ..models import MODELS
from ..optim.optimizers import OPTIMIZERS
from ..rg import SCHEMES
from .estimators import LAPLACIANS
from .objective import CONSISTENCY

#: ``model = "custom"``: a ready ScoreModel passed to qrg.solve (not buildable by name)
CUSTOM_MODEL = "custom"
INITS = ("hartree", "default")
CONTROL_VARIATES = ("stein", "none")
REFINE_PROPOSALS = ("site", "global")
#: what ``estimator`` may name: an estimator fixed in advance, or "auto" (smallest error bar, chosen after the fact)
REPORTED_ESTIMATORS = ("cv", "ibp", "local", "auto")
#: keys added with a default that changes the run, and the value a checkpoint written before them implies
LEGACY = {"growth": False}


@dataclasses.dataclass(frozen=True)
class SolveConfig:
    """Everything that defines a run of :func:`qrg.solve` (defaults: the default problem).

    Problem: ``d, N, a, m2, lam`` (design §2).
    Wavefunction: ``model`` (score model name), ``scheme`` (RG scheme), ``M`` (scheme mass), ``T``
    (prior time), ODE ``solver`` with ``n_steps`` fixed steps (0 = adaptive with ``rtol``/``atol``),
    ``adjoint`` of the training solve (reverse mode), ``integrator`` ("plain" or "exponential", see
    :mod:`qrg.flow.integrators`); ``init`` the starting C_0 of the Gaussian bridge: "hartree" (the
    best Gaussian state, self-consistent mass m² + (λ/2)<φ²>) or "default" (the model's own);
    ``collective`` adds the mean-field channel h(M, t) of :class:`~qrg.models.KernelNet` (models
    "default" and "kernel"; measured to help in and near the broken phase, docs/scan.md); ``growth``
    (default on; models "default" and "kernel", ignored by the others) adds its φ sqrt(1 + φ²)
    feature, the |φ|φ large-field growth of the exact ground state's score (docs/solver.md); ``pair``
    (models "default" and "kernel") adds its pair channel u(φ(n)) (P ∗ q(φ))(n), the score of two-site
    terms of log p (docs/solver.md); ``hidden`` > 0 (same models) adds a two-layer channel with that many
    hidden fields, Σ_c V_c ∗ tanh(Σ_j U_cj ∗ f_j(φ)) (docs/solver.md).
    Optimisation: ``steps``, ``batch`` (samples per step), ``seed``, ``optimizer``, learning rate
    ``lr`` decayed by a cosine schedule to ``lr * lr_final`` after ``warmup`` linear warm-up steps,
    ``grad_clip`` (global norm, 0 = off), ``lr_recover`` K (a learning rate halved after a rolled-back step is
    doubled back after K steps without one, up to ``lr``; 0 = never, the default), ``sample_clip`` c (each sample's energy gradient clipped to c times the
    batch median norm, :func:`qrg.groundstate.objective.clipped_energy_value_and_grad`; 0 = off), ``beta_rg`` (weight of the RG-consistency term, design §3.4)
    of kind ``consistency`` ("dsm" or "nll", :data:`qrg.groundstate.objective.CONSISTENCY`) with
    ``rg_batch`` kernel draws (t, φ_t) per step from the batch's φ_0 (each φ_0 reused when rg_batch > batch;
    the times stratified over (0, T]); ``control_variates`` "stein" subtracts the zero-mean Stein features of
    :func:`qrg.groundstate.estimators.stein_features` from the training energies (unbiased, ~10³× smaller gradient
    variance), with coefficients fitted on an exponential moving average (decay ``cv_decay``) of
    the previous steps' batches; "none" trains on the plain integrated-by-parts energies.
    Evaluation: the reported ``estimator`` ("cv", "ibp", "local", fixed in advance; or "auto": the
    smallest error bar on the evaluation samples) on ``eval_batch`` fresh samples (the local energy on the first ``local_batch`` of them) drawn with ``eval_n_steps`` ODE steps (0 = as in training;
    more steps than in training make the final numbers those of the continuous-time flow), ``laplacian`` method for E_loc, ``n_probes`` Hutchinson probes;
    while the tails of the reported estimator or of E_loc are not resolved (:func:`qrg.stats.tail_diagnostics`)
    fresh samples are added, doubling, up to ``eval_max_batch`` energy samples and the same factor
    eval_max_batch / eval_batch times ``local_batch`` E_loc samples (:func:`qrg.groundstate.evaluation.evaluate`;
    ≤ eval_batch = no growth; the default 0 means 2 · eval_batch, chosen by measurement in docs/solver.md; unresolved
    tails are reported as warnings);
    ``systematic_batch`` paired samples of the step-doubling estimate of the ODE discretisation
    error (:func:`qrg.groundstate.evaluation.discretisation_check`: eval_n_steps against
    2·eval_n_steps; 0 = off); ``consistency_batch`` samples per set and time of the RG-consistency
    diagnostic (:func:`qrg.groundstate.consistency.rg_consistency`; 0 = off).
    Refinement (:mod:`qrg.groundstate.refine`, docs/solver.md "Refinement"): after the optimisation,
    ``refine_steps`` steps (0 = off, the default) of stochastic reconfiguration with the zero-variance force on
    ``refine_batch`` exact samples each, imaginary-time step ``refine_dtau``, diagonal shift ``refine_shift`` of
    the sample-space system, samples drawn from prior noise broadened by ``refine_broaden`` τ (0 = automatic)
    one site at a time (``refine_proposal`` "site", the default) or all at once ("global") and
    importance-weighted back to p_θ; the refined parameters are the ones evaluated.
    Checkpoints: every ``checkpoint_every`` steps (0 = only at the end) when an output directory is given.
    Devices: the Monte Carlo batch is sharded over ``devices`` devices (0 = all of ``jax.devices()``;
    1 = no sharding); ``batch`` must be a multiple of their number.
    """

    # problem
    d: int = 1
    N: int = 16
    a: float = 1.0
    m2: float = 1.0
    lam: float = 6.0
    # wavefunction
    model: str = "default"
    scheme: str = "carosso"
    M: float = 1.0
    T: float = 1.0
    solver: str = "rk4"
    n_steps: int = 16
    rtol: float = 1e-6
    atol: float = 1e-6
    adjoint: str = "recursive"
    integrator: str = "plain"
    init: str = "hartree"
    collective: bool = False
    growth: bool = True
    pair: bool = False
    hidden: int = 0
    # optimisation
    steps: int = 600
    batch: int = 64
    seed: int = 0
    optimizer: str = "adam"
    lr: float = 1e-2
    lr_final: float = 0.02
    warmup: int = 10
    grad_clip: float = 0.0
    sample_clip: float = 0.0
    lr_recover: int = 0
    average: float = 0.0
    beta_rg: float = 0.1
    consistency: str = "dsm"
    rg_batch: int = 1024
    control_variates: str = "stein"
    cv_decay: float = 0.9
    # refinement (qrg.groundstate.refine: SR with the zero-variance force after the optimisation)
    refine_steps: int = 0
    refine_batch: int = 128
    refine_dtau: float = 0.1
    refine_shift: float = 1e-4
    refine_broaden: float = 0.0
    refine_proposal: str = "site"
    # evaluation
    estimator: str = "cv"
    eval_batch: int = 4096
    eval_max_batch: int = 0
    eval_n_steps: int = 32
    local_batch: int = 1024
    laplacian: str = "auto"
    n_probes: int = 4
    systematic_batch: int = 4096
    consistency_batch: int = 4096
    # checkpoints and devices
    checkpoint_every: int = 100
    devices: int = 0

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, _coerce(f.name, value, f.type))
        _positive_int = ("d", "N", "steps", "batch", "eval_batch", "local_batch", "rg_batch", "n_probes")
        for name in _positive_int:
            if getattr(self, name) < 1:
                raise QRGInputError(f"{name} must be an integer >= 1 (got {getattr(self, name)})")
        if self.seed >= 2**63:
            raise QRGInputError(f"seed must be an integer in [0, 2**63) (got {self.seed})")
        for name in ("n_steps", "eval_n_steps", "warmup", "checkpoint_every", "seed", "systematic_batch",
                     "consistency_batch", "devices", "eval_max_batch", "hidden", "lr_recover", "refine_steps"):
            if getattr(self, name) < 0:
                raise QRGInputError(f"{name} must be an integer >= 0 (got {getattr(self, name)})")
        for name in ("a", "T", "lr", "rtol", "atol"):
            if not getattr(self, name) > 0:
                raise QRGInputError(f"{name} must be > 0 (got {getattr(self, name)})")
        for name in ("M", "beta_rg", "grad_clip"):
            if getattr(self, name) < 0:
                raise QRGInputError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if self.sample_clip != 0 and not self.sample_clip >= 1:
            raise QRGInputError(f"sample_clip (per-sample gradient limit in units of the batch median norm) must be "
                                f"0 (off) or >= 1 (got {self.sample_clip})")
        if self.refine_batch < 2:
            raise QRGInputError(f"refine_batch (samples per refinement step) must be an integer >= 2 (got {self.refine_batch})")
        for name in ("refine_dtau", "refine_shift"):
            if not getattr(self, name) > 0:
                raise QRGInputError(f"{name} must be > 0 (got {getattr(self, name)})")
        if self.refine_broaden != 0 and not 1 <= self.refine_broaden <= 10:
            raise QRGInputError(f"refine_broaden (prior-noise scale τ of the refinement samples) must be 0 (automatic) "
                                f"or in [1, 10] (got {self.refine_broaden})")
        if self.refine_proposal not in REFINE_PROPOSALS:
            raise QRGInputError(f"refine_proposal must be one of {', '.join(REFINE_PROPOSALS)} (got {self.refine_proposal!r})")
        if self.refine_steps and self.laplacian == "none":
            raise QRGInputError("refine_steps > 0 needs the local energy: laplacian must not be 'none'")
        if not 0 <= self.cv_decay < 1:
            raise QRGInputError(f"cv_decay must be in [0, 1) (got {self.cv_decay})")
        if not 0 <= self.average < 1:
            raise QRGInputError(f"average (the final fraction of the steps whose parameters are averaged) must be "
                                f"in [0, 1) (got {self.average})")
        if not 0 < self.lr_final <= 1:
            raise QRGInputError(f"lr_final (final / initial learning rate) must be in (0, 1] (got {self.lr_final})")
        if self.lam < 0:
            raise QRGInputError(f"lam (quartic coupling λ) must be >= 0 (got {self.lam})")
        if self.lam == 0 and self.m2 <= 0:
            raise QRGInputError(f"with lam = 0 the mass m2 must be > 0 (got m2 = {self.m2})")
        self._check_names()
        for option in ("collective", "pair", "hidden"):
            if getattr(self, option) and self.model not in ("default", "kernel", CUSTOM_MODEL):
                raise QRGInputError(f"{option} = {getattr(self, option)!r} needs model 'default' or 'kernel' "
                                    f"(got model {self.model!r})")

    def _check_names(self):
        """Every strategy name against its registry (the same lists the Python API uses)."""
        if self.model != CUSTOM_MODEL:
            MODELS.check("model", self.model)
        for name, registry in (("scheme", SCHEMES), ("solver", SOLVERS), ("adjoint", ADJOINTS),
                               ("integrator", INTEGRATORS), ("optimizer", OPTIMIZERS), ("laplacian", LAPLACIANS),
                               ("consistency", CONSISTENCY)):
            registry.check(name, getattr(self, name))
        for name, allowed in (("init", INITS), ("control_variates", CONTROL_VARIATES),
                              ("estimator", REPORTED_ESTIMATORS)):
            if getattr(self, name) not in allowed:
                raise QRGInputError(f"{name} must be one of {allowed} (got {getattr(self, name)!r})")
        if not ADJOINTS.get(self.adjoint).reverse_mode:
            reverse = tuple(n for n in ADJOINTS if ADJOINTS.get(n).reverse_mode)
            raise QRGInputError(f"adjoint {self.adjoint!r} supports forward mode only; training needs one of {reverse}")
        if SOLVERS.get(self.solver).fixed_step_only and self.n_steps == 0:
            raise QRGInputError(f"solver {self.solver!r} has no error estimate: n_steps must be >= 1 "
                                "(n_steps = 0 means adaptive stepping)")

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_saved(cls, data: dict, *, source: str = "config") -> "SolveConfig":
        """The config of a saved run: a key added after it was written takes the value that reproduces
        the run (``LEGACY``, e.g. ``growth = false``), not today's default."""
        return cls.from_dict({**{k: v for k, v in LEGACY.items() if k not in data}, **data}, source=source)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "config") -> "SolveConfig":
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise QRGInputError(f"unknown key(s) {unknown} in {source}; allowed keys: {list(cls.field_names())}")
        return cls(**data)

    @classmethod
    def from_toml(cls, path) -> "SolveConfig":
        path = pathlib.Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise QRGInputError(f"cannot read config file {str(path)!r}: {err.strerror}") from None
        except UnicodeDecodeError:
            raise QRGInputError(f"config file {str(path)!r} is not UTF-8 text") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise QRGInputError(f"config file {str(path)!r} is not valid TOML: {err}") from None
        return cls.from_dict(_flatten(data, str(path)), source=f"config file {str(path)!r}")

    def replace(self, **overrides) -> "SolveConfig":
        """A copy with ``overrides`` (None values are ignored: unset CLI flags)."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(overrides) - set(self.field_names()))
        if unknown:
            raise QRGInputError(f"unknown option(s) {unknown}; allowed: {list(self.field_names())}")
        return dataclasses.replace(self, **overrides)

    @property
    def eval_cap(self) -> int:
        """The evaluation's growth cap in energy samples: ``eval_max_batch``, or 2 · ``eval_batch`` when it is 0."""
        return self.eval_max_batch or 2 * self.eval_batch

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        lines = []
        for k, v in self.to_dict().items():
            lines.append(f"{k} = {_toml_value(v)}")
        return "\n".join(lines) + "\n"

    def theory(self):
        from ..theory import Phi4

        return Phi4.from_params(d=self.d, N=self.N, a=self.a, m2=self.m2, lam=self.lam)


# ---------------------------------------------------------------------------- helpers
def _flatten(data: dict, source: str) -> dict:
    flat = {}
    for key, value in data.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for k, v in items:
            if isinstance(v, dict):
                raise QRGInputError(f"nested table {key}.{k} in {source}: tables may be one level deep")
            if k in flat:
                raise QRGInputError(f"key {k!r} is given twice in {source}")
            flat[k] = v
    return flat


def _coerce(name: str, value, type_name: str):
    if type_name == "bool":
        if not isinstance(value, bool):
            raise QRGInputError(f"{name} must be true or false (got {value!r})")
        return value
    if type_name == "int":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise QRGInputError(f"{name} must be an integer (got {value!r})")
        if isinstance(value, numbers.Integral):
            return int(value)
        if math.isfinite(float(value)) and float(value).is_integer():
            return int(value)
        raise QRGInputError(f"{name} must be an integer (got {value!r})")
    if type_name == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise QRGInputError(f"{name} must be a real number (got {value!r})")
        value = float(value)
        if not math.isfinite(value):
            raise QRGInputError(f"{name} must be finite (got {value})")
        return value
    if type_name == "str":
        if not isinstance(value, str):
            raise QRGInputError(f"{name} must be a string (got {value!r})")
        return value.lower()
    raise TypeError(f"unsupported config field type {type_name}")  # pragma: no cover


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return repr(v)
    return str(v)
