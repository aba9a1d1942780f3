"""The NumPy backend: eager, on the host, nothing to compile."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ember.backend.base import Backend

try:  # scipy's erf is exact and fast; NumPy has none, so fall back to math.erf per element
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover - scipy comes with the dev and jax extras
    _erf = np.vectorize(math.erf, otypes=[np.float64])


def _is_basic_index(index: Any) -> bool:
    """True when ``index`` has no integer arrays, so no element can be selected twice."""
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        if isinstance(item, (int, np.integer, slice)) or item is None or item is Ellipsis:
            continue
        if isinstance(item, np.ndarray) and item.dtype == np.bool_:
            continue
        return False
    return True


def _pad2d(x: np.ndarray, padding: Any, value: float = 0.0) -> np.ndarray:
    """``x`` (N, C, H, W) with ``padding`` ((top, bottom), (left, right)) rows and columns."""
    (top, bottom), (left, right) = padding
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x  # a fresh array, filled once
    return out


def _windows(xpad: np.ndarray, kernel: Any, stride: Any, dilation: Any) -> np.ndarray:
    """A strided view (N, C, P, Q, KH, KW) of every window of ``xpad``: no copy."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    view = sliding_window_view(xpad, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def _offsets(xpad: np.ndarray, kernel: Any, stride: Any) -> Any:
    """For each kernel offset (i, j), row-major: the (N, C, P, Q) strided view of the element at
    that offset of every window (stride ``stride``, no dilation)."""
    (kh, kw), (sh, sw) = kernel, stride
    p = (xpad.shape[2] - kh) // sh + 1
    q = (xpad.shape[3] - kw) // sw + 1
    for i in range(kh):
        for j in range(kw):
            yield xpad[:, :, i : i + sh * (p - 1) + 1 : sh, j : j + sw * (q - 1) + 1 : sw]


def _scatter_windows(
    parts: Any, padded_shape: tuple[int, ...], dtype: Any, kernel: Any, stride: Any,
    dilation: Any, padding: Any,
) -> np.ndarray:
    """col2im: add ``parts(i, j)`` (N, C, P, Q) at the windows' offset (i, j) of a zero array of
    ``padded_shape``, one whole-array add per kernel offset; then crop the padding."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    out = np.zeros(padded_shape, dtype)
    for i in range(kh):
        for j in range(kw):
            part = parts(i, j)
            p, q = part.shape[2:]
            out[:, :, i * dh : i * dh + sh * (p - 1) + 1 : sh,
                j * dw : j * dw + sw * (q - 1) + 1 : sw] += part
    (top, bottom), (left, right) = padding
    return out[:, :, top : padded_shape[2] - bottom, left : padded_shape[3] - right]


def _lowest(dtype: Any) -> Any:
    """The padding value of max pooling: -inf, or the smallest integer."""
    dtype = np.dtype(dtype)
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    def _array_classes(self) -> tuple[type, ...]:
        return (np.ndarray, np.generic)

    def to_numpy(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def index_add(self, shape: tuple[int, ...], dtype: Any, index: Any, values: Any) -> Any:
        out = np.zeros(shape, dtype)
        if _is_basic_index(index):
            out[index] = values  # a fresh array filled once: no element repeats
        else:
            np.add.at(out, index, values)  # integer arrays may repeat: accumulate
        return out

    def erf(self, x: Any) -> Any:
        return _erf(x).astype(x.dtype, copy=False)

    def key(self, seed: int) -> Any:
        return np.random.SeedSequence(int(seed) & (2**128 - 1)).generate_state(2, np.uint64)

    def fold_in(self, key: Any, data: int) -> Any:
        words = [int(w) for w in np.asarray(key, dtype=np.uint64)] + [int(data) & (2**64 - 1)]
        return np.random.SeedSequence(words).generate_state(2, np.uint64)

    def split(self, key: Any, num: int = 2) -> Any:
        bits = np.random.Philox(key=np.asarray(key, dtype=np.uint64)).random_raw(2 * num)
        return np.asarray(bits, dtype=np.uint64).reshape(num, 2)

    def _generator(self, key: Any) -> np.random.Generator:
        return np.random.Generator(np.random.Philox(key=np.asarray(key, dtype=np.uint64)))

    def uniform(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        dtype = np.dtype(dtype)
        draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
        return self._generator(key).random(shape, dtype=draw_dtype).astype(dtype, copy=False)

    def normal(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        dtype = np.dtype(dtype)
        draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
        gen = self._generator(key)
        return gen.standard_normal(shape, dtype=draw_dtype).astype(dtype, copy=False)

    # -- convolution: im2col over a strided view, one matmul per call -----------------------------
    def conv2d(self, x: Any, w: Any, stride: Any, padding: Any, dilation: Any) -> Any:
        n = x.shape[0]
        o, c, kh, kw = w.shape
        win = _windows(_pad2d(x, padding), (kh, kw), stride, dilation)
        p, q = win.shape[2:4]
        # Columns as (C*KH*KW, N*P*Q): this copy reads whole image rows, about 5x faster than
        # the (N*P*Q, C*KH*KW) order. Kept for the weight gradient.
        cols = win.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * p * q)
        out = (w.reshape(o, -1) @ cols).reshape(o, n, p, q)
        return out.transpose(1, 0, 2, 3), cols

    def conv2d_input_grad(
        self, g: Any, w: Any, x_shape: tuple[int, ...], stride: Any, padding: Any,
        dilation: Any,
    ) -> Any:
        n, c, h, wd = x_shape
        o, _, kh, kw = w.shape
        p, q = g.shape[2:]
        g_t = g.transpose(1, 0, 2, 3).reshape(o, n * p * q)
        dcols = (w.reshape(o, -1).T @ g_t).reshape(c, kh, kw, n, p, q)
        (top, bottom), (left, right) = padding
        # scattered in (C, N, H, W) order, where each offset's slice of dcols is contiguous
        dx = _scatter_windows(lambda i, j: dcols[:, i, j],
                              (c, n, h + top + bottom, wd + left + right), dcols.dtype,
                              (kh, kw), stride, dilation, padding)
        return dx.transpose(1, 0, 2, 3)

    def conv2d_weight_grad(
        self, g: Any, saved: Any, w_shape: tuple[int, ...], stride: Any, padding: Any,
        dilation: Any,
    ) -> Any:
        o = w_shape[0]
        g_t = g.transpose(1, 0, 2, 3).reshape(o, -1)
        return (g_t @ saved.T).reshape(w_shape)

    # -- pooling: one whole-array op per kernel offset (a reduction over the 6-D window view is
    # several times slower: its innermost axes are tiny and strided); backward scatters likewise
    def max_pool2d(self, x: Any, kernel: Any, stride: Any, padding: Any) -> Any:
        parts = _offsets(_pad2d(x, padding, _lowest(x.dtype)), kernel, stride)
        out = next(parts).copy()
        for part in parts:
            np.maximum(out, part, out=out)  # NaN propagates, as in np.max
        return out

    def max_pool2d_grad(self, g: Any, x: Any, kernel: Any, stride: Any, padding: Any) -> Any:
        xpad = _pad2d(x, padding, _lowest(x.dtype))
        out = self.max_pool2d(x, kernel, stride, padding)
        free = np.ones(out.shape, bool)  # windows whose maximum has not been found yet
        shares = []
        for part in _offsets(xpad, kernel, stride):  # row-major offsets: the first maximum wins
            hit = (part == out) & free
            free &= ~hit
            shares.append(np.where(hit, g, np.zeros((), g.dtype)))
        kw = kernel[1]
        return _scatter_windows(lambda i, j: shares[i * kw + j], xpad.shape, g.dtype, kernel,
                                stride, (1, 1), padding)

    def avg_pool2d(self, x: Any, kernel: Any, stride: Any, padding: Any) -> Any:
        parts = _offsets(_pad2d(x, padding), kernel, stride)
        out = next(parts).copy()
        for part in parts:
            out += part
        return out / (kernel[0] * kernel[1])

    def avg_pool2d_grad(
        self, g: Any, x_shape: tuple[int, ...], kernel: Any, stride: Any, padding: Any
    ) -> Any:
        n, c, h, w = x_shape
        (top, bottom), (left, right) = padding
        share = g / (kernel[0] * kernel[1])
        return _scatter_windows(lambda i, j: share, (n, c, h + top + bottom, w + left + right),
                                share.dtype, kernel, stride, (1, 1), padding)

    def scan(self, body: Any, carry: Any, xs: Any) -> tuple[Any, Any]:
        if isinstance(xs, (tuple, list)):
            n = len(xs[0])
            items = [type(xs)(x[i] for x in xs) for i in range(n)]
        else:
            items = [xs[i] for i in range(len(xs))]
        ys = []
        for x in items:  # a plain loop: NumPy has nothing to compile
            carry, y = body(carry, x)
            ys.append(y)
        if ys and isinstance(ys[0], (tuple, list)):
            return carry, type(ys[0])(np.stack(col) for col in zip(*ys))
        return carry, (np.stack(ys) if ys else None)
