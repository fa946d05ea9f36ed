"""One process of a two-process JAX run on localhost (tests/test_distributed.py starts two of these).

argv: process_id num_processes port mode [out]
  mode "sample": a batch sharded over the devices of both processes, gathered, against the same draw
                 computed unsharded on this process alone; prints "OK <checksum>".
"""

import sys

pid, nproc, port, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

from qrg import parallel  # noqa: E402

parallel.initialize_distributed(f"localhost:{port}", nproc, pid)

import jax  # noqa: E402
import numpy as np  # noqa: E402

import qrg  # noqa: E402
from qrg.groundstate.ansatz import build_flow, draw  # noqa: E402

assert jax.process_count() == nproc and jax.device_count() == nproc * jax.local_device_count()
if mode == "sample":
    cfg = qrg.SolveConfig(N=4, m2=1.0, lam=6.0, n_steps=4)
    flow = build_flow(cfg.theory(), cfg)
    params = flow.init(jax.random.PRNGKey(1))
    key = jax.random.PRNGKey(2)
    sharded = flow.replace(mesh=parallel.batch_mesh())
    phi_T = sharded.prior(params).sample(key, (16,))
    raw = jax.jit(lambda p, x: sharded.transport(p, x, sharded.T, 0.0))(params, phi_T)
    assert not raw.is_fully_addressable, "the batch was not split over the processes"
    assert len(raw.sharding.device_set) == jax.device_count()
    phi, g = draw(sharded, params, key, 16, 16)  # gathered: the same full arrays on every process
    phi1, g1 = draw(flow, params, key, 16, 16)  # this process alone, no sharding
    np.testing.assert_allclose(np.asarray(phi), np.asarray(phi1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g1), rtol=1e-10, atol=1e-10)
    print("OK", parallel.is_main_process(), float(np.sum(phi)), flush=True)
else:
    raise SystemExit(f"unknown mode {mode}")
