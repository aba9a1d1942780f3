"""ONNX export: ``ember.onnx.export(model, example_input, path)`` writes an ONNX file that
onnxruntime, TensorRT or a browser runtime can run (needs the ``onnx`` package: ``pip install
"ember[onnx]"``).

The model is exported as it computes in eval mode (Dropout off, BatchNorm on its running
statistics). Conversion walks the module tree with a table of converters, one per layer class
(:data:`CONVERTERS`): a layer class is exported when the table has an entry for exactly that
class, and a model with a layer the table lacks (a custom ``forward``) is refused with an error
that names the layer. A new layer is one entry::

    @converter(nn.Identity)
    def _identity(g, m, x):
        return x

where ``g`` is the :class:`Graph` being built, ``m`` the layer and ``x`` the name of its input;
the converter returns the name of its output (``g.node(...)`` adds a node and returns its output
name, ``g.const(array)`` an initializer, ``g.input_shape(m)`` the shape ``m`` saw on the example).

Only the batch axis is dynamic, so converters may use the example's other sizes: ``ceil_mode``'s
partial windows become explicit padding, and an adaptive pool becomes a global pool, one plain
pool (equal windows) or per-window slices and reductions (PyTorch's uneven windows).

Example:
    >>> import os, tempfile
    >>> import numpy as np, onnxruntime
    >>> import ember
    >>> from ember import nn
    >>> model = nn.Sequential(nn.Linear(3, 8, activation="relu"), nn.Linear(8, 2))
    >>> path = os.path.join(tempfile.mkdtemp(), "mlp.onnx")
    >>> ember.onnx.export(model, ember.ones(1, 3), path)
    >>> session = onnxruntime.InferenceSession(path)
    >>> x = np.ones((5, 3), np.float32)
    >>> bool(np.allclose(session.run(None, {"input": x})[0], model(x).numpy(), atol=1e-6))
    True
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np  # host-side: initializers are NumPy arrays

from ember import nn
from ember.function import no_grad
from ember.nn import activations as _act
from ember.nn import conv as _conv
from ember.nn import layers as _layers
from ember.nn.module import Module
from ember.ops.conv import _adaptive_args, _padding, _pair, _pool_args, _single
from ember.tensor import Tensor

__all__ = ["export", "converter", "CONVERTERS", "Graph", "ExportError", "OPSET"]

#: the ONNX opset the files use (17: LayerNormalization; onnxruntime >= 1.13 runs it)
OPSET = 17

Converter = Callable[["Graph", Any, str], str]
#: layer class -> its converter (exact classes: a subclass may compute something else)
CONVERTERS: dict[type, Converter] = {}


class ExportError(ValueError):
    """A model that cannot be exported: names the layer and what to do."""


def converter(*classes: type) -> Callable[[Converter], Converter]:
    """Register a converter for one or more layer classes (see the module docstring).

    Example:
        >>> from ember import nn
        >>> converter(nn.Identity) is not None and nn.Identity in CONVERTERS
        True
    """
    def deco(fn: Converter) -> Converter:
        for cls in classes:
            CONVERTERS[cls] = fn
        return fn

    return deco


class Graph:
    """The ONNX graph under construction: nodes, initializers and the shapes the example saw.

    Example:
        >>> import numpy as np
        >>> g = Graph({}, np.float32)
        >>> g.node("Relu", [g.const(np.ones(2, np.float32))])
        'relu_2'
    """

    def __init__(self, shapes: dict[int, tuple[int, ...]], dtype: Any) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.dtype = np.dtype(dtype)
        self._shapes = shapes
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, value: Any, name: str = "const", dtype: Any = None) -> str:
        """Add an initializer (a Tensor, array or number; floats take the model's dtype)."""
        from onnx import numpy_helper

        arr = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
        if dtype is not None:
            arr = arr.astype(dtype)
        elif arr.dtype.kind == "f":
            arr = arr.astype(self.dtype)
        out = self._name(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(arr), out))
        return out

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        """Add a node ``op(inputs, **attrs)`` and return the name of its (first) output."""
        from onnx import helper

        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def input_shape(self, m: Module) -> tuple[int, ...]:
        """The shape of ``m``'s input when the example ran through the model."""
        try:
            return self._shapes[id(m)]
        except KeyError:
            raise ExportError(f"{m.path()} ({type(m).__name__}) was not called when the example "
                              f"input ran through the model; only layers on the forward path "
                              f"are exported") from None

    def convert(self, m: Module, x: str) -> str:
        """The output of layer ``m`` on input ``x``, through its converter."""
        fn = CONVERTERS.get(type(m))
        if fn is None:
            known = ", ".join(sorted({c.__name__ for c in CONVERTERS}))
            raise ExportError(f"{m.path()} ({type(m).__name__}) has no ONNX converter: ember "
                              f"exports {known}. Build the model from these layers, or add a "
                              f"converter with @ember.onnx.converter({type(m).__name__})")
        return fn(self, m, x)


def export(model: Module, example_input: Any, path: str | os.PathLike[str],
           dynamic_batch: bool = True, input_name: str = "input",
           output_name: str = "output") -> None:
    """Write ``model`` (in eval mode) as an ONNX file that takes ``example_input``'s shape.

    Args:
        model: a Module built from layers with a converter (:data:`CONVERTERS`).
        example_input: one batch (Tensor or array) that fixes the input's shape and dtype; it
            runs through the model once to record each layer's input shape.
        path: the ``.onnx`` file to write.
        dynamic_batch: the batch axis (axis 0) accepts any size (``"batch"``); False keeps the
            example's batch size.
        input_name, output_name: the names of the graph's input and output.

    Raises:
        ExportError: naming the first layer that has no ONNX equivalent.
        ImportError: when the ``onnx`` package is missing (``pip install "ember[onnx]"``).

    Example:
        >>> import os, tempfile, onnx
        >>> import ember
        >>> path = os.path.join(tempfile.mkdtemp(), "m.onnx")
        >>> ember.onnx.export(ember.nn.Linear(4, 2), ember.zeros(1, 4), path)
        >>> [n.op_type for n in onnx.load(path).graph.node]
        ['MatMul', 'Add']
    """
    try:
        import onnx
        from onnx import helper
    except ImportError as e:  # pragma: no cover - the dev extra installs it
        raise ImportError('ember.onnx.export needs the onnx package: pip install "ember[onnx]"'
                          ) from e
    if not isinstance(model, Module):
        raise TypeError(f"ember.onnx.export: expected a Module, got {type(model).__name__}")
    x = example_input if isinstance(example_input, Tensor) else Tensor(example_input)
    shapes: dict[int, tuple[int, ...]] = {}
    handles = []
    for _, m in model.named_modules():
        def hook(mod: Module, args: Any, out: Any) -> None:
            if args and isinstance(args[0], Tensor):
                shapes.setdefault(id(mod), tuple(args[0].shape))

        handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            y = model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not isinstance(y, Tensor):
        raise ExportError(f"ember.onnx.export: the model returns a {type(y).__name__}; export "
                          f"takes models with one tensor output")
    floats = y.dtype if np.dtype(y.dtype).kind == "f" else x.dtype  # indices in, floats out
    g = Graph(shapes, floats)
    out = g.convert(model, input_name)
    if g.nodes and g.nodes[-1].output[0] == out:
        g.nodes[-1].output[0] = output_name  # the last node writes the graph's output
    else:  # e.g. an identity model: ONNX needs a node between input and output
        g.nodes.append(helper.make_node("Identity", [out], [output_name], name=output_name))
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(x.dtype))
    elem_out = helper.np_dtype_to_tensor_dtype(np.dtype(y.dtype))

    def dims(shape: tuple[int, ...]) -> list[Any]:
        return ["batch" if dynamic_batch and i == 0 else n for i, n in enumerate(shape)]

    graph = helper.make_graph(
        g.nodes, type(model).__name__,
        [helper.make_tensor_value_info(input_name, elem, dims(tuple(x.shape)))],
        [helper.make_tensor_value_info(output_name, elem_out, dims(tuple(y.shape)))],
        initializer=g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ember")
    proto.ir_version = min(proto.ir_version, 8)  # onnxruntime releases lag behind onnx's IR
    onnx.checker.check_model(proto)
    onnx.save(proto, os.fspath(path))


# -- converters ------------------------------------------------------------------------------------

@converter(nn.Sequential, _layers.MLP)
def _sequential(g: Graph, m: Any, x: str) -> str:
    for child in m:
        x = g.convert(child, x)
    return x


@converter(_layers.Identity, _layers.Input, _layers.Dropout)
def _identity(g: Graph, m: Any, x: str) -> str:
    return x  # Dropout computes the identity in eval mode, the mode that is exported


@converter(_layers.Linear)
def _linear(g: Graph, m: Any, x: str) -> str:
    y = g.node("MatMul", [x, g.const(m.weight.numpy().T, "weight_t")])
    if m.bias is not None:
        y = g.node("Add", [y, g.const(m.bias, "bias")])
    if m.activation is not None:
        if not isinstance(m.activation, Module):
            raise ExportError(f"{m.path()} (Linear): its activation {m.activation!r} is a "
                              f"Python function, which has no ONNX form: use a named activation")
        y = g.convert(m.activation, y)
    return y


@converter(_layers.Flatten)
def _flatten(g: Graph, m: Any, x: str) -> str:
    shape = g.input_shape(m)
    rank = len(shape)
    start, end = m.start_axis % rank, m.end_axis % rank
    if start > 0 and end == rank - 1:
        return g.node("Flatten", [x], axis=start)
    # 0 keeps an axis's size (the batch axis stays dynamic); the axes after `end` are fixed
    target = [0] * start + [-1] + list(shape[end + 1:])
    return g.node("Reshape", [x, g.const(np.array(target, np.int64), "shape", np.int64)])


@converter(_conv.Conv2D)
def _conv2d(g: Graph, m: Any, x: str) -> str:
    (top, bottom), (left, right) = _padding(m.padding, m.kernel_size, m.stride, m.dilation,
                                            "onnx.export")
    inputs = [x, g.const(m.weight, "weight")]
    if m.bias is not None:
        inputs.append(g.const(m.bias, "bias"))
    return g.node("Conv", inputs, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                  dilations=list(m.dilation), pads=[top, left, bottom, right],
                  group=int(getattr(m, "groups", 1)))


@converter(_conv.Conv1D)
def _conv1d(g: Graph, m: Any, x: str) -> str:
    if isinstance(m.padding, str):
        _, (left, right) = _padding(m.padding, (1, m.kernel_size), (1, m.stride),
                                    (1, m.dilation), "onnx.export")
    elif isinstance(m.padding, tuple) and len(m.padding) == 2:
        left, right = _pair(m.padding, "padding", "onnx.export", minimum=0)
    else:
        left = right = _single(m.padding, "padding", "onnx.export", minimum=0)
    inputs = [x, g.const(m.weight, "weight")]
    if m.bias is not None:
        inputs.append(g.const(m.bias, "bias"))
    return g.node("Conv", inputs, kernel_shape=[m.kernel_size], strides=[m.stride],
                  dilations=[m.dilation], pads=[left, right], group=int(m.groups))


def _pool_plan(g: Graph, m: Any, dilation: Any = 1) -> tuple[Any, Any, Any, Any, Any]:
    """kernel, stride, dilation, the padding ember's kernel uses (ceil_mode's extra rows and
    columns included: exported as plain padding, whatever onnxruntime's ceil rule) and the
    padding as given, for the input shape the example saw."""
    shape = g.input_shape(m)
    x = np.broadcast_to(np.float32(0), shape)  # only its shape is read
    kernel, stride, used, dilation_, given = _pool_args(
        x, m.kernel_size, m.stride, m.padding, dilation, m.ceil_mode, "onnx.export")
    return kernel, stride, dilation_, used, given


def _onnx_pads(pads: Any) -> list[int]:
    (top, bottom), (left, right) = pads
    return [top, left, bottom, right]


def _pad_node(g: Graph, x: str, pads: Any, value: float) -> str:
    """An explicit Pad of (N, C, H, W) ``x`` by ((top, bottom), (left, right)) with ``value``."""
    (top, bottom), (left, right) = pads
    widths = np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)
    return g.node("Pad", [x, g.const(widths, "pads", np.int64), g.const(np.array(value),
                                                                        "pad_value")],
                  mode="constant")


@converter(_conv.MaxPool2D)
def _maxpool(g: Graph, m: Any, x: str) -> str:
    kernel, stride, dilation, used, _ = _pool_plan(g, m, m.dilation)
    attrs = {"kernel_shape": list(kernel), "strides": list(stride), "dilations": list(dilation)}
    if all(p < k for side, k in zip(used, kernel) for p in side):
        return g.node("MaxPool", [x], pads=_onnx_pads(used), **attrs)  # pads count as -inf
    # onnxruntime wants each pad smaller than the kernel (a dilated window may pad more)
    return g.node("MaxPool", [_pad_node(g, x, used, -np.inf)], **attrs)


@converter(_conv.AvgPool2D)
def _avgpool(g: Graph, m: Any, x: str) -> str:
    if _pair(getattr(m, "dilation", 1), "dilation", "onnx.export") != (1, 1):
        raise ExportError(f"{m.path()} ({m.describe()}): dilation {m.dilation} has no ONNX form "
                          f"in opset {OPSET} (AveragePool takes dilations from opset 19); "
                          f"export an undilated average pool")
    kernel, stride, _, used, given = _pool_plan(g, m)
    attrs = {"kernel_shape": list(kernel), "strides": list(stride)}
    if not m.count_include_pad:  # each window divides by the input elements it covers
        return g.node("AveragePool", [x], count_include_pad=0, pads=_onnx_pads(used), **attrs)
    if used == given:
        return g.node("AveragePool", [x], count_include_pad=1, pads=_onnx_pads(used), **attrs)
    # ceil_mode: the given zero padding counts in each mean, the extra rows and columns do not
    extra = tuple((0, u[1] - gv[1]) for u, gv in zip(used, given))
    return g.node("AveragePool", [_pad_node(g, x, given, 0.0)], count_include_pad=0,
                  pads=_onnx_pads(extra), **attrs)


def _adaptive(op: str, reduce: str) -> Converter:
    def convert(g: Graph, m: Any, x: str) -> str:
        shape = g.input_shape(m)
        size, windows = _adaptive_args(np.broadcast_to(np.float32(0), shape), m.output_size,
                                       "onnx.export")
        if size == (1, 1):
            return g.node(f"Global{op}Pool", [x])
        # equal windows at a constant step (e.g. the output size divides the input's): one pool
        lengths = [{e - s for s, e in w} for w in windows]
        steps = [{b[0] - a[0] for a, b in zip(w, w[1:])} or {1} for w in windows]
        if all(len(n) == 1 for n in lengths) and all(len(d) == 1 for d in steps):
            kernel = [next(iter(n)) for n in lengths]
            stride = [next(iter(d)) for d in steps]
            return g.node(f"{op}Pool", [x], kernel_shape=kernel, strides=stride)
        # uneven windows: the pool is separable, so reduce each window of H, then each of W
        for axis, axis_windows in ((2, windows[0]), (3, windows[1])):
            parts = [g.node(reduce, [g.node("Slice", [
                x, g.const(np.array([s], np.int64), "starts", np.int64),
                g.const(np.array([e], np.int64), "ends", np.int64),
                g.const(np.array([axis], np.int64), "axes", np.int64)])], axes=[axis],
                keepdims=1) for s, e in axis_windows]
            x = parts[0] if len(parts) == 1 else g.node("Concat", parts, axis=axis)
        return x

    return convert


converter(_conv.AdaptiveAvgPool2D)(_adaptive("Average", "ReduceMean"))
converter(_conv.AdaptiveMaxPool2D)(_adaptive("Max", "ReduceMax"))


@converter(_conv.GlobalAvgPool2D)
def _global_avg(g: Graph, m: Any, x: str) -> str:
    return g.node("ReduceMean", [x], axes=[2, 3], keepdims=0)


@converter(_layers.BatchNorm1D, _layers.BatchNorm2D)
def _batchnorm(g: Graph, m: Any, x: str) -> str:
    if not m.track_running_stats:
        raise ExportError(f"{m.path()} ({m.describe()}): track_running_stats=False normalises "
                          f"with batch statistics even in eval mode; ONNX export needs running "
                          f"statistics")
    c = m.num_features
    scale = m.weight if m.affine else np.ones(c)
    shift = m.bias if m.affine else np.zeros(c)
    return g.node("BatchNormalization", [x, g.const(scale, "scale"), g.const(shift, "shift"),
                                         g.const(m.running_mean, "running_mean"),
                                         g.const(m.running_var, "running_var")], epsilon=m.eps)


@converter(_layers.LayerNorm)
def _layernorm(g: Graph, m: Any, x: str) -> str:
    shape = m.normalized_shape
    scale = m.weight if m.elementwise_affine else np.ones(shape)
    shift = m.bias if m.elementwise_affine else np.zeros(shape)
    return g.node("LayerNormalization", [x, g.const(scale, "scale"), g.const(shift, "shift")],
                  axis=-len(shape), epsilon=m.eps)


def _unary(op: str) -> Converter:
    def convert(g: Graph, m: Any, x: str) -> str:
        return g.node(op, [x])

    return convert


for _cls, _op in ((_act.ReLU, "Relu"), (_act.Sigmoid, "Sigmoid"), (_act.Tanh, "Tanh"),
                  (_act.Softplus, "Softplus")):
    CONVERTERS[_cls] = _unary(_op)


@converter(_act.LeakyReLU)
def _leaky_relu(g: Graph, m: Any, x: str) -> str:
    return g.node("LeakyRelu", [x], alpha=m.alpha)


@converter(_act.PReLU)
def _prelu(g: Graph, m: Any, x: str) -> str:
    slope = m.weight.numpy()
    rank = len(g.input_shape(m))
    if m.num_parameters > 1:  # one slope per channel (axis 1), broadcast over the rest
        slope = slope.reshape(m.num_parameters, *([1] * (rank - 2)))
    return g.node("PRelu", [x, g.const(slope, "slope")])


@converter(_act.Softmax)
def _softmax(g: Graph, m: Any, x: str) -> str:
    return g.node("Softmax", [x], axis=m.axis)


@converter(_act.LogSoftmax)
def _log_softmax(g: Graph, m: Any, x: str) -> str:
    return g.node("LogSoftmax", [x], axis=m.axis)


@converter(_act.GELU)
def _gelu(g: Graph, m: Any, x: str) -> str:
    # opset 17 has no Gelu node: 0.5 x (1 + erf(x / sqrt 2)), or the tanh form
    if m.approximate == "tanh":
        cube = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Add", [x, g.node("Mul", [cube, g.const(0.044715, "c")])])
        t = g.node("Tanh", [g.node("Mul", [inner, g.const(math.sqrt(2 / math.pi), "c")])])
    else:
        t = g.node("Erf", [g.node("Mul", [x, g.const(1 / math.sqrt(2), "c")])])
    half_x = g.node("Mul", [x, g.const(0.5, "half")])
    return g.node("Mul", [half_x, g.node("Add", [t, g.const(1.0, "one")])])


# -- sequence layers: converters for the layers that exist in this ember --------------------------

if hasattr(nn, "Embedding"):
    @converter(nn.Embedding)
    def _embedding(g: Graph, m: Any, x: str) -> str:
        return g.node("Gather", [g.const(m.weight, "weight"), x], axis=0)

if hasattr(nn, "RMSNorm"):
    @converter(nn.RMSNorm)
    def _rmsnorm(g: Graph, m: Any, x: str) -> str:
        eps = float(np.finfo(g.dtype).eps) if m.eps is None else m.eps  # as ember: the dtype's
        k = len(m.normalized_shape)
        mean_sq = g.node("ReduceMean", [g.node("Mul", [x, x])], axes=list(range(-k, 0)),
                         keepdims=1)
        y = g.node("Div", [x, g.node("Sqrt", [g.node("Add", [mean_sq, g.const(eps, "eps")])])])
        return y if m.weight is None else g.node("Mul", [y, g.const(m.weight, "weight")])

if hasattr(nn, "GroupNorm"):
    @converter(nn.GroupNorm)
    def _groupnorm(g: Graph, m: Any, x: str) -> str:
        rank = len(g.input_shape(m))
        grouped = g.node("Reshape", [x, g.const(np.array([0, m.num_groups, -1], np.int64),
                                                "shape", np.int64)])
        centred = g.node("Sub", [grouped, g.node("ReduceMean", [grouped], axes=[2], keepdims=1)])
        var = g.node("ReduceMean", [g.node("Mul", [centred, centred])], axes=[2], keepdims=1)
        y = g.node("Div", [centred, g.node("Sqrt", [g.node("Add", [var, g.const(m.eps, "eps")])])])
        y = g.node("Reshape", [y, g.node("Shape", [x])])
        if not m.affine:
            return y
        bshape = (m.num_channels, *([1] * (rank - 2)))
        y = g.node("Mul", [y, g.const(m.weight.numpy().reshape(bshape), "weight")])
        return g.node("Add", [y, g.const(m.bias.numpy().reshape(bshape), "bias")])
