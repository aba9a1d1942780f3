"""Index ops for sequence models: take_along_axis / gather, embedding, one_hot, masked_fill,
tril / triu, cumsum, sort / argsort / topk.

The gradient of every lookup is a scatter-add through the backend's ``index_add`` kernel, so
repeated indices accumulate and the cost is proportional to the elements looked up.
"""

from __future__ import annotations

from typing import Any

from ember import backend
from ember.function import Function
from ember.ops import register
from ember.tensor import Tensor, as_array


def _xp() -> Any:
    return backend.get().xp


def _axis(axis: int, ndim: int, what: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"ember.{what}: axis {axis} is out of range for {ndim} dimensions")
    return axis % ndim


def _indices(idx: Any, what: str) -> Any:
    """``idx`` (Tensor, array, list) as an integer backend array."""
    data = idx.data if isinstance(idx, Tensor) else as_array(idx)
    if data.dtype.kind not in "iu":
        raise TypeError(f"ember.{what}: indices must be integers, got dtype {data.dtype}")
    return data


def _along(idx: Any, axis: int, x_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple:
    """The full integer index that picks ``idx`` along ``axis`` of an ``x_shape`` array (an open
    grid elsewhere; size-1 axes of ``x`` broadcast)."""
    xp = _xp()
    grid = []
    for d, n in enumerate(out_shape):
        if d == axis:
            grid.append(idx)
            continue
        shape = [1] * len(out_shape)
        shape[d] = n
        pos = xp.arange(n) if x_shape[d] == n else xp.zeros(n, dtype=idx.dtype)
        grid.append(pos.reshape(shape))
    return tuple(grid)


class TakeAlongAxis(Function):
    op_name = "take_along_axis"

    def forward(ctx, x, idx, axis):
        xp = _xp()
        ctx.shape, ctx.axis = x.shape, axis
        ctx.save_for_backward(idx)
        return xp.take_along_axis(x, idx, axis=axis)

    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        index = _along(idx, ctx.axis, ctx.shape, g.shape)
        return backend.get().index_add(ctx.shape, g.dtype, index, g)


@register("take_along_axis")
def take_along_axis(x: Tensor, indices: Any, axis: int) -> Tensor:
    """Pick values along ``axis`` at ``indices`` (NumPy's ``take_along_axis``); the gradient is
    scattered back, repeated indices accumulating.

    Example:
        >>> import ember
        >>> x = ember.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        >>> x.take_along_axis(ember.tensor([[2, 2], [0, 1]]), axis=1).tolist()
        [[3.0, 3.0], [4.0, 5.0]]
    """
    idx = _indices(indices, "take_along_axis")
    if idx.ndim != x.ndim:
        raise ValueError(f"ember.take_along_axis: indices of shape {tuple(idx.shape)} need as many "
                         f"dimensions as x of shape {x.shape}")
    a = _axis(axis, x.ndim, "take_along_axis")
    return TakeAlongAxis.apply(x, idx, a)


@register("gather")
def gather(x: Tensor, dim: int, index: Any) -> Tensor:
    """PyTorch's ``gather``: ``out[i][j] = x[index[i][j]][j]`` for ``dim=0``; ``index`` may be
    smaller than ``x`` along the other axes. Same as :func:`take_along_axis` (argument order
    ``x, dim, index``).

    Example:
        >>> import ember
        >>> x = ember.tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> x.gather(1, ember.tensor([[0, 0], [1, 0]])).tolist()
        [[1.0, 1.0], [4.0, 3.0]]
    """
    idx = _indices(index, "gather")
    a = _axis(dim, x.ndim, "gather")
    if idx.ndim != x.ndim or any(i > n for d, (i, n) in enumerate(zip(idx.shape, x.shape))
                                 if d != a):
        raise ValueError(f"ember.gather: index of shape {tuple(idx.shape)} must have the "
                         f"dimensions of x {x.shape} and be no larger outside dim {a}")
    if any(i != n for d, (i, n) in enumerate(zip(idx.shape, x.shape)) if d != a):
        x = x[tuple(slice(0, i) if d != a else slice(None) for d, i in enumerate(idx.shape))]
    return TakeAlongAxis.apply(x, idx, a)


@register("embedding", method=False)
class Embedding(Function):
    """Rows of ``weight`` (V, D) at integer ``indices`` (...) -> (..., D). The weight's gradient
    is a scatter-add of the output gradient into the looked-up rows (cost O(tokens * D), never a
    one-hot matmul); rows at ``padding_idx`` get no gradient.

    Example:
        >>> import ember
        >>> w = ember.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], requires_grad=True)
        >>> out = ember.embedding(ember.tensor([2, 0, 2]), w)
        >>> out.tolist()
        [[4.0, 5.0], [0.0, 1.0], [4.0, 5.0]]
        >>> out.sum().backward()
        >>> w.grad.tolist()
        [[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]]
    """

    def forward(ctx, indices, weight, padding_idx=None):
        xp = _xp()
        if indices.dtype.kind not in "iu":
            raise TypeError(f"ember.embedding: indices must be integers, got dtype "
                            f"{indices.dtype}")
        ctx.shape, ctx.padding_idx = weight.shape, padding_idx
        ctx.save_for_backward(indices)
        return xp.take(weight, indices, axis=0)

    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        if ctx.padding_idx is not None:
            g = _xp().where((idx == ctx.padding_idx % ctx.shape[0])[..., None], 0, g)
        return None, backend.get().index_add(ctx.shape, g.dtype, idx, g)


@register("one_hot", differentiable=False)
def one_hot(indices: Any, num_classes: int = -1, dtype: Any = None) -> Tensor:
    """``out[..., c] = (indices[...] == c)`` with a new last axis of ``num_classes`` (the largest
    index + 1 when -1, as PyTorch); int64 by default, any ``dtype`` on request. No gradient.

    Example:
        >>> import ember
        >>> ember.one_hot(ember.tensor([0, 2]), 3).tolist()
        [[1, 0, 0], [0, 0, 1]]
    """
    xp = _xp()
    idx = _indices(indices, "one_hot")
    if num_classes < 0:
        if backend.is_traced(idx):
            raise ValueError("ember.one_hot: num_classes=-1 needs the index values, unknown "
                             "inside ember.jit; pass num_classes")
        num_classes = int(backend.get().to_numpy(idx).max()) + 1
    out = idx[..., None] == xp.arange(num_classes, dtype=idx.dtype)
    return Tensor._make(out.astype(backend.as_dtype(dtype or backend.int64)), False, None)


@register("masked_fill")
class MaskedFill(Function):
    """``value`` where the boolean ``mask`` is True (broadcast against ``x``), ``x`` elsewhere; no
    gradient flows to the filled places.

    Example:
        >>> import ember
        >>> x = ember.tensor([1.0, 2.0, 3.0])
        >>> x.masked_fill(ember.tensor([True, False, True]), -1.0).tolist()
        [-1.0, 2.0, -1.0]
    """

    broadcasts = True

    def forward(ctx, x, mask, value):
        xp = _xp()
        if mask.dtype.kind != "b":
            raise TypeError(f"ember.masked_fill: mask must be boolean, got dtype {mask.dtype}")
        ctx.save_for_backward(mask)
        return xp.where(mask, xp.asarray(value, dtype=x.dtype), x)

    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return _xp().where(mask, 0, g), None, None


class _Triangle(Function):
    def forward(ctx, x, k=0):
        if x.ndim < 2:
            raise ValueError(f"ember.{ctx.op_name}: needs at least 2 dimensions, got shape "
                             f"{tuple(x.shape)}")
        ctx.k = k
        return getattr(_xp(), ctx.op_name)(x, k)

    def backward(ctx, g):
        return getattr(_xp(), ctx.op_name)(g, ctx.k)


@register("tril")
class Tril(_Triangle):
    """The lower triangle of the last two axes: elements on and below diagonal ``k`` (PyTorch's
    ``diagonal``), zeros above.

    Example:
        >>> import ember
        >>> ember.ones(3, 3).tril().tolist()
        [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    """


@register("triu")
class Triu(_Triangle):
    """The upper triangle of the last two axes: elements on and above diagonal ``k``.

    Example:
        >>> import ember
        >>> ember.ones(2, 3).triu(1).tolist()
        [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]
    """


@register("cumsum")
class Cumsum(Function):
    """Running sum along ``axis`` (of the flattened tensor when None, as NumPy).

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 2.0], [3.0, 4.0]]).cumsum(axis=1).tolist()
        [[1.0, 3.0], [3.0, 7.0]]
    """

    def forward(ctx, x, axis=None):
        ctx.shape = x.shape
        if axis is None:
            x, axis = x.reshape(-1), 0
        ctx.axis = _axis(axis, x.ndim, "cumsum")
        return _xp().cumsum(x, axis=ctx.axis)

    def backward(ctx, g):
        xp = _xp()  # reversed running sum: d out_j / d x_i = 1 for j >= i
        rev = xp.flip(xp.cumsum(xp.flip(g, ctx.axis), axis=ctx.axis), ctx.axis)
        return rev.reshape(ctx.shape)


def _order(x: Tensor, axis: int, descending: bool, stable: bool = True) -> Any:
    xp = _xp()
    data = -x.data if descending else x.data  # negating keeps ties in their original order
    return xp.argsort(data, axis=axis, stable=True) if stable else xp.argsort(data, axis=axis)


@register("argsort", differentiable=False)
def argsort(x: Tensor, axis: int = -1, descending: bool = False) -> Tensor:
    """Indices that sort ``x`` along ``axis`` (stable: ties keep their order); no gradient.

    Example:
        >>> import ember
        >>> ember.tensor([3.0, 1.0, 2.0]).argsort().tolist()
        [1, 2, 0]
    """
    x = x if isinstance(x, Tensor) else Tensor._make(as_array(x), False, None)
    a = _axis(axis, x.ndim, "argsort")
    return Tensor._make(_order(x, a, descending), False, None)


@register("sort")
def sort(x: Tensor, axis: int = -1, descending: bool = False) -> tuple[Tensor, Tensor]:
    """``(values, indices)`` sorted along ``axis``, as PyTorch; the values' gradient is
    scattered back to where each came from.

    Example:
        >>> import ember
        >>> values, indices = ember.tensor([3.0, 1.0, 2.0]).sort(descending=True)
        >>> values.tolist(), indices.tolist()
        ([3.0, 2.0, 1.0], [0, 2, 1])
    """
    a = _axis(axis, x.ndim, "sort")
    idx = _order(x, a, descending)
    return TakeAlongAxis.apply(x, idx, a), Tensor._make(idx, False, None)


@register("topk")
def topk(x: Tensor, k: int, axis: int = -1, largest: bool = True,
         sorted: bool = True) -> tuple[Tensor, Tensor]:  # noqa: A002 - PyTorch's name
    """``(values, indices)`` of the ``k`` largest (or smallest) elements along ``axis``, largest
    first; the values' gradient is scattered back.

    Example:
        >>> import ember
        >>> values, indices = ember.tensor([1.0, 4.0, 2.0, 3.0]).topk(2)
        >>> values.tolist(), indices.tolist()
        ([4.0, 3.0], [1, 3])
    """
    xp = _xp()
    a = _axis(axis, x.ndim, "topk")
    n = x.shape[a]
    if not 0 < k <= n:
        raise ValueError(f"ember.topk: k={k} must be in [1, {n}] for axis {a} of shape {x.shape}")
    data = -x.data if largest else x.data
    if k < n:  # a partial sort first: O(n) to find the k, then sort only those
        part = xp.take(xp.argpartition(data, k - 1, axis=a), xp.arange(k), axis=a)
        if sorted:
            inner = xp.argsort(xp.take_along_axis(data, part, axis=a), axis=a, stable=True)
            part = xp.take_along_axis(part, inner, axis=a)
        idx = part
    else:
        idx = xp.argsort(data, axis=a, stable=True)
    return TakeAlongAxis.apply(x, idx, a), Tensor._make(idx, False, None)
