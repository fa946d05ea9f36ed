"""The multi-device path, on 2 forced CPU devices (a subprocess, since XLA_FLAGS must precede JAX)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    import qrg
    from qrg import parallel
    assert len(jax.devices()) == 2, jax.devices()
    lat = qrg.Lattice(1, 8)
    theory = qrg.Phi4(lat, 1.0, 0.0)
    gs = theory.free_ground_state()
    phi = gs.sample(jax.random.PRNGKey(0), (64,))
    sharded = parallel.shard_batch(phi)
    assert len(sharded.sharding.device_set) == 2
    @jax.jit
    def energy(phi):
        phi = parallel.constrain_batch(phi)
        g = gs.score(phi)
        return jnp.mean(jnp.sum(g**2, -1) / 8 + theory.potential(phi))
    e_sharded = energy(sharded)
    g = np.asarray(gs.score(phi))
    e_single = np.mean(np.sum(g**2, -1) / 8 + np.asarray(theory.potential(phi)))
    np.testing.assert_allclose(e_sharded, e_single, rtol=1e-12)
    try:
        parallel.check_batch_divisible(63)
    except qrg.QRGInputError as err:
        assert "multiple of the number of devices (2)" in str(err)
    else:
        raise AssertionError("odd batch accepted")
    print("OK", float(e_sharded))
    """
)


def test_batch_sharding_on_two_cpu_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith("OK")


SOLVE_SCRIPT = textwrap.dedent(
    """
    import json, jax, numpy as np
    import qrg
    import sys
    counts = [int(c) for c in sys.argv[1].split(",")]
    assert len(jax.devices()) == max(counts), jax.devices()
    theory = qrg.Phi4.chain(4, 1.0, 6.0)
    kw = dict(steps=4, batch=8, n_steps=4, eval_n_steps=4, eval_batch=64, local_batch=16,
              systematic_batch=int(sys.argv[2]), consistency_batch=32, beta_rg=0.5, rg_batch=8, checkpoint_every=0)
    out = {}
    for devices in counts:
        res = qrg.solve(theory, devices=devices, **kw)
        phi, _, _ = res.flow.sample(res.params, jax.random.PRNGKey(0), 8)
        # the same parameters through the unsharded flow and through this run's (sharded) flow
        same = res.flow.replace(mesh=None).sample(res.params, jax.random.PRNGKey(1), 8)
        here = res.flow.sample(res.params, jax.random.PRNGKey(1), 8)
        dphi = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(same, here))
        out[devices] = {"energy": res.energy.mean, "err": res.energy.err, "ibp": res.stats.ibp.mean,
                        "ibp_err": res.stats.ibp.err, "same_params_max_dphi": dphi,
                        "history": [(r["energy"], r["energy_err"]) for r in res.history],
                        "n_devices": res.to_json()["n_devices"],
                        "sharded_over": len(phi.sharding.device_set),
                        "chi2": res.consistency.chi2}
    try:
        qrg.solve(theory, devices=3, **kw)
    except qrg.QRGInputError as err:
        out["odd"] = str(err)
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.parametrize("counts,systematic_batch", [
    ((2,), 0),  # default suite: a solve sharded over 2 devices; same-parameter samples against unsharded ones
    pytest.param((1, 2, 4), 16, marks=pytest.mark.slow),  # whole runs compared (also benchmarks/strong_scaling)
])
def test_solve_on_1_2_4_devices_agrees_and_shards_the_batch(counts, systematic_batch):
    """The same solve with the batch sharded over 1, 2 and 4 forced CPU devices: the same numbers up to
    the reduction order of float64 sums, and the samples really are split. With the same parameters the
    sharded and unsharded solves agree to 1e-12. Training reorders sums, and Adam's normalised steps
    amplify the round-off; the stated tolerance is then 1e-6 of each number's own statistical error
    (energies) or of its value (error bars, χ²): far below anything a user can resolve."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={max(counts)}", JAX_PLATFORMS="cpu")
    res = subprocess.run([sys.executable, "-c", SOLVE_SCRIPT, ",".join(map(str, counts)), str(systematic_batch)],
                         capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    out = json.loads(res.stdout.split("RESULT", 1)[1])
    for d in map(str, counts):
        assert out[d]["n_devices"] == int(d) and out[d]["sharded_over"] == int(d)
        assert out[d]["same_params_max_dphi"] < 1e-12  # φ, log p and ∇ log p
        assert all(np.isfinite([e for e, _ in out[d]["history"]])) and np.isfinite(out[d]["chi2"])
    if 1 not in counts:
        assert "devices = 3 but only 2 JAX devices are available" in out["odd"]
        return
    one = out["1"]
    for d in map(str, counts[1:]):
        assert abs(out[d]["energy"] - one["energy"]) <= 1e-6 * one["err"]
        assert abs(out[d]["ibp"] - one["ibp"]) <= 1e-6 * one["ibp_err"]
        for name in ("err", "ibp_err", "chi2"):
            assert abs(out[d][name] - one[name]) <= 1e-6 * abs(one[name]), (d, name)
        assert len(out[d]["history"]) == len(one["history"])
        for (a, _), (b, err) in zip(out[d]["history"], one["history"]):  # batch energies, batch error bars
            assert abs(a - b) <= 1e-6 * err
    assert "multiple of the number of devices (3)" in out["odd"]
