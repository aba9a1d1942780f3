"""Differentiable ops: one :class:`~ember.Function` per primitive, composites as plain functions.

Each op is registered in one place with :func:`register`, which makes it ``ember.<name>`` and a
``Tensor`` method (and operators such as ``__add__``). ``REGISTRY`` lists every registered op; the
test suite holds one row per entry and fails when an op has none. Every op also takes PyTorch's
keyword spellings (``dim=`` for ``axis=``, ``keepdim=`` for ``keepdims=``, see ``ALIASES``), and a
wrong keyword is an error naming the op and the arguments it accepts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ember.function import Function
from ember.tensor import Tensor

__all__ = ["register", "REGISTRY", "PRIMITIVES", "NON_DIFFERENTIABLE", "METHODS", "ALIASES"]

#: name -> the public function (``ember.<name>``)
REGISTRY: dict[str, Callable[..., Any]] = {}
#: name -> its Function subclass, for primitives (composites are built from these)
PRIMITIVES: dict[str, type[Function]] = {}
#: names of ops whose result carries no gradient (comparisons, argmax…)
NON_DIFFERENTIABLE: set[str] = set()
#: Tensor attribute -> the op it calls (methods and operators attached by register)
METHODS: dict[str, str] = {}

_T = TypeVar("_T")


#: PyTorch's spellings of ember's keyword arguments, accepted wherever the ember name is
ALIASES = {"dim": "axis", "keepdim": "keepdims", "start_dim": "start_axis", "end_dim": "end_axis"}


def _keyword_error(name: str, params: list[inspect.Parameter], args: tuple[Any, ...],
                  kwargs: dict[str, Any], renames: dict[str, str] | None = None) -> None:
    """Raise ember's TypeError naming the op and the arguments it accepts when ``args`` and
    ``kwargs`` do not fit ``params``; return quietly when they do (the error was elsewhere)."""
    try:
        inspect.Signature(params).bind(*args, **kwargs)
    except TypeError as e:
        also = {v: k for k, v in (renames or {}).items()}
        accepted = ", ".join(p.name + (f" (or {also[p.name]})" if p.name in also else "")
                             for p in params)
        raise TypeError(f"ember.{name}: {e}; it accepts ({accepted})") from None


def _wrap(fn: Callable[..., Any], name: str, params: list[inspect.Parameter], doc: str | None,
          on_dim: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """``fn`` with PyTorch's keyword spellings renamed and wrong keywords explained; ``on_dim``
    (if given) answers a call that spells the axis ``dim=`` (PyTorch's form of the op)."""
    names = {p.name for p in params}
    renames = {k: v for k, v in ALIASES.items() if v in names and k not in names}

    def op(*args: Any, **kwargs: Any) -> Any:
        if on_dim is not None and "dim" in kwargs:
            fn_ = on_dim
        else:
            fn_ = fn
        if kwargs and renames:
            for old in renames.keys() & kwargs.keys():
                kwargs[renames[old]] = kwargs.pop(old)
        try:
            return fn_(*args, **kwargs)
        except TypeError:
            _keyword_error(name, params, args, kwargs, renames)
            raise

    op.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    op.__doc__ = doc
    return op


def _reflected(fn: Callable[..., Tensor]) -> Callable[[Tensor, Any], Tensor]:
    def reflected(self: Tensor, other: Any) -> Tensor:
        return fn(other, self)

    return reflected


def register(
    name: str,
    *,
    method: bool | str = True,
    dunders: tuple[str, ...] = (),
    rdunders: tuple[str, ...] = (),
    differentiable: bool = True,
    on_dim: Callable[..., Any] | None = None,
) -> Callable[[_T], _T]:
    """Make a Function subclass or a plain function ``ember.<name>`` and a Tensor method.

    Args:
        name: the public name.
        method: attach as ``Tensor.<name>`` (True), under another name (a string), or not at all.
        dunders: operators that call the op as ``op(self, other)``, e.g. ``("__add__",)``.
        rdunders: reflected operators that call ``op(other, self)``, e.g. ``("__radd__",)``.
        differentiable: False for ops whose result never carries a gradient.
        on_dim: called instead when the axis is spelled ``dim=``, for ops whose PyTorch form
            returns something else (``max(dim=)`` gives values and indices); it receives the
            arguments with ``dim`` renamed to ``axis``.
    """

    def deco(obj: _T) -> _T:
        if name in REGISTRY:
            raise ValueError(f"op {name!r} is registered twice")
        if isinstance(obj, type) and issubclass(obj, Function):
            obj.op_name = name
            PRIMITIVES[name] = obj
            params = list(inspect.signature(obj.forward).parameters.values())[1:]  # drop ctx
            fn = _wrap(obj.apply, name, params, obj.__doc__, on_dim)
        else:
            fn = _wrap(obj, name, list(inspect.signature(obj).parameters.values()),
                       obj.__doc__, on_dim)
        fn.__name__ = fn.__qualname__ = name
        fn.__module__ = "ember"
        REGISTRY[name] = fn
        if not differentiable:
            NON_DIFFERENTIABLE.add(name)
        attached = {d: fn for d in dunders} | {d: _reflected(fn) for d in rdunders}
        if method:
            attached[name if method is True else method] = fn
        for attr, f in attached.items():
            setattr(Tensor, attr, f)
            METHODS[attr] = name
        # a Function stays its class; a composite becomes the wrapped function everywhere
        return obj if isinstance(obj, type) else fn  # type: ignore[return-value]

    return deco


# Importing the families registers their ops (the order is the order of REGISTRY).
from ember.ops import elementwise, activation, reduce, linalg, shape, compare, conv, dropout, loss  # noqa: E402,F401,I001,E501
from ember.ops import index, attention  # noqa: E402,F401,I001
