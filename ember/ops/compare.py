"""Comparisons ``== != < <= > >=``: boolean tensors that carry no gradient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember import backend
from ember.ops import register
from ember.tensor import Tensor


def _data(x: Any) -> Any:
    if isinstance(x, Tensor):
        bk = backend.get()
        if not bk.owns(x.data):
            raise TypeError(f"comparison: a tensor of shape {x.shape} belongs to another backend "
                            f"than the active one ({bk.name!r}); tensors of two backends cannot "
                            f"be mixed")
        return x.data
    return x


def _compare(name: str, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Tensor]:
    def compare(a: Any, b: Any) -> Tensor:
        """Elementwise ``a %s b`` as a boolean tensor (no gradient).

        Example:
            >>> import ember
            >>> ember.%s(ember.tensor([1.0, 2.0, 3.0]), 2.0).tolist()
            %s
        """
        a, b = _data(a), _data(b)
        try:
            return Tensor._make(fn(a, b), False, None)
        except (ValueError, TypeError) as e:
            sa, sb = tuple(getattr(a, "shape", ())), tuple(getattr(b, "shape", ()))
            raise ValueError(f"ember.{name}: shapes {sa} and {sb} cannot be broadcast "
                             f"together") from e

    # the docstring is a template: each op shows its own symbol, name and example's result
    compare.__doc__ = str(compare.__doc__) % (_SYMBOLS[name], name, [fn(v, 2) for v in (1, 2, 3)])
    return compare


_SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}

eq = register("eq", dunders=("__eq__",), differentiable=False)(
    _compare("eq", lambda a, b: a == b))
ne = register("ne", dunders=("__ne__",), differentiable=False)(
    _compare("ne", lambda a, b: a != b))
lt = register("lt", dunders=("__lt__",), differentiable=False)(
    _compare("lt", lambda a, b: a < b))
le = register("le", dunders=("__le__",), differentiable=False)(
    _compare("le", lambda a, b: a <= b))
gt = register("gt", dunders=("__gt__",), differentiable=False)(
    _compare("gt", lambda a, b: a > b))
ge = register("ge", dunders=("__ge__",), differentiable=False)(
    _compare("ge", lambda a, b: a >= b))
