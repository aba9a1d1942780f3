"""The base class of training callbacks and the registry of those a config can name.

A subclass joins :data:`REGISTRY` by naming itself: ``class Mine(Callback, name="mine")``; a TOML
config's ``[callbacks]`` table and :func:`ember.callbacks.get` then reach it by that name, with no
table to edit elsewhere.

Example:
    >>> from ember.train.callback import REGISTRY, Callback
    >>> class Quiet(Callback, name="quiet_example"):
    ...     def config(self):
    ...         return {"name": "quiet_example"}
    >>> REGISTRY["quiet_example"] is Quiet
    True
    >>> del REGISTRY["quiet_example"]
"""

from __future__ import annotations

from typing import Any

__all__ = ["Callback", "REGISTRY"]

#: name -> callback class, for configs; filled by ``class X(Callback, name="...")``
REGISTRY: dict[str, type[Callback]] = {}


class Callback:
    """Base class: every hook does nothing. See the module docs for the order of the calls.

    Example (stop training after the first epoch):
        >>> import numpy as np
        >>> import ember
        >>> from ember import nn
        >>> class StopAfterOne(ember.callbacks.Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         self.trainer.stop_training = True
        >>> t = ember.Trainer(nn.Linear(2, 1), "mse", "sgd")
        >>> history = t.fit(np.ones((4, 2), "float32"), np.ones((4, 1), "float32"), epochs=5,
        ...                 callbacks=[StopAfterOne()], verbose=0)
        >>> history.epoch
        [0]
    """

    trainer: Any = None

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            REGISTRY[name] = cls

    def set_trainer(self, trainer: Any) -> None:
        """Attach to the Trainer that is about to call the hooks."""
        self.trainer = trainer

    @property
    def model(self) -> Any:
        """The model being trained."""
        return None if self.trainer is None else self.trainer.model

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Before the first epoch."""

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """After the last epoch (``logs``: the last epoch's)."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Before epoch ``epoch`` (from 0)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """After epoch ``epoch`` and its validation; ``logs`` is what History records."""

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Before step ``batch`` of the epoch."""

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """After step ``batch``; ``logs["loss"]`` is its loss."""

    def config(self) -> dict[str, Any]:
        """``{"name": <registry name>, <constructor arguments>}``: what :func:`from_config` (and a
        TOML config's ``[callbacks]`` table) rebuilds it from. Callbacks in :data:`REGISTRY`
        write their own; others (holding Python functions) have none."""
        raise NotImplementedError(f"{type(self).__name__} has no config (it is not in "
                                  f"ember.callbacks.REGISTRY); build it in Python")

    def _wants_batches(self) -> bool:
        """Whether the batch hooks must run in step with the steps. Callbacks that only read
        batch losses (progress, TerminateOnNaN) let the Trainer report a step after dispatching
        the next one, so that compiled steps queue up without waiting."""
        cls = type(self)
        return (cls.on_batch_end is not Callback.on_batch_end
                or cls.on_batch_begin is not Callback.on_batch_begin)
