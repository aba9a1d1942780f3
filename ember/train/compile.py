"""Keras' ``model.compile(...)`` then ``model.fit(...)``: the training layer attaches
``compile``, ``fit``, ``evaluate`` and ``predict`` to :class:`ember.nn.Module` (nn/ sits below
train/ and does not import it); ``compile`` makes an :class:`ember.Trainer` held by the module.
"""

from __future__ import annotations

from typing import Any

from ember.nn.module import Module
from ember.train.trainer import Trainer

__all__ = ["compile", "fit", "evaluate", "predict"]


def compile(self: Module, optimizer: Any = "adam", loss: Any = None, metrics: Any = None,
            loss_weights: Any = None, **trainer_options: Any) -> None:
    """Attach an ``ember.Trainer`` for :meth:`fit`, :meth:`evaluate` and :meth:`predict`.

    Args:
        optimizer: an ``ember.optim`` optimizer over this module's parameters, or a name
            (``"adam"``, ``"sgd"``, ... with Keras's default learning rate).
        loss: a loss, a name, or a list of losses (weighted by ``loss_weights``).
        metrics: metrics or names (``"accuracy"``, ...).
        loss_weights: one weight per loss of a list.
        **trainer_options: ``jit``, ``steps_per_execution``, ``devices`` (data parallelism on
            JAX; see ``ember.Trainer``).

    Example:
        >>> import numpy as np
        >>> from ember import nn
        >>> model = nn.Linear(2, 1)
        >>> model.compile("sgd", "mse")
        >>> x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
        >>> len(model.fit(x, y, epochs=2, verbose=0).history["loss"])
        2
    """
    trainer = Trainer(self, loss, optimizer, metrics=metrics, loss_weights=loss_weights,
                      **trainer_options)
    object.__setattr__(self, "_trainer", trainer)


def _compiled(self: Module, method: str) -> Any:
    trainer = self.__dict__.get("_trainer")
    if trainer is None:
        raise RuntimeError(f"{type(self).__name__}.{method}: the model is not compiled; call "
                           f"model.compile(optimizer, loss) first (or use ember.Trainer)")
    return trainer


def fit(self: Module, *args: Any, **kwargs: Any) -> Any:
    """``Trainer.fit`` with the trainer of :meth:`compile`; returns the ``History``."""
    return _compiled(self, "fit").fit(*args, **kwargs)


def evaluate(self: Module, *args: Any, **kwargs: Any) -> Any:
    """``Trainer.evaluate`` with the trainer of :meth:`compile`; returns a dict."""
    return _compiled(self, "evaluate").evaluate(*args, **kwargs)


def predict(self: Module, *args: Any, **kwargs: Any) -> Any:
    """``Trainer.predict`` with the trainer of :meth:`compile`; returns a Tensor."""
    return _compiled(self, "predict").predict(*args, **kwargs)


for _fn in (compile, fit, evaluate, predict):
    setattr(Module, _fn.__name__, _fn)
