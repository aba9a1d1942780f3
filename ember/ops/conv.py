"""Convolution and pooling on NCHW tensors: conv2d, max_pool2d, avg_pool2d.

The Functions here check and normalise the arguments; the arithmetic is the backend's (an im2col
over a strided view and one matmul on NumPy, XLA's convolution and reduce_window on JAX).

Arguments follow PyTorch: ``stride``, ``padding`` and ``dilation`` are an int or a pair (rows,
columns). ``padding`` may also be a pair of pairs ((top, bottom), (left, right)), ``"valid"`` (no
padding) or ``"same"`` (stride 1 only: the output keeps the input's height and width; the padding
is ``dilation * (kernel - 1)`` split as evenly as possible, the odd row or column at the bottom or
right, as PyTorch and TensorFlow do).
"""

from __future__ import annotations

from typing import Any

from ember import backend
from ember.function import Function, is_grad_enabled
from ember.ops import register
from ember.tensor import Tensor

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]


def _pair(value: Any, what: str, op: str, minimum: int = 1) -> Pair:
    """An int or a pair of ints as a pair, each at least ``minimum``."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ValueError(f"ember.{op}: {what} must be an int or a pair of ints, got {value!r}")
    if min(items) < minimum:
        raise ValueError(f"ember.{op}: {what} must be >= {minimum}, got {value!r}")
    return items  # type: ignore[return-value]


def _padding(padding: Any, kernel: Pair, stride: Pair, dilation: Pair, op: str) -> Padding:
    """((top, bottom), (left, right)) from an int, a pair, a pair of pairs, "valid" or "same"."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode != "same":
            raise ValueError(f"ember.{op}: padding must be an int, a pair, 'valid' or 'same', "
                             f"got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"ember.{op}: padding='same' needs stride 1, got stride {stride}; "
                             f"give the padding as numbers for a strided convolution")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return (total[0] // 2, total[0] - total[0] // 2), (total[1] // 2, total[1] - total[1] // 2)
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
        isinstance(p, (tuple, list)) for p in padding
    ):
        rows, cols = (_pair(p, "padding", op, minimum=0) for p in padding)
        return rows, cols
    rows_cols = _pair(padding, "padding", op, minimum=0)
    return (rows_cols[0], rows_cols[0]), (rows_cols[1], rows_cols[1])


def _out_size(
    shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Padding, dilation: Pair,
    op: str, described: str,
) -> Pair:
    """The output height and width; an error when a window does not fit the padded input."""
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(shape[2:], padding))
    reach = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(r > p for r, p in zip(reach, padded)):
        raise ValueError(f"ember.{op}: {described} spans {reach}, more than the padded input "
                         f"{padded} of an input of shape {tuple(shape)}; use a smaller kernel or "
                         f"more padding")
    return tuple((p - r) // s + 1 for p, r, s in zip(padded, reach, stride))  # type: ignore


def _check_4d(x: Any, op: str, name: str = "input") -> tuple[int, ...]:
    shape = tuple(x.shape)
    if len(shape) != 4:
        hint = " (add a batch axis with x.unsqueeze(0))" if len(shape) == 3 else ""
        raise ValueError(f"ember.{op}: expected a 4-d {name} (N, C, H, W), got shape "
                         f"{shape}{hint}")
    return shape


class Conv2d(Function):
    """2-d cross-correlation with an optional bias (fused: one node, its gradient a sum)."""

    op_name = "conv2d"

    def forward(ctx, x, w, b, stride, padding, dilation):
        out, saved = backend.get().conv2d(x, w, b, stride, padding, dilation)
        ctx.save_for_backward(w, saved)
        ctx.conf = (tuple(x.shape), stride, padding, dilation)
        return out

    def backward(ctx, g):
        w, saved = ctx.saved_tensors
        return backend.get().conv2d_grads(g, w, saved, *ctx.conf,
                                          need=tuple(ctx.needs_input_grad[:3]))


@register("conv2d", method=False)
def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | Pair = 1,
    padding: int | Pair | Padding | str = 0,
    dilation: int | Pair = 1,
) -> Tensor:
    """2-d convolution (cross-correlation, as in every framework) of NCHW input.

    Args:
        x: input of shape (N, C, H, W).
        weight: kernels of shape (out_channels, C, kH, kW).
        bias: (out_channels,) or None.
        stride: step between windows, an int or (rows, columns).
        padding: zeros around the input: an int, a pair, ((top, bottom), (left, right)),
            ``"valid"`` (none) or ``"same"`` (stride 1 only; output H, W = input H, W).
        dilation: spacing between kernel elements.

    Returns:
        (N, out_channels, P, Q) with ``P = (H + top + bottom - dilation * (kH - 1) - 1) // stride
        + 1`` (likewise Q).

    Example:
        >>> import ember
        >>> x = ember.ones(1, 2, 5, 5)
        >>> w = ember.ones(3, 2, 3, 3)
        >>> ember.conv2d(x, w, padding=1).shape
        (1, 3, 5, 5)
        >>> ember.conv2d(x, w, stride=2)[0, 0].tolist()
        [[18.0, 18.0], [18.0, 18.0]]
    """
    op = "conv2d"
    shape = _check_4d(x, op)
    w_shape = tuple(weight.shape)
    if len(w_shape) != 4:
        raise ValueError(f"ember.{op}: expected a 4-d weight (out_channels, in_channels, kH, kW),"
                         f" got shape {w_shape}")
    if shape[1] != w_shape[1]:
        raise ValueError(f"ember.{op}: input of shape {shape} has {shape[1]} channels but weight "
                         f"of shape {w_shape} expects {w_shape[1]} (weight is (out_channels, "
                         f"in_channels, kH, kW))")
    if bias is not None and tuple(bias.shape) != (w_shape[0],):
        raise ValueError(f"ember.{op}: bias of shape {tuple(bias.shape)} does not match weight "
                         f"of shape {w_shape}; expected ({w_shape[0]},)")
    kernel = (w_shape[2], w_shape[3])
    stride_ = _pair(stride, "stride", op)
    dilation_ = _pair(dilation, "dilation", op)
    pads = _padding(padding, kernel, stride_, dilation_, op)
    _out_size(shape, kernel, stride_, pads, dilation_, op,
              f"the kernel {kernel} with dilation {dilation_}")
    return Conv2d.apply(x, weight, bias, stride=stride_, padding=pads, dilation=dilation_)


def _pool_args(
    x: Any, kernel_size: Any, stride: Any, padding: Any, op: str
) -> tuple[Pair, Pair, Padding]:
    shape = _check_4d(x, op)
    kernel = _pair(kernel_size, "kernel_size", op)
    stride_ = kernel if stride is None else _pair(stride, "stride", op)
    pad = _pair(padding, "padding", op, minimum=0)
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"ember.{op}: padding {padding!r} is more than half the kernel "
                         f"{kernel}; a window could then hold only padding")
    pads = ((pad[0], pad[0]), (pad[1], pad[1]))
    _out_size(shape, kernel, stride_, pads, (1, 1), op, f"the window {kernel}")
    return kernel, stride_, pads


class MaxPool2d(Function):
    """The maximum of each window; its gradient goes to the window's first maximum."""

    op_name = "max_pool2d"

    def forward(ctx, x, kernel, stride, padding):
        need_grad = ctx.needs_input_grad[0] and is_grad_enabled()
        out, saved = backend.get().max_pool2d(x, kernel, stride, padding, need_grad)
        ctx.save_for_backward(saved)
        ctx.conf = (tuple(x.shape), kernel, stride, padding)
        return out

    def backward(ctx, g):
        (saved,) = ctx.saved_tensors
        return backend.get().max_pool2d_grad(g, saved, *ctx.conf)


@register("max_pool2d", method=False)
def max_pool2d(
    x: Tensor, kernel_size: int | Pair, stride: int | Pair | None = None,
    padding: int | Pair = 0,
) -> Tensor:
    """Max pooling over (H, W) windows of NCHW input; padding counts as -inf.

    ``stride`` defaults to ``kernel_size``; ``padding`` is at most half the kernel. Where a window
    holds several equal maxima, the gradient goes to the first one in row-major order (as in
    PyTorch); an element that is the maximum of several overlapping windows collects all their
    gradients.

    Example:
        >>> import ember
        >>> x = ember.arange(16.0).reshape(1, 1, 4, 4)
        >>> ember.max_pool2d(x, 2)[0, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
    """
    kernel, stride_, pads = _pool_args(x, kernel_size, stride, padding, "max_pool2d")
    return MaxPool2d.apply(x, kernel=kernel, stride=stride_, padding=pads)


class AvgPool2d(Function):
    """The mean of each window, zero padding included in the count."""

    op_name = "avg_pool2d"

    def forward(ctx, x, kernel, stride, padding):
        ctx.conf = (tuple(x.shape), kernel, stride, padding)
        return backend.get().avg_pool2d(x, kernel, stride, padding)

    def backward(ctx, g):
        return backend.get().avg_pool2d_grad(g, *ctx.conf)


@register("avg_pool2d", method=False)
def avg_pool2d(
    x: Tensor, kernel_size: int | Pair, stride: int | Pair | None = None,
    padding: int | Pair = 0,
) -> Tensor:
    """Average pooling over (H, W) windows of NCHW input.

    ``stride`` defaults to ``kernel_size``. Padding is zeros and counts in the mean (PyTorch's
    ``count_include_pad=True``): every window divides by ``kH * kW``.

    Example:
        >>> import ember
        >>> x = ember.arange(16.0).reshape(1, 1, 4, 4)
        >>> ember.avg_pool2d(x, 2)[0, 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """
    kernel, stride_, pads = _pool_args(x, kernel_size, stride, padding, "avg_pool2d")
    return AvgPool2d.apply(x, kernel=kernel, stride=stride_, padding=pads)
