"""The ``ember`` command: train, evaluate and inspect models from a config file.

``ember`` (the console script) and ``python -m ember`` are the same program.

Commands
--------

``ember train``
    Trains the ``spirals`` preset (a 2-64-64-2 MLP on two interleaved spirals: a few seconds on
    NumPy, about 99% test accuracy) and writes a run folder.
``ember train CONFIG``
    Trains what a TOML (Python 3.11+) or JSON config describes (keys below).
``ember train --preset NAME`` (or ``ember train NAME``)
    A preset shipped with ember: ``spirals``, ``xor``, ``mnist-mlp``, ``mnist-cnn`` (the MNIST
    ones use the 5,000-image subset shipped with ember, so they run offline). The presets are
    TOML files in ``ember/presets/``: copy one to start a config of your own.
``ember train --resume RUN_DIR [--epochs N]``
    Continues a run from ``RUN_DIR/checkpoint`` with ``RUN_DIR/config.json``, writing into the
    same folder; ``--epochs`` may raise the total. On NumPy the result equals the uninterrupted
    run exactly (the same history, bit-identical weights).
``ember evaluate RUN_DIR [--data NAME_OR_NPZ] [--batch-size N] [--backend B]``
    The loss and metrics of the run's model on its test set, on another data set by name (with
    the run's ``n``, ``noise`` and ``seed``), or on a ``.npz`` file with arrays ``x`` and ``y``.
``ember predict RUN_DIR INPUTS.npy [-o OUT.npy] [--probabilities | --outputs]``
    Writes the predicted classes (argmax of the outputs; ``--probabilities``: softmax of the
    logits; ``--outputs``: the raw outputs) for the inputs (``.npy``, or ``.npz`` with ``x``;
    samples are reshaped to the model's input shape when their sizes agree, so 28x28 images
    fit a 784-input MLP). Default output: ``INPUTS-predictions.npy`` beside the inputs.
``ember summary CONFIG | RUN_DIR | --preset NAME``
    The model's layers, output shapes and parameter counts.
``ember export RUN_DIR [-o MODEL.onnx]``
    Writes the run's trained model (in eval mode, batch axis dynamic) as an ONNX file, default
    ``RUN_DIR/model.onnx`` (needs ``pip install "ember[onnx]"``; ``ember.onnx.export`` in
    Python). A text run's language model takes token indices (batch, length), both dynamic.
``ember info``
    The versions of ember, Python, NumPy, JAX and friends, the active backend, JAX's devices.
``ember gradcheck [--backend numpy|jax] [--op NAME]``
    Gradient-checks every op of the op table (``ember/testing/table.py``, which the test suite
    uses too) in float64 against central differences; one line per case with the op, the input
    shapes, the largest absolute error and pass/FAIL. Exit status 1 if any case fails.
``ember demo``
    Two rings learnt by a network written with the bare autograd, printing the falling loss.

Overrides of ``ember train`` (they win over the config and are recorded in ``config.json``):
``--epochs N``, ``--batch-size N``, ``--lr X`` (``optimizer.lr``), ``--seed N``,
``--backend numpy|jax``, ``--name NAME``, ``--runs-dir DIR`` (default ``./runs``) and
``--set key.sub=value`` (repeatable; the value is parsed as JSON, else taken as a string:
``--set data.n=500 --set data.name=moons --set model.0.units=32``). ``--no-plots`` skips the
PNGs, ``--verbose 0|1|2`` sets the progress output (1: a bar per epoch on a terminal, a line per
epoch otherwise). ``--threads N`` sets the CPU threads of BLAS and XLA
(``ember.set_num_threads``; not recorded: it changes the speed, not the results); one thread is
often the fastest on a machine shared with other work. ``--tensorboard DIR`` writes TensorBoard
logs to ``DIR`` (``callbacks.tensorboard.log_dir``, recorded; needs tensorboardX).

The run folder
--------------

``ember train`` writes ``runs/<name>-<YYYYmmdd-HHMMSS>/`` (``-2``, ``-3``, ... if taken):

- ``config.json``: the full resolved config (every default filled in, paths absolute, the
  input shape and schedule lengths worked out): ``ember train RUN_DIR/config.json`` trains the
  same run again.
- ``checkpoint/``: ``Trainer.save_checkpoint`` after every epoch, written atomically, so Ctrl-C
  (or a crash) leaves the last complete epoch; ``ember train --resume RUN_DIR`` continues it.
- ``model.safetensors``: the trained model, architecture and weights, written when training
  ends: ``ember.load_model(path)`` rebuilds it; ``ember.load_run(RUN_DIR)`` returns it with
  the config and history (from the checkpoint when training was interrupted).
- ``history.csv``: one row per epoch (``epoch``, ``loss``, the metrics, ``val_*``, ``lr``).
- ``results.json``: the loss and metrics on the training and the test set after training
  (also printed; ``ember evaluate`` prints the same numbers).
- ``curves.png`` (the history) and, for 2-D inputs, ``decision_boundary.png`` (the test set
  over the model's regions), with ``ember[plot]`` (matplotlib) installed.

Ctrl-C during training stops at the next batch boundary (a second Ctrl-C stops at once), prints
``interrupted at epoch N; resume with: ember train --resume RUN_DIR`` and exits with status 130.

Config keys
-----------

``name``
    The run's name (letters, digits, ``.``, ``_``, ``-``); default: the config file's name.
``model`` (required)
    A list of layer tables, as ``ember.nn.from_config`` takes them (``type`` plus that type's
    fields: ``dense``, ``conv2d``, ``maxpool2d``, ``flatten``, ``dropout``, ``batchnorm``, ...).
``input_shape``
    One sample's shape, e.g. ``[2]`` or ``[1, 28, 28]``; default: taken from the data.
``data`` (required)
    A data set name or a table. Synthetic 2-D sets ``spirals``, ``ellipses``, ``moons``,
    ``circles``, ``xor``, ``blobs`` take ``n`` (all samples, default 1000), ``noise``, ``seed``
    (default 0), ``test_fraction`` (held out as the test set, default 0.2) and their own
    options (``turns``, ``classes``, ``factor``, ``centers``, ...). ``mnist-5k`` (shipped,
    offline: 4,000 train / 1,000 test images), ``mnist`` and ``fashion-mnist`` (downloaded into
    ``~/.cache/ember`` or read from ``root``; ``download = false`` to stay offline) take
    ``limit`` (use the first N training images) and ``flatten`` (default: true unless the model
    has convolutions or pooling; images are then ``(1, 28, 28)``). Your own arrays:
    ``{train = "train.npz", test = "test.npz"}`` with arrays ``x`` and ``y`` in each file;
    without ``test``, a seeded random ``test_fraction`` (default 0.2) of ``train`` is held out.
    Relative paths start from the config file's folder.
``loss``
    A name (``cross_entropy``, the default, ``mse``, ``binary_crossentropy``, ... see
    ``ember.nn.get_loss``), a table ``{name = "huber", delta = 2.0}``, or a list of tables
    ``[{name = "mse", weight = 0.7}, {name = "mae", weight = 0.3}]`` (a weighted sum).
``optimizer``
    A name or a table ``{name = "adam", lr = 1e-3, ...}``: ``sgd``, ``momentum``, ``adagrad``,
    ``rmsprop``, ``adam`` (default), ``adamw``, with their own options (``weight_decay``,
    ``betas``, ``momentum``, ``nesterov``, ``clip_norm``, ...). ``schedule = {name = ...}``
    makes the learning rate follow ``ember.optim.schedules``: ``constant``, ``step_decay``,
    ``exponential_decay``, ``cosine_decay``, ``linear_decay``, ``warmup_linear``; its ``lr``
    defaults to the optimizer's, and ``total_steps`` (``steps`` for ``linear_decay``) to the
    run's ``epochs`` times its steps per epoch (recorded in ``config.json``, so a resumed run
    keeps the schedule it started with).
``epochs`` (default 10), ``batch_size`` (default 32)
``metrics``
    Metric names (``ember.metrics``), default ``["accuracy"]``.
``backend``
    ``"numpy"`` or ``"jax"``; default: the active one (``EMBER_BACKEND``, else NumPy).
``seed``
    ``ember.manual_seed`` before the model is built (weights, dropout, data order); default 0.
``validation_split``
    A fraction of the training data held out for ``val_*`` logs, default 0.
``callbacks``
    A table of callbacks by name, each with its arguments (or ``true`` for the defaults): any
    name of ``ember.callbacks.REGISTRY`` (``early_stopping``, ``reduce_lr_on_plateau``,
    ``tensorboard``, ``json_lines``, ``csv_logger``, ``model_checkpoint``), e.g.
    ``{early_stopping = {patience = 3, monitor = "val_loss", restore_best_weights = true},
    reduce_lr_on_plateau = {monitor = "loss", patience = 2}}``; what each callback's
    ``config()`` writes. Relative paths are relative to the working folder;
    ``--tensorboard DIR`` sets ``tensorboard = {log_dir = DIR}``.
``steps_per_execution``
    Steps per compiled dispatch on JAX (an integer or ``"epoch"``), default 1.
``accumulate_steps``
    Gradient accumulation: each optimizer step sums the gradients of this many batches, like
    one step on a batch this many times larger (``fit(accumulate_steps=k)``), default 1; on
    JAX it needs ``steps_per_execution = 1``. ``--set accumulate_steps=4`` on the command line.

An example (``ember train spirals.toml``; the same in JSON works on any Python)::

    name = "spirals-wide"
    seed = 0
    epochs = 40
    batch_size = 32
    metrics = ["accuracy"]
    loss = "cross_entropy"
    validation_split = 0.1
    model = [
        { type = "dense", units = 128, activation = "relu" },
        { type = "dense", units = 128, activation = "relu", dropout = 0.1 },
        { type = "dense", units = 2 },
    ]

    [data]
    name = "spirals"
    n = 2000
    noise = 0.05
    test_fraction = 0.25

    [optimizer]
    name = "adamw"
    lr = 0.01
    weight_decay = 1e-4
    schedule = { name = "cosine_decay", warmup_steps = 50 }

    [callbacks]
    early_stopping = { patience = 5, restore_best_weights = true }

Errors
------

A mistake in a config or on the command line is one line on stderr, naming the file (or the
flag), the key and what is allowed, and exit status 2::

    ember: error: config.toml: data.name: unknown data set 'spiral' (did you mean 'spirals'?);
    choose one of spirals, ellipses, moons, circles, xor, blobs, mnist, mnist-5k, fashion-mnist

Unknown keys get a did-you-mean, invalid layers the message of ``nn.from_config`` prefixed
with the file and ``model``, and a missing config file or run folder its path.

Example:
    >>> import contextlib, io
    >>> from ember.cli import main
    >>> out = io.StringIO()
    >>> with contextlib.redirect_stdout(out):
    ...     code = main(["summary", "--preset", "xor"])
    >>> code, out.getvalue().splitlines()[0], out.getvalue().splitlines()[-3]
    (0, 'xor: input shape (2,)', 'Total params: 82')
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ember.cli.config import CliError, preset_names

__all__ = ["main", "build_parser", "CliError"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ember`` (one subparser per command).

    Example:
        >>> args = build_parser().parse_args(["train", "--epochs", "3"])
        >>> args.command, args.epochs, args.config
        ('train', 3, None)
    """
    import ember

    parser = argparse.ArgumentParser(
        prog="ember", description="ember: train, evaluate and inspect models from a config. "
        "Start with `ember train` (the two-spirals preset, a few seconds).",
        epilog="`ember COMMAND --help` describes each command; `python -m pydoc ember.cli` is "
        "the reference (config keys, presets, the run folder).")
    parser.add_argument("--version", action="version", version=f"ember {ember.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    train = sub.add_parser(
        "train", help="train a model from a config or preset (default: --preset spirals)",
        formatter_class=fmt,
        description="Train from a TOML/JSON config, a preset (default: spirals) or continue a "
        "run (--resume). Writes RUN_DIR = RUNS_DIR/<name>-<YYYYmmdd-HHMMSS>/ with config.json, "
        "checkpoint/ (after every epoch), history.csv, results.json and PNG plots.",
        epilog=f"presets: {', '.join(preset_names())}\nconfig keys: name, model, input_shape, "
        f"data, loss, optimizer, epochs, batch_size,\n  metrics, backend, seed, "
        f"validation_split, callbacks, steps_per_execution,\n  accumulate_steps (described "
        f"with an example in `python -m pydoc ember.cli`)\nexample: ember train --preset "
        f"mnist-mlp --epochs 3 --set data.limit=1000")
    train.add_argument("config", nargs="?", help="a .toml or .json config file")
    train.add_argument("--preset", metavar="NAME", help=f"a shipped config: "
                       f"{', '.join(preset_names())}")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from "
                       "its last checkpoint (only --epochs may change)")
    train.add_argument("--epochs", type=_positive_int, help="override epochs")
    train.add_argument("--batch-size", type=_positive_int, help="override batch_size")
    train.add_argument("--lr", type=_positive_float, help="override optimizer.lr")
    train.add_argument("--seed", type=_seed, help="override seed")
    train.add_argument("--backend", choices=["numpy", "jax"], help="override backend")
    train.add_argument("--name", help="override name (the run folder's prefix)")
    train.add_argument("--runs-dir", metavar="DIR", help="where run folders go (default ./runs)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override any key: data.n=500, optimizer.weight_decay=1e-4, "
                       "model.0.units=32 (VALUE as JSON, else a string); repeatable")
    train.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard logs to DIR "
                       "(callbacks.tensorboard.log_dir; needs tensorboardX)")
    train.add_argument("--threads", type=_positive_int, metavar="N",
                       help="CPU threads for BLAS and XLA (ember.set_num_threads); 1 is often "
                       "fastest on a machine shared with other work")
    train.add_argument("--no-plots", action="store_true", help="skip curves.png and "
                       "decision_boundary.png")
    train.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1,
                       help="0 quiet, 1 a progress bar per epoch on a terminal (default), "
                       "2 one line per epoch")

    ev = sub.add_parser("evaluate", help="loss and metrics of a trained run on test data",
                        description="Print the loss and metrics of RUN_DIR's model on its test "
                        "set, another data set by name, or a .npz with arrays x and y.")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--data", metavar="NAME_OR_NPZ", help="a data set name or a .npz file")
    ev.add_argument("--batch-size", type=_positive_int)
    ev.add_argument("--backend", choices=["numpy", "jax"], help="evaluate on this backend")

    pr = sub.add_parser("predict", help="predicted classes (or outputs) for inputs in a .npy",
                        description="Write the predictions of RUN_DIR's model for INPUTS (.npy, "
                        "or .npz with x) and print their shape and the first values.")
    pr.add_argument("run_dir", metavar="RUN_DIR")
    pr.add_argument("input", metavar="INPUTS.npy")
    pr.add_argument("-o", "--output", metavar="OUT.npy",
                    help="default: INPUTS-predictions.npy beside the inputs")
    what = pr.add_mutually_exclusive_group()
    what.add_argument("--probabilities", action="store_true",
                      help="class probabilities (softmax of the logits) instead of classes")
    what.add_argument("--outputs", action="store_true", help="the raw model outputs")
    pr.add_argument("--batch-size", type=_positive_int)
    pr.add_argument("--backend", choices=["numpy", "jax"])

    sa = sub.add_parser("sample", help="text generated by a trained language-model run",
                        description="Print text that the model of a text run (e.g. ember train "
                        "--preset shakespeare-char) generates, drawn from ember's seeded stream.")
    sa.add_argument("run_dir", metavar="RUN_DIR")
    sa.add_argument("--prompt", default="", help="the text to continue (default: a new line; "
                    "on a names run, the start of the first name: one name a line)")
    sa.add_argument("--tokens", type=_positive_int, default=500, help="characters to generate")
    sa.add_argument("--temperature", type=_positive_float, default=1.0)
    sa.add_argument("--top-k", type=_positive_int, default=None, dest="top_k",
                    help="sample only among the k most likely characters")
    sa.add_argument("--seed", type=_seed, default=0)
    sa.add_argument("--backend", choices=["numpy", "jax"])

    sm = sub.add_parser("summary", help="layers and parameter counts of a config, run or preset")
    sm.add_argument("target", nargs="?", metavar="CONFIG|RUN_DIR")
    sm.add_argument("--preset", metavar="NAME")

    ex = sub.add_parser("export", help="write a trained run's model as an ONNX file",
                        description="Export RUN_DIR's trained model (eval mode) to ONNX with "
                        "a dynamic batch axis (a text run's language model: token indices, "
                        "batch and length dynamic); needs the onnx package (ember[onnx]).")
    ex.add_argument("run_dir", metavar="RUN_DIR")
    ex.add_argument("-o", "--output", metavar="MODEL.onnx",
                    help="default: RUN_DIR/model.onnx")

    sub.add_parser("info", help="versions, backends and JAX devices")

    gc = sub.add_parser("gradcheck", help="gradient-check the op table",
                        description="Check every op's gradient against central differences in "
                        "float64; exit status 1 if any case fails.")
    gc.add_argument("--backend", choices=["numpy", "jax"])
    gc.add_argument("--op", metavar="NAME", help="only this op (e.g. tanh, matmul, conv2d)")

    demo = sub.add_parser("demo", help="the bare autograd learns two rings (no nn, no Trainer)")
    demo.add_argument("--steps", type=_positive_int, default=300)
    demo.add_argument("--lr", type=_positive_float, default=0.5)
    demo.add_argument("--hidden", type=_positive_int, default=16)
    demo.add_argument("--seed", type=_seed, default=0)
    demo.add_argument("--backend", choices=["numpy", "jax"])
    return parser


def _check_backend(chosen: str | None) -> None:
    """The backend from ``--backend`` or ``EMBER_BACKEND`` can be used, or one error line."""
    from ember import backend

    try:
        if chosen is not None:
            backend.set_backend(chosen)
        else:
            backend.get()
    except (ImportError, ValueError) as e:
        env = os.environ.get("EMBER_BACKEND")
        where = f"--backend {chosen}" if chosen else f"EMBER_BACKEND={env}"
        raise CliError(f"{where}: {e} (`ember info` shows what is installed)") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ember`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Example:
        >>> from ember.cli import main
        >>> main(["train", "--preset", "nope"])
        2
    """
    from ember.cli import commands

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    run = commands.COMMANDS[args.command]
    try:
        if args.command != "info":  # `ember info` reports a broken EMBER_BACKEND itself
            _check_backend(getattr(args, "backend", None))
        return run(args)
    except CliError as e:
        sys.stdout.flush()
        print(f"ember: error: {e}", file=sys.stderr)
        return e.code
    except BrokenPipeError:  # `ember gradcheck | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
