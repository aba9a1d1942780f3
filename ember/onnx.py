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
A layer whose forward takes more arguments (attention's key, value and masks, an RNN's state)
gets them after ``x``, as graph names or fixed values, and a layer that returns a tuple returns
a tuple of names.

The batch axis is dynamic by default and ``dynamic_axes`` makes more axes dynamic (a sequence's
length): the converters of the sequence layers and models read sizes at run time (``Shape``),
while those of Flatten and the pools use the example's sizes: ``ceil_mode``'s partial windows
become explicit padding, and an adaptive pool becomes a global pool, one plain pool (equal
windows) or per-window slices and reductions (PyTorch's uneven windows). Recurrences use ONNX's
RNN/LSTM/GRU nodes, with PyTorch's gate blocks reordered to ONNX's (LSTM i, f, g, o -> i, o, f,
c; GRU r, z, n -> z, r, h with ``linear_before_reset``).

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

import inspect
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np  # host-side: initializers are NumPy arrays

from ember import models as _models
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
        #: the element type of each graph input and initializer (masks: bool or float)
        self.types: dict[str, np.dtype] = {}
        #: the example's shape of each graph input
        self.input_shapes: dict[str, tuple[int, ...]] = {}
        self._shapes = shapes
        self._count = 0
        self._params: dict[int, str] = {}  # id(Tensor) -> its initializer: a tied weight is one

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, value: Any, name: str = "const", dtype: Any = None) -> str:
        """Add an initializer (a Tensor, array or number; floats take the model's dtype); the same
        Tensor given twice (a tied weight) is one initializer."""
        from onnx import numpy_helper

        if isinstance(value, Tensor) and dtype is None and id(value) in self._params:
            return self._params[id(value)]
        arr = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
        if dtype is not None:
            arr = arr.astype(dtype)
        elif arr.dtype.kind == "f":
            arr = arr.astype(self.dtype)
        out = self._name(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(arr), out))
        self.types[out] = arr.dtype
        if isinstance(value, Tensor) and dtype is None:
            self._params[id(value)] = out
        return out

    def ints(self, values: Any, name: str = "ints") -> str:
        """An int64 initializer (shapes, axes, starts and ends)."""
        return self.const(np.array(values, np.int64), name, np.int64)

    def node(self, op: str, inputs: list[str], outputs: int = 1, **attrs: Any) -> Any:
        """Add a node ``op(inputs, **attrs)`` and return the name of its output (a list of
        names when ``outputs > 1``; an empty input name is an omitted optional input)."""
        from onnx import helper

        out = self._name(op.lower())
        names = [out] + [f"{out}_{i}" for i in range(1, outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=out, **attrs))
        return out if outputs == 1 else names

    def dim(self, x: str, axis: int) -> str:
        """The size of axis ``axis`` of ``x`` at run time, as a 1-element int64 tensor."""
        return self.node("Gather", [self.node("Shape", [x]), self.ints([axis], "axis")], axis=0)

    def input_shape(self, m: Module) -> tuple[int, ...]:
        """The shape of ``m``'s input when the example ran through the model."""
        try:
            return self._shapes[id(m)]
        except KeyError:
            raise ExportError(f"{m.path()} ({type(m).__name__}) was not called when the example "
                              f"input ran through the model; only layers on the forward path "
                              f"are exported") from None

    def convert(self, m: Module, x: Any, *args: Any, **kwargs: Any) -> Any:
        """The output of layer ``m`` on input ``x`` (and the further arguments of its forward,
        graph names or fixed values), through its converter."""
        fn = CONVERTERS.get(type(m))
        if fn is None:
            known = ", ".join(sorted({c.__name__ for c in CONVERTERS}))
            raise ExportError(f"{m.path()} ({type(m).__name__}) has no ONNX converter: ember "
                              f"exports {known}. Build the model from these layers, or add a "
                              f"converter with @ember.onnx.converter({type(m).__name__})")
        if args or kwargs:
            try:
                inspect.signature(fn).bind(self, m, x, *args, **kwargs)
            except TypeError as e:
                raise ExportError(f"{m.path()} ({type(m).__name__}): its converter takes "
                                  f"{inspect.signature(fn)}, not the further arguments given "
                                  f"({e}); export it with one input and no forward_kwargs"
                                  ) from None
        return fn(self, m, x, *args, **kwargs)


def _leaves(tree: Any) -> list[Any]:
    """The leaves of nested tuples/lists, in order (None kept)."""
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [tree]


def _unflatten(tree: Any, leaves: list[Any]) -> Any:
    """``tree``'s structure filled with ``leaves`` (consumed from the front)."""
    if isinstance(tree, (tuple, list)):
        return tuple(_unflatten(t, leaves) for t in tree)
    return leaves.pop(0)


def _fill(tree: Any, values: list[Any]) -> Any:
    """``tree``'s structure with its non-None leaves replaced by ``values`` in order."""
    leaves = list(values)
    return _unflatten(tree, [None if x is None else leaves.pop(0) for x in _leaves(tree)])


def _names(name: str | list[str] | tuple[str, ...], n: int, what: str) -> list[str]:
    if isinstance(name, str):
        return [name] + [f"{name}_{i}" for i in range(1, n)]
    names = list(name)
    if len(names) != n:
        raise ValueError(f"ember.onnx.export: {what} names {names} for {n} {what}s; give one "
                         f"name each")
    return names


def _resized(x: Tensor, axes: dict[int, int]) -> Tensor:
    """``x`` with each axis in ``axes`` cut or grown (repeating its last slice) to a new size."""
    a = x.numpy()
    for axis, n in axes.items():
        if n <= a.shape[axis]:
            a = np.take(a, np.arange(n), axis=axis)
        else:
            idx = np.minimum(np.arange(n), a.shape[axis] - 1)
            a = np.take(a, idx, axis=axis)
    return Tensor(a)


def export(model: Module, example_input: Any, path: str | os.PathLike[str],
           dynamic_batch: bool = True, input_name: str | list[str] = "input",
           output_name: str | list[str] = "output",
           dynamic_axes: dict[str, dict[int, str]] | None = None,
           forward_kwargs: dict[str, Any] | None = None) -> None:
    """Write ``model`` (in eval mode) as an ONNX file that takes ``example_input``'s shape.

    Args:
        model: a Module built from layers with a converter (:data:`CONVERTERS`).
        example_input: one batch (Tensor or array) that fixes the input's shape and dtype; it
            runs through the model once to record each layer's input shape. A tuple gives the
            forward's positional arguments (e.g. query, key, value and a key_padding_mask of
            MultiheadAttention; an LSTM's ``(x, (h_0, c_0))``): each becomes a graph input.
        path: the ``.onnx`` file to write.
        dynamic_batch: the batch axis (axis 0) accepts any size (``"batch"``); False keeps the
            example's batch size.
        input_name, output_name: the names of the graph's input and output (a list for several;
            a name ``n`` for several makes ``n``, ``n_1``, ...). A model that returns a tuple
            (MultiheadAttention's output and weights, an RNN's output and state) has one graph
            output per tensor (a None, e.g. ``need_weights=False``'s weights, is left out).
        dynamic_axes: the axes of any size of the inputs it names (replacing the batch axis
            there), e.g. ``{"input": {0: "batch", 1: "length"}}`` for a sequence model, ``{1:
            "batch"}`` for an RNN's h_0; axes that share a name share the size. Converters of
            layers that read the example's sizes (Flatten, pools) keep those fixed.
        forward_kwargs: keyword arguments of the forward call, fixed in the graph (e.g.
            ``{"is_causal": True, "need_weights": False}`` for MultiheadAttention, a constant
            ``attn_mask``).

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
    structure = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
    given = [x for x in _leaves(structure) if x is not None]  # a None argument stays None
    xs = [x if isinstance(x, Tensor) else Tensor(x) for x in given]
    in_names = _names(input_name, len(xs), "input")
    kwargs = dict(forward_kwargs or {})
    axes: dict[str, dict[int, str]] = {n: {} for n in in_names}
    if dynamic_batch:
        for n, x in zip(in_names, xs):
            if x.ndim:
                axes[n][0] = "batch"
    for n, extra in (dynamic_axes or {}).items():
        if n not in axes:
            raise ValueError(f"ember.onnx.export: dynamic_axes names input {n!r}; the inputs "
                             f"are {in_names}")
        axes[n] = dict(extra)
    sizes_seen: dict[str, int] = {}
    for n, x in zip(in_names, xs):
        for k, size_name in axes[n].items():
            if not -x.ndim <= k < x.ndim:
                raise ValueError(f"ember.onnx.export: dynamic_axes gives axis {k} of input {n!r}, "
                                 f"which has shape {tuple(x.shape)}")
            if sizes_seen.setdefault(size_name, x.shape[k]) != x.shape[k]:
                raise ValueError(f"ember.onnx.export: dynamic axis {size_name!r} has size "
                                 f"{sizes_seen[size_name]} in one input and {x.shape[k]} in "
                                 f"{n!r}; axes that share a name share the size (give them "
                                 f"different names)")
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
            y = model(*_fill(structure, xs), **kwargs)
            for h in handles:
                h.remove()
            handles = []
            # a second run with every dynamic size changed tells which output axes follow them
            sizes = sorted({s for a in axes.values() for s in a.values()})
            new_size: dict[str, tuple[int, int]] = {}
            for j, s in enumerate(sizes):
                old = next(x.shape[k] for n, x in zip(in_names, xs) for k, v in axes[n].items()
                           if v == s)
                new_size[s] = (old, old - 1 - j if old > 1 + j else old + 1 + j)
            y2 = None
            if sizes:
                xs2 = [_resized(x, {k: new_size[s][1] for k, s in axes[n].items()})
                       for n, x in zip(in_names, xs)]
                try:
                    y2 = model(*_fill(structure, xs2), **kwargs)
                except Exception as e:
                    raise ExportError(f"ember.onnx.export: {type(model).__name__} fails on "
                                      f"inputs resized along the dynamic axes {axes} ({e}); "
                                      f"export with dynamic_batch=False or fewer dynamic_axes"
                                      ) from e
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    ys = _leaves(y)
    if not ys or not all(isinstance(t, Tensor) or t is None for t in ys) or all(
            t is None for t in ys):
        raise ExportError(f"ember.onnx.export: the model returns a {type(y).__name__}; export "
                          f"takes models that return tensors (or tuples of them)")
    ys2 = _leaves(y2) if y2 is not None else [None] * len(ys)
    kept = [i for i, t in enumerate(ys) if t is not None]
    out_names = _names(output_name, len(kept), "output")
    floats = next((t.dtype for t in ys if t is not None and np.dtype(t.dtype).kind == "f"),
                  xs[0].dtype)  # indices in, floats out
    g = Graph(shapes, floats)
    for n, x in zip(in_names, xs):
        g.types[n] = np.dtype(x.dtype)
        g.input_shapes[n] = tuple(x.shape)
    args = _fill(structure, in_names)
    outs = _leaves(g.convert(model, *args, **kwargs))
    if len(outs) != len(ys) or any((o is None) != (t is None) for o, t in zip(outs, ys)):
        raise ExportError(f"{model.path()} ({type(model).__name__}): its converter gave "
                          f"{len(outs)} outputs where the model returns {len(ys)}")
    producers = {o: node for node in g.nodes for o in node.output}
    renamed: set[str] = set()
    for i, want in zip(kept, out_names):
        out = outs[i]
        node = producers.get(out)
        if node is not None and out not in renamed and out not in in_names:
            # the node writes the graph's output (its readers follow the new name)
            node.output[list(node.output).index(out)] = want
            for other in g.nodes:
                for k, name in enumerate(other.input):
                    if name == out:
                        other.input[k] = want
            renamed.add(out)
        else:  # e.g. an identity model: ONNX needs a node between input and output
            g.nodes.append(helper.make_node("Identity", [out], [want], name=want))

    def in_dims(n: str, shape: tuple[int, ...]) -> list[Any]:
        return [axes[n].get(k, size) for k, size in enumerate(shape)]

    def out_dims(t: Tensor, t2: Tensor | None) -> list[Any]:
        if t2 is None:
            return list(t.shape)
        dims: list[Any] = []
        for size, size2 in zip(t.shape, t2.shape):
            names = [s for s, (old, new) in new_size.items() if (old, new) == (size, size2)]
            dims.append(size if size == size2 else (names[0] if names else None))
        return dims

    def info(name: str, t: Tensor, dims: list[Any]) -> Any:
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(
            np.dtype(t.dtype)), dims)

    graph = helper.make_graph(
        g.nodes, type(model).__name__,
        [info(n, x, in_dims(n, tuple(x.shape))) for n, x in zip(in_names, xs)],
        [info(n, ys[i], out_dims(ys[i], ys2[i])) for i, n in zip(kept, out_names)],
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
    shift = m.bias if m.bias is not None else np.zeros(shape)  # bias=False: a gain only
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


# -- attention -------------------------------------------------------------------------------------

def _heads(g: Graph, y: str, h: int, d: int) -> str:
    """(B, T, H*D) -> (B, H, T, D)."""
    return g.node("Transpose", [g.node("Reshape", [y, g.ints([0, 0, h, d], "shape")])],
                  perm=[0, 2, 1, 3])


def _mask_input(g: Graph, mask: Any) -> str:
    """A mask given as a graph input (its name) or a fixed value (an initializer)."""
    if isinstance(mask, str):
        return mask
    arr = mask.numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    return g.const(arr, "mask", arr.dtype if arr.dtype.kind == "b" else None)


def _apply_mask(g: Graph, scores: str, mask: str) -> str:
    """Scores with a mask: a boolean one is True where attention is NOT allowed (-inf there), a
    float one is added."""
    if g.types.get(mask, g.dtype).kind == "b":
        return g.node("Where", [mask, g.const(-np.inf, "neg_inf"), scores])
    if g.types.get(mask, g.dtype) != g.dtype:
        mask = g.node("Cast", [mask], to=_onnx_type(g.dtype))
    return g.node("Add", [scores, mask])


def _onnx_type(dtype: Any) -> int:
    from onnx import helper

    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def _causal_blocked(g: Graph, scores: str) -> str:
    """(T, S) boolean, True where key j > query i, for the run-time sizes of ``scores``."""
    zero, one = g.const(np.array(0, np.int64), "zero", np.int64), g.const(
        np.array(1, np.int64), "one", np.int64)

    def arange(axis: int) -> str:
        size = g.node("Squeeze", [g.dim(scores, axis), g.ints([0], "axes")])
        return g.node("Range", [zero, size, one])

    rows = g.node("Unsqueeze", [arange(2), g.ints([1], "axes")])
    cols = g.node("Unsqueeze", [arange(3), g.ints([0], "axes")])
    blocked = g.node("Less", [rows, cols])
    g.types[blocked] = np.dtype(bool)
    return blocked


@converter(nn.MultiheadAttention)
def _mha(g: Graph, m: Any, query: str, key: Any = None, value: Any = None,
         key_padding_mask: Any = None, need_weights: bool = True, attn_mask: Any = None,
         average_attn_weights: bool = True, is_causal: bool = False) -> tuple[str, Any]:
    """MultiheadAttention as MatMul/Softmax: the weights path (``need_weights=True``: scores
    scaled after the product) and the fused one (queries scaled first, a row that a boolean
    mask hides entirely gives zeros), as ember computes each."""
    e, h, d = m.embed_dim, m.num_heads, m.head_dim
    for name, arg in (("key", key), ("value", value)):
        if arg is not None and not isinstance(arg, str):
            raise ExportError(f"{m.path()} ({m.describe()}): a fixed {name} has no export; give "
                              f"it as a graph input (example_input=(query, key, value))")
    self_attention = key in (None, query) and value in (None, query)

    def batch_first(x: str) -> str:
        return x if m.batch_first else g.node("Transpose", [x], perm=[1, 0, 2])

    packed = m.in_proj_weight is not None  # else q/k/v_proj_weight (kdim or vdim other than E)
    w = m.in_proj_weight.numpy() if packed else None
    ws = ([w[i * e:(i + 1) * e] for i in range(3)] if packed else
          [p.numpy() for p in (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight)])
    b = None if m.in_proj_bias is None else m.in_proj_bias.numpy()
    q_in = batch_first(query)
    if self_attention and packed:
        qkv = g.node("MatMul", [q_in, g.const(w.T, "in_proj_t")])
        if b is not None:
            qkv = g.node("Add", [qkv, g.const(b, "in_proj_bias")])
        parts = g.node("Split", [qkv, g.ints([e, e, e], "split")], outputs=3, axis=-1)
        q, k, v = (_heads(g, p, h, d) for p in parts)
    else:
        k_in = batch_first(query if key is None else key)
        v_in = k_in if value is None else batch_first(value)
        heads = []
        for i, x_in in enumerate((q_in, k_in, v_in)):
            y = g.node("MatMul", [x_in, g.const(ws[i].T, "in_proj_t")])
            if b is not None:
                y = g.node("Add", [y, g.const(b[i * e:(i + 1) * e], "in_proj_bias")])
            heads.append(_heads(g, y, h, d))
        q, k, v = heads
    kt = g.node("Transpose", [k], perm=[0, 1, 3, 2])
    scale = g.const(1.0 / d ** 0.5, "scale")
    if need_weights:
        scores = g.node("Mul", [g.node("MatMul", [q, kt]), scale])
    else:
        scores = g.node("MatMul", [g.node("Mul", [q, scale]), kt])
    masks = []
    if attn_mask is not None:
        mask = _mask_input(g, attn_mask)
        # (T, S) broadcasts; (B*H, T, S) becomes (B, H, T, S)
        if _rank(g, attn_mask) == 3:
            kind = g.types.get(mask, g.dtype)
            mask = g.node("Reshape", [mask, g.node("Shape", [scores])])
            g.types[mask] = kind
        masks.append(mask)
    if key_padding_mask is not None:  # (B, S) -> (B, 1, 1, S)
        mask = _mask_input(g, key_padding_mask)
        masks.append(g.node("Unsqueeze", [mask, g.ints([1, 2], "axes")]))
        g.types[masks[-1]] = g.types.get(mask, g.dtype)
    for mask in masks:
        if g.types.get(mask, g.dtype).kind != "b":
            scores = _apply_mask(g, scores, mask)  # the float parts add, then the boolean ones
    guard = bool(masks) and all(g.types.get(x, g.dtype).kind == "b" for x in masks)
    for mask in masks:
        if g.types.get(mask, g.dtype).kind == "b":
            scores = _apply_mask(g, scores, mask)
    if is_causal:
        scores = _apply_mask(g, scores, _causal_blocked(g, scores))
    if need_weights or not guard:
        p = g.node("Softmax", [scores], axis=-1)
    else:  # the fused op's guard: a row with every key masked gives zeros, not NaN
        top = g.node("ReduceMax", [scores], axes=[-1], keepdims=1)
        zero = g.const(0.0, "zero")
        top = g.node("Where", [g.node("IsInf", [top]), zero, top])
        ex = g.node("Exp", [g.node("Sub", [scores, top])])
        total = g.node("ReduceSum", [ex, g.ints([-1], "axes")], keepdims=1)
        safe = g.node("Where", [g.node("Greater", [total, zero]), total, g.const(1.0, "one")])
        p = g.node("Mul", [ex, g.node("Reciprocal", [safe])])
    out = g.node("MatMul", [p, v])
    out = g.node("Reshape", [g.node("Transpose", [out], perm=[0, 2, 1, 3]),
                             g.ints([0, 0, e], "shape")])
    out = batch_first(g.convert(m.out_proj, out))
    weights = None
    if need_weights:
        weights = g.node("ReduceMean", [p], axes=[1], keepdims=0) if average_attn_weights else p
    return out, weights


def _rank(g: Graph, mask: Any) -> int:
    if isinstance(mask, str):
        return len(g.input_shapes[mask])
    return int(np.ndim(mask.numpy() if isinstance(mask, Tensor) else mask))


@converter(nn.TransformerBlock)
def _block(g: Graph, m: Any, x: str, attn_mask: Any = None, key_padding_mask: Any = None,
           is_causal: bool = False) -> str:
    def attend(y: str) -> str:
        out, _ = _mha(g, m.attn, y, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                      need_weights=False, is_causal=m.causal or is_causal)
        return out

    if m.pre_norm:
        x = g.node("Add", [x, attend(g.convert(m.norm1, x))])
        return g.node("Add", [x, g.convert(m.mlp, g.convert(m.norm2, x))])
    x = g.convert(m.norm1, g.node("Add", [x, attend(x)]))
    return g.convert(m.norm2, g.node("Add", [x, g.convert(m.mlp, x)]))


@converter(nn.TransformerEncoderLayer)
def _encoder_layer(g: Graph, m: Any, src: str, src_mask: Any = None,
                   src_key_padding_mask: Any = None, is_causal: bool = False) -> str:
    return _block(g, m, src, src_mask, src_key_padding_mask, is_causal)


# -- recurrences -----------------------------------------------------------------------------------

#: PyTorch's gate blocks in ONNX's order: LSTM i, f, g, o -> i, o, f, c; GRU r, z, n -> z, r, h
_ONNX_GATES = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}
_ONNX_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _gates(a: np.ndarray, mode: str) -> np.ndarray:
    blocks = np.split(a, len(_ONNX_GATES[mode]), axis=0)
    return np.concatenate([blocks[i] for i in _ONNX_GATES[mode]], axis=0)


def _recurrent(g: Graph, m: Any, x: str, hx: Any = None) -> tuple[str, Any]:
    """RNN/LSTM/GRU as ONNX's RNN/LSTM/GRU nodes, one per layer (both directions in one)."""
    mode, n, dirs = m._mode, m.hidden_size, m.num_directions
    unbatched = len(g.input_shape(m)) == 2
    if unbatched:  # (T, F) -> (T, 1, F)
        x = g.node("Unsqueeze", [x, g.ints([1], "axes")])
    elif m.batch_first:
        x = g.node("Transpose", [x], perm=[1, 0, 2])
    states: list[Any] = [None, None] if mode == "lstm" else [None]
    if hx is not None:
        states = list(hx) if mode == "lstm" else [hx]
        if unbatched:
            states = [g.node("Unsqueeze", [s, g.ints([1], "axes")]) for s in states]
    finals: list[list[str]] = [[] for _ in states]
    for k in range(m.num_layers):
        w, r, bias = [], [], []
        for sfx in m._suffixes():
            w.append(_gates(getattr(m, f"weight_ih_l{k}{sfx}").numpy(), mode))
            r.append(_gates(getattr(m, f"weight_hh_l{k}{sfx}").numpy(), mode))
            if m.bias:
                bias.append(np.concatenate([
                    _gates(getattr(m, f"bias_ih_l{k}{sfx}").numpy(), mode),
                    _gates(getattr(m, f"bias_hh_l{k}{sfx}").numpy(), mode)]))
        inputs = [x, g.const(np.stack(w), "W"), g.const(np.stack(r), "R"),
                  g.const(np.stack(bias), "B") if bias else "", ""]
        for s in states:
            inputs.append("" if s is None else g.node(
                "Slice", [s, g.ints([k * dirs], "starts"), g.ints([(k + 1) * dirs], "ends"),
                          g.ints([0], "axes")]))
        attrs: dict[str, Any] = {"hidden_size": n,
                                 "direction": "bidirectional" if dirs == 2 else "forward"}
        if mode == "rnn":
            attrs["activations"] = ["Tanh" if m.nonlinearity == "tanh" else "Relu"] * dirs
        if mode == "gru":
            attrs["linear_before_reset"] = 1  # PyTorch's r * (h W_hn + b_hn)
        outs = g.node(_ONNX_OP[mode], inputs, outputs=1 + len(states), **attrs)
        # Y (T, D, B, H) -> (T, B, D*H)
        x = g.node("Reshape", [g.node("Transpose", [outs[0]], perm=[0, 2, 1, 3]),
                               g.ints([0, 0, -1], "shape")])
        for f, o in zip(finals, outs[1:]):
            f.append(o)
    last = [f[0] if len(f) == 1 else g.node("Concat", f, axis=0) for f in finals]
    if unbatched:
        x = g.node("Squeeze", [x, g.ints([1], "axes")])
        last = [g.node("Squeeze", [s, g.ints([1], "axes")]) for s in last]
    elif m.batch_first:
        x = g.node("Transpose", [x], perm=[1, 0, 2])
    return x, (last[0], last[1]) if mode == "lstm" else last[0]


for _cls in (nn.RNN, nn.LSTM, nn.GRU):
    CONVERTERS[_cls] = _recurrent


def _cell_proj(g: Graph, m: Any, x: str, h: str | None) -> tuple[str, str | None]:
    """``x W_ih^T + b_ih`` and ``h W_hh^T + b_hh`` (the latter None for a zero state without
    bias, ``b_hh`` alone for a zero state: ember's zeros give exactly that)."""
    gi = g.node("MatMul", [x, g.const(m.weight_ih.numpy().T, "weight_ih_t")])
    if m.bias_ih is not None:
        gi = g.node("Add", [gi, g.const(m.bias_ih, "bias_ih")])
    gh = None if h is None else g.node("MatMul", [h, g.const(m.weight_hh.numpy().T,
                                                             "weight_hh_t")])
    if m.bias_hh is not None:
        b = g.const(m.bias_hh, "bias_hh")
        gh = b if gh is None else g.node("Add", [gh, b])
    return gi, gh


@converter(nn.RNNCell)
def _rnn_cell(g: Graph, m: Any, x: str, hx: str | None = None) -> str:
    gi, gh = _cell_proj(g, m, x, hx)
    a = gi if gh is None else g.node("Add", [gi, gh])
    return g.node("Tanh" if m.nonlinearity == "tanh" else "Relu", [a])


@converter(nn.LSTMCell)
def _lstm_cell(g: Graph, m: Any, x: str, hx: Any = None) -> tuple[str, str]:
    h0, c0 = (None, None) if hx is None else hx
    gi, gh = _cell_proj(g, m, x, h0)
    a = gi if gh is None else g.node("Add", [gi, gh])
    i, f, gg, o = g.node("Split", [a, g.ints([m.hidden_size] * 4, "split")], outputs=4, axis=-1)
    ig = g.node("Mul", [g.node("Sigmoid", [i]), g.node("Tanh", [gg])])
    c = ig if c0 is None else g.node("Add", [g.node("Mul", [g.node("Sigmoid", [f]), c0]), ig])
    return g.node("Mul", [g.node("Sigmoid", [o]), g.node("Tanh", [c])]), c


@converter(nn.GRUCell)
def _gru_cell(g: Graph, m: Any, x: str, hx: str | None = None) -> str:
    n = m.hidden_size
    gi, gh = _cell_proj(g, m, x, hx)
    ir, iz, in_ = g.node("Split", [gi, g.ints([n] * 3, "split")], outputs=3, axis=-1)
    if gh is None:
        r, z = g.node("Sigmoid", [ir]), g.node("Sigmoid", [iz])
        cand = g.node("Tanh", [in_])
    else:
        hr, hz, hn = g.node("Split", [gh, g.ints([n] * 3, "split")], outputs=3, axis=-1)
        r = g.node("Sigmoid", [g.node("Add", [ir, hr])])
        z = g.node("Sigmoid", [g.node("Add", [iz, hz])])
        cand = g.node("Tanh", [g.node("Add", [in_, g.node("Mul", [r, hn])])])
    h = g.const(0.0, "zero") if hx is None else hx  # h' = n + z (h - n)
    return g.node("Add", [cand, g.node("Mul", [z, g.node("Sub", [h, cand])])])


# -- the reference models of ember.models ----------------------------------------------------------

@converter(_models.GPT)
def _gpt(g: Graph, m: Any, idx: str) -> str:
    tok = g.node("Gather", [g.const(m.wte.weight, "wte"), idx], axis=0)
    pos = g.node("Slice", [g.const(m.wpe.weight, "wpe"), g.ints([0], "starts"), g.dim(idx, 1),
                           g.ints([0], "axes")])  # the first T learned positions
    x = g.node("Add", [tok, pos])
    for block in m.h:
        x = g.convert(block, x)
    x = g.convert(m.ln_f, x)
    if not m.tie_weights:  # its own head (makemore's Transformer)
        return g.convert(m.lm_head, x)
    # the head tied to the token embedding: the same initializer, transposed
    return g.node("MatMul", [x, g.node("Transpose", [g.const(m.wte.weight, "wte")])])


@converter(_models.Bigram)
def _bigram(g: Graph, m: Any, idx: str) -> str:
    return g.node("Gather", [g.const(m.logits, "logits"), idx], axis=0)


@converter(_models.MLP)
def _makemore_mlp(g: Graph, m: Any, idx: str) -> str:
    wte = g.const(m.wte, "wte")
    embs = []
    for k in range(m.block_size):  # the token k steps back: k blanks in front, the last k cut
        back = idx
        if k:
            padded = g.node("Pad", [idx, g.ints([0, k, 0, 0], "pads"),
                                    g.const(np.array(m.vocab_size), "blank",
                                            g.types.get(idx, np.int64))])
            back = g.node("Slice", [padded, g.ints([0], "starts"), g.ints([-k], "ends"),
                                    g.ints([1], "axes")])
        embs.append(g.node("Gather", [wte, back], axis=0))
    return g.convert(m.mlp, embs[0] if len(embs) == 1 else g.node("Concat", embs, axis=-1))


def _rnnlm(g: Graph, m: Any, idx: str) -> str:
    x = g.node("Gather", [g.const(m.wte, "wte"), idx], axis=0)
    shape = g.node("Concat", [g.ints([1], "one"), g.dim(idx, 0),
                              g.ints([m.start.shape[-1]], "hidden")], axis=0)
    h0 = g.node("Expand", [g.const(m.start, "start"), shape])  # the learned start, per row
    out, _ = g.convert(m.rnn, x, h0)
    return g.convert(m.lm_head, out)


converter(_models.RNNLM, _models.GRULM)(_rnnlm)
