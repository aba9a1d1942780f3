"""The Trainer's checkpoints: writing everything a resumed ``fit`` needs, and reading it back.

:class:`CheckpointMixin` holds the Trainer's ``save_checkpoint`` and the resume side of ``fit``;
the file format is :mod:`ember.train.checkpoint`'s.

Example:
    >>> from ember.train.resume import CheckpointMixin
    >>> from ember.train.trainer import Trainer
    >>> issubclass(Trainer, CheckpointMixin)
    True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ember import backend, distributed
from ember import random as _random
from ember.data.loader import DataLoader
from ember.data.text import TokenWindows
from ember.train.history import History

__all__ = ["CheckpointMixin", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "ember.trainer/1"


class CheckpointMixin:
    """``save_checkpoint`` and the resume helpers of :class:`~ember.train.trainer.Trainer`."""

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
            "data": self._train_loader.state_dict()
            if isinstance(self._train_loader, (DataLoader, TokenWindows)) else None,
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

    def _restore(self, ckpt: tuple[dict[str, Any], dict[str, Any]], loader: Any) -> int:
        arrays, meta = ckpt
        bk = backend.get()
        self.model.load_state_dict(arrays["model"])
        self.optimizer.load_state_dict(arrays["optimizer"])
        _random.set_state(bk.asarray(arrays["rng"]["ember"]))
        if meta.get("data") is not None and isinstance(loader, (DataLoader, TokenWindows)):
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
