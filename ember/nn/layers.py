"""Layers: Linear (Dense), MLP, Flatten, Identity, Input, Dropout, BatchNorm and LayerNorm.

Weights follow PyTorch's layout and defaults: ``Linear.weight`` has shape ``(out_features,
in_features)`` and the forward is ``x @ weight.T + bias``; weights start as
``kaiming_uniform_(a=sqrt(5))`` (U(+-1/sqrt(in_features))) and biases as U(+-1/sqrt(in_features)),
drawn lazily from the parameter's path (see :mod:`ember.nn.init`). ``init=`` picks another weight
initialiser by name or callable, ``bias_init=`` another bias initialiser, ``trainable=False``
freezes the layer's parameters and ``dtype=`` sets their dtype (float32 by default).

Example:
    >>> import ember
    >>> from ember import nn
    >>> layer = nn.Linear(64, 10)
    >>> layer(ember.zeros(32, 64)).shape
    (32, 10)
    >>> layer(ember.zeros(32, 63))
    Traceback (most recent call last):
    ...
    ValueError: model (Linear 64->10): expected input (..., 64), got (32, 63)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from ember import backend
from ember import random as _random
from ember.function import no_grad
from ember.nn import config as _cfg
from ember.nn import init as _init
from ember.nn.activations import get_activation
from ember.nn.config import REQUIRED, ConfigError
from ember.nn.containers import Sequential
from ember.nn.module import Module, Parameter
from ember.ops.activation import layer_norm
from ember.ops.dropout import dropout
from ember.tensor import Tensor

__all__ = [
    "Linear",
    "Dense",
    "MLP",
    "Flatten",
    "Identity",
    "Input",
    "Dropout",
    "BatchNorm1D",
    "BatchNorm2D",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "Lambda",
]


def _sizes(f: dict[str, Any], where: str, kind: str, *names: str) -> None:
    """The sizes of an entry are positive integers (not 3.7, not true), named in the error."""
    for name in names:
        if f[name] is not None:
            try:
                check_size("", name, f[name])
            except ValueError:
                raise ConfigError(f"{where} ({kind!r}): {name} must be a positive integer, got "
                                  f"{f[name]!r}") from None


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def check_size(owner: str, name: str, value: Any) -> int:
    """``value`` as an int if it is a positive integer (a bool is not), else a ValueError that
    names the layer and the argument: the one rule for every layer size.

    Example:
        >>> from ember.nn.layers import check_size
        >>> check_size("Linear", "in_features", 3)
        3
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0:
        return int(value)
    raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")


def check_positive(owner: str, name: str, value: Any) -> float:
    """``value`` as a float if it is a finite number > 0, else a ValueError naming the layer.

    Example:
        >>> from ember.nn.layers import check_positive
        >>> check_positive("LayerNorm", "eps", 1e-5)
        1e-05
    """
    if (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0):
        return float(value)
    raise ValueError(f"{owner}: {name} must be a finite number > 0, got {value!r}")


def _shape_str(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


class Lambda(Module):
    """A module that calls a plain function (used for callables given as ``activation=``).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.Lambda(lambda x: x * 2)(ember.tensor([1.0])).tolist()
        [2.0]
    """

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Any) -> Any:
        return self.fn(x)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__name__", type(self.fn).__name__)


def _as_module(activation: Any) -> Module | None:
    act = get_activation(activation)
    if act is None or isinstance(act, Module):
        return act
    return Lambda(act)


class Linear(Module):
    """A fully connected layer: ``y = activation(x @ weight.T + bias)``.

    Args:
        in_features: size of the last axis of the input.
        out_features: size of the last axis of the output.
        bias: whether to add a learned bias.
        activation: an activation name (``"relu"``), Module, callable, or None.
        init: the weight initialiser (name or callable; default PyTorch's
            ``kaiming_uniform_(a=sqrt(5))``).
        bias_init: the bias initialiser (default U(+-1/sqrt(in_features))).
        trainable: False freezes the weight and bias (``requires_grad=False``).
        dtype: dtype of the parameters (default float32).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.Linear(3, 2, activation="relu")(ember.ones(5, 3)).shape
        (5, 2)
    """

    config_name, config_aliases = "dense", ("linear",)
    config_fields = {"units": REQUIRED, "activation": None, "bias": True, "dropout": 0.0,
                     "init": None, "in_features": None}

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation: Any = None, init: Any = None, bias_init: Any = None,
                 trainable: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = check_size("Linear", "in_features", in_features)
        self.out_features = check_size("Linear", "out_features", out_features)
        self.init_name = init if isinstance(init, str) else None
        self.weight = Parameter(shape=(self.out_features, self.in_features),
                                init=_init.default_ if init is None else init,
                                dtype=dtype, requires_grad=trainable)
        if bias:
            b_init = _init.bias_uniform(self.in_features) if bias_init is None else bias_init
            self.bias = Parameter(shape=(self.out_features,), init=b_init, dtype=dtype,
                                  requires_grad=trainable)
        else:
            self.register_parameter("bias", None)
        act = get_activation(activation)
        self.activation = act  # a Module is registered as the child "activation"

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        if x.shape[-1:] != (self.in_features,):
            raise self.shape_error(f"(..., {self.in_features})", x.shape)
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        if self.activation is not None:
            y = self.activation(y)
        return y

    def describe(self) -> str:
        return f"Linear {self.in_features}->{self.out_features}"

    @classmethod
    def build_config(cls, f: dict[str, Any], shape: Any, where: str) -> Any:
        """A dense entry: this layer, and a Dropout after it when ``dropout`` is set."""
        _sizes(f, where, "dense", "units", "in_features")
        n_in = f["in_features"]
        if n_in is None:
            n_in = _cfg.need(shape, where, "in_features")[-1]
        elif shape is not None and shape[-1] != n_in:
            raise ConfigError(f"{where}: in_features={n_in} but the input has shape (None, "
                              f"{', '.join(map(str, shape))})")
        act = _cfg.build_activation(f["activation"], where)
        mods: list[Module] = [cls(n_in, f["units"], bias=f["bias"], activation=act,
                                  init=f["init"])]
        if f["dropout"]:
            mods.append(Dropout(f["dropout"]))
        return mods, None if shape is None else (*shape[:-1], int(f["units"]))

    def config(self, where: str = "") -> dict[str, Any]:
        """The dense entry that rebuilds this layer (its activation by name)."""
        out: dict[str, Any] = {"type": "dense", "units": self.out_features}
        act = _cfg.activation_config(self.activation, where)
        if act is not None:
            out["activation"] = act
        if self.bias is None:
            out["bias"] = False
        if self.init_name is not None:
            out["init"] = self.init_name
        out["in_features"] = self.in_features
        return out

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


#: Keras' name for :class:`Linear`
Dense = Linear


class MLP(Sequential):
    """A multi-layer perceptron: Linear layers with an activation (and Dropout) between them.

    The layers are direct children (``0`` Linear, ``1`` activation, ``2`` Dropout if any, …), so
    the model's ``config()`` lists them one by one.

    Args:
        in_features: input size.
        hidden_sizes: sizes of the hidden layers (may be empty).
        out_features: output size.
        activation: activation after each hidden layer (name, Module class instance or callable).
        final_activation: activation after the last layer (default none).
        dropout: dropout rate after each hidden activation (0 for none).
        bias, init, trainable, dtype: passed to every Linear.

    Example:
        >>> from ember import nn
        >>> nn.MLP(4, [8, 8], 2, dropout=0.1)
        MLP(
          (0): Linear(in_features=4, out_features=8, bias=True)
          (1): ReLU()
          (2): Dropout(p=0.1)
          (3): Linear(in_features=8, out_features=8, bias=True)
          (4): ReLU()
          (5): Dropout(p=0.1)
          (6): Linear(in_features=8, out_features=2, bias=True)
        )
    """

    def __init__(self, in_features: int, hidden_sizes: Sequence[int], out_features: int,
                 activation: Any = "relu", final_activation: Any = None, dropout: float = 0.0,
                 bias: bool = True, init: Any = None, trainable: bool = True,
                 dtype: Any = None) -> None:
        sizes = [in_features, *hidden_sizes]
        layers: list[Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers.append(Linear(a, b, bias=bias, init=init, trainable=trainable, dtype=dtype))
            act = _as_module(activation)
            if act is not None:
                layers.append(act)
            if dropout:
                layers.append(Dropout(dropout))
        layers.append(Linear(sizes[-1], out_features, bias=bias, init=init, trainable=trainable,
                             dtype=dtype))
        final = _as_module(final_activation)
        if final is not None:
            layers.append(final)
        super().__init__(*layers)


class Flatten(Module):
    """Flatten axes ``start_axis..end_axis`` into one (by default all but the batch axis);
    PyTorch's ``start_dim=`` / ``end_dim=`` are accepted too.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.Flatten()(ember.zeros(2, 3, 4)).shape
        (2, 12)
    """

    config_name = "flatten"
    config_fields = {"start_axis": 1, "end_axis": -1}

    def __init__(self, start_axis: int = 1, end_axis: int = -1, *, start_dim: int | None = None,
                 end_dim: int | None = None) -> None:
        super().__init__()
        self.start_axis = int(start_axis if start_dim is None else start_dim)
        self.end_axis = int(end_axis if end_dim is None else end_dim)

    def forward(self, x: Any) -> Tensor:
        return _tensor(x).flatten(self.start_axis, self.end_axis)

    @classmethod
    def build_config(cls, f: dict[str, Any], shape: Any, where: str) -> Any:
        layer = cls(f["start_axis"], f["end_axis"])
        return [layer], _cfg.probe(shape, layer, where)

    def config(self) -> dict[str, Any]:
        """The flatten entry (its axes when they are not the default 1..-1)."""
        out: dict[str, Any] = {"type": "flatten"}
        if (self.start_axis, self.end_axis) != (1, -1):
            out.update(start_axis=self.start_axis, end_axis=self.end_axis)
        return out

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"


class Identity(Module):
    """Return the input unchanged.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.Identity()(ember.tensor([1.0])).tolist()
        [1.0]
    """

    config_name = "identity"

    def config_output_shape(self, shape: Any) -> Any:
        return shape

    def forward(self, x: Any) -> Any:
        return x


class Input(Module):
    """The model's input layer: checks the shape of each sample and passes the batch through.

    Args:
        shape: the shape of one sample, without the batch axis; None in it accepts any size
            on that axis. The batch axis accepts any size.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.Input((3, None))(ember.zeros(8, 3, 5)).shape
        (8, 3, 5)
        >>> nn.Input((784,))(ember.zeros(8, 28, 28))
        Traceback (most recent call last):
        ...
        ValueError: model (Input (784,)): expected input (None, 784), got (8, 28, 28)
    """

    config_name = "input"

    def __init__(self, shape: Sequence[int | None]) -> None:
        super().__init__()
        if isinstance(shape, int):
            shape = (shape,)
        self.shape = tuple(None if n is None else int(n) for n in shape)

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        got = x.shape
        ok = len(got) == len(self.shape) + 1 and all(
            want is None or want == n for want, n in zip(self.shape, got[1:]))
        if not ok:
            raise self.shape_error(_shape_str((None, *self.shape)), got)
        return x

    def describe(self) -> str:
        return f"Input {_shape_str(self.shape)}"

    @classmethod
    def build_config(cls, f: dict[str, Any], shape: Any, where: str) -> Any:
        layer = cls(f["shape"])
        fits = shape is not None and len(layer.shape) == len(shape) and all(
            w is None or w == g for w, g in zip(layer.shape, shape))
        if shape is not None and not fits:
            raise ConfigError(f"{where}: input shape {tuple(f['shape'])} disagrees with "
                              f"input_shape={shape}")
        return [layer], tuple(layer.shape) if None not in layer.shape else shape

    def config(self) -> dict[str, Any]:
        """The input entry: the shape of one sample."""
        return {"type": "input", "shape": list(self.shape)}

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the rest
    by ``1 / (1 - p)``; in eval mode, the identity.

    Every training call draws a fresh mask. The random key is a buffer (``key``), seeded from
    ember's stream at construction (``ember.manual_seed`` makes it reproducible) and split on each
    call, so a compiled training step carries it as state.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> drop = nn.Dropout(0.5).eval()
        >>> drop(ember.ones(4)).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """

    key: Tensor

    config_name = "dropout"
    config_fields = {"rate": REQUIRED}

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not (isinstance(p, numbers.Real) and 0.0 <= p < 1.0):
            raise ValueError(f"Dropout: p is the probability of dropping an element and must be "
                             f"in [0, 1); got {p}")
        self.p = float(p)
        self.register_buffer("key", _random.next_key())

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        if not self.training or self.p == 0.0:
            return x
        keys = backend.get().split(self.key.data, 2)
        self.key = keys[0]
        return dropout(x, self.p, keys[1])

    def extra_repr(self) -> str:
        return f"p={self.p}"

    @classmethod
    def build_config(cls, f: dict[str, Any], shape: Any, where: str) -> Any:
        return [cls(f["rate"])], shape

    def config(self) -> dict[str, Any]:
        """The dropout entry (``rate``: Keras' name for ``p``)."""
        return {"type": "dropout", "rate": self.p}


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()
    # "batchnorm" entries are BatchNorm1D or BatchNorm2D as the samples' shape says
    config_name = "batchnorm"
    config_fields = {"momentum": 0.1, "eps": 1e-5, "num_features": None}
    running_mean: Tensor
    running_var: Tensor
    num_batches_tracked: Tensor

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, trainable: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        who = type(self).__name__
        self.num_features = check_size(who, "num_features", num_features)
        self.eps = check_positive(who, "eps", eps)
        if momentum is not None and not (isinstance(momentum, numbers.Real)
                                         and 0 <= momentum <= 1):
            raise ValueError(f"{who}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dt = backend.default_float if dtype is None else backend.as_dtype(dtype)
        xp = backend.get().xp
        if affine:
            self.weight = Parameter(xp.ones(self.num_features, dt), requires_grad=trainable)
            self.bias = Parameter(xp.zeros(self.num_features, dt), requires_grad=trainable)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", xp.zeros(self.num_features, dt))
            self.register_buffer("running_var", xp.ones(self.num_features, dt))
            self.register_buffer("num_batches_tracked", xp.zeros((), backend.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        c = self.num_features
        if x.ndim not in self._ndims or x.shape[1] != c:
            expected = " or ".join(_shape_str(("N", c, *("HW" if n == 4 else "L")[: n - 2]))
                                   for n in self._ndims)
            raise self.shape_error(expected, x.shape)
        axes = (0, *range(2, x.ndim))
        bshape = (1, c, *([1] * (x.ndim - 2)))
        if self.training or not self.track_running_stats:
            count = x.size // c
            if self.training and count < 2:
                raise ValueError(f"{self.path()} ({self.describe()}): batch statistics need more "
                                 f"than 1 value per channel in training; got input "
                                 f"{x.shape} (use a larger batch, or call .eval())")
            mean = x.mean(axis=axes, keepdims=True)
            var = x.var(axis=axes, keepdims=True)  # biased, as PyTorch normalises with
            if self.training and self.track_running_stats:
                self._update_running(mean.data.reshape(c), var.data.reshape(c), count)
        else:
            mean = self.running_mean.reshape(bshape)
            var = self.running_var.reshape(bshape)
        y = (x - mean) / (var + self.eps).sqrt()
        if self.affine:
            y = y * self.weight.reshape(bshape) + self.bias.reshape(bshape)
        return y

    def _update_running(self, mean: Any, var: Any, count: int) -> None:
        with no_grad():
            tracked = self.num_batches_tracked.data + 1
            self.num_batches_tracked = tracked
            # PyTorch: momentum=None means a cumulative average, 1 / num_batches_tracked
            m = (1.0 / tracked) if self.momentum is None else self.momentum
            rm, rv = self.running_mean.data, self.running_var.data
            unbiased = var * (count / (count - 1))
            self.running_mean = ((1 - m) * rm + m * mean).astype(rm.dtype)
            self.running_var = ((1 - m) * rv + m * unbiased).astype(rv.dtype)

    def describe(self) -> str:
        return f"{type(self).__name__} {self.num_features}"

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


    @classmethod
    def build_config(cls, f: dict[str, Any], shape: Any, where: str) -> Any:
        kind = cls.config_name
        n = f["num_features"]
        if n is None:
            n = _cfg.need(shape, where, "num_features")[0]
        ndim = None if shape is None else len(shape)
        allowed = {"batchnorm": (1, 2, 3), "batchnorm1d": (1, 2), "batchnorm2d": (3,)}[kind]
        if ndim is not None and ndim not in allowed:
            forms = " or ".join(["(C,)", "(C, L)", "(C, H, W)"][i - 1] for i in allowed)
            raise ConfigError(f"{where}: {kind} needs samples of shape {forms}; got {shape}")
        spatial = kind == "batchnorm2d" or (kind == "batchnorm" and ndim == 3)
        layer = (BatchNorm2D if spatial else BatchNorm1D)(n, eps=f["eps"], momentum=f["momentum"])
        return [layer], shape

    def config(self) -> dict[str, Any]:
        """The batchnorm1d/2d entry (``momentum`` and ``eps`` when not the defaults)."""
        out: dict[str, Any] = {"type": self.config_name, "num_features": self.num_features}
        if self.momentum != 0.1:
            out["momentum"] = self.momentum
        if self.eps != 1e-5:
            out["eps"] = self.eps
        return out


class BatchNorm1D(_BatchNorm):
    """Batch normalisation over ``(N, C)`` or ``(N, C, L)`` inputs, per channel ``C``.

    In training it normalises with the batch's (biased) mean and variance and updates
    ``running_mean`` / ``running_var`` (buffers) as ``(1 - momentum) * running + momentum *
    batch`` with the unbiased batch variance; in eval mode it normalises with the running
    statistics (PyTorch's semantics; ``momentum=None`` gives a cumulative average).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> bn = nn.BatchNorm1D(2)
        >>> y = bn(ember.tensor([[1.0, 10.0], [3.0, 30.0]]))
        >>> [round(v, 3) for v in y.numpy()[:, 0].tolist()], bn.running_mean.tolist()
        ([-1.0, 1.0], [0.20000000298023224, 2.0])
    """

    _ndims = (2, 3)
    config_name, config_fields = "batchnorm1d", _BatchNorm.config_fields


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of ``(N, C, H, W)`` inputs per channel (see :class:`BatchNorm1D`).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.BatchNorm2D(3)(ember.randn(4, 3, 5, 5)).shape
        (4, 3, 5, 5)
    """

    _ndims = (4,)
    config_name, config_fields = "batchnorm2d", _BatchNorm.config_fields


#: PyTorch's spellings
BatchNorm1d = BatchNorm1D
BatchNorm2d = BatchNorm2D


class LayerNorm(Module):
    """Normalise over the last axes (``normalized_shape``), per sample, then scale and shift.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> y = nn.LayerNorm(2)(ember.tensor([[1.0, 3.0]]))
        >>> [round(v, 3) for v in y.tolist()[0]]
        [-1.0, 1.0]
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, trainable: bool = True,
                 dtype: Any = None, bias: bool = True) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Number) else (
            tuple(normalized_shape))
        if not shape or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool)
                                and n > 0 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be positive integers, got "
                             f"{normalized_shape!r}")
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps = check_positive("LayerNorm", "eps", eps)
        self.elementwise_affine = bool(elementwise_affine)
        dt = backend.default_float if dtype is None else backend.as_dtype(dtype)
        xp = backend.get().xp
        if elementwise_affine:
            self.weight = Parameter(xp.ones(self.normalized_shape, dt), requires_grad=trainable)
        else:
            self.register_parameter("weight", None)
        if elementwise_affine and bias:  # bias=False: a gain only (PyTorch 2.1's option)
            self.bias = Parameter(xp.zeros(self.normalized_shape, dt), requires_grad=trainable)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k:] != self.normalized_shape or x.ndim < k:
            raise self.shape_error(_shape_str(("...", *self.normalized_shape)), x.shape)
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def describe(self) -> str:
        return f"LayerNorm {_shape_str(self.normalized_shape)}"

    config_name = "layernorm"
    config_fields = {"eps": 1e-5, "normalized_shape": None}

    @classmethod
    def build_config(cls, f: dict[str, Any], shape: Any, where: str) -> Any:
        ns = f["normalized_shape"]
        if ns is None:
            ns = _cfg.need(shape, where, "normalized_shape")[-1:]
        return [cls(_cfg.as_tuple(ns), eps=f["eps"])], shape

    def config(self) -> dict[str, Any]:
        """The layernorm entry (``eps`` when it is not 1e-5)."""
        out: dict[str, Any] = {"type": "layernorm",
                               "normalized_shape": list(self.normalized_shape)}
        if self.eps != 1e-5:
            out["eps"] = self.eps
        return out

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}"
                + ("" if self.bias is not None or not self.elementwise_affine else ", bias=False"))

