"""Optimisation: the one training loop (:mod:`.loop`), optimisers and schedules (:mod:`.optimizers`)
and checkpoints that store arrays and JSON only (:mod:`.checkpoint`)."""

from .checkpoint import CheckpointError, load_checkpoint, read_meta, save_checkpoint
from .loop import Loop, LoopState, run, train_step
from .optimizers import OPTIMIZERS, make_optimizer, warmup_cosine

__all__ = ["Loop", "LoopState", "run", "train_step", "OPTIMIZERS", "make_optimizer", "warmup_cosine",
           "save_checkpoint", "load_checkpoint", "read_meta", "CheckpointError"]
