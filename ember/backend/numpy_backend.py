"""The NumPy backend: eager, on the host, nothing to compile."""

from __future__ import annotations

import ctypes
import math
import os
import platform
import sys
from typing import Any

import numpy as np

from ember.backend.base import Backend, pool_divisor, pool_windows_tile

try:  # scipy's erf is exact and fast; NumPy has none, so fall back to math.erf per element
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover - scipy comes with the dev and jax extras
    _erf = np.vectorize(math.erf, otypes=[np.float64])


#: what :func:`tune_malloc` did: "on", or why not
malloc_tuning = "off: the NumPy backend has not been used"


def tune_malloc() -> str:
    """Let glibc's malloc keep freed blocks of up to 64 MiB for reuse (``mallopt``: mmap threshold
    64 MiB, trim threshold 128 MiB). Done once, when the NumPy backend is first made.

    A training step on NumPy allocates temporaries of a few MB (im2col columns, activations,
    gradients). By default glibc serves blocks above 128 KiB with a fresh ``mmap`` and unmaps
    them on free, so every step pays the kernel for zeroed pages again; glibc raises that
    threshold itself only after some large block has been freed, so the same script runs up to
    twice as fast or slow depending on what ran before it. Set ``EMBER_MALLOC_TUNING=0`` to leave
    malloc alone; on other C libraries this does nothing.

    Returns "on", or the reason it is off. Example:
        >>> from ember.backend import numpy_backend
        >>> numpy_backend.tune_malloc() in ("on", "off: EMBER_MALLOC_TUNING=0", "off: not glibc")
        True
    """
    global malloc_tuning
    if os.environ.get("EMBER_MALLOC_TUNING", "1").strip() == "0":
        malloc_tuning = "off: EMBER_MALLOC_TUNING=0"
    elif not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        malloc_tuning = "off: not glibc"
    else:
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
            m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
            ok = mallopt(m_mmap_threshold, 64 << 20) and mallopt(m_trim_threshold, 128 << 20)
            malloc_tuning = "on" if ok else "off: mallopt refused"
        except (OSError, AttributeError) as e:  # pragma: no cover - a glibc without mallopt
            malloc_tuning = f"off: {e}"
    return malloc_tuning


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


def _flat_index(index: Any, shape: tuple[int, ...], values: np.ndarray) -> np.ndarray | None:
    """For leading integer-array indices (an embedding's rows, take_along_axis's grid), the flat
    positions in an array of ``shape`` of every element of ``values``; None for other indices.
    ``np.add.at`` on the flat form takes its 1-D fast path: ~10x faster than on rows."""
    items = index if isinstance(index, tuple) else (index,)
    if not items or len(items) > len(shape) or not all(
            isinstance(i, np.ndarray) and i.dtype.kind in "iu" for i in items):
        return None
    k = len(items)
    lead = np.ravel_multi_index(np.broadcast_arrays(*items), shape[:k], mode="wrap")
    rest = math.prod(shape[k:])
    if values.shape != lead.shape + tuple(shape[k:]):
        return None
    return (lead.reshape(-1, 1) * rest + np.arange(rest)).reshape(-1)


def _channels_outer(x: np.ndarray) -> bool:
    """Whether ``x`` (N, C, H, W) lies in memory as (C, N, H, W): how the NumPy convolution
    writes its output (a view of one (O, N*P*Q) product), and so the ReLU and pooling after it.
    The ops that follow keep that order, so the next convolution unfolds its input and reads its
    upstream gradient as (C, N*H*W) rows without a transposing copy."""
    return x.ndim == 4 and x.strides[1] > x.strides[0] and x.shape[0] > 1 and x.shape[1] > 1


def _empty(shape: tuple[int, ...], dtype: Any, like: np.ndarray, fill: Any = None) -> np.ndarray:
    """A fresh (N, C, ...) array of ``shape`` laid out in memory as ``like``: (C, N, ...) when
    :func:`_channels_outer`, else C order; filled with ``fill`` unless it is None."""
    outer = _channels_outer(like)
    alloc = (shape[1], shape[0], *shape[2:]) if outer else shape
    out = np.empty(alloc, dtype) if fill is None else np.full(alloc, fill, dtype)
    return out.swapaxes(0, 1) if outer else out


def _pad2d(x: np.ndarray, padding: Any, value: float = 0.0) -> np.ndarray:
    """``x`` (N, C, H, W) with ``padding`` ((top, bottom), (left, right)) rows and columns, in
    ``x``'s memory order."""
    (top, bottom), (left, right) = padding
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    out = _empty((n, c, h + top + bottom, w + left + right), x.dtype, x, value)
    out[:, :, top : top + h, left : left + w] = x  # a fresh array, filled once
    return out


def _offsets(xpad: np.ndarray, kernel: Any, stride: Any, dilation: Any = (1, 1)) -> Any:
    """For each kernel offset (i, j), row-major: the (N, C, P, Q) strided view of the element at
    that offset of every window."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    p = (xpad.shape[2] - dh * (kh - 1) - 1) // sh + 1
    q = (xpad.shape[3] - dw * (kw - 1) - 1) // sw + 1
    for i in range(kh):
        for j in range(kw):
            yield xpad[:, :, i * dh : i * dh + sh * (p - 1) + 1 : sh,
                       j * dw : j * dw + sw * (q - 1) + 1 : sw]


def _scatter_windows(
    parts: Any, padded_shape: tuple[int, ...], dtype: Any, kernel: Any, stride: Any,
    dilation: Any, padding: Any, like: np.ndarray | None = None,
) -> np.ndarray:
    """col2im: add ``parts(i, j)`` (N, C, P, Q) at the windows' offset (i, j) of a zero array of
    ``padded_shape`` (in ``like``'s memory order), one whole-array add per kernel offset; then
    crop the padding."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    out = np.zeros(padded_shape, dtype) if like is None else _empty(padded_shape, dtype, like, 0)
    for i in range(kh):
        for j in range(kw):
            part = parts(i, j)
            p, q = part.shape[2:]
            out[:, :, i * dh : i * dh + sh * (p - 1) + 1 : sh,
                j * dw : j * dw + sw * (q - 1) + 1 : sw] += part
    (top, bottom), (left, right) = padding
    return out[:, :, top : padded_shape[2] - bottom, left : padded_shape[3] - right]


def _input_grad_shifted(
    g: np.ndarray, w: np.ndarray, padded_shape: tuple[int, ...], dilation: Any
) -> np.ndarray:
    """The input gradient of a stride-1 convolution, padded, as (C, N, Hp, Wp): ``g`` (N, O, P,
    Q) is laid on the padded grid (zeros at rows >= P and columns >= Q), flattened to (O, L);
    then each kernel offset (i, j), ``s = i * dh * Wp + j * dw`` positions further on, adds
    ``w[:, :, i, j].T @ g[:, r - s]`` at every flat position r. A shift that crosses a row or an
    image reads the grid's zeros, so no mask is needed; no im2col columns, no strided col2im."""
    c, n, hp, wp = padded_shape
    o, _, kh, kw = w.shape
    p, q = g.shape[2:]
    flat = n * hp * wp
    grid = np.zeros((o, n, hp, wp), g.dtype)
    grid[:, :, :p, :q] = g.transpose(1, 0, 2, 3)
    grid = grid.reshape(o, flat)
    w_t = w.transpose(2, 3, 1, 0).astype(g.dtype, copy=False)  # (KH, KW, C, O)
    out = np.zeros((c, flat), np.result_type(g, w))
    (dh, dw) = dilation
    for i in range(kh):
        for j in range(kw):
            s = i * dh * wp + j * dw
            out[:, s:] += w_t[i, j] @ grid[:, : flat - s]
    return out.reshape(c, n, hp, wp)


def _untile(tiles: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """A pooling gradient built in the input's own layout, ``tiles`` (N, C, P, KH, Q, KW), as an
    array of ``x_shape``: two whole-array ops instead of a scatter. Rows and columns past the last
    window get zeros."""
    n, c, p, kh, q, kw = tiles.shape
    flat = tiles.reshape(n, c, p * kh, q * kw)  # a view, also of (C, N, ...) tiles
    if flat.shape == tuple(x_shape):
        return flat
    out = _empty(tuple(x_shape), tiles.dtype, flat, 0)
    out[:, :, : p * kh, : q * kw] = flat
    return out


def _keep(values: np.ndarray, mask: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.where(mask, values, 0)`` for float ``values``, branch-free: the bits of ``values`` and
    an all-ones or all-zeros word per element. ``np.where`` branches on every element and is
    over ten times slower on an irregular mask."""
    bits = np.dtype(f"u{values.dtype.itemsize}")
    word = mask.astype(bits)
    np.negative(word, out=word)  # 1 -> all ones (unsigned wrap-around), 0 -> 0
    if out is None:
        out = np.empty(np.broadcast_shapes(values.shape, mask.shape), values.dtype)
    np.bitwise_and(values.view(bits), word, out=out.view(bits))
    return out


#: Force a kernel path on (True) or off (False) whatever the shape; None (the default) lets each
#: op choose. Tests force every path so that one chosen only for some shapes is still checked.
#: "pool_pairs": max pooling over 4-tap windows as a tournament of pairs;
#: "conv_shifted": a stride-1 convolution's input gradient as shifted matmuls on the flat padded
#: grid (:func:`_input_grad_shifted`) instead of one matmul and a col2im.
PATHS: dict[str, bool | None] = {"pool_pairs": None, "conv_shifted": None}


def _use(path: str, chosen: bool) -> bool:
    """Whether to take ``path``: :data:`PATHS` when it forces one, else ``chosen``."""
    forced = PATHS[path]
    return chosen if forced is None else forced


def _max_first_of_four(a: Any, b: Any, c: Any, d: Any) -> tuple[Any, Any]:
    """The maximum of four same-shaped arrays (a 2x2 window's taps, row-major) and the index of
    its first occurrence, as a tournament: the larger of (a, b) and of (c, d), then of the two
    winners; a later tap wins only when strictly greater. 3 maxima and 3 comparisons instead of
    4 equality tests and 12 index updates. ``first`` is None where a window holds a NaN (the
    general path then gives that window no gradient)."""
    right_ab, right_cd = np.greater(b, a), np.greater(d, c)
    top, bottom = np.maximum(a, b), np.maximum(c, d)
    lower = np.greater(bottom, top)
    out = np.maximum(top, bottom)
    if out.dtype.kind == "f" and np.isnan(out).any():
        return out, None
    right = np.bitwise_xor(right_ab, np.bitwise_and(lower, np.bitwise_xor(right_ab, right_cd)))
    first = lower.view(np.uint8) << 1
    first |= right.view(np.uint8)
    return out, first


def _lowest(dtype: Any) -> Any:
    """The padding value of max pooling: -inf, or the smallest integer."""
    dtype = np.dtype(dtype)
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    def __init__(self) -> None:
        super().__init__()
        tune_malloc()

    def _array_classes(self) -> tuple[type, ...]:
        return (np.ndarray, np.generic)

    def to_numpy(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def index_add(self, shape: tuple[int, ...], dtype: Any, index: Any, values: Any) -> Any:
        out = np.zeros(shape, dtype)
        if _is_basic_index(index):
            out[index] = values  # a fresh array filled once: no element repeats
            return out
        flat = _flat_index(index, shape, values)
        if flat is None:
            np.add.at(out, index, values)  # integer arrays may repeat: accumulate
        else:
            np.add.at(out.reshape(-1), flat, values.reshape(-1).astype(dtype, copy=False))
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
    def conv2d(
        self, x: Any, w: Any, b: Any, stride: Any, padding: Any, dilation: Any, groups: int = 1
    ) -> Any:
        n, c = x.shape[:2]
        o, _, kh, kw = w.shape
        # Columns as (C*KH*KW, N*P*Q), one whole-array copy per kernel offset (about 1.15x
        # faster than one copy of the 6-d window view): each reads whole image rows, about 5x
        # faster than the (N*P*Q, C*KH*KW) order. Kept for the weight gradient.
        taps = list(_offsets(_pad2d(x, padding), (kh, kw), stride, dilation))
        p, q = taps[0].shape[2:]
        cols = np.empty((c, kh * kw, n, p, q), x.dtype)
        for k, tap in enumerate(taps):
            cols[:, k] = tap.transpose(1, 0, 2, 3)
        cols = cols.reshape(c * kh * kw, n * p * q)
        if groups == 1:
            out = w.reshape(o, -1) @ cols
        else:  # one matmul per group: (O/G, C/G*KH*KW) @ (C/G*KH*KW, N*P*Q)
            w2, og, rows = w.reshape(o, -1), o // groups, cols.shape[0] // groups
            out = np.concatenate([w2[i * og:(i + 1) * og] @ cols[i * rows:(i + 1) * rows]
                                  for i in range(groups)])
        if b is not None and np.result_type(out, b) == out.dtype:
            out += b[:, None]  # on whole (O, N*P*Q) rows of the fresh product
        elif b is not None:
            out = out + b[:, None]  # a wider bias widens the output
        # (N, O, P, Q) as a view of the (O, N, P, Q) product: a copy to NCHW order costs more than
        # the ops that follow lose on the transposed layout (measured)
        return out.reshape(o, n, p, q).transpose(1, 0, 2, 3), cols

    def conv2d_grads(
        self, g: Any, w: Any, saved: Any, x_shape: tuple[int, ...], stride: Any, padding: Any,
        dilation: Any, groups: int, need: tuple[bool, bool, bool],
    ) -> Any:
        o, _, kh, kw = w.shape
        n, c, h, wd = x_shape
        p, q = g.shape[2:]
        g_t = g.transpose(1, 0, 2, 3).reshape(o, -1)  # (O, N*P*Q): one copy, shared by all three
        db = g_t.sum(axis=1) if need[2] else None
        # (cols @ g_t.T).T, not g_t @ cols.T: about 1.5x faster for the usual shapes (measured).
        # Groups: one 2-d matmul each (a stacked matmul of transposed views skips BLAS).
        og, rows = o // groups, saved.shape[0] // groups
        dw = None
        if need[1]:
            dw = np.concatenate([(saved[i * rows:(i + 1) * rows] @ g_t[i * og:(i + 1) * og].T).T
                                 for i in range(groups)]) if groups > 1 else (saved @ g_t.T).T
            dw = dw.reshape(w.shape)
        if not need[0]:
            return None, dw, db
        (top, bottom), (left, right) = padding
        hp, wp = h + top + bottom, wd + left + right
        # stride 1: the flat form reads and writes whole contiguous rows; it also multiplies the
        # zeros of g's padded grid, worth it while that grid is under 1.5x g (measured: 1.3x
        # faster for W2's 3x3 layer at 1.31x, even for LeNet's 5x5 valid layer at 1.96x)
        if groups == 1 and tuple(stride) == (1, 1) and _use(
                "conv_shifted", hp * wp < 1.5 * p * q):
            dxpad = _input_grad_shifted(g, w, (c, n, hp, wp), dilation)
            dx = dxpad[:, :, top : hp - bottom, left : wp - right]
            return dx.transpose(1, 0, 2, 3), dw, db
        w2 = w.reshape(o, -1)
        dcols = np.concatenate([w2[i * og:(i + 1) * og].T @ g_t[i * og:(i + 1) * og]
                                for i in range(groups)]) if groups > 1 else w2.T @ g_t
        dcols = dcols.reshape(c, kh, kw, n, p, q)
        # scattered in (C, N, H, W) order, where each offset's slice of dcols is contiguous
        dx = _scatter_windows(lambda i, j: dcols[:, i, j],
                              (c, n, h + top + bottom, wd + left + right), dcols.dtype,
                              (kh, kw), stride, dilation, padding)
        return dx.transpose(1, 0, 2, 3), dw, db

    # -- pooling: one whole-array op per kernel offset (a reduction over the 6-D window view is
    # several times slower: its innermost axes are tiny and strided). Max pooling for training
    # also keeps, per window, the offset of its first maximum, so that the gradient needs no
    # second pass over the input.
    def max_pool2d(
        self, x: Any, kernel: Any, stride: Any, padding: Any, dilation: Any = (1, 1),
        need_grad: bool = False,
    ) -> Any:
        parts = list(_offsets(_pad2d(x, padding, _lowest(x.dtype)), kernel, stride, dilation))
        if need_grad and len(parts) == 4 and _use("pool_pairs", True):
            out, first = _max_first_of_four(*parts)
            if first is not None:
                return out, first
        out = parts[0].copy(order="K") if len(parts) == 1 else np.maximum(parts[0], parts[1])
        for part in parts[2:]:
            np.maximum(out, part, out=out)  # NaN propagates, as in np.max
        if not need_grad:
            return out, None
        # the row-major offset of each window's first maximum; len(parts) where there is none
        # (a NaN window), which then gets no gradient. Going backwards, each hit moves the offset
        # down to k: arithmetic on uint8, several times faster than np.where or a masked copy
        first = np.full_like(out, len(parts), np.min_scalar_type(len(parts)))
        for k in range(len(parts) - 1, -1, -1):
            step = first - first.dtype.type(k)
            step *= parts[k] == out
            first -= step
        return out, first

    def max_pool2d_grad(
        self, g: Any, saved: Any, x_shape: tuple[int, ...], kernel: Any, stride: Any,
        padding: Any, dilation: Any = (1, 1),
    ) -> Any:
        first = saved
        kh, kw = kernel
        (top, bottom), (left, right) = padding
        n, c, h, w = x_shape
        if pool_windows_tile(kernel, stride, padding, dilation):
            # the windows tile the input: write each offset's share straight into the input's
            # layout, viewed as (N, C, P, KH, Q, KW); no zero-fill, no scatter
            p, q = first.shape[2:]
            if _channels_outer(first) != _channels_outer(g):  # e.g. g from a Flatten
                aligned = _empty(g.shape, g.dtype, first)  # one small copy: reads below align
                aligned[...] = g
                g = aligned
            tiles = _empty((n, c, p, kh, q, kw), g.dtype, first)
            for i in range(kh):
                for j in range(kw):
                    _keep(g, first == i * kw + j, out=tiles[:, :, :, i, :, j])
            return _untile(tiles, x_shape)
        return _scatter_windows(lambda i, j: _keep(g, first == i * kw + j),
                                (n, c, h + top + bottom, w + left + right), g.dtype, kernel,
                                stride, dilation, padding, like=first)

    def avg_pool2d(
        self, x: Any, kernel: Any, stride: Any, padding: Any, dilation: Any = (1, 1),
        divisor: Any = None,
    ) -> Any:
        parts = _offsets(_pad2d(x, padding), kernel, stride, dilation)
        out = next(parts).copy(order="K")
        for part in parts:
            out += part
        if divisor is None:
            return out / (kernel[0] * kernel[1])
        return out / np.asarray(pool_divisor(divisor), out.dtype)

    def avg_pool2d_grad(
        self, g: Any, x_shape: tuple[int, ...], kernel: Any, stride: Any, padding: Any,
        dilation: Any = (1, 1), divisor: Any = None,
    ) -> Any:
        n, c, h, w = x_shape
        (top, bottom), (left, right) = padding
        if divisor is None:
            share = g / (kernel[0] * kernel[1])
        else:
            share = g / np.asarray(pool_divisor(divisor), g.dtype)
        if pool_windows_tile(kernel, stride, padding, dilation):
            (kh, kw), (p, q) = kernel, share.shape[2:]
            return _untile(np.broadcast_to(share[:, :, :, None, :, None], (n, c, p, kh, q, kw)),
                           x_shape)
        return _scatter_windows(lambda i, j: share, (n, c, h + top + bottom, w + left + right),
                                share.dtype, kernel, stride, dilation, padding, like=share)

    def scan(self, body: Any, carry: Any, xs: Any, unroll: bool = False) -> tuple[Any, Any]:
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
