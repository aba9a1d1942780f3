"""Convolution kernels and feature maps."""

from __future__ import annotations

from typing import Any

import numpy as np  # host-side only: the numbers that are drawn
from matplotlib.figure import Figure

from ember.nn.module import Module
from ember.plot._common import (
    PathLike,
    _as_input,
    _EvalMode,
    _finish,
    _grid_shape,
    _new_figure,
    _panel_grid,
    _positive,
    _to_numpy,
)
from ember.tensor import Tensor

__all__ = ["plot_kernels", "plot_feature_maps"]


def plot_kernels(layer_or_weight: Any, path: PathLike | None = None, *, max_kernels: int = 64,
                 channel: int | str = 0) -> Figure:
    """The filters of a convolution, one panel each, on a shared diverging colour scale.

    Takes a ``Conv2D`` layer or its weight ``(out_channels, in_channels, kH, kW)``. Each panel
    shows one output channel's kernel for input channel ``channel`` (default 0, the only one of
    a grey-image layer), the mean over input channels with ``channel="mean"``, or every input
    channel with ``channel="all"`` (one row per output channel, one column per input channel).
    The figure's title says which input channel is shown. Blue is negative, red positive, white
    zero; one colour bar gives the scale.

    Args:
        layer_or_weight: a Conv2D layer or a 4-D weight.
        path: a file to save the figure to.
        max_kernels: draw at most this many output channels (the first ones).
        channel: the input channel to draw, ``"mean"`` or ``"all"``.

    Example:
        >>> import ember
        >>> from ember import nn, plot
        >>> fig = plot.plot_kernels(nn.Conv2D(1, 6, 3))
        >>> len(fig.axes)   # 6 kernels and the colour bar
        7
        >>> fig.texts[0].get_text()
        'Conv2D 1->6 3x3: the kernel of each output channel (input channel 0 of 1)'
        >>> len(plot.plot_kernels(nn.Conv2D(3, 4, 3), channel="all").axes)  # 4 x 3 and the bar
        13
    """
    owner = "plot_kernels"
    name = "weight"
    if isinstance(layer_or_weight, Module):
        weight = getattr(layer_or_weight, "weight", None) \
            if "weight" in layer_or_weight._parameters else None
        if weight is None or weight.ndim != 4:
            shape = None if weight is None else tuple(weight.shape)
            raise ValueError(f"{owner}: expected a Conv2D layer or a 4-D weight (out_channels, "
                             f"in_channels, kH, kW), got {type(layer_or_weight).__name__} "
                             f"with weight shape {shape}")
        w = _to_numpy(weight)
        name = layer_or_weight.describe()
    else:
        w = _to_numpy(layer_or_weight)
    if w.ndim != 4:
        raise ValueError(f"{owner}: expected a 4-D weight (out_channels, in_channels, kH, kW), "
                         f"got shape {tuple(w.shape)}")
    c_in = w.shape[1]
    if channel == "mean":
        kernels, which = w.mean(axis=1)[:, None], f"mean over the {c_in} input channels"
    elif channel == "all":
        kernels, which = w, f"columns: the {c_in} input channels"
    elif isinstance(channel, int) and not isinstance(channel, bool) and 0 <= channel < c_in:
        kernels, which = w[:, channel:channel + 1], f"input channel {channel} of {c_in}"
    else:
        raise ValueError(f"{owner}: channel must be an input channel in [0, {c_in}), 'mean' "
                         f"or 'all', got {channel!r}")
    n = min(len(kernels), _positive(max_kernels, "max_kernels", owner))
    per = kernels.shape[1]  # panels per output channel
    if per == 1:
        rows, cols = _grid_shape(n)
    else:
        rows, cols = n, per
    fig = _new_figure(1.2 * cols + 1.0, 1.2 * rows + 0.8)
    limit = float(np.abs(kernels[:n]).max()) or 1.0
    axes = _panel_grid(fig, n * per, cols)
    images = []
    for i, ax in enumerate(axes):
        out, inp = divmod(i, per)
        images.append(ax.imshow(kernels[out, inp], cmap="RdBu_r", vmin=-limit, vmax=limit,
                                interpolation="nearest"))
        ax.set_axis_off()
        ax.set_title(str(out) if per == 1 else f"out {out}, in {inp}", fontsize=8)
    fig.colorbar(images[0], ax=axes, fraction=0.05, label="weight")
    fig.suptitle(f"{name}: the kernel of each output channel ({which})", fontsize=10)
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
