"""Differentiable ops: one :class:`~ember.Function` per primitive, composites as plain functions.

Each op is registered in one place with :func:`register`, which makes it ``ember.<name>`` and a
``Tensor`` method (and operators such as ``__add__``). ``REGISTRY`` lists every registered op; the
test suite holds one row per entry and fails when an op has none.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ember.function import Function
from ember.tensor import Tensor

__all__ = ["register", "REGISTRY", "PRIMITIVES", "NON_DIFFERENTIABLE", "METHODS"]

#: name -> the public function (``ember.<name>``)
REGISTRY: dict[str, Callable[..., Any]] = {}
#: name -> its Function subclass, for primitives (composites are built from these)
PRIMITIVES: dict[str, type[Function]] = {}
#: names of ops whose result carries no gradient (comparisons, argmax…)
NON_DIFFERENTIABLE: set[str] = set()
#: Tensor attribute -> the op it calls (methods and operators attached by register)
METHODS: dict[str, str] = {}

_T = TypeVar("_T")


def _function_op(cls: type[Function], name: str) -> Callable[..., Tensor]:
    apply = cls.apply

    def op(*args: Any, **kwargs: Any) -> Tensor:
        return apply(*args, **kwargs)

    params = list(inspect.signature(cls.forward).parameters.values())[1:]  # drop ctx
    op.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    op.__doc__ = cls.__doc__
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
) -> Callable[[_T], _T]:
    """Make a Function subclass or a plain function ``ember.<name>`` and a Tensor method.

    Args:
        name: the public name.
        method: attach as ``Tensor.<name>`` (True), under another name (a string), or not at all.
        dunders: operators that call the op as ``op(self, other)``, e.g. ``("__add__",)``.
        rdunders: reflected operators that call ``op(other, self)``, e.g. ``("__radd__",)``.
        differentiable: False for ops whose result never carries a gradient.
    """

    def deco(obj: _T) -> _T:
        if name in REGISTRY:
            raise ValueError(f"op {name!r} is registered twice")
        if isinstance(obj, type) and issubclass(obj, Function):
            obj.op_name = name
            PRIMITIVES[name] = obj
            fn = _function_op(obj, name)
        else:
            fn = obj  # type: ignore[assignment]
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
        return obj

    return deco


# Importing the families registers their ops (the order is the order of REGISTRY).
from ember.ops import elementwise, activation, reduce, linalg, shape, compare, conv, dropout, loss  # noqa: E402,F401,I001,E501
from ember.ops import index, attention  # noqa: E402,F401,I001
