"""Function nodes, gradient mode and the backward engine.

A differentiable op is a subclass of :class:`Function` with ``forward(ctx, *inputs)`` and
``backward(ctx, grad)`` side by side. ``forward`` receives backend arrays (or Python constants),
returns one array, and may keep what backward needs with ``ctx.save_for_backward``; ``backward``
receives the gradient of the output and returns one gradient per input (``None`` where there is
none), each in the output's broadcast shape: the engine reduces it to the input's shape once.

Example (a custom op with a hand-written backward):
    >>> import ember
    >>> class Cube(ember.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x * x
    ...     @staticmethod
    ...     def backward(ctx, grad):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x * x * grad
    >>> x = ember.tensor([1.0, 2.0], requires_grad=True)
    >>> Cube.apply(x).sum().backward()
    >>> x.grad.tolist()
    [3.0, 12.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from ember import backend
from ember.tensor import Tensor

__all__ = [
    "Function",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "set_grad_enabled",
    "run_backward",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_grad_enabled = True


def is_grad_enabled() -> bool:
    """Whether ops record the graph (False inside :class:`no_grad`).

    Example:
        >>> import ember
        >>> with ember.no_grad():
        ...     ember.is_grad_enabled()
        False
    """
    return _grad_enabled


class _GradMode:
    """Sets the recording mode inside a ``with`` block, or around every call of a decorated
    function; the previous mode comes back on exit."""

    mode = True

    def __init__(self) -> None:
        self._prev: list[bool] = []

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev.append(_grad_enabled)
        _grad_enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._prev.pop()

    def __call__(self, fn: _F) -> _F:
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            block = _GradMode()  # a fresh block per call: re-entrant and thread-compatible
            block.mode = mode
            with block:
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """Record nothing: a context manager, and a decorator with or without parentheses.

    Example:
        >>> import ember
        >>> x = ember.ones(2, requires_grad=True)
        >>> with ember.no_grad():
        ...     y = x * 2
        >>> y.requires_grad
        False
    """

    mode = False

    def __new__(cls, fn: Any = None) -> Any:
        self = super().__new__(cls)
        if fn is None:
            return self
        self.__init__()  # type: ignore[misc]
        return self(fn)  # used bare, as @ember.no_grad

    def __init__(self, fn: Any = None) -> None:
        super().__init__()


class enable_grad(no_grad):
    """Record the graph again inside a :class:`no_grad` block (context manager and decorator).

    Example:
        >>> import ember
        >>> x = ember.ones(2, requires_grad=True)
        >>> with ember.no_grad():
        ...     with ember.enable_grad():
        ...         y = x * 2
        >>> y.requires_grad
        True
    """

    mode = True


class set_grad_enabled(_GradMode):
    """Switch recording on or off now; as a context manager or decorator, only inside.

    Example:
        >>> import ember
        >>> with ember.set_grad_enabled(False):
        ...     ember.is_grad_enabled()
        False
        >>> ember.is_grad_enabled()
        True
    """

    def __init__(self, mode: bool) -> None:
        global _grad_enabled
        super().__init__()
        self.mode = bool(mode)
        self._before = _grad_enabled
        _grad_enabled = self.mode  # a plain call switches the mode, as in PyTorch

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev.append(self._before)
        _grad_enabled = self.mode

    def __call__(self, fn: _F) -> _F:
        global _grad_enabled
        _grad_enabled = self._before  # as a decorator it acts only while fn runs
        return super().__call__(fn)


class Function:
    """A differentiable operation: subclass it and write ``forward`` and ``backward``.

    The instance is the context ``ctx`` that both methods receive; it is the node in the graph.
    Use ``Op.apply(*inputs, **attrs)`` to run it on tensors. Inputs that are not tensors (Python
    numbers, arrays) are passed to ``forward`` as constants and get no gradient.

    Example:
        >>> import ember
        >>> class Double(ember.Function):
        ...     @staticmethod
        ...     def forward(ctx, x):
        ...         return 2 * x
        ...     @staticmethod
        ...     def backward(ctx, grad):
        ...         return 2 * grad
        >>> x = ember.tensor([1.0, 3.0], requires_grad=True)
        >>> y = Double.apply(x)
        >>> y.sum().backward()
        >>> y.tolist(), x.grad.tolist()
        ([2.0, 6.0], [2.0, 2.0])
    """

    #: the op's public name, used in error messages (set by ``ops.register``)
    op_name: str = ""
    #: elementwise ops whose inputs broadcast: a shape error then names both shapes
    broadcasts: bool = False

    inputs: tuple[Any, ...]
    needs_input_grad: tuple[bool, ...]
    saved_tensors: tuple[Any, ...]
    _freed: bool

    @classmethod
    def apply(cls, *inputs: Any, **attrs: Any) -> Tensor:
        """Run ``forward`` on the inputs' arrays; when recording, link the result to them."""
        ctx = object.__new__(cls)
        bk = backend.get()
        arrays = []
        needs = []
        requires = False
        for x in inputs:
            if isinstance(x, Tensor):
                if not bk.owns(x.data):
                    _foreign_array(cls, x, bk)
                arrays.append(x.data)
                needs.append(x.requires_grad)
                requires = requires or x.requires_grad
            else:
                arrays.append(x)
                needs.append(False)
        requires = requires and _grad_enabled
        ctx.needs_input_grad = tuple(needs)
        try:
            out = cls.forward(ctx, *arrays, **attrs)
        except (ValueError, TypeError) as e:
            if cls.broadcasts:
                _explain_broadcast(cls, arrays, bk, e)
            raise
        if requires:
            ctx.inputs = inputs
            ctx._freed = False
            return Tensor._make(out, True, ctx)
        return Tensor._make(out, False, None)

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays that ``backward`` needs (freed after backward unless ``retain_graph``)."""
        self.saved_tensors = arrays

    def forward(ctx, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - ctx is the instance
        raise NotImplementedError(f"{type(ctx).__name__} must define forward(ctx, ...)")

    def backward(ctx, grad: Any) -> Any:  # noqa: N805
        raise NotImplementedError(f"{type(ctx).__name__} must define backward(ctx, grad)")

    @property
    def name(self) -> str:
        return self.op_name or type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__}Backward>"


def _foreign_array(cls: type[Function], x: Tensor, bk: backend.Backend) -> None:
    kind = type(x.data).__module__.split(".")[0]
    raise TypeError(
        f"{_op_label(cls)}: a tensor of shape {tuple(x.shape)} holds a {kind} array but the "
        f"active backend is {bk.name!r}; tensors of two backends cannot be mixed. "
        f"Make it again on this backend, e.g. ember.tensor(t.numpy())"
    )


def _op_label(cls: type[Function]) -> str:
    return f"ember.{cls.op_name}" if cls.op_name else cls.__name__


def _explain_broadcast(
    cls: type[Function], arrays: list[Any], bk: backend.Backend, err: Exception
) -> None:
    shapes = [tuple(getattr(a, "shape", ())) for a in arrays]
    try:
        bk.xp.broadcast_shapes(*shapes)
    except (ValueError, TypeError):
        listed = " and ".join(str(s) for s in shapes)
        raise ValueError(f"{_op_label(cls)}: shapes {listed} cannot be broadcast together") from err


# -- the backward engine ---------------------------------------------------------------------------

_FREED_MSG = (
    "backward through a graph that has already been freed: saved values are released after "
    ".backward(); pass retain_graph=True to the first backward if you need to call it twice"
)


def _toposort(root: Tensor) -> list[Tensor]:
    """Nodes reachable from ``root`` that need a gradient, outputs first (iterative DFS)."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        ctx = node._ctx
        if ctx is not None:
            if ctx._freed:
                raise RuntimeError(_FREED_MSG)
            for inp, need in zip(ctx.inputs, ctx.needs_input_grad):
                if need and id(inp) not in seen:
                    stack.append((inp, False))
    order.reverse()
    return order


def _sum_to(grad: Any, shape: tuple[int, ...], op: str) -> Any:
    """Reduce a gradient in broadcast shape back to an input's ``shape``."""
    lead = grad.ndim - len(shape)
    if lead < 0:
        raise RuntimeError(f"{op} backward returned a gradient of shape {grad.shape} for an "
                           f"input of shape {shape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    if axes:
        grad = grad.sum(axis=axes)
    if grad.shape != shape:
        try:
            grad = grad.reshape(shape)
        except (ValueError, TypeError) as e:
            raise RuntimeError(f"{op} backward returned a gradient of shape "
                               f"{tuple(grad.shape)} for an input of shape {shape}") from e
    return grad


def run_backward(root: Tensor, grad: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward() on a tensor that does not require grad: no input of the computation "
            "had requires_grad=True (or it ran under ember.no_grad())"
        )
    bk = backend.get()
    if grad is None:
        if root.size != 1:
            raise RuntimeError(
                f"backward() on a tensor of shape {root.shape} needs grad=: only a single-element "
                f"output has an implicit gradient of 1 (call .sum() first, or pass grad)"
            )
        grad = bk.xp.ones(root.shape, root.dtype)
    else:
        grad = grad.data if isinstance(grad, Tensor) else bk.asarray(grad, dtype=root.dtype)
        if tuple(grad.shape) != root.shape:
            raise ValueError(f"backward(grad=...): grad has shape {tuple(grad.shape)} but the "
                             f"tensor has shape {root.shape}")
    grads: dict[int, Any] = {id(root): grad}
    for node in _toposort(root):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        ctx = node._ctx
        if ctx is None:  # a leaf: accumulate until zeroed
            node.grad = Tensor._make(g if node.grad is None else node.grad.data + g, False, None)
            continue
        in_grads = type(ctx).backward(ctx, g)
        if not isinstance(in_grads, (tuple, list)):
            in_grads = (in_grads,)
        for inp, need, ig in zip(ctx.inputs, ctx.needs_input_grad, in_grads):
            if not need or ig is None:
                continue
            data = inp.data
            if ig.shape != data.shape:
                ig = _sum_to(ig, data.shape, ctx.name)
            if ig.dtype != data.dtype:
                ig = ig.astype(data.dtype)
            prev = grads.get(id(inp))
            grads[id(inp)] = ig if prev is None else prev + ig
        if not retain_graph:  # free saved arrays and the links upstream
            ctx.__dict__.clear()
            ctx._freed = True
