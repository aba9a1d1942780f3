"""Data-parallel training over several devices and processes, on JAX's sharding.

ember has no communication code of its own: it lays arrays out over a ``jax.sharding.Mesh`` and
lets XLA partition the compiled step (the SPMD partitioner inserts the all-reduce of the gradients).
The layout is data parallelism:

- a 1-D mesh with one axis named ``"data"`` (:func:`make_mesh`, or a Mesh of your own that has a
  ``"data"`` axis);
- every batch is split along its sample axis over that axis: ``NamedSharding(mesh, P("data"))``
  (:func:`shard_batch`; a stack of batches ``(steps, batch, ...)`` is split along axis 1);
- parameters, buffers, optimizer state, metric state and ember's random stream are replicated:
  ``P()``.

``Trainer(..., devices=...)`` does all of this; ``DataLoader(..., mesh=mesh)`` hands out batches
already split; ``ember.jit(fn, mesh=mesh)`` (or a call under ``jax.set_mesh(mesh)``) gives a
hand-written loop the same placement: the state is replicated, a tensor whose array is already
sharded on the mesh keeps its sharding, any other array argument is replicated, and the outputs
come back replicated (so ``.item()`` works in every process).

``batch_size`` is the global batch (what one step averages over): it must be a multiple of the
number of devices, and the error names both numbers. A short last batch that does not split
evenly runs whole on every device (replicated): the same result, no sample dropped or counted
twice, no padding.

The mesh axes are ``AxisType.Auto``, deliberately: with Auto axes XLA propagates the batch
sharding through ember's ordinary code (forward, ember's own backward, the optimizer's update) and
sums the weight gradients itself, so one step on N devices computes the single-device step (up to
the order of the gradient's sums). ``Explicit`` axes would make sharding part of every array's
type: the weight-gradient matmul ``x.T @ g`` (a contraction over the sharded batch axis) then needs
an ``out_sharding`` in ember's backward, which ember's device-agnostic ops do not carry. A mesh
with Explicit axes (``jax.make_mesh``'s default) is therefore copied with Auto axes
(:func:`auto_axes`).

Several processes (hosts): call :func:`initialize` first in every process; ``jax.devices()`` then
lists the devices of all processes and ``make_mesh("all")`` spans them. Each process feeds its own
rows of every global batch (``DataLoader(..., shard=(process_index(), process_count()),
mesh=mesh)``, or :func:`shard_batch` by hand), which are assembled into the global array; only
process 0 writes files (:func:`is_main_process`), and :func:`barrier` waits for the others.

Example:
    >>> import ember
    >>> from ember import distributed
    >>> distributed.process_index(), distributed.process_count(), distributed.is_main_process()
    (0, 1, True)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from ember import backend
from ember.tensor import Tensor

__all__ = [
    "DATA_AXIS",
    "initialize",
    "process_index",
    "process_count",
    "is_main_process",
    "barrier",
    "make_mesh",
    "replicated",
    "batch_sharding",
    "shard_batch",
    "replicate",
    "data_size",
    "check_divides",
    "gather_rows",
    "auto_axes",
]

#: the name of the mesh axis that batches are split along
DATA_AXIS = "data"


def _jax(owner: str, error: type[Exception] = RuntimeError) -> Any:
    """The jax module, when the JAX backend is active; else an error that says how to get it."""
    if backend.get().name != "jax":
        raise error(f"{owner} needs the JAX backend (the active one is "
                           f"{backend.get().name!r}); call ember.set_backend(\"jax\") or set "
                           f"EMBER_BACKEND=jax first")
    import jax

    return jax


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, **kwargs: Any) -> None:
    """Join a multi-process run: ``jax.distributed.initialize`` with the same arguments.

    Call it in every process, before any other JAX work. Without arguments JAX reads them from
    the cluster environment (SLURM, Open MPI, Cloud TPU...); on one machine pass
    ``coordinator_address="localhost:PORT"``, ``num_processes`` and this process's
    ``process_id``. Extra keyword arguments go to ``jax.distributed.initialize`` (e.g.
    ``initialization_timeout``). CPU processes talk through JAX's CPU collectives (gloo).

    Raises:
        RuntimeError: on the NumPy backend (data parallelism needs JAX).

    Example:
        >>> import ember
        >>> ember.distributed.initialize(num_processes=2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        RuntimeError: ember.distributed.initialize needs the JAX backend ...
    """
    jax = _jax("ember.distributed.initialize")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id, **kwargs)


def _running_jax() -> Any:
    """jax, when the JAX backend is active (without starting JAX otherwise)."""
    if backend.get().name != "jax":
        return None
    import jax

    return jax


def process_index() -> int:
    """This process's index in a multi-process run (0 on NumPy and in a single process).

    Example:
        >>> import ember
        >>> ember.distributed.process_index()
        0
    """
    jax = _running_jax()
    return 0 if jax is None else int(jax.process_index())


def process_count() -> int:
    """The number of processes in the run (1 on NumPy and in a single process).

    Example:
        >>> import ember
        >>> ember.distributed.process_count()
        1
    """
    jax = _running_jax()
    return 1 if jax is None else int(jax.process_count())


def is_main_process() -> bool:
    """True in process 0, the one that writes checkpoints, logs and progress output.

    Example:
        >>> import ember
        >>> ember.distributed.is_main_process()
        True
    """
    return process_index() == 0


def barrier(name: str = "ember") -> None:
    """Wait until every process has reached this point (a no-op in a single process).

    ``Trainer.save_checkpoint`` ends with one, so that a checkpoint written by process 0 can be
    read by any process after it returns.

    Example:
        >>> import ember
        >>> ember.distributed.barrier("start")
    """
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _devices_text(jax: Any) -> str:
    devices = jax.devices()
    platform = devices[0].platform if devices else "?"
    n = len(devices)
    procs = jax.process_count()
    where = f" over {procs} processes" if procs > 1 else ""
    return f"{n} {platform} device{'s' if n != 1 else ''}{where}"


def make_mesh(devices: Any = "all", owner: str = "ember.distributed.make_mesh",
              arg: str = "devices") -> Any:
    """A 1-D ``jax.sharding.Mesh`` with the axis ``"data"`` (``AxisType.Auto``) over ``devices``.

    Args:
        devices: ``"all"`` (every device of every process), a number ``N`` (the first ``N``;
            with several processes ``N / process_count`` of each), a list of JAX devices, or a
            ``Mesh`` with a ``"data"`` axis (returned as it is when its axes are ``Auto``, else
            as a copy with ``Auto`` axes, see :func:`auto_axes`).
        owner, arg: the names that error messages start with (``Trainer``, ``devices``).

    Raises:
        ValueError: on the NumPy backend; more devices than exist (the message says how many
            there are); an empty or repeated device list; a mesh without a ``"data"`` axis.

    Example:
        >>> import ember
        >>> ember.set_backend("jax")
        >>> mesh = ember.distributed.make_mesh(1)
        >>> mesh.axis_names, mesh.size
        (('data',), 1)
        >>> ember.distributed.make_mesh(1000)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ember.distributed.make_mesh: devices=1000 but there are only 1 cpu device...
        >>> ember.set_backend("numpy")
    """
    jax = _jax(f"{owner}: {arg}=", ValueError)
    from jax.sharding import Mesh

    if isinstance(devices, Mesh):
        if DATA_AXIS not in devices.axis_names:
            raise ValueError(f"{owner}: the mesh has axes {tuple(devices.axis_names)} but no "
                             f"{DATA_AXIS!r} axis to split batches along; name one axis "
                             f"{DATA_AXIS!r}")
        return auto_axes(devices)
    every = jax.devices()
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"{owner}: {arg} must be 'all', a number, a list of JAX devices "
                             f"or a jax.sharding.Mesh, got {devices!r}")
        chosen = list(every)
    elif isinstance(devices, int) and not isinstance(devices, bool):
        count = jax.process_count()
        if devices <= 0:
            raise ValueError(f"{owner}: {arg} must be a positive number, got {devices}")
        if devices > len(every):
            raise ValueError(f"{owner}: {arg}={devices} but there are only "
                             f"{_devices_text(jax)}; use {arg}=\"all\" or at most "
                             f"{len(every)}")
        if devices % count:
            raise ValueError(f"{owner}: {arg}={devices} does not divide over {count} "
                             f"processes; use a multiple of {count}")
        per = devices // count
        chosen = []
        for p in range(count):
            chosen += [d for d in every if d.process_index == p][:per]
    elif isinstance(devices, Sequence) and not isinstance(devices, (bytes, bytearray)):
        chosen = list(devices)
        if not chosen:
            raise ValueError(f"{owner}: {arg} is an empty list; give at least one device")
        bad = [d for d in chosen if not isinstance(d, jax.Device)]
        if bad:
            raise ValueError(f"{owner}: {arg} must be JAX devices (jax.devices()), got "
                             f"{type(bad[0]).__name__}")
        if len({d.id for d in chosen}) != len(chosen):
            raise ValueError(f"{owner}: {arg} lists a device twice: {chosen}")
    else:
        raise ValueError(f"{owner}: {arg} must be 'all', a number, a list of JAX devices or "
                         f"a jax.sharding.Mesh, got {type(devices).__name__}")
    import numpy as np

    return _mesh(np.array(chosen, dtype=object), (DATA_AXIS,))


def _mesh(devices: Any, names: tuple[str, ...]) -> Any:
    import jax

    axis_type = getattr(jax.sharding, "AxisType", None)
    if axis_type is None:  # a JAX from before typed axes: every axis is Auto
        return jax.sharding.Mesh(devices, names)
    return jax.sharding.Mesh(devices, names, axis_types=(axis_type.Auto,) * len(names))


def auto_axes(mesh: Any) -> Any:
    """``mesh`` with every axis ``AxisType.Auto`` (itself when they are; a copy over the same
    devices and names otherwise). ``jax.make_mesh`` makes ``Explicit`` axes by default, under
    which ember's weight-gradient matmul would need an ``out_sharding`` (see the module docs).

    Example:
        >>> import jax
        >>> import ember
        >>> ember.set_backend("jax")
        >>> mesh = ember.distributed.auto_axes(jax.make_mesh((1,), ("data",)))
        >>> [t.name for t in mesh.axis_types]
        ['Auto']
        >>> ember.set_backend("numpy")
    """
    import jax

    axis_type = getattr(jax.sharding, "AxisType", None)
    if axis_type is None or all(t == axis_type.Auto for t in mesh.axis_types):
        return mesh
    return _mesh(mesh.devices, tuple(mesh.axis_names))


@functools.lru_cache(maxsize=64)
def replicated(mesh: Any) -> Any:
    """``NamedSharding(mesh, P())``: every device holds the whole array (parameters, state).

    Example:
        >>> import ember
        >>> ember.set_backend("jax")
        >>> tuple(ember.distributed.replicated(ember.distributed.make_mesh(1)).spec)
        ()
        >>> ember.set_backend("numpy")
    """
    from jax.sharding import NamedSharding, PartitionSpec

    return NamedSharding(mesh, PartitionSpec())


@functools.lru_cache(maxsize=256)
def batch_sharding(mesh: Any, axis: int = 0) -> Any:
    """``NamedSharding`` that splits axis ``axis`` (the samples) over the mesh's ``"data"`` axis:
    ``P("data")`` for a batch, ``P(None, "data")`` for a stack of batches ``(steps, batch, ...)``.

    Example:
        >>> import ember
        >>> ember.set_backend("jax")
        >>> tuple(ember.distributed.batch_sharding(ember.distributed.make_mesh(1), axis=1).spec)
        (None, 'data')
        >>> ember.set_backend("numpy")
    """
    from jax.sharding import NamedSharding, PartitionSpec

    return NamedSharding(mesh, PartitionSpec(*([None] * axis), DATA_AXIS))


def data_size(mesh: Any) -> int:
    """The number of devices a batch is split over (the size of the mesh's ``"data"`` axis).

    Example:
        >>> import ember
        >>> ember.set_backend("jax")
        >>> ember.distributed.data_size(ember.distributed.make_mesh(1))
        1
        >>> ember.set_backend("numpy")
    """
    return int(mesh.shape[DATA_AXIS])


def check_divides(owner: str, size: int, mesh: Any, what: str = "batch_size") -> None:
    """Raise ``ValueError`` naming both numbers when ``size`` samples do not split evenly over
    the mesh's ``"data"`` devices.

    Example:
        >>> import ember
        >>> ember.set_backend("jax")
        >>> ember.distributed.check_divides("Trainer.fit", 30, ember.distributed.make_mesh(1))
        >>> ember.set_backend("numpy")
    """
    n = data_size(mesh)
    if size % n:
        raise ValueError(f"{owner}: {what} {size} does not divide over {n} devices; use a "
                         f"multiple of {n}")


def _context_mesh(owner: str) -> Any:
    import jax

    mesh = jax.sharding.get_mesh()
    if mesh.empty:
        raise ValueError(f"{owner}: no mesh given and none set (jax.set_mesh); pass mesh=")
    return mesh


def _map(fn: Any, x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return type(x)(_map(fn, a) for a in x)
    if x is None:
        return None
    if isinstance(x, Tensor):
        return Tensor._make(fn(x.data), False, None)
    return fn(x)


def shard_batch(x: Any, mesh: Any = None, axis: int = 0) -> Any:
    """Split a batch along its sample axis over the mesh's ``"data"`` devices.

    ``x`` is a Tensor, an array, or a tuple/list of them (e.g. ``(x, y)``; the same structure comes
    back, Tensors as Tensors). In a multi-process run ``x`` holds *this process's* rows: the
    global batch is the concatenation of every process's rows, in process order
    (``jax.make_array_from_process_local_data``). Pass the result to a function compiled with
    ``ember.jit(fn, mesh=mesh)``.

    Args:
        x: the batch.
        mesh: the mesh (default: the one set with ``jax.set_mesh``).
        axis: the sample axis (1 for a stack of batches ``(steps, batch, ...)``).

    Raises:
        ValueError: when the (global) number of samples does not divide over the devices.

    Example:
        >>> import ember
        >>> ember.set_backend("jax")
        >>> mesh = ember.distributed.make_mesh(1)
        >>> xb = ember.distributed.shard_batch(ember.ones(8, 3), mesh)
        >>> tuple(xb.data.sharding.spec)
        ('data',)
        >>> ember.set_backend("numpy")
    """
    jax = _jax("ember.distributed.shard_batch")
    if mesh is None:
        mesh = _context_mesh("ember.distributed.shard_batch")
    sharding = batch_sharding(mesh, axis)
    procs = jax.process_count()

    def place(a: Any) -> Any:
        if getattr(a, "sharding", None) == sharding:
            return a
        global_rows = int(a.shape[axis]) * procs
        n = data_size(mesh)
        if global_rows % n:
            raise ValueError(f"ember.distributed.shard_batch: a batch of {global_rows} samples "
                             f"does not divide over {n} devices; use a multiple of {n}")
        if procs == 1:
            return jax.device_put(a, sharding)
        shape = (*a.shape[:axis], global_rows, *a.shape[axis + 1:])
        return jax.make_array_from_process_local_data(sharding, backend.get().to_numpy(a)
                                                      if hasattr(a, "sharding") else a, shape)

    return _map(place, x)


def replicate(x: Any, mesh: Any = None) -> Any:
    """Copy ``x`` (a Tensor, an array or a tuple/list of them) whole to every device of the mesh.

    Example:
        >>> import ember
        >>> ember.set_backend("jax")
        >>> w = ember.distributed.replicate(ember.ones(3), ember.distributed.make_mesh(1))
        >>> w.data.sharding.is_fully_replicated
        True
        >>> ember.set_backend("numpy")
    """
    jax = _jax("ember.distributed.replicate")
    if mesh is None:
        mesh = _context_mesh("ember.distributed.replicate")
    sharding = replicated(mesh)
    return _map(lambda a: jax.device_put(a, sharding), x)


@functools.lru_cache(maxsize=64)
def _gather_fn(sharding: Any, steps: int) -> Any:
    import jax
    import jax.numpy as jnp

    def take(arrays: tuple[Any, ...], index: Any) -> tuple[Any, ...]:
        rows = tuple(jnp.take(a, index, axis=0) for a in arrays)
        if steps:
            rows = tuple(r.reshape(steps, -1, *r.shape[1:]) for r in rows)
        return rows

    return jax.jit(take, out_shardings=sharding)


def gather_rows(arrays: tuple[Any, ...], index: Any, sharding: Any, steps: int = 0) -> Any:
    """Rows ``index`` of arrays that lie on every device of a mesh, as arrays with ``sharding``
    (stacked ``(steps, rows / steps, ...)`` when ``steps``): one compiled gather, in which each
    device makes only its own rows. Used by ``DataLoader`` with a mesh.

    Example:
        >>> import numpy as np
        >>> import ember
        >>> ember.set_backend("jax")
        >>> mesh = ember.distributed.make_mesh(1)
        >>> (rows,) = ember.distributed.gather_rows((np.arange(10) * 10,), np.array([3, 1]),
        ...                                          ember.distributed.batch_sharding(mesh))
        >>> rows.tolist()
        [30, 10]
        >>> ember.set_backend("numpy")
    """
    import numpy as np

    return _gather_fn(sharding, int(steps))(tuple(arrays), np.asarray(index, dtype=np.int32))
