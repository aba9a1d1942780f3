"""Fused loss ops where the chain of primitives is unstable: softmax cross-entropy from logits and
binary cross-entropy from logits. Both are finite, with finite gradients, for logits of +-1e4.

The loss classes and functions built on them are in :mod:`ember.nn.losses` and
:mod:`ember.nn.functional`.
"""

from __future__ import annotations

from typing import Any

import numpy as np  # host-side only: checking label values, never the tensor math

from ember import backend
from ember.function import Function
from ember.ops import register
from ember.ops.activation import _max_keep
from ember.tensor import Tensor, as_array

__all__ = ["check_labels", "softmax_cross_entropy", "SoftmaxCrossEntropy",
           "BinaryCrossEntropyWithLogits"]


def _xp() -> Any:
    return backend.get().xp


def check_labels(
    who: str, labels: Any, n_classes: int, labels_shape: tuple[int, ...],
    pred_shape: tuple[int, ...],
) -> None:
    """Raise ValueError naming ``who``, both shapes and the first bad label: one that is not a
    whole number, or not in [0, n_classes). Skipped inside ``jax.jit``, where values are unknown.
    """
    try:
        host = np.asarray(backend.get().to_numpy(labels))
    except TypeError:  # a traced array: its values are not known while compiling
        return
    shapes = f"labels of shape {labels_shape}, predictions of shape {pred_shape}"
    if host.dtype.kind == "f":
        bad = np.argwhere(host != np.round(host))
        if bad.size:
            idx = tuple(int(i) for i in bad[0])
            value = host[idx].item()
            raise ValueError(f"{who}: labels must be integer class indices, got {value!r} at "
                             f"index {idx} ({shapes})")
    elif host.dtype.kind not in "iu":
        raise ValueError(f"{who}: labels must be integer class indices, got dtype {host.dtype} "
                         f"({shapes})")
    bad = np.argwhere((host < 0) | (host >= n_classes))
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        value = host[idx].item()
        value = int(value) if float(value).is_integer() else value
        raise ValueError(f"{who}: label {value} at index {idx} is out of range for {n_classes} "
                         f"classes ({shapes}); labels must be in [0, {n_classes})")


class SoftmaxCrossEntropy(Function):
    """``-sum(target * log_softmax(logits))`` over the last axis, or ``-log_softmax[label]``.

    Fused: log(softmax(x)) underflows to -inf for large logit gaps; this form stays exact, and its
    gradient ``softmax(x) - target`` needs no division.
    """

    op_name = "softmax_cross_entropy"

    def forward(ctx, logits, labels):
        xp = _xp()
        shifted = logits - _max_keep(logits, -1)
        lsm = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
        ctx.save_for_backward(lsm, labels)
        if labels.dtype.kind in "iu":
            return -xp.take_along_axis(lsm, labels[..., None], axis=-1)[..., 0]
        return -xp.sum(xp.where(labels != 0, labels * lsm, 0), axis=-1)

    def backward(ctx, g):
        xp = _xp()
        lsm, labels = ctx.saved_tensors
        g = g[..., None]
        soft = xp.exp(lsm)
        if labels.dtype.kind in "iu":
            onehot = labels[..., None] == xp.arange(lsm.shape[-1])
            return g * (soft - onehot.astype(lsm.dtype)), None
        d_logits = g * (soft * xp.sum(labels, axis=-1, keepdims=True) - labels)
        return d_logits, (-g * lsm if ctx.needs_input_grad[1] else None)


@register("softmax_cross_entropy", method=False)
def softmax_cross_entropy(logits: Tensor, labels: Any) -> Tensor:
    """Cross-entropy of ``softmax(logits)`` per example; classes on the last axis.

    Args:
        logits: unnormalised scores of shape (..., K).
        labels: integer class indices of shape (...) (whole-number floats are accepted), or
            one-hot / probability targets of shape (..., K), which also get a gradient.

    Returns:
        The loss of each example, shape (...): no reduction.

    Raises:
        ValueError: for mismatched shapes, or labels outside [0, K) or not whole numbers.

    Example:
        >>> import ember
        >>> logits = ember.tensor([[1e4, 0.0], [0.0, 0.0]])
        >>> [round(v, 4) for v in ember.softmax_cross_entropy(logits, [1, 0]).tolist()]
        [10000.0, 0.6931]
    """
    who = "ember.softmax_cross_entropy"
    shape = tuple(logits.shape)
    if not isinstance(labels, Tensor):
        labels = Tensor._make(as_array(labels), False, None)
    lshape = tuple(labels.shape)
    if len(shape) == 0:
        raise ValueError(f"{who}: logits must have a class axis, got a 0-d tensor")
    if lshape == shape and labels.dtype.kind in "iub":  # integer / boolean one-hot rows
        check_labels(who, labels.data, 2, lshape, shape)
        labels = Tensor._make(labels.data.astype(logits.dtype), False, None)
    if labels.dtype.kind == "f" and lshape == shape:
        return SoftmaxCrossEntropy.apply(logits, labels)
    if lshape != shape[:-1]:
        raise ValueError(f"{who}: labels of shape {lshape} do not match logits of shape {shape}; "
                         f"expected class indices of shape {shape[:-1]} or targets of shape "
                         f"{shape}")
    check_labels(who, labels.data, shape[-1], lshape, shape)
    if labels.dtype.kind not in "iu":
        labels = Tensor._make(labels.data.astype(backend.int64), False, None)
    return SoftmaxCrossEntropy.apply(logits, labels)


@register("binary_cross_entropy_with_logits", method=False)
class BinaryCrossEntropyWithLogits(Function):
    """``-(pos_weight * t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x)))`` elementwise, from
    logits ``x``; ``pos_weight`` (None: 1) weighs the positive term and broadcasts like the
    targets, e.g. one weight per class on the last axis (PyTorch's ``pos_weight``).

    Fused: computed as ``(1 - t) * x + (1 + (pos_weight - 1) * t) * softplus(-x)`` with
    ``softplus(-x) = max(-x, 0) + log1p(exp(-|x|))``, finite for any logit, where the chain
    through sigmoid and log gives -inf (and NaN gradients) once sigmoid rounds to 0 or 1.

    Example:
        >>> import ember
        >>> x = ember.tensor([1e4, -1e4, 0.0])
        >>> ember.binary_cross_entropy_with_logits(x, ember.tensor([1.0, 1.0, 0.0])).tolist()
        [0.0, 10000.0, 0.6931471824645996]
        >>> ember.binary_cross_entropy_with_logits(x, ember.tensor([1.0, 1.0, 0.0]),
        ...                                        pos_weight=ember.tensor(3.0)).tolist()
        [0.0, 30000.0, 0.6931471824645996]
    """

    broadcasts = True

    def forward(ctx, x, t, pos_weight=None):
        xp = _xp()
        ctx.save_for_backward(x, t, pos_weight)
        if pos_weight is None:
            return xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))
        softplus_neg = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
        return (1 - t) * x + (1 + (pos_weight - 1) * t) * softplus_neg

    def backward(ctx, g):
        xp = _xp()
        x, t, pos_weight = ctx.saved_tensors
        e = xp.exp(-xp.abs(x))
        sig = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        if pos_weight is None:
            return g * (sig - t), (-g * x if ctx.needs_input_grad[1] else None), None
        # d/dx: (1 - t) - (1 + (pw - 1) t) sigmoid(-x); d/dt: -x + (pw - 1) softplus(-x)
        softplus_neg = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
        dx = g * ((1 - t) - (1 + (pos_weight - 1) * t) * (1 - sig))
        dt = g * (-x + (pos_weight - 1) * softplus_neg) if ctx.needs_input_grad[1] else None
        dpw = g * t * softplus_neg if ctx.needs_input_grad[2] else None
        return dx, dt, dpw
