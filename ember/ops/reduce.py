"""Reductions: sum, mean, max, min, var, std (differentiable) and argmax, argmin (not).

``axis`` is an int, a tuple of ints or None (all axes); ``keepdims`` keeps reduced axes as size 1.
``max`` / ``min`` called with PyTorch's ``dim=`` return ``(values, indices)`` as PyTorch does.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

from ember import backend
from ember.function import Function
from ember.ops import register
from ember.tensor import Tensor


def _xp() -> Any:
    return backend.get().xp


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def normalize_axes(axis: Any, ndim: int, op: str) -> tuple[int, ...]:
    """``axis`` (an int, a tuple of ints or None for all axes) as a tuple of non-negative ints.

    The one axis rule of every op with an axis, as PyTorch: an axis in [-ndim, ndim), and a 0-d
    tensor accepts axis 0 and -1 and treats them as no axis at all. ``op`` names the op in errors.

    Example:
        >>> from ember.ops.reduce import normalize_axes
        >>> normalize_axes(-1, 3, "sum"), normalize_axes(None, 2, "sum")
        ((2,), (0, 1))
        >>> normalize_axes(0, 0, "sum")  # a 0-d tensor: axis 0 and -1 name no axis
        ()
    """
    if axis is None:
        return tuple(range(ndim))
    items = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if not all(_is_int(a) for a in items):
        raise TypeError(f"ember.{op}: axis must be an int, a tuple of ints or None, got {axis!r}")
    out: list[int] = []
    for a in items:
        a = int(a)
        if not -max(ndim, 1) <= a < max(ndim, 1):
            what = "a 0-d tensor (only 0 and -1 are" if ndim == 0 else (
                f"a tensor of {ndim} dimensions (valid axes are")
            end = " allowed)" if ndim == 0 else f" {-ndim} to {ndim - 1})"
            raise ValueError(f"ember.{op}: axis {a} is out of range for {what}{end}")
        if ndim and a % ndim in out:
            raise ValueError(f"ember.{op}: axis {a} is repeated in {axis!r}")
        if ndim:
            out.append(a % ndim)
    return tuple(out)


def normalize_axis(axis: Any, ndim: int, op: str, allow_none: bool = False) -> int | None:
    """One ``axis`` (an int; None too with ``allow_none``) as a non-negative int, by the rule of
    :func:`normalize_axes`; a 0-d tensor gives None (no axis).

    Example:
        >>> from ember.ops.reduce import normalize_axis
        >>> normalize_axis(-1, 2, "softmax"), normalize_axis(0, 0, "softmax")
        (1, None)
    """
    if axis is None and allow_none:
        return None
    if not _is_int(axis):
        need = "an int or None" if allow_none else "an int"
        raise TypeError(f"ember.{op}: axis must be {need}, got {axis!r}")
    axes = normalize_axes(axis, ndim, op)
    return axes[0] if axes else None


def _check_not_empty(op: str, shape: tuple[int, ...], axes: tuple[int, ...]) -> None:
    """max, min, argmax and argmin have no value over zero elements (no identity element)."""
    if any(shape[a] == 0 for a in axes) or (not axes and 0 in shape):
        raise ValueError(f"ember.{op}: cannot reduce an empty tensor (shape {tuple(shape)}) "
                         f"over axis {axes if len(axes) != 1 else axes[0]}: {op} of zero elements "
                         f"has no value; check the tensor's size first")


class _Reduction(Function):
    def _setup(ctx, x, axis, keepdims):
        ctx.axes = normalize_axes(axis, x.ndim, ctx.op_name)
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
        _check_not_empty(ctx.op_name, x.shape, ctx.axes)
        out = fn(x, axis=axes, keepdims=True)
        ctx.save_for_backward(x == out)
        return out if keepdims else _xp().squeeze(out, axis=axes)

    def backward(ctx, g):
        xp = _xp()
        (hit,) = ctx.saved_tensors
        g = ctx._expand(g)
        count = xp.sum(hit, axis=ctx.axes, keepdims=True)
        return xp.where(hit, g / count, 0)


class ValuesIndices(NamedTuple):
    """``(values, indices)``: what ``max(dim=)`` and ``min(dim=)`` return, as PyTorch's
    ``torch.return_types.max``.

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 5.0], [3.0, 4.0]]).max(dim=1).indices.tolist()
        [1, 1]
    """

    values: Tensor
    indices: Tensor


def _with_indices(op: str) -> Any:
    """PyTorch's ``max(x, dim, keepdim=False)``: the values (the gradient goes to the returned
    index, as PyTorch) and their indices (the first one where several tie)."""

    def reduce(x: Tensor, axis: Any = None, keepdims: bool = False) -> ValuesIndices:
        from ember.ops.index import TakeAlongAxis  # a sibling op family, imported after this one

        if not _is_int(axis):
            raise TypeError(f"ember.{op}: dim must be an int (PyTorch's {op}(x, dim) returns "
                            f"values and indices), got dim={axis!r}; use axis= for a tuple of "
                            f"axes or None")
        a = normalize_axis(axis, x.ndim, op)
        if x.ndim == 0:  # the 0-d rule: the one element, at index 0
            first = _xp().zeros(1, dtype=backend.default_int)
            return ValuesIndices(TakeAlongAxis.apply(x.reshape(1), first, 0).reshape(()),
                                 _arg(x, 0, False, None, op))
        _check_not_empty(op, x.shape, (a,))
        idx = _arg(x, a, True, getattr(_xp(), "arg" + op), op)
        values = TakeAlongAxis.apply(x, idx.data, a)
        if not keepdims:
            values, idx = values.squeeze(a), idx.squeeze(a)  # type: ignore[attr-defined]
        return ValuesIndices(values, idx)

    return reduce


@register("max", on_dim=_with_indices("max"))
class Max(_Extremum):
    """Maximum over ``axis`` (all axes by default); with PyTorch's ``dim=`` (one int), the
    pair ``(values, indices)`` as ``torch.max(x, dim)`` (``axis=`` keeps NumPy's behaviour).

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 5.0], [3.0, 4.0]]).max(axis=1).tolist()
        [5.0, 4.0]
        >>> values, indices = ember.tensor([[1.0, 5.0], [3.0, 4.0]]).max(dim=1)
        >>> values.tolist(), indices.tolist()
        ([5.0, 4.0], [1, 1])
    """

    def forward(ctx, x, axis=None, keepdims=False):
        return ctx._reduce(x, axis, keepdims, _xp().max)


@register("min", on_dim=_with_indices("min"))
class Min(_Extremum):
    """Minimum over ``axis`` (all axes by default); with PyTorch's ``dim=`` (one int), the
    pair ``(values, indices)`` as ``torch.min(x, dim)``.

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 5.0], [3.0, 4.0]]).min(axis=1).tolist()
        [1.0, 3.0]
        >>> ember.tensor([[1.0, 5.0], [3.0, 4.0]]).min(dim=0).indices.tolist()
        [0, 1]
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
    return _var(x, axis, keepdims, ddof, "var")


def _var(x: Tensor, axis: Any, keepdims: bool, ddof: Any, op: str) -> Tensor:
    n = math.prod(x.shape[a] for a in normalize_axes(axis, x.ndim, op))
    if not _is_int(ddof) or ddof < 0:
        raise ValueError(f"ember.{op}: ddof must be a non-negative int, got {ddof!r}")
    if ddof >= n:
        raise ValueError(f"ember.{op}: ddof={ddof} leaves no degrees of freedom: {n} element(s) "
                         f"per reduction, divided by n - ddof = {n - ddof}; ddof must be less "
                         f"than {n}")
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
    return _var(x, axis, keepdims, ddof, "std").sqrt()  # type: ignore[attr-defined]


def _arg(x: Any, axis: Any, keepdims: bool, fn: Any, op: str) -> Tensor:
    data = x.data if isinstance(x, Tensor) else backend.get().asarray(x)
    a = normalize_axis(axis, data.ndim, op, allow_none=True)
    _check_not_empty(op, data.shape, tuple(range(data.ndim)) if a is None else (a,))
    if data.ndim == 0:  # the 0-d rule: the one element is at index 0
        return Tensor._make(_xp().zeros((), dtype=backend.default_int), False, None)
    return Tensor._make(fn(data, axis=a, keepdims=keepdims), False, None)


@register("argmax", differentiable=False)
def argmax(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the maximum along ``axis`` (of the flattened tensor by default); no gradient.

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 5.0], [4.0, 3.0]]).argmax(axis=1).tolist()
        [1, 0]
    """
    return _arg(x, axis, keepdims, _xp().argmax, "argmax")


@register("argmin", differentiable=False)
def argmin(x: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the minimum along ``axis`` (of the flattened tensor by default); no gradient.

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 5.0], [4.0, 3.0]]).argmin(axis=1).tolist()
        [0, 1]
    """
    return _arg(x, axis, keepdims, _xp().argmin, "argmin")
