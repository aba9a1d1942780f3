"""Parameter: a tensor that a Module registers as learnable, with optional lazy initialisation.

A lazy parameter knows its shape, dtype and initialiser but draws its values only when they are
first needed, keyed by its path in the outermost module that holds it (see :mod:`ember.nn.init`),
so that a model's initial weights do not depend on the order in which it was built.

Example:
    >>> from ember import nn
    >>> p = nn.Parameter(shape=(2, 3), init="zeros")
    >>> p.is_materialized, p.shape
    (False, (2, 3))
    >>> p.tolist()[0], p.is_materialized
    ([0.0, 0.0, 0.0], True)
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any

from ember import backend
from ember.nn import init as _init
from ember.tensor import Tensor, as_array

if TYPE_CHECKING:
    from ember.nn.module import Module

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A tensor that a Module registers as a learnable parameter (``requires_grad=True``).

    Give it values (``Parameter(ember.randn(3, 2))``), or a ``shape`` and an ``init`` to create it
    lazily: then the values are drawn the first time they are needed, from the key of the
    parameter's path in the outermost module and the seed in force at construction (see
    :mod:`ember.nn.init`). ``shape``, ``dtype`` and ``ndim`` never trigger the draw.

    Args:
        data: the values (a Tensor, array or nested lists), or None for a lazy parameter.
        requires_grad: whether the parameter is trained.
        shape: the shape of a lazy parameter.
        init: the initialiser of a lazy parameter, a name (``"xavier_uniform"``) or a callable
            that takes the tensor and rebinds its ``.data`` (``nn.init.xavier_uniform_``).
        dtype: the element type (default float32 for lazy parameters).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> p = nn.Parameter(ember.zeros(2))
        >>> p.requires_grad, p.shape
        (True, (2,))
    """

    __slots__ = ("_lazy", "_owner", "_pname")

    _lazy: _init.LazyInit | None
    _owner: Any
    _pname: str

    def __init__(self, data: Any = None, requires_grad: bool = True, *,
                 shape: tuple[int, ...] | None = None, init: Any = None,
                 dtype: Any = None) -> None:
        self._owner = None
        self._pname = ""
        self.grad = None
        self._ctx = None
        self.requires_grad = False
        if data is not None:
            if shape is not None or init is not None:
                raise TypeError("Parameter takes either data or shape= and init=, not both")
            self._lazy = None
            self.data = as_array(data.data if isinstance(data, Tensor) else data, dtype)
        else:
            if shape is None or init is None:
                raise TypeError(
                    "Parameter needs data, or shape= and init= for a lazily initialised one, "
                    "e.g. Parameter(shape=(3, 2), init='xavier_uniform')"
                )
            dt = backend.default_float if dtype is None else backend.as_dtype(dtype)
            self._lazy = _init.LazyInit(tuple(shape), dt, _init.get(init))
        if requires_grad:
            self.requires_grad_(True)

    # the slot ``data`` is unset until a lazy parameter is drawn: only then is this called
    def __getattr__(self, name: str) -> Any:
        if name == "data" and self._lazy is not None:
            self.materialize()
            return self.data
        raise AttributeError(f"'Parameter' object has no attribute {name!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        lazy = self._lazy
        return lazy.shape if lazy is not None else tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        lazy = self._lazy
        return lazy.dtype if lazy is not None else super().dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def is_materialized(self) -> bool:
        """False while a lazy parameter has not drawn its values yet."""
        return self._lazy is None

    def path(self) -> str:
        """The dotted path of this parameter in the outermost module that holds it."""
        owner = self._owner() if self._owner is not None else None
        if owner is None:
            return self._pname
        return owner._path_prefix() + self._pname

    def materialize(self, path: str | None = None) -> Parameter:
        """Draw a lazy parameter's values now (keyed by ``path``, default: :meth:`path`)."""
        lazy = self._lazy
        if lazy is not None:
            lazy.draw(self, self.path() if path is None else path)
            self._lazy = None
        return self

    def _set_owner(self, module: Module, name: str) -> None:
        owner = self._owner() if self._owner is not None else None
        if owner is None:  # the first live owner names the parameter (see Module._set_parent)
            self._owner = weakref.ref(module)
            self._pname = name

    def __reduce_ex__(self, protocol: Any) -> Any:
        self.materialize()
        return (_rebuild_parameter, (self.data, self.requires_grad))

    def __repr__(self) -> str:
        if self._lazy is not None:
            return f"Parameter({self._lazy!r})"
        return "Parameter containing:\n" + super().__repr__()


def _rebuild_parameter(data: Any, requires_grad: bool) -> Parameter:
    return Parameter(data, requires_grad=requires_grad)
