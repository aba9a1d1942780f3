"""Models from plain dicts: ``nn.from_config(entries, input_shape)`` and ``model.config()``.

Each entry is a dict with a ``"type"`` and that type's fields (:data:`LAYER_TYPES` lists them).
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

from collections.abc import Callable, Sequence
from typing import Any

from ember.creation import zeros
from ember.function import no_grad
from ember.nn import activations as _act
from ember.nn.containers import Sequential
from ember.nn.layers import (
    BatchNorm1D,
    BatchNorm2D,
    Dropout,
    Flatten,
    Identity,
    Input,
    LayerNorm,
    Linear,
    check_size,
)
from ember.nn.module import Module

__all__ = ["from_config", "to_config", "LAYER_TYPES"]

Shape = tuple[int, ...]
_REQUIRED = object()


class _Type:
    """One entry type: its fields (required ones map to ``_REQUIRED``) and its builder."""

    def __init__(self, fields: dict[str, Any], build: Callable[..., tuple[list[Module], Any]]
                 ) -> None:
        self.fields = fields
        self.build = build

    def describe(self) -> str:
        return ", ".join(f"{k} (required)" if v is _REQUIRED else k
                         for k, v in self.fields.items()) or "no fields"


class ConfigError(ValueError):
    """A config entry that cannot be built: names the entry, the problem and the valid values."""


def _need(shape: Shape | None, where: str, what: str) -> Shape:
    if shape is None:
        raise ConfigError(f"{where}: cannot infer {what}: give it in the entry or pass "
                          f"from_config(..., input_shape=...)")
    return shape


def _probe(shape: Shape | None, fn: Callable[[Any], Any], where: str) -> Shape | None:
    """The per-sample output shape of ``fn`` on a zero batch of one (no parameters involved)."""
    if shape is None:
        return None
    try:
        with no_grad():
            return tuple(fn(zeros((1, *shape))).shape[1:])
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from e


def _activation_modules(spec: Any, where: str) -> list[Module]:
    act = _build_activation(spec, where)
    return [] if act is None else [act]


def _build_activation(spec: Any, where: str) -> Module | None:
    if spec is None:
        return None
    if isinstance(spec, dict):
        name = spec.get("type")
        if name not in _act.ACTIVATIONS:
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


# -- builders: (fields, per-sample input shape or None, where) -> (modules, output shape) --------

def _input(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
    layer = Input(f["shape"])
    if shape is not None and not _shape_fits(layer.shape, shape):
        raise ConfigError(f"{where}: input shape {tuple(f['shape'])} disagrees with "
                          f"input_shape={shape}")
    return [layer], tuple(n for n in layer.shape) if None not in layer.shape else shape


def _shape_fits(want: tuple[int | None, ...], got: Shape) -> bool:
    return len(want) == len(got) and all(w is None or w == g for w, g in zip(want, got))


def _sizes(f: dict[str, Any], where: str, kind: str, *names: str) -> None:
    """The sizes of an entry are positive integers (not 3.7, not true), named in the error."""
    for name in names:
        value = f[name]
        if value is not None:
            try:
                check_size("", name, value)
            except ValueError:
                raise ConfigError(f"{where} ({kind!r}): {name} must be a positive integer, got "
                                  f"{value!r}") from None


def _dense(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
    _sizes(f, where, "dense", "units", "in_features")
    n_in = f["in_features"]
    if n_in is None:
        n_in = _need(shape, where, "in_features")[-1]
    elif shape is not None and shape[-1] != n_in:
        raise ConfigError(f"{where}: in_features={n_in} but the input has shape (None, "
                          f"{', '.join(map(str, shape))})")
    act = _build_activation(f["activation"], where)
    layer = Linear(n_in, f["units"], bias=f["bias"], activation=act, init=f["init"])
    mods: list[Module] = [layer]
    if f["dropout"]:
        mods.append(Dropout(f["dropout"]))
    out = None if shape is None else (*shape[:-1], int(f["units"]))
    return mods, out


def _conv(ndim: int) -> Callable[..., tuple[list[Module], Any]]:
    def build(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
        from ember.nn.conv import Conv1D, Conv2D
        from ember.ops.conv import conv1d, conv2d

        c_in = f["in_channels"]
        if c_in is None:
            c_in = _need(shape, where, "in_channels")[0]
        cls = Conv2D if ndim == 2 else Conv1D
        layer = cls(c_in, f["filters"], _tuple(f["kernel_size"]), stride=_tuple(f["stride"]),
                    padding=_tuple(f["padding"]), dilation=_tuple(f["dilation"]),
                    groups=f["groups"], bias=f["bias"], init=f["init"])
        op = conv2d if ndim == 2 else conv1d
        k = layer.kernel_size if ndim == 2 else (layer.kernel_size,)

        def run(x: Any) -> Any:  # a zero weight: calling the layer would draw its weights now,
            # keyed by a path it does not have yet
            w = zeros((layer.out_channels, x.shape[1] // layer.groups, *k))
            return op(x, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)

        return [layer, *_activation_modules(f["activation"], where)], _probe(shape, run, where)

    return build


def _pool(kind: str) -> Callable[..., tuple[list[Module], Any]]:
    def build(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
        from ember.nn import conv

        if kind.startswith("adaptive"):
            cls = conv.AdaptiveMaxPool2D if kind == "adaptivemax" else conv.AdaptiveAvgPool2D
            layer: Module = cls(_tuple(f["output_size"]))
            return [layer], _probe(shape, layer, where)
        options = {k: _tuple(v) for k, v in f.items() if k not in ("pool_size", "stride",
                                                                     "padding")}
        cls = conv.MaxPool2D if kind == "max" else conv.AvgPool2D
        layer = cls(_tuple(f["pool_size"]), stride=_tuple(f["stride"]),
                    padding=_tuple(f["padding"]), **options)
        return [layer], _probe(shape, layer, where)

    return build


def _global_avg(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
    from ember.nn.conv import GlobalAvgPool2D

    layer = GlobalAvgPool2D()
    return [layer], _probe(shape, layer, where)


def _flatten(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
    layer = Flatten(f["start_axis"], f["end_axis"])
    out = None
    if shape is not None:
        out = _probe(shape, layer, where)
    return [layer], out


def _dropout(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
    return [Dropout(f["rate"])], shape


def _batchnorm(kind: str) -> Callable[..., tuple[list[Module], Any]]:
    def build(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
        n = f["num_features"]
        if n is None:
            n = _need(shape, where, "num_features")[0]
        ndim = None if shape is None else len(shape)
        allowed = {"batchnorm": (1, 2, 3), "batchnorm1d": (1, 2), "batchnorm2d": (3,)}[kind]
        if ndim is not None and ndim not in allowed:
            forms = " or ".join(["(C,)", "(C, L)", "(C, H, W)"][i - 1] for i in allowed)
            raise ConfigError(f"{where}: {kind} needs samples of shape {forms}; got {shape}")
        spatial = kind == "batchnorm2d" or (kind == "batchnorm" and ndim == 3)
        cls = BatchNorm2D if spatial else BatchNorm1D
        return [cls(n, eps=f["eps"], momentum=f["momentum"])], shape

    return build


def _layernorm(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
    ns = f["normalized_shape"]
    if ns is None:
        ns = _need(shape, where, "normalized_shape")[-1:]
    return [LayerNorm(_tuple(ns), eps=f["eps"])], shape


def _identity(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
    return [Identity()], shape


def _activation_entry(f: dict[str, Any], shape: Shape | None, where: str
                      ) -> tuple[list[Module], Any]:
    return _activation_modules(f["activation"], where), shape


def _named_activation(name: str) -> Callable[..., tuple[list[Module], Any]]:
    def build(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
        return [_act.ACTIVATIONS[name](**f)], shape

    return build


def _sequential(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
    model, out = _build_list(f["layers"], shape, where + ".")
    return [model], out


def _tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


_R = _REQUIRED
_BN_FIELDS = {"momentum": 0.1, "eps": 1e-5, "num_features": None}
_CONV_FIELDS = {"filters": _R, "kernel_size": _R, "stride": 1, "padding": 0, "dilation": 1,
                "groups": 1, "bias": True, "activation": None, "init": None, "in_channels": None}

#: type -> its fields and defaults (``_REQUIRED`` for a field that must be given)
LAYER_TYPES: dict[str, _Type] = {
    "input": _Type({"shape": _R}, _input),
    "dense": _Type({"units": _R, "activation": None, "bias": True, "dropout": 0.0, "init": None,
                    "in_features": None}, _dense),
    "conv2d": _Type(_CONV_FIELDS, _conv(2)),
    "maxpool2d": _Type({"pool_size": _R, "stride": None, "padding": 0, "dilation": 1,
                        "ceil_mode": False}, _pool("max")),
    "avgpool2d": _Type({"pool_size": _R, "stride": None, "padding": 0, "ceil_mode": False,
                        "count_include_pad": True}, _pool("avg")),
    "globalavgpool2d": _Type({}, _global_avg),
    "flatten": _Type({"start_axis": 1, "end_axis": -1}, _flatten),
    "dropout": _Type({"rate": _R}, _dropout),
    "batchnorm": _Type(_BN_FIELDS, _batchnorm("batchnorm")),
    "batchnorm1d": _Type(_BN_FIELDS, _batchnorm("batchnorm1d")),
    "batchnorm2d": _Type(_BN_FIELDS, _batchnorm("batchnorm2d")),
    "layernorm": _Type({"eps": 1e-5, "normalized_shape": None}, _layernorm),
    "identity": _Type({}, _identity),
    "activation": _Type({"activation": _R}, _activation_entry),
    "sequential": _Type({"layers": _R}, _sequential),
    "relu": _Type({}, _named_activation("relu")),
    "leaky_relu": _Type({"alpha": 0.01}, _named_activation("leaky_relu")),
    "prelu": _Type({"num_parameters": 1, "init": 0.25}, _named_activation("prelu")),
    "sigmoid": _Type({}, _named_activation("sigmoid")),
    "tanh": _Type({}, _named_activation("tanh")),
    "softmax": _Type({"axis": -1}, _named_activation("softmax")),
    "log_softmax": _Type({"axis": -1}, _named_activation("log_softmax")),
    "gelu": _Type({"approximate": "none"}, _named_activation("gelu")),
    "softplus": _Type({}, _named_activation("softplus")),
    "conv1d": _Type(_CONV_FIELDS, _conv(1)),
    "adaptiveavgpool2d": _Type({"output_size": _R}, _pool("adaptiveavg")),
    "adaptivemaxpool2d": _Type({"output_size": _R}, _pool("adaptivemax")),
}
_ALIASES = {"linear": "dense", "conv": "conv2d", "maxpool": "maxpool2d", "avgpool": "avgpool2d"}


def _build_entry(entry: Any, shape: Shape | None, where: str) -> tuple[list[Module], Any]:
    if not isinstance(entry, dict) or "type" not in entry:
        raise ConfigError(f"{where}: each entry is a dict with a 'type'; got {entry!r}. Valid "
                          f"types: {', '.join(LAYER_TYPES)}")
    kind = str(entry["type"]).strip().lower()
    kind = _ALIASES.get(kind, kind)
    if kind not in LAYER_TYPES:
        raise ConfigError(f"{where}: unknown layer type {entry['type']!r}; valid types: "
                          f"{', '.join(LAYER_TYPES)}")
    spec = LAYER_TYPES[kind]
    given = {k: v for k, v in entry.items() if k != "type"}
    unknown = [k for k in given if k not in spec.fields]
    missing = [k for k, v in spec.fields.items() if v is _REQUIRED and k not in given]
    if unknown or missing:
        problem = (f"unknown field(s) {', '.join(map(repr, unknown))}" if unknown
                   else f"missing field(s) {', '.join(map(repr, missing))}")
        raise ConfigError(f"{where} ({kind!r}): {problem}; a {kind!r} entry takes: "
                          f"{spec.describe()}")
    fields = {k: given.get(k, v) for k, v in spec.fields.items()}
    try:
        return spec.build(fields, shape, where)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where} ({kind!r}): {e}") from e


def _build_list(entries: Sequence[Any], shape: Shape | None, prefix: str
                ) -> tuple[Sequential, Any]:
    if isinstance(entries, (str, bytes, dict)) or not isinstance(entries, Sequence):
        raise ConfigError(f"from_config expects a list of layer entries (dicts), got "
                          f"{type(entries).__name__}")
    modules: list[Module] = []
    for i, entry in enumerate(entries):
        built, shape = _build_entry(entry, shape, f"{prefix}entry {i}")
        modules.extend(built)
    return Sequential(*modules), shape


def from_config(entries: Sequence[dict[str, Any]], input_shape: Sequence[int] | None = None
                ) -> Sequential:
    """Build a Sequential from a list of layer entries.

    Args:
        entries: dicts such as ``{"type": "dense", "units": 64, "activation": "relu"}``; see
            :data:`LAYER_TYPES` for every type and its fields.
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
    model, _ = _build_list(entries, shape, "")
    return model


# -- writing configs -------------------------------------------------------------------------------

def _jsonable(v: Any) -> Any:
    """Tuples as lists, and a pair of equal ints as one int (``(3, 3)`` -> ``3``)."""
    if isinstance(v, (tuple, list)):
        items = [_jsonable(x) for x in v]
        if len(items) == 2 and items[0] == items[1] and isinstance(items[0], int):
            return items[0]
        return items
    return v


def _activation_config(act: Any, where: str) -> Any:
    if act is None:
        return None
    if isinstance(act, _act._Activation):
        cfg = act.config()
        return cfg["type"] if len(cfg) == 1 else cfg
    raise ConfigError(f"{where}: the activation {act!r} has no config form; use a named "
                      f"activation ({', '.join(_act.ACTIVATIONS)})")


def _layer_config(m: Module, where: str) -> dict[str, Any]:
    if isinstance(m, _act._Activation):
        return m.config()
    if isinstance(m, Input):
        return {"type": "input", "shape": list(m.shape)}
    if isinstance(m, Linear):
        out: dict[str, Any] = {"type": "dense", "units": m.out_features}
        act = _activation_config(m.activation, where)
        if act is not None:
            out["activation"] = act
        if m.bias is None:
            out["bias"] = False
        if m.init_name is not None:
            out["init"] = m.init_name
        out["in_features"] = m.in_features
        return out
    if isinstance(m, Dropout):
        return {"type": "dropout", "rate": m.p}
    if isinstance(m, Flatten):
        out = {"type": "flatten"}
        if (m.start_axis, m.end_axis) != (1, -1):
            out.update(start_axis=m.start_axis, end_axis=m.end_axis)
        return out
    if isinstance(m, (BatchNorm1D, BatchNorm2D)):
        out = {"type": "batchnorm2d" if isinstance(m, BatchNorm2D) else "batchnorm1d",
               "num_features": m.num_features}
        if m.momentum != 0.1:
            out["momentum"] = m.momentum
        if m.eps != 1e-5:
            out["eps"] = m.eps
        return out
    if isinstance(m, LayerNorm):
        out = {"type": "layernorm", "normalized_shape": list(m.normalized_shape)}
        if m.eps != 1e-5:
            out["eps"] = m.eps
        return out
    if isinstance(m, Identity):
        return {"type": "identity"}
    if isinstance(m, Sequential):
        return {"type": "sequential", "layers": to_config(m, where + ".")}
    conv = _conv_config(m)
    if conv is not None:
        return conv
    seq = _sequence_config(m)
    if seq is not None:
        return seq
    raise ConfigError(f"{where} ({type(m).__name__}): no config form for this layer; configs "
                      f"describe these types: {', '.join(LAYER_TYPES)}")


def _conv_config(m: Module) -> dict[str, Any] | None:
    try:
        from ember.nn import conv
    except ImportError:  # pragma: no cover - the conv layers arrive with their own module
        return None
    if isinstance(m, (conv.Conv2D, conv.Conv1D)):
        out: dict[str, Any] = {"type": "conv2d" if isinstance(m, conv.Conv2D) else "conv1d",
                               "filters": m.out_channels,
                               "kernel_size": _jsonable(m.kernel_size)}
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)):
            value = _jsonable(getattr(m, name))
            if value != default:
                out[name] = value
        if m.bias is None:
            out["bias"] = False
        if getattr(m, "init_name", None) is not None:
            out["init"] = m.init_name
        out["in_channels"] = m.in_channels
        return out
    for cls, kind in ((conv.MaxPool2D, "maxpool2d"), (conv.AvgPool2D, "avgpool2d")):
        if isinstance(m, cls):
            out = {"type": kind, "pool_size": _jsonable(m.kernel_size)}
            if m.stride is not None and _jsonable(m.stride) != _jsonable(m.kernel_size):
                out["stride"] = _jsonable(m.stride)
            if _jsonable(m.padding) != 0:
                out["padding"] = _jsonable(m.padding)
            for name, default in m._options:
                if getattr(m, name) != default:
                    out[name] = _jsonable(getattr(m, name))
            return out
    for cls, kind in ((conv.AdaptiveAvgPool2D, "adaptiveavgpool2d"),
                      (conv.AdaptiveMaxPool2D, "adaptivemaxpool2d")):
        if isinstance(m, cls):
            return {"type": kind, "output_size": _jsonable(m.output_size)}
    if isinstance(m, conv.GlobalAvgPool2D):
        return {"type": "globalavgpool2d"}
    return None


def to_config(model: Sequential, prefix: str = "") -> list[dict[str, Any]]:
    """The list of entries that rebuilds ``model`` (what ``Sequential.config()`` returns).

    Example:
        >>> from ember import nn
        >>> nn.config.to_config(nn.Sequential(nn.Flatten(), nn.Dropout(0.5)))
        [{'type': 'flatten'}, {'type': 'dropout', 'rate': 0.5}]
    """
    return [_layer_config(m, f"{prefix}entry {i}") for i, m in enumerate(model)]



# -- sequence layers (ember/nn/embedding.py, norm.py, attention.py, recurrent.py) -----------------
# Each type: its class, fields and defaults, and the size that follows from the per-sample input
# shape when the entry does not give it: (field, function of the shape).

def _sequence_types() -> dict[str, tuple[type, dict[str, Any], tuple[str, Any] | None]]:
    from ember.nn import attention, embedding, norm, recurrent

    last = ("input_size", lambda s: s[-1])
    rnn = {"hidden_size": _R, "input_size": None, "num_layers": 1, "bias": True,
           "batch_first": True, "dropout": 0.0, "bidirectional": False}
    cell = {"hidden_size": _R, "input_size": None, "bias": True}
    return {
        "embedding": (embedding.Embedding, {"num_embeddings": _R, "embedding_dim": _R,
                                            "padding_idx": None}, None),
        "rmsnorm": (norm.RMSNorm, {"normalized_shape": None, "eps": None},
                    ("normalized_shape", lambda s: s[-1:])),
        "groupnorm": (norm.GroupNorm, {"num_groups": _R, "num_channels": None, "eps": 1e-5,
                                       "affine": True}, ("num_channels", lambda s: s[0])),
        "multiheadattention": (attention.MultiheadAttention,
                               {"num_heads": _R, "embed_dim": None, "dropout": 0.0,
                                "bias": True, "batch_first": True, "kdim": None,
                                "vdim": None},
                               ("embed_dim", lambda s: s[-1])),
        "transformerblock": (attention.TransformerBlock,
                             {"n_head": _R, "d_model": None, "mlp_ratio": 4, "dropout": 0.0,
                              "norm": "layer", "pre_norm": True, "causal": False,
                              "activation": "gelu", "bias": True, "norm_eps": 1e-5},
                             ("d_model", lambda s: s[-1])),
        "rnn": (recurrent.RNN, {**rnn, "nonlinearity": "tanh"}, last),
        "lstm": (recurrent.LSTM, rnn, last),
        "gru": (recurrent.GRU, rnn, last),
        "rnncell": (recurrent.RNNCell, {**cell, "nonlinearity": "tanh"}, last),
        "lstmcell": (recurrent.LSTMCell, cell, last),
        "grucell": (recurrent.GRUCell, cell, last),
    }


def _sequence_builder(kind: str) -> Callable[..., tuple[list[Module], Any]]:
    def build(f: dict[str, Any], shape: Shape | None, where: str) -> tuple[list[Module], Any]:
        cls, _, infer = _sequence_types()[kind]
        f = {k: _tuple(v) for k, v in f.items()}
        if infer is not None and f[infer[0]] is None:
            f[infer[0]] = infer[1](_need(shape, where, infer[0]))
        layer = cls(**f)
        out = None
        if shape is not None and kind in ("embedding", "rmsnorm", "groupnorm",
                                          "transformerblock"):
            out = (*shape, f["embedding_dim"]) if kind == "embedding" else shape
        return [layer], out

    return build


def _register_sequence_types() -> None:
    from ember.nn import attention, embedding, norm, recurrent  # noqa: F401 - fail early

    for kind, (_, fields, _) in _sequence_types().items():
        LAYER_TYPES[kind] = _Type(fields, _sequence_builder(kind))
    _ALIASES.update({"mha": "multiheadattention", "multihead_attention": "multiheadattention",
                     "transformer": "transformerblock", "simplernn": "rnn"})


def _sequence_config(m: Module) -> dict[str, Any] | None:
    for kind, (cls, fields, infer) in _sequence_types().items():
        if type(m) is not cls and not (kind == "transformerblock" and isinstance(m, cls)):
            continue
        out: dict[str, Any] = {"type": kind}
        for name, default in fields.items():
            value = getattr(m, name)
            value = list(value) if isinstance(value, tuple) else value
            if name in ("kdim", "vdim") and value == m.embed_dim:  # PyTorch's default
                continue
            if default is _R or value != default or (infer and name == infer[0]):
                out[name] = value
        return out
    return None


_register_sequence_types()
