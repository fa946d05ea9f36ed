"""Independence Metropolis (blackjax.irmh over pre-drawn proposals) against exact answers."""

import jax
import numpy as np
import pytest

from qrg.euclidean.samplers.imh import independence_metropolis
from qrg.stats import statistics


@pytest.mark.parametrize("target_var", [0.5, 2.0])
def test_imh_samples_the_target_and_accepts_at_the_exact_rate(target_var):
    """Target p = N(0, v) per component, proposal q = N(0, 1): the chain's second moment is v, and
    its acceptance rate is E_{x~p, x'~q} min(1, w(x')/w(x)), computed here from independent draws."""
    shape, n_chains, n = (2, 2), 8, 4000
    props = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (n_chains, n) + shape))
    r2 = (props**2).sum(axis=(-1, -2))
    log_p, log_q = -0.5 * r2 / target_var, -0.5 * r2
    xs, acc = independence_metropolis(jax.random.PRNGKey(1), props, log_p, log_q)
    xs, acc = np.asarray(xs)[:, 200:], np.asarray(acc)[:, 200:]  # burn-in: the chains start at a draw of q

    second = statistics((xs**2).mean(axis=(-1, -2)))
    assert abs(second.mean - target_var) < 4 * second.err, (second, target_var)

    rng = np.random.default_rng(2)
    m = 1_000_000
    x = rng.normal(scale=np.sqrt(target_var), size=(m, 4))
    y = rng.normal(size=(m, 4))

    def log_w(z):
        s = (z**2).sum(axis=1)
        return -0.5 * s / target_var + 0.5 * s

    exact_rate = np.mean(np.minimum(1.0, np.exp(log_w(y) - log_w(x))))
    rate = statistics(acc.astype(float))
    assert abs(rate.mean - exact_rate) < 4 * np.hypot(rate.err, 1 / np.sqrt(m)), (rate, exact_rate)
    assert 0.2 < rate.mean < 0.95  # a non-trivial test: the proposal is not the target


def test_imh_with_the_target_as_proposal_accepts_everything():
    props = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (2, 100, 3)))
    lp = -0.5 * (props**2).sum(axis=-1)
    xs, acc = independence_metropolis(jax.random.PRNGKey(4), props, lp + 7.0, lp)  # log w = 7 everywhere
    assert np.all(np.asarray(acc)) and np.array_equal(np.asarray(xs), props)


def test_imh_rejects_nan_weights():
    props = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (1, 50, 3)))
    lp = np.zeros((1, 50))
    lq = lp.copy()
    lq[0, 10:20] = np.nan  # a failed flow solve: never accepted
    xs, acc = independence_metropolis(jax.random.PRNGKey(6), props, lp, lq)
    assert not np.any(np.asarray(acc)[0, 10:20]) and np.all(np.asarray(acc)[0, 20:])
    assert np.all(np.asarray(xs)[0, 10:20] == props[0, 9])
