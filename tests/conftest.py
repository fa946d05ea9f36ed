import os
import shutil
import tempfile

# Compilation dominates the test suite's time (a tiny solve compiles for ~40 s and runs for < 1 s on a
# 2-core CI machine). The xdist workers and the CLI subprocesses of one run share a persistent
# compilation cache in a fresh directory, so a program compiled by one test is loaded, not recompiled,
# by the next; nothing is reused between runs. diffrax's traced-dt sign check is an equinox runtime
# error (a host callback), which makes every program with an ODE solve uncacheable; "nan" turns such
# errors into NaNs, which the tests' assertions (and qrg's NaN policy) would report as failures anyway.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
_CACHE = os.path.join(tempfile.gettempdir(), f"qrg-test-jax-cache-{_RUN}")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE  # inherited by subprocesses
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("EQX_ON_ERROR", "nan")
# The tests' programs run for milliseconds and compile for seconds: XLA's backend optimisations (LLVM
# passes) cost more than they save. Without them a tiny solve's backend compilation took 17-19 s instead
# of 27-28 s and a NUTS test 16 s of CPU instead of 26 s (same printed numbers). Users' runs, `make run`
# and the benchmarks keep the optimisations; set JAX_DISABLE_MOST_OPTIMIZATIONS=0 to test with them.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput") and os.path.isdir(_CACHE):  # the controller cleans up
        shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture
def key(request):
    """A deterministic PRNG key per test (derived from the test name)."""
    import zlib

    return jax.random.PRNGKey(zlib.crc32(request.node.name.encode()) & 0x7FFFFFFF)
