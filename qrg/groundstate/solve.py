"""The Section 6 ground-state solver: :func:`solve` (paper Section 6.3, design §3.3–§3.4).

The wavefunction is Ψ_θ = sqrt(p_θ) with p_θ the t = 0 marginal of the probability-flow ODE of
a learned RG bridge (:mod:`qrg.groundstate.ansatz`); the loss is the energy (+ the optional
RG-consistency term) of :mod:`qrg.groundstate.objective`, minimised by the training loop of
:mod:`qrg.optim.loop` (NaN steps rolled back with the learning rate halved; checkpoints make
``resume=True`` continue the same run bit for bit: the PRNG key of step s is
``fold_in(key_train, s)``); the trained state is evaluated by :mod:`qrg.groundstate.evaluation`.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from .._validation import QRGInputError, check_writable_dir
from ..optim import checkpoint as ckpt
from ..optim.loop import DivergenceGuard, Loop, LoopState, run
from ..optim.optimizers import make_optimizer
from ..parallel import is_main_process
from .ansatz import build_flow, checked_params
from .config import LEGACY, SolveConfig
from .consistency import rg_consistency
from .estimators import ESTIMATORS, ControlVariateFit, n_stein_features
from .evaluation import discretisation_check, evaluate
from .objective import EnergyObjective
from .refine import RefineSettings, RefineState, refine, refine_summary
from .result import GroundState, SolveResult
from .transfer import check_transferable, transfer_params

#: keys of a run's config that must agree with a checkpoint for it to be resumed
RESUME_KEYS = ("d", "N", "a", "m2", "lam", "model", "scheme", "M", "T", "solver", "n_steps", "rtol", "atol",
               "adjoint", "integrator", "collective", "growth", "pair", "hidden", "batch", "seed", "optimizer", "lr", "lr_final", "warmup",
               "grad_clip", "sample_clip", "lr_recover", "average", "beta_rg", "consistency", "rg_batch", "init", "control_variates", "cv_decay")


def check_memory(cfg, available: int | None = None) -> None:
    """Refuse, naming the parameter, a run whose arrays cannot fit in memory.

    Estimate (bytes, float64): the training solve keeps the augmented state (3 fields) at every
    stage of every step for the reverse pass, 8 · sites · batch · 3 · 4 · n_steps, and the evaluation
    draws chunks of 512 and keeps the eval_batch fields with their scores, 8 · sites · (2 eval_batch
    + 512 · 12 · eval_n_steps), or eval_max_batch of them if the evaluation may grow that far; the
    estimate must stay below 80 % of the physical memory.
    """
    import os

    if available is None:
        available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    sites = cfg.N**cfg.d
    steps = max(cfg.n_steps, 1)
    train = 8 * sites * cfg.batch * 12 * steps
    def evaluation(n):
        return 8 * sites * (2 * n + 512 * 12 * max(cfg.eval_n_steps, steps))

    limit = 0.8 * available
    cap = max(cfg.eval_batch, cfg.eval_cap)
    shown = {"eval_max_batch": f"{cfg.eval_max_batch}" + ("" if cfg.eval_max_batch else f" (2·eval_batch = {cap})")}
    for name, need in (("batch", train), ("eval_batch", evaluation(cfg.eval_batch)), ("eval_max_batch", evaluation(cap))):
        if need > limit:
            raise QRGInputError(f"a d={cfg.d}, N={cfg.N} lattice ({sites} sites) with {name} = "
                                f"{shown.get(name, getattr(cfg, name))} "
                                f"needs about {need / 2**30:.3g} GiB, more than this machine's "
                                f"{available / 2**30:.3g} GiB allow: reduce {name}, N or n_steps"
                                + (" (eval_max_batch = eval_batch: no growth)" if name == "eval_max_batch" else ""))


def count_params(params) -> int:
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


def _make_config(theory, config, options) -> SolveConfig:
    if config is None:
        config = SolveConfig()
    elif not isinstance(config, SolveConfig):
        raise QRGInputError(f"config must be a qrg.SolveConfig (got {type(config).__name__})")
    if theory is not None:
        options = {**theory.params(), **options}
    return config.replace(**options)


class _Run:
    """The pieces of one solve that the checkpoint functions need."""

    def __init__(self, cfg, flow, tx, root, key_init, cv_fit, schedule_steps=None, init_from=None):
        self.cfg, self.flow, self.tx, self.root, self.key_init, self.cv_fit = cfg, flow, tx, root, key_init, cv_fit
        self.schedule_steps = cfg.steps if schedule_steps is None else schedule_steps
        self.init_from = init_from  # the record of the run it started from (init_from), kept in the checkpoint
        self.stored_refine: RefineState | None = None  # set by load: a refinement the checkpoint holds

    def templates(self, stored=()) -> dict:
        """The structures of a checkpoint's arrays; ``stored``: the names it holds (the divergence guard's
        anchor and its candidate are there only once the run has made them)."""
        def init(key):
            params = self.flow.init(key)
            return params, self.tx.init(params)

        # shapes and dtypes only (jax.eval_shape): an eager init of the model compiles each of its operations
        # one by one, ~10 s on the default chain, for arrays that the checkpoint's then replace
        params, opt_state = jax.eval_shape(init, self.key_init)
        trees = {"params": params, "opt_state": opt_state, "good_params": params, "good_opt_state": opt_state,
                 "key": self.root}
        for name in ("anchor", "pending"):
            if f"{name}_params" in stored:
                trees[f"{name}_params"], trees[f"{name}_opt_state"] = params, opt_state
        if "average_params" in stored:
            trees["average_params"] = params
        for name in ("refine_params", "refine_previous_params", "refine_best_params"):  # "previous": before 2026-12-08
            if name in stored:
                trees[name] = params
        if self.cv_fit is not None:
            trees["cv_state"] = ControlVariateFit(self.cv_fit.state["h"].shape[0], self.cfg.cv_decay).state
        return trees

    def save(self, out, state: LoopState, refine: RefineState | None = None) -> None:
        trees = {**state.trees(), "key": self.root}
        if self.cv_fit is not None:
            trees["cv_state"] = self.cv_fit.state
        meta = {**state.scalars(), "config": self.cfg.to_dict(), "schedule_steps": self.schedule_steps}
        if refine is not None:  # the refinement phase after the loop: its parameters and progress
            trees["refine_params"] = refine.params
            if refine.best is not None:  # the blow-up guard's roll-back target
                trees["refine_best_params"] = refine.best
            meta["refine"] = {**refine.meta(), "settings": dataclasses.asdict(refine_settings(self.cfg))}
        if self.init_from is not None:
            meta["init_from"] = self.init_from
        ckpt.save_checkpoint(out, trees, meta)

    def _stored_refine(self, meta, trees, loop_step: int) -> RefineState | None:
        """The refinement a loaded checkpoint holds (``meta``: its "refine" record), if it continued this loop's
        final step with this config's refinement settings and at most its number of steps (more steps continue
        it; else None: the refinement starts afresh from the loop's parameters)."""
        def same(settings):  # everything but the number of steps, which a resume may raise
            return {k: v for k, v in settings.items() if k != "steps"}

        if not self.cfg.refine_steps or not meta \
                or same(meta.get("settings", {})) != same(dataclasses.asdict(refine_settings(self.cfg))) \
                or int(meta.get("from_step", -1)) != loop_step or int(meta.get("step", 0)) > self.cfg.refine_steps:
            return None
        return RefineState.restore(trees["refine_params"], meta, trees.get("refine_best_params"))

    def load(self, out) -> LoopState:
        stored = ckpt.read_meta(out)
        saved = stored.get("config", {})  # the settings first: they name what differs
        # a key added after the checkpoint was written has its default there (or its LEGACY value)
        defaults = {**SolveConfig().to_dict(), **LEGACY}
        diff = [k for k in RESUME_KEYS if saved.get(k, defaults[k]) != self.cfg.to_dict().get(k)]
        if diff:
            raise QRGInputError(f"cannot resume: the checkpoint in {str(out)!r} was made with different "
                                f"{diff} ({ {k: saved.get(k, defaults[k]) for k in diff} }); pass the same configuration")
        trees, meta = ckpt.load_checkpoint(out, self.templates(stored.get("layout") or ()))
        if not np.array_equal(np.asarray(trees["key"]), np.asarray(self.root)):  # pragma: no cover - seed checked
            raise QRGInputError("checkpoint PRNG key does not match the seed")
        if self.cv_fit is not None:
            self.cv_fit.state = {k: np.asarray(v, dtype=float) for k, v in trees["cv_state"].items()}
        state = LoopState.restore(trees, meta)
        # read now: the loop's final checkpoint, written before the refinement phase, does not carry it
        self.stored_refine = self._stored_refine(stored.get("refine"), trees, state.step)
        if state.status == "completed":  # resumed with more steps: continue the same run
            state.status = "running"
        return state


def _device_mesh(cfg):
    """The 1-d device mesh the batch is sharded over (None for one device)."""
    from ..parallel import batch_mesh

    available = jax.devices()  # all devices of all processes
    n = len(available) if cfg.devices == 0 else cfg.devices
    if n > len(available):
        raise QRGInputError(f"devices = {cfg.devices} but only {len(available)} JAX devices are available")
    if n <= 1:
        return None
    if cfg.batch % n:
        raise QRGInputError(f"batch ({cfg.batch}) must be a multiple of the number of devices ({n}) it is sharded "
                            "over; change batch or set devices")
    return batch_mesh(available[:n])


def check_out(out, *, resume: bool, force: bool):
    """Check the output directory before any work: it must be a writable directory (created if
    missing) and must not hold another run unless ``resume`` (continue it) or ``force`` (replace it)."""
    import pathlib

    if out is None:
        return None
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise QRGInputError(f"out {str(out)!r} exists and is not a directory")
    if resume:
        if not ckpt.has_checkpoint(out):
            raise ckpt.CheckpointError(f"no checkpoint to resume from in {str(out)!r}")
    elif not force and ((out / "result.json").exists() or ckpt.has_checkpoint(out)):
        raise QRGInputError(f"out {str(out)!r} holds another run (result.json or checkpoint.npz): continue it "
                            "with resume (--resume) or replace it with force (--force)")
    return check_writable_dir(out, "out")


def average_from(cfg, schedule_steps: int) -> int | None:
    """The first step whose parameters enter the iterate average (None: ``average = 0``, no averaging): the
    last ``average`` fraction of the scheduled steps (of the original run when resuming; steps added by
    extending a run are averaged too)."""
    if not cfg.average:
        return None
    return schedule_steps - max(1, round(cfg.average * schedule_steps))


def _schedule_steps(cfg, out, resume: bool) -> int:
    """Steps of the learning-rate schedule: the original run's when resuming (continuing past it runs at the
    final rate lr·lr_final), so --steps only extends a run; it cannot shorten one."""
    if not resume:
        return cfg.steps
    meta = ckpt.read_meta(out)
    done, scheduled = int(meta.get("step", 0)), int(meta.get("schedule_steps", meta.get("config", {}).get("steps", 0)))
    if cfg.steps < done:
        raise QRGInputError(f"steps ({cfg.steps}) is below the {done} steps the checkpoint in {str(out)!r} already has")
    return scheduled


def _progress(cfg, start: int):
    from tqdm.auto import tqdm

    return tqdm(total=cfg.steps, initial=min(start, cfg.steps), desc="qrg solve", unit="step", dynamic_ncols=True)


class _RefineProgress:
    """A tqdm bar over the refinement steps with the weighted batch variance (a callback of ``refine``)."""

    def __init__(self, cfg, start: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=cfg.refine_steps, initial=min(start, cfg.refine_steps), desc="qrg refine", unit="step",
                        dynamic_ncols=True)

    def __call__(self, record):
        self.bar.set_postfix_str(f"Var(E_loc) {record['variance']:.3g}")
        self.bar.update(1)

    def close(self):
        self.bar.close()


def _evaluate(flow, params, theory, cfg, key_eval):
    """(EnergyStats, DiscretisationCheck | None) of the trained state with the evaluation settings."""
    if cfg.eval_n_steps and cfg.eval_n_steps != cfg.n_steps:
        flow = flow.replace(n_steps=cfg.eval_n_steps)
    stats = evaluate(flow, params, theory, key_eval, cfg.eval_batch, laplacian=cfg.laplacian,
                     n_probes=cfg.n_probes, local_batch=cfg.local_batch, max_batch=cfg.eval_cap,
                     estimator=cfg.estimator)
    check = None
    if cfg.systematic_batch:
        # the local energy's check costs second derivatives: only when it can be the reported estimator
        cheap = tuple(name for name in stats.estimates if not ESTIMATORS.get(name).needs_laplacian)
        estimators = tuple(stats.estimates) if cfg.estimator in ("local", "auto") else cheap
        check = discretisation_check(
            flow, params, theory, jax.random.fold_in(key_eval, 0x5157), min(cfg.systematic_batch, cfg.eval_batch),
            estimators=estimators, laplacian=cfg.laplacian, n_probes=cfg.n_probes,
            local_batch=min(cfg.local_batch, 256))
    return flow, stats, check


def refine_settings(cfg) -> RefineSettings:
    """The :class:`~qrg.groundstate.refine.RefineSettings` of a config's ``refine_*`` fields."""
    return RefineSettings(steps=cfg.refine_steps, batch=cfg.refine_batch, dtau=cfg.refine_dtau,
                          shift=cfg.refine_shift, broaden=cfg.refine_broaden, proposal=cfg.refine_proposal)


def check_init_params(init_params, template):
    """``init_params`` as a parameter pytree of the structure of ``template`` (the flow's ``init``): the same
    tree structure and leaf shapes (cast to the template's dtypes), else a QRGInputError naming init_params."""
    return checked_params(init_params, template, "init_params", "this run's parameters (flow.init)",
                          "; warm starts need the same model, scheme and lattice")


def solve(theory=None, *, config: SolveConfig | None = None, model=None, out=None, resume: bool = False,
          force: bool = False, callback=None, progress: bool = False, inject_nan_at=(), init_params=None,
          init_from=None, **options) -> SolveResult:
    """Find the ground state of ``theory`` (a :class:`~qrg.Phi4`) with a learned RG-bridge flow.

    Options are the fields of :class:`~qrg.groundstate.config.SolveConfig` (``model``, ``scheme``,
    ``M``, ``T``, ``solver``, ``n_steps``, ``adjoint``, ``integrator``, ``steps``, ``batch``,
    ``seed``, ``optimizer``, ``lr``, ``lr_final``, ``warmup``, ``grad_clip``, ``sample_clip``, ``beta_rg``,
    ``eval_batch``, ``laplacian``, ``checkpoint_every``, ``init`` ...), given as keywords or in
    ``config``; keywords win, and ``theory`` overrides the problem fields. ``model`` may also be a
    ready :class:`~qrg.models.ScoreModel` (its scheme must match the config's).

    ``out``: directory for checkpoints and ``result.json``/``history.csv``/``energy.png``, checked
    before any work; a directory holding another run is refused unless ``resume=True`` (continue it
    from its checkpoint, bit for bit; a larger ``steps`` extends it at the final learning rate) or
    ``force=True`` (replace it). Ctrl-C saves the last completed step and raises
    :class:`~qrg.optim.loop.RunInterrupted`.
    ``callback(record)`` is called after every applied step with the history record (a dict).
    ``progress``: show a tqdm progress bar with the current energy ± error.
    ``inject_nan_at``: steps whose loss and gradients are replaced by NaN (tests the recovery path).
    ``init_params``: start the optimisation from these parameters instead of ``flow.init`` (a warm start, e.g.
    from the trained ``result.params`` of a neighbouring coupling, as :func:`qrg.scan.scan` does); a pytree
    with the structure and shapes of ``flow.init(...)`` (checked: QRGInputError naming init_params). The
    optimiser state and learning-rate schedule start afresh. Not with ``resume=True`` (a resumed run
    continues from its checkpoint).
    ``init_from``: the output directory of a finished or checkpointed run (:func:`load_run`) to start from,
    on the same lattice (a warm start) or a smaller one of the same d (a size transfer): its parameters are
    mapped to this run's by :func:`qrg.groundstate.transfer.transfer_params` (same a, model, scheme, M, T,
    init, collective, growth, pair, hidden; m² and λ may differ; QRGInputError naming the option
    otherwise). Then as ``init_params`` (not with it, nor with ``resume=True``); ``result.init_from`` and
    ``result.json`` record the run, its N, m², λ and the SHA-256 of its parameters
    (:func:`qrg.scan.params_digest`), and so does the checkpoint for a resumed run.
    """
    t_start = time.perf_counter()
    if isinstance(model, str):
        options["model"], model = model, None
    elif model is not None:
        options["model"] = "custom"
    cfg = _make_config(theory, config, options)
    theory = cfg.theory()
    _check_start(out, resume, init_params, init_from, model)
    source = None if init_from is None else _load_source(init_from)
    if source is not None:
        check_transferable(source.config, cfg)
    out = check_out(out, resume=resume, force=force)
    check_memory(cfg)
    schedule_steps = _schedule_steps(cfg, out, resume)
    mesh = _device_mesh(cfg)
    flow = build_flow(theory, cfg, model).replace(mesh=mesh)
    tx, schedule = make_optimizer(cfg.optimizer, cfg.lr, cfg.lr_final, cfg.warmup, schedule_steps, cfg.grad_clip)
    root = jax.random.PRNGKey(cfg.seed)
    key_init, key_train, key_eval = jax.random.split(root, 3)
    cv_fit = ControlVariateFit(n_stein_features(theory.lattice), cfg.cv_decay) if cfg.control_variates == "stein" \
        else None
    init_record = None
    if source is not None:
        init_params = transfer_params(source, cfg)
        init_record = _init_from_record(init_from, source)
    elif resume:
        init_record = ckpt.read_meta(out).get("init_from")
    run_ = _Run(cfg, flow, tx, root, key_init, cv_fit, schedule_steps, init_record)
    state = run_.load(out) if resume else _fresh_state(flow, tx, key_init, init_params)
    loop = Loop(objective=EnergyObjective(flow, theory, cfg.batch, cfg.beta_rg, cfg.rg_batch, cfg.consistency,
                                               cfg.sample_clip), tx=tx,
                schedule=schedule, accumulator=cv_fit, checkpoint_every=cfg.checkpoint_every, callback=callback,
                checkpointer=None if out is None or not is_main_process() else (lambda s: run_.save(out, s)),
                progress=_progress(cfg, state.step) if progress else None,
                poison_steps=frozenset(int(s) for s in inject_nan_at), divergence=DivergenceGuard(),
                average_from=average_from(cfg, schedule_steps), lr_recover=cfg.lr_recover)
    state = run(loop, state, cfg.steps, key_train)
    refined = _refine_phase(run_, flow, theory, state, key_train, out, progress)
    result = _evaluated_result(flow, state, theory, cfg, key_eval, mesh, schedule_steps, init_record, refined)
    if cfg.consistency_batch:
        result.consistency = rg_consistency(result, jax.random.fold_in(key_eval, 0xC0), min(cfg.consistency_batch,
                                                                                            cfg.eval_batch))
    result.wall_time_s = time.perf_counter() - t_start
    if out is not None and is_main_process():  # one writer when several processes run the solve
        result.save(out)
    return result


def _refine_phase(run_: _Run, flow, theory, state: LoopState, key_train, out, progress: bool) -> RefineState | None:
    """The refinement after a completed loop (None if ``refine_steps`` is 0 or the loop did not complete): the one
    a resumed run's checkpoint held (``run_.stored_refine``) continued if it continued this loop's final step,
    else started from the loop's (averaged) parameters; checkpointed into the solve's checkpoint."""
    cfg = run_.cfg
    if not cfg.refine_steps or state.status != "completed":
        return None
    stored = run_.stored_refine
    refined = stored if stored is not None and stored.from_step == state.step else \
        RefineState(params=state.averaged_params, from_step=state.step)
    saver = None if out is None or not is_main_process() else (lambda r: run_.save(out, state, r))
    bar = _RefineProgress(cfg, refined.step) if progress else None
    refined = refine(flow, theory, refined, jax.random.fold_in(key_train, 0x5E1F), refine_settings(cfg),
                     laplacian=cfg.laplacian, n_probes=cfg.n_probes, checkpointer=saver,
                     checkpoint_every=cfg.checkpoint_every, callback=bar)
    if bar is not None:
        bar.close()
    return refined


def _evaluated_result(flow, state: LoopState, theory, cfg, key_eval, mesh, schedule_steps: int,
                      init_record, refined: RefineState | None = None) -> SolveResult:
    """The SolveResult of a finished loop: the evaluation of its (averaged, or refined) parameters, checked for
    a runaway."""
    params = state.averaged_params if refined is None else refined.params
    flow, stats, check = _evaluate(flow, params, theory, cfg, key_eval)
    result = SolveResult(
        theory=theory, flow=flow, params=params, stats=stats, history=state.history, events=state.events,
        config=cfg, n_params=count_params(state.params), wall_time_s=0.0, train_time_s=state.train_time,
        steps_done=state.step, status=state.status, schedule_steps=schedule_steps,
        reference=theory.free_ground_energy() if theory.is_free else None, discretisation=check,
        n_devices=1 if mesh is None else mesh.devices.size, n_processes=jax.process_count(),
        averaged_steps=state.n_average, init_from=init_record,
        refine=None if refined is None else refine_summary(refined, refine_settings(cfg)))
    _check_runaway(result)
    return result


def _check_start(out, resume: bool, init_params, init_from, model) -> None:
    """Refuse, naming them, starting points of a solve that exclude each other."""
    if resume and out is None:
        raise QRGInputError("resume=True needs the output directory (out=...) that holds the checkpoint")
    if resume and init_params is not None:
        raise QRGInputError("init_params cannot be combined with resume=True: a resumed run continues from the "
                            "parameters of its checkpoint")
    if init_from is not None:
        if resume:
            raise QRGInputError("init_from cannot be combined with resume=True: a resumed run continues from the "
                                "parameters of its checkpoint")
        if init_params is not None:
            raise QRGInputError("init_from and init_params cannot both be given: pass one starting point")
        if model is not None:
            raise QRGInputError("init_from needs a score model built by name (config model), not a ready ScoreModel")


def _fresh_state(flow, tx, key_init, init_params) -> LoopState:
    """The loop state of a new run: ``flow.init`` or the checked ``init_params`` (a warm start or transfer;
    then only the structure of ``flow.init`` is needed, by ``jax.eval_shape``)."""
    if init_params is not None:
        return LoopState.create(check_init_params(init_params, jax.eval_shape(flow.init, key_init)), tx)
    return LoopState.create(flow.init(key_init), tx)


def _load_source(init_from) -> GroundState:
    """The trained state of the run in ``init_from`` (QRGInputError naming init_from if there is none)."""
    import pathlib

    path = pathlib.Path(init_from)
    if not ckpt.has_checkpoint(path):
        raise QRGInputError(f"init_from {str(path)!r} holds no run to start from (no checkpoint.npz)")
    return load_run(path)


def _init_from_record(init_from, source: GroundState) -> dict:
    """What result.json records of the run a solve started from (``init_from``)."""
    import pathlib

    from ..scan import params_digest

    c = source.config
    return {"run": str(pathlib.Path(init_from).resolve()), "d": c.d, "N": c.N, "m2": c.m2, "lam": c.lam,
            "params_sha256": params_digest(source.params)}


def _check_runaway(result: SolveResult, factor: float = DivergenceGuard().factor) -> None:
    """A final energy beyond start + factor·max(|start|, 1) (the training batches may miss the heavy tail
    that the larger evaluation finds) marks the run "diverged": its numbers are not a ground state."""
    if not result.history:
        return
    start, e = result.history[0]["energy"], result.energy.mean
    if not (e < start + factor * max(abs(start), 1.0)):
        result.status = "diverged"
        result.events.append({"step": result.steps_done, "event": f"the final evaluation gave a runaway energy "
                              f"{e:.4g} (first training batch {start:.4g}): the trained state is broken"})


def load_run(directory, *, n_steps: int | None = None) -> GroundState:
    """The trained :class:`GroundState` saved by a solve with ``out=directory`` (its checkpoint).

    ``n_steps``: ODE steps of the rebuilt flow (default: the run's ``eval_n_steps``, else ``n_steps``).
    Runs with a ready (``"custom"``) score model cannot be rebuilt by name.
    """
    meta = ckpt.read_meta(directory)
    try:
        cfg = SolveConfig.from_saved(meta.get("config") or {}, source=f"the checkpoint in {str(directory)!r}")
    except TypeError as err:
        raise ckpt.CheckpointError(f"the checkpoint in {str(directory)!r} has an incomplete config ({err})") from None
    if cfg.model == "custom":
        raise QRGInputError(f"the run in {str(directory)!r} used a custom score model: rebuild its flow yourself "
                            "and load the parameters with qrg.optim.load_checkpoint")
    theory = cfg.theory()
    flow = build_flow(theory, cfg, n_steps=n_steps or cfg.eval_n_steps or cfg.n_steps)
    tx, _ = make_optimizer(cfg.optimizer, cfg.lr, cfg.lr_final, cfg.warmup, cfg.steps, cfg.grad_clip)
    root = jax.random.PRNGKey(cfg.seed)
    cv_fit = ControlVariateFit(n_stein_features(theory.lattice), cfg.cv_decay) if cfg.control_variates == "stein" \
        else None
    trees, _ = ckpt.load_checkpoint(directory, _Run(cfg, flow, tx, root, jax.random.split(root, 3)[0],
                                                    cv_fit).templates(meta.get("layout") or ()))
    # the evaluated parameters: the refined ones after a refinement, else the iterate average when the run kept
    # one (config ``average``), else the last step's
    params = trees.get("refine_params", trees.get("average_params", trees["params"]))
    return GroundState(theory=theory, config=cfg, flow=flow, params=params)
