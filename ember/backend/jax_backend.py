"""The JAX backend: jax.numpy arrays, compiled by XLA under ``ember.jit``."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ember.backend.base import Backend, pool_divisor, pool_windows_tile

# float64 must work (gradcheck needs it); ember passes dtypes explicitly everywhere, so enabling
# x64 does not change ember's float32 default.
jax.config.update("jax_enable_x64", True)

_NCHW = ("NCHW", "OIHW", "NCHW")


def _slice_pads(shape: tuple[int, ...], index: Any) -> list[tuple[int, int, int, bool]] | None:
    """For an index of ints, slices with a positive step and at most one Ellipsis: per axis of
    ``shape`` (first element, count, step, whether the axis stays in the result); None for any
    other index (integer or boolean arrays, None, negative steps)."""
    items = index if isinstance(index, tuple) else (index,)
    ellipses = [i for i, item in enumerate(items) if item is Ellipsis]
    if len(ellipses) > 1:
        return None
    if ellipses:
        at = ellipses[0]
        items = items[:at] + (slice(None),) * (len(shape) - len(items) + 1) + items[at + 1:]
    if len(items) > len(shape):
        return None
    items = items + (slice(None),) * (len(shape) - len(items))
    out = []
    for n, item in zip(shape, items):
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            if step <= 0:
                return None
            out.append((start, len(range(start, stop, step)), step, True))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) and -n <= item < n:
            out.append((int(item) % n, 1, 1, False))
        else:
            return None
    return out


def _window_args(kernel: Any, stride: Any, padding: Any, dilation: Any) -> tuple[Any, ...]:
    """reduce_window's window, strides, padding, base and window dilation for an NCHW array."""
    return ((1, 1, *kernel), (1, 1, *stride), ((0, 0), (0, 0), *padding), (1, 1, 1, 1),
            (1, 1, *dilation))


class JaxBackend(Backend):
    name = "jax"
    xp = jnp

    def _array_classes(self) -> tuple[type, ...]:
        return (jax.Array,)

    def to_numpy(self, array: Any) -> np.ndarray:
        if (isinstance(array, list) and len(array) > 1 and all(
                isinstance(a, jax.Array) and a.shape == () and a.dtype == array[0].dtype
                and a.sharding == array[0].sharding and a.is_fully_addressable
                for a in array)):  # e.g. the losses of many steps: one transfer per 64
            return np.concatenate([_stacked_scalars(array[i:i + _STACK])
                                   for i in range(0, len(array), _STACK)])
        return np.asarray(jax.device_get(array))

    def index_add(self, shape: tuple[int, ...], dtype: Any, index: Any, values: Any) -> Any:
        pads = _slice_pads(shape, index)
        if pads is None:
            return jnp.zeros(shape, dtype).at[index].add(values)
        # ints and slices: zero padding around the values, which XLA fuses into its consumers;
        # a scatter-add here (e.g. the backward of ``hc[..., :n]`` in an LSTM) is a loop XLA
        # cannot fuse and constant-folds slowly
        if any(count == 0 for _, count, _, _ in pads):
            return jnp.zeros(shape, dtype)
        kept = [count for _, count, _, keep in pads if keep]
        values = jnp.broadcast_to(jnp.asarray(values, dtype), kept)
        values = values.reshape([count for _, count, _, _ in pads])
        config = [(lo, n - lo - (count - 1) * step - 1, step - 1)
                  for n, (lo, count, step, _) in zip(shape, pads)]
        return lax.pad(values, jnp.zeros((), dtype), config)

    def erf(self, x: Any) -> Any:
        return jax.scipy.special.erf(x)

    def key(self, seed: int) -> Any:
        return jax.random.PRNGKey(int(seed) & (2**63 - 1))

    def fold_in(self, key: Any, data: int) -> Any:
        return jax.random.fold_in(key, int(data) & (2**32 - 1))

    def split(self, key: Any, num: int = 2) -> Any:
        return jax.random.split(key, num)

    def uniform(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        return jax.random.uniform(key, shape, dtype=dtype)

    def normal(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        return jax.random.normal(key, shape, dtype=dtype)

    # -- convolution and pooling: the jitted functions below, compiled once per shape and
    # configuration (eager calls then cost one dispatch; inside ember.jit they are inlined)
    def conv2d(
        self, x: Any, w: Any, b: Any, stride: Any, padding: Any, dilation: Any, groups: int = 1
    ) -> Any:
        out = _conv2d(x, w, tuple(stride), _hashable(padding), tuple(dilation), groups)
        if b is not None:
            out = out + b.reshape(1, -1, 1, 1)
        return out, x

    def conv2d_grads(
        self, g: Any, w: Any, saved: Any, x_shape: tuple[int, ...], stride: Any, padding: Any,
        dilation: Any, groups: int, need: tuple[bool, bool, bool],
    ) -> Any:
        conf = (tuple(stride), _hashable(padding), tuple(dilation))
        if groups != 1:  # XLA transposes a grouped convolution itself
            dx, dw = _conv2d_grouped_grads(g, saved, w, *conf, groups, need[0], need[1])
        else:
            dx = _conv2d_input_grad(g, w, tuple(x_shape), *conf) if need[0] else None
            dw = _conv2d_weight_grad(g, saved, tuple(w.shape), *conf) if need[1] else None
        db = g.sum(axis=(0, 2, 3)) if need[2] else None
        return dx, dw, db

    def max_pool2d(
        self, x: Any, kernel: Any, stride: Any, padding: Any, dilation: Any = (1, 1),
        need_grad: bool = False,
    ) -> Any:
        out = _max_pool2d(x, tuple(kernel), tuple(stride), _hashable(padding), tuple(dilation))
        return out, ((x, out) if need_grad else None)

    def max_pool2d_grad(
        self, g: Any, saved: Any, x_shape: tuple[int, ...], kernel: Any, stride: Any,
        padding: Any, dilation: Any = (1, 1),
    ) -> Any:
        x, out = saved
        return _max_pool2d_grad(g, x, out, tuple(kernel), tuple(stride), _hashable(padding),
                                tuple(dilation))

    def avg_pool2d(
        self, x: Any, kernel: Any, stride: Any, padding: Any, dilation: Any = (1, 1),
        divisor: Any = None,
    ) -> Any:
        return _avg_pool2d(x, tuple(kernel), tuple(stride), _hashable(padding), tuple(dilation),
                           divisor)

    def avg_pool2d_grad(
        self, g: Any, x_shape: tuple[int, ...], kernel: Any, stride: Any, padding: Any,
        dilation: Any = (1, 1), divisor: Any = None,
    ) -> Any:
        return _avg_pool2d_grad(g, tuple(x_shape), tuple(kernel), tuple(stride),
                                _hashable(padding), tuple(dilation), divisor)

    def platform(self) -> str:
        return str(jax.default_backend())

    def scan(self, body: Any, carry: Any, xs: Any, unroll: bool = False) -> tuple[Any, Any]:
        return jax.lax.scan(body, carry, xs, unroll=True if unroll else 1)

    def cond(self, pred: Any, true_fn: Any, false_fn: Any, operand: Any) -> Any:
        return jax.lax.cond(pred, true_fn, false_fn, operand)

    def take_rows(self, arrays: tuple[Any, ...], start: int, size: int) -> tuple[Any, ...]:
        # a dynamic start: one compiled program per batch size, not one per slice
        return _take_rows(arrays, np.int32(start), size)  # a NumPy scalar: jit's fast path

    def gather_rows(self, arrays: tuple[Any, ...], index: Any) -> tuple[Any, ...]:
        return _gather_rows(arrays, np.asarray(index, dtype=np.int32))


def _hashable(padding: Any) -> tuple[tuple[int, int], ...]:
    return tuple((int(lo), int(hi)) for lo, hi in padding)


# XLA's convolution for the forward pass and both gradients (measured under jax.jit on CPU: faster
# than an im2col + dot, see bench/conv.py).
@partial(jax.jit, static_argnames=("stride", "padding", "dilation", "groups"))
def _conv2d(x: Any, w: Any, stride: Any, padding: Any, dilation: Any, groups: int = 1) -> Any:
    dtype = jnp.result_type(x, w)
    return lax.conv_general_dilated(x.astype(dtype), w.astype(dtype), stride, padding,
                                    rhs_dilation=dilation, dimension_numbers=_NCHW,
                                    feature_group_count=groups)


@partial(jax.jit, static_argnames=("stride", "padding", "dilation", "groups", "need_x",
                                   "need_w"))
def _conv2d_grouped_grads(g: Any, x: Any, w: Any, stride: Any, padding: Any, dilation: Any,
                          groups: int, need_x: bool, need_w: bool) -> Any:
    _, vjp = jax.vjp(lambda a, b: _conv2d(a, b, stride, padding, dilation, groups), x, w)
    dx, dw = vjp(g.astype(jnp.result_type(x, w)))
    return (dx.astype(x.dtype) if need_x else None), (dw.astype(w.dtype) if need_w else None)


@partial(jax.jit, static_argnames=("x_shape", "stride", "padding", "dilation"))
def _conv2d_input_grad(g: Any, w: Any, x_shape: Any, stride: Any, padding: Any,
                       dilation: Any) -> Any:
    # A transposed convolution: g dilated by the stride, correlated with the flipped kernel (in
    # and out channels swapped), padded so that the result covers the input exactly.
    pads = []
    for (lo, hi), size, k, s, d, n_out in zip(padding, x_shape[2:], w.shape[2:], stride,
                                              dilation, g.shape[2:]):
        reach = d * (k - 1)
        unread = size + lo + hi - (s * (n_out - 1) + reach + 1)  # rows the forward skipped
        pads.append((reach - lo, reach - hi + unread))
    w = jnp.flip(w, (2, 3)).astype(g.dtype)
    return lax.conv_general_dilated(g, w, (1, 1), pads, lhs_dilation=stride,
                                    rhs_dilation=dilation,
                                    dimension_numbers=("NCHW", "IOHW", "NCHW"))


@partial(jax.jit, static_argnames=("w_shape", "stride", "padding", "dilation"))
def _conv2d_weight_grad(g: Any, x: Any, w_shape: Any, stride: Any, padding: Any,
                        dilation: Any) -> Any:
    # Channels act as the batch and the batch as the features: correlating the input with g
    # (dilated by the stride, stepping by the dilation) gives (C, O, >=KH, >=KW).
    out = lax.conv_general_dilated(x, g.astype(x.dtype), dilation, padding, rhs_dilation=stride,
                                   dimension_numbers=("CNHW", "IOHW", "NCHW"))
    return out[:, :, : w_shape[2], : w_shape[3]].transpose(1, 0, 2, 3)


# Pooling: lax.reduce_window. Where the windows tile the input (stride = kernel, no padding), the
# gradients are built in the input's layout from whole-array ops, which XLA fuses: on CPU its
# select-and-scatter, the transpose of a max reduce_window, is about 5x slower (measured).
def _untile(tiles: Any, x_shape: Any) -> Any:
    """(N, C, P, KH, Q, KW) tiles as an array of ``x_shape``; zeros past the last window."""
    n, c, p, kh, q, kw = tiles.shape
    flat = tiles.reshape(n, c, p * kh, q * kw)
    return jnp.pad(flat, ((0, 0), (0, 0), (0, x_shape[2] - p * kh), (0, x_shape[3] - q * kw)))


def _tile_view(x: Any, kernel: Any, out_hw: Any) -> Any:
    """``x`` (N, C, H, W), cropped to whole windows, as (N, C, P, KH, Q, KW)."""
    (kh, kw), (p, q) = kernel, out_hw
    return x[:, :, : p * kh, : q * kw].reshape(*x.shape[:2], p, kh, q, kw)


@partial(jax.jit, static_argnames=("kernel", "stride", "padding", "dilation"))
def _max_pool2d(x: Any, kernel: Any, stride: Any, padding: Any, dilation: Any) -> Any:
    # windows that tile the input: a reshape + max beats reduce_window on CPU
    if pool_windows_tile(kernel, stride, padding, dilation):
        hw = (x.shape[2] // kernel[0], x.shape[3] // kernel[1])
        return _tile_view(x, kernel, hw).max(axis=(3, 5))
    low = -np.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
    # a NumPy scalar: a concrete init lets JAX see the max monoid (and differentiate it)
    return lax.reduce_window(x, np.array(low, x.dtype), lax.max,
                             *_window_args(kernel, stride, padding, dilation))


@partial(jax.jit, static_argnames=("kernel", "stride", "padding", "dilation"))
def _max_pool2d_grad(g: Any, x: Any, out: Any, kernel: Any, stride: Any, padding: Any,
                     dilation: Any) -> Any:
    g = g.astype(x.dtype)
    if tuple(dilation) != (1, 1):  # JAX has no VJP of a dilated max reduce_window
        return _max_pool2d_grad_offsets(g, x, out, kernel, stride, padding, dilation)
    if not pool_windows_tile(kernel, stride, padding, dilation):
        # XLA's select-and-scatter keeps the first maximum of each window, as PyTorch does
        _, vjp = jax.vjp(lambda a: _max_pool2d(a, kernel, stride, padding, dilation), x)
        return vjp(g)[0]
    kh, kw = kernel
    x6 = _tile_view(x, kernel, out.shape[2:])
    free = jnp.ones(out.shape, bool)  # windows whose first maximum is still to come
    rows = []
    for i in range(kh):
        shares = []
        for j in range(kw):  # row-major: the first maximum takes the gradient
            hit = (x6[:, :, :, i, :, j] == out) & free
            free = free & ~hit
            shares.append(jnp.where(hit, g, jnp.zeros((), g.dtype)))
        rows.append(jnp.stack(shares, axis=-1))  # (N, C, P, Q, KW)
    return _untile(jnp.stack(rows, axis=3), x.shape)


def _divide(total: Any, kernel: Any, divisor: Any) -> Any:
    if divisor is None:
        return total / (kernel[0] * kernel[1])
    return total / np.asarray(pool_divisor(divisor), total.dtype)  # a constant of the program


def _max_pool2d_grad_offsets(g: Any, x: Any, out: Any, kernel: Any, stride: Any, padding: Any,
                             dilation: Any) -> Any:
    """The first maximum of each window takes its gradient: one strided add per kernel offset,
    row-major, onto the padded input; then the padding is cropped."""
    low = -np.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
    xpad = jnp.pad(x, ((0, 0), (0, 0), *padding), constant_values=low)
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    p, q = out.shape[2:]
    dx = jnp.zeros(xpad.shape, g.dtype)
    free = jnp.ones(out.shape, bool)  # windows whose first maximum is still to come
    for i in range(kh):
        for j in range(kw):
            at = (slice(None), slice(None), slice(i * dh, i * dh + sh * (p - 1) + 1, sh),
                  slice(j * dw, j * dw + sw * (q - 1) + 1, sw))
            hit = (xpad[at] == out) & free
            free = free & ~hit
            dx = dx.at[at].add(jnp.where(hit, g, jnp.zeros((), g.dtype)))
    (top, bottom), (left, right) = padding
    return dx[:, :, top: xpad.shape[2] - bottom, left: xpad.shape[3] - right]


@partial(jax.jit, static_argnames=("kernel", "stride", "padding", "dilation", "divisor"))
def _avg_pool2d(x: Any, kernel: Any, stride: Any, padding: Any, dilation: Any,
                divisor: Any) -> Any:
    if pool_windows_tile(kernel, stride, padding, dilation) and divisor is None:
        hw = (x.shape[2] // kernel[0], x.shape[3] // kernel[1])
        return _tile_view(x, kernel, hw).mean(axis=(3, 5))
    total = lax.reduce_window(x, np.array(0, x.dtype), lax.add,
                              *_window_args(kernel, stride, padding, dilation))
    return _divide(total, kernel, divisor)


@partial(jax.jit, static_argnames=("x_shape", "kernel", "stride", "padding", "dilation",
                                   "divisor"))
def _avg_pool2d_grad(g: Any, x_shape: Any, kernel: Any, stride: Any, padding: Any,
                     dilation: Any, divisor: Any) -> Any:
    if pool_windows_tile(kernel, stride, padding, dilation) and divisor is None:
        (kh, kw), (n, c, p, q) = kernel, g.shape
        share = g / (kh * kw)
        return _untile(jnp.broadcast_to(share[:, :, :, None, :, None], (n, c, p, kh, q, kw)),
                       x_shape)
    _, vjp = jax.vjp(lambda a: _avg_pool2d(a, kernel, stride, padding, dilation, divisor),
                     jnp.zeros(x_shape, g.dtype))
    return vjp(g)[0]


_STACK = 64


@jax.jit
def _stack(*scalars: Any) -> Any:
    return jnp.stack(scalars)


def _stacked_scalars(scalars: list[Any]) -> np.ndarray:
    """Up to ``_STACK`` scalars of one dtype in one host transfer: stacked on the device, padded
    to ``_STACK`` so that one compiled program serves every count."""
    padded = scalars + [scalars[-1]] * (_STACK - len(scalars))
    return np.asarray(_stack(*padded))[:len(scalars)]


@partial(jax.jit, static_argnames=("size",))
def _take_rows(arrays: tuple[Any, ...], start: Any, size: int) -> tuple[Any, ...]:
    return tuple(lax.dynamic_slice_in_dim(a, start, size, axis=0) for a in arrays)


@jax.jit
def _gather_rows(arrays: tuple[Any, ...], index: Any) -> tuple[Any, ...]:
    return tuple(jnp.take(a, index, axis=0) for a in arrays)
