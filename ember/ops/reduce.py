"""Reductions: sum, mean, max, min, var, std (differentiable) and argmax, argmin (not).

``axis`` is an int, a tuple of ints or None (all axes); ``keepdims`` keeps reduced axes as size 1.
"""

from __future__ import annotations

import math
from typing import Any

from ember import backend
from ember.function import Function
from ember.ops import register
from ember.tensor import Tensor


def _xp() -> Any:
    return backend.get().xp


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` as a tuple of non-negative ints (all axes for None)."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    return tuple(out)


class _Reduction(Function):
    def _setup(ctx, x, axis, keepdims):
        ctx.axes = _axes(axis, x.ndim)
        ctx.keepdims = keepdims
        ctx.shape = x.shape
        return ctx.axes if axis is not None else None

    def _expand(ctx, g):
        """Put the reduced axes back into ``g`` so that it broadcasts against the input."""
        if not ctx.keepdims and ctx.axes and len(ctx.shape):
            g = _xp().expand_dims(g, ctx.axes)
        return g


@register("sum")
class Sum(_Reduction):
    """Sum over ``axis`` (all axes by default).

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 2.0], [3.0, 4.0]]).sum(axis=0).tolist()
        [4.0, 6.0]
    """

    def forward(ctx, x, axis=None, keepdims=False):
        return _xp().sum(x, axis=ctx._setup(x, axis, keepdims), keepdims=keepdims)

    def backward(ctx, g):
        if not ctx.keepdims and len(ctx.axes) == len(ctx.shape):
            # a full reduction: a contiguous array, which the next matmul reads faster than a
            # zero-stride broadcast view
            return _xp().full(ctx.shape, g, dtype=g.dtype)
        return _xp().broadcast_to(ctx._expand(g), ctx.shape)


@register("mean")
class Mean(_Reduction):
    """Mean over ``axis`` (all axes by default).

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 5.0], [3.0, 4.0]]).mean(axis=0).tolist()
        [2.0, 4.5]
    """

    def forward(ctx, x, axis=None, keepdims=False):
        return _xp().mean(x, axis=ctx._setup(x, axis, keepdims), keepdims=keepdims)

    def backward(ctx, g):
        count = math.prod(ctx.shape[a] for a in ctx.axes)
        return _xp().broadcast_to(ctx._expand(g) / count, ctx.shape)


class _Extremum(_Reduction):
    """max / min: where several elements tie for the extremum, they share the gradient equally."""

    def _reduce(ctx, x, axis, keepdims, fn):
        axes = ctx._setup(x, axis, keepdims)
        out = fn(x, axis=axes, keepdims=True)
        ctx.save_for_backward(x == out)
        return out if keepdims else _xp().squeeze(out, axis=axes)

    def backward(ctx, g):
        xp = _xp()
        (hit,) = ctx.saved_tensors
        g = ctx._expand(g)
        count = xp.sum(hit, axis=ctx.axes, keepdims=True)
        return xp.where(hit, g / count, 0)


@register("max")
class Max(_Extremum):
    """Maximum over ``axis`` (all axes by default).

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 5.0], [3.0, 4.0]]).max(axis=1).tolist()
        [5.0, 4.0]
    """

    def forward(ctx, x, axis=None, keepdims=False):
        return ctx._reduce(x, axis, keepdims, _xp().max)


@register("min")
class Min(_Extremum):
    """Minimum over ``axis`` (all axes by default).

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 5.0], [3.0, 4.0]]).min(axis=1).tolist()
        [1.0, 3.0]
    """

    def forward(ctx, x, axis=None, keepdims=False):
        return ctx._reduce(x, axis, keepdims, _xp().min)


@register("var")
def var(x: Tensor, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over ``axis``, dividing by ``n - ddof`` (NumPy's default ``ddof=0``; PyTorch's
    ``unbiased=True`` is ``ddof=1``).

    Example:
        >>> import ember
        >>> ember.tensor([1.0, 2.0, 3.0, 4.0]).var().item()
        1.25
    """
    n = math.prod(x.shape[a] for a in _axes(axis, x.ndim))
    centered = x - x.mean(axis=axis, keepdims=True)  # type: ignore[attr-defined]
    return (centered * centered).sum(axis=axis, keepdims=keepdims) / (n - ddof)  # type: ignore


@register("std")
def std(x: Tensor, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Standard deviation over ``axis`` (``sqrt(var)``, same ``ddof`` convention).

    Example:
        >>> import ember
        >>> ember.tensor([1.0, 3.0]).std().item()
        1.0
    """
    return var(x, axis=axis, keepdims=keepdims, ddof=ddof).sqrt()  # type: ignore[attr-defined]


def _arg(x: Any, axis: Any, keepdims: bool, fn: Any) -> Tensor:
    data = x.data if isinstance(x, Tensor) else backend.get().asarray(x)
    return Tensor._make(fn(data, axis=axis, keepdims=keepdims), False, None)


@register("argmax", differentiable=False)
def argmax(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the maximum along ``axis`` (of the flattened tensor by default); no gradient.

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 5.0], [4.0, 3.0]]).argmax(axis=1).tolist()
        [1, 0]
    """
    return _arg(x, axis, keepdims, _xp().argmax)


@register("argmin", differentiable=False)
def argmin(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the minimum along ``axis`` (of the flattened tensor by default); no gradient.

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 5.0], [4.0, 3.0]]).argmin(axis=1).tolist()
        [0, 1]
    """
    return _arg(x, axis, keepdims, _xp().argmin)
