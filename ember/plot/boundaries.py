"""Decision boundaries of 2-D classifiers, and their animation over training."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np  # host-side only: the numbers that are drawn
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from ember.nn.module import Module
from ember.plot._common import (
    PathLike,
    _class_colors,
    _finish,
    _labels,
    _new_figure,
)
from ember.train.boundaries import (
    DecisionBoundaryRecorder,
    DecisionFrame,
    _check_points,
    _classify,
    _grid,
)

__all__ = [
    "decision_grid",
    "plot_decision_boundary",
    "DecisionFrame",
    "DecisionBoundaryRecorder",
    "animate_decision_boundary",
]


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
                 colors: np.ndarray, what: str) -> None:
    """The points, and a legend that says what they are and what the colours mean."""
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=12, c="k", linewidths=0, label=what)
        ax.legend(loc="best", fontsize="small", title="shading: predicted class",
                  title_fontsize="small")
        return
    for c in np.unique(labels):
        mine = labels == c
        ax.scatter(points[mine, 0], points[mine, 1], s=14, color=colors[c], edgecolors="k",
                   linewidths=0.4, label=f"class {c}")
    ax.legend(loc="best", fontsize="small", title=f"{what} (true label)\nshading: predicted "
              f"class", title_fontsize="small")


def _label_axes(ax: Any) -> None:
    ax.set_xlabel("x[:, 0] (input feature 0)")
    ax.set_ylabel("x[:, 1] (input feature 1)")


def plot_decision_boundary(model: Module, x: Any, y: Any, path: PathLike | None = None, *,
                           resolution: int = 200, ax: Any = None, title: str | None = None,
                           threshold: float = 0.0, points: str = "points") -> Figure:
    """The regions a 2-D classifier assigns to each class, with the labelled points on top.

    The classes come from :func:`decision_grid` (argmax of the outputs, or ``output >
    threshold`` for one logit column); the regions are filled in light class colours and the
    points drawn in the full colour of their label. The legend says what the points are
    (``points``, e.g. ``"test set"``) and what the shading means; the axes name the features.

    Args:
        model: a module mapping ``(n, 2)`` points to ``(n, classes)`` or ``(n, 1)`` scores.
        x: the points, shape ``(n, 2)``.
        y: their labels, ``(n,)`` (or one-hot ``(n, classes)``).
        path: a file to save the figure to.
        resolution: grid points along each axis.
        ax: draw into these axes instead of a new figure (their figure is returned).
        title: the axes' title (default: ``"decision regions of <model class>"``).
        threshold: the binary decision threshold for one output column.
        points: what the points are, for the legend (``"test set"``, ``"training data"``).

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
    points_xy = _check_points(x, owner)
    labels = _labels(y, len(points_xy), owner)
    xx, yy = _grid(points_xy, resolution, owner)
    classes, k = _classify(model, xx, yy, threshold, owner)
    colors = _class_colors(max(k, int(labels.max()) + 1 if labels.size else 0, 2))
    if ax is None:
        fig = _new_figure(5.0, 4.5)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    _draw_regions(ax, xx, yy, classes, colors)
    _draw_points(ax, points_xy, labels, colors, points)
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    _label_axes(ax)
    ax.set_title(f"decision regions of {type(model).__name__}" if title is None else title)
    return _finish(fig, path)


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
                _draw_points(ax, points, labels, colors, "recorded points")
            ax.set_xlim(frame.xx.min(), frame.xx.max())
            ax.set_ylim(frame.yy.min(), frame.yy.max())
            _label_axes(ax)
            ax.set_title(frame.title())
            writer.grab_frame()
    return fig
