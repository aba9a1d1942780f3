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

__all__ = ["manual_seed", "initial_seed", "next_key", "key_for", "get_state", "set_state",
           "state_arrays", "bind"]

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


def state_arrays() -> list[Any]:
    """The state protocol (see :func:`ember.jit`): the arrays a compiled step reads and writes,
    here the stream's one key.

    Example:
        >>> import ember
        >>> arrays = ember.random.state_arrays()
        >>> a = ember.rand(2)
        >>> ember.random.bind(arrays)
        >>> ember.rand(2).tolist() == a.tolist()
        True
    """
    return [get_state()]


def bind(arrays: list[Any]) -> None:
    """The state protocol: take the arrays of :func:`state_arrays` as the state.

    Example:
        >>> import ember
        >>> ember.random.bind(ember.random.state_arrays())
    """
    set_state(arrays[0])


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
