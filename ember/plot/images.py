"""Image grids with labels, and confusion matrices."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np  # host-side only: the numbers that are drawn
from matplotlib.figure import Figure

from ember.plot._common import (
    PathLike,
    _finish,
    _grid_shape,
    _labels,
    _new_figure,
    _panel_grid,
    _positive,
    _to_numpy,
)

__all__ = ["plot_images", "confusion_matrix", "plot_confusion_matrix"]


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
