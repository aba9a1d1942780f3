"""Whole models as data: the registry of Module classes and a model's architecture as JSON.

Every Module records the arguments its constructor was called with. :func:`spec` writes a model
as a JSON-serialisable tree (the class's registered name, those arguments, and the live children
of the containers ``Sequential``, ``ModuleList`` and ``ModuleDict``), and :func:`build` rebuilds
the model from that tree, looking classes up by name in the registry and calling nothing else:
every built-in ember layer is registered, and a user's class joins with :func:`register`. This is
the architecture that ``ember.save(model, path)`` writes beside the weights.

Example:
    >>> from ember import nn
    >>> @nn.register
    ... class Twice(nn.Module):
    ...     def __init__(self, width, act="relu"):
    ...         super().__init__()
    ...         self.fc = nn.Linear(width, width, activation=act)
    ...     def forward(self, x):
    ...         return self.fc(self.fc(x))
    >>> tree = nn.registry.spec(Twice(3, act="tanh"))
    >>> tree
    {'type': 'Twice', 'args': [3], 'kwargs': {'act': 'tanh'}}
    >>> nn.registry.build(tree).fc.activation
    Tanh()
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np  # dtype names only

from ember import backend

__all__ = ["register", "registered", "spec", "build", "SpecError"]

T = TypeVar("T")

_REGISTRY: dict[str, type] = {}
_NAMES: dict[type, str] = {}
#: the default of a config field that an entry must give (``nn.from_config``)
REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()
#: config entry type -> the layer class that declares it (``config_name``, ``config_aliases``)
CONFIG_TYPES: dict[str, type] = {}
CONFIG_ALIASES: dict[str, str] = {}
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


class SpecError(ValueError):
    """A model that cannot be written as data, or a tree that does not describe a model."""


def record_init(cls: type) -> None:
    """Make ``cls`` record its constructor arguments (called by ``Module.__init_subclass__``).

    The outermost constructor finishes last, so its arguments are the ones kept. Built-in
    classes (defined in ``ember``) are registered under their class name here, and any class
    that declares a ``config_name`` becomes that type of ``nn.from_config`` entry.
    """
    kind = cls.__dict__.get("config_name")
    if kind:
        CONFIG_TYPES[kind] = cls
        CONFIG_ALIASES.update(dict.fromkeys(cls.__dict__.get("config_aliases", ()), kind))
    init = cls.__dict__.get("__init__")
    builtin = cls.__module__.startswith("ember.")
    container = builtin and cls.__name__ in _CONTAINERS  # written from their live children
    if init is not None and not container and not getattr(init, "_ember_records", False):
        @functools.wraps(init)
        def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            object.__setattr__(self, "_init_args", (args, kwargs))

        recording_init._ember_records = True  # type: ignore[attr-defined]
        cls.__init__ = recording_init  # type: ignore[misc]
    if builtin and not cls.__name__.startswith("_"):
        name = cls.__name__ if cls.__name__ not in _REGISTRY else f"{cls.__module__}.{cls.__name__}"
        _REGISTRY[name] = cls
        _NAMES[cls] = name


def register(cls: type[T] | None = None, *, name: str | None = None) -> Any:
    """Class decorator: lets ``ember.load_model`` rebuild this Module class from a saved file.

    The class's constructor arguments are recorded when a model is built, and must be JSON
    values (numbers, strings, booleans, None, lists, tuples, dicts with string keys), dtypes or
    Modules. Loading looks the class up by ``name`` (default: the class name) among the
    registered classes, so the module that defines it must be imported before loading.

    Example:
        >>> from ember import nn
        >>> @nn.register(name="my_block")
        ... class Block(nn.Module):
        ...     def __init__(self, n):
        ...         super().__init__()
        ...         self.fc = nn.Linear(n, n)
        ...     def forward(self, x):
        ...         return self.fc(x)
        >>> nn.registry.registered("my_block") is Block
        True
    """
    def deco(c: type[T]) -> type[T]:
        from ember.nn.module import Module

        if not (isinstance(c, type) and issubclass(c, Module)):
            raise TypeError(f"nn.register decorates Module subclasses; got {c!r}")
        key = c.__name__ if name is None else str(name)
        old = _REGISTRY.get(key)
        if old is not None and old is not c and (old.__module__, old.__qualname__) != (
                c.__module__, c.__qualname__):
            raise ValueError(f"nn.register: the name {key!r} is taken by "
                             f"{old.__module__}.{old.__qualname__}; give {c.__qualname__} "
                             f"another one: @nn.register(name='...')")
        _REGISTRY[key] = c  # a class defined again (a re-run notebook cell) replaces itself
        _NAMES[c] = key
        return c

    return deco if cls is None else deco(cls)


def registered(name: str) -> type:
    """The Module class registered under ``name``.

    Example:
        >>> from ember import nn
        >>> nn.registry.registered("Linear") is nn.Linear
        True
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SpecError(f"no Module class is registered as {name!r}: import the module that "
                        f"defines it (decorated with @nn.register) before loading") from None


# -- writing ---------------------------------------------------------------------------------------

def _value(v: Any, where: str) -> Any:
    from ember.nn.module import Module

    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else {"$float": repr(f)}
    if isinstance(v, Module):
        return {"$module": spec(v, where)}
    if isinstance(v, tuple):
        return {"$tuple": [_value(x, f"{where}[{i}]") for i, x in enumerate(v)]}
    if isinstance(v, list):
        return [_value(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, Mapping):
        if not all(isinstance(k, str) for k in v):
            raise SpecError(f"{where}: a dict with non-string keys cannot be saved")
        return {"$dict": {k: _value(x, f"{where}[{k!r}]") for k, x in v.items()}}
    if isinstance(v, (np.dtype, type)) and _is_dtype(v):
        return {"$dtype": np.dtype(v).name}
    kind = (f"the type {v.__qualname__}" if isinstance(v, type) else "a function"
            if callable(v) else f"a {type(v).__name__}")
    raise SpecError(f"{where} is {kind}, which a model file cannot hold (it holds JSON values, "
                    f"dtypes and Modules, so that loading runs no code): pass a name instead "
                    f"(e.g. activation='relu', init='xavier_uniform', dtype='float64') or save "
                    f"the weights only with ember.save(model.state_dict(), path)")


def _is_dtype(v: Any) -> bool:
    """A dtype object or a scalar type (``np.float32``, ``jnp.float32``), not ``float``/``int``
    (Python's types are written as they are passed, which is not data)."""
    if isinstance(v, type) and v in (bool, int, float, complex, str, bytes, object):
        return False
    try:
        np.dtype(v)
    except TypeError:
        return False
    return True


def spec(model: Any, where: str = "model") -> dict[str, Any]:
    """The JSON-serialisable tree that :func:`build` turns back into ``model``'s architecture.

    Raises:
        SpecError: naming the module path and argument that cannot be written (a function, an
            unregistered class).

    Example:
        >>> from ember import nn
        >>> nn.registry.spec(nn.Sequential(nn.Linear(2, 1), nn.Sigmoid()))["modules"]["0"]
        {'type': 'Linear', 'args': [2, 1], 'kwargs': {}}
    """
    cls = type(model)
    name = _NAMES.get(cls)
    if name is None:
        raise SpecError(f"{where} ({cls.__qualname__}) is not a registered Module class: "
                        f"decorate it with @nn.register so that ember.load_model can rebuild "
                        f"it, or save the weights only with ember.save(model.state_dict(), "
                        f"path)")
    from ember.nn.containers import ModuleDict, ModuleList, Sequential

    if isinstance(model, (Sequential, ModuleList, ModuleDict)) and "_init_args" not in vars(model):
        # a container built from its children (not MLP, which records its own arguments)
        children = {k: spec(m, f"{where}.{k}") for k, m in model._modules.items()
                    if m is not None}
        return {"type": name, "modules": children}
    args, kwargs = getattr(model, "_init_args", ((), {}))
    return {"type": name,
            "args": [_value(a, f"{where} ({name}) argument {i}") for i, a in enumerate(args)],
            "kwargs": {k: _value(v, f"{where} ({name}) argument {k!r}")
                       for k, v in kwargs.items()}}


# -- reading ---------------------------------------------------------------------------------------

def _decode(v: Any, where: str) -> Any:
    if isinstance(v, list):
        return [_decode(x, where) for x in v]
    if not isinstance(v, dict):
        return v
    if len(v) != 1:
        raise SpecError(f"{where}: malformed value {v!r}")
    (tag, inner), = v.items()
    if tag == "$module":
        return build(inner, where)
    if tag == "$tuple":
        return tuple(_decode(x, where) for x in _expect(inner, list, where))
    if tag == "$dict":
        return {k: _decode(x, where) for k, x in _expect(inner, dict, where).items()}
    if tag == "$dtype":
        return backend.as_dtype(_expect(inner, str, where))
    if tag == "$float" and inner in ("inf", "-inf", "nan"):
        return float(inner)
    raise SpecError(f"{where}: unknown value tag {tag!r}")


def _expect(v: Any, kind: type, where: str) -> Any:
    if not isinstance(v, kind):
        raise SpecError(f"{where}: expected a {kind.__name__}, got {type(v).__name__}")
    return v


def build(tree: Mapping[str, Any], where: str = "model") -> Any:
    """Rebuild the model that :func:`spec` described (fresh weights; load them afterwards).

    Only registered classes are called, with the recorded arguments; nothing else runs.

    Example:
        >>> from ember import nn
        >>> nn.registry.build({"type": "Linear", "args": [4, 2], "kwargs": {"bias": False}})
        Linear(in_features=4, out_features=2, bias=False)
    """
    tree = _expect(tree, dict, where)
    cls = registered(_expect(tree.get("type"), str, where))
    name = tree["type"]
    if "modules" in tree:  # a container, from its children
        from ember.nn.containers import ModuleList, Sequential

        children = {k: build(m, f"{where}.{k}")
                    for k, m in _expect(tree["modules"], dict, where).items()}
        if issubclass(cls, ModuleList):
            return cls(list(children.values()))
        if issubclass(cls, Sequential) and list(children) == [str(i) for i in
                                                              range(len(children))]:
            return cls(*children.values())
        return cls(children)
    args = _decode(_expect(tree.get("args", []), list, where), where)
    kwargs = _decode({"$dict": _expect(tree.get("kwargs", {}), dict, where)}, where)
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise SpecError(f"{where} ({name}): its saved arguments do not build it: {e}") from e
