"""ember's own random stream: seeded by ``ember.manual_seed``, never NumPy's global state.

Draws are counter-based: the n-th draw after ``manual_seed(s)`` uses the key ``fold_in(key(s), n)``
of the active backend, so a program that makes the same draws in the same order gets the same
numbers on the same backend. :func:`key_for` derives a key from the seed and a name (a parameter's
path), independent of how many draws came before.

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

__all__ = ["manual_seed", "initial_seed", "next_key", "key_for"]

_seed = 0
_counter = 0


def manual_seed(seed: int) -> None:
    """Seed ember's random stream (parameter init, ``rand``/``randn``, dropout masks)."""
    global _seed, _counter
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"manual_seed expects a non-negative integer, got {seed!r}")
    _seed, _counter = seed, 0


def initial_seed() -> int:
    """The seed last given to :func:`manual_seed` (0 when never called)."""
    return _seed


def next_key() -> Any:
    """A fresh key from the stream (advances it by one)."""
    global _counter
    bk = backend.get()
    key = bk.fold_in(bk.key(_seed), _counter)
    _counter += 1
    return key


def key_for(name: str) -> Any:
    """A key derived from the current seed and ``name`` alone (e.g. a parameter's path)."""
    bk = backend.get()
    return bk.fold_in(bk.key(_seed), zlib.crc32(name.encode("utf-8")))
