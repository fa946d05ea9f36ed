"""The multi-device path, on 2 forced CPU devices (a subprocess, since XLA_FLAGS must precede JAX)."""

import os
import subprocess
import sys
import textwrap

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
