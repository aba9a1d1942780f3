"""Models from plain dicts: ``nn.from_config(entries, input_shape)`` and ``model.config()``.

Each entry is a dict with a ``"type"`` and that type's fields. A layer class is a type by
declaring ``config_name`` (and optionally ``config_aliases``); it writes its own entry in
``config()`` and may build itself in the class method ``build_config(fields, shape, where)``.
Without them, the fields are its constructor's arguments (``config_fields`` narrows them), sizes
that follow from the input are filled by ``config_infer`` (field -> function of the per-sample
input shape), and the entry is written from the layer's attributes of the same names. So adding a
layer is the class plus its export: :data:`LAYER_TYPES` lists what is registered.

Sizes that follow from the input (``in_features`` of a dense layer, ``in_channels`` of a
convolution, ``num_features`` of a batch norm) are inferred from ``input_shape``, the shape of one
sample without the batch axis, and may be given explicitly instead. ``model.config()`` writes them
out explicitly, so ``nn.from_config(model.config())`` needs no ``input_shape`` and rebuilds the same
structure; with the same ``ember.manual_seed`` it also has the same initial weights, because each
weight is keyed by its path.

A dense entry's ``"dropout"`` becomes a Dropout layer after it (and a conv2d entry's
``"activation"`` an activation layer after it), so ``config()`` lists those as entries of their own.

Example:
    >>> import ember
    >>> from ember import nn
    >>> model = nn.from_config([
    ...     {"type": "dense", "units": 16, "activation": "relu", "dropout": 0.1},
    ...     {"type": "dense", "units": 3},
    ... ], input_shape=(4,))
    >>> model(ember.zeros(2, 4)).shape
    (2, 3)
    >>> model.config()[0]
    {'type': 'dense', 'units': 16, 'activation': 'relu', 'in_features': 4}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ember.creation import zeros
from ember.function import no_grad
from ember.nn import activations as _act
from ember.nn.module import Module
from ember.nn.registry import CONFIG_ALIASES, CONFIG_TYPES, REQUIRED

__all__ = ["from_config", "to_config", "takes_images", "LAYER_TYPES", "ConfigError", "REQUIRED"]

Shape = tuple[int, ...]
Built = tuple[list[Module], Any]
#: entry type -> layer class, filled by the classes (see the module docs)
LAYER_TYPES: Mapping[str, type] = CONFIG_TYPES


class ConfigError(ValueError):
    """A config entry that cannot be built: names the entry, the problem and the valid values."""


# -- helpers for layers' own build_config / config ------------------------------------------------

def need(shape: Shape | None, where: str, what: str) -> Shape:
    """``shape``, or the error that ``what`` cannot be inferred without it."""
    if shape is None:
        raise ConfigError(f"{where}: cannot infer {what}: give it in the entry or pass "
                          f"from_config(..., input_shape=...)")
    return shape


def probe(shape: Shape | None, fn: Callable[[Any], Any], where: str) -> Shape | None:
    """The per-sample output shape of ``fn`` on a zero batch of one (no parameters involved)."""
    if shape is None:
        return None
    try:
        with no_grad():
            return tuple(fn(zeros((1, *shape))).shape[1:])
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from e


def activation_modules(spec: Any, where: str) -> list[Module]:
    """The activation an entry's ``"activation"`` field names, as a list of zero or one module."""
    act = build_activation(spec, where)
    return [] if act is None else [act]


def build_activation(spec: Any, where: str) -> Module | None:
    """The activation module of a name or an entry dict (None for None)."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        if spec.get("type") not in _act.ACTIVATIONS:
            raise ConfigError(f"{where}: unknown activation {spec!r}; valid types: "
                              f"{', '.join(_act.ACTIVATIONS)}")
        modules, _ = _build_entry(spec, None, where)
        return modules[0]
    try:
        act = _act.get_activation(spec)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {e}") from e
    if act is not None and not isinstance(act, Module):
        raise ConfigError(f"{where}: an activation in a config must be a name or an entry dict")
    return act


def activation_config(act: Any, where: str) -> Any:
    """An activation module as an entry's ``"activation"`` field (a name when it has no
    options)."""
    if act is None:
        return None
    if isinstance(act, _act._Activation):
        cfg = act.config()
        return cfg["type"] if len(cfg) == 1 else cfg
    raise ConfigError(f"{where}: the activation {act!r} has no config form; use a named "
                      f"activation ({', '.join(_act.ACTIVATIONS)})")


def as_tuple(v: Any) -> Any:
    """Lists (as a config file gives them) as tuples."""
    return tuple(v) if isinstance(v, list) else v


def jsonable(v: Any) -> Any:
    """Tuples as lists, and a pair of equal ints as one int (``(3, 3)`` -> ``3``)."""
    if isinstance(v, (tuple, list)):
        items = [jsonable(x) for x in v]
        if len(items) == 2 and items[0] == items[1] and isinstance(items[0], int):
            return items[0]
        return items
    return v


# -- the generic form: constructor arguments ---------------------------------------------------

def _fields(cls: type) -> dict[str, Any]:
    """A type's fields and defaults: the ``config_fields`` of the class that declares its
    ``config_name`` (or of the nearest base that declares them first), else the constructor's
    arguments."""
    for klass in cls.__mro__:
        if "config_fields" in klass.__dict__:
            return dict(klass.__dict__["config_fields"])
        if "config_name" in klass.__dict__:
            break
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    inferred = getattr(cls, "config_infer", {})  # sizes from the input: optional in an entry
    return {p.name: None if p.name in inferred else REQUIRED if p.default is p.empty
            else p.default for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _generic_build(cls: type, f: dict[str, Any], shape: Shape | None, where: str) -> Built:
    f = {k: as_tuple(v) for k, v in f.items()}
    for name, infer in getattr(cls, "config_infer", {}).items():
        if f.get(name) is None:
            f[name] = infer(need(shape, where, name))
    layer = cls(**f)
    out = getattr(layer, "config_output_shape", lambda s: None)(shape)
    return [layer], None if shape is None else out


def generic_config(m: Module) -> dict[str, Any]:
    """The entry of a layer without its own ``config()``: its type, then each field that is
    required, inferred or not at its default, read from the attribute of the same name (else
    from the constructor's recorded argument)."""
    cls = type(m)
    infer = getattr(cls, "config_infer", {})
    args, kwargs = getattr(m, "_init_args", ((), {}))
    try:
        given = inspect.signature(cls.__init__).bind(m, *args, **kwargs).arguments
    except TypeError:
        given = {}
    out: dict[str, Any] = {"type": cls.config_name}  # type: ignore[attr-defined]
    for name, default in _fields(cls).items():
        value = getattr(m, name) if hasattr(m, name) else given.get(name, default)
        value = list(value) if isinstance(value, tuple) else value
        if default is REQUIRED or value != default or name in infer:
            out[name] = value
    return out


# -- building --------------------------------------------------------------------------------------

def _kinds() -> str:
    return ", ".join(sorted(CONFIG_TYPES))


def _build_entry(entry: Any, shape: Shape | None, where: str) -> Built:
    if not isinstance(entry, dict) or "type" not in entry:
        raise ConfigError(f"{where}: each entry is a dict with a 'type'; got {entry!r}. Valid "
                          f"types: {_kinds()}")
    kind = str(entry["type"]).strip().lower()
    kind = CONFIG_ALIASES.get(kind, kind)
    if kind not in CONFIG_TYPES:
        raise ConfigError(f"{where}: unknown layer type {entry['type']!r}; valid types: "
                          f"{_kinds()}")
    cls = CONFIG_TYPES[kind]
    fields = _fields(cls)
    given = {k: v for k, v in entry.items() if k != "type"}
    unknown = [k for k in given if k not in fields]
    missing = [k for k, v in fields.items() if v is REQUIRED and k not in given]
    if unknown or missing:
        problem = (f"unknown field(s) {', '.join(map(repr, unknown))}" if unknown
                   else f"missing field(s) {', '.join(map(repr, missing))}")
        takes = ", ".join(f"{k} (required)" if v is REQUIRED else k
                          for k, v in fields.items()) or "no fields"
        raise ConfigError(f"{where} ({kind!r}): {problem}; a {kind!r} entry takes: {takes}")
    values = {k: given.get(k, v) for k, v in fields.items()}
    try:
        if hasattr(cls, "build_config"):
            result: Built = cls.build_config(values, shape, where)  # type: ignore[attr-defined]
            return result
        return _generic_build(cls, values, shape, where)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where} ({kind!r}): {e}") from e


def build_list(entries: Sequence[Any], shape: Shape | None, prefix: str) -> Built:
    """A Sequential of ``entries`` and its per-sample output shape (None when unknown)."""
    from ember.nn.containers import Sequential

    if isinstance(entries, (str, bytes, dict)) or not isinstance(entries, Sequence):
        raise ConfigError(f"from_config expects a list of layer entries (dicts), got "
                          f"{type(entries).__name__}")
    modules: list[Module] = []
    for i, entry in enumerate(entries):
        built, shape = _build_entry(entry, shape, f"{prefix}entry {i}")
        modules.extend(built)
    return [Sequential(*modules)], shape


def from_config(entries: Sequence[dict[str, Any]], input_shape: Sequence[int] | None = None
                ) -> Any:
    """Build a Sequential from a list of layer entries.

    Args:
        entries: dicts such as ``{"type": "dense", "units": 64, "activation": "relu"}``; see
            :data:`LAYER_TYPES` for every type.
        input_shape: the shape of one sample (without the batch axis), from which input sizes
            are inferred; not needed when every entry gives its sizes (as ``config()`` writes).

    Raises:
        ValueError: for an unknown type or field, or a missing field, listing the valid ones.

    Example:
        >>> from ember import nn
        >>> nn.from_config([{"type": "dense", "units": 2}], input_shape=(3,))
        Sequential(
          (0): Linear(in_features=3, out_features=2, bias=True)
        )
    """
    shape = None if input_shape is None else tuple(int(n) for n in input_shape)
    (model,), _ = build_list(entries, shape, "")
    return model


def takes_images(entries: Any) -> bool:
    """Whether a list of entries starts with, or holds, a layer that takes ``(C, H, W)`` samples
    (its class sets ``config_images``), so that image data must not be flattened for it.

    Example:
        >>> from ember.nn.config import takes_images
        >>> takes_images([{"type": "conv2d", "filters": 4, "kernel_size": 3}]), takes_images([])
        (True, False)
    """
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict):
            kind = str(e.get("type", "")).lower()
            cls = CONFIG_TYPES.get(CONFIG_ALIASES.get(kind, kind))
            if getattr(cls, "config_images", False) or takes_images(e.get("layers")):
                return True
    return False


# -- writing ---------------------------------------------------------------------------------------

def layer_config(m: Module, where: str) -> dict[str, Any]:
    """The entry of one layer: its own ``config()``, else the generic form of its type."""
    kind = getattr(type(m), "config_name", "")
    if not kind:
        raise ConfigError(f"{where} ({type(m).__name__}): no config form for this layer; "
                          f"configs describe these types: {_kinds()}")
    if kind == "sequential":  # a container: its entries, nested
        return {"type": kind, "layers": to_config(m, where + ".")}
    own = getattr(m, "config", None)
    if own is None:
        return generic_config(m)
    out: dict[str, Any] = own(where) if "where" in inspect.signature(own).parameters else own()
    return out


def to_config(model: Any, prefix: str = "") -> list[dict[str, Any]]:
    """The list of entries that rebuilds ``model`` (what ``Sequential.config()`` returns).

    Example:
        >>> from ember import nn
        >>> nn.config.to_config(nn.Sequential(nn.Flatten(), nn.Dropout(0.5)))
        [{'type': 'flatten'}, {'type': 'dropout', 'rate': 0.5}]
    """
    return [layer_config(m, f"{prefix}entry {i}") for i, m in enumerate(model)]
