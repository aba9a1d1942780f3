"""Convolution and pooling layers on NCHW input: Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D.

``Conv2D.weight`` has PyTorch's layout ``(out_channels, in_channels, kH, kW)`` and PyTorch's
default initialisation: ``kaiming_uniform_(a=sqrt(5))``, i.e. U(+-1/sqrt(fan_in)) with ``fan_in =
in_channels * kH * kW``, and the bias U(+-1/sqrt(fan_in)); drawn lazily from the parameter's path
(see :mod:`ember.nn.init`). PyTorch's spellings ``Conv2d``, ``MaxPool2d``, ``AvgPool2d`` are
aliases.

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

from ember.nn import init as _init
from ember.nn.module import Module, Parameter
from ember.ops.conv import _pair, avg_pool2d, conv2d, max_pool2d
from ember.tensor import Tensor

__all__ = [
    "Conv2D",
    "Conv2d",
    "MaxPool2D",
    "MaxPool2d",
    "AvgPool2D",
    "AvgPool2d",
    "GlobalAvgPool2D",
]


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _check_nchw(layer: Module, x: Tensor, channels: str) -> None:
    if x.ndim != 4 or (channels != "C" and x.shape[1] != int(channels)):
        raise layer.shape_error(f"(N, {channels}, H, W)", x.shape)


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

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: Any = 0,
                 dilation: int | tuple[int, int] = 1, bias: bool = True, init: Any = None,
                 bias_init: Any = None, trainable: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = _pair(stride, "stride", "Conv2D")
        self.dilation = _pair(dilation, "dilation", "Conv2D")
        self.padding: Any = padding if isinstance(padding, str) else (
            tuple(tuple(p) if isinstance(p, (tuple, list)) else p for p in padding)
            if isinstance(padding, (tuple, list)) else padding)
        if self.padding == "same" and self.stride != (1, 1):
            raise ValueError(f"Conv2D: padding='same' needs stride 1, got stride {self.stride}")
        self.init_name = init if isinstance(init, str) else None
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        self.weight = Parameter(shape=(self.out_channels, self.in_channels, *self.kernel_size),
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
                                               self.padding, self.dilation))

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
        if self.bias is None:
            text += ", bias=False"
        return text


#: PyTorch's spelling of :class:`Conv2D`
Conv2d = Conv2D


class _Pool2D(Module):
    _op: Any = None
    _kind = ""

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        what = type(self).__name__
        _pair(kernel_size, "kernel_size", what)
        if stride is not None:
            _pair(stride, "stride", what)
        _pair(padding, "padding", what, minimum=0)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride  # PyTorch's default
        self.padding = padding

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        _check_nchw(self, x, "C")
        op = type(self)._op
        return _with_path(self, lambda: op(x, self.kernel_size, self.stride, self.padding))

    def describe(self) -> str:
        k = _pair(self.kernel_size, "kernel_size", self._kind)
        return f"{type(self).__name__} {k[0]}x{k[1]}"

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2D(_Pool2D):
    """Max pooling (``ember.max_pool2d``): ``stride`` defaults to ``kernel_size``, padding counts
    as -inf and is at most half the kernel; ties send the gradient to the first maximum.
    Alias ``MaxPool2d``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.MaxPool2D(3, stride=2, padding=1)(ember.zeros(1, 2, 7, 7)).shape
        (1, 2, 4, 4)
    """

    _op = staticmethod(max_pool2d)
    _kind = "MaxPool2D"


class AvgPool2D(_Pool2D):
    """Average pooling (``ember.avg_pool2d``): zero padding counts in each mean (PyTorch's
    ``count_include_pad=True``). Alias ``AvgPool2d``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.AvgPool2D(2)(ember.ones(1, 1, 4, 4)).tolist()
        [[[[1.0, 1.0], [1.0, 1.0]]]]
    """

    _op = staticmethod(avg_pool2d)
    _kind = "AvgPool2D"


#: PyTorch's spellings
MaxPool2d = MaxPool2D
AvgPool2d = AvgPool2D


class GlobalAvgPool2D(Module):
    """The mean over the spatial axes: (N, C, H, W) -> (N, C) (Keras' GlobalAveragePooling2D).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.GlobalAvgPool2D()(ember.ones(2, 5, 3, 3)).shape
        (2, 5)
    """

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        _check_nchw(self, x, "C")
        return x.mean(axis=(2, 3))
