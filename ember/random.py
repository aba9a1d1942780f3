"""ember's own random stream: seeded by ``ember.manual_seed``, never NumPy's global state.

The stream's state is one key array of the active backend; each draw splits it into a new state
and a key for the draw. Because the state is an array, ``ember.jit`` carries it into and out of a
compiled step like any other state, so draws inside a compiled function differ from step to step.
After ``manual_seed(s)``, a program that makes the same draws in the same order gets the same
numbers on the same backend; switching backend restarts the stream from the seed.
:func:`key_for` derives a key from the seed and a name (a parameter's path), independent of how
many draws came before.

Example:
    >>> import ember
    >>> ember.manual_seed(0)
    >>> a = ember.randn(3)
    >>> ember.manual_seed(0)
    >>> bool((ember.randn(3) == a).numpy().all())
    True
"""

from __future__ import annotations

import zlib
from typing import Any

from ember import backend
from ember.tensor import Tensor, as_array

__all__ = [
    "manual_seed", "initial_seed", "next_key", "key_for", "get_state", "set_state", "categorical",
    "multinomial",
]

_seed = 0
_key: Any = None  # the stream's state: a key array of the active backend (made lazily)


def manual_seed(seed: int) -> None:
    """Seed ember's random stream (parameter init, ``rand``/``randn``, dropout keys).

    Example:
        >>> import ember
        >>> ember.manual_seed(0)
        >>> a = ember.rand(3)
        >>> ember.manual_seed(0)
        >>> ember.rand(3).tolist() == a.tolist()
        True
    """
    global _seed, _key
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"manual_seed expects a non-negative integer, got {seed!r}")
    _seed, _key = seed, None


def initial_seed() -> int:
    """The seed last given to :func:`manual_seed` (0 when never called).

    Example:
        >>> import ember
        >>> ember.manual_seed(3)
        >>> ember.initial_seed()
        3
        >>> ember.manual_seed(0)  # back to the default seed
    """
    return _seed


def get_state() -> Any:
    """The stream's current key array (what a checkpoint or a compiled step carries).

    Example:
        >>> import ember
        >>> state = ember.random.get_state()
        >>> a = ember.rand(2)
        >>> ember.random.set_state(state)  # replay the same draw
        >>> ember.rand(2).tolist() == a.tolist()
        True
    """
    global _key
    bk = backend.get()
    if _key is None or not bk.owns(_key):
        _key = bk.key(_seed)
    return _key


def set_state(key: Any) -> None:
    """Restore the stream from a key array returned by :func:`get_state`.

    Example:
        >>> import ember
        >>> state = ember.random.get_state()
        >>> a = ember.randn(2)
        >>> ember.random.set_state(state)
        >>> ember.randn(2).tolist() == a.tolist()
        True
    """
    global _key
    _key = key


def next_key() -> Any:
    """A fresh key from the stream (advances it by one split).

    Example:
        >>> import ember
        >>> k1, k2 = ember.random.next_key(), ember.random.next_key()
        >>> bool((k1 != k2).any())
        True
    """
    global _key
    keys = backend.get().split(get_state(), 2)
    _key = keys[0]
    return keys[1]


def key_for(name: str, seed: int | None = None) -> Any:
    """A key derived from ``seed`` (default: the current one) and ``name`` alone (e.g. a
    parameter's path), independent of the draws made before.

    Example:
        >>> from ember import random
        >>> a = random.key_for("fc.weight", seed=0)
        >>> same, other = random.key_for("fc.weight", seed=0), random.key_for("fc.bias", seed=0)
        >>> bool((a == same).all()), bool((a == other).all())
        (True, False)
    """
    bk = backend.get()
    return bk.fold_in(bk.key(_seed if seed is None else seed), zlib.crc32(name.encode("utf-8")))


def _gumbel(logits: Any, shape: tuple[int, ...], key: Any) -> Any:
    """``logits + Gumbel noise`` of ``shape``: the argmax of a row is a draw from its softmax."""
    bk = backend.get()
    xp = bk.xp
    dtype = logits.dtype if logits.dtype.kind == "f" else backend.default_float
    u = bk.uniform(next_key() if key is None else key, shape, dtype)
    u = xp.maximum(u, xp.finfo(dtype).tiny)  # log(0) would give -inf, never NaN, but keep it
    return logits - xp.log(-xp.log(u))


def _logits(x: Any, who: str) -> Any:
    data = as_array(x.data if isinstance(x, Tensor) else x)
    if data.ndim < 1:
        raise ValueError(f"ember.random.{who}: needs a class axis (the last), got a 0-d input")
    return data


def categorical(logits: Any, num_samples: int = 1, key: Any = None) -> Tensor:
    """Class indices drawn from ``softmax(logits)`` over the last axis, with replacement, on
    ember's seeded stream (or from ``key``): shape (..., num_samples), int64, no gradient.

    Uses the Gumbel-max trick: ``argmax(logits + Gumbel noise)`` is one draw, on both backends
    and inside ``ember.jit``.

    Example:
        >>> import ember
        >>> ember.manual_seed(0)
        >>> ember.random.categorical(ember.tensor([[0.0, -1e9, 0.0]]), num_samples=4).shape
        (1, 4)
    """
    data = _logits(logits, "categorical")
    shape = data.shape[:-1] + (num_samples, data.shape[-1])
    z = _gumbel(data[..., None, :], shape, key)
    idx = backend.get().xp.argmax(z, axis=-1).astype(backend.int64)
    return Tensor._make(idx, False, None)


def multinomial(probs: Any, num_samples: int = 1, replacement: bool = False,
                key: Any = None) -> Tensor:
    """PyTorch's ``multinomial``: ``num_samples`` indices per row of the non-negative weights
    ``probs`` (..., C) (normalised here), without replacement by default; (..., num_samples).

    Without replacement the draw is the top ``num_samples`` of ``log(probs) + Gumbel noise`` in
    order (each index at most once; zero weights only when nothing else is left).

    Example:
        >>> import ember
        >>> ember.manual_seed(0)
        >>> sorted(ember.random.multinomial(ember.tensor([0.2, 0.0, 0.5, 0.3]), 3).tolist())
        [0, 2, 3]
    """
    data = _logits(probs, "multinomial")
    xp = backend.get().xp
    n = data.shape[-1]
    if not replacement and num_samples > n:
        raise ValueError(f"ember.random.multinomial: cannot draw {num_samples} samples without "
                         f"replacement from {n} categories; pass replacement=True")
    if not backend.is_traced(data) and bool(xp.any(data < 0)):
        raise ValueError("ember.random.multinomial: probs must be non-negative")
    with_zero = xp.where(data > 0, xp.log(xp.where(data > 0, data, 1)), -xp.inf)
    if replacement:
        return categorical(with_zero, num_samples, key)
    z = _gumbel(with_zero, data.shape, key)
    idx = xp.argsort(-z, axis=-1, stable=True)[..., :num_samples].astype(backend.int64)
    return Tensor._make(idx, False, None)
