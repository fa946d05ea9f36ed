import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key(request):
    """A deterministic PRNG key per test (derived from the test name)."""
    import zlib

    return jax.random.PRNGKey(zlib.crc32(request.node.name.encode()) & 0x7FFFFFFF)
