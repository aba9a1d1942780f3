"""Whole models in one file: ``ember.save(model, path)``, ``ember.load_model(path)``, ``load_run``.

A model file is one safetensors file: the weights (the ``state_dict``) as arrays, and in its
metadata the architecture (``ember.nn.registry.spec``: registered class names and constructor
arguments as JSON), the format version, the ember version, the training mode, the frozen
parameters and a SHA-256 of the arrays. Loading parses JSON and safetensors and calls the
constructors of registered classes only: a file never runs code of its own. ``model.save(path)``
and ``nn.load(path)`` are the same calls (Keras's spelling).

Example:
    >>> import os, tempfile
    >>> import ember
    >>> from ember import nn
    >>> model = nn.Sequential(nn.Linear(3, 4, activation="relu"), nn.Linear(4, 2))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> ember.save(model, path)
    >>> again = ember.load_model(path)
    >>> x = ember.ones(5, 3)
    >>> bool((again(x).numpy() == model(x).numpy()).all())
    True
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np  # host-side: arrays on disk

from ember import backend
from ember import models as _models  # registers GPT and the ladder for load_model
from ember import nn as _nn
from ember._version import __version__
from ember.nn import registry
from ember.nn.module import Module, Parameter
from ember.train import checkpoint as _ckpt
from ember.train.checkpoint import CheckpointError

__all__ = ["save", "save_model", "load_model", "load_run", "Run", "MODEL_FORMAT_VERSION"]

#: the version of the model file format; a file of a newer version is refused
MODEL_FORMAT_VERSION = 1
_MODEL_FORMAT = "ember-model"


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write a whole Module (:func:`save_model`) or a flat ``name -> array`` mapping (a
    ``state_dict``, :func:`ember.train.checkpoint.save`) to one safetensors file, atomically.

    Example:
        >>> import os, tempfile
        >>> import ember
        >>> folder = tempfile.mkdtemp()
        >>> ember.save({"w": ember.ones(2)}, os.path.join(folder, "w.safetensors"))
        >>> ember.save(ember.nn.Linear(2, 1), os.path.join(folder, "m.safetensors"))
        >>> sorted(os.listdir(folder))
        ['m.safetensors', 'w.safetensors']
    """
    if isinstance(obj, Module):
        save_model(obj, path)
    else:
        _ckpt.save(obj, path)


def save_model(model: Module, path: str | os.PathLike[str]) -> None:
    """Write ``model``'s architecture and weights to one safetensors file (``ember.save``).

    The architecture is checked at once by rebuilding it (without drawing weights) and comparing
    every parameter and buffer, so a model changed after it was built (a layer swapped, a part
    added) is refused now rather than failing to load later.

    Raises:
        ember.nn.registry.SpecError: for a class that is not registered (``@nn.register``) or a
            constructor argument that is not data (a function, an object).

    Example:
        >>> import os, tempfile
        >>> from ember import nn
        >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
        >>> nn.Linear(3, 1).save(path)
        >>> nn.load(path)
        Linear(in_features=3, out_features=1, bias=True)
    """
    if not isinstance(model, Module):
        raise TypeError(f"ember.save_model: expected a Module, got {type(model).__name__}; save "
                        f"a state_dict with ember.save(mapping, path)")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"ember.save: folder {str(path.parent)!r} does not exist; create "
                                f"it first (os.makedirs)")
    tree = registry.spec(model)
    _check_rebuilds(model, tree)
    arrays = _ckpt._flat_arrays(model.state_dict(), "ember.save: model.state_dict()")
    frozen = [k for k, p in model.named_parameters() if not p.requires_grad]
    metadata = {
        "format": _MODEL_FORMAT, "format_version": str(MODEL_FORMAT_VERSION),
        "ember_version": __version__, "model": json.dumps(tree),
        "training": json.dumps(bool(model.training)), "frozen": json.dumps(frozen),
        "keys": json.dumps(list(arrays)), "sha256": _ckpt._digest(arrays),
    }
    _ckpt._atomic_write(path, _ckpt._serialize(arrays, metadata))


def _shapes(model: Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(t.shape) for k, t in model._state_tensors().items()}


def _check_rebuilds(model: Module, tree: dict[str, Any]) -> None:
    fresh = registry.build(tree)  # lazy parameters: nothing is drawn
    want, got = _shapes(model), _shapes(fresh)
    if want != got:
        diff = sorted(set(want.items()) ^ set(got.items()))[:4]
        raise registry.SpecError(
            f"ember.save: {type(model).__name__} was changed after it was built (its "
            f"constructor arguments no longer describe it; differing parameters/buffers: "
            f"{', '.join(f'{k} {s}' for k, s in diff)}): build the model in its constructor, "
            f"or save the weights only with ember.save(model.state_dict(), path)")


def load_model(path: str | os.PathLike[str]) -> Module:
    """Rebuild the model in a file written by ``ember.save(model, path)``, with its weights.

    The weights keep the dtypes they were saved with; the model comes back in the training mode
    it was saved in (call ``.eval()`` for inference), with the same frozen parameters.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        CheckpointError: for a damaged, modified or foreign file (a pickle is refused unread), a
            weights-only file, or a newer format version.
        ember.nn.registry.SpecError: for a class that is not registered in this process.

    Example:
        >>> import os, tempfile
        >>> import ember
        >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
        >>> ember.save(ember.nn.Sequential(ember.nn.Linear(2, 2), ember.nn.Tanh()), path)
        >>> ember.load_model(path)
        Sequential(
          (0): Linear(in_features=2, out_features=2, bias=True)
          (1): Tanh()
        )
    """
    path = Path(path)
    arrays, meta = _ckpt._parse(_ckpt._read_bytes(path, "ember.load_model: file"), path)
    if meta.get("format") != _MODEL_FORMAT:
        hint = ("it holds weights only (a state_dict): build the model and call "
                "model.load_state_dict(ember.load(path))" if meta.get("format") == "ember-arrays"
                else "it was not written by ember.save(model, path)")
        raise CheckpointError(f"{path} is not an ember model file: {hint}")
    version = meta.get("format_version", "")
    if not version.isdigit() or int(version) > MODEL_FORMAT_VERSION:
        raise CheckpointError(f"{path} has model format version {version!r}, newer than this "
                              f"ember reads ({MODEL_FORMAT_VERSION}); it was written by ember "
                              f"{meta.get('ember_version', '?')}: upgrade ember to load it")
    try:
        keys = json.loads(meta["keys"])
        tree = json.loads(meta["model"])
        training = json.loads(meta.get("training", "true"))
        frozen = set(json.loads(meta.get("frozen", "[]")))
        ordered = {k: np.array(arrays[k]) for k in keys}
    except (KeyError, ValueError, TypeError):
        raise CheckpointError(f"{path} is damaged: its metadata (model, keys) does not match "
                              f"its arrays") from None
    if len(ordered) != len(arrays) or _ckpt._digest(ordered) != meta.get("sha256"):
        raise CheckpointError(f"{path}: SHA-256 mismatch: the arrays are not those that were "
                              f"saved (the file was modified or damaged)")
    model = registry.build(tree)
    try:
        model.load_state_dict(ordered)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: the weights do not fit the architecture: {e}") from None
    bk = backend.get()
    for k, t in model._state_tensors().items():  # keep the saved dtypes (float64 stays float64)
        if t.dtype != ordered[k].dtype:
            t.data = bk.asarray(ordered[k])
    for k, p in model.named_parameters():
        if isinstance(p, Parameter) and k in frozen:
            p.requires_grad = False
    model.train(bool(training))
    return model


def _module_save(self: Module, path: str | os.PathLike[str]) -> None:
    """Write this model (architecture and weights) to one safetensors file: ``ember.save``.

    Example:
        >>> import os, tempfile
        >>> from ember import nn
        >>> nn.Linear(2, 2).save(os.path.join(tempfile.mkdtemp(), "m.safetensors"))
    """
    save_model(self, path)


# Keras's spellings: model.save(path) and nn.load(path), attached from the training floor
Module.save = _module_save  # type: ignore[attr-defined]
_nn.load = load_model  # type: ignore[attr-defined]


# -- runs of `ember train` -------------------------------------------------------------------------

class Run(NamedTuple):
    """What :func:`load_run` returns: the trained model (in eval mode), the run's resolved
    config, its History, and its tokenizer (None for runs without text)."""

    model: Module
    config: dict[str, Any]
    history: Any
    tokenizer: Any


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def _history(run_dir: Path, meta: Mapping[str, Any] | None) -> Any:
    from ember.train.trainer import History

    if meta is not None and meta.get("history") is not None:
        return History.from_dict(meta["history"])
    rows = []
    if (run_dir / "history.csv").is_file():
        with (run_dir / "history.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
    h = History()
    for row in rows:
        h.epoch.append(int(row.pop("epoch")))
        for k, v in row.items():
            h.history.setdefault(k, []).append(float(v))
    return h


def _tokenizer(run_dir: Path, config: Mapping[str, Any]) -> Any:
    spec = None
    if (run_dir / "tokenizer.json").is_file():
        spec = _read_json(run_dir / "tokenizer.json")
    elif (run_dir / "vocab.json").is_file():  # text runs before model.safetensors
        spec = _read_json(run_dir / "vocab.json")
    elif isinstance(config.get("tokenizer"), dict):
        spec = config["tokenizer"]
    if spec is None:
        return None
    from ember import data

    cls = getattr(data, "CharTokenizer", None)
    if cls is None or spec.get("name") != "char":
        raise CheckpointError(f"{run_dir}: unknown tokenizer {spec.get('name')!r}")
    return cls.from_config(spec)


def _text_model(folder: Path, config: Mapping[str, Any], checkpoint: Any) -> Module:
    """The language model of a text run without ``model.safetensors`` (an older run's
    ``weights.safetensors``, or the checkpoint of an unfinished one), built from its config."""
    tok = _tokenizer(folder, config)
    if tok is None:
        raise CheckpointError(f"{folder}: a text run without its tokenizer (tokenizer.json)")
    model = _models.build(config["model"], tok.vocab_size, config["data"]["block_size"])
    weights = folder / "weights.safetensors"
    model.load_state_dict(_ckpt.load(weights) if weights.is_file() else checkpoint)
    return model


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """The trained model of an ``ember train`` run folder, with its config, history and
    tokenizer, in one call.

    The model comes from ``RUN_DIR/model.safetensors`` (written when training ends) or else from
    the last checkpoint (``RUN_DIR/checkpoint``, written after every epoch), on the active
    backend, in eval mode.

    Example:
        >>> import contextlib, io, os, tempfile
        >>> import ember
        >>> from ember.cli import main
        >>> runs = tempfile.mkdtemp()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     _ = main(["train", "--preset", "xor", "--epochs", "2", "--no-plots",
        ...               "--runs-dir", runs, "--verbose", "0"])
        >>> run = ember.load_run(os.path.join(runs, os.listdir(runs)[0]))
        >>> run.model(ember.zeros(1, 2)).shape, run.history.epoch, run.config["name"]
        ((1, 2), [0, 1], 'xor')
    """
    folder = Path(run_dir)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"ember.load_run: {str(folder)!r} is not a run folder of "
                                f"`ember train` (no config.json in it)")
    config = _read_json(folder / "config.json")
    meta = None
    ckpt = folder / "checkpoint"
    if _ckpt.has_checkpoint(ckpt):
        arrays, meta = _ckpt.read_checkpoint(ckpt)
    if (folder / "model.safetensors").is_file():
        model = load_model(folder / "model.safetensors")
    elif config.get("text") and ((folder / "weights.safetensors").is_file() or meta is not None):
        model = _text_model(folder, config, arrays["model"] if meta is not None else None)
    elif meta is not None:
        model = (_nn.from_config(meta["model_config"]) if meta.get("model_config")
                 else _nn.from_config(config["model"], config.get("input_shape")))
        model.load_state_dict(arrays["model"])
    else:
        raise FileNotFoundError(f"ember.load_run: {str(folder)!r} has neither model.safetensors "
                                f"nor a checkpoint (the run stopped before its first epoch "
                                f"ended; continue it with `ember train --resume {folder}`)")
    model.eval()
    return Run(model, config, _history(folder, meta), _tokenizer(folder, config))
