"""The NumPy backend: eager, on the host, nothing to compile."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ember.backend.base import Backend

try:  # scipy's erf is exact and fast; NumPy has none, so fall back to math.erf per element
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover - scipy comes with the dev and jax extras
    _erf = np.vectorize(math.erf, otypes=[np.float64])


def _is_basic_index(index: Any) -> bool:
    """True when ``index`` has no integer arrays, so no element can be selected twice."""
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        if isinstance(item, (int, np.integer, slice)) or item is None or item is Ellipsis:
            continue
        if isinstance(item, np.ndarray) and item.dtype == np.bool_:
            continue
        return False
    return True


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    def _array_classes(self) -> tuple[type, ...]:
        return (np.ndarray, np.generic)

    def to_numpy(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def index_add(self, shape: tuple[int, ...], dtype: Any, index: Any, values: Any) -> Any:
        out = np.zeros(shape, dtype)
        if _is_basic_index(index):
            out[index] = values  # a fresh array filled once: no element repeats
        else:
            np.add.at(out, index, values)  # integer arrays may repeat: accumulate
        return out

    def erf(self, x: Any) -> Any:
        return _erf(x).astype(x.dtype, copy=False)

    def key(self, seed: int) -> Any:
        return np.random.SeedSequence(int(seed) & (2**128 - 1)).generate_state(2, np.uint64)

    def fold_in(self, key: Any, data: int) -> Any:
        words = [int(w) for w in np.asarray(key, dtype=np.uint64)] + [int(data) & (2**64 - 1)]
        return np.random.SeedSequence(words).generate_state(2, np.uint64)

    def split(self, key: Any, num: int = 2) -> Any:
        bits = np.random.Philox(key=np.asarray(key, dtype=np.uint64)).random_raw(2 * num)
        return np.asarray(bits, dtype=np.uint64).reshape(num, 2)

    def _generator(self, key: Any) -> np.random.Generator:
        return np.random.Generator(np.random.Philox(key=np.asarray(key, dtype=np.uint64)))

    def uniform(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        dtype = np.dtype(dtype)
        draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
        return self._generator(key).random(shape, dtype=draw_dtype).astype(dtype, copy=False)

    def normal(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        dtype = np.dtype(dtype)
        draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
        gen = self._generator(key)
        return gen.standard_normal(shape, dtype=draw_dtype).astype(dtype, copy=False)
