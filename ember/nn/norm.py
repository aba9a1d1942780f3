"""Normalisation layers for sequences and small batches: RMSNorm and GroupNorm.

(``LayerNorm`` and the batch norms live in :mod:`ember.nn.layers`.)

Example:
    >>> import ember
    >>> from ember import nn
    >>> nn.RMSNorm(4)(ember.ones(2, 3, 4)).shape
    (2, 3, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ember import backend
from ember.nn.module import Module, Parameter
from ember.nn.registry import REQUIRED
from ember.tensor import Tensor

__all__ = ["RMSNorm", "GroupNorm"]


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _shape_str(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


class RMSNorm(Module):
    """Root-mean-square normalisation over the last axes: ``x / sqrt(mean(x^2) + eps) * weight``.

    Args:
        normalized_shape: size (or sizes) of the last axes normalised over (PyTorch's name;
            ``dim`` in LLaMA-style code).
        eps: added to the mean square; None (PyTorch's default) uses the machine epsilon of the
            input's dtype.
        elementwise_affine: whether to learn a per-element scale ``weight`` (starts at ones).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> y = nn.RMSNorm(2, eps=0.0)(ember.tensor([[3.0, 4.0]]))
        >>> [round(v, 4) for v in y.tolist()[0]]
        [0.8485, 1.1314]
    """

    config_name = "rmsnorm"
    config_fields = {"normalized_shape": None, "eps": None}
    config_infer = {"normalized_shape": lambda s: s[-1:]}

    def config_output_shape(self, shape: Any) -> Any:
        return shape

    def __init__(self, normalized_shape: int | Sequence[int], eps: float | None = None,
                 elementwise_affine: bool = True, trainable: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        self.eps = None if eps is None else float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        dt = backend.default_float if dtype is None else backend.as_dtype(dtype)
        if elementwise_affine:
            self.weight = Parameter(backend.get().xp.ones(self.normalized_shape, dt),
                                    requires_grad=trainable)
        else:
            self.register_parameter("weight", None)

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        k = len(self.normalized_shape)
        if x.ndim < k or x.shape[x.ndim - k:] != self.normalized_shape:
            raise self.shape_error(_shape_str(("...", *self.normalized_shape)), x.shape)
        axes = tuple(range(x.ndim - k, x.ndim))
        eps = self.eps
        if eps is None:
            eps = float(backend.get().xp.finfo(x.dtype).eps)
        y = x / ((x * x).mean(axis=axes, keepdims=True) + eps).sqrt()
        if self.weight is not None:
            y = y * self.weight
        return y

    def describe(self) -> str:
        return f"RMSNorm {_shape_str(self.normalized_shape)}"

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Group normalisation (Wu & He): split the channels of ``(N, C, *)`` input into
    ``num_groups`` groups, normalise each group of each sample, then scale and shift per channel.

    Args:
        num_groups: number of groups; must divide ``num_channels``.
        num_channels: ``C``, the size of axis 1.
        eps: added to the variance.
        affine: whether to learn a per-channel ``weight`` (ones) and ``bias`` (zeros).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> y = nn.GroupNorm(1, 2)(ember.tensor([[1.0, 3.0]]))
        >>> [round(v, 3) for v in y.tolist()[0]]
        [-1.0, 1.0]
    """

    config_name = "groupnorm"
    config_fields = {"num_groups": REQUIRED, "num_channels": None, "eps": 1e-5, "affine": True}
    config_infer = {"num_channels": lambda s: s[0]}

    def config_output_shape(self, shape: Any) -> Any:
        return shape

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, trainable: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.num_groups = int(num_groups)
        self.num_channels = int(num_channels)
        if self.num_groups < 1 or self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must be a positive divisor of "
                             f"num_channels={num_channels}")
        self.eps = float(eps)
        self.affine = bool(affine)
        dt = backend.default_float if dtype is None else backend.as_dtype(dtype)
        xp = backend.get().xp
        if affine:
            self.weight = Parameter(xp.ones(self.num_channels, dt), requires_grad=trainable)
            self.bias = Parameter(xp.zeros(self.num_channels, dt), requires_grad=trainable)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        c, g = self.num_channels, self.num_groups
        if x.ndim < 2 or x.shape[1] != c:
            raise self.shape_error(f"(N, {c}, ...)", x.shape)
        n = x.shape[0]
        grouped = x.reshape(n, g, -1)
        mean = grouped.mean(axis=-1, keepdims=True)
        var = grouped.var(axis=-1, keepdims=True)
        y = ((grouped - mean) / (var + self.eps).sqrt()).reshape(x.shape)
        if self.affine:
            bshape = (c, *([1] * (x.ndim - 2)))
            y = y * self.weight.reshape(bshape) + self.bias.reshape(bshape)
        return y

    def describe(self) -> str:
        return f"GroupNorm {self.num_groups}x{self.num_channels // self.num_groups}"

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
