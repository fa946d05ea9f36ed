"""Runs that are safe to start, stop and resume: checkpoints that cannot run code, refusal to overwrite,
output checked before work, Ctrl-C, resume semantics, runaway learning rates, impossible sizes."""

import json
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qrg
from qrg.cli import main
from qrg.groundstate import SolveConfig, solve
from qrg.groundstate.solve import check_memory
from qrg.optim import CheckpointError, load_checkpoint, read_meta, save_checkpoint
from qrg.optim.loop import RunInterrupted

THEORY = qrg.Phi4.chain(4, 1.0, 2.0)
TINY = dict(model="gaussian", batch=8, n_steps=4, eval_n_steps=4, eval_batch=32, lr=0.02, laplacian="none",
            systematic_batch=0, consistency_batch=0)


# ---------------------------------------------------------------------------- checkpoints
def test_checkpoint_never_unpickles_and_rejects_every_corruption(tmp_path, key):
    """A pickle planted as the checkpoint is refused; of 200 single-byte flips none loads changed arrays."""
    params = {"a": jax.random.normal(key, (7, 3)), "b": {"c": np.arange(5.0)}}
    save_checkpoint(tmp_path, {"params": params}, {"step": 3, "history": [{"energy": 1.5}]})
    trees, meta = load_checkpoint(tmp_path, {"params": params})
    assert meta["step"] == 3 and meta["history"] == [{"energy": 1.5}]
    for x, y in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(trees["params"])):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    raw = (tmp_path / "checkpoint.npz").read_bytes()
    rng = np.random.default_rng(0)
    outcomes = {"refused": 0, "identical": 0}
    for pos in rng.choice(len(raw), 200, replace=False):
        bad = bytearray(raw)
        bad[pos] ^= 1 << int(rng.integers(8))
        (tmp_path / "checkpoint.npz").write_bytes(bytes(bad))
        try:
            got, _ = load_checkpoint(tmp_path, {"params": params})
        except CheckpointError as err:
            assert "checkpoint.npz" in str(err) and "\n" not in str(err)
            outcomes["refused"] += 1
            continue
        for x, y in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(got["params"])):
            assert np.array_equal(np.asarray(x), np.asarray(y))  # never silently changed parameters
        outcomes["identical"] += 1
    assert outcomes["refused"] >= 150, outcomes  # flips outside the zip's checked bytes may be harmless

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "checkpoint.npz").write_bytes(pickle.dumps({"params": Evil()}))
    with pytest.raises(CheckpointError, match="unreadable or corrupted"):
        load_checkpoint(tmp_path, {"params": params})
    save_checkpoint(tmp_path, {"params": {"a": np.zeros(2)}}, {"step": 0})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path, {"params": params})


def test_float32_checkpoint_loads_into_a_float64_run_but_not_other_kinds(tmp_path):
    """A run trained in float32 (e.g. on a GPU) is evaluated in float64: floats convert, shapes and
    integer arrays (PRNG keys) must still match."""
    p32 = {"w": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), "key": np.array([1, 2], dtype=np.uint32)}
    save_checkpoint(tmp_path, {"params": p32}, {"step": 1})
    template = {"w": np.zeros((2, 3)), "key": np.zeros(2, dtype=np.uint32)}
    got, _ = load_checkpoint(tmp_path, {"params": template})
    assert np.asarray(got["params"]["w"]).dtype == np.float64
    assert np.array_equal(np.asarray(got["params"]["w"]), p32["w"].astype(np.float64))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path, {"params": {"w": np.zeros((3, 2)), "key": np.zeros(2, dtype=np.uint32)}})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path, {"params": {"w": np.zeros((2, 3)), "key": np.zeros(2)}})


# ---------------------------------------------------------------------------- the output directory
def test_output_directory_is_checked_before_any_work(tmp_path):
    done = tmp_path / "done"
    solve(THEORY, steps=2, out=done, checkpoint_every=0, **TINY)
    with pytest.raises(qrg.QRGInputError, match="holds another run"):
        solve(THEORY, steps=2, out=done, **TINY)
    solve(THEORY, steps=2, out=done, force=True, checkpoint_every=0, **TINY)  # explicit replacement
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(qrg.QRGInputError, match="not a directory"):
        solve(THEORY, steps=2, out=a_file, **TINY)
    with pytest.raises(qrg.QRGInputError, match="no checkpoint"):
        solve(THEORY, steps=2, out=tmp_path / "empty", resume=True, **TINY)
    assert main(["solve", "--N", "4", "--lam", "0", "--steps", "2", "--out", str(a_file), "--no-progress"]) == 2
    assert main(["reference", "--method", "exact", "--N", "4", "--m2", "1", "--lam", "0", "--out", str(tmp_path)]) == 2
    assert main(["sample", "--N", "4", "--m2", "1", "--lam", "0", "--out", str(a_file)]) == 2
    assert main(["sample", "--N", "4", "--m2", "1", "--lam", "0", "--seed", "-5", "--out", str(tmp_path / "s")]) == 2


# ---------------------------------------------------------------------------- stopping and resuming
def test_ctrl_c_saves_the_last_completed_step_and_resume_is_bit_identical(tmp_path):
    straight = solve(THEORY, steps=6, out=tmp_path / "a", checkpoint_every=0, **TINY)

    def ctrl_c(record):
        if record["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted) as stop:
        solve(THEORY, steps=6, out=tmp_path / "b", checkpoint_every=0, callback=ctrl_c, **TINY)
    assert stop.value.state.step == 2 and read_meta(tmp_path / "b")["step"] == 2  # step 2 was not completed
    resumed = solve(THEORY, steps=6, out=tmp_path / "b", resume=True, **TINY)
    for x, y in zip(jax.tree_util.tree_leaves(straight.params), jax.tree_util.tree_leaves(resumed.params)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert [r["energy"] for r in straight.history] == [r["energy"] for r in resumed.history]


def test_resume_with_more_steps_continues_the_schedule_and_fewer_steps_are_refused(tmp_path):
    first = solve(THEORY, steps=6, out=tmp_path, checkpoint_every=0, **TINY)
    lr_end = first.history[-1]["lr"]
    more = solve(THEORY, steps=9, out=tmp_path, resume=True, **TINY)
    lrs = [r["lr"] for r in more.history]
    assert lrs[:6] == [r["lr"] for r in first.history]
    # past the original 6-step schedule the run continues at its final rate, lr · lr_final: no jump
    assert all(lr == pytest.approx(0.02 * SolveConfig().lr_final) for lr in lrs[6:]) and lr_end <= lrs[5]
    assert json.loads((tmp_path / "result.json").read_text())["schedule_steps"] == 6
    with pytest.raises(qrg.QRGInputError, match="below the 9 steps"):
        solve(THEORY, steps=4, out=tmp_path, resume=True, **TINY)


def test_runaway_learning_rate_is_rolled_back_and_reported(tmp_path):
    """lr = 1000 (the issue's example gave E = 1e12 with status "completed"): runaway steps are rolled back
    like NaN steps, no runaway energy is accepted, and a run that stops this way exits non-zero."""
    out = tmp_path / "lr1000"
    code = main(["solve", "--N", "4", "--m2", "1", "--lam", "2", "--steps", "30", "--lr", "1000", "--batch", "8",
                 "--n-steps", "4", "--eval-n-steps", "4", "--eval-batch", "64", "--laplacian", "none",
                 "--systematic-batch", "0", "--consistency-batch", "0", "--no-progress", "--out", str(out)])
    data = json.loads((out / "result.json").read_text())
    assert data["nan_recoveries"] > 0
    assert any("runaway" in e["event"] or "non-finite" in e["event"] for e in data["events"])
    history = [float(r) for r in (out / "history.csv").read_text().split("\n")[1:] if r for r in [r.split(",")[1]]]
    start = history[0]
    assert all(e < start + 10 * max(abs(start), 1.0) + 1e-9 for e in history)
    assert (code == 3) == (data["status"] != "completed") and code in (0, 3)
    if not data["energy"] < start + 10 * max(abs(start), 1.0):  # a garbage result is never "completed"
        assert data["status"] == "diverged" and code == 3


class _BlowUp:
    """A toy objective for the divergence guard: loss = noise + p² under SGD whose learning rate jumps
    from 0.01 to 1.5 at update 150, so |p| doubles every step from there (an unstable run that climbs
    out of its band for several accepted steps before its first runaway step)."""

    def __call__(self, params, key, inputs):
        loss = 0.01 * jax.random.normal(key) + jnp.sum(params["p"] ** 2)
        return loss, {"loss": loss}

    def metrics(self, loss, aux):
        return {"loss": float(loss), "energy": float(loss), "energy_err": 0.0}


def test_divergence_guard_restores_the_anchor_from_before_the_excursion():
    """A runaway step after excursions goes back to the last anchor (a state whose following window of
    losses stayed in the band), not to the previous, already degraded step; the run then completes in
    its band. The guard's state survives a checkpoint round trip."""
    import optax

    from qrg.optim.loop import DivergenceGuard, Loop, LoopState, run

    tx = optax.sgd(lambda n: jnp.where(n < 150, 0.01, 1.5))  # the count is in the optimiser state
    loop = Loop(objective=_BlowUp(), tx=tx, divergence=DivergenceGuard(), average_from=100)
    guard = loop.divergence
    state = LoopState.create({"p": jnp.asarray(0.1)}, tx)
    state = run(loop, state, 300, jax.random.PRNGKey(0))
    restores = [e for e in state.events if "restored_step" in e]
    assert restores, state.events
    first = restores[0]
    assert first["restored_step"] < min(r["step"] for r in state.history if r["loss"] > 0.5)  # before the climb
    assert state.status == "completed" and state.restores == len(restores) <= guard.max_restores
    assert all(abs(r["loss"]) < 0.1 for r in state.history[-50:])  # back in the band, p -> 0
    assert float(state.params["p"] ** 2) < 1e-3
    again = LoopState.restore(state.trees(), json.loads(json.dumps(state.scalars())))
    assert again.recent == state.recent and again.last_excursion == state.last_excursion
    assert again.restores == state.restores and again.anchor[2:] == state.anchor[2:]
    np.testing.assert_array_equal(again.anchor[0]["p"], state.anchor[0]["p"])
    # the iterate average held degraded steps: it restarted at the last restore
    last = restores[-1]["step"]
    assert "parameter average" in restores[0]["event"]
    assert state.n_average == sum(r["step"] > last for r in state.history)


class _Metastable:
    """loss = p² + 0.05·sigmoid(40(q − 1)) + 0.01·noise: q ≈ 0 is the optimum, q > 1 a plateau 5 noise
    standard deviations higher (inside the excursion band) where the gradient nearly vanishes."""

    def __call__(self, params, key, inputs):
        loss = 0.01 * jax.random.normal(key) + params["p"] ** 2 + 0.05 * jax.nn.sigmoid(40.0 * (params["q"] - 1.0))
        return loss, {"loss": loss}

    def metrics(self, loss, aux):
        return {"loss": float(loss), "energy": float(loss), "energy_err": 0.0}


def _kick_q(at: int, delta: float):
    """An optimiser stage that adds ``delta`` to q's update at update number ``at`` (a jump to the plateau
    that a restored state meets again, scaled by the halved learning-rate factor)."""
    import optax

    def update(updates, count, params=None):
        return {**updates, "q": updates["q"] + jnp.where(count == at, delta, 0.0)}, count + 1

    return optax.GradientTransformation(lambda params: jnp.zeros((), jnp.int32), update)


def _metastable_run(guard, n_steps: int):
    """SGD on :class:`_Metastable` from (p, q) = (0.1, 0) with a jump of q to the plateau at update 150."""
    import optax

    from qrg.optim.loop import Loop, LoopState, run

    tx = optax.chain(optax.sgd(0.05), _kick_q(150, 1.2))
    return run(Loop(objective=_Metastable(), tx=tx, divergence=guard),
               LoopState.create({"p": jnp.asarray(0.1), "q": jnp.asarray(0.0)}, tx), n_steps, jax.random.PRNGKey(3))


@pytest.mark.parametrize("guarded", [False, True])
def test_divergence_guard_restores_the_anchor_after_a_sustained_drift(guarded):
    """A jump to a worse plateau that stays (no failed step, no loss out of band: the seed-0 3000-step run of
    docs/solver.md) is undone by the drift check: the anchor from before the jump comes back with the
    learning rate halved, and the run ends at the optimum. Without the drift check it ends on the plateau."""
    from qrg.optim.loop import DivergenceGuard, rolled_back

    guard = DivergenceGuard() if guarded else DivergenceGuard(drift_sigma=float("inf"))
    state = _metastable_run(guard, 400)
    assert state.status == "completed" and not rolled_back(state.events)
    assert not any(r["loss"] > guard.band([h["loss"] for h in state.history[:i]])
                   for i, r in enumerate(state.history))  # no loss left the band: only the drift check sees it
    final = float(np.median([r["loss"] for r in state.history[-50:]]))
    if not guarded:
        assert not state.events and float(state.params["q"]) > 1.1 and final > 0.04
        return
    [event] = state.events
    assert "drifted" in event["event"] and event["restored_step"] < 150 < event["step"] < 200
    assert state.lr_scale == 0.5 and state.restores == 1
    assert float(state.params["q"]) < 0.7 and abs(final) < 0.01


def test_qrg_solve_prints_a_line_for_every_drift_restore(monkeypatch, capsys):
    """The drift restores of a run (events as the loop writes them) are named on stderr by `qrg solve`, with
    the step and the restored step, and are not counted as rolled-back steps."""
    import dataclasses

    import qrg.groundstate
    from qrg.optim.loop import DivergenceGuard, rolled_back

    [drift] = _metastable_run(DivergenceGuard(), 250).events
    real_solve = qrg.groundstate.solve

    def solve_with_a_drift(*args, **kwargs):
        result = real_solve(*args, **kwargs)
        return dataclasses.replace(result, events=[drift])

    monkeypatch.setattr(qrg.groundstate, "solve", solve_with_a_drift)
    assert main(["solve", "--N", "4", "--steps", "2", "--model", "gaussian", "--batch", "8", "--n-steps", "4",
                 "--eval-n-steps", "4", "--eval-batch", "32", "--laplacian", "none", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert (f"drifted up 1 time(s) (at step {drift['step']}): the state of step {drift['restored_step']} "
            "restored, learning rate halved; status: completed") in err
    assert "rolled back" not in err and not rolled_back([drift])


def test_iterate_average_is_the_mean_of_the_accepted_steps_and_resumes_exactly():
    """average_from = s0: state.average is the mean of the parameters after every accepted step from s0 on
    (a NaN step in the window is not counted), and a checkpoint round trip in the middle of the window
    continues the same average."""
    import optax

    from qrg.optim.loop import Loop, LoopState, run

    tx = optax.sgd(0.05)
    loop = Loop(objective=_BlowUp(), tx=tx, average_from=20, poison_steps=frozenset({30}))
    state, seen, key = LoopState.create({"p": jnp.asarray(1.0)}, tx), [], jax.random.PRNGKey(1)
    for n in range(1, 61):
        state.status = "running"
        state = run(loop, state, n, key)
        if n - 1 >= 20 and n - 1 != 30:
            seen.append(float(state.params["p"]))
        if n == 40:
            mid = (state.trees(), json.loads(json.dumps(state.scalars())))
    assert state.n_average == len(seen) == 39
    np.testing.assert_allclose(float(state.average["p"]), np.mean(seen), rtol=1e-12)
    assert float(state.averaged_params["p"]) == float(state.average["p"])
    resumed = LoopState.restore(*mid)
    resumed.status = "running"
    resumed = run(loop, resumed, 60, key)
    assert resumed.n_average == 39 and float(resumed.average["p"]) == float(state.average["p"])


def test_a_run_halved_twenty_times_in_all_stops_as_diverged():
    """Failures that are not consecutive (every other step NaN) still stop the run once the learning rate
    has been halved max_failures times: it no longer trains, and is not reported as completed."""
    import optax

    from qrg.optim.loop import MAX_CONSECUTIVE_FAILURES, Loop, LoopState, run

    tx = optax.sgd(0.01)
    loop = Loop(objective=_BlowUp(), tx=tx, poison_steps=frozenset(range(1, 200, 2)))
    state = run(loop, LoopState.create({"p": jnp.asarray(0.1)}, tx), 200, jax.random.PRNGKey(0))
    assert state.status == "diverged" and state.failures == 1
    assert state.lr_scale == 0.5 ** MAX_CONSECUTIVE_FAILURES and state.step == 2 * MAX_CONSECUTIVE_FAILURES
    assert "no longer trains" in state.events[-1]["event"]



def test_lr_recover_doubles_a_halved_learning_rate_back_and_resumes_the_same():
    """lr_recover = K: after failures at steps 3 and 4 (factor 1/4) the factor doubles at steps 4 + K and
    4 + 2K, back to 1 and no further; the doublings are events that are not roll-backs, the steps use the
    doubled rate, and a checkpoint round trip between them continues identically. Without it the factor
    stays at 1/4."""
    import optax

    from qrg.optim.loop import Loop, LoopState, rolled_back, run

    tx, key = optax.sgd(0.01), jax.random.PRNGKey(2)
    K = 10
    loop = Loop(objective=_BlowUp(), tx=tx, poison_steps=frozenset({3, 4}), lr_recover=K)
    state = run(loop, LoopState.create({"p": jnp.asarray(0.5)}, tx), 40, key)
    assert state.status == "completed" and state.lr_scale == 1.0
    assert [(e["step"], e["lr_scale"]) for e in state.events] == [(3, 0.5), (4, 0.25), (4 + K, 0.5), (4 + 2 * K, 1.0)]
    assert len(rolled_back(state.events)) == 2 and "doubled back" in state.events[2]["event"]
    lr = {r["step"]: r["lr"] for r in state.history}
    assert lr[5] == lr[4 + K] == 0.25 and lr[5 + K] == lr[4 + 2 * K] == 0.5 and lr[5 + 2 * K] == lr[39] == 1.0
    half = run(loop, LoopState.create({"p": jnp.asarray(0.5)}, tx), 4 + K + 3, key)
    resumed = LoopState.restore(half.trees(), json.loads(json.dumps(half.scalars())))
    resumed.status = "running"
    resumed = run(loop, resumed, 40, key)
    assert resumed.events == state.events and float(resumed.params["p"]) == float(state.params["p"])
    plain = run(Loop(objective=_BlowUp(), tx=tx, poison_steps=frozenset({3, 4})),
                LoopState.create({"p": jnp.asarray(0.5)}, tx), 40, key)
    assert plain.lr_scale == 0.25 and len(plain.events) == 2


def test_lr_recover_reaches_the_loop_from_solve_and_the_cli(tmp_path):
    """solve(lr_recover=K): a step rolled back in a real solve has its learning rate doubled back K steps later
    (recorded in result.json), and the setting is part of the resume check; `qrg solve --lr-recover K`
    passes it to the run's config (and --warmup the warm-up length)."""
    out = tmp_path / "run"
    res = solve(THEORY, out=out, steps=8, lr_recover=3, inject_nan_at=(2,), checkpoint_every=4, **TINY)
    data = json.loads((out / "result.json").read_text())
    assert res.status == "completed" and data["config"]["lr_recover"] == 3
    assert [(e["step"], e["lr_scale"]) for e in data["events"]] == [(2, 0.5), (5, 1.0)]
    with pytest.raises(qrg.QRGInputError, match="lr_recover"):
        solve(THEORY, out=out, resume=True, steps=8, lr_recover=4, checkpoint_every=4, **TINY)
    main(["solve", "--N", "4", "--m2", "1", "--lam", "2", "--model", "gaussian", "--steps", "2", "--batch", "8",
          "--n-steps", "4", "--eval-n-steps", "4", "--eval-batch", "32", "--local-batch", "16", "--laplacian", "none",
          "--systematic-batch", "0", "--consistency-batch", "0", "--lr-recover", "7", "--warmup", "25",
          "--out", str(tmp_path / "cli")])
    cfg = json.loads((tmp_path / "cli" / "result.json").read_text())["config"]
    assert cfg["lr_recover"] == 7 and cfg["warmup"] == 25

# ---------------------------------------------------------------------------- input that cannot work
def test_impossible_sizes_and_bad_values_are_refused_by_name(tmp_path):
    with pytest.raises(qrg.QRGInputError, match="batch"):
        check_memory(SolveConfig(batch=10**11))
    with pytest.raises(qrg.QRGInputError, match="eval_batch|batch"):
        check_memory(SolveConfig(d=3, N=1000))
    check_memory(SolveConfig())  # the default fits easily
    with pytest.raises(qrg.QRGInputError, match="seed"):
        SolveConfig(seed=10**25)
    for bad_average in (1.0, -0.1):
        with pytest.raises(qrg.QRGInputError, match="average"):
            SolveConfig(average=bad_average)
    with pytest.raises(qrg.QRGInputError, match="lr_recover"):
        SolveConfig(lr_recover=-1)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"N = 16\n\xff\xfe = 3\n")
    with pytest.raises(qrg.QRGInputError, match="UTF-8"):
        SolveConfig.from_toml(bad)
    assert main(["solve", "--batch", "100000000000", "--no-progress"]) == 2
    assert main(["solve", "--d", "3", "--N", "1000", "--no-progress"]) == 2


def test_ctrl_c_before_the_training_loop_is_one_line_and_exit_130(monkeypatch, capsys):
    """A KeyboardInterrupt during set-up or compilation (before any step): no traceback, exit 130."""
    import qrg.groundstate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(qrg.groundstate, "solve", interrupted)  # what `qrg solve` calls
    assert main(["solve", "--N", "4", "--steps", "2"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "qrg solve: interrupted (nothing saved)"
