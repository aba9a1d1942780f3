"""Statistics of parameters and gradients: norms over training, histograms."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np  # host-side only: the numbers that are drawn
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ember.nn.module import Module
from ember.plot._common import PathLike, _finish, _new_figure, _positive, _to_numpy

__all__ = ["plot_grad_norms", "plot_param_stats", "plot_histograms"]


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
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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
    ax.set_ylabel("L2 norm of the gradient")
    return _finish(fig, path)


def plot_param_stats(monitor_or_history: Any, path: PathLike | None = None) -> Figure:
    """The running mean and standard deviation of every parameter's values, over the steps.

    Takes an ``nn.Monitor`` or its ``history()`` (``<path>/mean`` and ``<path>/var``; the
    standard deviation is the square root of the variance). The statistics are running ones:
    at each step, over every value the parameter has held at the recorded steps so far (see
    ``nn.Monitor``), which the titles say. Two axes: mean, std.

    Example:
        >>> import ember
        >>> from ember import nn, plot
        >>> model = nn.Linear(3, 2)
        >>> monitor = nn.Monitor(model)
        >>> monitor.step()
        >>> [ax.get_title() for ax in plot.plot_param_stats(monitor).axes]
        ['running mean', 'running std']
    """
    owner = "plot_param_stats"
    records = _monitor_history(monitor_or_history, owner)
    means = _series(records, "mean", owner)
    variances = _series(records, "var", owner)
    fig = _new_figure(11.0, 4.0)
    ax_mean, ax_std = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _lines(ax_mean, means)
    _lines(ax_std, variances, np.sqrt)
    ax_mean.set_title("running mean")
    ax_std.set_title("running std")
    ax_mean.set_ylabel("mean of the values so far")
    ax_std.set_ylabel("std of the values so far")
    fig.suptitle("parameter values: running statistics over all recorded steps so far")
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
