"""DataLoader: batches of ember Tensors from arrays or any indexable data set.

The order of an epoch is a pure function of ``(seed, epoch)`` (a local ``numpy.random.Generator``,
never NumPy's global state), and the loader remembers where it is (``epoch``, ``position``), so a
training run that saves :meth:`DataLoader.state_dict` and later loads it sees the same batches as
a run that never stopped.

Example:
    >>> import numpy as np
    >>> from ember.data import DataLoader
    >>> x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
    >>> loader = DataLoader((x, y), batch_size=2)
    >>> len(loader), [tuple(b.shape) for b, _ in loader]
    (3, [(2, 2), (2, 2), (1, 2)])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np  # host-side only: batches are gathered on the host, then handed to the backend

from ember import backend
from ember import random as _random
from ember.tensor import Tensor

__all__ = ["DataLoader", "BatchStream", "Execution", "validate_arrays"]


def _names(count: int) -> list[str]:
    return ["x", "y", *(f"data[{i}]" for i in range(2, count))][:count]


def _host(a: Any) -> np.ndarray:
    """An array-like (NumPy, JAX, Tensor, nested lists) as a NumPy array on the host."""
    if isinstance(a, Tensor):
        return backend.get().to_numpy(a.data) if backend.get().owns(a.data) else np.asarray(a.data)
    return np.asarray(a)


def _first_nonfinite(a: np.ndarray) -> tuple[tuple[int, ...], str] | None:
    """The index and kind ("NaN", "inf", "-inf") of the first non-finite element, if any."""
    if a.dtype.kind not in "fc" or np.isfinite(a).all():
        return None
    index = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
    value = a[index]
    return index, "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")


def _nonfinite_message(owner: str, name: str, index: tuple[int, ...], kind: str) -> str:
    where = f" at index {index}" if len(index) > 1 else ""
    if len(index) == 1:
        where = f" at index ({index[0]})"
    return (f"{owner}: {name} contains {kind}{where}; remove or replace non-finite values before "
            f"training")


def _check_finite(a: np.ndarray, owner: str, name: str) -> None:
    """Raise naming the first NaN or inf of a floating point array (a no-op for other dtypes)."""
    bad = _first_nonfinite(a)
    if bad is not None:
        raise ValueError(_nonfinite_message(owner, name, *bad))


def validate_arrays(*arrays: Any, names: Sequence[str] | None = None,
                    owner: str = "DataLoader") -> int:
    """Check arrays before training: not empty, same first length, no NaN or inf.

    ``None`` entries (e.g. a missing ``y``) are skipped. Errors are ``ValueError``s that start with
    ``owner`` and name the array (``x``, ``y``, then ``data[2]``… unless ``names`` is given).

    Returns:
        The number of samples (the common first length).

    Example:
        >>> import numpy as np
        >>> from ember.data import validate_arrays
        >>> validate_arrays(np.zeros((4, 2)), np.arange(4))
        4
        >>> validate_arrays(np.zeros((4, 2)), np.arange(3))
        Traceback (most recent call last):
        ...
        ValueError: DataLoader: x has 4 samples but y has 3; give every array the same first length
    """
    names = list(names) if names is not None else _names(len(arrays))
    if len(names) != len(arrays):
        raise ValueError(f"{owner}: {len(arrays)} arrays but {len(names)} names")
    given = [(n, _host(a)) for n, a in zip(names, arrays) if a is not None]
    if not given:
        raise ValueError(f"{owner}: no data given; pass an array or a tuple (x, y)")
    for name, a in given:
        if a.ndim == 0:
            raise ValueError(
                f"{owner}: {name} is a scalar (shape ()); samples lie along the first axis "
                f"(a list of samples is read as (x, y, ...): pass numpy.asarray(samples))"
            )
        if a.dtype.kind not in "fiub":
            raise ValueError(
                f"{owner}: {name} has dtype {a.dtype}; ember trains on floating point, integer or "
                f"boolean arrays"
            )
    first_name, first = given[0]
    n = len(first)
    for name, a in given[1:]:
        if len(a) != n:
            raise ValueError(
                f"{owner}: {first_name} has {n} samples but {name} has {len(a)}; give every array "
                f"the same first length"
            )
    if n == 0:
        raise ValueError(f"{owner}: {first_name} is empty (0 samples); pass at least one sample")
    for name, a in given:
        _check_finite(a, owner, name)
    return n


def _policy(a: np.ndarray) -> np.ndarray:
    """ember's dtype policy for data: float64 -> float32, integers -> int64, others unchanged."""
    if a.dtype == np.float64:
        return a.astype(np.float32)
    if a.dtype.kind in "iu" and a.dtype != np.int64:
        return a.astype(np.int64)
    return a


class Execution(NamedTuple):
    """What one compiled call of a training loop runs: ``count`` steps from step number ``step``
    of the epoch on the batches ``x`` and ``y`` (``y`` None without targets). With ``count == 1``
    they are one batch; with more, the batches stacked along a new leading axis of that length.

    Example:
        >>> import numpy as np
        >>> from ember.data import DataLoader
        >>> loader = DataLoader((np.zeros((10, 3)), np.arange(10)), 4)
        >>> [(e.step, e.count, e.x.shape) for e in loader.executions(per_execution=2)]
        [(0, 2, (2, 4, 3)), (2, 1, (2, 3))]
    """

    step: int
    x: Any
    y: Any
    count: int


def _split(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def _stacked(batches: Iterable[Any], per_execution: int) -> Iterator[Execution]:
    """Executions from single batches: up to ``per_execution`` batches of one shape stacked on
    the device (a change of shape, e.g. a short last batch, starts a new execution)."""
    if per_execution <= 1:  # one batch per execution: nothing to stack
        for step, batch in enumerate(batches):
            x, y = _split(batch)
            yield Execution(step, x, y, 1)
        return
    chunk: list[tuple[Any, Any]] = []
    step = 0

    def flush() -> Execution:
        if len(chunk) == 1:
            return Execution(step, chunk[0][0], chunk[0][1], 1)
        xp = backend.get().xp
        xs = Tensor._make(xp.stack([x.data for x, _ in chunk]), False, None)
        ys = None if chunk[0][1] is None else Tensor._make(
            xp.stack([y.data for _, y in chunk]), False, None)
        return Execution(step, xs, ys, len(chunk))

    for batch in batches:
        x, y = _split(batch)
        if chunk and (x.shape != chunk[0][0].shape or len(chunk) == per_execution):
            yield flush()
            step, chunk = step + len(chunk), []
        chunk.append((x, y))
    if chunk:
        yield flush()


class BatchStream:
    """Any iterable of ``(x, y)`` batches (or of ``x`` alone), a generator included, as a source
    of training steps: arrays become Tensors with the :class:`DataLoader`'s dtype policy, and
    ``steps`` batches make an epoch (``None``: until the iterable is exhausted). An iterable that
    can be iterated again (a list) starts over when it is exhausted; a generator ends the run.

    Example:
        >>> import numpy as np
        >>> from ember.data import BatchStream
        >>> gen = ((np.ones((2, 3)), np.zeros(2, "int64")) for _ in range(5))
        >>> [e.x.shape for e in BatchStream(gen).executions(steps=2)]
        [(2, 3), (2, 3)]
    """

    def __init__(self, iterable: Iterable[Any]) -> None:
        if not hasattr(iterable, "__iter__"):
            raise TypeError(f"BatchStream: expected an iterable of (x, y) batches, got "
                            f"{type(iterable).__name__}")
        self.iterable = iterable
        self._it: Iterator[Any] | None = None
        self.exhausted = False

    def _tensor(self, a: Any) -> Any:
        if a is None or isinstance(a, Tensor):
            return a
        host = _policy(_host(a))
        return Tensor._make(backend.get().asarray(host, dtype=host.dtype), False, None)

    def batches(self, steps: int | None = None) -> Iterator[Any]:
        """``steps`` batches as Tensors (``(x, y)`` tuples, or ``x``), from where the stream is;
        ``None``: to the end of the iterable."""
        taken, fresh = 0, False
        while steps is None or taken < steps:
            if self._it is None:
                self._it, fresh = iter(self.iterable), True
            try:
                batch = next(self._it)
            except StopIteration:
                self._it = None
                one_shot = iter(self.iterable) is self.iterable  # a generator or an iterator
                self.exhausted = one_shot
                if steps is None or one_shot or fresh:
                    return
                continue
            fresh = False
            if isinstance(batch, (tuple, list)):
                x, y = _split(batch)
                yield self._tensor(x), self._tensor(y)
            else:
                yield self._tensor(batch)
            taken += 1

    def executions(self, steps: int | None = None, per_execution: int = 1
                   ) -> Iterator[Execution]:
        """Executions of up to ``per_execution`` stacked batches (see :class:`Execution`)."""
        return _stacked(self.batches(steps), per_execution)

    def __len__(self) -> int:
        return len(self.iterable)  # type: ignore[arg-type]


class DataLoader:
    """Batches of ember Tensors, shuffled per epoch from a seed, resumable, shardable.

    Args:
        data: an array (yields one Tensor per batch), a tuple or list of arrays with the same first
            length such as ``(x, y)`` (yields a tuple of Tensors), or any object with ``__len__``
            and ``__getitem__`` whose items are samples: an array, a number, or a tuple of them.
        batch_size: samples per batch (a positive int).
        shuffle: a new order every epoch, the permutation drawn by
            ``numpy.random.default_rng([seed, epoch])``; without it, the data's own order.
        drop_last: drop the last, smaller batch of an epoch.
        seed: the shuffling seed; ``None`` takes ``ember.initial_seed()`` (what
            ``ember.manual_seed`` set) at construction, so seeding ember seeds the data order too.
        shard: ``(process_index, process_count)`` for data-parallel training. Every process draws
            the same global permutation and takes every ``process_count``-th sample of it starting
            at ``process_index``; the ``n % process_count`` samples at the end of the permutation
            are left out of that epoch, so shards are disjoint and equally long.
        mesh: a ``jax.sharding.Mesh`` with a ``"data"`` axis (or what
            ``ember.distributed.make_mesh`` takes: ``"all"``, a number, a list of devices), JAX
            backend only: each batch comes out as one global array split along its sample axis
            over the ``"data"`` devices (``P("data")``; ``P(None, "data")`` for
            :meth:`next_batches`). ``batch_size`` is then the global batch and must be a multiple
            of the number of devices. Without ``shard`` every process holds the whole data and
            gathers the same global batch (in-memory arrays are copied to every device once; a
            short last batch that does not split evenly is replicated instead). With ``shard``
            (several processes: ``(process_index, process_count)`` of the run) each process
            reads only its ``batch_size / process_count`` rows of every batch and the global
            batch is assembled from the processes' rows; the short last batch is then dropped.

    Batches are Tensors of the backend active when the batch is made. The dtype policy: float64
    arrays become float32 (ember's default), integer arrays (labels, uint8 pixels) become int64;
    float32, float16 and bool keep their dtype. Arrays are validated once, on construction: empty
    data, a bad ``batch_size``, arrays of different lengths and NaN or inf raise ``ValueError``.
    Items of a generic data set are collated per batch (``numpy.stack`` per field) and checked for
    NaN and inf as they are read.

    The loader keeps ``epoch`` and ``position`` (batches of that epoch already handed out). The
    counter moves on to the next epoch as the last batch of an epoch is handed out; an iteration
    stopped early continues from ``position`` the next time, as a resumed run would.

    Example:
        >>> import numpy as np
        >>> from ember.data import DataLoader
        >>> loader = DataLoader(np.arange(6), batch_size=4, shuffle=True, seed=0)
        >>> [b.tolist() for b in loader], loader.epoch
        ([[3, 2, 5, 4], [0, 1]], 1)
    """

    def __init__(self, data: Any, batch_size: int = 32, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None,
                 shard: tuple[int, int] | None = None, mesh: Any = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise ValueError(
                f"DataLoader: batch_size must be a positive integer, got {batch_size!r}"
            )
        if batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(
                f"DataLoader: seed must be a non-negative integer or None, got {seed!r}"
            )
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(_random.initial_seed() if seed is None else seed)
        self._arrays: tuple[np.ndarray, ...] | None = None
        self._dataset: Any = None
        self._single = False
        if isinstance(data, (tuple, list)):
            if len(data) == 0:
                raise ValueError("DataLoader: data is an empty tuple; pass (x,) or (x, y)")
            validate_arrays(*data)
            self._arrays = tuple(_policy(_host(a)) for a in data)
        elif isinstance(data, Tensor) or (hasattr(data, "shape") and hasattr(data, "dtype")):
            validate_arrays(data, names=["data"])
            self._arrays, self._single = (_policy(_host(data)),), True
        elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
            if len(data) == 0:
                raise ValueError(
                    f"DataLoader: the data set ({type(data).__name__}) is empty (len 0); "
                    f"pass at least one sample"
                )
            self._dataset = data
        else:
            raise TypeError(
                f"DataLoader: cannot batch a {type(data).__name__}; pass an array, a tuple of "
                f"arrays (x, y) or an object with __len__ and __getitem__"
            )
        self.num_samples = len(self._arrays[0]) if self._arrays is not None else len(data)
        self.shard = self._check_shard(shard)
        self.mesh: Any = None
        self._split = 1  # processes whose rows make one batch (with a mesh and a shard)
        if mesh is not None:
            self.set_mesh(mesh)
        if self.drop_last and len(self) == 0:
            raise ValueError(
                f"DataLoader: drop_last=True with {self._local_count()} samples and "
                f"batch_size={self.batch_size} leaves no batch; use a smaller batch_size"
            )
        self.epoch = 0
        self.position = 0
        self._device: tuple[Any, tuple[Any, ...]] | None = None

    @property
    def arrays(self) -> tuple[np.ndarray, ...] | None:
        """The host arrays the loader batches (read-only use), or None over a data set.

        Example:
            >>> import numpy as np
            >>> from ember.data import DataLoader
            >>> [a.shape for a in DataLoader((np.zeros((4, 2)), np.arange(4)), 2).arrays]
            [(4, 2), (4,)]
        """
        return self._arrays

    def _check_shard(self, shard: Any) -> tuple[int, int] | None:
        if shard is None:
            return None
        ok = (isinstance(shard, (tuple, list)) and len(shard) == 2
              and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shard))
        if not ok or not 0 <= shard[0] < shard[1]:
            raise ValueError(
                f"DataLoader: shard must be (process_index, process_count) with "
                f"0 <= process_index < process_count, got {shard!r}"
            )
        if shard[1] > self.num_samples:
            raise ValueError(
                f"DataLoader: {self.num_samples} samples cannot be split into {shard[1]} shards"
            )
        return int(shard[0]), int(shard[1])

    def set_mesh(self, mesh: Any) -> None:
        """Hand out batches split over ``mesh``'s ``"data"`` devices from now on (see ``mesh``
        in the class docs); ``None`` goes back to plain batches.

        Example:
            >>> import numpy as np
            >>> import ember
            >>> from ember.data import DataLoader
            >>> ember.set_backend("jax")
            >>> loader = DataLoader(np.zeros((8, 2)), batch_size=4)
            >>> loader.set_mesh(ember.distributed.make_mesh(1))
            >>> tuple(next(iter(loader)).data.sharding.spec)
            ('data',)
            >>> ember.set_backend("numpy")
        """
        if mesh is None:
            self.mesh, self._split, self._device = None, 1, None
            return
        from ember import distributed

        mesh = distributed.make_mesh(mesh, owner="DataLoader", arg="mesh")
        distributed.check_divides("DataLoader", self.batch_size, mesh)
        split = 1
        if self.shard is not None:
            procs = distributed.process_count()
            if self.shard[1] != procs:
                raise ValueError(
                    f"DataLoader: shard={self.shard} splits the data over {self.shard[1]} "
                    f"processes but this run has {procs}; with a mesh, shard is "
                    f"(process_index, process_count) of the run, or None"
                )
            split = self.shard[1]
        self.mesh, self._split, self._device = mesh, split, None

    def _rows(self) -> int:
        """The rows of each batch this process reads (all of them unless a mesh spans several
        processes that each read their shard)."""
        return self.batch_size // self._split

    def _local_count(self) -> int:
        return self.num_samples if self.shard is None else self.num_samples // self.shard[1]

    def __len__(self) -> int:
        """The number of batches per epoch."""
        n, b = self._local_count(), self._rows()
        return n // b if self.drop_last or self._split > 1 else -(-n // b)

    def __repr__(self) -> str:
        return (f"DataLoader({self.num_samples} samples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, epoch={self.epoch})")

    # -- order ---------------------------------------------------------------------------------
    def indices(self, epoch: int | None = None) -> np.ndarray:
        """The sample indices this process visits in ``epoch`` (default: the current one), in order.

        Example:
            >>> import numpy as np
            >>> from ember.data import DataLoader
            >>> DataLoader(np.zeros(5), shard=(1, 2)).indices().tolist()
            [1, 3]
        """
        epoch = self.epoch if epoch is None else int(epoch)
        n = self.num_samples
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
        else:
            order = np.arange(n)
        if self.shard is not None:
            index, count = self.shard
            order = order[: (n // count) * count][index::count]
        return order

    # -- batches -------------------------------------------------------------------------------
    def _gather(self, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        """Host arrays for the samples ``idx``: one fancy-index per array on the fast path."""
        if self._arrays is not None:
            if not self.shuffle and self.shard is None:
                start = int(idx[0])  # the data's own order: a slice is a view, no copy
                return tuple(a[start:start + idx.size] for a in self._arrays)
            return tuple(a[idx] for a in self._arrays)
        samples = [self._dataset[int(i)] for i in idx]
        self._single = not isinstance(samples[0], (tuple, list))
        rows = [(s,) if self._single else tuple(s) for s in samples]
        width = len(rows[0])
        fields = []
        for k in range(width):
            try:
                field = _policy(np.stack([_host(r[k]) for r in rows]))
            except (ValueError, IndexError) as e:
                raise ValueError(
                    f"DataLoader: field {k} of samples {idx[0]}..{idx[-1]} of "
                    f"{type(self._dataset).__name__} cannot be stacked into a batch ({e}); every "
                    f"sample must have the same structure and shapes"
                ) from e
            bad = _first_nonfinite(field)
            if bad is not None:
                index, kind = bad
                name = f"item {int(idx[index[0]])}" + ("" if self._single else f" (field {k})")
                raise ValueError(_nonfinite_message("DataLoader", name, index[1:], kind))
            fields.append(field)
        return tuple(fields)

    def _wrap(self, fields: tuple[np.ndarray, ...], axis: int = 0) -> Any:
        if self.mesh is not None:
            out = tuple(Tensor._make(a, False, None) for a in self._place(fields, axis))
            return out[0] if self._single else out
        bk = backend.get()
        out = tuple(Tensor._make(bk.asarray(f, dtype=f.dtype), False, None) for f in fields)
        return out[0] if self._single else out

    def _place(self, fields: tuple[np.ndarray, ...], axis: int) -> tuple[Any, ...]:
        """Host rows onto the mesh: this process's rows of a global batch (with a shard), or the
        whole global batch, split along ``axis`` (replicated when it does not split evenly)."""
        import jax

        from ember import distributed

        if self._split > 1:
            sharding = distributed.batch_sharding(self.mesh, axis)
            return tuple(jax.make_array_from_process_local_data(
                sharding, f, (*f.shape[:axis], f.shape[axis] * self._split, *f.shape[axis + 1:]))
                for f in fields)
        sharding = self._sharding(int(fields[0].shape[axis]), axis)
        return tuple(jax.device_put(f, sharding) for f in fields)

    def _sharding(self, rows: int, axis: int) -> Any:
        from ember import distributed

        if rows % distributed.data_size(self.mesh):
            return distributed.replicated(self.mesh)  # a short last batch: every device, whole
        return distributed.batch_sharding(self.mesh, axis)

    def _on_device(self) -> tuple[Any, ...] | None:
        """On an accelerator backend, the in-memory arrays on the device (moved once, cached), so
        that a batch is one compiled slice or gather there: no host-to-device copy per batch."""
        bk = backend.get()
        if self._arrays is None or bk.name == "numpy" or self._split > 1:
            return None
        if self._device is None or self._device[0] is not bk:
            if self.mesh is None:
                arrays = tuple(bk.asarray(a, dtype=a.dtype) for a in self._arrays)
            else:  # every device holds the data: a batch is then a local gather on each
                from ember import distributed

                arrays = distributed.replicate(self._arrays, self.mesh)
            self._device = (bk, arrays)
        return self._device[1]

    def _device_rows(self, ordered: tuple[Any, ...], order: np.ndarray, lo: int,
                     hi: int, steps: int = 0) -> tuple[Any, ...]:
        """Samples ``order[lo:hi]`` from the device arrays: a slice when the data's own order is
        kept, else a gather of just those rows (one compiled call either way). With a mesh, the
        rows come out split over it, stacked as ``(steps, batch, ...)`` when ``steps``."""
        bk = backend.get()
        if self.mesh is not None:
            from ember import distributed

            return distributed.gather_rows(ordered, order[lo:hi],
                                           self._sharding(hi - lo, 1 if steps else 0), steps)
        if not self.shuffle and self.shard is None:
            return bk.take_rows(ordered, lo, hi - lo)
        return bk.gather_rows(ordered, order[lo:hi])

    def next_batches(self, count: int) -> Any:
        """Up to ``count`` full batches from where the loader stands, stacked: arrays of shape
        ``(n, batch_size, ...)`` as Tensors (a tuple for tuple data), or None when no full batch
        is left in this epoch. The loader advances as if it had yielded them; it never crosses
        into the next epoch, so a short last batch is left for iteration.

        Example:
            >>> import numpy as np
            >>> from ember.data import DataLoader
            >>> loader = DataLoader((np.zeros((10, 3)), np.arange(10)), 4)
            >>> xs, ys = loader.next_batches(8)
            >>> xs.shape, loader.position, [x.shape for x, y in loader]
            ((2, 4, 3), 2, [(2, 3)])
        """
        if self._arrays is None:
            raise TypeError("DataLoader.next_batches needs in-memory arrays, not a data set")
        order = self.indices()
        b = self._rows()
        full = len(order) // b
        n = min(int(count), full - self.position)
        if n <= 0:
            return None
        lo, hi = self.position * b, (self.position + n) * b
        ordered = self._on_device()
        if ordered is not None:
            if self.mesh is not None:
                fields = self._device_rows(ordered, order, lo, hi, steps=n)
            else:
                rows = self._device_rows(ordered, order, lo, hi)
                fields = tuple(a.reshape(n, b, *a.shape[1:]) for a in rows)
            out = tuple(Tensor._make(f, False, None) for f in fields)
            result = out[0] if self._single else out
        else:
            host = self._gather(order[lo:hi])
            result = self._wrap(tuple(f.reshape(n, b, *f.shape[1:]) for f in host), axis=1)
        if self.position + n == len(self):
            self.epoch, self.position = self.epoch + 1, 0
        else:
            self.position += n
        return result

    def __iter__(self) -> Iterator[Any]:
        order = self.indices()
        steps, b = len(self), self._rows()
        ordered = self._on_device()
        for step in range(self.position, steps):
            if ordered is not None:
                fields = self._device_rows(ordered, order, step * b,
                                           min((step + 1) * b, len(order)))
                wrapped = tuple(Tensor._make(f, False, None) for f in fields)
                batch = wrapped[0] if self._single else wrapped
            else:
                batch = self._wrap(self._gather(order[step * b:(step + 1) * b]))
            # The state describes where the *next* batch comes from, so a checkpoint saved after
            # this batch resumes with the following one (the next epoch after the last batch).
            if step + 1 == steps:
                self.epoch, self.position = self.epoch + 1, 0
            else:
                self.position = step + 1
            yield batch

    def batches(self, steps: int | None = None) -> Iterator[Any]:
        """``steps`` batches from where the loader stands, running on into its next epochs when
        needed; without ``steps``, the rest of the current epoch.

        Example:
            >>> import numpy as np
            >>> from ember.data import DataLoader
            >>> [b.shape for b in DataLoader(np.zeros((5, 2)), 2).batches(4)]
            [(2, 2), (2, 2), (1, 2), (2, 2)]
        """
        taken = 0
        while True:
            for batch in self:
                yield batch
                taken += 1
                if steps is not None and taken >= steps:
                    return
            if steps is None or taken == 0:
                return

    def executions(self, steps: int | None = None, per_execution: int | str = 1
                   ) -> Iterator[Execution]:
        """How a training loop runs ``steps`` steps (default: the rest of this epoch): one
        :class:`Execution` per compiled call, each of up to ``per_execution`` steps (``"epoch"``:
        all of them). In-memory arrays are cut straight from the (device-resident) epoch, stacked
        as ``(count, batch, ...)``; a short last batch, the steps that run on into the next
        epoch and data sets go batch by batch, stacked on the device when ``per_execution > 1``.

        Example:
            >>> import numpy as np
            >>> from ember.data import DataLoader
            >>> loader = DataLoader(np.zeros((10, 3)), 4)
            >>> [(e.step, e.count) for e in loader.executions(per_execution="epoch")]
            [(0, 2), (2, 1)]
        """
        total = len(self) - self.position if steps is None else int(steps)
        k = total if per_execution == "epoch" else int(per_execution)
        if k <= 1 or self._arrays is None:
            yield from _stacked(self.batches(steps), max(k, 1))
            return
        step = 0
        while step < total:
            stacked = self.next_batches(min(k, total - step))
            if stacked is None:  # no full batch left in this epoch: the rest one by one
                for ex in _stacked(self.batches(total - step), k):
                    yield ex._replace(step=ex.step + step)
                return
            xs, ys = _split(stacked)
            n = int(xs.shape[0])
            if n == 1:
                yield Execution(step, Tensor._make(xs.data[0], False, None),
                                None if ys is None else Tensor._make(ys.data[0], False, None), 1)
            else:
                yield Execution(step, xs, ys, n)
            step += n

    def epoch_arrays(self, epoch: int | None = None) -> Any:
        """A whole epoch pre-batched: Tensors of shape ``(steps, batch_size, ...)``.

        The batches are those that iterating over ``epoch`` (default: the current one) would give,
        with ``drop_last`` semantics whatever ``drop_last`` is (a stacked epoch needs equal
        batches); ``steps`` is ``local samples // batch_size``. The loader's state does not move.
        Meant for device-resident training (a ``lax.scan`` over the steps).

        Example:
            >>> import numpy as np
            >>> from ember.data import DataLoader
            >>> xs, ys = DataLoader((np.zeros((10, 3)), np.arange(10)), 4).epoch_arrays()
            >>> xs.shape, ys.shape
            ((2, 4, 3), (2, 4))
        """
        order = self.indices(epoch)
        b = self._rows()
        steps = len(order) // b
        if steps == 0:
            raise ValueError(
                f"DataLoader.epoch_arrays: {len(order)} samples make no full batch of "
                f"{b}; use a smaller batch_size"
            )
        fields = self._gather(order[: steps * b])
        return self._wrap(tuple(f.reshape(steps, b, *f.shape[1:]) for f in fields), axis=1)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where the loader is: ``epoch``, ``position`` (next batch), ``seed`` and a fingerprint.

        Example:
            >>> import numpy as np
            >>> from ember.data import DataLoader
            >>> DataLoader(np.zeros(4), batch_size=2, seed=3).state_dict()["seed"]
            3
        """
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "batch_size": self.batch_size,
            "num_samples": self.num_samples,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: the next batch is the one the saved loader was at.

        Raises ``ValueError`` when the saved loader batched different data (sample count, batch
        size or shuffling differ), since the same position would then mean other samples.
        """
        for key in ("batch_size", "num_samples", "shuffle"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"DataLoader.load_state_dict: the state has {key}={state[key]!r} but this "
                    f"loader has {key}={getattr(self, key)!r}; build the loader as it was saved"
                )
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= len(self):
            raise ValueError(
                f"DataLoader.load_state_dict: epoch {epoch} / position {position} is out of range "
                f"(a position lies in 0..{len(self)})"
            )
        if position == len(self):
            epoch, position = epoch + 1, 0
        self.seed = int(state.get("seed", self.seed))
        self.epoch, self.position = epoch, position
