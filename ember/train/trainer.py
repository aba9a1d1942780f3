"""The Trainer: ``fit`` / ``evaluate`` / ``predict`` for ember Modules, Keras style.

One training step is ordinary ember code: forward, loss, ``loss.backward()``, ``opt.step()``,
``opt.zero_grad()``, then the metric states are updated with pure ember ops. On the JAX backend
the step is compiled with :func:`ember.jit` (``jit=True``, the default there); on NumPy it runs
eagerly. ``steps_per_execution=N`` (or ``"epoch"``) runs ``N`` steps per dispatch on JAX as one
compiled ``scan`` over batches stacked on the device, with the same results as one step at a time.

The short last batch of an epoch is run, as in Keras: a compiled step therefore traces twice in the
first epoch (once per batch shape) and never again; pass a ``DataLoader`` with ``drop_last=True``
for one trace. Non-finite losses are caught inside the step: the parameters, buffers, optimizer
state and metric states of a step whose loss is NaN or inf are replaced by those from before it
(``where(isfinite(loss), new, old)``, so it works compiled), later steps of that execution change
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np  # host-side bookkeeping only (validation split, logs); math goes to the backend

from ember import backend, distributed
from ember import random as _random
from ember.data.loader import DataLoader, validate_arrays
from ember.function import no_grad
from ember.jit import JitFunction, state_slots
from ember.jit import jit as _jit
from ember.nn.losses import Loss, WeightedLoss, get_loss
from ember.nn.module import Module
from ember.optim import optimizers as _optimizers
from ember.optim.optimizer import Optimizer
from ember.tensor import Tensor
from ember.train import callbacks as _callbacks

__all__ = ["Trainer", "History", "train_one_step"]

#: optimizer name -> (class, default learning rate: Keras's defaults)
OPTIMIZERS: dict[str, tuple[type[Optimizer], float]] = {
    "sgd": (_optimizers.SGD, 0.01),
    "momentum": (_optimizers.Momentum, 0.01),
    "adagrad": (_optimizers.AdaGrad, 0.01),
    "rmsprop": (_optimizers.RMSProp, 1e-3),
    "adam": (_optimizers.Adam, 1e-3),
    "adamw": (_optimizers.AdamW, 1e-3),
}

CHECKPOINT_FORMAT = "ember.trainer/1"


# -- History ---------------------------------------------------------------------------------------

class History:
    """What :meth:`Trainer.fit` returns: per-epoch lists of every logged value (Keras's History).

    ``history`` maps each key (``loss``, each metric, ``val_loss``, ``val_<metric>``, ``lr``) to
    one value per epoch in which it was logged (validation keys only in validation epochs);
    ``epoch`` lists the epoch numbers (from 0).

    Example:
        >>> from ember.train import History
        >>> h = History()
        >>> h.append(0, {"loss": 0.5, "lr": 0.1})
        >>> h.history, h.epoch, h["loss"]
        ({'loss': [0.5], 'lr': [0.1]}, [0], [0.5])
    """

    def __init__(self) -> None:
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict[str, Any]) -> None:
        """Record the logs of one epoch."""
        self.epoch.append(int(epoch))
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[Any]:
        return self.history[key]

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (what a checkpoint stores)."""
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        """The History a :meth:`to_dict` described."""
        h = cls()
        h.epoch = [int(e) for e in d.get("epoch", [])]
        h.history = {k: list(v) for k, v in d.get("history", {}).items()}
        return h

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


# -- helpers ---------------------------------------------------------------------------------------

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
        key = optimizer.strip().lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"Trainer: unknown optimizer {optimizer!r}; valid names: "
                             f"{', '.join(OPTIMIZERS)} (or pass an ember.optim optimizer)")
        cls, lr = OPTIMIZERS[key]
        return cls(model.parameters(), lr=lr)  # type: ignore[call-arg]
    raise TypeError(f"Trainer: optimizer must be an ember.optim.Optimizer or a name "
                    f"({', '.join(OPTIMIZERS)}), got {type(optimizer).__name__}")


def _resolve_metric(metric: Any, loss: Any) -> Any:
    """A Metric: objects with init/update/result are used as they are; names go to
    ``ember.train.metrics.get_metric`` (which resolves "accuracy" from the loss)."""
    if all(hasattr(metric, a) for a in ("init", "update", "result", "name")):
        return metric
    from ember.train import metrics as _metrics  # type: ignore[attr-defined]

    return _metrics.get_metric(metric, loss=loss)


def _check_positive_int(owner: str, name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer"
                         f"{' or None' if allow_none else ''}, got {value!r}")


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
    return int(x.shape[0])


def _limited(loader: DataLoader, steps: int | None) -> Iterator[Any]:
    """``steps`` batches from the loader, running on into its next epochs when needed; without
    ``steps``, the rest of the loader's current epoch."""
    taken = 0
    while True:
        for batch in loader:
            yield batch
            taken += 1
            if steps is not None and taken >= steps:
                return
        if steps is None or taken == 0:
            return


def _is_array(a: Any) -> bool:
    return isinstance(a, Tensor) or (hasattr(a, "shape") and hasattr(a, "dtype")) or isinstance(
        a, list)


def _host(a: Any) -> Any:
    if isinstance(a, Tensor):
        return backend.get().to_numpy(a.data) if backend.get().owns(a.data) else np.asarray(a.data)
    return np.asarray(a)


# -- the Trainer -----------------------------------------------------------------------------------

class Trainer:
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
            results equal one step per dispatch. Ignored on NumPy and without ``jit``.
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
        self._train_loader: DataLoader | None = None
        self._split_seed: int | None = None
        self._epoch = 0
        self._callbacks: list[Any] = []
        self._mstate: dict[str, dict[str, Tensor]] = {}
        self._build_functions()

    # -- modes -------------------------------------------------------------------------------------
    @property
    def compiled(self) -> bool:
        """Whether the steps are compiled now (``jit`` on the JAX backend)."""
        on_jax = backend.get().name == "jax"
        return on_jax and (self._jit_arg is None or bool(self._jit_arg))

    def _build_functions(self) -> None:
        loss_fn, metrics, slots = self.loss, self.metrics, self._slots

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
                       mstate: dict[str, Any], alive: Tensor) -> Any:
            xp = backend.get().xp
            if not backend.is_traced(alive.data):  # eager: branch in Python, copy nothing
                before = [b.data for b in model.buffers() if b is not None]
                key = _random.get_state()
                pred = model(x)
                loss = loss_fn(pred, y)
                if not (bool(alive.data) and bool(xp.isfinite(loss.data))):
                    for b, a in zip([b for b in model.buffers() if b is not None], before):
                        b.data = a
                    _random.set_state(key)
                    return loss, mstate, Tensor._make(xp.asarray(False), False, None)
                loss.backward()
                opt.step()
                opt.zero_grad()
                return loss, update_metrics(mstate, pred, y, loss), alive
            # compiled: the same step, then keep the old state where the loss is not finite
            old = slots.get()
            pred = model(x)
            loss = loss_fn(pred, y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            new_m = update_metrics(mstate, pred, y, loss)
            ok = xp.logical_and(alive.data, xp.isfinite(loss.data))
            slots.set(_select(ok, slots.get(), old))
            return loss, _select(ok, new_m, mstate), Tensor._make(ok, False, None)

        def scan_steps(model: Module, opt: Optimizer, xs: Tensor, ys: Any,
                       mstate: dict[str, Any], alive: Tensor) -> Any:
            def wrap(tree: Any) -> Any:
                return {k: {kk: Tensor._make(a, False, None) for kk, a in v.items()}
                        for k, v in tree.items()}

            def unwrap(tree: Any) -> Any:
                return {k: {kk: t.data for kk, t in v.items()} for k, v in tree.items()}

            def body(carry: Any, batch: Any) -> Any:
                state, m, alv = carry
                slots.set(state)
                y = None if ys is None else Tensor._make(batch[1], False, None)
                loss, m2, alv2 = train_step(model, opt, Tensor._make(batch[0], False, None), y,
                                            wrap(m), Tensor._make(alv, False, None))
                return (slots.get(), unwrap(m2), alv2.data), loss.data

            batches = (xs.data,) if ys is None else (xs.data, ys.data)
            final, losses = backend.get().scan(body, (slots.get(), unwrap(mstate), alive.data),
                                               batches)
            slots.set(final[0])
            return Tensor._make(losses, False, None), wrap(final[1]), Tensor._make(final[2], False,
                                                                                 None)

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
        self.scan_function: Any = _jit(scan_steps, mesh=mesh)
        self.test_function: Any = _jit(test_step, mesh=mesh)
        self.predict_function: Any = _jit(predict_step, mesh=mesh)

    def _fn(self, name: str) -> Callable[..., Any]:
        fn: Callable[..., Any] = getattr(self, f"{name}_function")
        if self.compiled or not isinstance(fn, JitFunction):
            return fn
        return self._raw[name]

    def _init_mstate(self, with_loss: bool = True) -> dict[str, dict[str, Tensor]]:
        bk = backend.get()
        zero = Tensor._make(bk.xp.zeros((), dtype=backend.float32), False, None)
        state: dict[str, dict[str, Tensor]] = {}
        if with_loss:
            state["loss"] = {"total": zero, "count": zero}
        for m in self.metrics:
            state[m.name] = dict(m.init())
        return state

    def _materialize_metrics(self, batch: Any) -> bool:
        """Give metrics whose state is made on the first update (``init()`` is ``{}``) their
        state now, from the shapes of a one-sample eval-mode prediction, so that the state of a
        compiled step (and of a scan's carry) keeps one structure. True if any was made."""
        lazy = [m for m in self.metrics if not m.init()]
        if not lazy:
            return False
        x, y = _split_batch(batch)
        was_training, key = self.model.training, _random.get_state()
        self.model.eval()
        try:
            with no_grad():
                pred = self.model(Tensor._make(x.data[:1], False, None))
        finally:
            self.model.train(was_training)
            _random.set_state(key)
        empty_y = None if y is None else Tensor._make(y.data[:0], False, None)
        for m in lazy:
            m.update(m.init(), Tensor._make(pred.data[:0], False, None), empty_y)
        return True

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

    def _lr(self) -> float:
        return _to_float(self.optimizer.param_groups[0]["lr"])

    # -- data --------------------------------------------------------------------------------------
    def _loader(self, owner: str, x: Any, y: Any, batch_size: int, shuffle: bool,
                seed: int | None, names: tuple[str, str] = ("x", "y"),
                shard: bool = False) -> DataLoader:
        """A DataLoader over ``(x, y)`` (or ``x`` itself), on the Trainer's mesh if it has one;
        ``shard``: each process reads its shard (training data in a multi-process run)."""
        if isinstance(x, DataLoader):
            if y is not None:
                raise ValueError(f"{owner}: x is a DataLoader, which yields the targets too; "
                                 f"do not pass y")
            return self._on_mesh(owner, x)
        _check_positive_int(owner, "batch_size", batch_size)
        if isinstance(x, (tuple, list)) and y is None and len(x) == 2 and all(
                _is_array(a) and not isinstance(a, list) for a in x):
            x, y = x
        validate_arrays(x, y, names=list(names), owner=owner)
        data = (x,) if y is None else (x, y)
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

    def _on_mesh(self, owner: str, loader: DataLoader) -> DataLoader:
        """A DataLoader passed in hands out batches on the Trainer's mesh from now on."""
        if self.mesh is not None and loader.mesh is not self.mesh:
            self._check_mesh(owner, loader.batch_size)
            loader.set_mesh(self.mesh)
        return loader

    def _validation_loader(self, validation_data: Any, batch_size: int) -> DataLoader | None:
        if validation_data is None:
            return None
        if isinstance(validation_data, DataLoader):
            return self._on_mesh("Trainer.fit", validation_data)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("Trainer.fit: validation_data must be (x_val, y_val) or a DataLoader, "
                             f"got {type(validation_data).__name__}"
                             + (f" of length {len(validation_data)}"
                                if isinstance(validation_data, (tuple, list)) else ""))
        xv, yv = validation_data
        return self._loader("Trainer.fit", xv, yv, batch_size, False, 0,
                            names=("validation_data x", "validation_data y"))

    # -- fit ---------------------------------------------------------------------------------------
    def fit(self, x: Any, y: Any = None, *, epochs: int = 1, batch_size: int = 32,
            validation_data: Any = None, validation_split: float = 0.0,
            validation_freq: int | Sequence[int] = 1, steps_per_epoch: int | None = None,
            validation_steps: int | None = None, shuffle: bool = True,
            callbacks: Sequence[Any] | None = None, verbose: int = 1,
            resume_from: str | os.PathLike[str] | None = None) -> History:
        """Train for ``epochs`` epochs and return the :class:`History`.

        Args:
            x: inputs (an array, a Tensor) or a ``DataLoader`` that yields ``(x, y)`` batches
                (then ``batch_size``, ``shuffle`` and ``validation_split`` do not apply).
            y: targets, with the same first length as ``x``.
            epochs: the epoch to stop at (counted from 0 of the run, so a resumed run trains
                ``epochs`` minus the epochs already done).
            batch_size: samples per step.
            validation_data: ``(x_val, y_val)`` or a DataLoader, evaluated after the epochs that
                ``validation_freq`` selects; its logs are prefixed ``val_``.
            validation_split: the fraction of ``(x, y)`` held out for validation. Unlike Keras
                (which takes the last samples) the split is shuffled: a permutation drawn from
                ``ember.initial_seed()`` chooses the held-out samples, once per run.
            validation_freq: validate every ``validation_freq`` epochs, or after the epochs
                (1-based, as Keras) listed.
            steps_per_epoch: steps per epoch (the data continues into its next pass when
                needed); default: one pass over the data.
            validation_steps: at most this many validation batches.
            shuffle: a new order every epoch (drawn from the loader's seed and the epoch).
            callbacks: ``ember.callbacks`` objects; ``TerminateOnNaN`` is always added.
            verbose: 0 silent; 1 a progress bar per epoch on a terminal, else one line per
                epoch; 2 one line per epoch.
            resume_from: a checkpoint folder (``save_checkpoint`` / ``ModelCheckpoint``): the
                model, optimizer, random state, data order, callback state and history are
                restored and training continues from the saved epoch. A folder that does not
                exist or is empty starts a fresh run.

        Raises:
            ValueError: for bad inputs (empty data, ``batch_size <= 0``, ``x`` and ``y`` of
                different lengths, NaN or inf in the data), before any training.
        """
        owner = "Trainer.fit"
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

        ckpt = self._read_resume(resume_from)
        split_seed = int(ckpt[1]["split_seed"]) if ckpt else _random.initial_seed()
        loader_seed = int(ckpt[1]["data"]["seed"]) if ckpt else None
        if validation_split:
            if isinstance(x, DataLoader):
                raise ValueError(f"{owner}: validation_split needs arrays; x is a DataLoader "
                                 f"(pass validation_data instead)")
            if validation_data is not None:
                raise ValueError(f"{owner}: pass validation_data or validation_split, not both")
            if isinstance(x, (tuple, list)) and y is None and len(x) == 2:
                x, y = x
            n = validate_arrays(x, y, names=["x", "y"], owner=owner)
            n_train = int(math.ceil(n * (1.0 - validation_split)))
            if n_train == n or n_train == 0:
                raise ValueError(f"{owner}: validation_split={validation_split} of {n} samples "
                                 f"leaves {n_train} for training and {n - n_train} for "
                                 f"validation; both need at least one")
            perm = np.random.default_rng([split_seed, 0x5EED]).permutation(n)
            xh, yh = _host(x), (None if y is None else _host(y))
            validation_data = (xh[perm[n_train:]], None if yh is None else yh[perm[n_train:]])
            x, y = xh[perm[:n_train]], (None if yh is None else yh[perm[:n_train]])
        train_loader = self._loader(owner, x, y, batch_size, shuffle, loader_seed, shard=True)
        val_loader = self._validation_loader(validation_data, batch_size)

        if not distributed.is_main_process():  # only process 0 writes logs and progress
            callbacks = [_callbacks.Callback() if isinstance(cb, _callbacks.CSVLogger) else cb
                         for cb in (callbacks or [])]
            verbose = 0
        cbs = _callbacks.CallbackList(callbacks, trainer=self, verbose=verbose, epochs=epochs)
        self._train_loader, self._split_seed = train_loader, split_seed
        self._callbacks = list(cbs.callbacks)
        initial_epoch = 0
        if ckpt:
            initial_epoch = self._restore(ckpt, train_loader)
        else:
            self.history = History()
        self.stop_training = False
        was_training = self.model.training
        logs: dict[str, Any] = {}
        cbs.on_train_begin(logs)
        if ckpt:
            self._restore_callbacks(ckpt, cbs)
        try:
            for epoch in range(initial_epoch, epochs):
                self._epoch = epoch
                cbs.on_epoch_begin(epoch, {})
                lr = self._lr()
                logs = self._train_epoch(train_loader, steps_per_epoch, cbs, epoch)
                if val_loader is not None and self._validate_now(epoch, validation_freq):
                    val_logs = self._evaluate_loader(val_loader, validation_steps)
                    logs.update({"val_" + k: v for k, v in val_logs.items()})
                logs["lr"] = lr
                cbs.on_epoch_end(epoch, logs)
                self.history.append(epoch, logs)  # last, as Keras: with what callbacks added
                self._epoch = epoch + 1
                for directory in cbs.take_checkpoint_requests():
                    self.save_checkpoint(directory)
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        finally:
            self.model.train(was_training)
        return self.history

    @staticmethod
    def _validate_now(epoch: int, freq: Any) -> bool:
        if isinstance(freq, (int, np.integer)):
            return (epoch + 1) % int(freq) == 0
        return (epoch + 1) in set(int(f) for f in freq)

    def _train_epoch(self, loader: DataLoader, steps: int | None, cbs: Any,
                     epoch: int) -> dict[str, Any]:
        bk = backend.get()
        self.model.train()
        mstate = self._mstate = self._init_mstate(with_loss=False)
        alive = Tensor._make(bk.xp.asarray(True), False, None)
        if steps is None:
            total = len(loader) - loader.position
        else:
            total = steps
        cbs.on_epoch_steps(total)
        sync = cbs.needs_sync_batches
        use_scan = self.compiled and self.steps_per_execution != 1
        chunk_len = total if self.steps_per_execution == "epoch" else int(
            self.steps_per_execution)  # type: ignore[arg-type]
        step_fn, scan_fn = self._fn("train"), self._fn("scan")
        pending: list[tuple[int, Any, int]] = []  # (step, loss, batch size) to report
        step = 0
        stopped = False

        last = [time.perf_counter()]
        totals = [0.0, 0]

        def deliver(force: bool) -> bool:
            """Report the pending batches to ``on_batch_end``; True to stop. Unless a callback
            needs every batch at once (``sync``), losses are read in groups (one transfer each
            64 steps or 0.2 s), so that compiled steps queue up without waiting; the state of a
            step with a non-finite loss was frozen inside the step, so a late stop is exact."""
            if not pending:
                return False
            now = time.perf_counter()
            if not (force or sync or len(pending) >= 64 or now - last[0] > 0.2):
                return False
            last[0] = now
            on_device = [i for i, p in enumerate(pending) if not isinstance(p[1], float)]
            values = [p[1] for p in pending]
            if on_device:  # one transfer for the group (a host-side stack: nothing compiles)
                fetched = bk.to_numpy([pending[i][1] for i in on_device]).tolist()
                for i, v in zip(on_device, fetched):
                    values[i] = float(v)
            batch = list(pending)
            pending.clear()
            for (s, _, n), v in zip(batch, values):
                if math.isfinite(v):  # the epoch's loss: the mean over its finite steps
                    totals[0] += v * n
                    totals[1] += n
                cbs.on_batch_end(s, {"loss": v, "size": n})
                if self.stop_training:
                    return True
            return False

        def run_single(batch: Any) -> bool:
            nonlocal mstate, alive, step
            x, y = _split_batch(batch)
            if sync:
                cbs.on_batch_begin(step, {"size": _batch_size(x)})
            loss, mstate, alive = step_fn(self.model, self.optimizer, x, y, mstate, alive)
            self._mstate = mstate
            pending.append((step, loss.data, _batch_size(x)))
            step += 1
            return deliver(False)

        def run_chunk(chunk: list[Any]) -> bool:
            if len(chunk) < 2:
                return any(run_single(b) for b in chunk)
            xs = Tensor._make(bk.xp.stack([_split_batch(b)[0].data for b in chunk]), False, None)
            ys0 = _split_batch(chunk[0])[1]
            ys = None if ys0 is None else Tensor._make(
                bk.xp.stack([_split_batch(b)[1].data for b in chunk]), False, None)
            return run_stacked(xs, ys)

        def run_stacked(xs: Tensor, ys: Tensor | None) -> bool:
            nonlocal mstate, alive, step
            losses, mstate, alive = scan_fn(self.model, self.optimizer, xs, ys, mstate, alive)
            self._mstate = mstate
            n = int(xs.shape[1])
            for v in bk.to_numpy(losses.data).tolist():
                pending.append((step, float(v), n))
                step += 1
            return deliver(False)

        done = False
        if use_scan and steps is None and loader._arrays is not None:
            # whole chunks straight from the loader's device-resident epoch: no per-batch copies
            sample = tuple(Tensor._make(bk.asarray(a[:1]), False, None) for a in loader._arrays)
            if self._materialize_metrics(sample[0] if len(sample) == 1 else sample):
                mstate = self._mstate = self._init_mstate(with_loss=False)
            remaining = total
            while not stopped and remaining > 0:
                stacked = loader.next_batches(min(chunk_len, remaining))
                if stacked is None:
                    break  # what is left (a short last batch) runs as an ordinary step below
                xs, ys = stacked if isinstance(stacked, tuple) else (stacked, None)
                remaining -= int(xs.shape[0])
                if xs.shape[0] == 1:
                    one = (Tensor._make(xs.data[0], False, None),
                           None if ys is None else Tensor._make(ys.data[0], False, None))
                    stopped = run_single(one if ys is not None else one[0])
                else:
                    stopped = run_stacked(xs, ys)
            # when no step remains the epoch is done: the loader already stands in the next one
            done = remaining == 0
        chunk: list[Any] = []
        batches = _limited(loader, steps) if not (stopped or done) else iter(())
        if self.compiled:
            first = next(batches, None)
            if first is not None:
                if self._materialize_metrics(first):
                    mstate = self._mstate = self._init_mstate(with_loss=False)
                batches = itertools.chain([first], batches)
        for batch in batches:
            if not use_scan:
                if run_single(batch):
                    stopped = True
                    break
                continue
            if chunk and _split_batch(batch)[0].shape != _split_batch(chunk[0])[0].shape:
                if run_chunk(chunk):
                    stopped = True
                    break
                chunk = []
            chunk.append(batch)
            if len(chunk) == chunk_len:
                if run_chunk(chunk):
                    stopped = True
                    break
                chunk = []
        if not stopped and chunk:
            stopped = run_chunk(chunk)
        if not stopped:
            deliver(True)
        return self._results(self._mstate, loss=totals[0] / totals[1] if totals[1] else math.nan)

    # -- evaluate / predict ------------------------------------------------------------------------
    def _evaluate_loader(self, loader: DataLoader, steps: int | None) -> dict[str, Any]:
        was_training = self.model.training
        self.model.eval()
        mstate = self._init_mstate()
        fn = self._fn("test")
        saved = loader.state_dict()
        try:
            loader.load_state_dict({**saved, "epoch": saved["epoch"], "position": 0})
            for i, batch in enumerate(loader):
                if steps is not None and i >= steps:
                    break
                x, y = _split_batch(batch)
                mstate = fn(self.model, x, y, mstate)
        finally:
            loader.load_state_dict(saved)
            self.model.train(was_training)
        return self._results(mstate)

    def evaluate(self, x: Any, y: Any = None, *, batch_size: int = 32, steps: int | None = None,
                 verbose: int = 0) -> dict[str, Any]:
        """The loss and every metric over ``(x, y)`` (or a DataLoader), in eval mode.

        Args:
            x: inputs or a DataLoader of ``(x, y)`` batches.
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
        loader = self._loader("Trainer.evaluate", x, y, batch_size, False, 0)
        logs = self._evaluate_loader(loader, steps)
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
        outs = []
        try:
            for i, batch in enumerate(_limited(loader, None)):
                if steps is not None and i >= steps:
                    break
                outs.append(fn(self.model, _split_batch(batch)[0]).data)
        finally:
            self.model.train(was_training)
        return Tensor._make(backend.get().xp.concatenate(outs, axis=0), False, None)

    # -- checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, directory: str | os.PathLike[str]) -> Path:
        """Write everything a resumed ``fit`` needs into ``directory`` (atomically).

        Arrays (safetensors): the model's ``state_dict``, the optimizer's ``state_dict``,
        ember's random stream and the callbacks' arrays (e.g. EarlyStopping's best weights).
        JSON beside them: the epoch, the model config (when it has one), the optimizer config,
        the data order (loader seed, epoch, position), the validation split seed, the
        callbacks' counters and the history. See ``ember.train.checkpoint`` for the format.
        In a multi-process run only process 0 writes; every process returns once it is written
        (a barrier), so that any of them can read it then. Call it in every process.
        """
        if distributed.process_count() > 1:
            path = Path(directory)
            try:
                if distributed.is_main_process():
                    path = self._write_checkpoint(directory)
            finally:  # reached by every process, also when writing failed
                distributed.barrier("ember.Trainer.save_checkpoint")
            return path
        return self._write_checkpoint(directory)

    def _write_checkpoint(self, directory: str | os.PathLike[str]) -> Path:
        from ember.train.checkpoint import write_checkpoint  # type: ignore[import-not-found]
        bk = backend.get()
        cb_arrays: dict[str, Any] = {}
        cb_json: dict[str, Any] = {}
        for key, cb in self._stateful_callbacks(self._callbacks):
            for name, arr in cb.state_dict().items():
                cb_arrays[f"{key}/{name}"] = arr
            cb_json[key] = cb.state_json()
        arrays = {
            "model": dict(self.model.state_dict()),
            "optimizer": dict(self.optimizer.state_dict()),
            "rng": {"ember": _random.get_state()},
            "callbacks": cb_arrays,
        }
        try:
            model_config: Any = self.model.config()  # type: ignore[operator]
        except Exception:  # not every Module has a config (custom forward code)
            model_config = None
        meta = {
            "format": CHECKPOINT_FORMAT,
            "backend": bk.name,
            "epoch": int(self._epoch),
            "seed": _random.initial_seed(),
            "split_seed": self._split_seed if self._split_seed is not None
            else _random.initial_seed(),
            "model_config": model_config,
            "optimizer": self.optimizer.config(),
            "data": self._train_loader.state_dict() if self._train_loader is not None else None,
            "callbacks": cb_json,
            "history": self.history.to_dict(),
        }
        path: Path = write_checkpoint(directory, arrays, meta)
        return path

    @staticmethod
    def _stateful_callbacks(cbs: Sequence[Any]) -> list[tuple[str, Any]]:
        out = []
        for i, cb in enumerate(cbs):
            if hasattr(cb, "state_dict") and hasattr(cb, "state_json"):
                out.append((f"{i}.{type(cb).__name__}", cb))
        return out

    def _read_resume(self, resume_from: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        if resume_from is None:
            return None
        folder = Path(resume_from)
        from ember.train.checkpoint import (  # type: ignore[import-not-found]
            discard_leftovers,
            read_checkpoint,
        )

        if not folder.exists() or discard_leftovers(folder):  # killed before its first commit
            return None

        arrays, meta = read_checkpoint(folder)
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"Trainer.fit: {folder} holds a checkpoint of format "
                             f"{meta.get('format')!r}, not a Trainer checkpoint "
                             f"({CHECKPOINT_FORMAT!r}); write one with Trainer.save_checkpoint "
                             f"or ModelCheckpoint")
        if meta.get("backend") != backend.get().name:
            raise ValueError(f"Trainer.fit: the checkpoint in {folder} was written on the "
                             f"{meta.get('backend')!r} backend but the active one is "
                             f"{backend.get().name!r}; resume on the same backend "
                             f"(ember.set_backend({meta.get('backend')!r}))")
        return arrays, meta

    def _restore(self, ckpt: tuple[dict[str, Any], dict[str, Any]], loader: DataLoader) -> int:
        arrays, meta = ckpt
        bk = backend.get()
        self.model.load_state_dict(arrays["model"])
        self.optimizer.load_state_dict(arrays["optimizer"])
        _random.set_state(bk.asarray(arrays["rng"]["ember"]))
        if meta.get("data") is not None:
            loader.load_state_dict(meta["data"])
        self.history = History.from_dict(meta.get("history", {}))
        self._epoch = int(meta["epoch"])
        return self._epoch

    def _restore_callbacks(self, ckpt: tuple[dict[str, Any], dict[str, Any]], cbs: Any) -> None:
        arrays, meta = ckpt
        saved_json = meta.get("callbacks", {})
        groups: dict[str, dict[str, Any]] = {}
        for name, arr in arrays.get("callbacks", {}).items():
            key, _, inner = name.partition("/")
            groups.setdefault(key, {})[inner] = arr
        for key, cb in self._stateful_callbacks(cbs.callbacks):
            if key in saved_json:
                cb.load_state_json(saved_json[key])
                cb.load_state_dict(groups.get(key, {}))


# -- the seeds' one-liner --------------------------------------------------------------------------

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
