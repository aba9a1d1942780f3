"""Inverted dropout with an explicit random key (the ``Dropout`` module keeps its key as a buffer,
so that a compiled step carries it)."""

from __future__ import annotations

import numbers
from typing import Any

from ember import backend
from ember.function import Function
from ember.ops import register
from ember.tensor import Tensor


class Dropout(Function):
    """``x * keep / (1 - p)`` with ``keep = uniform(key, x.shape) >= p``."""

    op_name = "dropout"

    def forward(ctx, x, p, key):
        keep = backend.get().uniform(key, tuple(x.shape), x.dtype) >= p
        scale = keep.astype(x.dtype) * (1.0 / (1.0 - p))
        ctx.save_for_backward(scale)
        return x * scale

    def backward(ctx, g):
        (scale,) = ctx.saved_tensors
        return g * scale


@register("dropout", method=False)
def dropout(x: Tensor, p: float, key: Any) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    The mask is ``uniform(key, x.shape) >= p``, drawn by the active backend from ``key`` (an
    array from ``ember.random.next_key()`` or a tensor holding one): the same key gives the same
    mask. ``p == 0`` returns ``x`` itself. The expected value of every element is unchanged, so
    nothing needs rescaling at evaluation time (where dropout is simply not applied).

    Raises:
        ValueError: when ``p`` is not in [0, 1).

    Example:
        >>> import ember
        >>> key = ember.backend.get().key(0)
        >>> y = ember.dropout(ember.ones(1000), 0.5, key)
        >>> sorted(set(y.tolist()))
        [0.0, 2.0]
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"ember.dropout: p must be a number in [0, 1) (the probability of "
                         f"zeroing an element), got p={p!r}")
    if p == 0:
        return x
    if isinstance(key, Tensor):
        key = key.data
    return Dropout.apply(x, float(p), key)
