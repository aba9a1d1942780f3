"""Convolution and pooling layers on NCL / NCHW input: Conv1D, Conv2D, MaxPool2D, AvgPool2D,
AdaptiveAvgPool2D, AdaptiveMaxPool2D, GlobalAvgPool2D.

``Conv2D.weight`` has PyTorch's layout ``(out_channels, in_channels / groups, kH, kW)`` (Conv1D:
``(out_channels, in_channels / groups, K)``) and PyTorch's default initialisation:
``kaiming_uniform_(a=sqrt(5))``, i.e. U(+-1/sqrt(fan_in)) with ``fan_in = in_channels / groups *
kH * kW``, and the bias U(+-1/sqrt(fan_in)); drawn lazily from the parameter's path (see
:mod:`ember.nn.init`). PyTorch's spellings ``Conv1d``, ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``,
``AdaptiveAvgPool2d``, ``AdaptiveMaxPool2d`` are aliases.

Example:
    >>> import ember
    >>> from ember import nn
    >>> model = nn.Sequential(nn.Conv2D(1, 4, 3, padding="same"), nn.ReLU(), nn.MaxPool2D(2),
    ...                       nn.GlobalAvgPool2D())
    >>> model(ember.zeros(8, 1, 28, 28)).shape
    (8, 4)
    >>> model(ember.zeros(8, 3, 28, 28))
    Traceback (most recent call last):
    ...
    ValueError: model.0 (Conv2D 1->4 3x3): expected input (N, 1, H, W), got (8, 3, 28, 28)
"""

from __future__ import annotations

from typing import Any

from ember.creation import zeros
from ember.nn import init as _init
from ember.nn.config import activation_modules, as_tuple, jsonable, need, probe
from ember.nn.module import Module, Parameter
from ember.nn.registry import REQUIRED
from ember.ops.conv import (
    _pair,
    _pool_padding,
    _single,
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool2d,
    conv1d,
    conv2d,
    max_pool2d,
)
from ember.tensor import Tensor

__all__ = [
    "Conv1D",
    "Conv1d",
    "Conv2D",
    "Conv2d",
    "MaxPool2D",
    "MaxPool2d",
    "AvgPool2D",
    "AvgPool2d",
    "AdaptiveAvgPool2D",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2D",
    "AdaptiveMaxPool2d",
    "GlobalAvgPool2D",
]


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _check_nchw(layer: Module, x: Tensor, channels: str, spatial: str = "H, W") -> None:
    if x.ndim != 2 + spatial.count(",") + 1 or (channels != "C" and x.shape[1] != int(channels)):
        raise layer.shape_error(f"(N, {channels}, {spatial})", x.shape)


def _groups(layer: str, in_channels: int, out_channels: int, groups: Any) -> int:
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{layer}: groups must be an int >= 1, got {groups!r}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{layer}: groups={groups} must divide in_channels={in_channels} and "
                         f"out_channels={out_channels}")
    return groups


def _padding_attr(padding: Any) -> Any:
    """``padding`` with lists as tuples (a config file gives lists)."""
    if isinstance(padding, (tuple, list)):
        return tuple(tuple(p) if isinstance(p, (tuple, list)) else p for p in padding)
    return padding


# -- config entries (nn.from_config): conv2d / conv1d ----------------------------------------------

_CONV_FIELDS = {"filters": REQUIRED, "kernel_size": REQUIRED, "stride": 1, "padding": 0,
                "dilation": 1, "groups": 1, "bias": True, "activation": None, "init": None,
                "in_channels": None}


def _conv_build(cls: Any, f: dict[str, Any], shape: Any, where: str) -> Any:
    """A conv entry: the layer (and an activation layer after it when one is named)."""
    c_in = f["in_channels"]
    if c_in is None:
        c_in = need(shape, where, "in_channels")[0]
    layer = cls(c_in, f["filters"], as_tuple(f["kernel_size"]), stride=as_tuple(f["stride"]),
                padding=as_tuple(f["padding"]), dilation=as_tuple(f["dilation"]),
                groups=f["groups"], bias=f["bias"], init=f["init"])
    op = conv2d if cls is Conv2D else conv1d
    k = layer.kernel_size if cls is Conv2D else (layer.kernel_size,)

    def run(x: Any) -> Any:  # a zero weight: calling the layer would draw its weights now,
        # keyed by a path it does not have yet
        w = zeros((layer.out_channels, x.shape[1] // layer.groups, *k))
        return op(x, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)

    return [layer, *activation_modules(f["activation"], where)], probe(shape, run, where)


def _conv_config(self: Any) -> dict[str, Any]:
    """The conv entry (``filters``: Keras' name; options not at their defaults)."""
    out: dict[str, Any] = {"type": self.config_name, "filters": self.out_channels,
                           "kernel_size": jsonable(self.kernel_size)}
    for name, default in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)):
        value = jsonable(getattr(self, name))
        if value != default:
            out[name] = value
    if self.bias is None:
        out["bias"] = False
    if getattr(self, "init_name", None) is not None:
        out["init"] = self.init_name
    out["in_channels"] = self.in_channels
    return out


def _with_path(layer: Module, fn: Any) -> Tensor:
    """Run ``fn()``; an argument error from the op is re-raised with the layer's path."""
    try:
        return fn()  # type: ignore[no-any-return]
    except ValueError as e:
        raise ValueError(f"{layer.path()} ({layer.describe()}): {e}") from None


class Conv2D(Module):
    """2-d convolution over NCHW input (``ember.conv2d``); alias ``Conv2d``.

    Args:
        in_channels: channels of the input (axis 1).
        out_channels: number of kernels, the channels of the output.
        kernel_size: an int or (kH, kW).
        stride: an int or a pair.
        padding: an int, a pair, ((top, bottom), (left, right)), ``"valid"`` or ``"same"``
            (stride 1 only: the output has the input's height and width).
        dilation: an int or a pair.
        groups: split the channels into this many groups (``in_channels`` for a depthwise
            convolution); both channel counts must be multiples of it.
        bias: whether to add a learned bias per output channel.
        init: the weight initialiser (name or callable; default PyTorch's).
        bias_init: the bias initialiser (default U(+-1/sqrt(fan_in))).
        trainable: False freezes the weight and bias.
        dtype: dtype of the parameters (default float32).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> conv = nn.Conv2D(3, 8, kernel_size=3, stride=2, padding=1)
        >>> conv(ember.zeros(4, 3, 32, 32)).shape
        (4, 8, 16, 16)
        >>> conv.weight.shape
        (8, 3, 3, 3)
    """

    config_name, config_aliases, config_images = "conv2d", ("conv",), True
    config_fields = _CONV_FIELDS

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: Any = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 init: Any = None, bias_init: Any = None, trainable: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = _pair(stride, "stride", "Conv2D")
        self.dilation = _pair(dilation, "dilation", "Conv2D")
        self.groups = _groups("Conv2D", self.in_channels, self.out_channels, groups)
        self.padding: Any = _padding_attr(padding)
        if self.padding == "same" and self.stride != (1, 1):
            raise ValueError(f"Conv2D: padding='same' needs stride 1, got stride {self.stride}")
        self.init_name = init if isinstance(init, str) else None
        c_in = self.in_channels // self.groups
        fan_in = c_in * self.kernel_size[0] * self.kernel_size[1]
        self.weight = Parameter(shape=(self.out_channels, c_in, *self.kernel_size),
                                init=_init.default_ if init is None else init, dtype=dtype,
                                requires_grad=trainable)
        if bias:
            self.bias = Parameter(shape=(self.out_channels,),
                                  init=_init.bias_uniform(fan_in) if bias_init is None
                                  else bias_init, dtype=dtype, requires_grad=trainable)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        _check_nchw(self, x, str(self.in_channels))
        return _with_path(self, lambda: conv2d(x, self.weight, self.bias, self.stride,
                                               self.padding, self.dilation, self.groups))

    build_config = classmethod(_conv_build)
    config = _conv_config

    def describe(self) -> str:
        kh, kw = self.kernel_size
        return f"Conv2D {self.in_channels}->{self.out_channels} {kh}x{kw}"

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding not in (0, (0, 0), "valid"):
            text += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


#: PyTorch's spelling of :class:`Conv2D`
Conv2d = Conv2D


class Conv1D(Module):
    """1-d convolution over (N, C, L) input (``ember.conv1d``); alias ``Conv1d``.

    Args:
        in_channels: channels of the input (axis 1).
        out_channels: number of kernels, the channels of the output.
        kernel_size: an int.
        stride, dilation: ints.
        padding: an int, (left, right), ``"valid"`` or ``"same"`` (stride 1 only).
        groups: split the channels into this many groups, as in :class:`Conv2D`.
        bias: whether to add a learned bias per output channel.
        init, bias_init, trainable, dtype: as in :class:`Conv2D`.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> conv = nn.Conv1D(4, 8, kernel_size=5, padding=2)
        >>> conv(ember.zeros(2, 4, 30)).shape
        (2, 8, 30)
        >>> conv.weight.shape
        (8, 4, 5)
    """

    config_name, config_fields = "conv1d", _CONV_FIELDS

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: Any = 0, dilation: int = 1, groups: int = 1, bias: bool = True,
                 init: Any = None, bias_init: Any = None, trainable: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _single(kernel_size, "kernel_size", "Conv1D")
        self.stride = _single(stride, "stride", "Conv1D")
        self.dilation = _single(dilation, "dilation", "Conv1D")
        self.groups = _groups("Conv1D", self.in_channels, self.out_channels, groups)
        self.padding: Any = _padding_attr(padding)
        if self.padding == "same" and self.stride != 1:
            raise ValueError(f"Conv1D: padding='same' needs stride 1, got stride {self.stride}")
        self.init_name = init if isinstance(init, str) else None
        c_in = self.in_channels // self.groups
        self.weight = Parameter(shape=(self.out_channels, c_in, self.kernel_size),
                                init=_init.default_ if init is None else init, dtype=dtype,
                                requires_grad=trainable)
        if bias:
            self.bias = Parameter(shape=(self.out_channels,),
                                  init=_init.bias_uniform(c_in * self.kernel_size)
                                  if bias_init is None else bias_init, dtype=dtype,
                                  requires_grad=trainable)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        _check_nchw(self, x, str(self.in_channels), "L")
        return _with_path(self, lambda: conv1d(x, self.weight, self.bias, self.stride,
                                               self.padding, self.dilation, self.groups))

    build_config = classmethod(_conv_build)
    config = _conv_config

    def describe(self) -> str:
        return f"Conv1D {self.in_channels}->{self.out_channels} k{self.kernel_size}"

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding not in (0, "valid"):
            text += f", padding={self.padding!r}"
        for name in ("dilation", "groups"):
            if getattr(self, name) != 1:
                text += f", {name}={getattr(self, name)}"
        if self.bias is None:
            text += ", bias=False"
        return text


#: PyTorch's spelling of :class:`Conv1D`
Conv1d = Conv1D


class _Pool2D(Module):
    _op: Any = None
    _options: tuple[tuple[str, Any], ...] = ()  # the keyword options after padding, and defaults
    config_images = True

    @classmethod
    def build_config(cls, f: dict[str, Any], shape: Any, where: str) -> Any:
        options = {k: as_tuple(v) for k, v in f.items() if k not in ("pool_size", "stride",
                                                                      "padding")}
        layer = cls(as_tuple(f["pool_size"]), stride=as_tuple(f["stride"]),
                    padding=as_tuple(f["padding"]), **options)
        return [layer], probe(shape, layer, where)

    def config(self) -> dict[str, Any]:
        """The pooling entry (``pool_size``: Keras' name; options not at their defaults)."""
        out: dict[str, Any] = {"type": self.config_name, "pool_size": jsonable(self.kernel_size)}
        if self.stride is not None and jsonable(self.stride) != jsonable(self.kernel_size):
            out["stride"] = jsonable(self.stride)
        if jsonable(self.padding) != 0:
            out["padding"] = jsonable(self.padding)
        for name, default in self._options:
            if getattr(self, name) != default:
                out[name] = jsonable(getattr(self, name))
        return out

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None, padding: Any = 0,
                 **options: Any) -> None:
        super().__init__()
        what = type(self).__name__
        _pair(kernel_size, "kernel_size", what)
        if stride is not None:
            _pair(stride, "stride", what)
        _pool_padding(padding, what)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride  # PyTorch's default
        self.padding = _padding_attr(padding)
        for name, default in self._options:
            setattr(self, name, options.get(name, default))
        if "dilation" in options:
            _pair(options["dilation"], "dilation", what)

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        _check_nchw(self, x, "C")
        op = type(self)._op
        options = {name: getattr(self, name) for name, _ in self._options}
        return _with_path(self, lambda: op(x, self.kernel_size, self.stride, self.padding,
                                           **options))

    def describe(self) -> str:
        k = _pair(self.kernel_size, "kernel_size", type(self).__name__)
        return f"{type(self).__name__} {k[0]}x{k[1]}"

    def extra_repr(self) -> str:
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        for name, default in self._options:
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text


class MaxPool2D(_Pool2D):
    """Max pooling (``ember.max_pool2d``): ``stride`` defaults to ``kernel_size``; padding (an int,
    a pair or ((top, bottom), (left, right))) counts as -inf and is at most half the window;
    ``dilation`` spaces the taps; ``ceil_mode`` rounds the output size up; ties send the gradient
    to the first maximum. Alias ``MaxPool2d``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.MaxPool2D(3, stride=2, padding=1)(ember.zeros(1, 2, 7, 7)).shape
        (1, 2, 4, 4)
        >>> nn.MaxPool2D(2, ceil_mode=True)(ember.zeros(1, 2, 7, 7)).shape
        (1, 2, 4, 4)
    """

    _op = staticmethod(max_pool2d)
    _options = (("dilation", 1), ("ceil_mode", False))
    config_name, config_aliases = "maxpool2d", ("maxpool",)
    config_fields = {"pool_size": REQUIRED, "stride": None, "padding": 0, "dilation": 1,
                     "ceil_mode": False}

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None, padding: Any = 0,
                 dilation: int | tuple[int, int] = 1, ceil_mode: bool = False) -> None:
        super().__init__(kernel_size, stride, padding, dilation=dilation,
                         ceil_mode=bool(ceil_mode))


class AvgPool2D(_Pool2D):
    """Average pooling (``ember.avg_pool2d``): zero padding counts in each mean unless
    ``count_include_pad=False`` (then each window divides by the input elements it covers);
    ``ceil_mode`` rounds the output size up. Alias ``AvgPool2d``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.AvgPool2D(2)(ember.ones(1, 1, 4, 4)).tolist()
        [[[[1.0, 1.0], [1.0, 1.0]]]]
        >>> nn.AvgPool2D(2, padding=1, count_include_pad=False)(ember.ones(1, 1, 2, 2)).tolist()
        [[[[1.0, 1.0], [1.0, 1.0]]]]
    """

    _op = staticmethod(avg_pool2d)
    _options = (("ceil_mode", False), ("count_include_pad", True))
    config_name, config_aliases = "avgpool2d", ("avgpool",)
    config_fields = {"pool_size": REQUIRED, "stride": None, "padding": 0, "ceil_mode": False,
                     "count_include_pad": True}

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode=bool(ceil_mode),
                         count_include_pad=bool(count_include_pad))


#: PyTorch's spellings
MaxPool2d = MaxPool2D
AvgPool2d = AvgPool2D


class _AdaptivePool2D(Module):
    _op: Any = None
    config_images = True

    @classmethod
    def build_config(cls, f: dict[str, Any], shape: Any, where: str) -> Any:
        layer = cls(as_tuple(f["output_size"]))
        return [layer], probe(shape, layer, where)

    def config(self) -> dict[str, Any]:
        """The adaptive pooling entry."""
        return {"type": self.config_name, "output_size": jsonable(self.output_size)}

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        items = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,)
        if len(items) not in (1, 2) or not all(
            o is None or (isinstance(o, int) and not isinstance(o, bool) and o >= 1)
            for o in items
        ):
            raise ValueError(f"{type(self).__name__}: output_size must be an int >= 1 or a pair "
                             f"of them (None keeps that axis), got {output_size!r}")
        self.output_size = output_size if not isinstance(output_size, list) else items

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        _check_nchw(self, x, "C")
        op = type(self)._op
        return _with_path(self, lambda: op(x, self.output_size))

    def describe(self) -> str:
        return f"{type(self).__name__} {self.output_size}"

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2D(_AdaptivePool2D):
    """Average pooling to a fixed output size whatever the input's (``ember.adaptive_avg_pool2d``,
    PyTorch's windows); ``None`` keeps an axis. Alias ``AdaptiveAvgPool2d``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.AdaptiveAvgPool2D((2, 3))(ember.ones(4, 8, 7, 9)).shape
        (4, 8, 2, 3)
    """

    _op = staticmethod(adaptive_avg_pool2d)
    config_name = "adaptiveavgpool2d"


class AdaptiveMaxPool2D(_AdaptivePool2D):
    """Max pooling to a fixed output size (``ember.adaptive_max_pool2d``). Alias
    ``AdaptiveMaxPool2d``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.AdaptiveMaxPool2D(1)(ember.arange(8.0).reshape(1, 2, 2, 2)).tolist()
        [[[[3.0]], [[7.0]]]]
    """

    _op = staticmethod(adaptive_max_pool2d)
    config_name = "adaptivemaxpool2d"


#: PyTorch's spellings
AdaptiveAvgPool2d = AdaptiveAvgPool2D
AdaptiveMaxPool2d = AdaptiveMaxPool2D


class GlobalAvgPool2D(Module):
    """The mean over the spatial axes: (N, C, H, W) -> (N, C) (Keras' GlobalAveragePooling2D).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.GlobalAvgPool2D()(ember.ones(2, 5, 3, 3)).shape
        (2, 5)
    """

    config_name, config_images = "globalavgpool2d", True

    @classmethod
    def build_config(cls, f: dict[str, Any], shape: Any, where: str) -> Any:
        layer = cls()
        return [layer], probe(shape, layer, where)

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        _check_nchw(self, x, "C")
        return x.mean(axis=(2, 3))
