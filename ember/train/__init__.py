"""Training: the Trainer, its callbacks, metrics and checkpoints.

Example:
    >>> import ember
    >>> from ember.train import Trainer, History
    >>> Trainer is ember.Trainer
    True
"""

from __future__ import annotations

# -- trainer and callbacks (T) --
from ember.train import callbacks, compile  # noqa: F401  (compile attaches Module.fit)
from ember.train.trainer import History, Trainer, train_one_step

__all__ = ["Trainer", "History", "train_one_step", "callbacks"]
# -- end trainer and callbacks (T) --

# -- metrics and checkpoints (MC) --
from ember.train import checkpoint, metrics
from ember.train.checkpoint import (
    CheckpointError,
    has_checkpoint,
    load,
    read_checkpoint,
    save,
    write_checkpoint,
)
from ember.train.metrics import Metric, get_metric

__all__ += [
    "metrics",
    "checkpoint",
    "Metric",
    "get_metric",
    "save",
    "load",
    "write_checkpoint",
    "read_checkpoint",
    "has_checkpoint",
    "CheckpointError",
]
# -- end metrics and checkpoints (MC) --
