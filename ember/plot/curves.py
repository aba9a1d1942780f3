"""Training curves: the loss and metrics of a ``History`` per epoch."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np  # host-side only: the numbers that are drawn
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ember.plot._common import PathLike, _finish, _grid_shape, _new_figure, _panel_grid

__all__ = ["plot_history", "plot_lr_find"]


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
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 2.5
        if name == "lr":
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        if ("val_" + name) in series:
            ax.legend()
    return _finish(fig, path)


def plot_lr_find(result: Any, path: PathLike | None = None, *, skip_start: int = 0) -> Figure:
    """The loss of a learning-rate range test against the rate (log scale), with the smoothed
    curve and the suggested rate marked.

    Args:
        result: what ``Trainer.lr_find`` returns (``lrs``, ``losses``, ``smoothed``,
            ``suggestion``).
        path: a file to save the figure to.
        skip_start: leave out the first steps (their loss is often noisy).

    Example:
        >>> from ember import plot
        >>> from ember.train.lr_finder import LRFindResult
        >>> r = LRFindResult([1e-3, 1e-2, 1e-1], [1.0, 0.5, 2.0], [1.0, 0.6, 1.5], 1e-2)
        >>> ax = plot.plot_lr_find(r).axes[0]
        >>> ax.get_xscale(), ax.get_xlabel(), ax.get_ylabel()
        ('log', 'learning rate', 'training loss (one batch per step)')
    """
    lrs = np.asarray(result.lrs, dtype=float)[skip_start:]
    if not len(lrs):
        raise ValueError(f"plot_lr_find: nothing to draw ({len(result.lrs)} steps recorded, "
                         f"skip_start={skip_start})")
    fig = _new_figure(5.5, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(lrs, np.asarray(result.losses, dtype=float)[skip_start:], alpha=0.35,
            label="loss")
    if len(result.smoothed):
        ax.plot(lrs, np.asarray(result.smoothed, dtype=float)[skip_start:], label="smoothed")
    if np.isfinite(result.suggestion):
        ax.axvline(result.suggestion, color="tab:red", linestyle="--",
                   label=f"suggested lr {result.suggestion:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (one batch per step)")
    ax.set_title("learning-rate range test")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _finish(fig, path)
