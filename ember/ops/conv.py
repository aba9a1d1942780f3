"""Convolution and pooling on NCL / NCHW tensors: conv1d, conv2d, max_pool2d, avg_pool2d and the
adaptive pools.

The Functions here check and normalise the arguments; the arithmetic is the backend's (an im2col
over a strided view and one matmul per group on NumPy, XLA's convolution and reduce_window on JAX).
``conv1d`` is ``conv2d`` on a unit height; the adaptive pools are composites (a fixed pool where
the windows tile the input, else averaging matrices or slice maxima).

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


def _per_side(padding: Any) -> bool:
    """Whether ``padding`` is per side: ((top, bottom), (left, right)), where either pair may be
    one int for both sides (as a config file writes ``(1, 1)``)."""
    return isinstance(padding, (tuple, list)) and len(padding) == 2 and any(
        isinstance(p, (tuple, list)) for p in padding)


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
    if _per_side(padding):
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

    def forward(ctx, x, w, b, stride, padding, dilation, groups):
        out, saved = backend.get().conv2d(x, w, b, stride, padding, dilation, groups)
        ctx.save_for_backward(w, saved)
        ctx.conf = (tuple(x.shape), stride, padding, dilation, groups)
        return out

    def backward(ctx, g):
        w, saved = ctx.saved_tensors
        return backend.get().conv2d_grads(g, w, saved, *ctx.conf,
                                          need=tuple(ctx.needs_input_grad[:3]))


def _check_weight(shape: tuple[int, ...], w_shape: tuple[int, ...], bias: Any, groups: Any,
                  op: str, layout: str) -> int:
    """The number of groups, after checking the weight's and bias' shapes against the input's."""
    if len(w_shape) != len(shape):
        raise ValueError(f"ember.{op}: expected a {len(shape)}-d weight (out_channels, "
                         f"in_channels / groups, {layout}), got shape {w_shape}")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"ember.{op}: groups must be an int >= 1, got {groups!r}")
    if shape[1] % groups or w_shape[0] % groups:
        raise ValueError(f"ember.{op}: groups={groups} must divide the input's {shape[1]} "
                         f"channels and the weight's {w_shape[0]} output channels")
    if shape[1] != w_shape[1] * groups:
        form = ("in_channels" if groups == 1 else "in_channels / groups") + f", {layout})"
        form += "" if groups == 1 else f" with groups={groups}"
        raise ValueError(f"ember.{op}: input of shape {shape} has {shape[1]} channels but weight "
                         f"of shape {w_shape} expects {w_shape[1] * groups} (weight is "
                         f"(out_channels, {form})")
    if bias is not None and tuple(bias.shape) != (w_shape[0],):
        raise ValueError(f"ember.{op}: bias of shape {tuple(bias.shape)} does not match weight "
                         f"of shape {w_shape}; expected ({w_shape[0]},)")
    return groups


@register("conv2d", method=False)
def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | Pair = 1,
    padding: int | Pair | Padding | str = 0,
    dilation: int | Pair = 1,
    groups: int = 1,
) -> Tensor:
    """2-d convolution (cross-correlation, as in every framework) of NCHW input.

    Args:
        x: input of shape (N, C, H, W).
        weight: kernels of shape (out_channels, C / groups, kH, kW).
        bias: (out_channels,) or None.
        stride: step between windows, an int or (rows, columns).
        padding: zeros around the input: an int, a pair, ((top, bottom), (left, right)),
            ``"valid"`` (none) or ``"same"`` (stride 1 only; output H, W = input H, W).
        dilation: spacing between kernel elements.
        groups: split the channels into this many groups, each convolved with its own
            ``out_channels / groups`` kernels (``groups = C``: a depthwise convolution).

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
        >>> ember.conv2d(x, ember.ones(4, 1, 3, 3), groups=2).shape  # 2 kernels per channel
        (1, 4, 3, 3)
    """
    op = "conv2d"
    shape = _check_4d(x, op)
    w_shape = tuple(weight.shape)
    groups = _check_weight(shape, w_shape, bias, groups, op, "kH, kW")
    kernel = (w_shape[2], w_shape[3])
    stride_ = _pair(stride, "stride", op)
    dilation_ = _pair(dilation, "dilation", op)
    pads = _padding(padding, kernel, stride_, dilation_, op)
    _out_size(shape, kernel, stride_, pads, dilation_, op,
              f"the kernel {kernel} with dilation {dilation_}")
    return Conv2d.apply(x, weight, bias, stride=stride_, padding=pads, dilation=dilation_,
                        groups=groups)


def _single(value: Any, what: str, op: str, minimum: int = 1) -> int:
    """An int or a 1-tuple of an int, at least ``minimum``."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(items) != 1 or not isinstance(items[0], int) or isinstance(items[0], bool):
        raise ValueError(f"ember.{op}: {what} must be an int, got {value!r}")
    if items[0] < minimum:
        raise ValueError(f"ember.{op}: {what} must be >= {minimum}, got {value!r}")
    return items[0]


@register("conv1d", method=False)
def conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int | Pair | str = 0,
    dilation: int = 1,
    groups: int = 1,
) -> Tensor:
    """1-d convolution (cross-correlation) of (N, C, L) input: ``conv2d`` on a unit height.

    Args:
        x: input of shape (N, C, L).
        weight: kernels of shape (out_channels, C / groups, K).
        bias: (out_channels,) or None.
        stride, dilation: ints.
        padding: an int, (left, right), ``"valid"`` or ``"same"`` (stride 1 only).
        groups: as in :func:`conv2d`.

    Returns:
        (N, out_channels, (L + left + right - dilation * (K - 1) - 1) // stride + 1).

    Example:
        >>> import ember
        >>> x = ember.arange(5.0).reshape(1, 1, 5)
        >>> ember.conv1d(x, ember.ones(1, 1, 2)).tolist()
        [[[1.0, 3.0, 5.0, 7.0]]]
        >>> ember.conv1d(x, ember.ones(2, 1, 3), padding="same").shape
        (1, 2, 5)
    """
    op = "conv1d"
    shape = tuple(x.shape)
    if len(shape) != 3:
        hint = " (add a batch axis with x.unsqueeze(0))" if len(shape) == 2 else ""
        raise ValueError(f"ember.{op}: expected a 3-d input (N, C, L), got shape {shape}{hint}")
    w_shape = tuple(weight.shape)
    groups = _check_weight(shape, w_shape, bias, groups, op, "K")
    stride_ = _single(stride, "stride", op)
    dilation_ = _single(dilation, "dilation", op)
    if isinstance(padding, str):
        pads = _padding(padding, (1, w_shape[2]), (1, stride_), (1, dilation_), op)
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        pads = ((0, 0), _pair(padding, "padding", op, minimum=0))
    else:
        p = _single(padding, "padding", op, minimum=0)
        pads = ((0, 0), (p, p))
    reach, padded = dilation_ * (w_shape[2] - 1) + 1, shape[2] + sum(pads[1])
    if reach > padded:
        raise ValueError(f"ember.{op}: the kernel {w_shape[2]} with dilation {dilation_} spans "
                         f"{reach}, more than the padded length {padded} of an input of shape "
                         f"{shape}; use a smaller kernel or more padding")
    out = Conv2d.apply(x.unsqueeze(2), weight.unsqueeze(2), bias, stride=(1, stride_),
                       padding=pads, dilation=(1, dilation_), groups=groups)
    return out.squeeze(2)


# -- pooling ------------------------------------------------------------------------------------

def _pool_padding(padding: Any, op: str) -> Padding:
    """((top, bottom), (left, right)) from an int, a pair or a pair of pairs."""
    if _per_side(padding):
        rows, cols = (_pair(p, "padding", op, minimum=0) for p in padding)
        return rows, cols
    pad = _pair(padding, "padding", op, minimum=0)
    return (pad[0], pad[0]), (pad[1], pad[1])


def _pool_args(
    x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool, op: str
) -> tuple[Pair, Pair, Padding, Pair, Padding]:
    """kernel, stride, the padding the kernel uses (with ceil_mode's extra rows and columns at the
    bottom and right), dilation and the padding as given."""
    shape = _check_4d(x, op)
    kernel = _pair(kernel_size, "kernel_size", op)
    stride_ = kernel if stride is None else _pair(stride, "stride", op)
    dilation_ = _pair(dilation, "dilation", op)
    pads = _pool_padding(padding, op)
    reach = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation_))
    if any(max(side) > r // 2 for side, r in zip(pads, reach)):
        window = f"the kernel {kernel}" if dilation_ == (1, 1) else \
            f"the window {reach} (kernel {kernel}, dilation {dilation_})"
        raise ValueError(f"ember.{op}: padding {padding!r} is more than half {window}; a "
                         f"window could then hold only padding")
    described = f"the window {kernel}" + ("" if dilation_ == (1, 1) else
                                          f" with dilation {dilation_}")
    _out_size(shape, kernel, stride_, pads, dilation_, op, described)
    if not ceil_mode:
        return kernel, stride_, pads, dilation_, pads
    used = []
    for n, (lo, hi), r, s in zip(shape[2:], pads, reach, stride_):
        o = -(-(n + lo + hi - r) // s) + 1  # the output size, rounded up
        if (o - 1) * s >= n + lo:  # the last window must start inside the input or left padding
            o -= 1
        used.append((lo, max(hi, (o - 1) * s + r - n - lo)))
    return kernel, stride_, (used[0], used[1]), dilation_, pads


class MaxPool2d(Function):
    """The maximum of each window; its gradient goes to the window's first maximum."""

    op_name = "max_pool2d"

    def forward(ctx, x, kernel, stride, padding, dilation):
        need_grad = ctx.needs_input_grad[0] and is_grad_enabled()
        out, saved = backend.get().max_pool2d(x, kernel, stride, padding, dilation, need_grad)
        ctx.save_for_backward(saved)
        ctx.conf = (tuple(x.shape), kernel, stride, padding, dilation)
        return out

    def backward(ctx, g):
        (saved,) = ctx.saved_tensors
        return backend.get().max_pool2d_grad(g, saved, *ctx.conf)


@register("max_pool2d", method=False)
def max_pool2d(
    x: Tensor, kernel_size: int | Pair, stride: int | Pair | None = None,
    padding: int | Pair | Padding = 0, dilation: int | Pair = 1, ceil_mode: bool = False,
) -> Tensor:
    """Max pooling over (H, W) windows of NCHW input; padding counts as -inf.

    ``stride`` defaults to ``kernel_size``; ``padding`` (an int, a pair or ((top, bottom),
    (left, right))) is at most half the window. ``ceil_mode=True`` rounds the output size up,
    keeping a last partial window where it starts inside the input or the left padding
    (PyTorch's rule). Where a window holds several equal maxima, the gradient goes to the first
    one in row-major order (as in PyTorch); an element that is the maximum of several
    overlapping windows collects all their gradients.

    Example:
        >>> import ember
        >>> x = ember.arange(16.0).reshape(1, 1, 4, 4)
        >>> ember.max_pool2d(x, 2)[0, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
        >>> ember.max_pool2d(x, 3, stride=2, ceil_mode=True)[0, 0].tolist()
        [[10.0, 11.0], [14.0, 15.0]]
    """
    kernel, stride_, pads, dilation_, _ = _pool_args(x, kernel_size, stride, padding, dilation,
                                                     ceil_mode, "max_pool2d")
    return MaxPool2d.apply(x, kernel=kernel, stride=stride_, padding=pads, dilation=dilation_)


def _counts(n: int, k: int, s: int, d: int, lo: int, out: int, low: int, high: int
            ) -> tuple[int, ...]:
    """How many of each window's ``k`` taps (window ``o`` starts at ``o * s - lo``) fall in
    ``[low, high)`` along one axis."""
    return tuple(sum(low <= o * s - lo + i * d < high for i in range(k)) for o in range(out))


class AvgPool2d(Function):
    """The mean of each window: its sum over a divisor (``None``: kH * kW, else per-axis counts
    whose outer product divides)."""

    op_name = "avg_pool2d"

    def forward(ctx, x, kernel, stride, padding, dilation, divisor):
        ctx.conf = (tuple(x.shape), kernel, stride, padding, dilation, divisor)
        return backend.get().avg_pool2d(x, kernel, stride, padding, dilation, divisor)

    def backward(ctx, g):
        return backend.get().avg_pool2d_grad(g, *ctx.conf)


@register("avg_pool2d", method=False)
def avg_pool2d(
    x: Tensor, kernel_size: int | Pair, stride: int | Pair | None = None,
    padding: int | Pair | Padding = 0, ceil_mode: bool = False, count_include_pad: bool = True,
    dilation: int | Pair = 1,
) -> Tensor:
    """Average pooling over (H, W) windows of NCHW input.

    ``stride`` defaults to ``kernel_size``; padding (an int, a pair or ((top, bottom), (left,
    right))) is zeros. With ``count_include_pad=True`` (PyTorch's default) padding counts in each
    mean; with False each window divides by the number of input elements it covers.
    ``ceil_mode`` as in :func:`max_pool2d`; the part of a last window beyond the padding never
    counts. ``dilation`` (not in PyTorch's avg_pool2d) spaces the taps as in :func:`max_pool2d`.

    Example:
        >>> import ember
        >>> x = ember.arange(16.0).reshape(1, 1, 4, 4)
        >>> ember.avg_pool2d(x, 2)[0, 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
        >>> ember.avg_pool2d(ember.ones(1, 1, 2, 2), 2, padding=1,
        ...                  count_include_pad=False)[0, 0].tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    op = "avg_pool2d"
    kernel, stride_, pads, dilation_, given = _pool_args(x, kernel_size, stride, padding,
                                                         dilation, ceil_mode, op)
    shape = tuple(x.shape)
    divisor = None
    if pads != given or not count_include_pad:
        counts = []
        for n, k, s, d, (lo, hi), (_, used_hi) in zip(shape[2:], kernel, stride_, dilation_,
                                                      given, pads):
            out = (n + lo + used_hi - d * (k - 1) - 1) // s + 1
            low, high = (0, n) if not count_include_pad else (-lo, n + hi)
            counts.append(_counts(n, k, s, d, lo, out, low, high))
        if any(c != kernel[0] for c in counts[0]) or any(c != kernel[1] for c in counts[1]):
            divisor = (counts[0], counts[1])
    return AvgPool2d.apply(x, kernel=kernel, stride=stride_, padding=pads, dilation=dilation_,
                           divisor=divisor)


# -- adaptive pooling: composites -----------------------------------------------------------------

def _adaptive_args(x: Any, output_size: Any, op: str) -> tuple[Pair, list[list[Pair]]]:
    """The output size and, per axis, each output's window [start, end) as PyTorch cuts them:
    ``start = floor(i * n / out)``, ``end = ceil((i + 1) * n / out)``."""
    shape = _check_4d(x, op)
    items = tuple(output_size) if isinstance(output_size, (tuple, list)) else \
        (output_size, output_size)
    size = tuple(n if o is None else o for o, n in zip(items, shape[2:]))
    size = _pair(size, "output_size", op)
    windows = [[(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]
               for n, o in zip(shape[2:], size)]
    return size, windows


@register("adaptive_avg_pool2d", method=False)
def adaptive_avg_pool2d(x: Tensor, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """Average pooling to a fixed (H_out, W_out) whatever the input's size, with PyTorch's
    windows (``start = floor(i * H / H_out)``, ``end = ceil((i + 1) * H / H_out)``); ``None``
    keeps that axis. Where the windows tile the input this is ``avg_pool2d``; else two small
    averaging matrices, ``A_h @ x @ A_w.T``.

    Example:
        >>> import ember
        >>> x = ember.arange(10.0).reshape(1, 1, 2, 5)
        >>> ember.adaptive_avg_pool2d(x, (1, 2)).tolist()
        [[[[3.5, 5.5]]]]
    """
    size, windows = _adaptive_args(x, output_size, "adaptive_avg_pool2d")
    h, w = x.shape[2:]
    if h % size[0] == 0 and w % size[1] == 0:
        kernel = (h // size[0], w // size[1])
        return avg_pool2d(x, kernel) if kernel != (1, 1) else x
    xp = backend.get().xp

    def averaging(spans: list[Pair], n: int) -> Tensor:
        rows = [[1.0 / (e - s) if s <= j < e else 0.0 for j in range(n)] for s, e in spans]
        return Tensor._make(xp.asarray(rows, dtype=x.dtype), False, None)

    return averaging(windows[0], h) @ x @ averaging(windows[1], w).transpose()


@register("adaptive_max_pool2d", method=False)
def adaptive_max_pool2d(x: Tensor, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """Max pooling to a fixed (H_out, W_out), with :func:`adaptive_avg_pool2d`'s windows. Where
    the windows tile the input this is ``max_pool2d``; else the maximum over each window's rows,
    then over its columns (a maximum is separable).

    Example:
        >>> import ember
        >>> x = ember.arange(10.0).reshape(1, 1, 2, 5)
        >>> ember.adaptive_max_pool2d(x, (1, 2)).tolist()
        [[[[7.0, 9.0]]]]
    """
    size, windows = _adaptive_args(x, output_size, "adaptive_max_pool2d")
    h, w = x.shape[2:]
    if h % size[0] == 0 and w % size[1] == 0:
        kernel = (h // size[0], w // size[1])
        return max_pool2d(x, kernel) if kernel != (1, 1) else x
    from ember.ops.shape import concatenate

    if h % size[0]:
        x = concatenate([x[:, :, s:e].max(axis=2, keepdims=True) for s, e in windows[0]], axis=2)
    elif h != size[0]:
        x = max_pool2d(x, (h // size[0], 1))
    if w % size[1]:
        x = concatenate([x[:, :, :, s:e].max(axis=3, keepdims=True) for s, e in windows[1]],
                        axis=3)
    elif w != size[1]:
        x = max_pool2d(x, (1, w // size[1]))
    return x
