"""The commands of ``ember``: train, evaluate, predict, summary, export, info, gradcheck, demo.

Each takes the parsed ``argparse`` namespace and returns the exit status; mistakes in what was
asked raise :class:`~ember.cli.config.CliError` (see ``ember.cli`` for the reference).

Example:
    >>> from ember.cli.commands import run_folder_name
    >>> run_folder_name("spirals", stamp="20250101-120000")
    'spirals-20250101-120000'
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import re
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np  # host-side: files, printing, finite differences

from ember.cli.config import (
    SYNTHETIC,
    CliError,
    Data,
    Source,
    apply_overrides,
    build_callbacks,
    build_model,
    build_trainer,
    check_fit,
    finalize,
    fit_inputs,
    load_data,
    preset_names,
    read_config_file,
    read_preset,
    read_run_config,
    resolve,
)
from ember.cli.text import cmd_sample, is_text_config, not_for_text, text_summary, train_text
from ember.train.callbacks import Callback, ModelCheckpoint, format_logs

__all__ = ["COMMANDS", "run_folder_name"]

_PLOT_HINT = '(install "ember[plot]" for the PNG plots)'


# -- run folders -----------------------------------------------------------------------------------

def run_folder_name(name: str, stamp: str | None = None) -> str:
    """``<name>-<YYYYmmdd-HHMMSS>``: the folder a new run of ``ember train`` writes into.

    Example:
        >>> len(run_folder_name("xor"))
        19
    """
    return f"{name}-{stamp or datetime.now().strftime('%Y%m%d-%H%M%S')}"


def default_run_name(stem: str) -> str:
    """A run name from a config file's name: runs of other characters than ASCII letters,
    digits, '.', '_' and '-' become one '-' (the name names a folder and goes into commands).

    Example:
        >>> default_run_name("mon modèle (2)")
        'mon-mod-le-2'
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.")
    return name or "run"


def _quoted(path: Any) -> str:
    """A path as the shell reads it back (spaces, quotes, non-ASCII)."""
    return shlex.quote(str(path))


def _new_run_dir(runs_dir: str, name: str) -> Path:
    base = Path(runs_dir)
    if base.exists() and not base.is_dir():
        raise CliError(f"--runs-dir: {runs_dir} is a file, not a folder; give a folder (it is "
                       f"created if missing)")
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"--runs-dir: cannot create the folder {runs_dir}: {e.strerror}") from None
    stem = run_folder_name(name)
    for i in range(1, 1000):
        folder = base / (stem if i == 1 else f"{stem}-{i}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise CliError(f"{runs_dir}: too many runs named {stem}")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _history_csv(history: Any) -> str:
    """The rows of a History as CSV: ``epoch`` then every logged key (lists as JSON)."""
    keys = list(history.history)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["epoch", *keys])
    for i, epoch in enumerate(history.epoch):
        row = []
        for k in keys:
            values = history.history[k]
            v = values[i] if i < len(values) else ""
            row.append(json.dumps(v) if isinstance(v, list) else v)
        w.writerow([epoch, *row])
    return out.getvalue()


class _RunFiles(Callback):
    """Keeps ``history.csv`` current after every epoch (written whole, atomically, from the
    Trainer's History, so that a resumed run rewrites it from its checkpoint's history), and
    remembers the epoch being trained for the Ctrl-C message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        from ember.train.trainer import History

        h = History.from_dict(self.trainer.history.to_dict())
        h.append(epoch, dict(logs or {}))  # the Trainer appends it right after the callbacks
        _atomic_write(self.path, _history_csv(h))


class _CtrlC(Callback):
    """The first Ctrl-C stops training at the next batch or epoch boundary (after the epoch's
    checkpoint when it lands there), by raising KeyboardInterrupt from this callback: a signal that
    raised it at any bytecode could land in a finalizer, where Python prints and swallows it and
    training would go on. A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.pressed:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.pressed:
            raise KeyboardInterrupt


def _fit_run(run_dir: Path, where: str, fit: Callable[[list[Any]], Any]) -> Any:
    """``fit(callbacks)`` for a run folder, the one wrapper of every ``ember train``: the
    callbacks write a checkpoint after every epoch (or evaluation interval) and keep
    ``history.csv`` current, and the first Ctrl-C stops at the next boundary. Returns the History
    (written to ``history.csv``), or None after printing how to resume an interrupted run
    (``where``: "at epoch", "in interval")."""
    files = _RunFiles(run_dir / "history.csv")
    try:
        with _CtrlC() as ctrl_c:  # last: an epoch's checkpoint is written before it stops
            history = fit([ModelCheckpoint(run_dir / "checkpoint", monitor="loss"), files,
                           ctrl_c])
    except KeyboardInterrupt:
        sys.stdout.flush()
        print(f"\ninterrupted {where} {files.epoch + 1}; resume with: ember train --resume "
              f"{_quoted(run_dir)}", file=sys.stderr)
        return None
    _atomic_write(run_dir / "history.csv", _history_csv(history))
    return history


def _finish_run(run_dir: Path, model: Any, results: dict[str, Any]) -> None:
    """The end of a run folder: ``model.safetensors`` (for ``ember.load_model`` and
    ``ember.load_run``) and ``results.json``."""
    import ember

    ember.save(model, run_dir / "model.safetensors")
    _atomic_write(run_dir / "results.json", json.dumps(results, indent=2) + "\n")


# -- train -----------------------------------------------------------------------------------------

def _is_preset_name(text: str) -> bool:
    """``ember train xor``: a CONFIG that is no file but a preset's name means the preset."""
    return not Path(text).exists() and text in preset_names()


def _overrides(args: argparse.Namespace) -> list[tuple[str, Any, str]]:
    out: list[tuple[str, Any, str]] = []
    for attr, key, flag in (("epochs", "epochs", "--epochs"), ("batch_size", "batch_size",
                            "--batch-size"), ("lr", "optimizer.lr", "--lr"),
                            ("seed", "seed", "--seed"), ("backend", "backend", "--backend"),
                            ("name", "name", "--name")):
        value = getattr(args, attr, None)
        if value is not None:
            out.append((key, value, flag))
    if getattr(args, "tensorboard", None) is not None:
        out.append(("callbacks.tensorboard.log_dir", args.tensorboard, "--tensorboard"))
    for item in getattr(args, "set", None) or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--set: expected key.sub=value, got {item!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text  # a bare word is a string: --set data.name=moons
        out.append((key.strip(), value, f"--set {key.strip()}"))
    return out


def _set_backend(cfg: dict[str, Any], src: Source) -> None:
    import ember

    try:
        ember.set_backend(cfg["backend"])
    except ImportError as e:
        raise src.error("backend", str(e)) from None


def _n_params(model: Any) -> int:
    return int(sum(p.size for p in model.parameters()))


def _fmt_logs(logs: dict[str, Any]) -> str:
    return " - ".join(format_logs(logs))


def _plots(run_dir: Path, history: Any, model: Any, data: Data, cfg: dict[str, Any]) -> None:
    try:
        from ember import plot
    except ImportError:
        print(_PLOT_HINT)
        return
    try:
        plot.plot_history(history, path=run_dir / "curves.png")
        if list(cfg["input_shape"]) == [2]:
            plot.plot_decision_boundary(model, data.x_test, data.y_test,
                                        path=run_dir / "decision_boundary.png",
                                        title=f"{cfg['name']}: decision regions after "
                                        f"{len(history.epoch)} epoch"
                                        + ("s" if len(history.epoch) != 1 else ""),
                                        points=f"test set ({len(data.x_test)} points)")
    except ImportError:
        print(_PLOT_HINT)
    except Exception as e:  # a figure must not cost the finished run its summary
        print(f"ember: warning: the plots failed: {type(e).__name__}: {e}", file=sys.stderr)


def _cmd_train(args: argparse.Namespace) -> int:
    """``ember train [CONFIG | --preset NAME | --resume RUN_DIR] [overrides]``."""
    if getattr(args, "threads", None) is not None:  # before JAX starts (XLA reads it once)
        from ember.backend.threads import set_num_threads

        set_num_threads(args.threads)
    overrides = _overrides(args)
    resume = args.resume is not None
    if resume:
        if args.config or args.preset:
            raise CliError("--resume continues a run with its own config.json; give no CONFIG "
                           "or --preset")
        fixed = [flag for key, _, flag in overrides if key not in ("epochs", "steps")]
        if args.runs_dir is not None:
            fixed.append("--runs-dir")
        if fixed:
            raise CliError(f"{fixed[0]}: a resumed run keeps its config (so that it continues "
                           f"exactly); only --epochs (--set steps=N for a text run) may change")
        raw, src = read_run_config(args.resume)
        default_name = "run"
    elif args.config and not _is_preset_name(args.config):
        if args.preset:
            raise CliError("give a CONFIG file or --preset, not both")
        raw, src = read_config_file(args.config)
        default_name = default_run_name(Path(args.config).stem)
    else:
        if args.config and args.preset:
            raise CliError("give a CONFIG file or --preset, not both")
        args.preset = args.preset or args.config
        raw, src = read_preset(args.preset or "spirals")
        default_name = args.preset or "spirals"
    apply_overrides(raw, overrides, src)
    if is_text_config(raw):  # a language model, trained by steps (ember/cli/text.py)
        return train_text(raw, src, args, default_name, args.resume if resume else None)
    cfg = resolve(raw, src, default_name)
    _set_backend(cfg, src)
    data = finalize(cfg, load_data(cfg["data"], src), src)
    model = build_model(cfg, src)
    trainer = build_trainer(cfg, model, src)
    check_fit(trainer, data, src)
    callbacks = build_callbacks(cfg, src)

    import ember

    ckpt = Path(args.resume or ".") / "checkpoint"
    done = 0
    if resume:
        from ember.train.checkpoint import CheckpointError, has_checkpoint, read_checkpoint

        run_dir = Path(args.resume)
        try:
            done = int(read_checkpoint(ckpt)[1]["epoch"]) if has_checkpoint(ckpt) else 0
        except (CheckpointError, KeyError, ValueError) as e:
            raise CliError(f"{ckpt}: {e}") from None
        if done >= cfg["epochs"]:
            raise CliError(f"{'--epochs' if args.epochs else run_dir}: the run has trained "
                           f"{done} epochs already; to continue, give --epochs with more "
                           f"(e.g. --epochs {done * 2})")
    else:
        run_dir = _new_run_dir(args.runs_dir or "runs", cfg["name"])
        ckpt = run_dir / "checkpoint"
    _atomic_write(run_dir / "config.json", json.dumps(cfg, indent=2) + "\n")

    opt = cfg["optimizer"]
    print(f"ember {ember.__version__} on {cfg['backend']}: {cfg['name']}")
    print(f"data: {data.about}")
    print(f"model: {len(cfg['model'])} layers, {_n_params(model):,} parameters, input shape "
          f"{tuple(cfg['input_shape'])}")
    sched = f" ({opt['schedule']['name']})" if "schedule" in opt else ""
    print(f"training: {cfg['epochs']} epochs, batch size {cfg['batch_size']}, {opt['name']} "
          f"lr {opt['lr']:g}{sched}, seed {cfg['seed']}")
    print(f"run folder: {run_dir}")
    if resume:
        print(f"resuming after epoch {done} of {cfg['epochs']}" if done else
              "no checkpoint yet (stopped in the first epoch): starting from the beginning")
    start = time.perf_counter()
    history = _fit_run(run_dir, "at epoch", lambda run_callbacks: trainer.fit(
        data.x_train, data.y_train, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
        accumulate_steps=cfg.get("accumulate_steps", 1),
        validation_split=cfg["validation_split"], callbacks=[*callbacks, *run_callbacks],
        verbose=args.verbose, resume_from=ckpt if resume else None))
    if history is None:
        return 130
    seconds = time.perf_counter() - start
    stopped = len(history.epoch) and history.epoch[-1] + 1 < cfg["epochs"]
    print(f"trained {len(history.epoch) - done} epochs in {seconds:.1f}s"
          + (" (stopped early)" if stopped else ""))
    _finish_run(run_dir, model, _report(trainer, data, cfg["batch_size"]))
    if not args.no_plots:
        _plots(run_dir, history, model, data, cfg)
    q = _quoted(run_dir)
    print(f"\nrun folder: {run_dir}\nnext:\n  ember evaluate {q}\n"
          f"  ember predict {q} INPUTS.npy\n  ember summary {q}\n"
          f"  ember train --resume {q} --epochs {cfg['epochs'] * 2}")
    return 0


def _report(trainer: Any, data: Data, batch_size: int) -> dict[str, Any]:
    results = {}
    for part, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test,
                                                             data.y_test)):
        logs = trainer.evaluate(x, y, batch_size=batch_size)
        results[part] = logs
        print(f"{part} ({len(x)} samples): {_fmt_logs(logs)}")
    return results


# -- loading a run ---------------------------------------------------------------------------------

def _load_run(run_dir: str, backend: str | None, command: str = "evaluate"
              ) -> tuple[dict[str, Any], Source, Any, Any]:
    """The resolved config, its Source, the model with the checkpoint's weights and a Trainer."""
    from ember.train.checkpoint import CheckpointError, has_checkpoint, read_checkpoint

    raw, src = read_run_config(run_dir)
    if is_text_config(raw):
        raise not_for_text(run_dir, command)
    if backend is not None:
        apply_overrides(raw, [("backend", backend, "--backend")], src)
    cfg = resolve(raw, src)
    if cfg["input_shape"] is None:
        raise src.error("input_shape", "missing (config.json of a run always has it)")
    _set_backend(cfg, src)
    ckpt = Path(run_dir) / "checkpoint"
    if not has_checkpoint(ckpt):
        raise CliError(f"{ckpt}: no checkpoint (the run stopped before its first epoch ended; "
                       f"continue it with `ember train --resume {run_dir}`)")
    model = build_model(cfg, src)
    try:
        arrays, _ = read_checkpoint(ckpt)
        model.load_state_dict(arrays["model"])
    except (CheckpointError, KeyError, ValueError) as e:
        raise CliError(f"{ckpt}: {e}") from None
    return cfg, src, model, build_trainer(cfg, model, src)


def _read_arrays(path: str, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    p = Path(path)
    if not p.is_file():
        raise CliError(f"{path}: no such file")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as f:
                if "x" not in f.files:
                    raise CliError(f"{path}: no array 'x' (it has: {', '.join(f.files)}); "
                                   f"{what}")
                return np.asarray(f["x"]), (np.asarray(f["y"]) if "y" in f.files else None)
        return np.load(p, allow_pickle=False), None
    except (OSError, ValueError) as e:
        raise CliError(f"{path}: cannot read it as a NumPy .npy/.npz file: {e}") from None


# -- evaluate --------------------------------------------------------------------------------------

def _cmd_evaluate(args: argparse.Namespace) -> int:
    """``ember evaluate RUN_DIR [--data NAME_OR_NPZ] [--batch-size N] [--backend B]``."""
    cfg, src, model, trainer = _load_run(args.run_dir, args.backend)
    batch_size = args.batch_size or cfg["batch_size"]
    if args.data is None or not (args.data.endswith(".npz") or Path(args.data).is_file()):
        data_cfg = cfg["data"]
        if args.data is not None:  # another data set by name, with the run's n, noise, seed
            kept = {k: v for k, v in data_cfg.items() if k in ("n", "noise", "seed",
                                                                "test_fraction")}
            other = {**kept, "name": args.data} if args.data in SYNTHETIC else args.data
            data_cfg = resolve({**cfg, "data": other}, Source("--data", src.base))["data"]
        data = load_data(data_cfg, src)
        x = fit_inputs(data.x_test, cfg["input_shape"], "the test data", src)
        y, label = data.y_test, f"test ({len(x)} samples)"
    else:
        x0, y0 = _read_arrays(args.data, "save inputs as x and targets as y")
        if y0 is None:
            raise CliError(f"{args.data}: no array 'y' (the targets); save inputs as x and "
                           f"targets as y (np.savez(path, x=..., y=...))")
        x = fit_inputs(x0, cfg["input_shape"], args.data, Source(args.data, src.base), "x")
        y, label = y0, f"{Path(args.data).name} ({len(x)} samples)"
    logs = trainer.evaluate(x, y, batch_size=batch_size)
    print(f"run: {args.run_dir} ({cfg['name']}, {cfg['backend']})")
    print(f"{label}: {_fmt_logs(logs)}")
    return 0


# -- predict ---------------------------------------------------------------------------------------

def _loss_kind(cfg: dict[str, Any]) -> str:
    """How outputs become classes: 'softmax' (logits), 'probabilities', 'sigmoid' (one logit),
    'binary' (one probability) or 'regression' (outputs as they are)."""
    spec = cfg["loss"]
    first = spec[0] if isinstance(spec, list) else spec
    name = first if isinstance(first, str) else first["name"]
    logits = bool(first.get("from_logits", False)) if isinstance(first, dict) else False
    if name in ("cross_entropy", "softmax_cross_entropy"):
        return "softmax"
    if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        return "softmax" if logits else "probabilities"
    if name == "binary_crossentropy":
        return "sigmoid" if logits else "binary"
    return "regression"


def _check_inputs(x: np.ndarray, path: str) -> None:
    """Inputs to predict on: numbers, at least one sample, no NaN (a NaN input gives NaN)."""
    if x.dtype.kind not in "fiub":
        raise CliError(f"{path}: holds {x.dtype} values; the inputs must be numbers")
    if x.ndim == 0 or len(x) == 0 or x.size == 0:
        raise CliError(f"{path}: holds no samples (shape {x.shape}); save at least one input")
    if x.dtype.kind == "f":
        bad = np.argwhere(~np.isfinite(x))
        if bad.size:
            idx = tuple(int(i) for i in bad[0])
            what = "NaN" if np.isnan(x[idx]) else "an infinite value"
            count = f" (all {x.size} values)" if len(bad) == x.size else ""
            raise CliError(f"{path}: holds {what} at index {idx}{count}; NaN or infinite inputs "
                           f"give NaN predictions (NaN, inf: replace or drop those samples)")


def _cmd_predict(args: argparse.Namespace) -> int:
    """``ember predict RUN_DIR INPUT.npy [-o OUT.npy] [--probabilities | --outputs]``."""
    cfg, src, model, trainer = _load_run(args.run_dir, args.backend, "predict")
    x0, _ = _read_arrays(args.input, "save the inputs as x")
    _check_inputs(x0, args.input)
    if args.output and not Path(args.output).parent.is_dir():
        raise CliError(f"-o: the folder {str(Path(args.output).parent)!r} does not exist; create "
                       f"it first or write elsewhere")
    x = fit_inputs(x0, cfg["input_shape"], args.input, Source(args.input, src.base), "input")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    out = np.asarray(trainer.predict(x, batch_size=args.batch_size or cfg["batch_size"]).numpy())
    kind = _loss_kind(cfg)
    if args.outputs or kind == "regression":
        result, what = out, "outputs"
    elif args.probabilities:
        if kind == "softmax":
            z = np.exp(out - out.max(axis=-1, keepdims=True))
            result = z / z.sum(axis=-1, keepdims=True)
        elif kind == "sigmoid":
            result = 1.0 / (1.0 + np.exp(-out))
        else:
            result = out
        what = "probabilities"
    elif kind in ("sigmoid", "binary") or out.shape[-1] == 1:
        threshold = 0.0 if kind == "sigmoid" else 0.5
        result, what = (out[..., 0] > threshold).astype(np.int64), "classes"
    else:
        result, what = out.argmax(axis=-1), "classes"
    target = Path(args.output) if args.output else Path(args.input).with_name(
        Path(args.input).stem + "-predictions.npy")
    np.save(target, result)
    flat = np.asarray(result).reshape(len(result), -1)
    shown = np.array2string(flat[:5] if flat.shape[1] > 1 else flat[:10, 0], precision=4,
                            suppress_small=True)
    print(f"{len(x)} inputs of shape {tuple(x.shape[1:])} -> {what} of shape "
          f"{tuple(np.shape(result))}, written to {target}")
    print(f"first {what}: {shown}")
    return 0


# -- summary ---------------------------------------------------------------------------------------

def _cmd_summary(args: argparse.Namespace) -> int:
    """``ember summary CONFIG | RUN_DIR | --preset NAME``: the model's layers and parameters."""
    if args.target and args.preset:
        raise CliError("give a CONFIG file, a RUN_DIR or --preset, not several")
    if args.preset or not args.target or _is_preset_name(args.target):
        raw, src = read_preset(args.preset or args.target or "spirals")
    elif Path(args.target).is_dir():
        raw, src = read_run_config(args.target)
    else:
        raw, src = read_config_file(args.target)
    if is_text_config(raw):
        run_dir = args.target if args.target and Path(args.target).is_dir() else None
        return text_summary(raw, src, Path(args.target).stem if args.target else "run", run_dir)
    cfg = resolve(raw, src, Path(args.target).stem if args.target else "run")
    _set_backend(cfg, src)
    if cfg["input_shape"] is None:  # from the data (cheap for the named sets)
        finalize(cfg, load_data(cfg["data"], src), src)
    model = build_model(cfg, src)
    print(f"{cfg['name']}: input shape {tuple(cfg['input_shape'])}")
    model.summary(tuple(cfg["input_shape"]))
    return 0


# -- export ----------------------------------------------------------------------------------------

def _cmd_export(args: argparse.Namespace) -> int:
    """``ember export RUN_DIR [-o MODEL.onnx]``: the run's model as an ONNX file."""
    try:
        import onnx  # noqa: F401 - the error below instead of one from inside the export

        import ember.onnx as ember_onnx
    except ImportError:
        raise CliError('export needs the onnx package: pip install "ember[onnx]"', code=1
                       ) from None
    raw, _ = read_run_config(args.run_dir)
    text = is_text_config(raw)
    out = Path(args.output) if args.output else Path(args.run_dir) / "model.onnx"
    if not out.parent.is_dir():
        raise CliError(f"-o: folder {str(out.parent)!r} does not exist")
    if text:  # a language model: token indices (batch, length) in, logits out
        model, length = _text_model(args.run_dir)
        example = np.zeros((1, length), np.int64)
        axes = {"input": {0: "batch", 1: "length"}}
        shape = f"(batch, length <= {length}) of token indices"
    else:
        cfg, _, model, _ = _load_run(args.run_dir, None, "export")
        example = np.zeros((1, *cfg["input_shape"]), np.float32)
        axes = None
        shape = f"(batch, {', '.join(map(str, cfg['input_shape']))})"
    try:
        ember_onnx.export(model, example, out, dynamic_axes=axes)
    except ember_onnx.ExportError as e:
        raise CliError(f"{args.run_dir}: {e}", code=1) from None
    print(f"wrote {out} (ONNX opset {ember_onnx.OPSET}, input 'input' of shape {shape}, output "
          f"'output'{' (batch, length, vocabulary) of logits' if text else ''})")
    return 0


def _text_model(run_dir: str) -> tuple[Any, int]:
    """A text run's model (``ember.load_run``, or the weights of a run that wrote only
    ``weights.safetensors``) and its context length."""
    import ember
    from ember.cli.text import build_lm
    from ember.data import CharTokenizer
    from ember.train.checkpoint import load

    run = Path(run_dir)
    cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))
    if (run / "model.safetensors").is_file():
        model = ember.load_run(run).model
    elif (run / "weights.safetensors").is_file() and (run / "vocab.json").is_file():
        tok = CharTokenizer.from_config(json.loads((run / "vocab.json").read_text(
            encoding="utf-8")))
        model = build_lm(cfg, tok.vocab_size)
        model.load_state_dict(load(run / "weights.safetensors"))
    else:
        raise CliError(f"{run_dir}: a text run without its trained weights (model.safetensors "
                       f"or weights.safetensors): the run did not finish")
    model.eval()
    block = cfg.get("data", {}).get("block_size") or getattr(model, "block_size", 1)
    return model, int(block)


# -- info ------------------------------------------------------------------------------------------

def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cmd_info(args: argparse.Namespace) -> int:
    """``ember info``: versions, backends and JAX devices."""
    import ember
    from ember import backend

    print(f"ember {ember.__version__} ({Path(ember.__file__).parent})")
    print(f"Python {platform.python_version()} ({platform.python_implementation()}, "
          f"{platform.system()} {platform.machine()})")
    print(f"NumPy {np.__version__}")
    for name in ("jax", "jaxlib", "optax", "matplotlib", "safetensors", "tqdm"):
        print(f"{name} {_version(name)}")
    env = os.environ.get("EMBER_BACKEND")
    try:
        active = ember.get_backend()
    except (ImportError, ValueError) as e:  # what `ember info` is for: say so, do not crash
        active = f"none: {e}"
    print(f"backend: {active} ("
          + (f"EMBER_BACKEND={env}" if env else "default; set EMBER_BACKEND=jax for JAX") + ")")
    print(f"backends available: {', '.join(backend.available())}")
    from ember.backend import numpy_backend

    print(f"malloc tuning for NumPy: {numpy_backend.malloc_tuning} (EMBER_MALLOC_TUNING=0 turns "
          f"it off)")
    from ember.backend import threads

    for lib in threads.blas_info():
        layer = lib.get("threading_layer")
        print(f"BLAS: {lib.get('internal_api')} {lib.get('version')}"
              + (f" ({layer})" if layer else "") + f", {lib.get('num_threads')} threads")
    env = os.environ.get(threads.ENV)
    print(f"threads: {ember.get_num_threads()} of {os.cpu_count()} CPUs ("
          + (f"{threads.ENV}={env}" if env else f"set with {threads.ENV}=N, ember.set_num_threads"
             f" or ember train --threads N") + f"); XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    try:
        import jax
    except ImportError:
        print('JAX devices: none (install "ember[jax]")')
        return 0
    try:
        devices = jax.devices()
        print(f"JAX devices: {', '.join(str(d) for d in devices)} (default platform "
              f"{jax.default_backend()})")
    except RuntimeError as e:
        print(f"JAX devices: unavailable ({e})")
    return 0


# -- gradcheck -------------------------------------------------------------------------------------

def _grad_error(fn: Any, arrays: list[np.ndarray], atol: float, rtol: float) -> tuple[float, bool]:
    """The largest ``|analytic - numeric|`` over every input element and whether each one is
    within ``atol + rtol * |numeric|``: ``ember.gradcheck``'s test, with the error kept."""
    import ember
    from ember.gradcheck import gradient_pairs

    tensors = [ember.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    worst, ok = 0.0, True
    for _, analytic, numeric in gradient_pairs(fn, *tensors):
        diff = np.abs(analytic - numeric)
        if diff.size:
            worst = max(worst, float(np.max(diff)))
            ok = ok and bool(np.all(np.isfinite(analytic))) and bool(
                np.all(diff <= atol + rtol * np.abs(numeric)))
    return worst, ok


def _forward_error(row: Any, arrays: list[np.ndarray]) -> tuple[float, bool]:
    import ember

    out = np.asarray(row.fn(*[ember.tensor(a) for a in arrays]).numpy())
    ref = np.asarray(row.ref(np, *arrays))
    if out.shape != ref.shape:
        return math.inf, False
    if ref.dtype.kind not in "fc":
        wrong = float(np.sum(out != ref))
        return wrong, wrong == 0
    diff = np.abs(out.astype(np.float64) - ref)
    return (float(diff.max()) if diff.size else 0.0), bool(
        np.allclose(out, ref, rtol=1e-10, atol=1e-12))


def _cmd_gradcheck(args: argparse.Namespace) -> int:
    """``ember gradcheck [--backend numpy|jax] [--op NAME]``: the op table, one line per case."""
    import ember
    from ember.testing.table import ROWS, inputs_for

    if args.backend:
        try:
            ember.set_backend(args.backend)
        except ImportError as e:
            raise CliError(f"--backend: {e}") from None
    rows = [(i, r) for i, r in enumerate(ROWS)]
    if args.op:
        names = sorted({r.name for r in ROWS})
        if args.op not in names:
            import difflib

            match = difflib.get_close_matches(args.op, names, n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            raise CliError(f"--op: no op {args.op!r} in the op table{hint}; ops: "
                           f"{', '.join(names)}")
        rows = [(i, r) for i, r in rows if r.name == args.op]
    print(f"ember gradcheck on {ember.get_backend()}: float64, central differences "
          f"(eps 1e-6), random upstream gradient; pass when |analytic - numeric| <= "
          f"atol + rtol * |numeric|")
    failed = total = 0
    start = time.perf_counter()
    for i, row in rows:
        for j, case in enumerate(row.cases):
            arrays = inputs_for(row, case, seed=2)
            try:
                if row.grad:
                    err, ok = _grad_error(row.fn, arrays, row.atol, row.rtol)
                    kind = "grad"
                else:
                    err, ok = _forward_error(row, arrays)
                    kind = "forward"
                shown = f"{err:.2e}"
            except Exception as e:  # a crashing op is a failure, reported on its line
                ok, kind, shown = False, "error", f"{type(e).__name__}: {e}"
            total += 1
            failed += not ok
            shapes = ", ".join(str(tuple(s)) for s in case)
            print(f"{row.name + f'-{i}-{j}':<28} {shapes:<34} {kind:<7} max abs err "
                  f"{shown:<9}  {'pass' if ok else 'FAIL'}", flush=True)
    print(f"{total} cases, {failed} failed ({time.perf_counter() - start:.1f}s)")
    return 1 if failed else 0


# -- demo ------------------------------------------------------------------------------------------

def _cmd_demo(args: argparse.Namespace) -> int:
    """``ember demo``: a 2-16-2 tanh network learns two rings by plain gradient descent, written
    with ember's autograd only (no nn, no optimizer), printing the loss as it falls."""
    import ember

    if args.backend:
        ember.set_backend(args.backend)
    ember.manual_seed(args.seed)
    n, hidden, lr, steps = 400, args.hidden, args.lr, args.steps
    angle = ember.rand(n) * (2 * math.pi)
    y = (ember.arange(n) >= n // 2).astype(ember.int64)
    radius = 1 + y.astype(ember.float32) + 0.1 * ember.randn(n)
    x = ember.stack([radius * angle.cos(), radius * angle.sin()], axis=1)  # type: ignore[attr-defined]
    w1 = (ember.randn(2, hidden) * math.sqrt(1 / 2)).requires_grad_()
    b1 = ember.zeros(hidden, requires_grad=True)
    w2 = (ember.randn(hidden, 2) * math.sqrt(1 / hidden)).requires_grad_()
    b2 = ember.zeros(2, requires_grad=True)
    params = [w1, b1, w2, b2]
    rows = ember.arange(n)
    print(f"ember {ember.__version__} on {ember.get_backend()}: a 2-{hidden}-2 tanh network on "
          f"two rings ({n} points), gradient descent, lr {lr}")
    start = time.perf_counter()
    for step in range(steps + 1):
        logits = (x @ w1 + b1).tanh() @ w2 + b2
        loss = -logits.log_softmax(axis=1)[rows, y].mean()
        for p in params:
            p.grad = None
        loss.backward()
        with ember.no_grad():
            for p in params:
                p.data = p.data - lr * p.grad.data  # type: ignore[union-attr]
        if step % (steps // 10 or 1) == 0:
            acc = (logits.argmax(axis=1) == y).astype(ember.float32).mean().item()
            print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {acc:.3f}")
    print(f"done in {time.perf_counter() - start:.2f}s")
    return 0


#: command name -> its handler (``handler(args) -> exit status``)
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
    "summary": _cmd_summary, "export": _cmd_export, "info": _cmd_info,
    "gradcheck": _cmd_gradcheck, "demo": _cmd_demo, "sample": cmd_sample,
}
