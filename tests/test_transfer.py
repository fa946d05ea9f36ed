"""Size transfer (qrg.groundstate.transfer): a trained run on a small lattice starts a run on a larger one."""

import json
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qrg.models.kernel_net as kernel_net
from qrg import Lattice, Phi4, QRGInputError
from qrg.cli import main
from qrg.groundstate import SolveConfig, load_run, solve
from qrg.groundstate.ansatz import build_flow
from qrg.groundstate.transfer import TRANSFER_KEYS, check_transferable, transfer_params
from qrg.hartree import hartree_variance
from qrg.models.gaussian_bridge import shell_means, shell_phat2
from qrg.models.kernel_net import orbit_transfer
from qrg.scan import params_digest

# a tiny solve (the Gaussian-bridge model keeps the compilation short); init "default" (the free m² = 1
# Gaussian) is far from the ground state of m² = 1, λ = 6, so what training learned shows in the energy
TINY = {"model": "gaussian", "init": "default", "batch": 16, "n_steps": 4, "eval_n_steps": 4, "eval_batch": 256,
        "local_batch": 16, "laplacian": "none", "systematic_batch": 0, "consistency_batch": 0,
        "checkpoint_every": 0, "lr": 0.03, "beta_rg": 0.0}
TINY_FLAGS = ["--model", "gaussian", "--batch", "16", "--n-steps", "4", "--eval-n-steps", "4", "--eval-batch", "256",
              "--local-batch", "16", "--laplacian", "none", "--systematic-batch", "0", "--consistency-batch", "0",
              "--checkpoint-every", "0", "--lr", "0.03", "--beta-rg", "0", "--no-progress"]


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _template(cfg):
    """Shapes and dtypes of the parameters of cfg's flow (without running its init)."""
    return jax.eval_shape(build_flow(cfg.theory(), cfg).init, jax.random.PRNGKey(0))


def _random_params(cfg, seed=1, scale=0.3):
    """Parameters of cfg's flow with random O(scale) leaves (kernels and hidden channels that matter)."""
    leaves, tree = jax.tree_util.tree_flatten(_template(cfg))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_unflatten(tree, [jnp.asarray(scale * rng.normal(size=x.shape), dtype=x.dtype)
                                               for x in leaves])


def _score(flow, params, phi, t):
    """The model's score s(φ, t) (jitted: one compilation instead of many eager operations)."""
    return np.asarray(jax.jit(lambda p, x: flow.model.apply(p, x, t)[0])(params, phi))


def test_orbit_transfer_copies_shared_orbits_halves_the_antipodal_one_and_zeroes_new_ones():
    # chain 4 -> 8: orbits |r| = 0, 1, 2 (2 antipodal on N = 4: one site; on N = 8 two, ±2), then 3, 4 new
    index, factor = orbit_transfer(Lattice(1, 4), Lattice(1, 8))
    assert index.tolist() == [0, 1, 2, -1, -1] and factor.tolist() == [1, 1, 0.5, 0, 0]
    # square 4 -> 8: canonical (a, b), a <= b; each coordinate equal to 2 halves once
    index, factor = orbit_transfer(Lattice(2, 4), Lattice(2, 8))
    reps = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]  # the N = 4 orbits, in their order
    big = kernel_net.orbit_representatives(Lattice(2, 8)).tolist()
    for o, c in enumerate(big):
        c = tuple(c)
        if c in reps:
            assert index[o] == reps.index(c) and factor[o] == 0.5 ** c.count(2), c
        else:
            assert index[o] == -1 and factor[o] == 0, c
    # the same lattice: everything copied, nothing halved; odd N has no antipodal orbit
    index, factor = orbit_transfer(Lattice(2, 4), Lattice(2, 4))
    assert index.tolist() == list(range(6)) and np.all(factor == 1)
    assert orbit_transfer(Lattice(1, 5), Lattice(1, 10))[1].tolist() == [1, 1, 1, 0, 0, 0]
    with pytest.raises(QRGInputError, match="same d"):
        orbit_transfer(Lattice(1, 8), Lattice(1, 4))


@pytest.mark.parametrize("d, small, large, options", [
    (1, 4, 8, dict(model="default", collective=True, pair=True, hidden=2)),
    (2, 2, 4, dict(model="kernel", pair=True, hidden=1)),
])
def test_transferred_score_repeats_the_small_lattices_score_on_periodic_fields(d, small, large, options):
    """On a field that repeats the small lattice periodically the transferred model's score is the small
    model's, repeated: exact with the antipodal orbit halved, wrong with it copied (double weight)."""
    source = SolveConfig(d=d, N=small, init="default", **options)
    target = source.replace(N=large)
    params = _random_params(source)
    moved = transfer_params(source, target, params)
    f_s, f_t = build_flow(source.theory(), source), build_flow(target.theory(), target)
    template = _template(target)
    assert jax.tree_util.tree_structure(moved) == jax.tree_util.tree_structure(template)
    assert [(x.shape, x.dtype) for x in _leaves(moved)] == [(x.shape, x.dtype) for x in jax.tree_util.tree_leaves(template)]
    kn_s = params["params"].get("members_1", params["params"])
    kn_t = moved["params"].get("members_1", moved["params"])
    assert kn_t["log_frequency"] == kn_s["log_frequency"]
    for name in ("Dense_0", "Dense_1"):  # the time networks' hidden layers: copied
        assert np.array_equal(kn_t["kernel_net"][name]["kernel"], kn_s["kernel_net"][name]["kernel"])
    reps = np.tile(1, d)
    phi = jnp.asarray(np.random.default_rng(2).normal(size=source.theory().lattice.shape))
    tiled = jnp.tile(phi, reps * (large // small))
    s_small = np.tile(_score(f_s, params, phi, 0.7), reps * (large // small))
    s_large = _score(f_t, moved, tiled, 0.7)
    assert np.max(np.abs(s_small)) > 1.0  # the kernels matter
    np.testing.assert_allclose(s_large, s_small, rtol=1e-9, atol=1e-9)

    def copied(src, tgt):  # the antipodal orbit copied at full value
        index, factor = orbit_transfer(src, tgt)
        return index, np.where(index >= 0, 1.0, 0.0)

    with mock.patch.object(kernel_net, "orbit_transfer", copied):
        doubled = transfer_params(source, target, params)
    assert np.max(np.abs(_score(f_t, doubled, tiled, 0.7) - s_small)) > 1e-2


@pytest.mark.parametrize("options", [dict(model="default", collective=True, pair=True, hidden=2),
                                     dict(model="eft"), dict(model="gaussian")])
def test_same_lattice_and_theory_is_bit_for_bit(options):
    cfg = SolveConfig(N=4, **options)
    params = _random_params(cfg)
    same = transfer_params(cfg, cfg.replace(steps=7, lr=0.1, solver="tsit5"), params)  # run settings may differ
    assert params_digest(same) == params_digest(params)


def test_gaussian_bridge_keeps_the_learned_change_from_its_initial_gaussian():
    """init = "hartree": log C_0 on the large lattice = its own Hartree Gaussian + the change training made to
    the small run's Hartree Gaussian, interpolated in p̂² (at shared p̂² exactly the change); m² may differ."""
    source = SolveConfig(N=4, model="gaussian", m2=1.0, lam=6.0)
    target = source.replace(N=8, m2=0.5)
    params = _random_params(source, scale=0.2)
    moved = transfer_params(source, target, params)["params"]["log_variance0"]
    init = {c.N: shell_means(c.theory().lattice, np.log(hartree_variance(c.theory()))) for c in (source, target)}
    change = np.asarray(params["params"]["log_variance0"]) - np.asarray(init[4])
    p2_s, p2_t = shell_phat2(source.theory().lattice), shell_phat2(target.theory().lattice)
    np.testing.assert_allclose(p2_s, [0.0, 2.0, 4.0], atol=1e-12)
    shared = [int(np.argmin(abs(p2_t - p))) for p in p2_s]
    np.testing.assert_allclose(np.asarray(moved)[shared] - np.asarray(init[8])[shared], change, atol=1e-12)
    np.testing.assert_allclose(np.asarray(moved) - init[8], np.interp(p2_t, p2_s, change), atol=1e-12)
    lat = Lattice(1, 8)
    np.testing.assert_allclose(shell_means(lat, np.log(lat.phat2 + 1.0)), np.log(p2_t + 1.0), atol=1e-12)


def test_eft_keeps_its_running_couplings():
    source = SolveConfig(N=4, model="eft", init="hartree")
    target = source.replace(N=12)
    params = _random_params(source, scale=0.1)
    moved = transfer_params(source, target, params)
    f_s, f_t = build_flow(source.theory(), source), build_flow(target.theory(), target)
    for t in (0.05, 0.5, 1.0):
        np.testing.assert_allclose(f_t.model.apply(moved, t, method="couplings"),
                                   f_s.model.apply(params, t, method="couplings"), rtol=1e-6)
    assert moved["params"]["residual_net"]["kernel_net"]["Dense_2"]["kernel"].shape[1] == 6 * 7  # 6 orbits on N = 12


@pytest.mark.parametrize("key", [k for k in TRANSFER_KEYS if k != "d"])
def test_refuses_a_different_option_naming_it(key):
    source = SolveConfig(N=4, model="default")
    changed = {"a": 0.5, "model": "kernel", "scheme": "polchinski", "M": 2.0, "T": 0.5, "init": "default",
               "collective": True, "growth": False, "pair": True, "hidden": 1}[key]
    with pytest.raises(QRGInputError, match=rf"different \['{key}'\].*pass the same {key}"):
        check_transferable(source, source.replace(N=8, **{key: changed}))


def test_refuses_other_d_smaller_N_and_foreign_params():
    source = SolveConfig(N=4, model="gaussian")
    with pytest.raises(QRGInputError, match=r"different \['d'\]"):
        check_transferable(source, source.replace(d=2))
    with pytest.raises(QRGInputError, match="N = 2 is smaller than the source run's N = 4"):
        check_transferable(source, source.replace(N=2))
    # growth is not a model option of the gaussian and eft models: not compared there
    check_transferable(source.replace(growth=False), source.replace(N=8))
    foreign = _random_params(source.replace(N=8))
    with pytest.raises(QRGInputError, match=r"params \(of the source run, N = 4\): leaf 0 has shape \(5,\)"):
        transfer_params(source, source.replace(N=8), foreign)
    with pytest.raises(QRGInputError, match="params"):
        transfer_params(source, source.replace(N=8))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A tiny trained run on the chain N = 8 at m² = 1, λ = 6."""
    out = tmp_path_factory.mktemp("transfer") / "chain8"
    return {"out": out, "result": solve(Phi4.chain(8, 1.0, 6.0), out=out, steps=30, **TINY)}


def test_init_from_starts_the_larger_run_near_the_small_runs_energy_per_site(small):
    """Every step rejected (NaN injected): the evaluated state is the transferred start itself. Its energy per
    site is the small run's (finite-size effects at N = 8 are ~1e-6 per site here), far below that of the
    default start."""
    res_s = small["result"]
    theory = Phi4.chain(16, 1.0, 6.0)
    warm = solve(theory, init_from=small["out"], steps=1, inject_nan_at=[0], **TINY)
    cold = solve(theory, steps=1, inject_nan_at=[0], **TINY)
    e_s, e_w, e_c = (r.energy.mean / r.theory.lattice.n_sites for r in (res_s, warm, cold))
    err = np.hypot(res_s.energy.err / 8, warm.energy.err / 16)
    assert abs(e_w - e_s) < 5 * err, (e_w, e_s, err)
    assert e_c - e_w > 50 * err, (e_c, e_w, e_s)
    state = load_run(small["out"])
    assert params_digest(warm.params) == params_digest(transfer_params(state, warm.config))
    record = warm.init_from
    assert record["N"] == 8 and record["d"] == 1 and record["m2"] == 1.0 and record["lam"] == 6.0
    assert record["run"] == str(small["out"].resolve())
    assert record["params_sha256"] == params_digest(state.params) == params_digest(res_s.params)
    assert warm.to_json()["init_from"] == record and cold.to_json()["init_from"] is None


def test_init_from_refusals(small, tmp_path):
    theory = Phi4.chain(16, 1.0, 6.0)
    with pytest.raises(QRGInputError, match="init_from cannot be combined with resume"):
        solve(theory, init_from=small["out"], resume=True, out=small["out"], **TINY)
    with pytest.raises(QRGInputError, match="init_from and init_params"):
        solve(theory, init_from=small["out"], init_params=small["result"].params, **TINY)
    with pytest.raises(QRGInputError, match="init_from .* holds no run"):
        solve(theory, init_from=tmp_path, **TINY)
    with pytest.raises(QRGInputError, match=r"different \['model'\]"):
        solve(theory, init_from=small["out"], out=tmp_path / "refused", **{**TINY, "model": "default"})
    assert not (tmp_path / "refused").exists()  # refused before any work
    with pytest.raises(QRGInputError, match="N = 4 is smaller"):
        solve(Phi4.chain(4, 1.0, 6.0), init_from=small["out"], **TINY)


def test_cli_init_from_records_the_source_and_survives_resume(small, tmp_path, capsys):
    out = tmp_path / "chain16"
    config = tmp_path / "chain.toml"
    config.write_text('init = "default"\n')  # (init has no flag)
    args = ["solve", str(config), "--N", "16", "--m2", "1", "--lam", "6", *TINY_FLAGS, "--out", str(out)]
    assert main([*args, "--steps", "1", "--init-from", str(small["out"])]) == 0
    assert "started from the run in" in capsys.readouterr().err
    record = json.loads((out / "result.json").read_text())["init_from"]
    assert record["N"] == 8 and record["params_sha256"] == params_digest(small["result"].params)
    assert main([*args, "--steps", "2", "--resume"]) == 0  # the checkpoint keeps the record
    assert json.loads((out / "result.json").read_text())["init_from"] == record
    assert main([*args, "--steps", "3", "--resume", "--init-from", str(small["out"])]) == 2
    assert "--init-from cannot be combined with --resume" in capsys.readouterr().err
