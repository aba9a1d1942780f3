"""Training callbacks, with Keras's names and hook points.

A callback subclasses :class:`Callback` and overrides any of ``on_train_begin(logs)``,
``on_epoch_begin(epoch, logs)``, ``on_batch_begin(batch, logs)``, ``on_batch_end(batch, logs)``,
``on_epoch_end(epoch, logs)`` and ``on_train_end(logs)``. The Trainer calls them in that order
(epochs and batches counted from 0); ``self.trainer`` and ``self.model`` are set before the first
hook, and setting ``self.trainer.stop_training = True`` ends training after the current batch or
epoch. Batch logs hold ``loss`` (this batch's loss, not a running mean) and ``size``; epoch logs
hold ``loss``, each metric, ``val_*`` in validation epochs and ``lr``.

Callbacks with state that a resumed run needs (EarlyStopping's counters and best weights,
ModelCheckpoint's best value) expose ``state_dict()`` / ``load_state_dict()`` (arrays) and
``state_json()`` / ``load_state_json()`` (numbers); ``Trainer.save_checkpoint`` stores both.

Example:
    >>> import numpy as np
    >>> import ember
    >>> from ember import nn
    >>> seen = []
    >>> log = ember.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))
    >>> t = ember.Trainer(nn.Linear(2, 1), "mse", "sgd")
    >>> _ = t.fit(np.ones((4, 2), "float32"), np.ones((4, 1), "float32"), epochs=2,
    ...           callbacks=[log], verbose=0)
    >>> seen
    [0, 1]
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np  # host-side numbers only

from ember import backend
from ember.nn.monitor import Monitor
from ember.optim.lr import check_lr
from ember.train.boundaries import DecisionBoundaryRecorder, DecisionFrame
from ember.train.callback import REGISTRY, Callback

__all__ = [
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "ModelCheckpoint",
    "LearningRateScheduler",
    "TerminateOnNaN",
    "CSVLogger",
    "LambdaCallback",
    "ProgbarLogger",
    "MonitorCallback",
    "ReduceLROnPlateau",
    "TensorBoard",
    "JSONLinesLogger",
    "DecisionBoundaryRecorder",
    "DecisionFrame",
    "REGISTRY",
    "get",
    "from_config",
    "format_logs",
]


def format_logs(logs: dict[str, Any]) -> list[str]:
    """``["loss: 0.1234", ...]`` for the scalar entries of ``logs`` (``lr`` in ``%g``, ``step``
    as an integer).

    Example:
        >>> from ember.callbacks import format_logs
        >>> format_logs({"loss": 0.123456, "lr": 0.001, "size": 32})
        ['loss: 0.1235', 'lr: 0.001']
    """
    out = []
    for key, value in logs.items():
        if key == "size" or not isinstance(value, (int, float)):
            continue
        if key == "step":  # training by steps: the step count, as a count
            out.append(f"step: {int(value)}")
            continue
        out.append(f"{key}: {value:.4g}" if key == "lr" else f"{key}: {value:.4f}")
    return out


class CallbackList:
    """The callbacks of one ``fit``: the user's, then TerminateOnNaN (unless given) and the
    progress logger. Used by the Trainer; calls each hook on each callback in order.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> trainer = ember.Trainer(nn.Linear(2, 1), "mse", "sgd")
        >>> hooks = ember.callbacks.CallbackList([], trainer, verbose=2)
        >>> [type(cb).__name__ for cb in hooks.callbacks]
        ['TerminateOnNaN', 'ProgbarLogger']
    """

    def __init__(self, callbacks: Sequence[Callback] | None, trainer: Any, verbose: int = 0,
                 epochs: int = 1) -> None:
        given = [MonitorCallback(cb) if isinstance(cb, Monitor) else cb
                 for cb in (callbacks or [])]
        for cb in given:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer.fit: callbacks must be ember.callbacks.Callback "
                                f"objects, got {type(cb).__name__}")
        self.callbacks: list[Callback] = list(given)
        if not any(isinstance(cb, TerminateOnNaN) for cb in given):
            self.callbacks.append(TerminateOnNaN())
        if verbose:
            self.callbacks.append(ProgbarLogger(verbose, epochs))
        self.trainer = trainer
        trainer._checkpoint_requests = []
        for cb in self.callbacks:
            cb.set_trainer(trainer)
        self.needs_sync_batches = any(cb._wants_batches() for cb in self.callbacks)
        self.needs_gradients = any(getattr(cb, "needs_gradients", False) for cb in self.callbacks)

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_epoch_steps(self, steps: int) -> None:
        for cb in self.callbacks:
            if isinstance(cb, ProgbarLogger):
                cb.steps = steps

    def on_batch_begin(self, batch: int, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_batch_begin(batch, logs)

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_batch_end(batch, logs)

    def take_checkpoint_requests(self) -> list[Any]:
        """The folders ModelCheckpoints asked for this epoch (saved after every on_epoch_end,
        so that each callback's state is that of the finished epoch)."""
        requests = list(self.trainer._checkpoint_requests)
        self.trainer._checkpoint_requests = []
        return requests


class MonitorCallback(Callback):
    """An :class:`ember.nn.Monitor` in ``fit``: it records after every step, with that step's
    gradients (``fit(callbacks=[nn.Monitor(model)])`` wraps the monitor in this itself). With
    ``steps_per_execution > 1`` a stacked execution keeps no per-step gradient: those steps
    record NaN norms.

    Example:
        >>> import numpy as np
        >>> import ember
        >>> from ember import nn
        >>> model = nn.Linear(2, 1)
        >>> monitor = nn.Monitor(model)
        >>> x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
        >>> _ = ember.Trainer(model, "mse", "sgd").fit(x, y, batch_size=4, callbacks=[monitor],
        ...                                            verbose=0)
        >>> monitor.steps, monitor.history()["weight/grad_norm"].shape
        (2, (2,))
    """

    needs_gradients = True

    def __init__(self, monitor: Monitor) -> None:
        super().__init__()
        self.monitor = monitor

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.monitor.step()

    def _wants_batches(self) -> bool:
        return True


def _mode(monitor: str, mode: str, owner: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_")
    maxed = ("acc", "accuracy", "auc", "precision", "recall", "f1", "top")
    return "max" if any(name.startswith(m) or name.endswith(m) for m in maxed) else "min"


def _snapshot(model: Any) -> dict[str, Any]:
    """The model's state arrays, kept aside. NumPy arrays are shared (ember never writes into an
    array); JAX arrays are copied, since a compiled step donates the old buffers to XLA."""
    state = dict(model.state_dict())
    bk = backend.get()
    if bk.name == "numpy":
        return state
    return {k: bk.xp.array(v, copy=True) for k, v in state.items()}


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


class EarlyStopping(Callback, name="early_stopping"):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras's EarlyStopping).

    Args:
        monitor: the epoch log to watch (``"val_loss"``, ``"loss"``, ``"val_accuracy"``, ...).
        patience: epochs without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for accuracy-like names, else min).
        restore_best_weights: when stopping, load the weights (and buffers) of the best epoch.
        baseline: a value to beat; the patience counter only resets when it is beaten.
        start_from_epoch: epochs to wait before watching.

    Example:
        >>> from ember.callbacks import EarlyStopping
        >>> EarlyStopping(monitor="val_accuracy").mode
        'max'
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False,
                 baseline: float | None = None, start_from_epoch: int = 0,
                 verbose: int = 0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative integer, got "
                             f"{patience!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = abs(float(min_delta))
        self.mode = _mode(monitor, mode, "EarlyStopping")
        self.restore_best_weights = bool(restore_best_weights)
        self.baseline = baseline
        self.start_from_epoch = int(start_from_epoch)
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.best_weights: dict[str, Any] | None = None

    def _improved(self, current: float, reference: float) -> bool:
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping: {self.monitor!r} is not in the epoch logs (they have "
                          f"{sorted(logs or {})}); nothing to watch this epoch", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = _snapshot(self.model)
        self.wait += 1
        if self._improved(float(current), self.best):
            self.best, self.best_epoch = float(current), epoch
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.model)
            if self.baseline is None or self._improved(float(current), float(self.baseline)):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"EarlyStopping: stopped after epoch {epoch + 1}; the best {self.monitor} "
                      f"was {self.best:.4f} at epoch {self.best_epoch + 1}", file=sys.stdout)

    def config(self) -> dict[str, Any]:
        """Its constructor arguments under ``name = "early_stopping"``."""
        return {"name": "early_stopping", "monitor": self.monitor, "patience": self.patience,
                "min_delta": self.min_delta, "mode": self.mode,
                "restore_best_weights": self.restore_best_weights, "baseline": self.baseline,
                "start_from_epoch": self.start_from_epoch, "verbose": self.verbose}

    # -- checkpoint state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The best weights (when kept), for a checkpoint."""
        return {f"best_weights.{k}": v for k, v in (self.best_weights or {}).items()}

    def load_state_dict(self, arrays: dict[str, Any]) -> None:
        bk = backend.get()
        weights = {k.removeprefix("best_weights."): bk.asarray(v) for k, v in arrays.items()
                   if k.startswith("best_weights.")}
        self.best_weights = weights or None

    def state_json(self) -> dict[str, Any]:
        """The counters, for a checkpoint."""
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch,
                "best": _finite_or_none(self.best), "best_epoch": self.best_epoch}

    def load_state_json(self, state: dict[str, Any]) -> None:
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        best = state["best"]
        self.best = (math.inf if self.mode == "min" else -math.inf) if best is None else best
        self.best_epoch = int(state["best_epoch"])


class ModelCheckpoint(Callback, name="model_checkpoint"):
    """Save a Trainer checkpoint into ``dirpath`` after each epoch (or each better one).

    The checkpoint (``Trainer.save_checkpoint``) holds everything ``fit(resume_from=dirpath)``
    needs to continue exactly; it is written atomically after every callback's ``on_epoch_end``
    ran, so each callback's saved state is that of the finished epoch.

    Args:
        dirpath: the checkpoint folder.
        monitor: the epoch log that decides "better" with ``save_best_only``.
        save_best_only: save only when ``monitor`` improved.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (as EarlyStopping).

    Example:
        >>> from ember.callbacks import ModelCheckpoint
        >>> ModelCheckpoint("ckpt", monitor="loss", save_best_only=True).mode
        'min'
    """

    def __init__(self, dirpath: str | os.PathLike[str], monitor: str = "val_loss",
                 save_best_only: bool = False, mode: str = "auto", verbose: int = 0) -> None:
        self.dirpath = os.fspath(dirpath)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.mode = _mode(monitor, mode, "ModelCheckpoint")
        self.verbose = verbose
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.save_best_only:
            current = (logs or {}).get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint: {self.monitor!r} is not in the epoch logs "
                              f"(they have {sorted(logs or {})}); not saving", stacklevel=2)
                return
            better = current < self.best if self.mode == "min" else current > self.best
            if not better:
                return
            self.best = float(current)
        self.trainer._checkpoint_requests.append(self.dirpath)
        if self.verbose:
            print(f"ModelCheckpoint: epoch {epoch + 1} saved to {self.dirpath}", file=sys.stdout)

    def config(self) -> dict[str, Any]:
        """Its constructor arguments under ``name = "model_checkpoint"``."""
        return {"name": "model_checkpoint", "dirpath": self.dirpath, "monitor": self.monitor,
                "save_best_only": self.save_best_only, "mode": self.mode,
                "verbose": self.verbose}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, arrays: dict[str, Any]) -> None:
        pass

    def state_json(self) -> dict[str, Any]:
        return {"best": _finite_or_none(self.best)}

    def load_state_json(self, state: dict[str, Any]) -> None:
        best = state["best"]
        self.best = (math.inf if self.mode == "min" else -math.inf) if best is None else best


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch from ``schedule(epoch)`` or
    ``schedule(epoch, lr)`` (Keras's two-argument form gets the current rate).

    Example:
        >>> from ember.callbacks import LearningRateScheduler
        >>> cb = LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch)
        >>> cb.schedule(2)
        0.025
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a callable epoch -> lr, "
                            f"got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose
        try:
            params = inspect.signature(schedule).parameters.values()
            kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                     inspect.Parameter.VAR_POSITIONAL)
            positional = [p for p in params if p.kind in kinds]
            self._two_args = len(positional) >= 2
        except (TypeError, ValueError):
            self._two_args = False

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        opt = self.trainer.optimizer
        if self._two_args:
            current = float(backend.get().to_numpy(opt.param_groups[0]["lr"]))
            lr = self.schedule(epoch, current)
        else:
            lr = self.schedule(epoch)
        lr = float(lr)
        check_lr(lr, "LearningRateScheduler: the schedule gave lr", need="a positive finite number",
                 message="{what}={got} for epoch " f"{epoch}" "; it must return {need}")
        opt.set_lr(lr)
        if self.verbose:
            print(f"LearningRateScheduler: epoch {epoch + 1}, lr {lr:g}", file=sys.stdout)


class TerminateOnNaN(Callback):
    """Stop training when a batch loss is NaN or inf (the Trainer always adds one).

    The step that produced the loss changed nothing (the Trainer keeps the state from before
    it), so the model keeps the last finite weights; the interrupted epoch is not recorded as
    finished (a resume runs it on from the bad step). A RuntimeWarning names the epoch, the step
    (both from 0) and the likely causes (bad labels or inputs, a learning rate too high);
    ``stopped_at`` holds them.

    Example:
        >>> from ember.callbacks import TerminateOnNaN
        >>> TerminateOnNaN().stopped_at is None
        True
    """

    def __init__(self) -> None:
        self.stopped_at: tuple[int, int] | None = None
        self.message = ""

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.stopped_at = None

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(loss):
            return
        epoch = int(getattr(self.trainer, "_epoch", 0))
        self.stopped_at = (epoch, batch)
        self.message = (f"TerminateOnNaN: the loss is {loss} at epoch {epoch}, step {batch} "
                        f"(counted from 0); training stopped with the weights from before that "
                        f"step, and epoch {epoch} is not recorded as finished (a checkpoint "
                        f"saved now resumes at that step). Causes: bad data (a label outside "
                        f"the loss's classes, NaN or inf inputs or targets, targets the loss "
                        f"does not accept) or a learning rate too high; check the batch, then "
                        f"lower the learning rate")
        self.trainer.stop_training = True
        warnings.warn(self.message, RuntimeWarning, stacklevel=2)

    def _wants_batches(self) -> bool:
        return False  # a lagged report is exact: the Trainer freezes the state at the bad step


class CSVLogger(Callback, name="csv_logger"):
    """Write one CSV row per epoch (``epoch`` then the log keys) to ``filename``.

    Args:
        filename: the CSV file (its folder is created if missing).
        separator: the column separator.
        append: append to an existing file (for resumed runs) instead of overwriting it.

    Example:
        >>> from ember.callbacks import CSVLogger
        >>> CSVLogger("log.csv").separator
        ','
    """

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",",
                 append: bool = False) -> None:
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self._file: Any = None
        self._writer: Any = None
        self._keys: list[str] | None = None

    def config(self) -> dict[str, Any]:
        """Its constructor arguments under ``name = "csv_logger"``."""
        return {"name": "csv_logger", "filename": self.filename, "separator": self.separator,
                "append": self.append}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        has_rows = self.append and os.path.exists(self.filename) and os.path.getsize(
            self.filename) > 0
        self._keys = None
        if has_rows:
            with open(self.filename, newline="") as f:
                header = next(csv.reader(f, delimiter=self.separator), None)
            self._keys = header[1:] if header else None
        os.makedirs(os.path.dirname(self.filename) or ".", exist_ok=True)
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._file, delimiter=self.separator, lineterminator="\n")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self._keys is None:
            self._keys = list(logs)
            self._writer.writerow(["epoch", *self._keys])
        self._writer.writerow([epoch, *(logs.get(k, "") for k in self._keys)])
        self._file.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Each argument takes the arguments of the hook of the same name.

    Example:
        >>> from ember.callbacks import LambdaCallback
        >>> cb = LambdaCallback(on_train_begin=lambda logs: print("start"))
        >>> cb.on_train_begin({})
        start
    """

    def __init__(self, on_train_begin: Callable[..., Any] | None = None,
                 on_train_end: Callable[..., Any] | None = None,
                 on_epoch_begin: Callable[..., Any] | None = None,
                 on_epoch_end: Callable[..., Any] | None = None,
                 on_batch_begin: Callable[..., Any] | None = None,
                 on_batch_end: Callable[..., Any] | None = None) -> None:
        self._hooks = {"on_train_begin": on_train_begin, "on_train_end": on_train_end,
                       "on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                       "on_batch_begin": on_batch_begin, "on_batch_end": on_batch_end}

    def _call(self, name: str, *args: Any) -> None:
        fn = self._hooks[name]
        if fn is not None:
            fn(*args)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._call("on_train_begin", logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._call("on_batch_begin", batch, logs)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._call("on_batch_end", batch, logs)

    def _wants_batches(self) -> bool:
        return self._hooks["on_batch_begin"] is not None or self._hooks["on_batch_end"] is not None


class ProgbarLogger(Callback):
    """Progress output (added by the Trainer for ``verbose`` 1 and 2).

    ``verbose=1`` on a terminal: a tqdm bar per epoch (its total known from the first epoch) with
    the running loss and metrics, then the epoch's logs as one line, in the same ``name: value``
    format, so that validation numbers stay visible on an 80-column terminal. Otherwise
    (``verbose=2``, or output that is not a terminal: a log file, CI):
    one plain line per epoch, no carriage returns or backspaces.

    Example:
        >>> import io
        >>> from ember.callbacks import ProgbarLogger
        >>> out = io.StringIO()
        >>> bar = ProgbarLogger(verbose=2, epochs=3, stream=out)
        >>> bar.on_epoch_begin(0); bar.on_epoch_end(0, {"loss": 0.25})
        >>> print(out.getvalue().strip())  # doctest: +ELLIPSIS
        Epoch 1/3 - ...s - loss: 0.2500
    """

    def __init__(self, verbose: int = 1, epochs: int = 1, stream: Any = None) -> None:
        self.verbose = verbose
        self.epochs = epochs
        self.stream = stream
        self.steps: int | None = None
        self._bar: Any = None
        self._start = 0.0
        self._seen = 0
        self._total = 0.0
        self._shown = 0.0

    def _out(self) -> Any:
        return self.stream if self.stream is not None else sys.stdout

    def _use_bar(self) -> bool:
        out = self._out()
        return self.verbose == 1 and bool(getattr(out, "isatty", lambda: False)())

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()
        self._seen, self._total, self._shown = 0, 0.0, 0.0
        self._bar = None
        if self._use_bar():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.steps, desc=f"Epoch {epoch + 1}/{self.epochs}",
                             file=self._out(), leave=True, dynamic_ncols=True, unit="step")

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._bar is None:
            return
        logs = logs or {}
        size = int(logs.get("size", 1))
        self._seen += size
        self._total += float(logs.get("loss", 0.0)) * size
        self._bar.update(1)
        now = time.perf_counter()
        if now - self._shown > 0.2:  # tqdm redraws at most this often anyway
            self._shown = now
            running = getattr(self.trainer, "_running_logs", None)
            logs = running() if running is not None else {}
            logs = {**logs, "loss": self._total / max(self._seen, 1)}
            self._bar.set_postfix_str(" - ".join(format_logs(
                {k: v for k, v in logs.items() if isinstance(v, float)})), refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        parts = format_logs(logs or {})
        seconds = time.perf_counter() - self._start
        if self._bar is not None:  # the bar stays as it is; the summary, as Keras, on its own
            self._bar.close()  # line, which a narrow terminal wraps instead of cutting off
            self._bar = None
        steps = "" if self.steps is None else f" - {self.steps} steps"
        print(f"Epoch {epoch + 1}/{self.epochs}{steps} - {seconds:.2f}s - " + " - ".join(parts),
              file=self._out(), flush=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _wants_batches(self) -> bool:
        return False

def _lr_of(opt: Any, gi: int) -> float:
    return float(backend.get().to_numpy(opt.param_groups[gi]["lr"]))


class ReduceLROnPlateau(Callback, name="reduce_lr_on_plateau"):
    """Multiply the learning rate by ``factor`` when ``monitor`` has stopped improving for
    ``patience`` epochs (Keras's ReduceLROnPlateau, the same rules).

    After each epoch: in cooldown, the cooldown counter counts down and the wait is reset; an
    improvement (by more than ``min_delta``) resets the wait; otherwise, out of cooldown, the wait
    grows, and when it reaches ``patience`` every group's rate above ``min_lr`` becomes
    ``max(lr * factor, min_lr)``, the wait resets and a cooldown of ``cooldown`` epochs starts.
    The new rate applies from the next epoch (History's ``lr`` is the rate each epoch ran with).

    Args:
        monitor: the epoch log to watch.
        factor: the multiplier, in (0, 1).
        patience: epochs without improvement before the rate drops.
        min_lr: the lowest rate.
        cooldown: epochs after a drop during which nothing is counted.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names).
        min_delta: the smallest change that counts as an improvement.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> from ember.callbacks import ReduceLROnPlateau
        >>> t = ember.Trainer(nn.Linear(1, 1), "mse", ember.optim.SGD(nn.Linear(1, 1).parameters(),
        ...                   lr=0.5))
        >>> cb = ReduceLROnPlateau("loss", factor=0.5, patience=1)
        >>> cb.set_trainer(t); cb.on_train_begin()
        >>> for epoch, loss in enumerate([1.0, 1.0, 1.0]):
        ...     cb.on_epoch_end(epoch, {"loss": loss})
        >>> float(t.optimizer.param_groups[0]["lr"])
        0.125
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_lr: float = 0.0, cooldown: int = 0, mode: str = "auto",
                 min_delta: float = 1e-4, verbose: int = 0) -> None:
        if not isinstance(factor, (int, float)) or not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1) (the rate is "
                             f"multiplied by it), got {factor!r}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"ReduceLROnPlateau: {name} must be a non-negative integer, "
                                 f"got {value!r}")
        check_lr(min_lr, "ReduceLROnPlateau: min_lr", allow_zero=True, need="a number >= 0")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = patience
        self.min_lr = float(min_lr)
        self.cooldown = cooldown
        self.mode = _mode(monitor, mode, "ReduceLROnPlateau")
        self.min_delta = abs(float(min_delta))
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.cooldown_counter = 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def _improved(self, current: float) -> bool:
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._reset()
        for gi, group in enumerate(self.trainer.optimizer.param_groups):
            if group.get("lr") is None or group.get("schedule") is not None:
                what = "a schedule" if group.get("lr") is not None else "no lr (an optax one)"
                raise ValueError(f"ReduceLROnPlateau: the optimizer's group {gi} has {what}; "
                                 f"it needs an optimizer whose lr it can set (drop the schedule "
                                 f"or the callback)")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau: {self.monitor!r} is not in the epoch logs (they "
                          f"have {sorted(logs or {})}); nothing to watch this epoch",
                          stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(float(current)):
            self.best, self.wait = float(current), 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                self._reduce(epoch)

    def _reduce(self, epoch: int) -> None:
        opt = self.trainer.optimizer
        floor = float(np.float32(self.min_lr))  # the rate is stored in float32
        for gi in range(len(opt.param_groups)):
            old = _lr_of(opt, gi)
            if old > floor:
                new = max(old * self.factor, self.min_lr)
                opt.set_lr(new, group=gi)
                if self.verbose:
                    print(f"ReduceLROnPlateau: epoch {epoch + 1}, group {gi} lr {old:g} -> "
                          f"{new:g}", file=sys.stdout)
                self.cooldown_counter, self.wait = self.cooldown, 0

    def config(self) -> dict[str, Any]:
        """Its constructor arguments under ``name = "reduce_lr_on_plateau"``."""
        return {"name": "reduce_lr_on_plateau", "monitor": self.monitor, "factor": self.factor,
                "patience": self.patience, "min_lr": self.min_lr, "cooldown": self.cooldown,
                "mode": self.mode, "min_delta": self.min_delta, "verbose": self.verbose}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, arrays: dict[str, Any]) -> None:
        pass

    def state_json(self) -> dict[str, Any]:
        """The counters, for a checkpoint (the rate itself is the optimizer's)."""
        return {"wait": self.wait, "cooldown_counter": self.cooldown_counter,
                "best": _finite_or_none(self.best)}

    def load_state_json(self, state: dict[str, Any]) -> None:
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])
        best = state["best"]
        self.best = (math.inf if self.mode == "min" else -math.inf) if best is None else best


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN / inf
    return value


class JSONLinesLogger(Callback, name="json_lines"):
    """Write one JSON object per epoch to ``filename`` (JSON lines): ``{"epoch": e, "time": s,
    <every log>}``, where ``time`` is the epoch's seconds; NaN and inf are written as null.

    Example:
        >>> import json, os, tempfile
        >>> from ember.callbacks import JSONLinesLogger
        >>> path = os.path.join(tempfile.mkdtemp(), "log.jsonl")
        >>> log = JSONLinesLogger(path)
        >>> log.on_train_begin(); log.on_epoch_begin(0); log.on_epoch_end(0, {"loss": 0.5})
        >>> log.on_train_end()
        >>> row = json.loads(open(path).readline()); row["epoch"], row["loss"]
        (0, 0.5)
    """

    def __init__(self, filename: str | os.PathLike[str], append: bool = False) -> None:
        self.filename = os.fspath(filename)
        self.append = bool(append)
        self._file: Any = None
        self._start = 0.0

    def config(self) -> dict[str, Any]:
        """Its constructor arguments under ``name = "json_lines"``."""
        return {"name": "json_lines", "filename": self.filename, "append": self.append}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        os.makedirs(os.path.dirname(self.filename) or ".", exist_ok=True)
        self._file = open(self.filename, "a" if self.append else "w")  # noqa: SIM115

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {"epoch": int(epoch), "time": round(time.perf_counter() - self._start, 6)}
        row.update({k: _json_value(v) for k, v in (logs or {}).items()})
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _GraphRecorder:
    """The layers of a model and the tensors between them, seen in its first forward pass that
    records gradients: forward hooks on the layers (modules without children) note which layer
    made each output, and each layer's inputs are traced back through the autograd graph (the
    ops of a custom ``forward``, e.g. a residual sum) to the layers or the model input that
    made them."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.nodes: dict[str, tuple[str, list[tuple[int, ...]]]] = {}  # name -> (type, shapes)
        self.edges: dict[str, list[str]] = {}
        self.made: dict[int, tuple[str, Any]] = {}  # id(tensor) -> (layer, the tensor: alive)
        self.inputs: dict[int, Any] = {}
        self.done = False
        root = type(model).__name__
        self.handles = []
        for name, m in model.named_modules():
            leaf = not any(True for _ in m.children())
            if name == "" or leaf:
                scope = root + ("/" + name.replace(".", "/") if name else "")
                self.handles.append(m.register_forward_hook(self._hook(scope, name == "", leaf)))

    def _sources(self, t: Any, seen: set[int]) -> set[str]:
        if id(t) in self.made:
            return {self.made[id(t)][0]}
        if id(t) in self.inputs:
            return {"input"}
        if id(t) in seen:
            return set()
        seen.add(id(t))
        if t._ctx is None:
            # no op made it: the model input (the first such tensor the first layer reads) or
            # a parameter or constant (no edge)
            if not self.made and not self.inputs and not t.requires_grad:
                self.inputs[id(t)] = t
                return {"input"}
            return set()
        out: set[str] = set()
        for x in t._ctx.inputs:
            if hasattr(x, "_ctx"):
                out |= self._sources(x, seen)
        return out

    def _hook(self, scope: str, is_root: bool, is_leaf: bool) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            if self.done:
                return
            outs = [o for o in (output if isinstance(output, (tuple, list)) else (output,))
                    if hasattr(o, "_ctx")]
            if is_leaf:
                sources: list[str] = self.edges.setdefault(scope, [])
                for a in args:
                    for x in (a if isinstance(a, (tuple, list)) else (a,)):
                        if hasattr(x, "_ctx"):
                            sources += sorted(self._sources(x, set()) - set(sources) - {scope})
                self.nodes[scope] = (type(module).__name__, [tuple(o.shape) for o in outs])
                for o in outs:
                    self.made[id(o)] = (scope, o)
            if is_root:  # the pass counts when it recorded gradients (a training step)
                self.done = any(o._ctx is not None for o in outs)
                if not self.done:
                    self.nodes.clear()
                    self.edges.clear()
                    self.made.clear()
                    self.inputs.clear()
                else:
                    self.made.clear()  # the tensors may go

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def graph_def(self) -> Any:
        """The layers as a TensorBoard GraphDef (tensorboardX's protobuf classes), or None when
        no training forward pass was seen."""
        from tensorboardX.proto.attr_value_pb2 import AttrValue
        from tensorboardX.proto.graph_pb2 import GraphDef
        from tensorboardX.proto.node_def_pb2 import NodeDef
        from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
        from tensorboardX.proto.versions_pb2 import VersionDef

        if not self.done or not self.nodes:
            return None

        def shapes(items: list[tuple[int, ...]]) -> Any:
            return AttrValue(list=AttrValue.ListValue(shape=[TensorShapeProto(
                dim=[TensorShapeProto.Dim(size=int(n)) for n in shape]) for shape in items]))

        nodes = [NodeDef(name="input", op="Input", attr={"_output_shapes": shapes(
            [tuple(t.shape) for t in self.inputs.values()])})] if self.inputs else []
        for name, (kind, out_shapes) in self.nodes.items():
            nodes.append(NodeDef(name=name, op=kind, input=self.edges.get(name, []),
                                 attr={"_output_shapes": shapes(out_shapes)}))
        return GraphDef(node=nodes, versions=VersionDef(producer=22))


class TensorBoard(Callback, name="tensorboard"):
    """TensorBoard logs in ``log_dir`` through ``tensorboardX`` (``pip install
    "ember[tensorboard]"``): after every epoch a scalar per number in the epoch logs (``loss``,
    metrics, ``val_*``, ``lr``) at step ``epoch``, and every ``histogram_freq`` epochs a histogram
    of each parameter (``weights/<name>``) and of its gradient from the epoch's last step
    (``gradients/<name>``; the steps then keep their gradients, and a ``steps_per_execution > 1``
    scan keeps none). View with ``tensorboard --logdir log_dir``.

    ``write_graph`` adds the model graph (TensorBoard's Graphs tab) after the first epoch: ember's
    layers (modules without children, grouped by their module path) with the tensors between
    them, seen through forward hooks in the first training step and traced back through the
    autograd graph; the ops inside a layer are not shown. It is written when the first step runs
    the model's Python code (eagerly, or when ``ember.jit`` traces it), and left out otherwise.

    Args:
        log_dir: the folder of the event files.
        histogram_freq: epochs between histograms; 0 writes none.
        write_grads: histograms of the gradients too.
        write_graph: the model graph, as above.

    Example:
        >>> from ember.callbacks import TensorBoard
        >>> TensorBoard("runs/tb", histogram_freq=0).config()["histogram_freq"]
        0
    """

    def __init__(self, log_dir: str | os.PathLike[str] = "logs", histogram_freq: int = 1,
                 write_grads: bool = True, write_graph: bool = True) -> None:
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) or (
                histogram_freq < 0):
            raise ValueError(f"TensorBoard: histogram_freq must be a non-negative integer (0: no "
                             f"histograms), got {histogram_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_grads = bool(write_grads)
        self.write_graph = bool(write_graph)
        self.needs_gradients = histogram_freq > 0 and self.write_grads
        self.writer: Any = None
        self._graph: _GraphRecorder | None = None

    def config(self) -> dict[str, Any]:
        """Its constructor arguments under ``name = "tensorboard"``."""
        return {"name": "tensorboard", "log_dir": self.log_dir,
                "histogram_freq": self.histogram_freq, "write_grads": self.write_grads,
                "write_graph": self.write_graph}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ImportError("TensorBoard needs the tensorboardX package: pip install "
                              "\"ember[tensorboard]\"") from None
        self.writer = SummaryWriter(logdir=self.log_dir)
        if self.write_graph:
            self._graph = _GraphRecorder(self.model)

    def _write_graph(self) -> None:
        if self._graph is not None:
            self._graph.remove()
            graph = self._graph.graph_def()
            if graph is not None:
                self.writer._get_file_writer().add_onnx_graph(graph)  # any GraphDef
            self._graph = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._write_graph()
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, float(value), epoch)
        if self.histogram_freq and (epoch + 1) % self.histogram_freq == 0:
            to_numpy = backend.get().to_numpy
            for name, p in self.model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", to_numpy(p.data), epoch)
                if self.write_grads and p.grad is not None:
                    self.writer.add_histogram(f"gradients/{name}", to_numpy(p.grad.data), epoch)
        self.writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._graph is not None:
            self._graph.remove()
            self._graph = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


#: config name -> callback class: what a ``[callbacks]`` table of a TOML config can name
def get(name: str, **kwargs: Any) -> Callback:
    """The callback registered as ``name`` (see :data:`REGISTRY`), built with ``kwargs``.

    Example:
        >>> from ember import callbacks
        >>> callbacks.get("reduce_lr_on_plateau", monitor="loss", patience=2).patience
        2
    """
    if name not in REGISTRY:
        raise ValueError(f"callbacks.get: unknown callback {name!r}; choose one of "
                         f"{', '.join(REGISTRY)}")
    return REGISTRY[name](**kwargs)


def from_config(config: dict[str, Any]) -> Callback:
    """The callback a :meth:`Callback.config` describes: ``get(config["name"], **rest)``.

    Example:
        >>> from ember import callbacks
        >>> cb = callbacks.EarlyStopping(monitor="loss", patience=3)
        >>> callbacks.from_config(cb.config()).config() == cb.config()
        True
    """
    rest = {k: v for k, v in config.items() if k != "name"}
    return get(config["name"], **rest)
