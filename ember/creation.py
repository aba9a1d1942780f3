"""Making tensors: from data, filled with a value, ranges, identity, random draws."""

from __future__ import annotations

import numbers
from typing import Any

from ember import backend
from ember import random as _random
from ember.tensor import Tensor, as_array

__all__ = [
    "tensor",
    "from_numpy",
    "zeros",
    "ones",
    "full",
    "zeros_like",
    "ones_like",
    "full_like",
    "arange",
    "linspace",
    "eye",
    "rand",
    "randn",
]


def _shape(shape: tuple[Any, ...], who: str = "") -> tuple[int, ...]:
    """Accept both ``zeros(2, 3)`` and ``zeros((2, 3))``; ``who`` names the function in errors."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"{'ember.' + who + ': ' if who else ''}a shape holds non-negative "
                             f"integers; got {shape}")
    return tuple(int(n) for n in shape)


def _dtype(dtype: Any) -> Any:
    return backend.default_float if dtype is None else backend.as_dtype(dtype)


def _finish(data: Any, requires_grad: bool) -> Tensor:
    t = Tensor._make(data, False, None)
    return t.requires_grad_(True) if requires_grad else t


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new leaf tensor holding ``data``.

    Args:
        data: a number, nested lists, a NumPy or JAX array, or a Tensor (its values are copied
            into a new leaf, cut from any graph).
        dtype: element type; Python floats default to float32, Python ints to int64, arrays keep
            their own dtype.
        requires_grad: record operations on it for ``backward()`` (floating point only).

    Example:
        >>> import ember
        >>> ember.tensor([1.5, 2.0], requires_grad=True)
        tensor([1.5, 2. ], requires_grad=True)
    """
    return _finish(as_array(data, dtype), requires_grad)


def from_numpy(array: Any) -> Tensor:
    """A tensor with a NumPy array's values and dtype (shared, not copied, on NumPy).

    Example:
        >>> import numpy as np, ember
        >>> ember.from_numpy(np.arange(3)).dtype
        dtype('int64')
    """
    if not hasattr(array, "dtype") or type(array).__module__ != "numpy":
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return _finish(as_array(array), False)


def _fill(shape: tuple[int, ...], value: Any, dtype: Any, requires_grad: bool) -> Tensor:
    xp = backend.get().xp
    return _finish(xp.full(shape, value, dtype=_dtype(dtype)), requires_grad)


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``.

    Example:
        >>> import ember
        >>> ember.zeros(2, 3).shape
        (2, 3)
    """
    return _fill(_shape(shape, "zeros"), 0, dtype, requires_grad)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones.

    Example:
        >>> import ember
        >>> ember.ones(2).tolist()
        [1.0, 1.0]
    """
    return _fill(_shape(shape, "ones"), 1, dtype, requires_grad)


def full(shape: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``.

    Example:
        >>> import ember
        >>> ember.full((2,), 7.0).tolist()
        [7.0, 7.0]
    """
    shape = _shape((shape,) if isinstance(shape, int) else tuple(shape), "full")
    return _fill(shape, fill_value, dtype, requires_grad)


def _like(t: Any, value: Any, dtype: Any, requires_grad: bool) -> Tensor:
    t = t if isinstance(t, Tensor) else tensor(t)
    return _fill(t.shape, value, t.dtype if dtype is None else dtype, requires_grad)


def zeros_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape (and, by default, the dtype) of ``t``.

    Example:
        >>> import ember
        >>> ember.zeros_like(ember.tensor([[1.0, 2.0]])).tolist()
        [[0.0, 0.0]]
    """
    return _like(t, 0, dtype, requires_grad)


def ones_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape (and, by default, the dtype) of ``t``.

    Example:
        >>> import ember
        >>> ember.ones_like(ember.tensor([1, 2]), dtype="float64").tolist()
        [1.0, 1.0]
    """
    return _like(t, 1, dtype, requires_grad)


def full_like(t: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` with the shape (and, by default, the dtype) of ``t``.

    Example:
        >>> import ember
        >>> ember.full_like(ember.zeros(2, 2), 7.0).tolist()
        [[7.0, 7.0], [7.0, 7.0]]
    """
    return _like(t, fill_value, dtype, requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in [start, stop), NumPy's ``arange``; int64 unless a float is given.

    Example:
        >>> import ember
        >>> ember.arange(3).tolist(), ember.arange(0, 1, 0.5).tolist()
        ([0, 1, 2], [0.0, 0.5])
    """
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        is_int = all(isinstance(v, int) for v in (start, stop, step))
        dtype = backend.default_int if is_int else backend.default_float
    xp = backend.get().xp
    return _finish(xp.arange(start, stop, step, dtype=_dtype(dtype)), requires_grad)


def linspace(start: float, stop: float, num: int = 50, dtype: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop`` inclusive.

    Example:
        >>> import ember
        >>> ember.linspace(0, 1, 3).tolist()
        [0.0, 0.5, 1.0]
    """
    xp = backend.get().xp
    return _finish(xp.linspace(start, stop, num, dtype=_dtype(dtype)), requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """The ``n`` x ``m`` identity matrix.

    Example:
        >>> import ember
        >>> ember.eye(2).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    xp = backend.get().xp
    return _finish(xp.eye(n, m, dtype=_dtype(dtype)), requires_grad)


def rand(*shape: Any, dtype: Any = None, requires_grad: bool = False, key: Any = None) -> Tensor:
    """Uniform draws in [0, 1) from ember's stream (or from an explicit ``key``).

    Example:
        >>> import ember
        >>> ember.manual_seed(1)
        >>> x = ember.rand(2, 3)
        >>> x.shape, bool(((x.numpy() >= 0) & (x.numpy() < 1)).all())
        ((2, 3), True)
    """
    bk = backend.get()
    key = _random.next_key() if key is None else key
    return _finish(bk.uniform(key, _shape(shape, "rand"), _dtype(dtype)), requires_grad)


def randn(*shape: Any, dtype: Any = None, requires_grad: bool = False, key: Any = None) -> Tensor:
    """Standard normal draws from ember's stream (or from an explicit ``key``).

    Example:
        >>> import ember
        >>> ember.randn(4).shape
        (4,)
    """
    bk = backend.get()
    key = _random.next_key() if key is None else key
    return _finish(bk.normal(key, _shape(shape, "randn"), _dtype(dtype)), requires_grad)

