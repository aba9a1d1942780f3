"""The Tensor: an array of the active backend that remembers the op that made it.

Operators and most methods (``+``, ``@``, ``.sum()``, ``.reshape()``…) are attached by the op
registry in ``ember.ops``; this file holds only what is not an op: construction, conversion to
Python and NumPy, and the entry point of the backward engine.

Example:
    >>> import ember
    >>> x = ember.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([[2., 4.],
            [6., 8.]])
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np  # host-side only: dtype inference and printing, never the tensor math

from ember import backend

if TYPE_CHECKING:
    from ember.function import Function

__all__ = ["Tensor", "as_array"]


def as_array(data: Any, dtype: Any = None) -> Any:
    """``data`` (Tensor, array, nested lists, number) as an array of the active backend.

    Without ``dtype``, arrays keep theirs; Python floats become float32 and ints int64.
    """
    bk = backend.get()
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return bk.asarray(data, dtype=backend.as_dtype(dtype))
    if bk.owns(data):
        return data
    if hasattr(data, "dtype") and hasattr(data, "shape"):  # another library's array
        host = np.asarray(data)
    else:
        try:
            host = np.asarray(data)
        except ValueError as e:  # ragged nested lists
            raise ValueError(f"cannot make a tensor from this {type(data).__name__}: nested "
                             f"lists must be rectangular (every row of the same length); "
                             f"NumPy says: {e}") from None
        if host.dtype.kind == "f":
            host = host.astype(backend.default_float)
        elif host.dtype.kind in "iu":
            host = host.astype(backend.default_int)
    if host.dtype.kind not in "fiub":
        raise TypeError(
            f"cannot make a tensor from {type(data).__name__} data of dtype {host.dtype}; "
            f"ember tensors hold floating point, integer or boolean numbers"
        )
    return bk.asarray(host, dtype=host.dtype)


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    Args:
        data: numbers, nested lists, a NumPy/JAX array or another Tensor.
        dtype: the element type (default: float32 for Python floats, int64 for ints, else the
            array's own).
        requires_grad: whether ``backward()`` should compute a gradient for this tensor; only
            floating point tensors can require grad.

    Example:
        >>> import ember
        >>> ember.Tensor([1, 2, 3]).dtype
        dtype('int64')
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")
    # NumPy defers to Tensor's reflected operators: np.float32(2) * t is a Tensor.
    __array_priority__ = 1000.0
    __array_ufunc__ = None
    __hash__ = object.__hash__  # __eq__ is elementwise; identity hashing keeps tensors in dicts

    data: Any
    grad: Tensor | None
    requires_grad: bool
    _ctx: Function | None

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False) -> None:
        self.data = as_array(data, dtype)
        self.grad = None
        self.requires_grad = False
        self._ctx = None
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data: Any, requires_grad: bool, ctx: Function | None) -> Tensor:
        """Wrap a backend array without checks (the ops' fast path)."""
        t = object.__new__(Tensor)
        t.data = data
        t.grad = None
        t.requires_grad = requires_grad
        t._ctx = ctx
        return t

    # -- metadata --------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return math.prod(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user rather than by an op that records gradients."""
        return self._ctx is None

    @property
    def grad_fn(self) -> Function | None:
        """The op node that made this tensor (None for leaves)."""
        return self._ctx

    @property
    def T(self) -> Tensor:  # noqa: N802 - NumPy's name
        """The tensor with its axes reversed."""
        return self.transpose()  # type: ignore[attr-defined, no-any-return]

    # -- autograd --------------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place and return the tensor.

        Raises:
            TypeError: for integer or boolean tensors, which have no gradient.
        """
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(
                f"only floating point tensors can require grad; this tensor has dtype "
                f"{self.dtype} (convert it first: t.astype(ember.float32))"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self) -> Tensor:
        """A tensor sharing this one's data, cut from the graph."""
        return Tensor._make(self.data, False, None)

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf it depends on.

        Args:
            grad: the upstream gradient; may be omitted for single-element tensors (it is 1).
            retain_graph: keep the graph so that backward can run through it again.
        """
        from ember.function import run_backward

        run_backward(self, grad, retain_graph)

    # -- conversion ------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (a host copy on the jax backend)."""
        if backend.is_traced(self.data):
            raise RuntimeError(
                f"a tensor of shape {self.shape} ({self.dtype}) is being traced inside a compiled "
                f"function (ember.jit), so it has no values yet: .item(), .numpy(), .tolist(), "
                f"float() and bool() cannot run there. Return the tensor from the compiled "
                f"function and read it outside, and use ember.where instead of Python `if` on a "
                f"tensor"
            )
        return backend.get().to_numpy(self.data)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element; this one has shape "
                             f"{self.shape} ({self.size} elements)")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        """The values as (nested) Python lists."""
        return self.numpy().tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                             f"use .any() / .all() style reductions or compare elementwise")
        return bool(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return int(self.data.shape[0])

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]  # type: ignore[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        raise TypeError(
            "ember tensors are immutable (so that the same code runs on JAX); build a new "
            "tensor instead, e.g. ember.where(mask, value, t)"
        )

    def __format__(self, spec: str) -> str:
        if spec and self.size == 1:
            return format(self.item(), spec)
        return repr(self) if not spec else format(repr(self), spec)

    def __repr__(self) -> str:
        try:
            host = self.numpy()
        except Exception:  # e.g. a tracer inside a compiled function has no values
            return f"tensor(<{type(self.data).__name__} shape={self.shape} dtype={self.dtype}>)"
        body = np.array2string(host, separator=", ", prefix="tensor(")
        extras = []
        if host.dtype not in (backend.default_float, backend.default_int, backend.bool_) or (
            host.size == 0
        ):
            extras.append(f"dtype={host.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{type(self._ctx).__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}{''.join(', ' + e for e in extras)})"

    if TYPE_CHECKING:  # attached by the op registry (ember/ops); declared here for type checkers
        def __add__(self, b: Any) -> Tensor: ...
        def __radd__(self, other: Any) -> Tensor: ...
        def add(self, b: Any) -> Tensor: ...
        def __sub__(self, b: Any) -> Tensor: ...
        def __rsub__(self, other: Any) -> Tensor: ...
        def sub(self, b: Any) -> Tensor: ...
        def __mul__(self, b: Any) -> Tensor: ...
        def __rmul__(self, other: Any) -> Tensor: ...
        def mul(self, b: Any) -> Tensor: ...
        def __truediv__(self, b: Any) -> Tensor: ...
        def __rtruediv__(self, other: Any) -> Tensor: ...
        def div(self, b: Any) -> Tensor: ...
        def __pow__(self, b: Any) -> Tensor: ...
        def __rpow__(self, other: Any) -> Tensor: ...
        def pow(self, b: Any) -> Tensor: ...
        def __neg__(self) -> Tensor: ...
        def neg(self) -> Tensor: ...
        def exp(self) -> Tensor: ...
        def log(self) -> Tensor: ...
        def sqrt(self) -> Tensor: ...
        def __abs__(self) -> Tensor: ...
        def abs(self) -> Tensor: ...
        def sin(self) -> Tensor: ...
        def cos(self) -> Tensor: ...
        def erf(self) -> Tensor: ...
        def maximum(self, b: Any) -> Tensor: ...
        def minimum(self, b: Any) -> Tensor: ...
        def clip(self, min: Any = None, max: Any = None) -> Tensor: ...  # noqa: A002
        def clamp(self, min: Any = None, max: Any = None) -> Tensor: ...  # noqa: A002
        def astype(self, dtype: Any) -> Tensor: ...
        def relu(self) -> Tensor: ...
        def leaky_relu(self, alpha: float = 0.01) -> Tensor: ...
        def sigmoid(self) -> Tensor: ...
        def tanh(self) -> Tensor: ...
        def softplus(self) -> Tensor: ...
        def gelu(self, approximate: str = "none") -> Tensor: ...
        def softmax(self, axis: int = -1) -> Tensor: ...
        def log_softmax(self, axis: int = -1) -> Tensor: ...
        def logsumexp(self, axis: Any = None, keepdims: bool = False) -> Tensor: ...
        def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor: ...
        def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor: ...
        # with PyTorch's dim= (one int): a (values, indices) pair, ember.ops.reduce.ValuesIndices
        def max(self, axis: Any = None, keepdims: bool = False, **dim: Any) -> Any: ...
        def min(self, axis: Any = None, keepdims: bool = False, **dim: Any) -> Any: ...
        def var(self, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Tensor: ...
        def std(self, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Tensor: ...
        def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor: ...
        def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor: ...
        def __matmul__(self, b: Any) -> Tensor: ...
        def __rmatmul__(self, other: Any) -> Tensor: ...
        def matmul(self, b: Any) -> Tensor: ...
        def reshape(self, *shape: Any) -> Tensor: ...
        def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Tensor: ...
        def squeeze(self, axis: Any = None) -> Tensor: ...
        def unsqueeze(self, axis: int) -> Tensor: ...
        def transpose(self, *axes: Any) -> Tensor: ...
        def permute(self, *axes: Any) -> Tensor: ...
        def swapaxes(self, axis1: int, axis2: int) -> Tensor: ...
        def broadcast_to(self, shape: Any) -> Tensor: ...
        def split(self, indices_or_sections: Any, axis: int = 0) -> list[Tensor]: ...
        def pad(self, pad_width: Any, value: float = 0.0) -> Tensor: ...
        def __getitem__(self, index: Any) -> Tensor: ...
        def __eq__(self, b: Any) -> Tensor: ...  # type: ignore[override]
        def eq(self, b: Any) -> Tensor: ...
        def __ne__(self, b: Any) -> Tensor: ...  # type: ignore[override]
        def ne(self, b: Any) -> Tensor: ...
        def __lt__(self, b: Any) -> Tensor: ...
        def lt(self, b: Any) -> Tensor: ...
        def __le__(self, b: Any) -> Tensor: ...
        def le(self, b: Any) -> Tensor: ...
        def __gt__(self, b: Any) -> Tensor: ...
        def gt(self, b: Any) -> Tensor: ...
        def __ge__(self, b: Any) -> Tensor: ...
        def ge(self, b: Any) -> Tensor: ...
        def take_along_axis(self, indices: Any, axis: int) -> Tensor: ...
        def gather(self, axis: int, index: Any) -> Tensor: ...
        def masked_fill(self, mask: Any, value: Any) -> Tensor: ...
        def tril(self, k: int = 0) -> Tensor: ...
        def triu(self, k: int = 0) -> Tensor: ...
        def cumsum(self, axis: Any = None) -> Tensor: ...
        def argsort(self, axis: int = -1, descending: bool = False) -> Tensor: ...
        def sort(self, axis: int = -1, descending: bool = False) -> tuple[Tensor, Tensor]: ...
        def topk(self, k: int, axis: int = -1, largest: bool = True,
                 sorted: bool = True) -> tuple[Tensor, Tensor]: ...
        def one_hot(self, num_classes: int = -1, dtype: Any = None) -> Tensor: ...
