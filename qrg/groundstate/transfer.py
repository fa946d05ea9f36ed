"""Size transfer: the trained parameters of a run on (d, N_small) as the start of a run on (d, N_large).

A score model trained on a small lattice (a chain of 16 sites, an 8×8 square) knows most of what a
larger lattice of the same theory needs: the kernels of its translation-equivariant convolutions and the
Gaussian bridge's C_0(p̂²) are local, size-independent functions (up to finite-size effects that decay
exponentially in the gapped phase). :func:`transfer_params` maps them to the parameter structure of the
larger run, model by model (:meth:`qrg.models.ScoreModel.transfer`):

* leaves whose shape does not depend on N (time networks' hidden layers, the kernel network's base
  frequency, the EFT running couplings, the collective channel) are copied;
* kernels per displacement orbit (kernel network: main, pair and hidden-channel kernels) are copied on
  every orbit that exists on both lattices (|r_i| ≤ N_small/2), the antipodal orbit r_i = N_small/2 halved
  once per such axis (one site on the periodic small lattice, two on the large one: the halving keeps the
  score on periodically repeated fields exactly the small lattice's, :func:`qrg.models.kernel_net.orbit_transfer`),
  and set to zero on the orbits that exist only on the large lattice;
* the Gaussian bridge's log C_0 per p̂² shell is the large run's own initial value (the Hartree Gaussian of
  its theory and lattice with ``init = "hartree"``) plus the trained change from the small run's initial
  value, interpolated linearly in p̂² (:meth:`qrg.models.GaussianBridge.transfer`).

The couplings m² and λ may differ too (a warm start at the same time); on the same lattice and theory the
parameters are returned bit for bit. :func:`qrg.solve` takes a run directory as ``init_from`` (CLI
``qrg solve --init-from RUN_DIR``) and starts from its transferred parameters.
"""

from __future__ import annotations

import jax

from .._validation import QRGInputError
from .ansatz import build_flow, checked_params
from .config import CUSTOM_MODEL, SolveConfig
from .result import GroundState

#: options of a run's config that the source run must share with the target (they define what the
#: parameters mean); ``growth`` only for the models that use it
TRANSFER_KEYS = ("d", "a", "model", "scheme", "M", "T", "init", "collective", "growth", "pair", "hidden")
_GROWTH_MODELS = ("default", "kernel")


def check_transferable(source: SolveConfig, target: SolveConfig) -> None:
    """Refuse, naming the option, a transfer from a run with config ``source`` to one with ``target``: the
    options of :data:`TRANSFER_KEYS` must agree and target N must be ≥ source N (m², λ and every
    optimisation or evaluation setting may differ)."""
    for cfg, which in ((source, "source"), (target, "target")):
        if cfg.model == CUSTOM_MODEL:
            raise QRGInputError(f"the {which} run has model = 'custom' (a ready score model): size transfer needs "
                                "a model built by name")
    keys = [k for k in TRANSFER_KEYS if k != "growth" or target.model in _GROWTH_MODELS]
    diff = [k for k in keys if getattr(source, k) != getattr(target, k)]
    if diff:
        given = ", ".join(f"{k} = {getattr(source, k)!r} (this run: {getattr(target, k)!r})" for k in diff)
        raise QRGInputError(f"cannot start from a run with different {diff}: it has {given}; pass the same "
                            f"{', '.join(diff)}")
    if target.N < source.N:
        raise QRGInputError(f"N = {target.N} is smaller than the source run's N = {source.N}: size transfer starts a "
                            "lattice at least as large as the trained one")


def transfer_params(source, target: SolveConfig, params=None):
    """The trained parameters of ``source`` mapped to the parameter structure of a run with config ``target``.

    ``source``: a :class:`~qrg.groundstate.result.GroundState` (e.g. :func:`qrg.groundstate.load_run`, or
    a :class:`~qrg.SolveResult`; its ``config`` and ``params``) or the :class:`SolveConfig` of the run
    that trained ``params``. ``target``: the config of the new run (same d, a and model options, see
    :func:`check_transferable`; N at least the source's; m², λ may differ).

    Returns a pytree with the structure, shapes and dtypes of the target flow's ``init`` (what
    ``qrg.solve(..., init_params=...)`` takes); what is copied, halved, zeroed and recomputed: the module
    docstring. QRGInputError naming the option for incompatible runs, or ``params`` for parameters that
    are not those of ``source``'s model.
    """
    if isinstance(source, GroundState):
        source_cfg, params = source.config, source.params if params is None else params
    elif isinstance(source, SolveConfig):
        source_cfg = source
        if params is None:
            raise QRGInputError("params (the trained parameters) are needed when source is a SolveConfig")
    else:
        raise QRGInputError(f"source must be a GroundState or a SolveConfig (got {type(source).__name__})")
    if not isinstance(target, SolveConfig):
        raise QRGInputError(f"target must be a qrg.SolveConfig (got {type(target).__name__})")
    check_transferable(source_cfg, target)
    src = build_flow(source_cfg.theory(), source_cfg)
    tgt = build_flow(target.theory(), target)
    key = jax.random.PRNGKey(0)
    src_template, tgt_template = jax.eval_shape(src.init, key), jax.eval_shape(tgt.init, key)
    params = checked_params(params, src_template, f"params (of the source run, N = {source_cfg.N}):",
                            "the source model's parameters")
    moved = {**params, "params": tgt.model.transfer(params["params"], src.model)}
    return checked_params(moved, tgt_template, "the transferred parameters", "the target model's parameters")
