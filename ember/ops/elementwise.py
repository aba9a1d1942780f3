"""Elementwise arithmetic and math: + - * / **, neg, exp, log, sqrt, abs, maximum, minimum, clip,
where, erf, astype.

Binary ops broadcast like NumPy; their backward returns gradients in the broadcast shape and the
engine reduces them to each input's shape.
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


@register("add", dunders=("__add__",), rdunders=("__radd__",))
class Add(Function):
    """``a + b``, broadcasting.

    Example:
        >>> import ember
        >>> (ember.tensor([1.0, 2.0]) + 1).tolist()
        [2.0, 3.0]
    """

    broadcasts = True

    def forward(ctx, a, b):
        return a + b

    def backward(ctx, g):
        return g, g


@register("sub", dunders=("__sub__",), rdunders=("__rsub__",))
class Sub(Function):
    """``a - b``, broadcasting.

    Example:
        >>> import ember
        >>> (ember.tensor([3.0, 5.0]) - 1).tolist()
        [2.0, 4.0]
    """

    broadcasts = True

    def forward(ctx, a, b):
        return a - b

    def backward(ctx, g):
        return g, -g if ctx.needs_input_grad[1] else None


@register("mul", dunders=("__mul__",), rdunders=("__rmul__",))
class Mul(Function):
    """``a * b``, broadcasting.

    Example:
        >>> import ember
        >>> (ember.tensor([1.0, 2.0]) * ember.tensor([3.0, 4.0])).tolist()
        [3.0, 8.0]
    """

    broadcasts = True

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


@register("div", dunders=("__truediv__",), rdunders=("__rtruediv__",))
class Div(Function):
    """``a / b``, broadcasting.

    Example:
        >>> import ember
        >>> (ember.tensor([1.0, 3.0]) / 2).tolist()
        [0.5, 1.5]
    """

    broadcasts = True

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = g / b if need_a else None
        gb = -g * a / (b * b) if need_b else None
        return ga, gb


@register("pow", dunders=("__pow__",), rdunders=("__rpow__",))
class Pow(Function):
    """``a ** b``, broadcasting; the exponent may be a tensor or a number.

    Example:
        >>> import ember
        >>> (ember.tensor([2.0, 3.0]) ** 2).tolist()
        [4.0, 9.0]
    """

    broadcasts = True

    def forward(ctx, a, b):
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        ga = g * b * a ** (b - 1) if need_a else None
        gb = None
        if need_b:  # d(a^b)/db = a^b log a, taken as 0 where a == 0 (as JAX and PyTorch do)
            xp = _xp()
            safe = xp.where(a > 0, a, 1)
            gb = g * out * xp.log(safe)
        return ga, gb


@register("neg", dunders=("__neg__",))
class Neg(Function):
    """``-x``.

    Example:
        >>> import ember
        >>> (-ember.tensor([1.0, -2.0])).tolist()
        [-1.0, 2.0]
    """

    def forward(ctx, x):
        return -x

    def backward(ctx, g):
        return -g


@register("exp")
class Exp(Function):
    """``e ** x``, elementwise.

    Example:
        >>> import ember
        >>> round(ember.exp(ember.tensor(0.0)).item(), 6)
        1.0
    """

    def forward(ctx, x):
        out = _xp().exp(x)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


@register("log")
class Log(Function):
    """Natural logarithm, elementwise.

    Example:
        >>> import ember
        >>> ember.log(ember.tensor([1.0])).tolist()
        [0.0]
    """

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _xp().log(x)

    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / x


@register("sqrt")
class Sqrt(Function):
    """Square root, elementwise.

    Example:
        >>> import ember
        >>> ember.sqrt(ember.tensor([4.0, 9.0])).tolist()
        [2.0, 3.0]
    """

    def forward(ctx, x):
        out = _xp().sqrt(x)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g / (2 * out)


@register("abs", dunders=("__abs__",))
class Abs(Function):
    """Absolute value; its gradient at 0 is 0.

    Example:
        >>> import ember
        >>> abs(ember.tensor([-1.5, 2.0])).tolist()
        [1.5, 2.0]
    """

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _xp().abs(x)

    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * _xp().sign(x)


@register("maximum")
class Maximum(Function):
    """Elementwise maximum of ``a`` and ``b``; where they tie, each gets half the gradient.

    Example:
        >>> import ember
        >>> ember.maximum(ember.tensor([1.0, 4.0]), ember.tensor([3.0, 2.0])).tolist()
        [3.0, 4.0]
    """

    broadcasts = True

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _xp().maximum(a, b)

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        xp = _xp()
        half = xp.where(a == b, 0.5 * g, 0)
        return xp.where(a > b, g, half), xp.where(a < b, g, half)


@register("minimum")
class Minimum(Function):
    """Elementwise minimum of ``a`` and ``b``; where they tie, each gets half the gradient.

    Example:
        >>> import ember
        >>> ember.minimum(ember.tensor([1.0, 4.0]), ember.tensor([3.0, 2.0])).tolist()
        [1.0, 2.0]
    """

    broadcasts = True

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _xp().minimum(a, b)

    def backward(ctx, g):
        a, b = ctx.saved_tensors
        xp = _xp()
        half = xp.where(a == b, 0.5 * g, 0)
        return xp.where(a < b, g, half), xp.where(a > b, g, half)


@register("clip")
class Clip(Function):
    """Limit values to [min, max] (either may be None); the gradient passes where min <= x <= max.

    Example:
        >>> import ember
        >>> ember.clip(ember.tensor([-2.0, 0.5, 3.0]), -1.0, 1.0).tolist()
        [-1.0, 0.5, 1.0]
    """

    def forward(ctx, x, min=None, max=None):  # noqa: A002 - PyTorch's and NumPy's names
        if min is None and max is None:
            raise ValueError("ember.clip: give at least one of min and max")
        ctx.save_for_backward(x)
        ctx.bounds = (min, max)
        return _xp().clip(x, min, max)

    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        keep = True
        if lo is not None:
            keep = x >= lo
        if hi is not None:
            keep = keep & (x <= hi)
        return _xp().where(keep, g, 0)


@register("clamp")
def clamp(x: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 - PyTorch's names
    """PyTorch's name for :func:`clip`: limit values to [min, max].

    Example:
        >>> import ember
        >>> ember.tensor([-2.0, 0.5, 3.0]).clamp(min=0.0).tolist()
        [0.0, 0.5, 3.0]
    """
    return Clip.apply(x, min, max)


@register("where", method=False)
class Where(Function):
    """``a`` where ``cond`` is true, else ``b`` (broadcasting); ``cond`` gets no gradient.

    Example:
        >>> import ember
        >>> x = ember.tensor([-1.0, 2.0])
        >>> ember.where(x > 0, x, 0.0).tolist()
        [0.0, 2.0]
    """

    broadcasts = True

    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return _xp().where(cond, a, b)

    def backward(ctx, g):
        (cond,) = ctx.saved_tensors
        xp = _xp()
        return None, xp.where(cond, g, 0), xp.where(cond, 0, g)


@register("erf")
class Erf(Function):
    """The error function, elementwise.

    Example:
        >>> import ember
        >>> round(ember.erf(ember.tensor(1.0)).item(), 4)
        0.8427
    """

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.get().erf(x)

    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (2 / math.sqrt(math.pi)) * _xp().exp(-x * x)


@register("astype")
class AsType(Function):
    """The tensor converted to ``dtype``; gradients flow back converted to the input's dtype.

    Example:
        >>> import ember
        >>> ember.tensor([1.5]).astype("float64").dtype
        dtype('float64')
    """

    def forward(ctx, x, dtype):
        return x.astype(backend.as_dtype(dtype))

    def backward(ctx, g):
        return g  # the engine casts it to the input's dtype


@register("sin")
class Sin(Function):
    """Sine, elementwise.

    Example:
        >>> import ember
        >>> ember.sin(ember.tensor([0.0])).tolist()
        [0.0]
    """

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _xp().sin(x)

    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * _xp().cos(x)


@register("cos")
class Cos(Function):
    """Cosine, elementwise.

    Example:
        >>> import ember
        >>> ember.cos(ember.tensor([0.0])).tolist()
        [1.0]
    """

    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _xp().cos(x)

    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return -g * _xp().sin(x)
