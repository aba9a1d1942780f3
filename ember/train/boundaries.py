"""Decision regions of a 2-D classifier on a grid, and the callback that records them as training
goes on (host-side NumPy only: :mod:`ember.plot` draws and animates the frames).

Example:
    >>> import ember
    >>> from ember import nn
    >>> from ember.data import xor
    >>> from ember.train.boundaries import DecisionBoundaryRecorder
    >>> x, y = xor(16, seed=0)
    >>> rec = DecisionBoundaryRecorder(x, y, resolution=4)
    >>> _ = ember.Trainer(nn.Linear(2, 2), "cross_entropy", "sgd").fit(
    ...     x, y, epochs=1, callbacks=[rec], verbose=0)
    >>> [f.epoch for f in rec.frames]
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np  # host-side only: the numbers that are drawn

from ember import backend
from ember.creation import tensor
from ember.function import no_grad
from ember.nn.module import Module
from ember.tensor import Tensor
from ember.train.callback import Callback

__all__ = ["DecisionFrame", "DecisionBoundaryRecorder"]


def _to_numpy(a: Any) -> np.ndarray:
    """A Tensor (either backend), a JAX array, a NumPy array or nested lists as a NumPy array."""
    if isinstance(a, Tensor):
        return np.asarray(a.numpy())
    return np.asarray(a)


def _positive(value: Any, name: str, owner: str) -> int:
    """``value`` when it is a positive integer, else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


class _EvalMode:
    """Eval mode and no gradient recording for a model, each module's own mode restored after."""

    def __init__(self, model: Module) -> None:
        self.model = model
        self._modes: list[tuple[Module, bool]] = []
        self._grad: Any = None

    def __enter__(self) -> None:
        self._modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        self._grad = no_grad()
        self._grad.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._grad.__exit__(*exc)
        for m, mode in self._modes:
            object.__setattr__(m, "training", mode)


def _float_dtype(model: Module) -> Any:
    """The dtype of the model's first floating-point parameter (default float32)."""
    for p in model.parameters():
        if p.dtype.kind == "f":
            return p.dtype
    return backend.default_float


def _as_input(model: Module, a: Any) -> Tensor:
    """``a`` as a Tensor the model can take: floats in the model's parameter dtype."""
    if isinstance(a, Tensor):
        return a
    arr = np.asarray(a)
    if arr.dtype.kind in "biuf":
        return tensor(arr, dtype=_float_dtype(model))
    return tensor(arr)


def _labels(y: Any, n: int, owner: str, name: str = "y") -> np.ndarray:
    """Integer class labels from labels ``(n,)``, ``(n, 1)`` or one-hot/scores ``(n, k)``."""
    arr = _to_numpy(y)
    if arr.ndim == 2 and arr.shape[1] > 1:
        arr = arr.argmax(axis=1)
    elif arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{owner}: {name} must hold one label per sample, shape ({n},), "
                         f"({n}, 1) or ({n}, classes); got {tuple(_to_numpy(y).shape)}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.rint(arr)):
            raise ValueError(f"{owner}: {name} must be integer class labels, got non-integer "
                             f"values")
        arr = np.rint(arr)
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{owner}: {name} must be class labels >= 0, got {int(arr.min())}")
    return arr


def _check_points(x: Any, owner: str) -> np.ndarray:
    arr = _to_numpy(x)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(f"{owner}: x must be 2-D points of shape (n, 2), got shape "
                         f"{tuple(arr.shape)}")
    return arr.astype(np.float64)


def _grid(points: np.ndarray, resolution: int, owner: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) \
            or resolution < 2:
        raise ValueError(f"{owner}: resolution must be an integer >= 2, got {resolution!r}")
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    lo, hi = lo - 0.1 * span, hi + 0.1 * span
    return np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                       np.linspace(lo[1], hi[1], resolution))


def _classify(model: Module, xx: np.ndarray, yy: np.ndarray, threshold: float,
              owner: str) -> tuple[np.ndarray, int]:
    """The class at each grid point and the number of classes the outputs have."""
    flat = np.stack([xx.ravel(), yy.ravel()], axis=1)
    outs = []
    with _EvalMode(model):
        for start in range(0, len(flat), 1 << 16):
            out = model(_as_input(model, flat[start:start + (1 << 16)]))
            if not isinstance(out, Tensor):
                raise TypeError(f"{owner}: the model must return one Tensor, got "
                                f"{type(out).__name__}")
            outs.append(_to_numpy(out))
    scores = np.concatenate(outs)
    if scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1):
        classes, k = (scores.reshape(-1) > threshold).astype(np.int64), 2
    elif scores.ndim == 2:
        classes, k = scores.argmax(axis=1).astype(np.int64), scores.shape[1]
    else:
        raise ValueError(f"{owner}: the model's output must be (n,), (n, 1) or (n, classes), "
                         f"got {scores.shape}")
    return classes.reshape(xx.shape), k


@dataclass
class DecisionFrame:
    """One recorded state of a classifier: the classes on the recorder's grid after ``epoch``
    epochs (0: before training), with the epoch's loss and accuracy when they were logged.

    Example:
        >>> import numpy as np
        >>> from ember.callbacks import DecisionFrame
        >>> grid = np.zeros((2, 2))
        >>> DecisionFrame(3, grid, grid, grid.astype(int), loss=0.25, accuracy=0.9).title()
        'epoch 3  loss 0.2500  acc 0.900'
    """

    epoch: int
    xx: np.ndarray
    yy: np.ndarray
    classes: np.ndarray
    loss: float | None = None
    accuracy: float | None = None

    def title(self) -> str:
        """``"epoch N  loss L  acc A"`` (the parts that are known)."""
        parts = [f"epoch {self.epoch}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.accuracy is not None:
            parts.append(f"acc {self.accuracy:.3f}")
        return "  ".join(parts)


def _accuracy_of(logs: Mapping[str, Any]) -> float | None:
    for key in ("accuracy", "acc", "binary_accuracy", "sparse_categorical_accuracy"):
        if isinstance(logs.get(key), (int, float)):
            return float(logs[key])
    for key, value in logs.items():
        if not key.startswith("val_") and key.endswith("accuracy") and isinstance(
                value, (int, float)):
            return float(value)
    return None


class DecisionBoundaryRecorder(Callback):
    """A training callback that records the model's decision regions as training goes on.

    At ``on_train_begin`` (frame of epoch 0: the untrained model) and after every ``every``-th
    epoch (and the last one) it evaluates the model on a fixed grid over ``x`` (see
    :func:`decision_grid`) and appends a :class:`DecisionFrame` to ``frames``, with the epoch's
    ``loss`` and accuracy from the logs. A new ``fit`` starts a new list. Turn the frames into a
    GIF with :func:`animate_decision_boundary`.

    Args:
        x: the 2-D points ``(n, 2)`` whose bounding box the grid covers (and that the animation
            draws).
        y: their labels.
        every: record every ``every`` epochs.
        resolution: grid points along each axis.
        threshold: the binary decision threshold for one output column.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> from ember.data import xor
        >>> x, y = xor(32, seed=0)
        >>> rec = ember.callbacks.DecisionBoundaryRecorder(x, y, every=2, resolution=10)
        >>> trainer = ember.Trainer(nn.Linear(2, 2), "cross_entropy", "sgd", metrics=["accuracy"])
        >>> _ = trainer.fit(x, y, epochs=3, callbacks=[rec], verbose=0)
        >>> [f.epoch for f in rec.frames], rec.frames[0].classes.shape
        ([0, 2, 3], (10, 10))
    """

    def __init__(self, x: Any, y: Any, every: int = 1, resolution: int = 100, *,
                 threshold: float = 0.0) -> None:
        owner = "DecisionBoundaryRecorder"
        self.every = _positive(every, "every", owner)
        self.x = _check_points(x, owner)
        self.y = _labels(y, len(self.x), owner)
        self.threshold = float(threshold)
        self.xx, self.yy = _grid(self.x, resolution, owner)
        self.num_classes = max(int(self.y.max()) + 1 if self.y.size else 0, 2)
        self.frames: list[DecisionFrame] = []
        self._pending: tuple[int, dict[str, Any]] | None = None

    def record(self, epoch: int, logs: Mapping[str, Any] | None = None) -> DecisionFrame:
        """Evaluate ``self.model`` now and append the frame (labelled ``epoch``)."""
        logs = logs or {}
        classes, k = _classify(self.model, self.xx, self.yy, self.threshold,
                               "DecisionBoundaryRecorder")
        self.num_classes = max(self.num_classes, k)
        loss = logs.get("loss")
        frame = DecisionFrame(int(epoch), self.xx, self.yy, classes,
                              float(loss) if isinstance(loss, (int, float)) else None,
                              _accuracy_of(logs))
        self.frames.append(frame)
        return frame

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.frames = []
        self._pending = None
        self.record(0)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if (epoch + 1) % self.every == 0:
            self.record(epoch + 1, logs)
            self._pending = None
        else:
            self._pending = (epoch + 1, dict(logs or {}))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._pending is not None:
            self.record(*self._pending)
            self._pending = None
