"""Parameter initialisation: PyTorch's schemes, reproducible and keyed by the parameter's path.

Every scheme is a function ``name_(tensor, ..., key=None)`` that draws a new array of the tensor's
shape and dtype and *rebinds* ``tensor.data`` (arrays are never modified in place), PyTorch's
spelling with the trailing underscore. ``key`` is a backend random key; when it is omitted the
draw comes from the key of the parameter being materialised (see below) or else from ember's
seeded stream (``ember.random.next_key()``).

Layers create their parameters *lazily*: ``Parameter(shape=..., init=fn)`` records the shape, the
initialiser, the seed in force (``ember.manual_seed``) and the backend at construction, and draws
the values the first time they are needed (the model's first call, ``parameters()``,
``state_dict()``, ``summary()`` or attribute access) from the key of the parameter's full path as
seen from the outermost module (``fold_in(key(seed), crc32("0.weight"))``). So the same model built
after the same ``manual_seed`` has bit-identical weights on the same backend, and adding a layer
leaves the weights of every layer whose path did not change as they were.

Names accepted by ``init=`` on layers (and by :func:`get`): ``zeros``, ``ones``, ``normal``,
``uniform``, ``xavier_uniform`` / ``glorot_uniform``, ``xavier_normal`` / ``glorot_normal``,
``kaiming_uniform`` / ``he_uniform``, ``kaiming_normal`` / ``he_normal``, ``lecun_normal``,
``orthogonal``, ``default`` (PyTorch's layer default: ``kaiming_uniform_(a=sqrt(5))``, i.e.
uniform(+-1/sqrt(fan_in))).

Fans follow PyTorch: for a weight of shape ``(out, in, *kernel)``, ``fan_in = in * prod(kernel)``
and ``fan_out = out * prod(kernel)``.

Example:
    >>> import ember
    >>> from ember import nn
    >>> w = ember.zeros(64, 32)
    >>> _ = nn.init.kaiming_uniform_(w, nonlinearity="relu")
    >>> bound = (6 / 32) ** 0.5
    >>> bool((abs(w.numpy()) <= bound).all())
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ember import backend
from ember import random as _random
from ember.tensor import Tensor

__all__ = [
    "calculate_gain",
    "calculate_fan_in_and_fan_out",
    "zeros_",
    "ones_",
    "constant_",
    "normal_",
    "uniform_",
    "xavier_uniform_",
    "xavier_normal_",
    "glorot_uniform_",
    "glorot_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "he_uniform_",
    "he_normal_",
    "lecun_normal_",
    "orthogonal_",
    "default_",
    "bias_uniform",
    "get",
    "path_key",
    "INITIALIZERS",
]

Initializer = Callable[[Tensor], Any]


# -- keys ------------------------------------------------------------------------------------------

class _KeyScope:
    """The key of the parameter being materialised; the first draw inside uses it, each later
    one folds in a counter."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.count = 0


_scopes: list[_KeyScope] = []


def path_key(path: str, seed: int | None = None) -> Any:
    """The random key of the parameter at ``path`` for ``seed`` (default: the current seed).

    It is ``ember.random.key_for(path)`` computed for a given seed, so that a lazily initialised
    parameter uses the seed that was in force when it was created.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> k = nn.init.path_key("0.weight")
        >>> bool((k == ember.random.key_for("0.weight")).all())
        True
    """
    return _random.key_for(path, seed)


@contextmanager
def _scope(key: Any) -> Iterator[None]:
    _scopes.append(_KeyScope(key))
    try:
        yield
    finally:
        _scopes.pop()


def _key(key: Any) -> Any:
    if key is not None:
        return key
    if _scopes:  # the first draw uses the path's key itself, later ones fold in a counter
        scope = _scopes[-1]
        scope.count += 1
        n = scope.count - 1
        return scope.key if n == 0 else backend.get().fold_in(scope.key, n)
    return _random.next_key()


def _set(tensor: Tensor, array: Any) -> Tensor:
    tensor.data = array.astype(tensor.dtype) if array.dtype != tensor.dtype else array
    return tensor


def _shape(tensor: Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


# -- gains and fans --------------------------------------------------------------------------------

_LINEAR_LIKE = ("linear", "identity", "sigmoid", "conv1d", "conv2d", "conv3d")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table).

    Example:
        >>> from ember import nn
        >>> round(nn.init.calculate_gain("relu"), 4), nn.init.calculate_gain("tanh")
        (1.4142, 1.6666666666666667)
    """
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    valid = ", ".join((*_LINEAR_LIKE, "tanh", "relu", "leaky_relu", "selu"))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; valid: {valid}")


def calculate_fan_in_and_fan_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` = ``(out, in, *kernel)``.

    Example:
        >>> from ember import nn
        >>> nn.init.calculate_fan_in_and_fan_out((16, 3, 5, 5))
        (75, 400)
    """
    if len(shape) < 2:
        raise ValueError(
            f"fan_in and fan_out need a tensor with at least 2 dimensions (out, in, ...); got "
            f"shape {tuple(shape)}: initialise a bias with uniform_/normal_/zeros_ instead"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(shape: tuple[int, ...], mode: str) -> int:
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")


# -- the schemes -----------------------------------------------------------------------------------

def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.init.constant_(ember.zeros(2), 0.5).tolist()
        [0.5, 0.5]
    """
    xp = backend.get().xp
    return _set(tensor, xp.full(_shape(tensor), val, dtype=tensor.dtype))


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.init.zeros_(ember.ones(2)).tolist()
        [0.0, 0.0]
    """
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.init.ones_(ember.zeros(2)).tolist()
        [1.0, 1.0]
    """
    return constant_(tensor, 1.0)


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, key: Any = None) -> Tensor:
    """Draw from U(a, b).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> x = nn.init.uniform_(ember.zeros(100), -2.0, -1.0).numpy()
        >>> bool(((x >= -2) & (x < -1)).all())
        True
    """
    bk = backend.get()
    u = bk.uniform(_key(key), _shape(tensor), tensor.dtype)
    return _set(tensor, u * (b - a) + a)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, key: Any = None) -> Tensor:
    """Draw from N(mean, std**2).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> x = nn.init.normal_(ember.zeros(4000), mean=3.0, std=0.1).numpy()
        >>> round(float(x.mean()), 1)
        3.0
    """
    bk = backend.get()
    z = bk.normal(_key(key), _shape(tensor), tensor.dtype)
    return _set(tensor, z * std + mean)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, key: Any = None) -> Tensor:
    """Glorot uniform: U(-b, b) with ``b = gain * sqrt(6 / (fan_in + fan_out))``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> w = nn.init.xavier_uniform_(ember.zeros(3, 5)).numpy()
        >>> bool((abs(w) <= (6 / 8) ** 0.5).all())
        True
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(_shape(tensor))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, key=key)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, key: Any = None) -> Tensor:
    """Glorot normal: N(0, std**2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.init.xavier_normal_(ember.zeros(3, 5)).shape
        (3, 5)
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(_shape(tensor))
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), key=key)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", key: Any = None) -> Tensor:
    """He uniform: U(-b, b) with ``b = gain * sqrt(3 / fan)``, ``gain = calculate_gain(...)``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> w = nn.init.kaiming_uniform_(ember.zeros(8, 6), nonlinearity="relu").numpy()
        >>> bool((abs(w) <= 1.0).all())
        True
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(_shape(tensor), mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, key=key)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", key: Any = None) -> Tensor:
    """He normal: N(0, std**2) with ``std = gain / sqrt(fan)``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.init.kaiming_normal_(ember.zeros(4, 2), nonlinearity="relu").shape
        (4, 2)
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(_shape(tensor), mode))
    return normal_(tensor, 0.0, std, key=key)


def he_uniform_(tensor: Tensor, key: Any = None) -> Tensor:
    """Keras' He uniform: ``kaiming_uniform_(nonlinearity="relu")``, U(+-sqrt(6 / fan_in)).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.init.he_uniform_(ember.zeros(2, 2)).shape
        (2, 2)
    """
    return kaiming_uniform_(tensor, nonlinearity="relu", key=key)


def he_normal_(tensor: Tensor, key: Any = None) -> Tensor:
    """Keras' He normal: ``kaiming_normal_(nonlinearity="relu")``, std ``sqrt(2 / fan_in)``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.init.he_normal_(ember.zeros(2, 2)).shape
        (2, 2)
    """
    return kaiming_normal_(tensor, nonlinearity="relu", key=key)


def lecun_normal_(tensor: Tensor, key: Any = None) -> Tensor:
    """LeCun normal: N(0, 1 / fan_in) (a plain, not truncated, normal).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.init.lecun_normal_(ember.zeros(2, 2)).shape
        (2, 2)
    """
    return normal_(tensor, 0.0, 1.0 / math.sqrt(_fan(_shape(tensor), "fan_in")), key=key)


def orthogonal_(tensor: Tensor, gain: float = 1.0, key: Any = None) -> Tensor:
    """A (semi-)orthogonal matrix from the QR decomposition of a normal draw, times ``gain``.

    Dimensions after the first are flattened; the rows (or the columns, whichever are fewer) are
    orthonormal.

    Example:
        >>> import numpy as np, ember
        >>> from ember import nn
        >>> q = nn.init.orthogonal_(ember.zeros(4, 4, dtype=ember.float64)).numpy()
        >>> bool(np.allclose(q.T @ q, np.eye(4)))
        True
    """
    shape = _shape(tensor)
    if len(shape) < 2:
        raise ValueError(f"orthogonal_ needs a tensor with at least 2 dimensions; got shape "
                         f"{shape}")
    bk = backend.get()
    xp = bk.xp
    rows, cols = shape[0], math.prod(shape[1:])
    flat = bk.normal(_key(key), (rows, cols), tensor.dtype)
    if rows < cols:
        flat = flat.T
    q, r = xp.linalg.qr(flat)
    q = q * xp.sign(xp.diagonal(r))  # makes the decomposition unique: uniform over O(n)
    if rows < cols:
        q = q.T
    return _set(tensor, (q * gain).reshape(shape))


def default_(tensor: Tensor, key: Any = None) -> Tensor:
    """PyTorch's default for Linear and Conv weights: ``kaiming_uniform_(a=sqrt(5))``.

    That is U(-b, b) with ``b = 1 / sqrt(fan_in)``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> w = nn.init.default_(ember.zeros(3, 4)).numpy()
        >>> bool((abs(w) <= 0.5).all())
        True
    """
    return kaiming_uniform_(tensor, a=math.sqrt(5.0), key=key)


def bias_uniform(fan_in: int) -> Initializer:
    """PyTorch's default bias initialiser for a layer with ``fan_in`` inputs: U(+-1/sqrt(fan_in)).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> b = nn.init.bias_uniform(4)(ember.zeros(3)).numpy()
        >>> bool((abs(b) <= 0.5).all())
        True
    """
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(tensor: Tensor, key: Any = None) -> Tensor:
        return uniform_(tensor, -bound, bound, key=key)

    init.__name__ = init.__qualname__ = f"bias_uniform({fan_in})"
    return init


glorot_uniform_ = xavier_uniform_
glorot_normal_ = xavier_normal_

#: name -> initialiser, for ``init="name"`` on layers
INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros_,
    "ones": ones_,
    "normal": normal_,
    "uniform": uniform_,
    "xavier_uniform": xavier_uniform_,
    "glorot_uniform": xavier_uniform_,
    "xavier_normal": xavier_normal_,
    "glorot_normal": xavier_normal_,
    "kaiming_uniform": kaiming_uniform_,
    "he_uniform": he_uniform_,
    "kaiming_normal": kaiming_normal_,
    "he_normal": he_normal_,
    "lecun_normal": lecun_normal_,
    "orthogonal": orthogonal_,
    "default": default_,
}


def get(init: str | Initializer) -> Initializer:
    """The initialiser named ``init`` (a callable is returned as it is).

    Example:
        >>> from ember import nn
        >>> nn.init.get("he_normal") is nn.init.he_normal_
        True
    """
    if callable(init):
        return init
    if isinstance(init, str):
        name = init.strip().lower().rstrip("_")
        if name in INITIALIZERS:
            return INITIALIZERS[name]
    raise ValueError(
        f"unknown initialiser {init!r}; valid names: {', '.join(INITIALIZERS)} "
        f"(or pass a callable such as nn.init.xavier_uniform_)"
    )


# -- lazy materialisation (used by Parameter) ------------------------------------------------------

class LazyInit:
    """What a lazy parameter needs to draw its values later: the recipe, seed and backend."""

    __slots__ = ("shape", "dtype", "fn", "seed", "backend")

    def __init__(self, shape: tuple[int, ...], dtype: Any, fn: Initializer) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = dtype
        self.fn = fn
        self.seed = _random.initial_seed()
        self.backend = backend.get_backend()

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        return f"<lazy {name} shape={self.shape} dtype={self.dtype}>"

    def draw(self, tensor: Tensor, path: str) -> None:
        """Bind ``tensor.data`` to the values keyed by ``path`` (on the construction backend)."""
        previous = backend.get_backend()
        if previous != self.backend:
            backend.set_backend(self.backend)
        try:
            xp = backend.get().xp
            tensor.data = xp.zeros(self.shape, dtype=self.dtype)
            with _scope(path_key(path, self.seed)):
                out = self.fn(tensor)
            if out is not None and out is not tensor:  # a callable may return the new values
                data = out.data if isinstance(out, Tensor) else backend.get().asarray(out)
                if tuple(data.shape) != self.shape:
                    raise ValueError(
                        f"the initialiser {self!r} of {path!r} returned shape "
                        f"{tuple(data.shape)}; expected {self.shape}"
                    )
                tensor.data = data.astype(self.dtype)
        finally:
            if previous != self.backend:
                backend.set_backend(previous)
