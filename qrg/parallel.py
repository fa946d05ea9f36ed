"""Data parallelism: shard the Monte Carlo batch over devices (GPUs, or CPU devices in tests).

Every per-sample computation in qrg (ODE solves, local energies, kernels) is independent across
the batch axis, so one mesh axis ``"batch"`` is all that is needed: samples are sharded along it,
parameters are replicated, and XLA inserts the all-reduce for means and gradients.

* Single process, many devices: works out of the box (``jax.devices()``).
* Many processes (a cluster): call :func:`initialize_distributed` first on every process
  (wraps ``jax.distributed.initialize``; with no arguments it reads the cluster environment,
  e.g. SLURM); the global batch is then split across all devices of all processes.
* Test the multi-device path on a CPU with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` set before JAX starts.
"""

from __future__ import annotations

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._validation import QRGInputError

BATCH_AXIS = "batch"


_DISTRIBUTED = {"initialized": False}


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, **kwargs) -> None:
    """Start multi-process JAX (idempotent; call before any other JAX computation, as
    ``jax.distributed.initialize`` requires). Every process of the run calls it with the same
    ``coordinator_address`` (``host:port`` of process 0) and ``num_processes`` and its own
    ``process_id``; arguments left None are read from the cluster environment (SLURM, Open MPI, ...)
    or ``JAX_COORDINATOR_ADDRESS``. Further kwargs go to ``jax.distributed.initialize``."""
    if _DISTRIBUTED["initialized"]:
        return
    if num_processes is not None and (not isinstance(num_processes, int) or num_processes < 1):
        raise QRGInputError(f"num_processes must be a positive integer (got {num_processes!r})")
    if process_id is not None and (not isinstance(process_id, int) or process_id < 0
                                   or (num_processes is not None and process_id >= num_processes)):
        raise QRGInputError(f"process_id must be an integer in [0, num_processes) (got {process_id!r} with "
                            f"num_processes = {num_processes!r})")
    if coordinator_address is not None and (":" not in coordinator_address
                                            or not coordinator_address.rsplit(":", 1)[1].isdigit()):
        raise QRGInputError(f"coordinator_address must be host:port (got {coordinator_address!r})")
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)
    except (RuntimeError, ValueError) as err:
        raise QRGInputError(f"could not start multi-process JAX ({err}); give coordinator_address, "
                            "num_processes and process_id, or run inside a cluster job (e.g. srun)") from None
    _DISTRIBUTED["initialized"] = True


def is_main_process() -> bool:
    """True on the process that writes files and prints (process 0; always True in one process)."""
    return jax.process_index() == 0


def gather(tree):
    """Every leaf as an array the calling process can read: a batch sharded over the devices of several
    processes is all-gathered (``multihost_utils.process_allgather``, the same full array on every
    process); anything else is returned unchanged (so one process sees no copy and no change)."""

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return multihost_utils.process_allgather(x, tiled=True)
        return x

    return jax.tree_util.tree_map(one, tree)


def device_summary() -> dict:
    """``{"n_devices", "n_processes", "platform"}`` of the running JAX backend."""
    return {"n_devices": jax.device_count(), "n_processes": jax.process_count(),
            "platform": jax.devices()[0].platform}


def batch_mesh(devices=None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    import numpy as np

    return Mesh(np.asarray(devices), (BATCH_AXIS,))


def check_batch_divisible(batch: int, mesh: Mesh | None = None, name: str = "batch") -> int:
    mesh = mesh or batch_mesh()
    n = mesh.devices.size
    if batch % n:
        raise QRGInputError(f"{name} must be a multiple of the number of devices ({n}) (got {batch})")
    return batch


def batch_sharding(mesh: Mesh | None = None, ndim: int = 1) -> NamedSharding:
    """Shard axis 0 over the batch mesh axis, replicate the rest."""
    mesh = mesh or batch_mesh()
    return NamedSharding(mesh, PartitionSpec(BATCH_AXIS, *([None] * (ndim - 1))))


def replicated(mesh: Mesh | None = None) -> NamedSharding:
    mesh = mesh or batch_mesh()
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(x, mesh: Mesh | None = None):
    """Place an array (or pytree of arrays) with a leading batch axis across devices."""
    mesh = mesh or batch_mesh()
    return jax.tree_util.tree_map(lambda a: jax.device_put(a, batch_sharding(mesh, a.ndim)), x)


def constrain_batch(x, mesh: Mesh | None = None):
    """Inside jit: ask XLA to keep the leading batch axis sharded (no-op on one device)."""
    mesh = mesh or batch_mesh()
    if mesh.devices.size == 1:
        return x
    return jax.tree_util.tree_map(
        lambda a: jax.lax.with_sharding_constraint(a, batch_sharding(mesh, a.ndim)), x
    )


def replicate(tree, mesh: Mesh | None = None):
    """Place parameters (or any pytree) on every device."""
    mesh = mesh or batch_mesh()
    return jax.device_put(tree, replicated(mesh))
