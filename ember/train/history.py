"""History: what ``Trainer.fit`` returns, per-epoch lists of every logged value.

Example:
    >>> from ember.train.history import History
    >>> h = History()
    >>> h.append(0, {"loss": 0.5})
    >>> h["loss"]
    [0.5]
"""

from __future__ import annotations

from typing import Any

__all__ = ["History"]


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
