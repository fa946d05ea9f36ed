"""Optimisers by name and the learning-rate schedules qrg uses (optax): all of qrg's optimiser factories.

``OPTIMIZERS`` maps a name to a factory ``(schedule) -> optax.GradientTransformation``;
:func:`make_optimizer` wraps it with the warm-up + cosine schedule of the ground-state solver
and optional global-norm clipping. A new optimiser is one ``OPTIMIZERS.register`` line.
:func:`paper_adam` is the paper's Section 7.1 Adam (the RG-learning objectives and the flow
sampler) and :func:`net_scaled_adam` the same with a separate learning-rate factor for the
kernel network.
"""

from __future__ import annotations

import functools

import jax
import optax

from .._validation import check_real
from ..registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")
OPTIMIZERS.register("adam", optax.adam)
OPTIMIZERS.register("sgd", lambda schedule: optax.sgd(schedule, momentum=0.9))


def warmup_cosine(lr: float, lr_final: float, warmup: int, steps: int):
    """Linear warm-up from lr/10 over ``warmup`` steps, then cosine decay to ``lr·lr_final`` at ``steps``."""
    warmup = min(warmup, max(steps - 1, 0))
    decay_steps = max(steps, warmup + 1)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.1 * lr if warmup > 0 else lr, peak_value=lr, warmup_steps=warmup,
        decay_steps=decay_steps, end_value=lr * lr_final)


@functools.lru_cache(maxsize=64)
def make_optimizer(name: str, lr: float, lr_final: float, warmup: int, steps: int, grad_clip: float = 0.0):
    """(optimiser, schedule): ``name`` from ``OPTIMIZERS`` on :func:`warmup_cosine`, clipped by global
    norm ``grad_clip`` (0 = off). Cached on its arguments, so that equal settings share one compiled
    training step."""
    schedule = warmup_cosine(lr, lr_final, warmup, steps)
    base = OPTIMIZERS.get(name, "optimizer")(schedule)
    tx = optax.chain(optax.clip_by_global_norm(grad_clip), base) if grad_clip > 0 else base
    return tx, schedule


def paper_adam(learning_rate: float = 5e-3, transition_steps: int = 8000, decay_rate: float = 0.1,
               b1: float = 0.8, b2: float = 0.9) -> optax.GradientTransformation:
    """Adam(b1=0.8, b2=0.9) with lr = 5e-3 · 0.1^(step/8000) (paper Section 7.1)."""
    schedule = optax.exponential_decay(learning_rate, transition_steps, decay_rate)
    return optax.adam(schedule, b1=b1, b2=b2)


def net_scaled_adam(params, learning_rate: float = 5e-3, transition_steps: int = 8000,
                    decay_rate: float = 0.1, net_scale: float = 1.0, b1: float = 0.8,
                    b2: float = 0.9) -> optax.GradientTransformation:
    """The paper's Adam (:func:`paper_adam`) with the learning rate of every parameter that
    is not a Gaussian-bridge log-variance (``log_variance0``) multiplied by ``net_scale``.

    Why: Adam moves every parameter by ≈ lr per step whatever its gradient's scale, and the
    network's output is a score, which the velocity multiplies by ½B = ½a^-d (Carosso) and whose
    convolution kernels sum the network's outputs over up to N^d displacements. With the paper's
    lr = 5e-3 on every parameter one step wrecks the flow on fine lattices; ``net_scale = a^d/N``
    (what ``qrg rgflow`` uses, :func:`qrg.euclidean.learning.default_net_scale`) trains stably at N = 20.
    ``net_scale = 1`` is the paper's optimiser unchanged.
    """
    net_scale = check_real("net_scale", net_scale, positive=True)
    if net_scale == 1.0:
        return paper_adam(learning_rate, transition_steps, decay_rate, b1, b2)

    def labels(tree):
        def label(path, _):
            names = [getattr(k, "key", getattr(k, "name", "")) for k in path]
            return "bridge" if "log_variance0" in names else "net"

        return jax.tree_util.tree_map_with_path(label, tree)

    return optax.multi_transform(
        {"bridge": paper_adam(learning_rate, transition_steps, decay_rate, b1, b2),
         "net": paper_adam(learning_rate * net_scale, transition_steps, decay_rate, b1, b2)},
        labels)
