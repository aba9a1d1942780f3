"""Activation modules, and the name -> activation registry behind ``activation="relu"``.

Every activation is a thin Module over an op of ``ember`` (``ember.relu``, ``ember.softmax``…), so
its gradient is the op's. Layers that take ``activation=`` accept a name from :data:`ACTIVATIONS`,
an activation Module, any callable, or None.

Example:
    >>> import ember
    >>> from ember import nn
    >>> nn.get_activation("leaky_relu")
    LeakyReLU(alpha=0.01)
    >>> nn.ReLU()(ember.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember.creation import full
from ember.nn.module import Module, Parameter
from ember.nn.registry import REQUIRED
from ember.tensor import Tensor

__all__ = [
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "GELU",
    "Softplus",
    "ACTIVATIONS",
    "get_activation",
]


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


class _Activation(Module):
    """An activation: ``config_name`` is its name in :data:`ACTIVATIONS` and in configs. Its
    own entry type, ``{"type": "activation", "activation": <name or entry>}``, is any of them."""

    config_name = "activation"
    config_fields = {"activation": REQUIRED}

    @classmethod
    def build_config(cls, f: dict[str, Any], shape: Any, where: str) -> Any:
        if cls is _Activation:
            from ember.nn.config import activation_modules

            return activation_modules(f["activation"], where), shape
        return [cls(**f)], shape

    def config(self) -> dict[str, Any]:
        """The entry that rebuilds this activation in ``nn.from_config``."""
        return {"type": self.config_name}


class ReLU(_Activation):
    """``max(x, 0)``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.ReLU()(ember.tensor([-1.0, 3.0])).tolist()
        [0.0, 3.0]
    """

    config_name = "relu"

    def forward(self, x: Any) -> Tensor:
        return _tensor(x).relu()


class LeakyReLU(_Activation):
    """``x`` where positive, ``alpha * x`` elsewhere.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.LeakyReLU(0.1)(ember.tensor([-1.0, 3.0])).tolist()
        [-0.10000000149011612, 3.0]
    """

    config_name = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: Any) -> Tensor:
        return _tensor(x).leaky_relu(self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.config_name}
        if self.alpha != 0.01:
            out["alpha"] = self.alpha
        return out


class PReLU(_Activation):
    """Leaky ReLU with a learned slope: ``max(x, 0) + weight * min(x, 0)``.

    Args:
        num_parameters: 1 (one slope shared by all channels) or the number of channels (axis 1
            of the input).
        init: the initial slope.
        trainable: False to freeze the slope.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.PReLU()(ember.tensor([-4.0, 1.0])).tolist()
        [-1.0, 1.0]
    """

    config_name = "prelu"
    config_fields = {"num_parameters": 1, "init": 0.25}

    def __init__(self, num_parameters: int = 1, init: float = 0.25, trainable: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        self.num_parameters = int(num_parameters)
        self.init = float(init)
        self.weight = Parameter(full((self.num_parameters,), self.init, dtype=dtype),
                                requires_grad=trainable)

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        w: Tensor = self.weight
        if self.num_parameters > 1:
            if x.ndim < 2 or x.shape[1] != self.num_parameters:
                raise self.shape_error(f"(N, {self.num_parameters}, ...)", x.shape)
            w = w.reshape(self.num_parameters, *([1] * (x.ndim - 2)))
        return x.relu() - w * (-x).relu()

    def describe(self) -> str:
        return f"PReLU {self.num_parameters}"

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"

    def config(self) -> dict[str, Any]:
        return {"type": self.config_name, "num_parameters": self.num_parameters,
                "init": self.init}


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.Sigmoid()(ember.tensor([0.0])).tolist()
        [0.5]
    """

    config_name = "sigmoid"

    def forward(self, x: Any) -> Tensor:
        return _tensor(x).sigmoid()


class Tanh(_Activation):
    """The hyperbolic tangent.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.Tanh()(ember.tensor([0.0])).tolist()
        [0.0]
    """

    config_name = "tanh"

    def forward(self, x: Any) -> Tensor:
        return _tensor(x).tanh()


class Softmax(_Activation):
    """``exp(x) / sum(exp(x))`` along ``axis`` (PyTorch's ``dim=`` is accepted too).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.Softmax()(ember.tensor([1.0, 1.0])).tolist()
        [0.5, 0.5]
    """

    config_name = "softmax"
    config_fields = {"axis": -1}

    def __init__(self, axis: int = -1, *, dim: int | None = None) -> None:
        super().__init__()
        self.axis = int(axis if dim is None else dim)

    def forward(self, x: Any) -> Tensor:
        return _tensor(x).softmax(axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.config_name}
        if self.axis != -1:
            out["axis"] = self.axis
        return out


class LogSoftmax(Softmax):
    """``x - logsumexp(x)`` along ``axis`` (the fused, stable op).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> round(nn.LogSoftmax()(ember.tensor([0.0, 0.0])).tolist()[0], 4)
        -0.6931
    """

    config_name = "log_softmax"
    config_fields = {"axis": -1}

    def forward(self, x: Any) -> Tensor:
        return _tensor(x).log_softmax(axis=self.axis)


class GELU(_Activation):
    """Gaussian error linear unit ``x * Phi(x)`` (``approximate="tanh"`` for the tanh form).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> round(nn.GELU()(ember.tensor([1.0])).tolist()[0], 4)
        0.8413
    """

    config_name = "gelu"

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> Tensor:
        return _tensor(x).gelu(approximate=self.approximate)

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else f"approximate={self.approximate!r}"

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.config_name}
        if self.approximate != "none":
            out["approximate"] = self.approximate
        return out


class Softplus(_Activation):
    """``log(1 + exp(x))``, computed without overflow.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> round(nn.Softplus()(ember.tensor([0.0])).tolist()[0], 4)
        0.6931
    """

    config_name = "softplus"

    def forward(self, x: Any) -> Tensor:
        return _tensor(x).softplus()


#: name -> activation class, for ``activation="name"`` and config entries
ACTIVATIONS: dict[str, type[_Activation]] = {
    cls.config_name: cls
    for cls in (ReLU, LeakyReLU, PReLU, Sigmoid, Tanh, Softmax, LogSoftmax, GELU, Softplus)
}


def get_activation(activation: str | Module | Callable[..., Any] | None
                   ) -> Module | Callable[..., Any] | None:
    """The activation for a layer's ``activation=`` argument.

    A name gives a new module (``"relu"`` -> ``ReLU()``); a Module or another callable is returned
    as it is; None (or ``"linear"``) means no activation.

    Example:
        >>> from ember import nn
        >>> nn.get_activation("tanh"), nn.get_activation(None)
        (Tanh(), None)
    """
    if activation is None:
        return None
    if isinstance(activation, str):
        name = activation.strip().lower()
        if name in ("linear", "none", "identity"):
            return None
        if name in ACTIVATIONS:
            return ACTIVATIONS[name]()
        raise ValueError(
            f"unknown activation {activation!r}; valid names: {', '.join(ACTIVATIONS)} "
            f"(or 'linear' / None for none, or pass a Module or a callable)"
        )
    if callable(activation):
        return activation
    raise TypeError(f"activation must be a name, a Module, a callable or None; got "
                    f"{type(activation).__name__}")

