"""The one check of a learning rate, used by optimizers, schedules, callbacks and the CLI.

Example:
    >>> from ember.optim.lr import check_lr
    >>> check_lr(0.1, "SGD: lr")
    0.1
    >>> check_lr(float("inf"), "SGD: lr")
    Traceback (most recent call last):
        ...
    ValueError: SGD: lr must be a finite number > 0, got inf
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from ember import backend
from ember.tensor import Tensor

__all__ = ["check_lr", "is_lr"]


def is_lr(value: Any, *, allow_zero: bool = False) -> bool:
    """Whether ``value`` is a learning rate: a finite real number > 0 (>= 0 with ``allow_zero``:
    a schedule may start a warmup at 0) that is not a bool (``True`` is not a learning rate).

    Example:
        >>> from ember.optim.lr import is_lr
        >>> is_lr(0.1), is_lr(float("inf")), is_lr(True), is_lr(0), is_lr(0, allow_zero=True)
        (True, False, False, False, True)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return bool(math.isfinite(value) and (value >= 0 if allow_zero else value > 0))


def check_lr(value: Any, what: str, *, allow_zero: bool = False,
             need: str = "a finite number > 0", message: str = "{what} must be {need}, got {got}",
             where: Callable[[], str] | str = "") -> Any:
    """``value`` when :func:`is_lr`, else a ValueError built from ``message`` (``what`` names the
    owner and the argument, ``need`` what it must be, ``got`` the value as given, ``where`` a
    string or a function called only on failure, e.g. for the step count).

    A one-element array (or Tensor) counts as its number, shown with 7 digits; a traced one is
    not known until it runs (inside ``ember.jit``) and is returned unchecked.

    Example:
        >>> from ember.optim.lr import check_lr
        >>> check_lr(-1.0, "constant: lr", need="> 0")
        Traceback (most recent call last):
            ...
        ValueError: constant: lr must be > 0, got -1.0
    """
    number, got = value.data if isinstance(value, Tensor) else value, repr(value)
    if hasattr(number, "shape") and not isinstance(number, bool):
        if backend.is_traced(number):
            return value
        try:
            number = float(backend.get().to_numpy(number))
        except (TypeError, ValueError):
            raise ValueError(_message(message, what, need, f"an array of shape "
                                      f"{tuple(number.shape)}", where)) from None
        got = f"{number:.7g}"
        got += ".0" if got.lstrip("-").isdigit() else ""
    if not is_lr(number, allow_zero=allow_zero):
        raise ValueError(_message(message, what, need, got, where))
    return value


def _message(message: str, what: str, need: str, got: str, where: Callable[[], str] | str
             ) -> str:
    return message.format(what=what, need=need, got=got,
                          where=where() if callable(where) else where)
