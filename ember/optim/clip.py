"""Gradient clipping: by global norm and by value, on the ``.grad`` of a list of parameters.

The global norm is summed parameter by parameter in the order given (a fixed summation order, so
the result does not depend on anything but the inputs). Both functions are written with the
backend's array namespace and branch on no value, so they also run inside ``jax.jit``. They are
also optimizer options: ``Adam(params, clip_norm=1.0)`` / ``clip_value=0.5``.

Example:
    >>> import ember
    >>> from ember.optim import clip_grad_norm
    >>> w = ember.tensor([3.0, 4.0], requires_grad=True)
    >>> (w * w).sum().backward()          # grad = [6, 8], norm 10
    >>> float(clip_grad_norm([w], max_norm=1.0))
    10.0
    >>> [round(v, 4) for v in w.grad.tolist()]
    [0.6, 0.8]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from ember import backend
from ember.tensor import Tensor

__all__ = ["clip_grad_norm", "clip_grad_value", "clip_grad_norm_", "clip_grad_value_",
           "global_norm", "clip_arrays_by_norm", "clip_arrays_by_value"]


def global_norm(arrays: Sequence[Any], norm_type: float = 2.0) -> Any:
    """The ``norm_type``-norm of all ``arrays`` taken together, as a 0-d array.

    ``norm_type`` is any positive number or ``math.inf``; arrays are summed in the order given.
    """
    xp = backend.get().xp
    if not arrays:
        return xp.zeros((), backend.float32)
    if norm_type == math.inf:
        total = xp.max(xp.abs(arrays[0]))
        for a in arrays[1:]:
            total = xp.maximum(total, xp.max(xp.abs(a)))
        return total
    parts = [xp.sum(a * a) if norm_type == 2.0 else xp.sum(xp.abs(a) ** norm_type)
             for a in arrays]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return xp.sqrt(total) if norm_type == 2.0 else total ** (1.0 / norm_type)


def clip_arrays_by_norm(arrays: Sequence[Any], max_norm: float,
                        norm_type: float = 2.0) -> tuple[list[Any], Any]:
    """``arrays`` scaled by ``min(1, max_norm / (norm + 1e-6))`` and their global norm.

    The ``1e-6`` is PyTorch's ``clip_grad_norm_`` convention (optax's ``clip_by_global_norm``
    scales by ``max_norm / norm`` exactly).
    """
    xp = backend.get().xp
    norm = global_norm(arrays, norm_type)
    scale = xp.minimum(max_norm / (norm + 1e-6), 1.0)
    return [a * scale.astype(a.dtype) for a in arrays], norm


def clip_arrays_by_value(arrays: Sequence[Any], clip_value: float) -> list[Any]:
    """Each of ``arrays`` with its elements clipped to ``[-clip_value, clip_value]``."""
    xp = backend.get().xp
    return [xp.clip(a, -clip_value, clip_value) for a in arrays]


def _with_grads(params: Tensor | Iterable[Tensor], fn: str) -> list[Tensor]:
    items = [params] if isinstance(params, Tensor) else list(params)
    for i, p in enumerate(items):
        if not isinstance(p, Tensor):
            raise TypeError(f"{fn}: parameter {i} is a {type(p).__name__}, not an ember Tensor")
    return [p for p in items if p.grad is not None]


def _check_positive(fn: str, name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{fn}: {name} must be > 0, got {value!r}")


def clip_grad_norm(params: Tensor | Iterable[Tensor], max_norm: float,
                   norm_type: float = 2.0) -> Tensor:
    """Scale the gradients of ``params`` so that their global norm is at most ``max_norm``.

    Parameters without a gradient are skipped. PyTorch's ``clip_grad_norm_``: the gradients are
    multiplied by ``min(1, max_norm / (total_norm + 1e-6))``.

    Args:
        params: a tensor or an iterable of tensors whose ``.grad`` is clipped.
        max_norm: the largest norm allowed (> 0).
        norm_type: the norm's order (``2.0``; any positive number or ``math.inf``).

    Returns:
        The global norm of the gradients before clipping, as a 0-d tensor.

    Example:
        >>> import ember
        >>> w = ember.tensor([1.0, 0.0], requires_grad=True)
        >>> (w * 6.0).sum().backward()
        >>> float(ember.optim.clip_grad_norm(w, 3.0))
        8.485280990600586
    """
    _check_positive("clip_grad_norm", "max_norm", max_norm)
    _check_positive("clip_grad_norm", "norm_type", norm_type)
    with_grad = _with_grads(params, "clip_grad_norm")
    grads = [p.grad.data for p in with_grad]  # type: ignore[union-attr]
    clipped, norm = clip_arrays_by_norm(grads, float(max_norm), float(norm_type))
    for p, g in zip(with_grad, clipped):
        p.grad = Tensor(g)
    return Tensor(norm)


def clip_grad_value(params: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clip every gradient element of ``params`` to ``[-clip_value, clip_value]``.

    Example:
        >>> import ember
        >>> w = ember.tensor([1.0, 2.0], requires_grad=True)
        >>> (w * ember.tensor([-5.0, 0.25])).sum().backward()
        >>> ember.optim.clip_grad_value([w], 1.0)
        >>> w.grad.tolist()
        [-1.0, 0.25]
    """
    _check_positive("clip_grad_value", "clip_value", clip_value)
    with_grad = _with_grads(params, "clip_grad_value")
    grads = [p.grad.data for p in with_grad]  # type: ignore[union-attr]
    for p, g in zip(with_grad, clip_arrays_by_value(grads, float(clip_value))):
        p.grad = Tensor(g)


clip_grad_norm_ = clip_grad_norm  # PyTorch's names (the trailing underscore: in place)
clip_grad_value_ = clip_grad_value
