"""net_scaled_adam: per-group learning rates (the kernel network's scaled by net_scale)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qrg._validation import QRGInputError
from qrg.euclidean.learning import make_flow
from qrg.optim.optimizers import net_scaled_adam, paper_adam
from qrg.theory import Phi4


def _params():
    theory = Phi4.from_params(d=1, N=4, a=1.0, m2=0.5, lam=0.1)
    flow = make_flow(theory, model="default", n_steps=2, solver="rk4")
    return flow.init(jax.random.PRNGKey(0))


def test_first_adam_step_sizes_per_group():
    """Adam's first update is −lr·g/(|g| + ε) ≈ −lr·sign(g): bridge leaves move by lr, the rest by lr·net_scale."""
    params = _params()
    grads = jax.tree_util.tree_map(lambda x: jnp.full_like(x, 0.37), params)
    lr, scale = 5e-3, 0.01
    opt = net_scaled_adam(params, lr, 8000, 0.1, net_scale=scale)
    updates, _ = opt.update(grads, opt.init(params), params)
    bridge = np.asarray(updates["params"]["members_0"]["log_variance0"])
    np.testing.assert_allclose(bridge, -lr, rtol=1e-6)
    net = jax.tree_util.tree_leaves(updates["params"]["members_1"])
    assert net
    for leaf in net:
        np.testing.assert_allclose(np.asarray(leaf), -lr * scale, rtol=1e-6)


def test_net_scale_one_is_the_paper_optimizer():
    params = _params()
    grads = jax.tree_util.tree_map(lambda x: jnp.linspace(-1.0, 2.0, x.size).reshape(x.shape), params)
    a, _ = net_scaled_adam(params, 5e-3).update(grads, net_scaled_adam(params, 5e-3).init(params), params)
    b, _ = paper_adam(5e-3).update(grads, paper_adam(5e-3).init(params), params)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert isinstance(net_scaled_adam(params, 5e-3, net_scale=0.5), optax.GradientTransformation)
    with pytest.raises(QRGInputError, match="net_scale"):
        net_scaled_adam(params, 5e-3, net_scale=0.0)
