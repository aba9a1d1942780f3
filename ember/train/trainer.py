"""The Trainer: ``fit`` / ``evaluate`` / ``predict`` for ember Modules, Keras style.

One training step is ordinary ember code: forward, loss, ``loss.backward()``, ``opt.step()``,
``opt.zero_grad()``, then the metric states are updated with pure ember ops. On the JAX backend
the step is compiled with :func:`ember.jit` (``jit=True``, the default there); on NumPy it runs
eagerly. ``steps_per_execution=N`` (or ``"epoch"``) runs ``N`` steps per dispatch on JAX as one
compiled ``scan`` over batches stacked on the device, with the same results as one step at a time
(for a model with convolutions on CPU: up to 8 steps per dispatch, unrolled, not a loop).

The short last batch of an epoch is run, as in Keras: a compiled step therefore traces twice in the
first epoch (once per batch shape) and never again; pass a ``DataLoader`` with ``drop_last=True``
for one trace. Non-finite losses are caught inside the step: the parameters, buffers, optimizer
state and metric states of a step whose loss is NaN or inf are replaced by those from before it
(``where(isfinite(loss), new, old)``, and compiled on CPU a ``cond`` around ``opt.step()``: see
:data:`STEP_GUARD`), later steps of that execution change
nothing, and :class:`~ember.train.callbacks.TerminateOnNaN` (always on) stops training with a
message naming the epoch and the step, so the last finite weights are kept.

``devices=`` (JAX) trains data-parallel on a ``jax.sharding.Mesh`` (see :mod:`ember.distributed`):
every batch is split over the devices along its sample axis, the state stays replicated and XLA
sums the gradients; in a multi-process run each process reads its shard of the training data and
only process 0 writes checkpoints, CSV logs and progress.

Example:
    >>> import numpy as np
    >>> import ember
    >>> from ember import nn
    >>> ember.manual_seed(0)
    >>> x = np.random.default_rng(0).standard_normal((64, 2)).astype("float32")
    >>> y = (x.sum(axis=1) > 0).astype("int64")
    >>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> trainer = ember.Trainer(model, "cross_entropy", ember.optim.Adam(model.parameters(), 0.05))
    >>> history = trainer.fit(x, y, epochs=5, batch_size=16, verbose=0)
    >>> history.history["loss"][-1] < history.history["loss"][0]
    True
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np  # host-side bookkeeping only (validation split, logs); math goes to the backend

from ember import backend, distributed
from ember import random as _random
from ember.data.loader import DataLoader, validate_arrays
from ember.data.text import TokenWindows
from ember.function import no_grad
from ember.jit import JitFunction, state_slots
from ember.jit import jit as _jit
from ember.nn.losses import Loss, WeightedLoss, get_loss
from ember.nn.module import Module
from ember.optim import optimizers as _optimizers
from ember.optim.optimizer import Optimizer
from ember.tensor import Tensor
from ember.train import callbacks as _callbacks
from ember.train.history import History
from ember.train.labels import check_class_labels
from ember.train.resume import CHECKPOINT_FORMAT, CheckpointMixin  # noqa: F401  (its old home)
from ember.train.sources import SourcesMixin, _check_positive_int, _split_validation

__all__ = ["Trainer", "History", "train_one_step"]

#: optimizer name -> (class, default learning rate); the registry lives in ember.optim
OPTIMIZERS = _optimizers.REGISTRY

#: callbacks that write files, run by process 0 alone in a multi-process run
_WRITERS = (_callbacks.CSVLogger, _callbacks.JSONLinesLogger, _callbacks.TensorBoard)


def _resolve_loss(loss: Any, loss_weights: Sequence[float] | None = None) -> Any:
    """A loss from a Loss, a name, a config dict, a callable or a list of (loss, weight) pairs."""
    if loss is None:
        raise ValueError("Trainer: loss is required, e.g. 'cross_entropy', nn.MSE() or "
                         "[(nn.MSE(), 0.7), (nn.MAE(), 0.3)]")
    if isinstance(loss, (list, tuple)):
        items = list(loss)
        if loss_weights is not None:
            if len(loss_weights) != len(items):
                raise ValueError(f"Trainer: {len(items)} losses but {len(loss_weights)} "
                                 f"loss_weights; give one weight per loss")
            items = list(zip(items, loss_weights))
        pairs = []
        for item in items:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((get_loss(item[0]), float(item[1])))
            else:
                pairs.append((get_loss(item), 1.0))
        return WeightedLoss(pairs)
    if loss_weights is not None:
        raise ValueError("Trainer: loss_weights needs a list of losses, one weight each")
    if isinstance(loss, (str, dict, Loss)):
        return get_loss(loss)
    if callable(loss):
        return loss
    raise TypeError(f"Trainer: loss must be a Loss, a name, a list of (loss, weight) pairs or a "
                    f"callable (pred, target) -> Tensor, got {type(loss).__name__}")


def _resolve_optimizer(optimizer: Any, model: Module) -> Optimizer:
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        try:
            return _optimizers.get(optimizer, model.parameters())
        except ValueError as e:
            raise ValueError(f"Trainer: {str(e).removeprefix('optim.get: ')}") from None
    raise TypeError(f"Trainer: optimizer must be an ember.optim.Optimizer or a name "
                    f"({', '.join(OPTIMIZERS)}), got {type(optimizer).__name__}")


def _resolve_metric(metric: Any, loss: Any) -> Any:
    """A Metric: objects with init/update/result are used as they are; names go to
    ``ember.train.metrics.get_metric`` (which resolves "accuracy" from the loss)."""
    if all(hasattr(metric, a) for a in ("init", "update", "result", "name")):
        return metric
    from ember.train import metrics as _metrics  # type: ignore[attr-defined]

    return _metrics.get_metric(metric, loss=loss)


def _select(ok: Any, new: Any, old: Any) -> Any:
    """``where(ok, new, old)`` over matching structures of arrays, Tensors, dicts and lists."""
    if isinstance(new, dict):
        return {k: _select(ok, v, old[k]) if k in old else v for k, v in new.items()}
    if isinstance(new, (list, tuple)):
        return type(new)(_select(ok, a, b) for a, b in zip(new, old))
    if new is None or old is None:
        return new
    if isinstance(new, Tensor):
        return Tensor._make(_select(ok, new.data, old.data if isinstance(old, Tensor) else old),
                            False, None)
    if getattr(new, "shape", None) != getattr(old, "shape", None):
        return new
    return backend.get().xp.where(ok, new, old)


def _to_float(a: Any) -> float:
    return float(backend.get().to_numpy(a.data if isinstance(a, Tensor) else a))


def _log_value(t: Any) -> Any:
    """A metric result as a Python float (scalars) or nested lists (a confusion matrix)."""
    host = backend.get().to_numpy(t.data if isinstance(t, Tensor) else t)
    return float(host) if np.ndim(host) == 0 else host.tolist()


def _split_batch(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None
        return batch[0], batch[1]
    return batch, None


def _batch_size(x: Any) -> int:
    if isinstance(x, (tuple, list)):  # the micro-batches of one accumulated step
        return sum(int(a.shape[0]) for a in x)
    return int(x.shape[0])


def _micro_batches(x: Any, y: Any) -> list[tuple[Any, Any]]:
    """``[(x, y)]``, or the ``(x_i, y_i)`` pairs of a step that accumulates gradients."""
    if isinstance(x, (tuple, list)):
        return list(zip(x, y if y is not None else [None] * len(x)))
    return [(x, y)]


def _backward(model: Module, loss_fn: Any, update_metrics: Any, x: Any, y: Any,
              mstate: Any) -> tuple[Tensor, Any]:
    """Forward, loss and ``backward()`` on one batch, or on each micro-batch of an accumulated
    step (each loss weighted by its share of the samples: the mean over them all); returns the
    (detached) loss and the updated metric states."""
    parts = _micro_batches(x, y)
    total = sum(int(xi.shape[0]) for xi, _ in parts)
    loss: Any = None
    for xi, yi in parts:
        pred = model(xi)
        part = loss_fn(pred, yi)
        if len(parts) > 1:
            part = part * (int(xi.shape[0]) / total)
        part.backward()
        loss = part.detach() if loss is None else loss + part.detach()
        mstate = update_metrics(mstate, pred, yi, part)
    return loss, mstate


def _grouped(executions: Any, k: int) -> Any:
    """Executions of ``k`` consecutive batches each, as tuples (the micro-batches of one step of
    gradient accumulation; the last may have fewer), numbered by optimizer step."""
    group: list[Any] = []
    for ex in executions:
        group.append(ex)
        if len(group) == k:
            yield _group_execution(group, k)
            group = []
    if group:
        yield _group_execution(group, k)


def _group_execution(group: list[Any], k: int) -> Any:
    xs = tuple(ex.x for ex in group)
    ys = None if group[0].y is None else tuple(ex.y for ex in group)
    return group[0]._replace(step=group[0].step // k, x=xs, y=ys, count=1)


def _keep(ok: Any, new: Any, old: Any) -> Any:
    """``new`` where ``ok``, else ``old``: a Python choice on concrete values, ``where`` over the
    arrays when traced (the same step body runs both ways)."""
    if not backend.is_traced(ok):
        return new if bool(ok) else old
    return _select(ok, new, old)


#: how a compiled step keeps the state from before a step whose loss is not finite:
#:
#: - ``"branch"``: a ``cond`` around ``opt.step()`` (a ``where`` between the old and new state
#:   would keep both alive: XLA then copies the parameters and the optimizer's state instead of
#:   updating them in place);
#: - ``"select"``: ``where(ok, new, old)`` over the state, for GPU and TPU, where a branch reads
#:   its predicate back to the host each step and copies are cheap;
#: - ``"auto"``: the branch on CPU, the select on GPU and TPU; and several steps per call
#:   (``steps_per_execution``) run first with no guard at all (a guard inside a loop costs a
#:   branch or a copy each step) and only again, guarded, after a bad step (see ``_scan``).
#:
#: Measured on XLA's CPU backend (bench/train.py W3, 0.3 ms a step): the select made 16 copies a
#: step; a branch costs about 40 us a step; keeping the state from before each step (no
#: donation) and reading each loss one step later to put it back cost more than the branch.
STEP_GUARD = "auto"


def _update(ok: Any, opt: Optimizer, slots: tuple[Any, Any], old: Any,
            metrics: tuple[Any, Any]) -> Any:
    """``opt.step()`` and the step's metric states; with the state from before the step
    (``old``, None when unguarded), a step that is not ``ok`` changes nothing: what the forward
    changed (buffers, the random stream) is put back, the update is skipped (:func:`_step_if`)
    and the metric states are the old ones."""
    new_m, mstate = metrics
    if old is None:
        opt.step()
        return new_m
    every, updated = slots
    every.set(_keep(ok, every.get(), old))
    _step_if(ok, opt, updated)
    return _keep(ok, new_m, mstate)


_CONSTANTS: dict[Any, Any] = {}


def _constant(value: Any, dtype: Any) -> Tensor:
    """A scalar Tensor made once per backend (on JAX an eager array costs a dispatch; arrays are
    never changed in place, so one can be shared)."""
    bk = backend.get()
    key = (bk, value, dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = bk.xp.asarray(value, dtype=dtype)
    return Tensor._make(_CONSTANTS[key], False, None)


def _step_if(ok: Any, opt: Optimizer, slots: Any) -> None:
    """``opt.step()`` if ``ok`` (see :data:`STEP_GUARD`): a Python choice on a concrete value."""
    bk = backend.get()
    if not backend.is_traced(ok):
        if bool(ok):
            opt.step()
        return
    guard = STEP_GUARD if STEP_GUARD in ("branch", "select") else (
        "branch" if bk.platform() == "cpu" else "select")
    old = slots.get()
    if guard == "select":
        opt.step()
        slots.set(_select(ok, slots.get(), old))
        return

    def step(state: list[Any]) -> list[Any]:
        slots.set(state)
        opt.step()
        return slots.get()

    slots.set(bk.cond(ok, step, lambda state: state, old))


def _tensors(tree: dict[str, dict[str, Any]]) -> dict[str, dict[str, Tensor]]:
    return {k: {kk: Tensor._make(a, False, None) for kk, a in v.items()} for k, v in tree.items()}


def _arrays(tree: dict[str, dict[str, Tensor]]) -> dict[str, dict[str, Any]]:
    return {k: {kk: t.data for kk, t in v.items()} for k, v in tree.items()}


#: the most steps a compiled execution unrolls (models that are slow inside a loop, see
#: ``Trainer._execution``): enough to amortise the dispatch, few enough to compile quickly
UNROLL_STEPS = 8


def _slow_in_a_loop(model: Module) -> bool:
    """Whether ``model`` holds a convolution and runs on CPU, where XLA's convolutions inside a
    while loop (``lax.scan``) take a slow path."""
    from ember.nn.conv import Conv1D, Conv2D

    return backend.get().platform() == "cpu" and any(
        isinstance(m, (Conv1D, Conv2D)) for m in model.modules())


def _first_batch(ex: Any) -> tuple[Any, Any]:
    if isinstance(ex.x, tuple):
        return ex.x[0], None if ex.y is None else ex.y[0]
    if ex.count == 1:
        return ex.x, ex.y
    return ex.x[0], None if ex.y is None else ex.y[0]


def _rewind(loader: DataLoader, start: dict[str, Any], step: int) -> None:
    """Put ``loader`` at ``step`` steps after its state ``start`` (the steps of an epoch may run
    on into the loader's next pass)."""
    per_pass = len(loader)
    at = int(start["position"]) + int(step)
    loader.load_state_dict({**start, "epoch": int(start["epoch"]) + at // per_pass,
                            "position": at % per_pass})


def _epoch_steps(source: Any, steps: int | None, k: int = 1) -> int | None:
    """The optimizer steps the epoch will run (for the progress bar), None when not known."""
    if steps is not None:
        return steps
    if isinstance(source, DataLoader):
        batches: int | None = len(source) - source.position
    else:
        batches = len(source.iterable) if hasattr(source.iterable, "__len__") else None
    return None if batches is None else -(-batches // k)


def _check_fit_args(owner: str, epochs: Any, steps_per_epoch: Any, validation_steps: Any,
                    validation_split: Any, validation_freq: Any, verbose: Any) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"{owner}: epochs must be a non-negative integer, got {epochs!r}")
    _check_positive_int(owner, "steps_per_epoch", steps_per_epoch, allow_none=True)
    _check_positive_int(owner, "validation_steps", validation_steps, allow_none=True)
    if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"{owner}: validation_split must be in [0, 1), got "
                         f"{validation_split!r}")
    if isinstance(validation_freq, (int, np.integer)):
        _check_positive_int(owner, "validation_freq", validation_freq)
    if verbose not in (0, 1, 2):
        raise ValueError(f"{owner}: verbose must be 0, 1 or 2, got {verbose!r}")


class _LossReport:
    """Hands each step's loss to ``on_batch_end`` and keeps the epoch's mean loss. Unless a
    callback needs every batch at once (``sync``), losses are read in groups (one transfer each
    64 steps or 0.2 s), so that compiled steps queue up without waiting; the state of a step with
    a non-finite loss was kept inside the step, so a late stop is exact."""

    def __init__(self, cbs: Any, trainer: Any) -> None:
        self.cbs, self.trainer = cbs, trainer
        self.sync = cbs.needs_sync_batches
        self.pending: list[tuple[int, Any, int]] = []  # (step, loss, batch size)
        self.last = time.perf_counter()
        self.total, self.count = 0.0, 0
        self.bad_step: int | None = None  # the first step whose loss was not finite

    def begin(self, ex: Any) -> None:
        """``on_batch_begin`` for callbacks that run in step with the steps."""
        if self.sync and ex.count == 1:
            self.cbs.on_batch_begin(ex.step, {"size": _batch_size(ex.x)})

    def add(self, ex: Any, losses: Tensor) -> bool:
        """Queue the losses of one execution; True when a callback stopped training."""
        if ex.count == 1:
            self.pending.append((ex.step, losses.data, _batch_size(ex.x)))
        else:
            n = int(ex.x.shape[1])
            host = backend.get().to_numpy(losses.data).tolist()
            self.pending += [(ex.step + i, float(v), n) for i, v in enumerate(host)]
        return self.flush(force=False)

    def flush(self, force: bool) -> bool:
        if not self.pending:
            return False
        now = time.perf_counter()
        if not (force or self.sync or len(self.pending) >= 64 or now - self.last > 0.2):
            return False
        self.last = now
        values = [p[1] for p in self.pending]
        on_device = [i for i, v in enumerate(values) if not isinstance(v, float)]
        if on_device:  # one transfer for the group (a host-side stack: nothing compiles)
            fetched = backend.get().to_numpy([values[i] for i in on_device]).tolist()
            for i, v in zip(on_device, fetched):
                values[i] = float(v)
        batch, self.pending = self.pending, []
        for (s, _, n), v in zip(batch, values):
            if math.isfinite(v):  # the epoch's loss: the mean over its finite steps
                self.total += v * n
                self.count += n
            elif self.bad_step is None:
                self.bad_step = s
            self.cbs.on_batch_end(s, {"loss": v, "size": n})
            if self.trainer.stop_training:
                return True
        return False

    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


# -- the Trainer -----------------------------------------------------------------------------------

class Trainer(SourcesMixin, CheckpointMixin):
    """Fits a model: ``fit`` / ``evaluate`` / ``predict`` with metrics, callbacks and checkpoints.

    Args:
        model: the Module to train.
        loss: a loss (``nn.MSE()``), a name (``"cross_entropy"``, see ``nn.get_loss``), a list of
            ``(loss, weight)`` pairs (a weighted sum), or any callable ``(pred, target) -> Tensor``.
        optimizer: an ``ember.optim`` optimizer over ``model.parameters()``, or a name (``"adam"``,
            ``"sgd"``, ... with Keras's default learning rate).
        metrics: metrics or their names (``"accuracy"``, ``"mse"``, ...; see ``ember.metrics``),
            accumulated over each epoch inside the compiled step.
        jit: compile the train, eval and predict steps with ``ember.jit``; default: True on the
            JAX backend. On NumPy the steps always run eagerly.
        steps_per_execution: steps per compiled dispatch on JAX (an int, or ``"epoch"`` for all
            the full batches of an epoch): one ``scan`` over batches stacked on the device. The
            results equal one step per dispatch. Ignored on NumPy and without ``jit``. A model
            with convolutions on CPU runs at most ``UNROLL_STEPS`` (8) steps per dispatch,
            unrolled, because XLA's CPU convolutions are several times slower inside a loop.
        devices: data parallelism on the JAX backend (see ``ember.distributed``): ``"all"``, a
            number of devices, a list of JAX devices or a ``jax.sharding.Mesh`` with a ``"data"``
            axis. Every batch is split over the devices along its sample axis; parameters,
            buffers, optimizer and metric state stay replicated and XLA reduces the gradients, so
            the results are those of one device (up to the order of sums). ``batch_size`` is the
            global batch and must be a multiple of the number of devices; a short last batch
            that does not split evenly runs replicated. With several processes
            (``ember.distributed.initialize``) each process reads its shard of the training data
            (``batch_size / process_count`` rows of each batch; the short last batch and the
            ``n % process_count`` samples a shard leaves out are dropped), validation, evaluate
            and predict read all the data in every process, and only process 0 writes
            checkpoints, CSV logs and progress. Default ``None``: one device, as before.

    ``train_function``, ``scan_function``, ``test_function`` and ``predict_function`` are the
    (compiled) steps; compiled ones have ``trace_count``. Callbacks may set ``stop_training``.

    Example:
        >>> import numpy as np
        >>> import ember
        >>> from ember import nn
        >>> model = nn.Linear(3, 1)
        >>> trainer = ember.Trainer(model, "mse", "sgd")
        >>> x = np.ones((8, 3), "float32"); y = np.zeros((8, 1), "float32")
        >>> logs = trainer.evaluate(x, y)
        >>> sorted(logs)
        ['loss']
    """

    def __init__(self, model: Module, loss: Any, optimizer: Any, metrics: Sequence[Any] | None
                 = None, jit: bool | None = None, steps_per_execution: int | str = 1, *,
                 loss_weights: Sequence[float] | None = None, devices: Any = None) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be an ember.nn.Module, got "
                            f"{type(model).__name__}")
        if steps_per_execution != "epoch":
            _check_positive_int("Trainer", "steps_per_execution", steps_per_execution)
        self.model = model
        self.loss = _resolve_loss(loss, loss_weights)
        self.optimizer = _resolve_optimizer(optimizer, model)
        if isinstance(metrics, (str, dict)) or (metrics is not None and hasattr(metrics, "update")
                                               and hasattr(metrics, "init")):
            metrics = [metrics]
        self.metrics = [_resolve_metric(m, self.loss) for m in (metrics or [])]
        names = [m.name for m in self.metrics]
        dupes = sorted({n for n in names if names.count(n) > 1} | ({"loss"} & set(names)))
        if dupes:
            raise ValueError(f"Trainer: metric names must be unique and not 'loss'; got "
                             f"{names} (duplicates: {dupes})")
        self._jit_arg = jit
        self.mesh: Any = None
        if devices is not None:
            self.mesh = distributed.make_mesh(devices, owner="Trainer")
            if jit is not None and not jit:
                raise ValueError("Trainer: devices= runs compiled steps; drop jit=False")
        self.steps_per_execution = steps_per_execution
        self.stop_training = False
        self.history = History()
        self._slots = state_slots(model, self.optimizer)
        self._train_loader: Any = None
        self._split_seed: int | None = None
        self._epoch = 0
        self._callbacks: list[Any] = []
        self._mstate: dict[str, dict[str, Tensor]] = {}
        self._accumulate = 1
        self._build_functions()

    # -- modes -------------------------------------------------------------------------------------
    @property
    def compiled(self) -> bool:
        """Whether the steps are compiled now (``jit`` on the JAX backend)."""
        on_jax = backend.get().name == "jax"
        return on_jax and (self._jit_arg is None or bool(self._jit_arg))

    def _build_functions(self) -> None:
        loss_fn, metrics, slots = self.loss, self.metrics, self._slots
        step_slots = state_slots(self.optimizer, grads=False, random=False)

        def update_metrics(mstate: dict[str, Any], pred: Tensor, y: Any, loss: Tensor) -> Any:
            with no_grad():
                pred = pred.detach()
                out = {}
                if "loss" in mstate:  # evaluation sums the loss here; fit reads batch losses
                    n = pred.shape[0] if pred.ndim else 1
                    acc = mstate["loss"]
                    out["loss"] = {"total": Tensor._make(acc["total"].data + loss.data * n,
                                                         False, None),
                                   "count": Tensor._make(acc["count"].data + n, False, None)}
                for m in metrics:
                    out[m.name] = m.update(mstate[m.name], pred, y)
            return out

        def train_step(model: Module, opt: Optimizer, x: Tensor, y: Any,
                       mstate: dict[str, Any], alive: Tensor, keep_grads: bool = False,
                       guard: bool = True) -> Any:
            """One step, the same code eagerly and traced; a step whose loss is not finite (or
            that follows one, ``alive`` False) keeps the state from before it (unless
            ``guard`` is False: see ``_scan``). ``keep_grads`` leaves the gradients on the
            parameters after the step (for nn.Monitor)."""
            opt.zero_grad()  # first: gradients a step never reads are not carried by ember.jit
            old = slots.get() if guard else None
            loss, new_m = _backward(model, loss_fn, update_metrics, x, y, mstate)
            xp = backend.get().xp
            ok = xp.logical_and(alive.data, xp.isfinite(loss.data))
            new_m = _update(ok, opt, (slots, step_slots), old, (new_m, mstate))
            if not keep_grads:
                opt.zero_grad()
            return loss, new_m, Tensor._make(ok, False, None)

        def scan_steps(model: Module, opt: Optimizer, xs: Tensor, ys: Any,
                       mstate: dict[str, Any], alive: Tensor, unroll: bool = False,
                       guard: bool = False) -> Any:
            """``train_step`` over batches stacked along a leading axis (one ``scan``, or one
            copy of the step per batch with ``unroll``), with or without its guard."""
            def body(carry: Any, batch: Any) -> Any:
                state, m, alv = carry
                slots.set(state)
                y = None if ys is None else Tensor._make(batch[1], False, None)
                loss, m2, alv2 = train_step(model, opt, Tensor._make(batch[0], False, None), y,
                                            _tensors(m), Tensor._make(alv, False, None),
                                            guard=guard)
                return (slots.get(), _arrays(m2), alv2.data), loss.data

            batches = (xs.data,) if ys is None else (xs.data, ys.data)
            final, losses = backend.get().scan(body, (slots.get(), _arrays(mstate), alive.data),
                                               batches, unroll=unroll)
            slots.set(final[0])
            return (Tensor._make(losses, False, None), _tensors(final[1]),
                    Tensor._make(final[2], False, None))

        def test_step(model: Module, x: Tensor, y: Any, mstate: dict[str, Any]) -> Any:
            with no_grad():
                pred = model(x)
                loss = loss_fn(pred, y)
                return update_metrics(mstate, pred, y, loss)

        def predict_step(model: Module, x: Tensor) -> Tensor:
            with no_grad():
                out: Tensor = model(x)
                return out

        self._raw: dict[str, Callable[..., Any]] = {
            "train": train_step, "scan": scan_steps, "test": test_step, "predict": predict_step}
        mesh = self.mesh
        self.train_function: Any = _jit(train_step, mesh=mesh)
        # several steps per call run first without the guard and without donating the state
        # (see ``_scan``); the guarded version compiles only when a loss was not finite
        self.scan_function: Any = _jit(scan_steps, mesh=mesh, donate=False)
        self.guarded_scan_function: Any = _jit(scan_steps, mesh=mesh)
        self.test_function: Any = _jit(test_step, mesh=mesh)
        self.predict_function: Any = _jit(predict_step, mesh=mesh)

    def _fn(self, name: str) -> Callable[..., Any]:
        fn: Callable[..., Any] = getattr(self, f"{name}_function")
        if self.compiled or not isinstance(fn, JitFunction):
            return fn
        return self._raw[name]

    def _init_mstate(self, with_loss: bool = True) -> dict[str, dict[str, Tensor]]:
        state: dict[str, dict[str, Tensor]] = {}
        if with_loss:
            zero = _constant(0.0, backend.float32)
            state["loss"] = {"total": zero, "count": zero}
        for m in self.metrics:
            state[m.name] = dict(m.init())
        return state

    def _materialize_metrics(self, x: Any, y: Any) -> None:
        """Metrics whose size follows from the data (``init()`` is ``{}``, e.g. a confusion
        matrix without ``num_classes``) make their state from the shapes of the model's output
        for one batch, known by lowering the predict step (nothing runs), so that a compiled
        step (and a scan's carry) keeps one state structure."""
        lazy = [m for m in self.metrics if not m.init()]
        if not lazy or not self.compiled:
            return
        pred = self.predict_function.lower(self.model, x).out_info[0]
        for m in lazy:
            m.init(pred, y)

    def _results(self, mstate: dict[str, dict[str, Any]], prefix: str = "",
                 loss: float | None = None) -> dict[str, Any]:
        if "loss" in mstate:
            acc = mstate["loss"]
            count = _to_float(acc["count"])
            loss = _to_float(acc["total"]) / count if count else math.nan
        logs: dict[str, Any] = {prefix + "loss": math.nan if loss is None else loss}
        for m in self.metrics:
            logs[prefix + m.name] = _log_value(m.result(mstate[m.name]))
        return logs

    def _running_logs(self) -> dict[str, Any]:
        """The epoch's logs so far (for the progress bar)."""
        return self._results(self._mstate, loss=math.nan)

    def _lr(self) -> float | None:
        """The learning rate of the first group, or None for an optimizer without one (optax
        keeps it inside its transformation)."""
        lr = self.optimizer.param_groups[0].get("lr")
        return None if lr is None else _to_float(lr)

    def fit(self, x: Any, y: Any = None, *, epochs: int = 1, batch_size: int = 32,
            validation_data: Any = None, validation_split: float = 0.0,
            validation_freq: int | Sequence[int] = 1, steps_per_epoch: int | None = None,
            validation_steps: int | None = None, shuffle: bool = True,
            callbacks: Sequence[Any] | None = None, verbose: int = 1,
            resume_from: str | os.PathLike[str] | None = None,
            accumulate_steps: int = 1, steps: int | None = None,
            eval_every: int | None = None, eval_steps: int | None = None) -> History:
        """Train for ``epochs`` epochs and return the :class:`History`.

        Args:
            x: inputs (an array, a Tensor), a ``DataLoader`` or a data set (``__len__`` and
                ``__getitem__``) that yields ``(x, y)``, or any iterable of ``(x, y)`` batches
                such as a generator (with ``steps_per_epoch``; then ``batch_size``, ``shuffle``
                and ``validation_split`` do not apply).
            y: targets, with the same first length as ``x``.
            epochs: the epoch to stop at (counted from 0 of the run, so a resumed run trains
                ``epochs`` minus the epochs already done).
            batch_size: samples per step.
            validation_data: ``(x_val, y_val)``, a DataLoader or an iterable of batches,
                evaluated after the epochs that ``validation_freq`` selects; its logs are
                prefixed ``val_``.
            validation_split: the fraction of ``(x, y)`` held out for validation. Unlike Keras
                (which takes the last samples) the split is shuffled: a permutation drawn from
                ``ember.initial_seed()`` chooses the held-out samples, once per run.
            validation_freq: validate every ``validation_freq`` epochs, or after the epochs
                (1-based, as Keras) listed.
            steps_per_epoch: steps per epoch (the data continues into its next pass when
                needed); default: one pass over the data. A generator that runs out ends
                training after that epoch.
            validation_steps: at most this many validation batches.
            shuffle: a new order every epoch (drawn from the loader's seed and the epoch).
            callbacks: ``ember.callbacks`` objects; ``TerminateOnNaN`` is always added.
            verbose: 0 silent; 1 a progress bar per epoch on a terminal, else one line per
                epoch; 2 one line per epoch.
            resume_from: a checkpoint folder (``save_checkpoint`` / ``ModelCheckpoint``): the
                model, optimizer, random state, data order, callback state and history are
                restored and training continues from the saved epoch. A folder that does not
                exist or is empty starts a fresh run.
            accumulate_steps: gradient accumulation: each optimizer step sums the gradients of
                ``accumulate_steps`` consecutive batches, each batch's loss weighted by its share
                of their samples, so that a step equals one step on a batch that many times
                larger (exactly, up to rounding, for a loss that is a mean over the batch and a
                model without dropout or batch statistics). ``steps_per_epoch`` then counts
                optimizer steps; eager and compiled alike (the micro-batches are unrolled in
                one compiled step); not with ``steps_per_execution > 1``.

            steps: with a ``TokenWindows`` as ``x`` (training by steps, not epochs): the total
                number of steps. The run is cut into intervals of ``eval_every`` steps; each one
                is an "epoch" for callbacks, checkpoints and the History, which logs the
                interval's mean training ``loss``, ``val_loss`` (when ``validation_data`` is a
                ``TokenWindows``, over its ``eval_batches(eval_steps)``), ``step`` and ``lr`` (the
                rate at that step, as nanoGPT logs it).
            eval_every: steps per interval (default: all ``steps``).
            eval_steps: validation batches per evaluation (default: every window once).

        Raises:
            ValueError: for bad inputs (empty data, ``batch_size <= 0``, ``x`` and ``y`` of
                different lengths, NaN or inf in the data), before any training.

        Example (training by steps on a token stream):
            >>> import numpy as np
            >>> import ember
            >>> from ember.data import TokenWindows
            >>> from ember.models import Bigram
            >>> ember.manual_seed(0)
            >>> tokens = np.arange(200) % 5
            >>> t = ember.Trainer(Bigram(5), "cross_entropy", "adam")
            >>> h = t.fit(TokenWindows(tokens, 8, 4, seed=0), steps=30, eval_every=10,
            ...           eval_steps=2, validation_data=TokenWindows(tokens, 8, 4), verbose=0)
            >>> h["step"], h["val_loss"][-1] < h["val_loss"][0]
            ([10, 20, 30], True)
        """
        owner = "Trainer.fit"
        _check_fit_args(owner, epochs, steps_per_epoch, validation_steps, validation_split,
                        validation_freq, verbose)
        _check_positive_int(owner, "accumulate_steps", accumulate_steps)
        if accumulate_steps > 1 and self.steps_per_execution != 1 and self.compiled:
            raise ValueError(f"{owner}: accumulate_steps={accumulate_steps} runs one optimizer "
                             f"step per compiled call; it cannot be combined with "
                             f"steps_per_execution={self.steps_per_execution!r} (use 1)")
        self._accumulate = int(accumulate_steps)
        if isinstance(x, TokenWindows):
            epochs, steps_per_epoch, validation_steps = self._by_steps(
                owner, y, steps, eval_every, eval_steps, epochs, steps_per_epoch,
                validation_steps, validation_split)
        elif (steps, eval_every, eval_steps) != (None, None, None):
            raise ValueError(f"{owner}: steps, eval_every and eval_steps train by steps on a "
                             f"TokenWindows, but x is a {type(x).__name__}; use epochs and "
                             f"steps_per_epoch")
        ckpt = self._read_resume(resume_from)
        split_seed = int(ckpt[1]["split_seed"]) if ckpt else _random.initial_seed()
        loader_seed = int(ckpt[1]["data"]["seed"]) if ckpt and ckpt[1].get("data") else None
        if validation_split:
            x, y, validation_data = _split_validation(owner, x, y, validation_data,
                                                      validation_split, split_seed)
        source = self._source(owner, x, y, batch_size, shuffle, loader_seed, shard=True)
        val_source = self._validation_source(validation_data, batch_size)
        check_class_labels(owner, self.loss, self.model, source)
        check_class_labels(owner, self.loss, self.model, val_source, "validation y")
        if not distributed.is_main_process():  # only process 0 writes logs and progress
            callbacks = [_callbacks.Callback() if isinstance(cb, _WRITERS) else cb
                         for cb in (callbacks or [])]
            verbose = 0
        cbs = _callbacks.CallbackList(callbacks, trainer=self, verbose=verbose, epochs=epochs)
        self._train_loader, self._split_seed = source, split_seed
        self._callbacks = list(cbs.callbacks)
        initial_epoch = self._restore(ckpt, source) if ckpt else 0
        if not ckpt:
            self.history = History()
        self.stop_training = False
        was_training = self.model.training
        try:
            self._run(source, val_source, cbs, ckpt, range(initial_epoch, epochs),
                      (steps_per_epoch, validation_steps, validation_freq))
        finally:
            self.model.train(was_training)
        return self.history

    @staticmethod
    def _by_steps(owner: str, y: Any, steps: Any, eval_every: Any, eval_steps: Any, epochs: Any,
                  steps_per_epoch: Any, validation_steps: Any, validation_split: Any
                  ) -> tuple[int, Callable[[int], int], int | None]:
        """Training by steps on a TokenWindows: ``(intervals, steps of interval i, eval steps)``."""
        if y is not None:
            raise ValueError(f"{owner}: x is a TokenWindows, which yields the targets too; do "
                             f"not pass y")
        if steps is None:
            raise ValueError(f"{owner}: a TokenWindows never runs out; pass steps= (e.g. "
                             f"fit(windows, steps=2000, eval_every=250))")
        if epochs != 1 or steps_per_epoch is not None or validation_steps is not None or \
                validation_split:
            raise ValueError(f"{owner}: with a TokenWindows give steps, eval_every and "
                             f"eval_steps, not epochs, steps_per_epoch, validation_steps or "
                             f"validation_split")
        _check_positive_int(owner, "steps", steps)
        _check_positive_int(owner, "eval_every", eval_every, allow_none=True)
        _check_positive_int(owner, "eval_steps", eval_steps, allow_none=True)
        every = int(steps) if eval_every is None else int(eval_every)
        total = int(steps)

        def interval_steps(i: int) -> int:
            return min(every, total - i * every)

        return -(-total // every), interval_steps, eval_steps

    def _run(self, source: Any, val_source: Any, cbs: Any, ckpt: Any, epochs: range,
             options: tuple[Any, Any, Any]) -> None:
        """The epochs of one ``fit``: train, validate, call back, checkpoint."""
        steps_of, val_steps, val_freq = options
        logs: dict[str, Any] = {}
        cbs.on_train_begin(logs)
        if ckpt:
            self._restore_callbacks(ckpt, cbs)
        for epoch in epochs:
            self._epoch = epoch
            steps = steps_of(epoch) if callable(steps_of) else steps_of
            cbs.on_epoch_steps(_epoch_steps(source, steps, self._accumulate))  # the bar's total
            cbs.on_epoch_begin(epoch, {})
            lr = self._lr()
            logs = self._train_epoch(source, steps, cbs, epoch)
            if logs is None:  # a non-finite loss stopped it: the epoch is not finished
                break
            if val_source is not None and self._validate_now(epoch, val_freq):
                val_logs = self._evaluate_source(val_source, val_steps)
                logs.update({"val_" + k: v for k, v in val_logs.items()})
            if isinstance(source, TokenWindows):  # by steps: the rate at this evaluation's
                lr = self._lr()  # step, as nanoGPT logs it (an epoch logs the rate it began with)
                logs["step"] = self._steps_done(epoch, steps_of)
            if lr is not None:
                logs["lr"] = lr
            cbs.on_epoch_end(epoch, logs)
            self.history.append(epoch, logs)  # last, as Keras: with what callbacks added
            self._epoch = epoch + 1
            for directory in cbs.take_checkpoint_requests():
                self.save_checkpoint(directory)
            if self.stop_training or getattr(source, "exhausted", False):
                break
        cbs.on_train_end(logs)

    @staticmethod
    def _steps_done(epoch: int, steps_of: Callable[[int], int]) -> int:
        """The training steps of a by-steps run once interval ``epoch`` is done."""
        return sum(steps_of(i) for i in range(epoch + 1))

    @staticmethod
    def _validate_now(epoch: int, freq: Any) -> bool:
        if isinstance(freq, (int, np.integer)):
            return (epoch + 1) % int(freq) == 0
        return (epoch + 1) in set(int(f) for f in freq)

    def _train_epoch(self, source: Any, steps: int | None, cbs: Any,
                     epoch: int) -> dict[str, Any] | None:
        """One flat loop over the executions the data source cuts the epoch into: a single
        step, or a ``scan`` over stacked batches (compiled on JAX with ``steps_per_execution``).
        None when a non-finite loss stopped it: the epoch is not recorded as finished and a
        DataLoader is put back at the bad step, so that a checkpoint written now resumes there
        (with the weights from before that step)."""
        self.model.train()
        start = source.state_dict() if isinstance(source, DataLoader) else None
        self._mstate = self._init_mstate(with_loss=False)
        alive = _constant(True, bool)
        report = _LossReport(cbs, self)
        per, unroll = self._execution()
        step_fn, scan_fn = self._fn("train"), self._fn("scan")
        k = self._accumulate
        executions = source.executions(steps, per) if k == 1 else _grouped(
            source.executions(None if steps is None else steps * k, 1), k)
        for i, ex in enumerate(executions):
            if i == 0:
                self._materialize_metrics(*_first_batch(ex))
                self._mstate = self._init_mstate(with_loss=False)
            report.begin(ex)
            args = (self.model, self.optimizer, ex.x, ex.y, self._mstate, alive)
            if ex.count == 1:
                losses, self._mstate, alive = step_fn(*args, cbs.needs_gradients)
            else:
                losses, self._mstate, alive = self._scan(scan_fn, args, unroll)
            if report.add(ex, losses):
                break
        else:
            report.flush(force=True)
        if report.bad_step is not None:
            if start is not None:  # bad_step counts optimizer steps: k batches each
                _rewind(source, start, report.bad_step * k)
            return None
        return self._results(self._mstate, loss=report.mean())

    def _scan(self, scan_fn: Callable[..., Any], args: tuple[Any, ...], unroll: bool) -> Any:
        """Several steps in one compiled call. They run first without the per-step guard and
        without donating the state, XLA's fastest program (a guard inside a loop costs a branch or
        a copy of the state each step); when a loss comes out non-finite, the state from before
        the call is put back and the steps run again with the guard, which keeps the state of
        the last finite step. The result is that of the guarded steps either way."""
        if not self.compiled:
            return scan_fn(*args, unroll, True)
        if STEP_GUARD in ("branch", "select"):  # guarded from the start
            return self.guarded_scan_function(*args, unroll, True)
        before = self._slots.get()
        out = scan_fn(*args, unroll, False)
        if bool(backend.get().to_numpy(out[2].data)):  # every step finite (read anyway)
            return out
        self._slots.set(before)
        return self.guarded_scan_function(*args, unroll, True)

    def _execution(self) -> tuple[int | str, bool]:
        """Steps per execution, and whether they are unrolled rather than a loop: XLA's CPU
        convolutions take a slow path inside a loop (about 7x on bench W2), so a model with
        convolutions on CPU runs at most :data:`UNROLL_STEPS` steps per dispatch, one copy of
        the step each, instead of a ``scan`` (measured in bench/train.py)."""
        if not self.compiled:
            return 1, False
        per = self.steps_per_execution
        if per == 1 or not _slow_in_a_loop(self.model):
            return per, False
        return (UNROLL_STEPS if per == "epoch" else min(int(per), UNROLL_STEPS)), True

    def lr_find(self, x: Any, y: Any = None, *, start: float = 1e-7, end: float = 10.0,
                steps: int = 100, batch_size: int = 32, smooth: float = 0.98,
                diverge: float = 4.0) -> Any:
        """The learning-rate range test (Smith 2015): ``steps`` training steps with the rate
        growing exponentially from ``start`` to ``end`` (stopping early when the smoothed loss
        exceeds ``diverge`` times its best). Returns an ``LRFindResult`` (``lrs``, ``losses``,
        ``smoothed``, ``suggestion``: the rate of the steepest fall); plot it with
        ``ember.plot.plot_lr_find``. The model, the optimizer and ember's random stream are
        restored exactly afterwards. See :mod:`ember.train.lr_finder`.

        Example:
            >>> import numpy as np
            >>> import ember
            >>> from ember import nn
            >>> t = ember.Trainer(nn.Linear(2, 1), "mse", "sgd")
            >>> r = t.lr_find(np.ones((64, 2), "float32"), np.zeros((64, 1), "float32"),
            ...               start=1e-4, end=1.0, steps=10)
            >>> len(r.lrs) <= 10 and r.lrs[0] == 1e-4
            True
        """
        from ember.train.lr_finder import LearningRateFinder

        return LearningRateFinder(self).run(x, y, start=start, end=end, steps=steps,
                                            batch_size=batch_size, smooth=smooth,
                                            diverge=diverge)

    # -- evaluate / predict ------------------------------------------------------------------------
    def _evaluate_source(self, source: Any, steps: int | None) -> dict[str, Any]:
        """Loss and metrics over the source in eval mode; a DataLoader is read from the start
        of its current epoch and left where it was."""
        was_training = self.model.training
        self.model.eval()
        mstate = self._init_mstate()
        fn = self._fn("test")
        saved = source.state_dict() if isinstance(source, DataLoader) else None
        try:
            if saved is not None:
                source.load_state_dict({**saved, "position": 0})
                batches = itertools.islice(iter(source), steps)
            elif isinstance(source, TokenWindows):
                batches = source.eval_batches(steps)
            else:
                batches = source.batches(steps)
            for batch in batches:
                x, y = _split_batch(batch)
                mstate = fn(self.model, x, y, mstate)
        finally:
            if saved is not None:
                source.load_state_dict(saved)
            self.model.train(was_training)
        return self._results(mstate)

    def evaluate(self, x: Any, y: Any = None, *, batch_size: int = 32, steps: int | None = None,
                 verbose: int = 0) -> dict[str, Any]:
        """The loss and every metric over ``(x, y)`` (or a DataLoader), in eval mode.

        Args:
            x: inputs, a DataLoader or an iterable of ``(x, y)`` batches.
            y: targets.
            batch_size: samples per step.
            steps: at most this many batches.
            verbose: 1 or 2 prints one line with the results.

        Returns:
            ``{"loss": ..., <metric>: ...}`` as Python floats (nested lists for matrices).

        Example:
            >>> import numpy as np
            >>> import ember
            >>> from ember import nn
            >>> model = nn.Linear(2, 1)
            >>> model.weight.data = model.weight.data * 0; model.bias.data = model.bias.data * 0
            >>> t = ember.Trainer(model, "mse", "sgd")
            >>> t.evaluate(np.ones((4, 2), "float32"), np.full((4, 1), 2.0, "float32"))
            {'loss': 4.0}
        """
        _check_positive_int("Trainer.evaluate", "steps", steps, allow_none=True)
        source = self._source("Trainer.evaluate", x, y, batch_size, False, 0)
        check_class_labels("Trainer.evaluate", self.loss, self.model, source)
        logs = self._evaluate_source(source, steps)
        if verbose:
            print(" - ".join(_callbacks.format_logs(logs)), file=sys.stdout, flush=True)
        return logs

    def predict(self, x: Any, batch_size: int = 32, *, steps: int | None = None) -> Tensor:
        """The model's outputs for ``x`` (eval mode, no gradient), batch by batch, concatenated.

        Example:
            >>> import numpy as np
            >>> import ember
            >>> from ember import nn
            >>> t = ember.Trainer(nn.Linear(3, 2), "mse", "sgd")
            >>> t.predict(np.zeros((5, 3), "float32"), batch_size=2).shape
            (5, 2)
        """
        _check_positive_int("Trainer.predict", "steps", steps, allow_none=True)
        if isinstance(x, DataLoader):
            loader = self._on_mesh("Trainer.predict", x)
        else:
            _check_positive_int("Trainer.predict", "batch_size", batch_size)
            validate_arrays(x, names=["x"], owner="Trainer.predict")
            if self.mesh is not None:
                self._check_mesh("Trainer.predict", batch_size)
            loader = DataLoader(x, batch_size=batch_size, mesh=self.mesh)
        was_training = self.model.training
        self.model.eval()
        fn = self._fn("predict")
        try:
            outs = [fn(self.model, _split_batch(batch)[0]).data
                    for batch in itertools.islice(loader.batches(), steps)]
        finally:
            self.model.train(was_training)
        return Tensor._make(backend.get().xp.concatenate(outs, axis=0), False, None)

def train_one_step(model: Module, loss: Any, lr: float, x: Any, y: Any,
                   weight_decay: float = 0.0) -> float:
    """One plain SGD step on ``(x, y)``: returns the batch loss (before the update) as a float.

    ``p <- p - lr * (grad + weight_decay * p)`` for every parameter; eager, no optimizer state.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> model = nn.Linear(1, 1)
        >>> x, y = ember.ones(4, 1), ember.zeros(4, 1)
        >>> first = ember.train_one_step(model, "mse", 0.1, x, y)
        >>> ember.train_one_step(model, "mse", 0.1, x, y) < first
        True
    """
    loss_fn = _resolve_loss(loss)
    xt = x if isinstance(x, Tensor) else Tensor(x)
    yt = y if isinstance(y, Tensor) else Tensor(y)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    value = loss_fn(model(xt), yt)
    value.backward()
    for p in params:
        if p.grad is None:
            continue
        g = p.grad.data
        if weight_decay:
            g = g + weight_decay * p.data
        p.data = p.data - lr * g
        p.grad = None
    return _to_float(value)
