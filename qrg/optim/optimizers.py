"""Optimisers by name and the learning-rate schedules qrg uses (optax).

``OPTIMIZERS`` maps a name to a factory ``(schedule) -> optax.GradientTransformation``;
:func:`make_optimizer` wraps it with the warm-up + cosine schedule of the ground-state solver
and optional global-norm clipping. A new optimiser is one ``OPTIMIZERS.register`` line.
"""

from __future__ import annotations

import functools

import optax

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
