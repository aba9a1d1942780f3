"""The learning-rate range test of Smith (2015): train for a few steps while the rate grows
exponentially from ``start`` to ``end``, record the loss of each step, and suggest the rate where
the (smoothed) loss falls fastest. The model, the optimizer and ember's random stream are put back
exactly as they were afterwards, so that the next ``fit`` runs as if the test never happened.

Example:
    >>> import numpy as np
    >>> import ember
    >>> from ember import nn
    >>> ember.manual_seed(0)
    >>> x = np.random.default_rng(0).standard_normal((256, 2)).astype("float32")
    >>> y = (x.sum(axis=1) > 0).astype("int64")
    >>> model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> trainer = ember.Trainer(model, "cross_entropy", "sgd")
    >>> found = trainer.lr_find(x, y, start=1e-4, end=10.0, steps=40)
    >>> len(found.lrs) == len(found.losses) <= 40, 1e-4 <= found.suggestion <= 10.0
    (True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np  # host-side bookkeeping of the sweep

from ember import backend
from ember import random as _random
from ember.optim.lr import is_lr
from ember.tensor import Tensor

__all__ = ["LearningRateFinder", "LRFindResult"]


@dataclass
class LRFindResult:
    """What a range test found: the rate of each step, its loss (``losses``: raw; ``smoothed``:
    the bias-corrected exponential average the suggestion reads) and the suggested rate (the
    steepest descent of the smoothed loss against log lr, before its lowest point). Plot it with
    ``ember.plot.plot_lr_find(result)``.

    Example:
        >>> from ember.train.lr_finder import LRFindResult
        >>> r = LRFindResult([1e-3, 1e-2, 1e-1], [1.0, 0.5, 2.0], [1.0, 0.6, 1.5], 1e-2)
        >>> r.suggestion
        0.01
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float] = field(default_factory=list)
    suggestion: float = math.nan


def _copy(arrays: dict[str, Any]) -> dict[str, Any]:
    """Copies of the arrays: a compiled step donates (and so invalidates) the JAX buffers it got."""
    bk = backend.get()
    if bk.name == "numpy":
        return dict(arrays)  # ember never writes into an array
    return {k: bk.xp.array(v, copy=True) for k, v in arrays.items()}


def _suggest(lrs: list[float], smoothed: list[float]) -> float:
    """The rate where the smoothed loss falls fastest against log lr (fastai's "steep"), looked
    for between the first tenth of the sweep (whose average is still settling) and the lowest
    loss (past it the loss climbs); a sweep too short for that: a tenth of the best rate."""
    if not lrs:
        return math.nan
    lowest = int(np.argmin(smoothed))
    skip = max(1, len(lrs) // 10)
    if lowest - skip < 2:
        return float(lrs[lowest]) / 10.0 if lowest else float(lrs[0])
    log_lr = np.log(np.asarray(lrs[skip:lowest + 1]))
    slopes = np.gradient(np.asarray(smoothed[skip:lowest + 1]), log_lr)
    return float(lrs[skip + int(np.argmin(slopes))])


class LearningRateFinder:
    """The range test over a Trainer's model and optimizer (``Trainer.lr_find`` runs one).

    Args:
        trainer: the Trainer whose model, loss and optimizer are tested.

    Example:
        >>> import numpy as np
        >>> import ember
        >>> from ember import nn
        >>> from ember.train.lr_finder import LearningRateFinder
        >>> t = ember.Trainer(nn.Linear(2, 1), "mse", "sgd")
        >>> x = np.ones((32, 2), "float32"); y = np.zeros((32, 1), "float32")
        >>> r = LearningRateFinder(t).run(x, y, start=1e-3, end=1.0, steps=5, batch_size=8)
        >>> [round(lr, 6) for lr in r.lrs]
        [0.001, 0.005623, 0.031623, 0.177828, 1.0]
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def run(self, x: Any, y: Any = None, *, start: float = 1e-7, end: float = 10.0,
            steps: int = 100, batch_size: int = 32, smooth: float = 0.98,
            diverge: float = 4.0) -> LRFindResult:
        """Run ``steps`` training steps at rates ``start * (end / start) ** (i / (steps - 1))``,
        stopping early once the smoothed loss exceeds ``diverge`` times its best (or is not
        finite); then restore the model, the optimizer and the random stream."""
        owner = "Trainer.lr_find"
        self._check(owner, start, end, steps, smooth)
        t = self.trainer
        saved = (_copy(t.model.state_dict()), _copy(t.optimizer.state_dict()),
                 _copy({"key": _random.get_state()})["key"], t.model.training)
        try:
            return self._sweep(owner, x, y, start, end, steps, batch_size, smooth, diverge)
        finally:
            t.model.load_state_dict(saved[0])
            t.optimizer.load_state_dict(saved[1])
            t.optimizer.zero_grad()
            _random.set_state(saved[2])
            t.model.train(saved[3])

    def _check(self, owner: str, start: Any, end: Any, steps: Any, smooth: Any) -> None:
        if not (is_lr(start) and is_lr(end)) or start >= end:
            raise ValueError(f"{owner}: start and end must be rates with 0 < start < end, got "
                             f"start={start!r}, end={end!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"{owner}: steps must be an integer >= 2, got {steps!r}")
        if not 0.0 <= smooth < 1.0:
            raise ValueError(f"{owner}: smooth must be in [0, 1), got {smooth!r}")
        for gi, group in enumerate(self.trainer.optimizer.param_groups):
            if group.get("lr") is None:
                raise ValueError(f"{owner}: the optimizer's group {gi} has no lr to sweep (an "
                                 f"optax optimizer keeps it inside its transformation); use an "
                                 f"ember.optim optimizer")

    def _sweep(self, owner: str, x: Any, y: Any, start: float, end: float, steps: int,
               batch_size: int, smooth: float, diverge: float) -> LRFindResult:
        t = self.trainer
        source = t._source(owner, x, y, batch_size, True, None)
        step_fn = t._fn("train")
        t.model.train()
        mstate = t._init_mstate(with_loss=False)
        alive = Tensor._make(backend.get().xp.asarray(True), False, None)
        result = LRFindResult([], [])
        avg, best = 0.0, math.inf
        for i, ex in enumerate(source.executions(steps, 1)):
            lr = start * (end / start) ** (i / (steps - 1))
            t.optimizer.set_lr(lr)
            loss, mstate, alive = step_fn(t.model, t.optimizer, ex.x, ex.y, mstate, alive, False)
            value = float(backend.get().to_numpy(loss.data))
            if not math.isfinite(value):
                break
            avg = smooth * avg + (1.0 - smooth) * value
            smoothed = avg / (1.0 - smooth ** (i + 1))
            result.lrs.append(lr)
            result.losses.append(value)
            result.smoothed.append(smoothed)
            best = min(best, smoothed)
            if smoothed > diverge * best:
                break
        result.suggestion = _suggest(result.lrs, result.smoothed)
        return result
