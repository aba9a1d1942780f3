"""Where the Trainer's batches come from: arrays, data sets, DataLoaders (placed on a device mesh),
generators and other iterables of batches, and the validation data or split.

Example:
    >>> from ember.train.sources import SourcesMixin
    >>> from ember.train.trainer import Trainer
    >>> issubclass(Trainer, SourcesMixin)
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np  # host-side bookkeeping only (the validation split)

from ember import backend, distributed
from ember.data.loader import BatchStream, DataLoader, validate_arrays
from ember.data.text import TokenWindows
from ember.tensor import Tensor

__all__ = ["SourcesMixin"]


def _check_positive_int(owner: str, name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer"
                         f"{' or None' if allow_none else ''}, got {value!r}")


def _is_array(a: Any) -> bool:
    return isinstance(a, Tensor) or (hasattr(a, "shape") and hasattr(a, "dtype")) or isinstance(
        a, list)


def _host(a: Any) -> Any:
    if isinstance(a, Tensor):
        return backend.get().to_numpy(a.data) if backend.get().owns(a.data) else np.asarray(a.data)
    return np.asarray(a)


def _is_stream(x: Any) -> bool:
    """A generator, an iterator, or an iterable that is neither an array nor a data set."""
    if isinstance(x, (Tensor, DataLoader, TokenWindows, str, bytes, dict, tuple, list)) or \
            _is_array(x):
        return False
    return hasattr(x, "__next__") or (hasattr(x, "__iter__") and not hasattr(x, "__getitem__"))


def _is_dataset(x: Any) -> bool:
    """An object with ``__len__`` and ``__getitem__`` that is not an array or a sequence."""
    return (hasattr(x, "__len__") and hasattr(x, "__getitem__") and not _is_array(x)
            and not isinstance(x, (tuple, list, str, bytes, dict, DataLoader)))


def _split_validation(owner: str, x: Any, y: Any, validation_data: Any, fraction: float,
                      seed: int) -> tuple[Any, Any, Any]:
    """``(x_train, y_train, (x_val, y_val))``: a shuffled hold-out of ``fraction`` of the data."""
    if isinstance(x, DataLoader) or _is_stream(x) or _is_dataset(x):
        raise ValueError(f"{owner}: validation_split needs arrays; x is a {type(x).__name__} "
                         f"(pass validation_data instead)")
    if validation_data is not None:
        raise ValueError(f"{owner}: pass validation_data or validation_split, not both")
    if isinstance(x, (tuple, list)) and y is None and len(x) == 2:
        x, y = x
    n = validate_arrays(x, y, names=["x", "y"], owner=owner)
    n_train = int(math.ceil(n * (1.0 - fraction)))
    if n_train == n or n_train == 0:
        raise ValueError(f"{owner}: validation_split={fraction} of {n} samples leaves "
                         f"{n_train} for training and {n - n_train} for validation; both need "
                         f"at least one")
    perm = np.random.default_rng([seed, 0x5EED]).permutation(n)
    xh, yh = _host(x), (None if y is None else _host(y))
    val = (xh[perm[n_train:]], None if yh is None else yh[perm[n_train:]])
    return xh[perm[:n_train]], (None if yh is None else yh[perm[:n_train]]), val


class SourcesMixin:
    """The Trainer's data side: ``_source`` and ``_validation_source``."""

    def _source(self, owner: str, x: Any, y: Any, batch_size: int, shuffle: bool,
                seed: int | None, names: tuple[str, str] = ("x", "y"),
                shard: bool = False) -> DataLoader | BatchStream:
        """Where the batches come from: a DataLoader (given, or over arrays or a data set) or a
        BatchStream over a generator or any other iterable of batches."""
        if isinstance(x, (DataLoader, BatchStream, TokenWindows)) or _is_stream(x):
            if y is not None:
                raise ValueError(f"{owner}: x is a {type(x).__name__}, which yields the targets "
                                 f"too; do not pass y")
            return self._on_mesh(owner, x) if isinstance(x, (DataLoader, TokenWindows)) else (
                x if isinstance(x, BatchStream) else BatchStream(x))
        _check_positive_int(owner, "batch_size", batch_size)
        if _is_dataset(x):
            return self._loader(x, batch_size, shuffle, seed, shard)
        if isinstance(x, (tuple, list)) and y is None and len(x) == 2 and all(
                _is_array(a) and not isinstance(a, list) for a in x):
            x, y = x
        validate_arrays(x, y, names=list(names), owner=owner)
        return self._loader((x,) if y is None else (x, y), batch_size, shuffle, seed, shard,
                            owner)

    def _loader(self, data: Any, batch_size: int, shuffle: bool, seed: int | None,
                shard: bool, owner: str = "Trainer.fit") -> DataLoader:
        """A DataLoader over ``data``, on the Trainer's mesh if it has one; ``shard``: each
        process reads its shard (training data in a multi-process run)."""
        if self.mesh is None:
            return DataLoader(data, batch_size=batch_size, shuffle=shuffle, seed=seed)
        self._check_mesh(owner, batch_size)
        procs = distributed.process_count()
        where = (distributed.process_index(), procs) if shard and procs > 1 else None
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, seed=seed, shard=where,
                          mesh=self.mesh)

    def _check_mesh(self, owner: str, batch_size: int) -> None:
        if backend.get().name != "jax":
            raise ValueError(f"{owner}: this Trainer has devices= (a mesh), which needs the JAX "
                             f"backend, but the active one is {backend.get().name!r}; call "
                             f"ember.set_backend(\"jax\")")
        distributed.check_divides(owner, batch_size, self.mesh)

    def _on_mesh(self, owner: str, loader: Any) -> Any:
        """A DataLoader (or TokenWindows) passed in hands out batches on the Trainer's mesh from
        now on."""
        if self.mesh is not None and loader.mesh is not self.mesh:
            self._check_mesh(owner, loader.batch_size)
            loader.set_mesh(self.mesh)
        return loader

    def _validation_source(self, validation_data: Any, batch_size: int) -> Any:
        if validation_data is None:
            return None
        if isinstance(validation_data, (DataLoader, BatchStream, TokenWindows)) or _is_stream(
                validation_data) or _is_dataset(validation_data):
            return self._source("Trainer.fit", validation_data, None, batch_size, False, 0)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("Trainer.fit: validation_data must be (x_val, y_val), a DataLoader "
                             "or an iterable of batches, got "
                             f"{type(validation_data).__name__}"
                             + (f" of length {len(validation_data)}"
                                if isinstance(validation_data, (tuple, list)) else ""))
        xv, yv = validation_data
        return self._source("Trainer.fit", xv, yv, batch_size, False, 0,
                            names=("validation_data x", "validation_data y"))

    # -- fit ---------------------------------------------------------------------------------------
