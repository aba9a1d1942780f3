"""Activations and the normalising ops: relu, leaky_relu, sigmoid, tanh, softplus, gelu, softmax,
log_softmax, logsumexp, layer_norm.

Every one is finite for large inputs (logits of +-1e4, sigmoid of +-1e3): sigmoid and softplus use
exp(-|x|), the softmax family subtracts the maximum first.
"""

from __future__ import annotations

import math
from typing import Any

from ember import backend
from ember.function import Function
from ember.ops import register
from ember.ops.reduce import normalize_axes, normalize_axis
from ember.tensor import Tensor


def _xp() -> Any:
    return backend.get().xp


@register("relu")
class Relu(Function):
    """``max(x, 0)``; its gradient at 0 is 0.

    Example:
        >>> import ember
        >>> ember.relu(ember.tensor([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """

    def forward(ctx, x):
        ctx.save_for_backward(x > 0)
        return _xp().maximum(x, 0)

    def backward(ctx, g):
        (positive,) = ctx.saved_tensors
        return g * positive


@register("leaky_relu")
class LeakyRelu(Function):
    """``x`` where positive, ``alpha * x`` elsewhere.

    Example:
        >>> import ember
        >>> ember.leaky_relu(ember.tensor([-1.0, 2.0]), 0.5).tolist()
        [-0.5, 2.0]
    """

    def forward(ctx, x, alpha=0.01):
        positive = x > 0
        ctx.save_for_backward(positive)
        ctx.alpha = alpha
        return _xp().where(positive, x, alpha * x)

    def backward(ctx, g):
        (positive,) = ctx.saved_tensors
        return _xp().where(positive, g, ctx.alpha * g)


@register("sigmoid")
class Sigmoid(Function):
    """``1 / (1 + exp(-x))``, computed from exp(-|x|) so that it never overflows.

    Example:
        >>> import ember
        >>> ember.sigmoid(ember.tensor([0.0, 1000.0])).tolist()
        [0.5, 1.0]
    """

    def forward(ctx, x):
        xp = _xp()
        e = xp.exp(-xp.abs(x))
        out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out * (1 - out)


@register("tanh")
class Tanh(Function):
    """Hyperbolic tangent.

    Example:
        >>> import ember
        >>> ember.tanh(ember.tensor([0.0])).tolist()
        [0.0]
    """

    def forward(ctx, x):
        out = _xp().tanh(x)
        ctx.save_for_backward(out)
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (1 - out * out)


@register("softplus")
class Softplus(Function):
    """``log(1 + exp(x))``.

    Fused: the naive form overflows for large x, and relu(x) + log(1 + exp(-|x|)) built from
    primitives has a wrong gradient (0 instead of 1/2) at exactly x = 0.

    Example:
        >>> import ember
        >>> round(ember.softplus(ember.tensor(0.0)).item(), 4)  # log(2)
        0.6931
    """

    def forward(ctx, x):
        ctx.save_for_backward(x)
        xp = _xp()
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        xp = _xp()
        e = xp.exp(-xp.abs(x))
        return g * xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


@register("gelu")
class Gelu(Function):
    """Gaussian error linear unit: ``x * Phi(x)`` (``approximate="tanh"`` for the tanh form).

    Fused: one node instead of five (scale, erf, add, two products), and a backward that reuses
    the forward's ``Phi(x)``: a transformer MLP's largest elementwise op (~1.2x on NumPy).

    Example:
        >>> import ember
        >>> round(ember.gelu(ember.tensor(1.0)).item(), 4)
        0.8413
    """

    def forward(ctx, x, approximate="none"):
        xp = _xp()
        if approximate == "none":
            cdf = 0.5 * (1.0 + backend.get().erf(x * (1 / math.sqrt(2))))
            ctx.save_for_backward(x, cdf)
        elif approximate == "tanh":
            cdf = 0.5 * (1.0 + xp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * (x * x * x))))
            ctx.save_for_backward(x, cdf)
        else:
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        ctx.approximate = approximate
        return x * cdf

    def backward(ctx, g):
        xp = _xp()
        x, cdf = ctx.saved_tensors
        if ctx.approximate == "none":  # Phi(x) + x * phi(x)
            return g * (cdf + x * xp.exp(-0.5 * (x * x)) * (1 / math.sqrt(2 * math.pi)))
        # d/dx [x * (1 + t) / 2] with t = tanh(u), 1 - t^2 = 4 * cdf * (1 - cdf)
        du = math.sqrt(2 / math.pi) * (1.0 + 3 * 0.044715 * (x * x))
        return g * (cdf + x * (2.0 * cdf * (1.0 - cdf)) * du)


def _max_keep(x: Any, axis: Any) -> Any:
    """The maximum along ``axis`` (kept), 0 where it is not finite (all -inf), for shifting."""
    xp = _xp()
    m = xp.max(x, axis=axis, keepdims=True)
    return xp.where(xp.isfinite(m), m, 0)


def _one_axis(x: Any, axis: Any, op: str) -> Any:
    """``axis`` checked by the one axis rule; a 0-d tensor normalises over no axis at all."""
    a = normalize_axis(axis, x.ndim, op)
    return () if a is None else a


@register("softmax")
class Softmax(Function):
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted by the maximum first.

    Example:
        >>> import ember
        >>> ember.softmax(ember.tensor([0.0, 0.0])).tolist()
        [0.5, 0.5]
    """

    def forward(ctx, x, axis=-1):
        xp = _xp()
        axis = _one_axis(x, axis, "softmax")
        e = xp.exp(x - _max_keep(x, axis))
        out = e / xp.sum(e, axis=axis, keepdims=True)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return out * (g - _xp().sum(g * out, axis=ctx.axis, keepdims=True))


@register("log_softmax")
class LogSoftmax(Function):
    """``x - logsumexp(x)`` along ``axis``.

    Fused: log(softmax(x)) underflows to -inf for large logit gaps; this form stays exact.

    Example:
        >>> import ember
        >>> ember.log_softmax(ember.tensor([0.0, 1000.0])).tolist()
        [-1000.0, 0.0]
    """

    def forward(ctx, x, axis=-1):
        xp = _xp()
        axis = _one_axis(x, axis, "log_softmax")
        shifted = x - _max_keep(x, axis)
        out = shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        xp = _xp()
        return g - xp.exp(out) * xp.sum(g, axis=ctx.axis, keepdims=True)


@register("logsumexp")
class LogSumExp(Function):
    """``log(sum(exp(x)))`` over ``axis`` (all axes by default), without overflow.

    Fused: the max-shift makes it finite for logits of +-1e4, where exp alone overflows.

    Example:
        >>> import ember
        >>> round(ember.logsumexp(ember.tensor([1e4, 1e4])).item(), 3)
        10000.693
    """

    def forward(ctx, x, axis=None, keepdims=False):
        xp = _xp()
        axis = None if axis is None else normalize_axes(axis, x.ndim, "logsumexp")
        m = _max_keep(x, axis)
        e = xp.exp(x - m)
        total = xp.sum(e, axis=axis, keepdims=True)
        out = xp.log(total) + m
        ctx.save_for_backward(e, total)  # the gradient is softmax(x) = e / total, exactly
        return out if keepdims else xp.squeeze(out, axis=axis)

    def backward(ctx, g):
        e, total = ctx.saved_tensors
        return g.reshape(total.shape) * (e / total)


class _LayerNorm(Function):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last ``k`` axes."""

    op_name = "layer_norm"

    def forward(ctx, x, weight=None, bias=None, k=1, eps=1e-5):
        xp = _xp()
        axes = tuple(range(x.ndim - k, x.ndim))
        xc = x - xp.mean(x, axis=axes, keepdims=True)
        rstd = 1.0 / xp.sqrt(xp.mean(xc * xc, axis=axes, keepdims=True) + eps)
        xhat = xc * rstd
        ctx.axes = axes
        ctx.save_for_backward(xhat, rstd, weight)
        y = xhat if weight is None else xhat * weight
        return y if bias is None else y + bias

    def backward(ctx, g):
        xp = _xp()
        xhat, rstd, weight = ctx.saved_tensors
        axes, need = ctx.axes, ctx.needs_input_grad
        lead = tuple(range(xhat.ndim - len(axes)))
        dw = xp.sum(g * xhat, axis=lead) if len(need) > 1 and need[1] else None
        db = xp.sum(g, axis=lead) if len(need) > 2 and need[2] else None
        dx = None
        if need[0]:
            gx = g if weight is None else g * weight
            dx = rstd * (gx - xp.mean(gx, axis=axes, keepdims=True)
                         - xhat * xp.mean(gx * xhat, axis=axes, keepdims=True))
        return dx, dw, db


@register("layer_norm", method=False)
def layer_norm(x: Tensor, normalized_shape: Any, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the last axes (``normalized_shape``), PyTorch's
    ``F.layer_norm``: ``(x - mean) / sqrt(var + eps) * weight + bias``.

    Fused: one node instead of about twelve (mean, variance, shift, scale, gain, bias), with the
    textbook backward; it runs twice per transformer block.

    Example:
        >>> import ember
        >>> y = ember.layer_norm(ember.tensor([[1.0, 3.0]]), (2,))
        >>> [round(v, 3) for v in y.tolist()[0]]
        [-1.0, 1.0]
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or tuple(x.shape[x.ndim - len(shape):]) != shape or x.ndim < len(shape):
        raise ValueError(f"ember.layer_norm: normalized_shape {shape} must be the last axes of "
                         f"x, got x of shape {x.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise ValueError(f"ember.layer_norm: {name} of shape {p.shape} must have "
                             f"normalized_shape {shape}")
    return _LayerNorm.apply(x, weight, bias, k=len(shape), eps=eps)
