"""The bad-input catalogue: what a careless user tries, and what ember must answer.

One row per case, in the style of the op table: a name, the call, and either the exception it
must raise with a fragment of the message (which names the object: the op, the layer, the
optimizer, the file or the flag) or ``OK(check)``, a check of the correct result. Rows run on
both backends unless they name one. Nothing here may end in a traceback from inside NumPy or
JAX, or in a silently wrong number.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ember
from ember import nn, optim
from ember.cli import main
from ember.nn.config import ConfigError
from ember.train.checkpoint import CheckpointError, read_checkpoint, write_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BOTH = ("numpy", "jax")
NUMPY = ("numpy",)


class CliExit2Error(Exception):
    """``ember ARGS`` returned exit status 2 (bad user input) with one error line."""


@dataclass(frozen=True)
class OK:
    """The call must succeed and ``check(result)`` must hold."""

    check: Callable[[Any], Any]


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[Path], Any]
    error: type[BaseException] | None
    fragment: str | tuple[str, ...] | OK
    backends: tuple[str, ...] = BOTH


def t(data: Any, **kw: Any) -> ember.Tensor:
    return ember.tensor(data, **kw)


def cli(*args: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    previous = ember.get_backend()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        ember.set_backend(previous)
    if code == 2:
        assert err.getvalue().count("\n") == 1, err.getvalue()
        raise CliExit2Error(err.getvalue())
    assert code == 0, (code, out.getvalue(), err.getvalue())
    return code, out.getvalue(), err.getvalue()


_RUN: dict[str, Path] = {}


def run_dir() -> Path:
    """One tiny trained xor run (2 epochs), shared by the CLI rows."""
    if "run" not in _RUN:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="ember-bad-input-"))
        _, out, _ = cli("train", "--preset", "xor", "--epochs", 2, "--runs-dir", folder,
                        "--no-plots", "--backend", "numpy", "--set", "data.n=64")
        _RUN["run"] = next(p for p in folder.iterdir() if p.is_dir())
    return _RUN["run"]


def run_copy(tmp: Path) -> Path:
    """A copy of the shared run, for the rows that damage it."""
    import shutil

    return Path(shutil.copytree(run_dir(), tmp / "run"))


def _first_write_killed_run(tmp: Path) -> Path:
    """A copy of the shared run whose checkpoint folder holds only a killed first write."""
    import shutil

    run = run_copy(tmp)
    shutil.rmtree(run / "checkpoint")
    (run / "history.csv").unlink(missing_ok=True)
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / ".arrays-000001.safetensors.0123456789abcdef.tmp").write_bytes(b"\0")
    return run


def npy(tmp: Path, array: Any, name: str = "x.npy") -> Path:
    np.save(tmp / name, np.asarray(array))
    return tmp / name


# -- helpers for the rows --------------------------------------------------------------------------

def close(value: Any) -> Callable[[Any], bool]:
    def check(result: Any) -> bool:
        got = result.numpy() if isinstance(result, ember.Tensor) else np.asarray(result)
        np.testing.assert_allclose(got, value, rtol=1e-6, atol=1e-7)
        return tuple(np.shape(got)) == tuple(np.shape(value))
    return check


def opt_step(make: Callable[[list[ember.Tensor]], Any], steps: int = 1,
             dtype: str = "float32") -> ember.Tensor:
    w = ember.tensor([1.0, -2.0], dtype=dtype, requires_grad=True)
    opt = make([w])
    for _ in range(steps):
        w.grad = ember.tensor([0.5, 0.25], dtype=dtype)
        opt.step()
    return w


def sgd_schedule(lr: Callable[[Any], Any], steps: int = 2) -> Any:
    return opt_step(lambda p: optim.SGD(p, lr=lr), steps)


def edited_checkpoint(tmp: Path, edit: Callable[[dict[str, Any]], None]) -> Any:
    folder = tmp / "ckpt"
    write_checkpoint(folder, {"model": {"w": np.ones(2)}}, {"epoch": 3, "history": {}})
    pointer = json.loads((folder / "checkpoint.json").read_text())
    edit(pointer)
    (folder / "checkpoint.json").write_text(json.dumps(pointer))
    return read_checkpoint(folder)


def killed_first_write(tmp: Path) -> Path:
    """A folder as a SIGKILL during the very first checkpoint write leaves it."""
    folder = tmp / "ckpt"
    folder.mkdir()
    (folder / ".arrays-000001.safetensors.0123456789abcdef.tmp").write_bytes(b"\x00" * 10)
    return folder


def tiny_fit(tmp: Path, **kw: Any) -> Any:
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3))
    trainer = ember.Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    x = np.ones((4, 2), np.float32)
    y = np.array([0, 1, 2, 0])
    return trainer.fit(x, kw.pop("y", y), epochs=1, batch_size=2, verbose=0, **kw)


def labelled(y: Any, loss: Any = None, how: str = "fit", **kw: Any) -> Any:
    """fit / evaluate / validate a 2-input, 3-class model on 6 samples with labels ``y``."""
    ember.manual_seed(0)
    model = nn.Linear(2, 3)
    trainer = ember.Trainer(model, nn.CrossEntropyLoss() if loss is None else loss,
                            optim.SGD(model.parameters(), lr=0.1))
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(6, 2)
    y = np.asarray(y)
    if how == "evaluate":
        return trainer.evaluate(x, y, batch_size=2)
    if how == "validation":
        good = np.zeros(6, np.int64)
        return trainer.fit(x, good, validation_data=(x, y), batch_size=2, verbose=0)
    if how == "loader":
        return trainer.fit(ember.data.DataLoader((x, y), batch_size=2), verbose=0)
    return trainer.fit(x, y, epochs=1, batch_size=2, verbose=0, **kw)


class IgnoringCE(nn.Loss):
    """A class loss with an ``ignore_index`` (as seqops' losses have): the host check exempts it."""

    ignore_index = -100

    def forward(self, pred: Any, target: Any) -> Any:
        lab = target if isinstance(target, ember.Tensor) else ember.tensor(target)
        return nn.CrossEntropyLoss()(pred, ember.where(lab == -100, ember.zeros_like(lab), lab))


def nan_at(call: int) -> Callable[[Any, Any], Any]:
    """Cross-entropy that is NaN at its ``call``-th call (from 0), finite otherwise."""
    calls = [0]

    def loss(pred: Any, target: Any) -> Any:
        value = nn.CrossEntropyLoss()(pred, target)
        calls[0] += 1
        return value * float("nan") if calls[0] - 1 == call else value
    return loss


def nan_stop(call: int | None = 4, spe: Any = 1) -> tuple[str, Any]:
    """The NaN guard's warning and the Trainer after a NaN: at the ``call``-th step (a Python
    counter in the loss: eager, NumPy rows), or with ``call=None`` from the data (a target of
    1e30 in the second batch of every epoch, whose square overflows: compiled steps too)."""
    import warnings

    ember.manual_seed(0)
    model = nn.Linear(2, 3 if call is not None else 1)
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(6, 2)
    if call is None:
        loss: Any = nn.MSE()
        y: Any = np.zeros((6, 1), np.float32)
        y[3, 0] = 1e30
    else:
        loss, y = nan_at(call), np.array([0, 1, 2, 0, 1, 2])
    trainer = ember.Trainer(model, loss, optim.SGD(model.parameters(), lr=0.1),
                            steps_per_execution=spe)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        trainer.fit(x, y, epochs=3, batch_size=2, shuffle=False, verbose=0)
    return " | ".join(str(w.message) for w in seen), trainer


def checked_step(index: int) -> tuple[Any, Any, Any]:
    """A compiled SGD step (``ember.jit(checked=True)``) that reads the output at ``index``:
    the error, and the weights before and after."""
    ember.manual_seed(0)
    model = nn.Linear(2, 3)
    opt = optim.SGD(model.parameters(), lr=0.1)

    @ember.jit(checked=True)
    def step(model: Any, opt: Any, x: Any, i: Any) -> Any:
        opt.zero_grad()
        loss = model(x)[:, i].sum()
        loss.backward()
        opt.step()
        return loss

    before = model.weight.numpy().copy()
    error = None
    try:
        step(model, opt, ember.ones(4, 2), ember.tensor(index))
    except IndexError as e:
        error = str(e)
    return error, before, model.weight.numpy()


def config_file(tmp: Path, name: str, units: Any = 2) -> Path:
    path = tmp / name
    path.write_text(f'model = [{{ type = "dense", units = {units} }}]\ndata = "xor"\n'
                    f"epochs = 1\n")
    return path


def info_without_jax() -> str:
    """``ember info`` with EMBER_BACKEND=jax where JAX cannot be imported (a fresh process)."""
    code = ("import sys; sys.modules['jax'] = None; sys.modules['jax.numpy'] = None\n"
            "from ember.cli import main; sys.exit(main(['info']))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMBER_BACKEND": "jax"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"ember info exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def _f16_linear_step() -> tuple[Any, Any, Any]:
    layer = nn.Linear(3, 2, dtype="float16")
    before = layer.weight.numpy().astype(np.float64)
    opt = optim.Adam(layer.parameters(), lr=1e-3)
    loss = (layer(t(np.ones((4, 3)), dtype="float16")) ** 2).mean()
    loss.backward()
    opt.step()
    return layer.weight.dtype, layer.weight.numpy().astype(np.float64), before


def bce(pred: Any, target: Any, **kw: Any) -> Any:
    return nn.BinaryCrossentropy(**kw)(t(pred), t(target))


# -- the catalogue ---------------------------------------------------------------------------------

Z = 2.0  # the value of the 0-d tensor in the axis rows
M = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
E = ValueError

CASES: list[Case] = [
    # ddof that leaves no degree of freedom: an error, not -1 / NaN / inf
    Case("var ddof=n", lambda _: t([1.0, 2.0, 3.0]).var(ddof=3), E, "var: ddof=3"),
    Case("var ddof>n", lambda _: t([1.0, 2.0, 3.0]).var(ddof=4), E, "var: ddof=4"),
    Case("std ddof=n", lambda _: t([1.0, 2.0]).std(ddof=2), E, "std: ddof=2"),
    Case("var axis ddof=n", lambda _: t(M).var(axis=0, ddof=2), E, "var: ddof=2"),
    Case("std axis ddof>n", lambda _: t(M).std(axis=1, ddof=5), E, "std: ddof=5"),
    Case("var ddof negative", lambda _: t([1.0, 2.0]).var(ddof=-1), E, "var: ddof must be"),
    Case("var ddof float", lambda _: t([1.0, 2.0]).var(ddof=0.5), E, "var: ddof must be"),
    Case("var ddof=1 ok", lambda _: t([1.0, 3.0]).var(ddof=1), None, OK(close(2.0))),
    Case("var of 0-d ddof=1", lambda _: t(Z).var(ddof=1), E, "var: ddof=1"),
    Case("var of empty", lambda _: t(np.zeros(0)).var(), E, "var: ddof=0"),
    # the 0-d rule (PyTorch's): axis 0 and -1 act on a 0-d tensor as on a 1-element one
    *[Case(f"{op} 0-d axis={a}", lambda _, op=op, a=a: getattr(ember, op)(t(Z), axis=a), None,
           OK(close(v)))
      for op, v in (("sum", Z), ("mean", Z), ("max", Z), ("min", Z), ("argmax", 0),
                    ("argmin", 0), ("var", 0.0), ("std", 0.0), ("logsumexp", Z),
                    ("softmax", 1.0), ("log_softmax", 0.0))
      for a in (0, -1)],
    *[Case(f"{op} 0-d axis=1", lambda _, op=op: getattr(ember, op)(t(Z), axis=1), E,
           f"{op}: axis 1 is out of range for a 0-d tensor")
      for op in ("sum", "mean", "max", "min", "argmax", "argmin", "var", "std", "logsumexp",
                 "softmax", "log_softmax")],
    Case("sum 0-d keepdims", lambda _: t(Z).sum(axis=0, keepdims=True), None, OK(close(Z))),
    Case("max 0-d axis=(0,)", lambda _: t(Z).max(axis=(0,)), None, OK(close(Z))),
    # axes out of range on tensors with dimensions
    *[Case(f"{op} axis={a} of 2-d", lambda _, op=op, a=a: getattr(ember, op)(t(M), axis=a), E,
           f"{op}: axis {a} is out of range for a tensor of 2 dimensions")
      for op, a in (("softmax", 2), ("log_softmax", -3), ("argmax", 2), ("argmin", -3),
                    ("logsumexp", 2), ("sum", 2), ("mean", -3), ("max", 2), ("min", -3),
                    ("var", 2), ("std", -3), ("softmax", -3), ("log_softmax", 2),
                    ("argmax", -3), ("logsumexp", -3))],
    Case("sum axis repeated", lambda _: t(M).sum(axis=(0, 0)), E, "sum: axis 0 is repeated"),
    Case("sum axis (1,-1) same", lambda _: t(M).sum(axis=(1, -1)), E, "sum: axis -1 is repeated"),
    Case("mean axis float", lambda _: t(M).mean(axis=1.5), TypeError,
         "mean: axis must be an int, a tuple of ints or None, got 1.5"),
    Case("max axis str", lambda _: t(M).max(axis="0"), TypeError,
         "max: axis must be an int, a tuple of ints or None, got '0'"),
    Case("argmax axis tuple", lambda _: t(M).argmax(axis=(0, 1)), TypeError,
         "argmax: axis must be an int or None"),
    Case("softmax axis None", lambda _: ember.softmax(t(M), axis=None), TypeError,
         "softmax: axis must be an int"),
    # empty tensors: max/min/argmax/argmin have no value to return
    *[Case(f"{op} of empty", lambda _, op=op: getattr(ember, op)(t(np.zeros(0))), E,
           f"{op}: cannot reduce an empty tensor")
      for op in ("max", "min", "argmax", "argmin")],
    *[Case(f"{op} along an empty axis", lambda _, op=op: getattr(ember, op)(
        t(np.zeros((2, 0))), axis=1), E, f"{op}: cannot reduce an empty tensor")
      for op in ("max", "min", "argmax", "argmin")],
    Case("max over a non-empty axis of an empty tensor",
         lambda _: t(np.zeros((2, 0))).max(axis=0), None, OK(lambda r: r.shape == (0,))),
    Case("sum of empty is 0", lambda _: t(np.zeros(0)).sum(), None, OK(close(0.0))),
    # the other ops with an axis
    Case("concatenate axis out of range", lambda _: ember.concatenate([t(M), t(M)], axis=2), E,
         "concatenate: axis 2 is out of range for 2 dimensions"),
    Case("concatenate 0-d", lambda _: ember.concatenate([t(1.0), t(2.0)]), E,
         "concatenate: 0-d tensors cannot be concatenated"),
    Case("concatenate empty list", lambda _: ember.concatenate([]), E,
         "concatenate: needs at least one tensor"),
    Case("stack axis out of range", lambda _: ember.stack([t(M), t(M)], axis=4), E,
         "stack: axis 4 is out of range"),
    Case("stack shapes differ", lambda _: ember.stack([t([1.0]), t([1.0, 2.0])]), E,
         "stack: "),
    Case("squeeze axis out of range", lambda _: t(M).squeeze(axis=3), E,
         "squeeze: axis 3 is out of range"),
    Case("unsqueeze axis out of range", lambda _: t(M).unsqueeze(5), E,
         "unsqueeze: axis 5 is out of range"),
    Case("flatten axis out of range", lambda _: t(M).flatten(3), E,
         "flatten: axis 3 is out of range"),
    Case("split axis out of range", lambda _: ember.split(t(M), 2, axis=2), E,
         "split: axis 2 is out of range"),
    Case("swapaxes out of range", lambda _: ember.swapaxes(t(M), 0, 2), E,
         "swapaxes: axis 2 is out of range"),
    Case("transpose wrong count", lambda _: t(M).transpose(0, 1, 2), E, "transpose"),
    Case("squeeze 0-d axis 0", lambda _: t(Z).squeeze(axis=0), None, OK(close(Z))),
    Case("unsqueeze 0-d axis 0", lambda _: t(Z).unsqueeze(0), None, OK(close([Z]))),
    Case("flatten 0-d", lambda _: t(Z).flatten(), None, OK(close([Z]))),
    # integer indexing out of range: an IndexError on both backends, never JAX's clamping
    Case("index past the end", lambda _: t([1.0, 2.0, 3.0])[5], IndexError,
         "index 5 is out of bounds for axis 0 with size 3"),
    Case("negative index past the start", lambda _: t([1.0, 2.0, 3.0])[-5], IndexError,
         "index -5 is out of bounds for axis 0 with size 3"),
    Case("index == size", lambda _: t([1.0, 2.0, 3.0])[3], IndexError,
         "index 3 is out of bounds for axis 0 with size 3"),
    Case("second axis out of range", lambda _: t(M)[:, 7], IndexError,
         "index 7 is out of bounds for axis 1 with size 3"),
    Case("int in a tuple", lambda _: t(M)[2, 0], IndexError,
         "index 2 is out of bounds for axis 0 with size 2"),
    Case("list index out of range", lambda _: t([1.0, 2.0, 3.0])[[0, 5]], IndexError,
         "index 5 is out of bounds for axis 0 with size 3"),
    Case("negative list index", lambda _: t([1.0, 2.0, 3.0])[[-4]], IndexError,
         "index -4 is out of bounds for axis 0 with size 3"),
    Case("tensor index out of range", lambda _: t([1.0, 2.0, 3.0])[t([1, 3])], IndexError,
         "index 3 is out of bounds for axis 0 with size 3"),
    Case("numpy index out of range", lambda _: t(M)[np.array([0, 2])], IndexError,
         "index 2 is out of bounds for axis 0 with size 2"),
    Case("index after Ellipsis", lambda _: t(M)[..., 3], IndexError,
         "index 3 is out of bounds for axis 1 with size 3"),
    Case("too many indices", lambda _: t([1.0, 2.0])[0, 0], IndexError,
         "too many indices"),
    Case("float index", lambda _: t([1.0, 2.0])[1.5], IndexError, "getitem: index 1.5"),
    Case("string index", lambda _: t([1.0, 2.0])["a"], IndexError, "getitem: index 'a'"),
    Case("mask of the wrong shape", lambda _: t([1.0, 2.0, 3.0])[np.array([True, False])],
         IndexError, "getitem: "),
    Case("index of a 0-d tensor", lambda _: t(Z)[0], IndexError, "too many indices"),
    Case("in-range negative index", lambda _: t([1.0, 2.0, 3.0])[-1], None, OK(close(3.0))),
    Case("in-range list index", lambda _: t([1.0, 2.0, 3.0])[[2, -3]], None,
         OK(close([3.0, 1.0]))),
    Case("slice past the end is fine", lambda _: t([1.0, 2.0, 3.0])[1:10], None,
         OK(close([2.0, 3.0]))),
    # layer sizes: positive integers (bool is not an integer here)
    Case("Linear float in", lambda _: nn.Linear(3.5, 2), E,
         "Linear: in_features must be a positive integer, got 3.5"),
    Case("Linear negative out", lambda _: nn.Linear(3, -2), E,
         "Linear: out_features must be a positive integer, got -2"),
    Case("Linear zero out", lambda _: nn.Linear(3, 0), E,
         "Linear: out_features must be a positive integer, got 0"),
    Case("Linear bool in", lambda _: nn.Linear(True, 2), E,
         "Linear: in_features must be a positive integer, got True"),
    Case("Linear str in", lambda _: nn.Linear("3", 2), E,
         "Linear: in_features must be a positive integer, got '3'"),
    Case("Linear None out", lambda _: nn.Linear(3, None), E,
         "Linear: out_features must be a positive integer, got None"),
    Case("Linear numpy int ok", lambda _: nn.Linear(np.int64(3), 2).weight.shape, None,
         OK(lambda s: s == (2, 3))),
    Case("Linear float-integral", lambda _: nn.Linear(3.0, 2), E,
         "Linear: in_features must be a positive integer, got 3.0"),
    Case("MLP hidden float", lambda _: nn.MLP(2, [4.5], 1), E,
         "Linear: out_features must be a positive integer, got 4.5"),
    Case("MLP out negative", lambda _: nn.MLP(2, [4], -1), E,
         "Linear: out_features must be a positive integer, got -1"),
    Case("BatchNorm1D float", lambda _: nn.BatchNorm1D(2.5), E,
         "BatchNorm1D: num_features must be a positive integer, got 2.5"),
    Case("BatchNorm2D negative", lambda _: nn.BatchNorm2D(-3), E,
         "BatchNorm2D: num_features must be a positive integer, got -3"),
    Case("LayerNorm negative", lambda _: nn.LayerNorm(-4), E,
         "LayerNorm: normalized_shape must be positive integers, got -4"),
    Case("LayerNorm float", lambda _: nn.LayerNorm((2, 2.5)), E,
         "LayerNorm: normalized_shape must be positive integers, got (2, 2.5)"),
    Case("Dropout p=1.5", lambda _: nn.Dropout(1.5), E, "Dropout: p is the probability"),
    Case("Dropout p=nan", lambda _: nn.Dropout(float("nan")), E, "Dropout: p is the probability"),
    Case("BatchNorm eps=0", lambda _: nn.BatchNorm1D(3, eps=0.0), E,
         "BatchNorm1D: eps must be a finite number > 0, got 0.0"),
    Case("BatchNorm momentum=2", lambda _: nn.BatchNorm1D(3, momentum=2.0), E,
         "BatchNorm1D: momentum must be in [0, 1] or None, got 2.0"),
    Case("LayerNorm eps negative", lambda _: nn.LayerNorm(3, eps=-1e-5), E,
         "LayerNorm: eps must be a finite number > 0, got -1e-05"),
    # from_config: the same rule for the sizes in a config, naming the entry and the field
    *[Case(f"from_config units={u!r}",
           lambda _, u=u: nn.from_config([{"type": "dense", "units": u}], input_shape=(3,)),
           ConfigError, ("entry 0 ('dense')", f"units must be a positive integer, got {u!r}"))
      for u in (3.7, True, -3, 0, "8", 2.0)],
    Case("from_config in_features float",
         lambda _: nn.from_config([{"type": "dense", "units": 2, "in_features": 2.5}]),
         ConfigError, ("entry 0 ('dense')", "in_features must be a positive integer, got 2.5")),
    Case("from_config second entry",
         lambda _: nn.from_config([{"type": "dense", "units": 4},
                                   {"type": "dense", "units": -1}], input_shape=(3,)),
         ConfigError, ("entry 1 ('dense')", "units must be a positive integer, got -1")),
    Case("ember summary units=3.7",
         lambda tmp: cli("summary", config_file(tmp, "c.toml", 3.7)), CliExit2Error,
         ("c.toml", "units must be a positive integer, got 3.7"), NUMPY),
    Case("ember summary units=true",
         lambda tmp: cli("summary", config_file(tmp, "c.toml", "true")), CliExit2Error,
         ("c.toml", "units must be a positive integer, got True"), NUMPY),
    Case("ember summary units=-3",
         lambda tmp: cli("summary", config_file(tmp, "c.toml", -3)), CliExit2Error,
         ("c.toml", "units must be a positive integer, got -3"), NUMPY),
    # optimizer hyperparameters: finite, positive learning rates; ranges that agree
    *[Case(f"{name} lr={lr!r}", lambda _, cls=cls, lr=lr: opt_step(lambda p: cls(p, lr=lr)),
           E, f"{name}: lr must be a finite number > 0, got {lr!r}")
      for name, cls in (("SGD", optim.SGD), ("Adam", optim.Adam), ("AdamW", optim.AdamW),
                        ("RMSProp", optim.RMSProp), ("AdaGrad", optim.AdaGrad))
      for lr in (math.inf, -math.inf, math.nan)],
    Case("SGD lr=0", lambda _: opt_step(lambda p: optim.SGD(p, lr=0)), E,
         "SGD: lr must be a finite number > 0, got 0"),
    Case("SGD lr=-0.1", lambda _: opt_step(lambda p: optim.SGD(p, lr=-0.1)), E,
         "SGD: lr must be a finite number > 0, got -0.1"),
    Case("SGD lr=True", lambda _: opt_step(lambda p: optim.SGD(p, lr=True)), E,
         "SGD: lr must be a finite number > 0, got True"),
    Case("SGD lr='0.1'", lambda _: opt_step(lambda p: optim.SGD(p, lr="0.1")), E,
         "SGD: lr must be a finite number > 0, got '0.1'"),
    Case("SGD momentum=1.5", lambda _: opt_step(lambda p: optim.SGD(p, lr=0.1, momentum=1.5)),
         E, "SGD: momentum must be in [0, 1), got 1.5"),
    Case("SGD momentum=1", lambda _: opt_step(lambda p: optim.SGD(p, lr=0.1, momentum=1.0)),
         E, "SGD: momentum must be in [0, 1), got 1.0"),
    Case("SGD momentum=-0.1", lambda _: opt_step(lambda p: optim.SGD(p, lr=0.1, momentum=-0.1)),
         E, "SGD: momentum must be in [0, 1), got -0.1"),
    Case("Momentum beta=1.5", lambda _: opt_step(lambda p: optim.Momentum(p, lr=0.1, beta=1.5)),
         E, "Momentum: beta must be in [0, 1), got 1.5"),
    Case("RMSProp momentum=1.5",
         lambda _: opt_step(lambda p: optim.RMSProp(p, lr=0.1, momentum=1.5)), E,
         "RMSProp: momentum must be in [0, 1), got 1.5"),
    Case("SGD weight_decay=inf",
         lambda _: opt_step(lambda p: optim.SGD(p, lr=0.1, weight_decay=math.inf)), E,
         "SGD: weight_decay must be"),
    Case("Adam eps=0", lambda _: opt_step(lambda p: optim.Adam(p, lr=0.1, eps=0.0)), E,
         "Adam: eps must be a finite number > 0, got 0.0"),
    Case("Adam beta2=1", lambda _: opt_step(lambda p: optim.Adam(p, lr=0.1, betas=(0.9, 1.0))),
         E, "Adam: betas must be two numbers in [0, 1)"),
    Case("Adam eps=inf", lambda _: opt_step(lambda p: optim.Adam(p, lr=0.1, eps=math.inf)), E,
         "Adam: eps must be a finite number > 0, got inf"),
    Case("group key misspelt",
         lambda _: optim.SGD([{"params": [t([1.0], requires_grad=True)], "lrr": 0.5}], lr=0.1),
         E, ("SGD: param group 0: unknown key 'lrr'", "did you mean 'lr'")),
    Case("group key of another optimizer",
         lambda _: optim.SGD([{"params": [t([1.0], requires_grad=True)], "betas": (0.9, 0.99)}],
                             lr=0.1), E, "SGD: param group 0: unknown key 'betas'"),
    Case("add_param_group key misspelt",
         lambda _: optim.Adam([t([1.0], requires_grad=True)], lr=0.1).add_param_group(
             {"params": [t([2.0], requires_grad=True)], "weight_decy": 0.1}), E,
         ("Adam: param group 1: unknown key 'weight_decy'", "did you mean 'weight_decay'")),
    Case("group lr=inf",
         lambda _: optim.SGD([{"params": [t([1.0], requires_grad=True)], "lr": math.inf}],
                             lr=0.1), E,
         "SGD: param group 0: lr must be a finite number > 0, got inf"),
    Case("group momentum=2",
         lambda _: optim.SGD([{"params": [t([1.0], requires_grad=True)], "momentum": 2.0}],
                             lr=0.1), E, "SGD: param group 0: momentum must be in [0, 1)"),
    Case("set_lr inf", lambda _: optim.SGD([t([1.0], requires_grad=True)], lr=0.1).set_lr(
        math.inf), E, "SGD.set_lr: lr must be a finite number > 0, got inf"),
    Case("set_lr nan", lambda _: optim.SGD([t([1.0], requires_grad=True)], lr=0.1).set_lr(
        math.nan), E, "SGD.set_lr: lr must be a finite number > 0, got nan"),
    Case("set_lr negative array",
         lambda _: optim.SGD([t([1.0], requires_grad=True)], lr=0.1).set_lr(np.float32(-1.0)),
         E, "SGD.set_lr: lr must be a finite number > 0, got -1.0"),
    Case("schedule negative at start", lambda _: sgd_schedule(lambda s: -0.1 + 0 * s), E,
         "SGD: the schedule returned lr=-0.1 at step 0"),
    Case("schedule inf later", lambda _: sgd_schedule(lambda s: [0.1, math.inf][int(s)]), E,
         "SGD: the schedule returned lr=inf at step 1"),
    Case("schedule goes negative", lambda _: sgd_schedule(lambda s: 0.1 - 0.2 * s, 3), E,
         "SGD: the schedule returned lr=-0.1 at step 1"),
    Case("schedule NaN", lambda _: sgd_schedule(lambda s: math.nan + 0 * s), E,
         "SGD: the schedule returned lr=nan at step 0"),
    Case("set_schedule bad", lambda _: optim.SGD([t([1.0], requires_grad=True)], lr=0.1)
         .set_schedule(lambda s: -1.0 + 0 * s), E, "SGD: the schedule returned lr=-1.0 at step 0"),
    Case("schedule fine", lambda _: sgd_schedule(lambda s: 0.5 / (1 + s)), None,
         OK(close([1.0 - 0.25 - 0.125, -2.0 - 0.125 - 0.0625]))),
    # BinaryCrossentropy: probabilities in [0, 1] and targets in [0, 1]
    Case("BCE target 1.5", lambda _: bce([0.5, 0.5], [1.5, 0.0]), E,
         ("BinaryCrossentropy: targets must be in [0, 1]", "1.5")),
    Case("BCE target -0.5", lambda _: bce([0.5, 0.5], [0.0, -0.5]), E,
         ("BinaryCrossentropy: targets must be in [0, 1]", "-0.5")),
    Case("BCE from_logits target 2", lambda _: bce([0.5, 0.5], [2.0, 0.0], from_logits=True), E,
         ("BinaryCrossentropy: targets must be in [0, 1]", "2.0")),
    Case("BCE fed logits", lambda _: bce([2.5, -1.0], [1.0, 0.0]), E,
         ("BinaryCrossentropy: predictions must be probabilities in [0, 1]",
          "from_logits=True")),
    Case("BCE fed negative", lambda _: bce([0.5, -0.1], [1.0, 0.0]), E,
         ("BinaryCrossentropy: predictions must be probabilities in [0, 1]", "-0.1")),
    Case("binary_crossentropy fn fed logits",
         lambda _: nn.functional.binary_cross_entropy(t([3.0]), t([1.0])), E,
         "from_logits=True"),
    Case("BCE at the edges ok", lambda _: bce([0.0, 1.0], [0.0, 1.0]), None,
         OK(lambda r: abs(r.item()) < 1e-6)),
    Case("BCE soft targets ok", lambda _: bce([0.5], [0.25]), None, OK(close(math.log(2)))),
    Case("CCE fed logits",
         lambda _: nn.CategoricalCrossentropy()(t([[2.0, -1.0]]), t([[1.0, 0.0]])), E,
         ("CategoricalCrossentropy: predictions must be probabilities", "from_logits=True")),
    Case("sparse CCE fed logits",
         lambda _: nn.SparseCategoricalCrossentropy()(t([[2.0, -1.0]]), [0]), E,
         ("SparseCategoricalCrossentropy: predictions must be probabilities",
          "from_logits=True")),
    Case("CCE target negative",
         lambda _: nn.CategoricalCrossentropy()(t([[0.5, 0.5]]), t([[1.5, -0.5]])), E,
         ("CategoricalCrossentropy: targets must be in [0, 1]", "1.5")),
    # integer one-hot targets for cross-entropy
    Case("CrossEntropyLoss int one-hot", lambda _: nn.CrossEntropyLoss()(
        t([[0.0, 0.0], [0.0, math.log(3.0)]]), np.array([[1, 0], [0, 1]])), None,
        OK(close((math.log(2) + math.log(4 / 3)) / 2))),
    Case("softmax_cross_entropy int one-hot", lambda _: ember.softmax_cross_entropy(
        t([[0.0, 0.0]]), np.array([[0, 1]], dtype=np.int32)), None, OK(close([math.log(2)]))),
    Case("CrossEntropyLoss bool one-hot", lambda _: nn.CrossEntropyLoss()(
        t([[0.0, 0.0]]), np.array([[True, False]])), None, OK(close(math.log(2)))),
    Case("int one-hot with a 2", lambda _: nn.CrossEntropyLoss()(
        t([[0.0, 0.0]]), np.array([[2, 0]])), E,
        ("CrossEntropyLoss", "one-hot")),
    Case("sparse label too big", lambda _: nn.CrossEntropyLoss()(t([[0.0, 0.0]]), [2]), E,
         "label 2 at index (0,) is out of range for 2 classes"),
    Case("sparse label negative", lambda _: nn.CrossEntropyLoss()(t([[0.0, 0.0]]), [-1]), E,
         "label -1 at index (0,) is out of range for 2 classes"),
    Case("sparse label fractional", lambda _: nn.CrossEntropyLoss()(t([[0.0, 0.0]]), [0.5]), E,
         "labels must be integer class indices, got 0.5"),
    # checkpoints: everything that is loaded is hashed; leftovers of a killed writer are ignored
    Case("checkpoint epoch edited", lambda tmp: edited_checkpoint(
        tmp, lambda p: p["meta"].update(epoch=1)), CheckpointError,
        ("checkpoint.json", "SHA-256 mismatch", "meta")),
    Case("checkpoint history edited", lambda tmp: edited_checkpoint(
        tmp, lambda p: p["meta"].update(history={"loss": [0.0]})), CheckpointError,
        ("checkpoint.json", "SHA-256 mismatch")),
    Case("checkpoint group list edited", lambda tmp: edited_checkpoint(
        tmp, lambda p: p["arrays"]["groups"].update(extra=[])), CheckpointError,
        "checkpoint.json"),
    Case("checkpoint meta hash removed", lambda tmp: edited_checkpoint(
        tmp, lambda p: p.pop("sha256", None)), CheckpointError,
        ("checkpoint.json", "meta")),
    Case("leftover tmp of the first write: read", lambda tmp: read_checkpoint(
        killed_first_write(tmp)), FileNotFoundError, "no checkpoint in"),
    Case("leftover tmp of the first write: fit resumes from scratch",
         lambda tmp: tiny_fit(tmp, resume_from=killed_first_write(tmp)).epoch, None,
         OK(lambda e: list(e) == [0]), NUMPY),
    Case("leftover tmp is cleaned on resume",
         lambda tmp: (tiny_fit(tmp, resume_from=killed_first_write(tmp)),
                      sorted(p.name for p in (tmp / "ckpt").iterdir())), None,
         OK(lambda r: not any(n.endswith(".tmp") for n in r[1])), NUMPY),
    Case("pickle as checkpoint.json", lambda tmp: (
        (tmp / "c").mkdir(), (tmp / "c" / "checkpoint.json").write_bytes(b"\x80\x04K\x01."),
        read_checkpoint(tmp / "c")), CheckpointError, ("checkpoint.json", "pickle")),
    Case("fit resume from a file", lambda tmp: (
        (tmp / "f").write_text("x"), tiny_fit(tmp, resume_from=tmp / "f")), (ValueError,
         FileNotFoundError, NotADirectoryError), "f"),
    # the command line: exit 2 with one line naming the file or the flag, never a traceback
    Case("predict empty npy", lambda tmp: cli("predict", run_dir(), npy(tmp, np.zeros((0, 2)))),
         CliExit2Error, ("x.npy", "no samples"), NUMPY),
    Case("predict all-NaN npy",
         lambda tmp: cli("predict", run_dir(), npy(tmp, np.full((3, 2), np.nan))), CliExit2Error,
         ("x.npy", "NaN"), NUMPY),
    Case("predict some NaN npy",
         lambda tmp: cli("predict", run_dir(), npy(tmp, [[0.0, np.nan], [1.0, 1.0]])),
         CliExit2Error, ("x.npy", "NaN"), NUMPY),
    Case("predict -o into a missing folder",
         lambda tmp: cli("predict", run_dir(), npy(tmp, np.zeros((3, 2))), "-o",
                         tmp / "nope" / "p.npy"), CliExit2Error, ("-o", "does not exist"), NUMPY),
    Case("predict object npy",
         lambda tmp: cli("predict", run_dir(), npy(tmp, np.array([None, 1], dtype=object))),
         CliExit2Error, "x.npy", NUMPY),
    Case("predict string npy",
         lambda tmp: cli("predict", run_dir(), npy(tmp, np.array([["a", "b"]]))),
         CliExit2Error, "x.npy", NUMPY),
    Case("--runs-dir is a file", lambda tmp: (
        (tmp / "f").write_text(""), cli("train", "--preset", "xor", "--runs-dir", tmp / "f",
                                        "--epochs", 1, "--no-plots")), CliExit2Error,
        ("--runs-dir", "not a folder"), NUMPY),
    Case("config name with spaces and non-ASCII", lambda tmp: cli(
        "train", config_file(tmp, "mon modèle ü.toml"), "--runs-dir", tmp / "r", "--no-plots",
        "--set", "data.n=32", "--backend", "numpy"), None,
        OK(lambda r: ": mon-mod-le\n" in r[1]), NUMPY),
    Case("follow-up commands are shell-quoted", lambda tmp: (tmp, cli(
        "train", "--preset", "xor", "--runs-dir", tmp / "a b", "--no-plots", "--epochs", 1,
        "--set", "data.n=32", "--backend", "numpy")), None,
        OK(lambda r: f"ember evaluate '{r[0] / 'a b'}/xor-" in r[1][1]), NUMPY),
    Case("ember train --resume after a kill in the first write", lambda tmp: cli(
        "train", "--resume", _first_write_killed_run(tmp), "--no-plots"), None,
        OK(lambda r: "starting from the beginning" in r[1] and "trained 2 epochs" in r[1]),
        NUMPY),
    Case("ember info without JAX", lambda _: info_without_jax(), None,
         OK(lambda out: "jax" in out and "not installed" in out), NUMPY),
    Case("damaged checkpoint", lambda tmp: (
        (run_copy(tmp) / "checkpoint" / "checkpoint.json").write_text("{oops"),
        cli("evaluate", tmp / "run")), CliExit2Error, ("checkpoint.json", "not valid JSON"), NUMPY),
    Case("pickle checkpoint", lambda tmp: (
        (run_copy(tmp) / "checkpoint" / "checkpoint.json").write_bytes(b"\x80\x04K\x01."),
        cli("predict", tmp / "run", npy(tmp, np.zeros((3, 2))))), CliExit2Error,
        ("checkpoint.json", "pickle"), NUMPY),
    # low precision: master weights in float32; bfloat16 on both backends
    Case("float16 Adam step is finite", lambda _: opt_step(
        lambda p: optim.Adam(p, lr=1e-3), 3, "float16"), None,
        OK(lambda w: w.dtype == np.float16 and np.isfinite(w.numpy().astype(float)).all()
           and np.allclose(w.numpy().astype(float), [1.0 - 3e-3, -2.0 - 3e-3], atol=2e-3))),
    Case("float16 AdamW step is finite", lambda _: opt_step(
        lambda p: optim.AdamW(p, lr=1e-3), 2, "float16"), None,
        OK(lambda w: np.isfinite(w.numpy().astype(float)).all())),
    Case("float16 RMSProp step is finite", lambda _: opt_step(
        lambda p: optim.RMSProp(p, lr=1e-3), 2, "float16"), None,
        OK(lambda w: np.isfinite(w.numpy().astype(float)).all())),
    Case("float16 AdaGrad step is finite", lambda _: opt_step(
        lambda p: optim.AdaGrad(p, lr=1e-3), 2, "float16"), None,
        OK(lambda w: np.isfinite(w.numpy().astype(float)).all())),
    Case("float16 small updates accumulate", lambda _: opt_step(
        lambda p: optim.SGD(p, lr=1e-4), 8, "float16"), None,
        OK(lambda w: abs(float(w.numpy()[0]) - (1.0 - 8 * 0.5e-4)) < 1e-3)),
    Case("bfloat16 tensor", lambda _: t([1.0, 2.5], dtype="bfloat16"), TypeError,
         ("bfloat16 is not supported", "use float16")),
    Case("bfloat16 Linear", lambda _: nn.Linear(2, 3, dtype="bfloat16"), TypeError,
         "bfloat16 is not supported"),
    Case("bfloat16 zeros", lambda _: ember.zeros(2, dtype="bfloat16"), TypeError,
         "bfloat16 is not supported"),
    Case("bfloat16 as_dtype of the type", lambda _: ember.as_dtype(
        __import__("ml_dtypes").bfloat16), TypeError, "bfloat16 is not supported"),
    Case("float16 Linear trains with Adam", lambda _: _f16_linear_step(), None,
         OK(lambda r: r[0] == np.float16 and np.isfinite(r[1]).all() and (r[1] != r[2]).any())),
    Case("complex dtype refused", lambda _: t([1.0], dtype="complex64"), TypeError,
         "ember supports floating point"),
    Case("unknown dtype", lambda _: t([1.0], dtype="float33"), TypeError, "not a dtype"),
    # creation and shapes
    Case("zeros negative", lambda _: ember.zeros(2, -3), E, "zeros"),
    Case("zeros float", lambda _: ember.zeros(2.5), (TypeError, ValueError), "zeros"),
    Case("ones negative", lambda _: ember.ones((-1,)), E, "ones"),
    Case("randn negative", lambda _: ember.randn(-2), E, "randn"),
    Case("rand float", lambda _: ember.rand(1.5), (TypeError, ValueError), "rand"),
    Case("full negative", lambda _: ember.full((2, -1), 1.0), E, "full"),
    Case("tensor of None", lambda _: t(None), TypeError, "None"),
    Case("tensor of ragged list", lambda _: t([[1.0, 2.0], [3.0]]), (TypeError, ValueError),
         "tensor"),
    Case("tensor of str", lambda _: t("abc"), TypeError, "str"),
    Case("reshape wrong size", lambda _: t(M).reshape(4), E, "reshape"),
    Case("reshape two -1", lambda _: t(M).reshape(-1, -1), E, "reshape"),
    Case("broadcast mismatch", lambda _: t(M) + t([1.0, 2.0]), E, "(2, 3)"),
    Case("matmul mismatch", lambda _: t(M) @ t(M), E, "matmul"),
    Case("matmul 0-d", lambda _: t(Z) @ t(M), E, "matmul"),
    Case("item of many", lambda _: t([1.0, 2.0]).item(), E, "item"),
    Case("backward of non-scalar", lambda _: (t([1.0, 2.0], requires_grad=True) * 2).backward(),
         RuntimeError, "backward"),
    Case("backward without grad", lambda _: t([1.0]).sum().backward(), RuntimeError,
         "requires_grad"),
    Case("set_backend unknown", lambda _: ember.set_backend("torch"), E, "unknown backend"),
    Case("manual_seed str", lambda _: ember.manual_seed("a"), ValueError,
         "manual_seed expects a non-negative integer, got 'a'"),
    Case("manual_seed negative", lambda _: ember.manual_seed(-1), E, "manual_seed"),
    # data
    Case("DataLoader batch 0", lambda _: ember.data.DataLoader((np.ones((4, 2)),), batch_size=0),
         E, "batch_size"),
    Case("DataLoader batch float",
         lambda _: ember.data.DataLoader((np.ones((4, 2)),), batch_size=2.5), E, "batch_size"),
    Case("DataLoader lengths differ",
         lambda _: ember.data.DataLoader((np.ones((4, 2)), np.ones(3)), batch_size=2), E,
         "DataLoader"),
    Case("fit without y", lambda tmp: tiny_fit(tmp, y=None), E,
         ("CrossEntropyLoss: the target is None", "fit(x, y)")),
    Case("evaluate without y", lambda tmp: ember.Trainer(
        nn.Linear(2, 2), nn.MSE(), optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)).evaluate(
        np.ones((4, 2), np.float32), verbose=0), E, "MSE: the target is None"),
    Case("loss called without target", lambda _: nn.BinaryCrossentropy()(t([0.5]), None), E,
         "BinaryCrossentropy: the target is None"),
    # class labels, checked on the host before fit/evaluate run a step (on JAX a compiled step
    # would otherwise give only a NaN loss)
    Case("fit label = classes", lambda _: labelled([0, 1, 2, 3, 0, 1]), E,
         ("Trainer.fit: y[3] = 3 is not a class of CrossEntropyLoss", "outputs 3 classes",
          "[0, 3)")),
    Case("fit label negative", lambda _: labelled(
        [0, -1, 2, 0, 1, 2], nn.SparseCategoricalCrossentropy(from_logits=True)), E,
        ("y[1] = -1 is not a class of SparseCategoricalCrossentropy", "3 classes")),
    Case("fit label far out", lambda _: labelled([0, 1, 2, 0, 1, 99]), E,
         ("y[5] = 99", "1 label of 6 is out of range (min 0, max 99)")),
    Case("fit labels (n, 1) out", lambda _: labelled([[0], [1], [2], [0], [7], [2]]), E,
         ("y[4, 0] = 7", "CrossEntropyLoss")),
    Case("fit labels (n, 1) fine", lambda _: labelled([[0], [1], [2], [0], [1], [2]]), None,
         OK(lambda h: len(h.epoch) == 1)),
    Case("fit one-hot targets are not labels", lambda _: labelled(np.eye(3, dtype=np.float32)[
        [0, 1, 2, 0, 1, 2]]), None, OK(lambda h: len(h.epoch) == 1)),
    Case("fit float label not whole", lambda _: labelled(
        np.array([0, 1, 2, 0.5, 1, 2], np.float32)), E,
        ("Trainer.fit: y[3] = 0.5 is not a class index", "CrossEntropyLoss")),
    Case("evaluate label = classes", lambda _: labelled([0, 1, 2, 0, 3, 1], how="evaluate"), E,
         ("Trainer.evaluate: y[4] = 3 is not a class of CrossEntropyLoss", "3 classes")),
    Case("validation label = classes", lambda _: labelled([0, 5, 2, 0, 1, 1], how="validation"),
         E, ("Trainer.fit: validation y[1] = 5 is not a class", "3 classes")),
    Case("DataLoader label = classes", lambda _: labelled([0, 1, 2, 4, 1, 1], how="loader"), E,
         ("Trainer.fit: y[3] = 4 is not a class of CrossEntropyLoss",)),
    Case("weighted loss label out", lambda _: labelled(
        [0, 1, 2, 0, 1, 3], 0.5 * nn.CrossEntropyLoss() + 0.5 * nn.CrossEntropyLoss()), E,
        "y[5] = 3 is not a class of CrossEntropyLoss"),
    Case("ignore_index exempt", lambda _: labelled([0, -100, 2, 0, -100, 1], IgnoringCE()),
         None, OK(lambda h: len(h.epoch) == 1)),
    Case("ignore_index other label out", lambda _: labelled([0, -100, 2, 0, 3, 1], IgnoringCE()),
         E, ("y[4] = 3 is not a class of IgnoringCE", "(or equal ignore_index=-100)")),
    # the NaN guard: the message names data as a cause; the interrupted epoch is not finished
    Case("NaN guard names bad data", lambda _: nan_stop(None)[0], None,
         OK(lambda m: "epoch 0, step 1" in m and "bad data (a label outside the loss's "
            "classes, NaN or inf inputs" in m and "learning rate" in m)),
    Case("NaN stop not a finished epoch", lambda _: nan_stop(None)[1], None,
         OK(lambda tr: tr.history.epoch == [] and tr._epoch == 0
            and (tr._train_loader.epoch, tr._train_loader.position) == (0, 1))),
    Case("NaN stop in a scan not finished", lambda _: nan_stop(None, spe="epoch")[1], None,
         OK(lambda tr: tr.history.epoch == [] and tr._epoch == 0
            and (tr._train_loader.epoch, tr._train_loader.position) == (0, 1))),
    # indexing inside ember.jit: JAX clamps; checked=True reports it (NumPy raises eagerly)
    Case("jit checked index past the end", lambda _: ember.jit(lambda a, i: a[i], checked=True)(
        t([1.0, 2.0, 3.0]), t(5)), IndexError, "5"),
    Case("jit checked index (jax message)", lambda _: ember.jit(
        lambda a, i: a[i], checked=True)(t([1.0, 2.0, 3.0]), t(-5)), IndexError,
        ("ember.jit(<lambda>, checked=True)", "is out of bounds for axis 0 with size 3",
         "changed no state"), ("jax",)),
    Case("jit checked step keeps state", lambda _: checked_step(7), None,
         OK(lambda r: r[0] is not None and "checked=True" in r[0] and "index 7" in r[0]
            and np.array_equal(r[1], r[2])), ("jax",)),
    Case("jit checked step in range", lambda _: checked_step(1), None,
         OK(lambda r: r[0] is None and not np.array_equal(r[1], r[2])), ("jax",)),
    Case("jit unchecked clamps (documented)", lambda _: ember.jit(lambda a, i: a[i])(
        t([1.0, 2.0, 3.0]), t(5)).item(), None, OK(lambda v: v == 3.0), ("jax",)),
    Case("jit checked with mesh", lambda _: ember.jit(lambda a: a, checked=True, mesh=1), E,
         "checked=True does not combine with mesh="),
    Case("NaN stop in epoch 1 not finished", lambda _: nan_stop(4)[1], None,
         OK(lambda tr: tr.history.epoch == [0] and tr._epoch == 1
            and (tr._train_loader.epoch, tr._train_loader.position) == (1, 1)), NUMPY),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("backend_name", BOTH)
def test_bad_input(case: Case, backend_name: str, tmp_path: Path) -> None:
    if backend_name not in case.backends:
        pytest.skip(f"a {'/'.join(case.backends)} row")
    ember.set_backend(backend_name)
    ember.manual_seed(0)
    if case.error is None:
        assert isinstance(case.fragment, OK)
        result = case.call(tmp_path)
        assert case.fragment.check(result) is not False, result
        return
    with pytest.raises(case.error) as info:
        case.call(tmp_path)
    fragments = (case.fragment,) if isinstance(case.fragment, str) else case.fragment
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


def test_the_catalogue_is_large():
    assert len(CASES) >= 150, len(CASES)
    assert len({c.name for c in CASES}) == len(CASES), "row names must be unique"


def test_a_resume_after_a_nan_stop_runs_the_interrupted_epoch_on(tmp_path: Path) -> None:
    """NumPy: a NaN at epoch 1, step 1 stops training; a checkpoint saved then resumes at that
    step of epoch 1 (not at epoch 2), and the resumed run ends bit-identical to one that never
    met the NaN (the NaN step changed nothing)."""
    ember.set_backend("numpy")
    message, stopped = nan_stop(call=4)
    assert "epoch 1, step 1" in message
    assert stopped.history.epoch == [0] and stopped._epoch == 1
    stopped.save_checkpoint(tmp_path / "ckpt")
    meta = read_checkpoint(tmp_path / "ckpt")[1]
    assert meta["epoch"] == 1 and meta["data"]["epoch"] == 1 and meta["data"]["position"] == 1
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(6, 2)
    y = np.array([0, 1, 2, 0, 1, 2])

    def trainer() -> Any:
        ember.manual_seed(0)
        model = nn.Linear(2, 3)
        return ember.Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))

    resumed, plain = trainer(), trainer()
    h = resumed.fit(x, y, epochs=3, batch_size=2, shuffle=False, verbose=0,
                    resume_from=tmp_path / "ckpt")
    plain.fit(x, y, epochs=3, batch_size=2, shuffle=False, verbose=0)
    assert h.epoch == [0, 1, 2]
    assert h.history["loss"][0] == plain.history.history["loss"][0]
    for key, value in plain.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[key], value, err_msg=key)
