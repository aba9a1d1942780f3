"""Figures for training and models, on matplotlib: curves, decision boundaries, animations,
image grids, confusion matrices, kernels, feature maps and parameter statistics.

matplotlib is an optional extra (``pip install "ember[plot]"``); ``import ember`` never imports
it. Figures are made with ``matplotlib.figure.Figure`` and an Agg canvas, not with pyplot: no
GUI, no global figure state, nothing to close, safe in threads and on machines without a display.

Every function returns the ``Figure`` and takes ``path=None``: give a file name (``.png``,
``.svg``, ``.pdf``, ... by its extension; parent folders are created) to save it as well. Inputs
may be ember Tensors, NumPy arrays or JAX arrays. In a notebook, display a figure by leaving it
as the cell's value.

Example:
    >>> import ember
    >>> from ember import nn, plot
    >>> from ember.data import xor
    >>> x, y = xor(64, seed=0)
    >>> model = nn.Sequential(nn.Linear(2, 8, activation="tanh"), nn.Linear(8, 2))
    >>> fig = plot.plot_decision_boundary(model, x, y, resolution=20)
    >>> type(fig).__name__
    'Figure'
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np  # host-side only: the numbers that are drawn

try:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
except ImportError as e:  # pragma: no cover - exercised with matplotlib hidden in the tests
    raise ImportError('ember.plot needs matplotlib: pip install "ember[plot]"') from e

from ember import backend
from ember.creation import tensor
from ember.function import no_grad
from ember.nn.module import Module
from ember.tensor import Tensor
from ember.train.callbacks import Callback

__all__ = [
    "plot_history",
    "decision_grid",
    "plot_decision_boundary",
    "DecisionBoundaryRecorder",
    "DecisionFrame",
    "animate_decision_boundary",
    "plot_images",
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_kernels",
    "plot_feature_maps",
    "plot_grad_norms",
    "plot_param_stats",
    "plot_histograms",
]

PathLike = str | os.PathLike[str]


# -- helpers ---------------------------------------------------------------------------------------

def _new_figure(width: float, height: float) -> Figure:
    """A Figure with its own Agg canvas (no pyplot, no GUI backend)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finish(fig: Figure, path: PathLike | None) -> Figure:
    """Save ``fig`` to ``path`` (creating parent folders) when a path is given; return it."""
    if path is not None:
        p = Path(os.fspath(path))
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p)
    return fig


def _to_numpy(a: Any) -> np.ndarray:
    """A Tensor (either backend), a JAX array, a NumPy array or nested lists as a NumPy array."""
    if isinstance(a, Tensor):
        return np.asarray(a.numpy())
    return np.asarray(a)


def _grid_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """Rows and columns for ``n`` panels (near-square unless ``ncols`` is given)."""
    cols = ncols if ncols is not None else math.ceil(math.sqrt(n))
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def _panel_grid(fig: Figure, n: int, ncols: int | None = None) -> list[Any]:
    """``n`` axes in a grid on ``fig``; the unused cells of the last row are not created."""
    rows, cols = _grid_shape(n, ncols)
    return [fig.add_subplot(rows, cols, i + 1) for i in range(n)]


def _positive(value: Any, name: str, owner: str) -> int:
    """``value`` when it is a positive integer, else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _class_colors(k: int) -> np.ndarray:
    """``k`` distinct RGBA colours (tab10, then tab20, then a sampled rainbow)."""
    if k <= 20:
        return np.asarray(matplotlib.colormaps["tab10" if k <= 10 else "tab20"](np.arange(k)))
    return np.asarray(matplotlib.colormaps["turbo"](np.linspace(0.0, 1.0, k)))


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


# -- training curves -------------------------------------------------------------------------------

def _history_parts(history: Any) -> tuple[dict[str, list[Any]], list[int] | None]:
    if hasattr(history, "history") and hasattr(history, "epoch"):
        return dict(history.history), [int(e) for e in history.epoch]
    if isinstance(history, Mapping):
        if set(history) == {"epoch", "history"} and isinstance(history["history"], Mapping):
            return dict(history["history"]), [int(e) for e in history["epoch"]]
        return dict(history), None
    raise TypeError(f"plot_history: expected an ember History or a dict of per-epoch lists, "
                    f"got {type(history).__name__}")


def _numbers(values: Sequence[Any]) -> np.ndarray | None:
    """The values as floats (None entries as NaN), or None when they are not numbers."""
    try:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _validated(epoch: int, freq: int | Iterable[int]) -> bool:
    if isinstance(freq, (int, np.integer)):
        return (epoch + 1) % int(freq) == 0
    return (epoch + 1) in {int(f) for f in freq}


def _val_epochs(epochs: list[int], count: int, name: str,
                validation_freq: int | Sequence[int] | None) -> list[int]:
    """The epochs in which ``count`` validation values of ``name`` were logged."""
    if count == len(epochs):
        return epochs
    if validation_freq is not None:
        chosen = [e for e in epochs if _validated(e, validation_freq)]
        if len(chosen) != count:
            raise ValueError(f"plot_history: validation_freq={validation_freq!r} selects "
                             f"{len(chosen)} of the {len(epochs)} epochs, but {name!r} has "
                             f"{count} values")
        return chosen
    freq = len(epochs) // count if count else 0
    if freq >= 1:
        chosen = [e for e in epochs if _validated(e, freq)]
        if len(chosen) == count:
            return chosen
    warnings.warn(f"plot_history: {name!r} has {count} values for {len(epochs)} epochs and no "
                  f"validation_freq fits; drawing them at the last {count} epochs (pass "
                  f"validation_freq= as given to fit)", stacklevel=3)
    return epochs[len(epochs) - count:]


def plot_history(history: Any, metrics: Sequence[str] | None = None,
                 path: PathLike | None = None, *,
                 validation_freq: int | Sequence[int] | None = None) -> Figure:
    """Training curves: one subplot per metric, training and validation values together.

    ``history`` is what ``Trainer.fit`` returns (an ``ember.History``), its ``to_dict()``, or a
    plain dict ``{"loss": [...], "val_loss": [...], ...}`` of per-epoch lists. The x axis counts
    epochs from 1 (as the progress lines do). ``loss`` comes first, then the other keys in the
    order they were logged; ``val_<name>`` is drawn in the axes of ``<name>``. ``lr`` is drawn
    only when asked for, on a log scale.

    Validation keys hold values only for the epochs that were validated. When a validation list
    is as long as the epochs it is drawn at every epoch (``None`` entries are gaps). When it is
    shorter, pass ``validation_freq`` exactly as given to ``fit`` (an int: every n-th epoch; a
    list: those 1-based epochs) to place the points; without it, ember assumes the integer
    frequency ``epochs // len(values)`` when that selects exactly as many epochs, and otherwise
    draws them at the last epochs with a warning.

    Args:
        history: a History, its ``to_dict()``, or a dict of lists.
        metrics: the names to draw (``"val_"`` prefixes are dropped); default every training key
            except ``lr``.
        path: a file to save the figure to.
        validation_freq: where the validation values belong (see above).

    Raises:
        KeyError: a name in ``metrics`` is not in the history (the message lists the names).

    Example:
        >>> from ember import plot
        >>> h = {"loss": [0.9, 0.5, 0.4], "accuracy": [0.5, 0.8, 0.9], "val_loss": [0.6, 0.45]}
        >>> fig = plot.plot_history(h, validation_freq=[2, 3])
        >>> [ax.get_title() for ax in fig.axes]
        ['loss', 'accuracy']
    """
    data, epochs = _history_parts(history)
    series = {k: v for k, v in ((k, _numbers(v)) for k, v in data.items()) if v is not None}
    bases = list(dict.fromkeys(k.removeprefix("val_") for k in series))
    available = ["loss"] if "loss" in bases else []
    available += [b for b in bases if b != "loss"]
    if metrics is None:
        names = [b for b in available if b != "lr"]
    else:
        if isinstance(metrics, str):
            metrics = [metrics]
        names = []
        for m in metrics:
            base = m.removeprefix("val_") if m not in available else m
            if base not in available:
                raise KeyError(f"plot_history: no {m!r} in the history; it has {available}")
            names.append(base)
    if not names:
        raise ValueError(f"plot_history: nothing to draw; the history has {available}")
    if epochs is None:  # a plain dict: as many epochs as the longest training list
        train_keys = [k for k in series if not k.startswith("val_")] or list(series)
        epochs = list(range(max(len(series[k]) for k in train_keys)))

    rows, cols = _grid_shape(len(names), 3)
    fig = _new_figure(4.2 * cols, 3.2 * rows)
    for ax, name in zip(_panel_grid(fig, len(names), cols), names):
        for key, label, style in ((name, "train", "-"), ("val_" + name, "validation", "o-")):
            values = series.get(key)
            if values is None or not len(values):
                continue
            if key.startswith("val_"):
                xs = _val_epochs(epochs, len(values), key, validation_freq)
            else:
                xs = epochs[:len(values)]
            marker = "o" if len(values) == 1 or style == "o-" else None
            ax.plot(np.asarray(xs[:len(values)]) + 1, values, linestyle="-", marker=marker,
                    markersize=3.5, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        if name == "lr":
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        if ("val_" + name) in series:
            ax.legend()
    return _finish(fig, path)


# -- decision boundaries ---------------------------------------------------------------------------

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


def decision_grid(model: Module, x: Any, resolution: int = 200, *,
                  threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's class on a ``resolution`` x ``resolution`` grid over 2-D points ``x``.

    The grid spans the points' bounding box plus 10% of its size on every side. The model runs
    in eval mode under ``no_grad`` (each module's train/eval mode is restored after). With
    ``classes`` output columns the class is their argmax (ties go to the lower class); with one
    column (or a 1-D output) the output is a binary logit and the class is ``output >
    threshold`` (give ``threshold=0.5`` for a model that ends in a sigmoid).

    Returns:
        ``(xx, yy, classes)``: float64 coordinate grids and the int64 classes, each of shape
        ``(resolution, resolution)``, rows along y.

    Example:
        >>> import numpy as np
        >>> import ember
        >>> from ember import nn, plot
        >>> model = nn.Linear(2, 1)
        >>> model.weight.data = ember.tensor([[1.0, 0.0]]).data   # logit = x0
        >>> model.bias.data = ember.zeros(1).data
        >>> xx, yy, classes = plot.decision_grid(model, np.array([[-1, -1], [1, 1]]), 5)
        >>> classes[0].tolist(), xx.shape
        ([0, 0, 0, 1, 1], (5, 5))
    """
    points = _check_points(x, "decision_grid")
    xx, yy = _grid(points, resolution, "decision_grid")
    classes, _ = _classify(model, xx, yy, threshold, "decision_grid")
    return xx, yy, classes


def _draw_regions(ax: Any, xx: np.ndarray, yy: np.ndarray, classes: np.ndarray,
                  colors: np.ndarray) -> Any:
    k = len(colors)
    return ax.contourf(xx, yy, classes, levels=np.arange(k + 1) - 0.5,
                       cmap=ListedColormap(colors), alpha=0.35, antialiased=True)


def _draw_points(ax: Any, points: np.ndarray, labels: np.ndarray | None,
                 colors: np.ndarray) -> None:
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=12, c="k", linewidths=0)
    else:
        ax.scatter(points[:, 0], points[:, 1], s=14, c=colors[labels], edgecolors="k",
                   linewidths=0.4)


def plot_decision_boundary(model: Module, x: Any, y: Any, path: PathLike | None = None, *,
                           resolution: int = 200, ax: Any = None, title: str | None = None,
                           threshold: float = 0.0) -> Figure:
    """The regions a 2-D classifier assigns to each class, with the labelled points on top.

    The classes come from :func:`decision_grid` (argmax of the outputs, or ``output >
    threshold`` for one logit column); the regions are filled in light class colours and the
    points drawn in the full colour of their label.

    Args:
        model: a module mapping ``(n, 2)`` points to ``(n, classes)`` or ``(n, 1)`` scores.
        x: the points, shape ``(n, 2)``.
        y: their labels, ``(n,)`` (or one-hot ``(n, classes)``).
        path: a file to save the figure to.
        resolution: grid points along each axis.
        ax: draw into these axes instead of a new figure (their figure is returned).
        title: the axes' title.
        threshold: the binary decision threshold for one output column.

    Raises:
        ValueError: ``x`` is not of shape ``(n, 2)``, or ``y`` does not match it.

    Example:
        >>> import ember
        >>> from ember import nn, plot
        >>> from ember.data import moons
        >>> x, y = moons(50, seed=0)
        >>> fig = plot.plot_decision_boundary(nn.Linear(2, 2), x, y, resolution=20, title="moons")
        >>> fig.axes[0].get_title()
        'moons'
    """
    owner = "plot_decision_boundary"
    points = _check_points(x, owner)
    labels = _labels(y, len(points), owner)
    xx, yy = _grid(points, resolution, owner)
    classes, k = _classify(model, xx, yy, threshold, owner)
    colors = _class_colors(max(k, int(labels.max()) + 1 if labels.size else 0, 2))
    if ax is None:
        fig = _new_figure(5.0, 4.5)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    _draw_regions(ax, xx, yy, classes, colors)
    _draw_points(ax, points, labels, colors)
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    if title is not None:
        ax.set_title(title)
    return _finish(fig, path)


@dataclass
class DecisionFrame:
    """One recorded state of a classifier: the classes on the recorder's grid after ``epoch``
    epochs (0: before training), with the epoch's loss and accuracy when they were logged.

    Example:
        >>> import numpy as np
        >>> from ember.plot import DecisionFrame
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
        >>> from ember import nn, plot
        >>> from ember.data import xor
        >>> x, y = xor(32, seed=0)
        >>> rec = plot.DecisionBoundaryRecorder(x, y, every=2, resolution=10)
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


def animate_decision_boundary(recorder_or_frames: DecisionBoundaryRecorder | Sequence[
                                  DecisionFrame],
                              x: Any = None, y: Any = None, path: PathLike | None = None,
                              fps: float = 5) -> Figure:
    """Write the recorded decision regions as an animated GIF, one frame per record.

    Frames are drawn with matplotlib's ``PillowWriter`` (no ffmpeg) and titled ``"epoch N  loss
    L  acc A"``. ``path`` is required: the animation exists only as the file. The returned
    Figure shows the last frame.

    Args:
        recorder_or_frames: a :class:`DecisionBoundaryRecorder` or a list of its frames.
        x: points to draw on top (default: the recorder's; none for a bare list of frames).
        y: their labels (default: the recorder's).
        path: the ``.gif`` file to write (``.webp`` and ``.png`` give animated WebP / APNG).
        fps: frames per second.

    Raises:
        ValueError: no ``path``, no frames, or ``fps <= 0``.

    Example:
        >>> import os, tempfile
        >>> import ember
        >>> from ember import nn, plot
        >>> from ember.data import xor
        >>> x, y = xor(32, seed=0)
        >>> rec = plot.DecisionBoundaryRecorder(x, y, resolution=10)
        >>> _ = ember.Trainer(nn.Linear(2, 2), "cross_entropy", "sgd").fit(
        ...     x, y, epochs=2, callbacks=[rec], verbose=0)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     fig = plot.animate_decision_boundary(rec, path=os.path.join(d, "xor.gif"), fps=2)
        ...     os.path.getsize(os.path.join(d, "xor.gif")) > 0
        True
        >>> fig.axes[0].get_title()  # doctest: +ELLIPSIS
        'epoch 2  loss ...'
    """
    from matplotlib.animation import PillowWriter

    owner = "animate_decision_boundary"
    if path is None:
        raise ValueError(f"{owner}: path is required (the .gif file to write)")
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise ValueError(f"{owner}: fps must be a positive number, got {fps!r}")
    if isinstance(recorder_or_frames, DecisionBoundaryRecorder):
        frames = list(recorder_or_frames.frames)
        if x is None:
            x = recorder_or_frames.x
            y = recorder_or_frames.y if y is None else y
        k = recorder_or_frames.num_classes
    else:
        frames = list(recorder_or_frames)
        k = 2
    if not frames:
        raise ValueError(f"{owner}: there are no frames (was the recorder passed to fit?)")
    points = None if x is None else _check_points(x, owner)
    labels = None if (y is None or points is None) else _labels(y, len(points), owner)
    k = max([k, *(int(f.classes.max()) + 1 for f in frames),
             int(labels.max()) + 1 if labels is not None and labels.size else 0])
    colors = _class_colors(k)

    fig = _new_figure(5.0, 4.5)
    ax = fig.add_subplot()
    p = Path(os.fspath(path))
    p.parent.mkdir(parents=True, exist_ok=True)
    writer = PillowWriter(fps=fps)  # type: ignore[arg-type]  # any positive number works
    with writer.saving(fig, str(p), dpi=fig.dpi):
        for frame in frames:
            ax.clear()
            _draw_regions(ax, frame.xx, frame.yy, frame.classes, colors)
            if points is not None:
                _draw_points(ax, points, labels, colors)
            ax.set_xlim(frame.xx.min(), frame.xx.max())
            ax.set_ylim(frame.yy.min(), frame.yy.max())
            ax.set_title(frame.title())
            writer.grab_frame()
    return fig


# -- images ----------------------------------------------------------------------------------------

def _images(x: Any, owner: str) -> np.ndarray:
    """Images as (n, H, W) or (n, H, W, 3|4)."""
    arr = _to_numpy(x)
    shape = tuple(arr.shape)
    if arr.ndim == 2:
        side = math.isqrt(arr.shape[1])
        if side * side != arr.shape[1]:
            raise ValueError(f"{owner}: flat images need a square number of pixels (like 784 = "
                             f"28 x 28), got shape {shape}")
        return arr.reshape(len(arr), side, side)
    if arr.ndim == 3:
        return arr
    if arr.ndim == 4:
        if arr.shape[1] == 1:
            return arr[:, 0]
        if arr.shape[1] in (3, 4) and arr.shape[3] not in (3, 4):
            return arr.transpose(0, 2, 3, 1)
        if arr.shape[3] in (3, 4):
            return arr
        if arr.shape[3] == 1:
            return arr[..., 0]
    raise ValueError(f"{owner}: expected images (n, H, W), (n, 1, H, W), (n, 3, H, W), "
                     f"(n, H, W, 3) or flat (n, H*W), got shape {shape}")


def _displayable(img: np.ndarray) -> np.ndarray:
    """Colour images as floats in [0, 1] (uint8 stays as it is)."""
    if img.ndim == 2 or img.dtype == np.uint8:
        return img
    img = img.astype(np.float64)
    lo, hi = np.nanmin(img), np.nanmax(img)
    if lo < 0.0 or hi > 1.0:
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img


def _name(label: int, class_names: Sequence[str] | None) -> str:
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return str(label)


def plot_images(x: Any, y_true: Any = None, y_pred: Any = None, path: PathLike | None = None, *,
                ncols: int = 8, max_images: int = 32,
                class_names: Sequence[str] | None = None) -> Figure:
    """A grid of images, titled with their labels and predictions.

    Images may be ``(n, H, W)``, ``(n, 1, H, W)``, flat ``(n, H*W)`` with a square pixel count
    (784 = 28 x 28), or colour ``(n, 3, H, W)`` / ``(n, H, W, 3)``. Grey images use the grey
    colormap scaled to each image; colour images are shown as uint8, or as floats rescaled to
    [0, 1] when they leave that range. Titles: ``"true 3"`` (labels only), ``"pred 5"``
    (predictions only), or ``"3 / pred 5"``, in red when the prediction is wrong. Predictions
    may be labels or scores ``(n, classes)`` (their argmax).

    Args:
        x: the images.
        y_true: their labels.
        y_pred: predicted labels or scores.
        path: a file to save the figure to.
        ncols: images per row.
        max_images: draw at most this many (the first ones).
        class_names: names for the labels (``class_names[label]``).

    Example:
        >>> import numpy as np
        >>> from ember import plot
        >>> x = np.random.default_rng(0).random((5, 784))
        >>> fig = plot.plot_images(x, [1, 2, 3, 4, 5], [1, 2, 0, 4, 5], ncols=3)
        >>> len(fig.axes), fig.axes[2].get_title()
        (5, '3 / pred 0')
    """
    owner = "plot_images"
    _positive(ncols, "ncols", owner)
    _positive(max_images, "max_images", owner)
    imgs = _images(x, owner)
    n_all = len(imgs)
    if n_all == 0:
        raise ValueError(f"{owner}: there are no images (shape {tuple(imgs.shape)})")
    true = None if y_true is None else _labels(y_true, n_all, owner, "y_true")
    pred = None if y_pred is None else _labels(y_pred, n_all, owner, "y_pred")
    n = min(n_all, max_images)
    rows, cols = _grid_shape(n, ncols)
    fig = _new_figure(1.5 * cols, 1.7 * rows)
    for i, ax in enumerate(_panel_grid(fig, n, cols)):
        img = _displayable(imgs[i])
        if img.ndim == 2:
            ax.imshow(img, cmap="gray", interpolation="nearest")
        else:
            ax.imshow(img, interpolation="nearest")
        ax.set_axis_off()
        color = "black"
        if true is not None and pred is not None:
            text = f"{_name(int(true[i]), class_names)} / pred {_name(int(pred[i]), class_names)}"
            color = "black" if true[i] == pred[i] else "red"
        elif true is not None:
            text = f"true {_name(int(true[i]), class_names)}"
        elif pred is not None:
            text = f"pred {_name(int(pred[i]), class_names)}"
        else:
            text = ""
        if text:
            ax.set_title(text, color=color, fontsize=9)
    return _finish(fig, path)


# -- confusion matrix ------------------------------------------------------------------------------

def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts ``cm[true, pred]`` of integer labels (predictions may be scores: their argmax).

    Example:
        >>> from ember.plot import confusion_matrix
        >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2]).tolist()
        [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    """
    owner = "confusion_matrix"
    t = _to_numpy(y_true)
    n = t.shape[0] if t.ndim else 0
    true = _labels(t, n, owner, "y_true")
    pred = _labels(y_pred, n, owner, "y_pred")
    k = max(int(true.max()) + 1 if n else 0, int(pred.max()) + 1 if n else 0)
    if num_classes is not None:
        if k > num_classes:
            raise ValueError(f"{owner}: a label is {k - 1} but there are only {num_classes} "
                             f"classes")
        k = num_classes
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (true, pred), 1)
    return cm


def plot_confusion_matrix(cm_or_y_true: Any, y_pred: Any = None, path: PathLike | None = None,
                          *, class_names: Sequence[str] | None = None,
                          normalize: bool = False) -> Figure:
    """A confusion matrix as a heat map with the value written in each cell.

    Pass a square matrix ``cm[true, pred]``, or the true labels and the predictions (labels or
    scores), from which the counts are taken (:func:`confusion_matrix`). ``normalize=True``
    divides each row by its total (the fraction of each true class; empty rows stay 0).

    Example:
        >>> from ember import plot
        >>> fig = plot.plot_confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2])
        >>> [t.get_text() for t in fig.axes[0].texts]
        ['1', '0', '0', '0', '1', '1', '0', '0', '1']
    """
    owner = "plot_confusion_matrix"
    if y_pred is None:
        cm = _to_numpy(cm_or_y_true)
        if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
            raise ValueError(f"{owner}: a confusion matrix must be square (k, k), got shape "
                             f"{tuple(cm.shape)}; to count labels pass y_true and y_pred")
    else:
        cm = confusion_matrix(cm_or_y_true, y_pred,
                              None if class_names is None else len(class_names))
    k = cm.shape[0]
    if class_names is not None and len(class_names) != k:
        raise ValueError(f"{owner}: {len(class_names)} class_names for {k} classes")
    values = cm.astype(np.float64)
    if normalize:
        totals = values.sum(axis=1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals != 0)
    integral = not normalize and np.all(values == np.rint(values))
    size = min(2.5 + 0.5 * k, 14.0)
    fig = _new_figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=max(values.max(), 1e-12))
    fig.colorbar(image, ax=ax, fraction=0.046)
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    ax.set_xticks(range(k), names, rotation=45 if class_names is not None else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        middle = values.max() / 2.0
        for i in range(k):
            for j in range(k):
                v = values[i, j]
                ax.text(j, i, f"{int(v)}" if integral else f"{v:.2f}", ha="center",
                        va="center", fontsize=8 if k > 12 else 10,
                        color="white" if v > middle else "black")
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    return _finish(fig, path)


# -- convolution kernels and feature maps ---------------------------------------------------------

def plot_kernels(layer_or_weight: Any, path: PathLike | None = None, *, max_kernels: int = 64,
                 channel: int | str = 0) -> Figure:
    """The filters of a convolution, one panel each, on a shared diverging colour scale.

    Takes a ``Conv2D`` layer or its weight ``(out_channels, in_channels, kH, kW)``. Each panel
    shows one output channel's kernel for input channel ``channel`` (default 0, the only one of
    a grey-image layer), or the mean over input channels with ``channel="mean"``. Blue is
    negative, red positive, white zero; one colour bar gives the scale.

    Args:
        layer_or_weight: a Conv2D layer or a 4-D weight.
        path: a file to save the figure to.
        max_kernels: draw at most this many (the first ones).
        channel: the input channel to draw, or ``"mean"``.

    Example:
        >>> import ember
        >>> from ember import nn, plot
        >>> fig = plot.plot_kernels(nn.Conv2D(1, 6, 3))
        >>> len(fig.axes)   # 6 kernels and the colour bar
        7
    """
    owner = "plot_kernels"
    if isinstance(layer_or_weight, Module):
        weight = getattr(layer_or_weight, "weight", None) \
            if "weight" in layer_or_weight._parameters else None
        if weight is None or weight.ndim != 4:
            shape = None if weight is None else tuple(weight.shape)
            raise ValueError(f"{owner}: expected a Conv2D layer or a 4-D weight (out_channels, "
                             f"in_channels, kH, kW), got {type(layer_or_weight).__name__} "
                             f"with weight shape {shape}")
        w = _to_numpy(weight)
    else:
        w = _to_numpy(layer_or_weight)
    if w.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-D weight (out_channels, in_channels, kH, kW), "
                         f"got shape {tuple(w.shape)}")
    if channel == "mean":
        kernels = w.mean(axis=1)
    elif isinstance(channel, int) and not isinstance(channel, bool) \
            and 0 <= channel < w.shape[1]:
        kernels = w[:, channel]
    else:
        raise ValueError(f"{owner}: channel must be an input channel in [0, {w.shape[1]}) or "
                         f"'mean', got {channel!r}")
    n = min(len(kernels), _positive(max_kernels, "max_kernels", owner))
    rows, cols = _grid_shape(n)
    fig = _new_figure(1.2 * cols + 1.0, 1.2 * rows + 0.4)
    limit = float(np.abs(kernels[:n]).max()) or 1.0
    axes = _panel_grid(fig, n, cols)
    images = []
    for i, ax in enumerate(axes):
        images.append(ax.imshow(kernels[i], cmap="RdBu_r", vmin=-limit, vmax=limit,
                                interpolation="nearest"))
        ax.set_axis_off()
        ax.set_title(str(i), fontsize=8)
    fig.colorbar(images[0], ax=axes, fraction=0.05)
    return _finish(fig, path)


def _single_batch(x: Any, owner: str) -> Any:
    """One sample as a batch of one: 1-D and 3-D inputs get a batch axis; 2-D and 4-D inputs
    must already be a batch of one."""
    shape = tuple(x.shape)
    if len(shape) in (1, 3):
        return x[None]
    if len(shape) in (2, 4) and shape[0] == 1:
        return x
    raise ValueError(f"{owner}: x must be one sample, (features,) or (C, H, W), or a batch of "
                     f"one, (1, features) or (1, C, H, W); got shape {shape}")


def plot_feature_maps(model: Module, x: Any, layer: Module | str, path: PathLike | None = None,
                      *, max_maps: int = 32) -> Figure:
    """The output of one layer for one input: a panel per channel (or a bar per feature).

    ``x`` is one sample (``(C, H, W)`` or ``(features,)``) or a batch of one (``(1, C, H, W)``,
    ``(1, features)``). The model runs in eval mode under ``no_grad`` with a forward hook on
    ``layer``: a module of the model or its path as ``named_modules()`` gives it (``"0"``,
    ``"features.2"``). A ``(1, C, H, W)`` output is drawn as up to ``max_maps`` grey images; a
    ``(1, features)`` output as a bar chart.

    Raises:
        KeyError: ``layer`` is a path that the model does not have (the message lists them).

    Example:
        >>> import ember
        >>> from ember import nn, plot
        >>> cnn = nn.Sequential(nn.Conv2D(1, 4, 3, padding="same"), nn.ReLU())
        >>> fig = plot.plot_feature_maps(cnn, ember.randn(1, 8, 8), "1")
        >>> len(fig.axes)
        4
    """
    owner = "plot_feature_maps"
    if isinstance(layer, str):
        paths = {name: m for name, m in model.named_modules()}
        if layer not in paths:
            raise KeyError(f"{owner}: the model has no layer {layer!r}; its layers are "
                           f"{[p for p in paths if p]}")
        target, label = paths[layer], layer
    elif isinstance(layer, Module):
        target = layer
        label = next((n for n, m in model.named_modules() if m is layer), type(layer).__name__)
    else:
        raise TypeError(f"{owner}: layer must be a Module or a path string, got "
                        f"{type(layer).__name__}")
    batch = _single_batch(x if isinstance(x, Tensor) else _to_numpy(x), owner)
    captured: list[Any] = []

    def hook(module: Module, args: Any, out: Any) -> None:
        captured.append(out)

    handle = target.register_forward_hook(hook)
    try:
        with _EvalMode(model):
            model(_as_input(model, batch))
    finally:
        handle.remove()
    if not captured:
        raise ValueError(f"{owner}: layer {label!r} was not called by the model's forward")
    out = captured[0]
    if not isinstance(out, Tensor):
        raise TypeError(f"{owner}: layer {label!r} returned {type(out).__name__}, not a Tensor")
    maps = _to_numpy(out)
    if maps.ndim == 4:
        n = min(maps.shape[1], _positive(max_maps, "max_maps", owner))
        rows, cols = _grid_shape(n)
        fig = _new_figure(1.4 * cols, 1.4 * rows + 0.4)
        for i, ax in enumerate(_panel_grid(fig, n, cols)):
            ax.imshow(maps[0, i], cmap="gray", interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(str(i), fontsize=8)
        fig.suptitle(f"{label} ({type(target).__name__}): {maps.shape[1]} channels "
                     f"{maps.shape[2]}x{maps.shape[3]}")
    elif maps.ndim == 2:
        fig = _new_figure(6.0, 3.0)
        ax = fig.add_subplot()
        ax.bar(np.arange(maps.shape[1]), maps[0], width=0.9)
        ax.set_xlabel("feature")
        ax.set_title(f"{label} ({type(target).__name__}): {maps.shape[1]} features")
    else:
        raise ValueError(f"{owner}: can draw (1, C, H, W) or (1, features) outputs; layer "
                         f"{label!r} gave {maps.shape}")
    return _finish(fig, path)


# -- monitor statistics ----------------------------------------------------------------------------

def _monitor_history(monitor_or_history: Any, owner: str) -> dict[str, np.ndarray]:
    if hasattr(monitor_or_history, "history") and callable(monitor_or_history.history):
        records = monitor_or_history.history()
    elif isinstance(monitor_or_history, Mapping):
        records = monitor_or_history
    else:
        raise TypeError(f"{owner}: expected an nn.Monitor or its history() dict, got "
                        f"{type(monitor_or_history).__name__}")
    return {k: np.asarray(v, dtype=np.float64) for k, v in records.items()}


def _series(records: dict[str, np.ndarray], stat: str, owner: str) -> dict[str, np.ndarray]:
    found = {k[: -len(stat) - 1]: v for k, v in records.items() if k.endswith("/" + stat)}
    if not found or not any(len(v) for v in found.values()):
        raise ValueError(f"{owner}: no '<parameter>/{stat}' records (call monitor.step() after "
                         f"backward() to record them)")
    return found


def _lines(ax: Any, series: dict[str, np.ndarray], transform: Any = None) -> None:
    for name, values in series.items():
        v = values if transform is None else transform(values)
        ax.plot(np.arange(1, len(v) + 1), v, label=name or "(model)", linewidth=1.2)
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=max(1, math.ceil(len(series) / 12)))


def plot_grad_norms(monitor_or_history: Any, path: PathLike | None = None, *,
                    log: bool = True) -> Figure:
    """The gradient's L2 norm of every parameter over the recorded steps (one line each).

    Takes an ``nn.Monitor`` or its ``history()``; a log scale by default (steps without a
    gradient are NaN: gaps in the line).

    Example:
        >>> import ember
        >>> from ember import nn, plot
        >>> model = nn.Linear(3, 1)
        >>> monitor = nn.Monitor(model)
        >>> for _ in range(3):
        ...     model.zero_grad()
        ...     model(ember.ones(4, 3)).sum().backward()
        ...     monitor.step()
        >>> [line.get_label() for line in plot.plot_grad_norms(monitor).axes[0].lines]
        ['weight', 'bias']
    """
    owner = "plot_grad_norms"
    series = _series(_monitor_history(monitor_or_history, owner), "grad_norm", owner)
    fig = _new_figure(6.5, 4.0)
    ax = fig.add_subplot()
    _lines(ax, series)
    if log:
        ax.set_yscale("log")
    ax.set_title("gradient norm per parameter")
    return _finish(fig, path)


def plot_param_stats(monitor_or_history: Any, path: PathLike | None = None) -> Figure:
    """The running mean and standard deviation of every parameter's values, over the steps.

    Takes an ``nn.Monitor`` or its ``history()`` (``<path>/mean`` and ``<path>/var``; the
    standard deviation is the square root of the variance). Two axes: mean, std.

    Example:
        >>> import ember
        >>> from ember import nn, plot
        >>> model = nn.Linear(3, 2)
        >>> monitor = nn.Monitor(model)
        >>> monitor.step()
        >>> [ax.get_title() for ax in plot.plot_param_stats(monitor).axes]
        ['mean', 'std']
    """
    owner = "plot_param_stats"
    records = _monitor_history(monitor_or_history, owner)
    means = _series(records, "mean", owner)
    variances = _series(records, "var", owner)
    fig = _new_figure(11.0, 4.0)
    ax_mean, ax_std = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _lines(ax_mean, means)
    _lines(ax_std, variances, np.sqrt)
    ax_mean.set_title("mean")
    ax_std.set_title("std")
    return _finish(fig, path)


def _compact_ticks(ax: Any) -> None:
    """At most 5 x ticks, in scientific notation outside [1e-3, 1e4]."""
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))


def plot_histograms(model: Module, path: PathLike | None = None, *, grads: bool = True,
                    bins: int = 50) -> Figure:
    """Histograms of every parameter's values and, with ``grads``, of its gradient.

    One row per parameter (``named_parameters()`` order). The gradient column appears when
    ``grads`` is true and at least one parameter has a gradient; a parameter without one says so
    in its cell.

    Example:
        >>> import ember
        >>> from ember import nn, plot
        >>> model = nn.Linear(3, 2)
        >>> model(ember.ones(4, 3)).sum().backward()
        >>> len(plot.plot_histograms(model, bins=10).axes)    # 2 parameters x (values, grads)
        4
    """
    owner = "plot_histograms"
    _positive(bins, "bins", owner)
    params = list(model.named_parameters())
    if not params:
        raise ValueError(f"{owner}: {type(model).__name__} has no parameters")
    with_grads = grads and any(p.grad is not None for _, p in params)
    cols = 2 if with_grads else 1
    fig = _new_figure(4.5 * cols, 1.9 * len(params) + 0.3)
    for row, (name, p) in enumerate(params):
        ax = fig.add_subplot(len(params), cols, row * cols + 1)
        values = _to_numpy(p).ravel().astype(np.float64)
        ax.hist(values, bins=bins, color="tab:blue")
        _compact_ticks(ax)
        ax.set_title(f"{name} {tuple(p.shape)}", fontsize=9)
        if with_grads:
            ax = fig.add_subplot(len(params), cols, row * cols + 2)
            if p.grad is None:
                ax.text(0.5, 0.5, "no gradient", ha="center", va="center",
                        transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.hist(_to_numpy(p.grad).ravel().astype(np.float64), bins=bins,
                        color="tab:orange")
                _compact_ticks(ax)
            ax.set_title(f"{name}.grad", fontsize=9)
    return _finish(fig, path)
