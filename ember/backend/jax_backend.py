"""The JAX backend: jax.numpy arrays, compiled by XLA under ``ember.jit``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ember.backend.base import Backend

# float64 must work (gradcheck needs it); ember passes dtypes explicitly everywhere, so enabling
# x64 does not change ember's float32 default.
jax.config.update("jax_enable_x64", True)


class JaxBackend(Backend):
    name = "jax"
    xp = jnp

    def _array_classes(self) -> tuple[type, ...]:
        return (jax.Array,)

    def to_numpy(self, array: Any) -> np.ndarray:
        return np.asarray(jax.device_get(array))

    def index_add(self, shape: tuple[int, ...], dtype: Any, index: Any, values: Any) -> Any:
        return jnp.zeros(shape, dtype).at[index].add(values)

    def erf(self, x: Any) -> Any:
        return jax.scipy.special.erf(x)

    def key(self, seed: int) -> Any:
        return jax.random.PRNGKey(int(seed) & (2**63 - 1))

    def fold_in(self, key: Any, data: int) -> Any:
        return jax.random.fold_in(key, int(data) & (2**32 - 1))

    def split(self, key: Any, num: int = 2) -> Any:
        return jax.random.split(key, num)

    def uniform(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        return jax.random.uniform(key, shape, dtype=dtype)

    def normal(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        return jax.random.normal(key, shape, dtype=dtype)
