"""Shape ops: reshape, transpose/permute, broadcast_to, concatenate, pad and indexing (primitives);
flatten, squeeze, unsqueeze, swapaxes, stack, split (composites)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ember import backend
from ember.function import Function
from ember.ops import register
from ember.tensor import Tensor


def _xp() -> Any:
    return backend.get().xp


def _varargs(args: tuple[Any, ...]) -> tuple[int, ...]:
    """Accept both ``f(2, 3)`` and ``f((2, 3))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _axis(axis: int, ndim: int, what: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"ember.{what}: axis {axis} is out of range for {ndim} dimensions")
    return axis % ndim


class Reshape(Function):
    op_name = "reshape"

    def forward(ctx, x, shape):
        ctx.shape = x.shape
        try:
            return x.reshape(shape)
        except (ValueError, TypeError):
            raise ValueError(f"ember.reshape: cannot reshape a tensor of shape {tuple(x.shape)} "
                             f"({x.size} elements) into shape {tuple(shape)}") from None

    def backward(ctx, g):
        return g.reshape(ctx.shape)


@register("reshape")
def reshape(x: Tensor, *shape: Any) -> Tensor:
    """The same elements in a new shape (one axis may be -1): ``x.reshape(2, 3)``.

    Example:
        >>> import ember
        >>> ember.arange(6).reshape(2, -1).shape
        (2, 3)
    """
    return Reshape.apply(x, _varargs(shape))


@register("flatten")
def flatten(x: Tensor, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes ``start_axis`` … ``end_axis`` into one (all axes by default).

    Example:
        >>> import ember
        >>> ember.zeros(2, 3, 4).flatten(1).shape
        (2, 12)
    """
    if x.ndim == 0:
        return Reshape.apply(x, (1,))
    s, e = _axis(start_axis, x.ndim, "flatten"), _axis(end_axis, x.ndim, "flatten")
    if s > e:
        raise ValueError(f"ember.flatten: start_axis {start_axis} comes after end_axis {end_axis}")
    return Reshape.apply(x, x.shape[:s] + (-1,) + x.shape[e + 1 :])


@register("squeeze")
def squeeze(x: Tensor, axis: int | tuple[int, ...] | None = None) -> Tensor:
    """Remove axes of size 1 (all of them, or those in ``axis``, which must have size 1).

    Example:
        >>> import ember
        >>> ember.zeros(1, 3, 1).squeeze().shape
        (3,)
    """
    if axis is None:
        return Reshape.apply(x, tuple(n for n in x.shape if n != 1))
    axes = {_axis(a, x.ndim, "squeeze") for a in (axis if isinstance(axis, tuple) else (axis,))}
    for a in sorted(axes):
        if x.shape[a] != 1:
            raise ValueError(f"ember.squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, "
                             f"not 1")
    return Reshape.apply(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


@register("unsqueeze")
def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert an axis of size 1 at ``axis``.

    Example:
        >>> import ember
        >>> ember.zeros(3).unsqueeze(0).shape
        (1, 3)
    """
    a = _axis(axis, x.ndim + 1, "unsqueeze")
    return Reshape.apply(x, x.shape[:a] + (1,) + x.shape[a:])


class Transpose(Function):
    op_name = "transpose"

    def forward(ctx, x, axes):
        ctx.inverse = tuple(sorted(range(len(axes)), key=lambda i: axes[i]))
        return _xp().transpose(x, axes)

    def backward(ctx, g):
        return _xp().transpose(g, ctx.inverse)


def _permutation(x: Tensor, axes: tuple[int, ...], what: str) -> tuple[int, ...]:
    norm = tuple(_axis(a, x.ndim, what) for a in axes)
    if sorted(norm) != list(range(x.ndim)):
        raise ValueError(f"ember.{what}: axes {axes} are not a permutation of the {x.ndim} axes "
                         f"of a tensor of shape {x.shape}")
    return norm


@register("transpose")
def transpose(x: Tensor, *axes: Any) -> Tensor:
    """Permute the axes (reverse them when none are given), as NumPy's ``transpose``.

    Example:
        >>> import ember
        >>> ember.zeros(2, 3, 4).transpose(2, 0, 1).shape
        (4, 2, 3)
    """
    perm = _varargs(axes) or tuple(reversed(range(x.ndim)))
    return Transpose.apply(x, _permutation(x, perm, "transpose"))


@register("permute")
def permute(x: Tensor, *axes: Any) -> Tensor:
    """Reorder the axes: ``x.permute(0, 2, 1)`` (PyTorch's name for ``transpose(axes)``).

    Example:
        >>> import ember
        >>> ember.zeros(2, 3, 4).permute(2, 0, 1).shape
        (4, 2, 3)
    """
    return Transpose.apply(x, _permutation(x, _varargs(axes), "permute"))


@register("swapaxes")
def swapaxes(x: Tensor, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes.

    Example:
        >>> import ember
        >>> ember.tensor([[1.0, 2.0]]).swapaxes(0, 1).tolist()
        [[1.0], [2.0]]
    """
    perm = list(range(x.ndim))
    a, b = _axis(axis1, x.ndim, "swapaxes"), _axis(axis2, x.ndim, "swapaxes")
    perm[a], perm[b] = perm[b], perm[a]
    return Transpose.apply(x, tuple(perm))


@register("broadcast_to")
class BroadcastTo(Function):
    """``x`` repeated along new or size-1 axes to ``shape``; the engine sums the gradient back.

    Example:
        >>> import ember
        >>> ember.broadcast_to(ember.ones(3), (2, 3)).shape
        (2, 3)
    """

    def forward(ctx, x, shape):
        try:
            return _xp().broadcast_to(x, tuple(shape))
        except (ValueError, TypeError):
            raise ValueError(f"ember.broadcast_to: cannot broadcast shape {tuple(x.shape)} to "
                             f"{tuple(shape)}") from None

    def backward(ctx, g):
        return g


class Concatenate(Function):
    op_name = "concatenate"

    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        ctx.sizes = [x.shape[axis] for x in xs]
        try:
            return _xp().concatenate(xs, axis=axis)
        except (ValueError, TypeError):
            shapes = ", ".join(str(tuple(x.shape)) for x in xs)
            raise ValueError(f"ember.concatenate: shapes {shapes} differ outside axis "
                             f"{axis}") from None

    def backward(ctx, g):
        out, start = [], 0
        index: list[Any] = [slice(None)] * g.ndim
        for n in ctx.sizes:
            index[ctx.axis] = slice(start, start + n)
            out.append(g[tuple(index)])
            start += n
        return tuple(out)


@register("concatenate", method=False)
def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis.

    Example:
        >>> import ember
        >>> ember.concatenate([ember.ones(2), ember.zeros(1)]).tolist()
        [1.0, 1.0, 0.0]
    """
    if not tensors:
        raise ValueError("ember.concatenate: needs at least one tensor")
    return Concatenate.apply(*tensors, axis=axis)


@register("cat", method=False)
def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """PyTorch's name for :func:`concatenate`: ``ember.cat([a, b], dim=1)``.

    Example:
        >>> import ember
        >>> ember.cat([ember.ones(1, 2), ember.zeros(1, 1)], dim=1).tolist()
        [[1.0, 1.0, 0.0]]
    """
    return concatenate(tensors, axis=axis)


@register("stack", method=False)
def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors of equal shape along a new axis.

    Example:
        >>> import ember
        >>> ember.stack([ember.ones(2), ember.zeros(2)], axis=1).shape
        (2, 2)
    """
    if not tensors:
        raise ValueError("ember.stack: needs at least one tensor")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"ember.stack: all tensors need the same shape, got "
                         f"{', '.join(str(tuple(t.shape)) for t in tensors)}")
    a = _axis(axis, tensors[0].ndim + 1, "stack")
    return concatenate([unsqueeze(t, a) for t in tensors], axis=a)


@register("split")
def split(x: Tensor, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """Split into equal sections (an int that divides the axis) or at the given indices (NumPy).

    Example:
        >>> import ember
        >>> [t.tolist() for t in ember.arange(5).split([2])]
        [[0, 1], [2, 3, 4]]
    """
    a = _axis(axis, x.ndim, "split")
    n = x.shape[a]
    if isinstance(indices_or_sections, int):
        if indices_or_sections <= 0 or n % indices_or_sections:
            raise ValueError(f"ember.split: axis {a} of size {n} does not split into "
                             f"{indices_or_sections} equal sections")
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0, *indices_or_sections, n]
    pieces = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        index = (slice(None),) * a + (slice(lo, hi),)
        pieces.append(x[index])  # type: ignore[index]
    return pieces


def _pad_pairs(pad_width: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    """NumPy's pad_width forms (n, (a, b), or one pair per axis) as one pair per axis."""
    if isinstance(pad_width, int):
        return ((pad_width, pad_width),) * ndim
    pw = tuple(pad_width)
    if len(pw) == 2 and all(isinstance(v, int) for v in pw):
        return ((pw[0], pw[1]),) * ndim
    if len(pw) == 1:
        return (tuple(pw[0]),) * ndim  # type: ignore[return-value]
    if len(pw) != ndim:
        raise ValueError(f"ember.pad: pad_width {pad_width} does not match {ndim} dimensions")
    return tuple((int(p[0]), int(p[1])) for p in pw)


@register("pad")
class Pad(Function):
    """Pad with a constant ``value``; ``pad_width`` as in NumPy (n, (before, after), or per axis).

    Example:
        >>> import ember
        >>> ember.pad(ember.ones(2), 1).tolist()
        [0.0, 1.0, 1.0, 0.0]
    """

    def forward(ctx, x, pad_width, value=0.0):
        pairs = _pad_pairs(pad_width, x.ndim)
        if any(p < 0 for pair in pairs for p in pair):
            raise ValueError(f"ember.pad: pad_width {pad_width} has a negative entry")
        ctx.index = tuple(slice(b, b + n) for (b, _), n in zip(pairs, x.shape))
        return _xp().pad(x, pairs, mode="constant", constant_values=value)

    def backward(ctx, g):
        return g[ctx.index]


def _index_arrays(index: Any) -> Any:
    """Replace tensors and lists inside an index by backend arrays."""
    if isinstance(index, tuple):
        return tuple(_index_arrays(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return backend.get().asarray(index)
    return index


@register("getitem", method=False, dunders=("__getitem__",))
class GetItem(Function):
    """``x[index]`` with ints, slices, None, Ellipsis, integer arrays and boolean masks; the
    gradient is scattered back, repeated indices accumulating.

    Example:
        >>> import ember
        >>> x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
        >>> x[[0, 0, 2]].sum().backward()
        >>> x.grad.tolist()
        [2.0, 0.0, 1.0]
    """

    def forward(ctx, x, index):
        index = _index_arrays(index)
        ctx.index = index
        ctx.shape = x.shape
        try:
            return x[index]
        except IndexError as e:
            raise IndexError(f"ember.getitem: index {index!r} does not fit a tensor of shape "
                             f"{tuple(x.shape)}: {e}") from None

    def backward(ctx, g):
        return backend.get().index_add(ctx.shape, g.dtype, ctx.index, g)
