"""Configs of ``ember train``: reading (TOML / JSON / presets), overrides, checking, resolving,
and building the data, the model and the Trainer they describe.

Every problem with a config is a :class:`CliError` whose one-line message names the file (or the
command-line flag that set the value), the key and what is allowed; ``ember`` prints it and exits
with status 2.

Example:
    >>> from ember.cli.config import read_preset, resolve
    >>> raw, source = read_preset("xor")
    >>> cfg = resolve(raw, source)
    >>> cfg["data"]["name"], cfg["epochs"], cfg["optimizer"]["name"]
    ('xor', 30, 'adam')
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np  # data sets are host arrays until the DataLoader moves them

from ember.nn.config import takes_images
from ember.optim.lr import check_lr

__all__ = [
    "CliError",
    "Source",
    "TOP_KEYS",
    "DATA_SETS",
    "SYNTHETIC",
    "Data",
    "preset_names",
    "read_preset",
    "read_config_file",
    "read_run_config",
    "apply_overrides",
    "resolve",
    "load_data",
    "finalize",
    "fit_inputs",
    "build_model",
    "build_trainer",
    "build_callbacks",
    "check_fit",
]

#: the keys of a config, in the order ``config.json`` writes them
TOP_KEYS = ("name", "model", "input_shape", "data", "loss", "optimizer", "epochs", "batch_size",
            "metrics", "backend", "seed", "validation_split", "callbacks", "steps_per_execution",
            "accumulate_steps")

SYNTHETIC = ("spirals", "ellipses", "moons", "circles", "xor", "blobs")
_IMAGES = ("mnist", "mnist-5k", "fashion-mnist")
#: the data sets a config can name
DATA_SETS = SYNTHETIC + _IMAGES


class CliError(Exception):
    """A mistake in what the user asked for: one line for stderr and the exit status.

    Example:
        >>> e = CliError("config.toml: epochs: expected an integer >= 1, got 0")
        >>> str(e), e.code
        ('config.toml: epochs: expected an integer >= 1, got 0', 2)
    """

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Source:
    """Where a config came from: what errors name, the folder relative paths start from, and
    which keys the command line set (``{"epochs": "--epochs"}``), so errors name the flag.

    Example:
        >>> from pathlib import Path
        >>> src = Source("config.toml", Path("."), {"optimizer.lr": "--lr"})
        >>> str(src.error("optimizer.lr", "expected a number > 0, got -1"))
        '--lr: optimizer.lr: expected a number > 0, got -1'
        >>> src.where("epochs")
        'config.toml'
    """

    label: str
    base: Path
    origins: dict[str, str] = field(default_factory=dict)

    def where(self, key: str) -> str:
        """The flag that set ``key`` (or a key above it), else the config's label."""
        parts = key.split(".")
        for i in range(len(parts), 0, -1):
            origin = self.origins.get(".".join(parts[:i]))
            if origin is not None:
                return origin
        return self.label

    def error(self, key: str, message: str) -> CliError:
        """``CliError("<where>: <key>: <message>")``."""
        return CliError(f"{self.where(key)}: {key}: {message}")


# -- reading ---------------------------------------------------------------------------------------

def _loads_toml(text: str, label: str) -> Any:
    try:
        toml: Any = importlib.import_module("tomllib")
    except ModuleNotFoundError:  # Python 3.10
        try:
            toml = importlib.import_module("tomli")
        except ModuleNotFoundError:
            raise CliError(f"{label}: reading TOML needs Python 3.11 or newer (or `pip install "
                           f"tomli`); on this Python write the config as JSON") from None
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as e:
        raise CliError(f"{label}: not valid TOML: {e}") from None


def _parse(text: str, label: str, kind: str) -> dict[str, Any]:
    if kind == "toml":
        data = _loads_toml(text, label)
    else:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise CliError(f"{label}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CliError(f"{label}: a config is a table of keys ({', '.join(TOP_KEYS)}), got "
                       f"{_show(data)}")
    return data


def _presets_dir() -> Any:
    return resources.files("ember") / "presets"


def preset_names() -> list[str]:
    """The presets shipped with ember (``ember train --preset NAME``).

    Example:
        >>> preset_names()[:4], "shakespeare-char" in preset_names()
        (['mnist-cnn', 'mnist-mlp', 'names', 'names-bigram'], True)
    """
    return sorted(p.name[:-5] for p in _presets_dir().iterdir() if p.name.endswith(".toml"))


def read_preset(name: str) -> tuple[dict[str, Any], Source]:
    """The raw config of a preset and its :class:`Source`.

    Example:
        >>> raw, src = read_preset("spirals")
        >>> raw["name"], src.label
        ('spirals', 'spirals.toml (preset)')
    """
    names = preset_names()
    if name not in names:
        raise CliError(f"--preset: unknown preset {name!r}{_did_you_mean(name, names)}; choose "
                       f"one of {', '.join(names)}")
    label = f"{name}.toml (preset)"
    text = (_presets_dir() / f"{name}.toml").read_text(encoding="utf-8")
    return _parse(text, label, "toml"), Source(label, Path.cwd())


def read_config_file(path: str) -> tuple[dict[str, Any], Source]:
    """The raw config in a ``.toml`` or ``.json`` file; relative paths in it are resolved
    against the file's folder.

    Example:
        >>> import json, os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "c.json")
        >>> _ = open(path, "w").write(json.dumps({"epochs": 3}))
        >>> read_config_file(path)[0]
        {'epochs': 3}
    """
    p = Path(path)
    if p.is_dir():
        hint = (f" (a run folder: continue it with `ember train --resume {path}`)"
                if (p / "config.json").is_file() else "")
        raise CliError(f"{path}: is a folder, not a config file{hint}")
    if not p.is_file():
        raise CliError(f"{path}: no such config file")
    kind = {".toml": "toml", ".json": "json"}.get(p.suffix.lower())
    if kind is None:
        raise CliError(f"{path}: a config is a .toml or a .json file")
    return _parse(p.read_text(encoding="utf-8"), str(path), kind), Source(str(path),
                                                                         p.resolve().parent)


def read_run_config(run_dir: str) -> tuple[dict[str, Any], Source]:
    """The ``config.json`` of a run folder made by ``ember train``.

    Example:
        >>> import tempfile
        >>> try:
        ...     read_run_config(tempfile.mkdtemp())
        ... except CliError as e:
        ...     print(str(e).split(": ", 1)[1])
        not a run folder of `ember train` (it has no config.json)
    """
    p = Path(run_dir)
    if not p.is_dir():
        raise CliError(f"{run_dir}: no such run folder")
    if not (p / "config.json").is_file():
        raise CliError(f"{run_dir}: not a run folder of `ember train` (it has no config.json)")
    raw, src = read_config_file(str(p / "config.json"))
    return raw, Source(src.label, p.resolve())


# -- overrides -------------------------------------------------------------------------------------

def apply_overrides(cfg: dict[str, Any], overrides: Sequence[tuple[str, Any, str]],
                    source: Source) -> dict[str, Any]:
    """Set ``key.sub = value`` for each ``(dotted key, value, flag)``; remembers the flag.

    A string where a table is needed (``data = "spirals"``, ``optimizer = "adam"``) becomes
    ``{name = ...}`` first; list items are addressed by index (``model.0.units``).

    Example:
        >>> from pathlib import Path
        >>> src = Source("c.toml", Path("."))
        >>> apply_overrides({"optimizer": "adam"}, [("optimizer.lr", 0.5, "--lr")], src)
        {'optimizer': {'name': 'adam', 'lr': 0.5}}
        >>> src.origins
        {'optimizer.lr': '--lr'}
    """
    for dotted, value, flag in overrides:
        parts = dotted.split(".")
        if not all(parts):
            raise CliError(f"{flag}: {dotted!r} is not a key (write key or key.sub)")
        node: Any = cfg
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise CliError(f"{flag}: {'.'.join(parts[:i])} is a list of {len(node)}; "
                                   f"address an item by its index 0..{len(node) - 1}")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise CliError(f"{flag}: cannot set {dotted}: {'.'.join(parts[:i])} is "
                               f"{_show(node)}, not a table")
            if last:
                node[part] = value
                break
            child = node.get(part)
            where = ".".join(parts[:i + 1])
            if isinstance(child, str) and where in ("data", "optimizer", "loss",
                                                    "optimizer.schedule"):
                npz = where == "data" and child.lower().endswith(".npz")
                child = {"train": child} if npz else {"name": child}
            elif child is None:
                child = {}
            node[part] = child
            node = child
        source.origins[dotted] = flag
    return cfg


# -- checking helpers ------------------------------------------------------------------------------

def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list ({json.dumps(value)[:40]})"
    return repr(value)


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _check_keys(table: dict[str, Any], allowed: Sequence[str], src: Source, prefix: str,
                what: str = "key") -> None:
    for key in table:
        if key not in allowed:
            match = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
            hint = f"did you mean {match[0]!r}? " if match else ""
            raise src.error(prefix + str(key), f"unknown {what}; {hint}allowed: "
                            f"{', '.join(allowed)}")


def _int(src: Source, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise src.error(key, f"expected an integer >= {minimum}, got {_show(value)}")
    return value


def _number(src: Source, key: str, value: Any, low: float, high: float = math.inf,
            low_open: bool = False, high_open: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (high == math.inf or (value < high if high_open else value <= high))
    if not ok:
        lo = f"{'>' if low_open else '>='} {low:g}"
        span = lo if high == math.inf else f"{lo} and {'<' if high_open else '<='} {high:g}"
        raise src.error(key, f"expected a number {span}, got {_show(value)}")
    return float(value)


def _lr(src: Source, key: str, value: Any) -> float:
    try:  # the one check of a learning rate, in this file's words
        return float(check_lr(value, key))
    except ValueError:
        raise src.error(key, f"expected a number > 0, got {_show(value)}") from None


def _table(src: Source, key: str, value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise src.error(key, f"expected {what}, got {_show(value)}")
    return dict(value)


def _name(src: Source, key: str, value: Any, choices: Sequence[str], what: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in choices:
        shown = repr(value) if isinstance(value, str) else _show(value)
        raise src.error(key, f"unknown {what} {shown}{_did_you_mean(str(value), choices)}; "
                        f"choose one of {', '.join(choices)}")
    return value.strip().lower()


def _signature_keys(fn: Callable[..., Any], skip: Sequence[str]) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p not in skip and p != "self"]


# -- resolving -------------------------------------------------------------------------------------

def _synthetic_fn(name: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    from ember import data

    fn: Callable[..., tuple[np.ndarray, np.ndarray]] = getattr(
        data, "two_spirals" if name == "spirals" else name)
    return fn


def _resolve_data(spec: Any, model: Any, src: Source) -> dict[str, Any]:
    if isinstance(spec, str):
        spec = {"train": spec} if spec.lower().endswith(".npz") else {"name": spec}
    d = _table(src, "data", spec, "a data set name or a table such as {name = \"spirals\"}")
    if "train" in d or "test" in d:  # arrays from .npz files
        if "name" in d:
            raise src.error("data", "give either name (a data set) or train/test (.npz files), "
                            "not both")
        _check_keys(d, ("train", "test", "test_fraction", "seed"), src, "data.")
        out: dict[str, Any] = {}
        for part in ("train", "test"):
            if part not in d:
                if part == "train":
                    raise src.error("data.train", "missing: the .npz file of the training set "
                                    "(arrays x and y)")
                continue
            if not isinstance(d[part], str):
                raise src.error(f"data.{part}", f"expected a path to a .npz file, got "
                                f"{_show(d[part])}")
            path = (src.base / d[part]).resolve()
            if not path.is_file():
                raise src.error(f"data.{part}", f"no such file: {path}")
            out[part] = str(path)
        if "test" not in out:
            out["test_fraction"] = _number(src, "data.test_fraction", d.get("test_fraction", 0.2),
                                           0.0, 1.0, low_open=True)
            out["seed"] = _int(src, "data.seed", d.get("seed", 0), 0)
        elif "test_fraction" in d:
            raise src.error("data.test_fraction", "not used when data.test is given")
        return out
    if "name" not in d:
        raise src.error("data.name", f"missing; choose one of {', '.join(DATA_SETS)} (or give "
                        f"train = \"train.npz\")")
    name = _name(src, "data.name", d["name"], DATA_SETS, "data set")
    if name in SYNTHETIC:
        fn = _synthetic_fn(name)
        extras = _signature_keys(fn, ("n", "noise", "seed"))
        _check_keys(d, ("name", "n", "noise", "seed", "test_fraction", *extras), src, "data.")
        defaults = inspect.signature(fn).parameters
        out = {"name": name,
               "n": _int(src, "data.n", d.get("n", 1000), 2),
               "noise": _number(src, "data.noise", d.get("noise", defaults["noise"].default), 0.0),
               "seed": _int(src, "data.seed", d.get("seed", 0), 0),
               "test_fraction": _number(src, "data.test_fraction", d.get("test_fraction", 0.2),
                                        0.0, 1.0, low_open=True)}
        n_test = round(out["n"] * out["test_fraction"])
        if n_test < 1 or n_test >= out["n"]:
            raise src.error("data.test_fraction", f"{out['test_fraction']:g} of n = {out['n']} "
                            f"leaves {n_test} test samples; train and test need at least one each")
        out.update({k: d[k] for k in extras if k in d})
        return out
    keys = ["name", "flatten", "limit"] + (["root", "download"] if name != "mnist-5k" else [])
    _check_keys(d, keys, src, "data.")
    out = {"name": name}
    if name != "mnist-5k":
        root = d.get("root")
        if root is not None and not isinstance(root, str):
            raise src.error("data.root", f"expected a folder, got {_show(root)}")
        out["root"] = None if root is None else str((src.base / root).resolve())
        download = d.get("download", True)
        if not isinstance(download, bool):
            raise src.error("data.download", f"expected true or false, got {_show(download)}")
        out["download"] = download
    flatten = d.get("flatten", not takes_images(model))
    if not isinstance(flatten, bool):
        raise src.error("data.flatten", f"expected true or false, got {_show(flatten)}")
    out["flatten"] = flatten
    out["limit"] = None if d.get("limit") is None else _int(src, "data.limit", d["limit"], 1)
    return out


def _resolve_loss(spec: Any, src: Source) -> Any:
    from ember.nn.losses import LOSSES

    def one(item: Any, key: str, weighted: bool) -> Any:
        if isinstance(item, str):
            name = _name(src, key, item, list(LOSSES), "loss")
            return {"name": name, "weight": 1.0} if weighted else name
        t = _table(src, key, item, "a loss name or a table {name = ..., weight = ...}"
                   if weighted else "a loss name, a table {name = ...} or a list of them")
        if "name" not in t:
            raise src.error(key + ".name", f"missing; choose one of {', '.join(LOSSES)}")
        t["name"] = _name(src, key + ".name", t["name"], list(LOSSES), "loss")
        allowed = ["name", *(["weight"] if weighted else []),
                   *_signature_keys(LOSSES[t["name"]].__init__, ())]
        _check_keys(t, allowed, src, key + ".")
        if weighted:
            t["weight"] = _number(src, key + ".weight", t.get("weight", 1.0), 0.0)
        return t

    if isinstance(spec, list):
        if not spec:
            raise src.error("loss", "an empty list; give at least one loss")
        return [one(item, f"loss.{i}", True) for i, item in enumerate(spec)]
    return one(spec, "loss", False)


def _resolve_optimizer(spec: Any, src: Source) -> dict[str, Any]:
    from ember.optim import schedules
    from ember.optim.optimizers import REGISTRY as OPTIMIZERS

    if isinstance(spec, str):
        spec = {"name": spec}
    t = _table(src, "optimizer", spec, "an optimizer name or a table {name = \"adam\", lr = ...}")
    name = _name(src, "optimizer.name", t.get("name", "adam"), list(OPTIMIZERS), "optimizer")
    cls, default_lr = OPTIMIZERS[name]
    options = _signature_keys(cls.__init__, ("params", "lr"))
    _check_keys(t, ["name", "lr", "schedule", *options], src, "optimizer.")
    out: dict[str, Any] = {"name": name,
                           "lr": _lr(src, "optimizer.lr", t.get("lr", default_lr))}
    out.update({k: t[k] for k in options if k in t})
    sched = t.get("schedule")
    if sched is not None:
        factories = [n for n in schedules.__all__ if n not in ("Schedule", "from_config")]
        if isinstance(sched, str):
            sched = {"name": sched}
        s = _table(src, "optimizer.schedule", sched, "a schedule name or a table {name = ...}")
        s["name"] = _name(src, "optimizer.schedule.name", s.get("name"), factories, "schedule")
        fn = getattr(schedules, s["name"])
        _check_keys(s, ["name", *_signature_keys(fn, ())], src, "optimizer.schedule.")
        out["schedule"] = s
    return out


def _resolve_callbacks(spec: Any, validation_split: float, src: Source) -> dict[str, Any]:
    """``{name: arguments}`` for each callback of ``ember.callbacks.REGISTRY`` the table names
    (``true`` for its defaults); the arguments are checked by building the callback once."""
    from ember.train.callbacks import REGISTRY

    t = _table(src, "callbacks", spec, "a table such as {early_stopping = {patience = 3}}")
    _check_keys(t, list(REGISTRY), src, "callbacks.", what="callback")
    out: dict[str, Any] = {}
    for name, args in t.items():
        cls = REGISTRY[name]
        key = f"callbacks.{name}"
        args = {} if args is True else _table(src, key, args,
                                              f"a table of {cls.__name__}'s arguments (or true)")
        _check_keys(args, _signature_keys(cls.__init__, ()), src, key + ".")
        params = inspect.signature(cls.__init__).parameters
        if "monitor" in params:
            monitor = args.get("monitor", params["monitor"].default)
            if isinstance(monitor, str) and monitor.startswith("val_") and not validation_split:
                raise src.error(key + ".monitor", f"{monitor!r} needs a validation set: set "
                                f"validation_split (e.g. 0.1) or monitor = \"loss\"")
        try:
            cls(**args)
        except (ValueError, TypeError) as e:
            raise src.error(key, str(e)) from None
        if name == "tensorboard" and importlib.util.find_spec("tensorboardX") is None:
            raise src.error(key + ".log_dir", "TensorBoard logs need the tensorboardX package: "
                            "pip install \"ember[tensorboard]\"")
        out[name] = args
    return out


def resolve(raw: dict[str, Any], source: Source, default_name: str = "run") -> dict[str, Any]:
    """Check a raw config and fill in every default: the full config, JSON-ready.

    The schedule's step counts and ``input_shape`` depend on the data: :func:`finalize` fills
    them once the data is loaded.

    Raises:
        CliError: for an unknown key (with a did-you-mean), a value of the wrong type or out of
            range, or an unknown name (data set, loss, optimizer, schedule, backend, callback).

    Example:
        >>> from pathlib import Path
        >>> cfg = resolve({"model": [{"type": "dense", "units": 2}], "data": "moons"},
        ...               Source("c.toml", Path(".")))
        >>> cfg["data"]
        {'name': 'moons', 'n': 1000, 'noise': 0.0, 'seed': 0, 'test_fraction': 0.2}
        >>> cfg["loss"], cfg["optimizer"], cfg["epochs"], cfg["batch_size"]
        ('cross_entropy', {'name': 'adam', 'lr': 0.001}, 10, 32)
    """
    import ember

    src = source
    _check_keys(raw, TOP_KEYS, src, "")
    cfg: dict[str, Any] = {}
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise src.error("name", f"expected a name of letters, digits, '.', '_' and '-' (it "
                        f"names the run folder), got {_show(name)}")
    cfg["name"] = name
    model = raw.get("model")
    if not isinstance(model, list) or not model:
        raise src.error("model", ("missing: " if model is None else f"got {_show(model)}; ")
                        + "give a list of layers such as [{type = \"dense\", units = 2}]")
    cfg["model"] = model
    shape = raw.get("input_shape")
    if shape is not None:
        if not isinstance(shape, list) or not shape or not all(
                isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
            raise src.error("input_shape", f"expected a list of positive integers (one sample's "
                            f"shape, e.g. [2] or [1, 28, 28]), got {_show(shape)}")
    cfg["input_shape"] = shape
    if "data" not in raw:
        raise src.error("data", f"missing; name a data set ({', '.join(DATA_SETS)}) or give "
                        f"{{train = \"train.npz\", test = \"test.npz\"}}")
    cfg["data"] = _resolve_data(raw["data"], model, src)
    cfg["loss"] = _resolve_loss(raw.get("loss", "cross_entropy"), src)
    cfg["optimizer"] = _resolve_optimizer(raw.get("optimizer", "adam"), src)
    cfg["epochs"] = _int(src, "epochs", raw.get("epochs", 10), 1)
    cfg["batch_size"] = _int(src, "batch_size", raw.get("batch_size", 32), 1)
    metrics = raw.get("metrics", ["accuracy"])
    metrics = [metrics] if isinstance(metrics, str) else metrics
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise src.error("metrics", f"expected a list of metric names such as [\"accuracy\"], "
                        f"got {_show(metrics)}")
    cfg["metrics"] = metrics
    cfg["backend"] = _name(src, "backend", raw.get("backend", ember.get_backend()),
                           ["numpy", "jax"], "backend")
    cfg["seed"] = _int(src, "seed", raw.get("seed", 0), 0)
    cfg["validation_split"] = _number(src, "validation_split", raw.get("validation_split", 0.0),
                                      0.0, 1.0)
    cfg["callbacks"] = _resolve_callbacks(raw.get("callbacks", {}), cfg["validation_split"], src)
    spe = raw.get("steps_per_execution", 1)
    if spe != "epoch":
        if isinstance(spe, str):
            raise src.error("steps_per_execution", f"expected an integer >= 1 or \"epoch\", got "
                            f"{_show(spe)}")
        _int(src, "steps_per_execution", spe, 1)
    cfg["steps_per_execution"] = spe
    cfg["accumulate_steps"] = _int(src, "accumulate_steps", raw.get("accumulate_steps", 1), 1)
    _check_accumulation(src, cfg)
    return cfg


def _check_accumulation(src: Source, cfg: dict[str, Any]) -> None:
    """Gradient accumulation runs one optimizer step per compiled call on JAX, so it cannot be
    combined with several steps per execution there (the Trainer's own rule); image and text
    configs both check it here."""
    acc, spe = cfg["accumulate_steps"], cfg["steps_per_execution"]
    if acc > 1 and spe != 1 and cfg["backend"] == "jax":
        raise src.error("accumulate_steps", f"{acc} runs one optimizer step per compiled call; it "
                        f"cannot be combined with steps_per_execution = {spe!r} on JAX (set "
                        f"steps_per_execution = 1)")


# -- data ------------------------------------------------------------------------------------------

@dataclass
class Data:
    """Train and test arrays of a run, and a few words on where they come from.

    Example:
        >>> d = Data(np.zeros((3, 2)), np.zeros(3), np.zeros((1, 2)), np.zeros(1), "toy")
        >>> d.x_train.shape, d.about
        ((3, 2), 'toy')
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    about: str


def _read_npz(path: str, key: str, src: Source) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise src.error(key, f"{path} has no array {' or '.join(map(repr, missing))} "
                                f"(it has: {', '.join(f.files) or 'nothing'}); save the inputs "
                                f"as x and the targets as y (np.savez(path, x=..., y=...))")
            return np.asarray(f["x"]), np.asarray(f["y"])
    except (OSError, ValueError) as e:
        raise src.error(key, f"cannot read {path}: {e}") from None


def _split(x: np.ndarray, y: np.ndarray, fraction: float, order: np.ndarray | None = None
           ) -> tuple[np.ndarray, ...]:
    if order is not None:
        x, y = x[order], y[order]
    n_test = round(len(x) * fraction)
    return x[:len(x) - n_test], y[:len(x) - n_test], x[len(x) - n_test:], y[len(x) - n_test:]


def load_data(data: dict[str, Any], src: Source) -> Data:
    """The arrays a resolved ``data`` table describes (see the CLI reference for the keys).

    Example:
        >>> from pathlib import Path
        >>> d = load_data({"name": "xor", "n": 10, "noise": 0.0, "seed": 0,
        ...                "test_fraction": 0.2}, Source("c.toml", Path(".")))
        >>> d.x_train.shape, d.x_test.shape, d.about
        ((8, 2), (2, 2), 'xor (n=10, noise=0, seed=0): 8 train / 2 test samples')
    """
    if "train" in data:
        x, y = _read_npz(data["train"], "data.train", src)
        if "test" in data:
            xt, yt = _read_npz(data["test"], "data.test", src)
        else:
            order = np.random.default_rng(data["seed"]).permutation(len(x))
            x, y, xt, yt = _split(x, y, data["test_fraction"], order)
        about = f"{Path(data['train']).name}: {len(x)} train / {len(xt)} test samples"
        return Data(x, y, xt, yt, about)
    name = data["name"]
    if name in SYNTHETIC:
        fn = _synthetic_fn(name)
        extras = {k: v for k, v in data.items() if k not in ("name", "n", "noise", "seed",
                                                             "test_fraction")}
        try:
            x, y = fn(data["n"], noise=data["noise"], seed=data["seed"], **extras)
        except (ValueError, TypeError) as e:
            raise src.error("data", str(e)) from None
        x, y, xt, yt = _split(x, y, data["test_fraction"])  # the rows come shuffled
        about = (f"{name} (n={data['n']}, noise={data['noise']:g}, seed={data['seed']}): "
                 f"{len(x)} train / {len(xt)} test samples")
        return Data(x, y, xt, yt, about)
    from ember.data import load_fashion_mnist, load_mnist

    try:
        if name == "mnist-5k":
            x, y = load_mnist(subset="5k")
            xt, yt = load_mnist(subset="5k", train=False)
        else:
            load = load_mnist if name == "mnist" else load_fashion_mnist
            x, y = load(root=data["root"], download=data["download"])
            xt, yt = load(root=data["root"], train=False, download=data["download"])
    except (OSError, ValueError) as e:
        raise CliError(f"{src.where('data')}: data: {e}".splitlines()[0]
                       + "".join("\n  " + line for line in str(e).splitlines()[1:]),
                       code=1) from None
    if data["limit"] is not None:
        x, y = x[:data["limit"]], y[:data["limit"]]
    shape = (-1,) if data["flatten"] else (1, *x.shape[1:])
    x, xt = x.reshape(len(x), *shape), xt.reshape(len(xt), *shape)
    return Data(x, y, xt, yt, f"{name}: {len(x)} train / {len(xt)} test images")


def fit_inputs(x: np.ndarray, input_shape: Sequence[int] | None, what: str, src: Source,
               key: str = "input_shape") -> np.ndarray:
    """``x`` reshaped to ``(n, *input_shape)`` when its samples have that many values.

    Example:
        >>> from pathlib import Path
        >>> fit_inputs(np.zeros((5, 28, 28)), [784], "x", Source("c", Path("."))).shape
        (5, 784)
    """
    if input_shape is None or tuple(x.shape[1:]) == tuple(input_shape):
        return x
    if x.ndim >= 1 and int(np.prod(x.shape[1:])) == int(np.prod(input_shape)):
        return x.reshape(len(x), *input_shape)
    raise src.error(key, f"the model takes samples of shape {tuple(input_shape)} but {what} has "
                    f"samples of shape {tuple(x.shape[1:])}")


def _steps_per_epoch(cfg: dict[str, Any], n_train: int) -> int:
    n_fit = math.ceil(n_train * (1.0 - cfg["validation_split"]))
    return math.ceil(n_fit / cfg["batch_size"])


def finalize(cfg: dict[str, Any], data: Data, src: Source) -> Data:
    """Fill what depends on the data: ``input_shape`` (one sample's shape) and the step count
    of a schedule that has none (``epochs`` times the steps of an epoch). Returns the data with
    its inputs in that shape.

    Example:
        >>> from pathlib import Path
        >>> src = Source("c.toml", Path("."))
        >>> cfg = resolve({"model": [{"type": "dense", "units": 2}], "data": "xor", "epochs": 2,
        ...                "optimizer": {"schedule": "cosine_decay"}}, src)
        >>> data = finalize(cfg, load_data(cfg["data"], src), src)
        >>> cfg["input_shape"], cfg["optimizer"]["schedule"]
        ([2], {'name': 'cosine_decay', 'total_steps': 50})
    """
    if cfg["input_shape"] is None:
        cfg["input_shape"] = [int(n) for n in data.x_train.shape[1:]]
    data.x_train = fit_inputs(data.x_train, cfg["input_shape"], "the training data", src)
    data.x_test = fit_inputs(data.x_test, cfg["input_shape"], "the test data", src)
    sched = cfg["optimizer"].get("schedule")
    if sched is not None:
        total = cfg["epochs"] * _steps_per_epoch(cfg, len(data.x_train))
        need = {"cosine_decay": "total_steps", "warmup_linear": "total_steps",
                "linear_decay": "steps"}.get(sched["name"])
        if need is not None and need not in sched:
            sched[need] = total
    return data


# -- building --------------------------------------------------------------------------------------

def build_model(cfg: dict[str, Any], src: Source) -> Any:
    """The model of a resolved config, built after ``ember.manual_seed(cfg["seed"])``.

    Example:
        >>> from pathlib import Path
        >>> cfg = {"seed": 0, "input_shape": [3], "model": [{"type": "dense", "units": 2}]}
        >>> build_model(cfg, Source("c.toml", Path(".")))(__import__("ember").zeros(4, 3)).shape
        (4, 2)
    """
    import ember
    from ember import nn

    ember.manual_seed(cfg["seed"])
    try:
        return nn.from_config(cfg["model"], input_shape=cfg["input_shape"])
    except (ValueError, TypeError) as e:
        raise src.error("model", str(e)) from None


def _build_loss(spec: Any, src: Source, key: str = "loss") -> Any:
    from ember.nn.losses import get_loss

    try:
        if isinstance(spec, str):
            return get_loss(spec)
        if isinstance(spec, list):
            return [(_build_loss({k: v for k, v in t.items() if k != "weight"}, src,
                                 f"loss.{i}"), t["weight"]) for i, t in enumerate(spec)]
        options = {k: v for k, v in spec.items() if k != "name"}
        return get_loss(spec["name"], **options)
    except (ValueError, TypeError) as e:
        raise src.error(key, str(e)) from None


def _build_optimizer(spec: dict[str, Any], model: Any, src: Source) -> Any:
    from ember import optim
    from ember.optim import schedules

    lr: Any = spec["lr"]
    if "schedule" in spec:
        s = dict(spec["schedule"])
        if "lr" in inspect.signature(getattr(schedules, s["name"])).parameters:
            s.setdefault("lr", spec["lr"])
        try:
            lr = schedules.from_config(s)
        except (ValueError, TypeError) as e:
            raise src.error("optimizer.schedule", str(e)) from None
    options = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items()
               if k not in ("name", "lr", "schedule")}
    try:
        return optim.get(spec["name"], model.parameters(), lr=lr, **options)
    except (ValueError, TypeError) as e:
        raise src.error("optimizer", str(e)) from None


def build_trainer(cfg: dict[str, Any], model: Any, src: Source) -> Any:
    """The Trainer of a resolved config: its loss, optimizer (and schedule) and metrics.

    Example:
        >>> from pathlib import Path
        >>> src = Source("c.toml", Path("."))
        >>> cfg = resolve({"model": [{"type": "dense", "units": 2}], "data": "xor",
        ...                "input_shape": [2]}, src)
        >>> t = build_trainer(cfg, build_model(cfg, src), src)
        >>> type(t.optimizer).__name__, [m.name for m in t.metrics]
        ('Adam', ['accuracy'])
    """
    from ember.train import metrics as _metrics
    from ember.train.trainer import Trainer

    loss = _build_loss(cfg["loss"], src)
    for i, m in enumerate(cfg["metrics"]):
        try:
            _metrics.get_metric(m, loss=loss)
        except (ValueError, TypeError) as e:
            raise src.error(f"metrics.{i}", str(e)) from None
    optimizer = _build_optimizer(cfg["optimizer"], model, src)
    try:
        return Trainer(model, loss, optimizer, metrics=cfg["metrics"],
                       steps_per_execution=cfg["steps_per_execution"])
    except (ValueError, TypeError) as e:
        raise CliError(f"{src.label}: {e}") from None


def build_callbacks(cfg: dict[str, Any], src: Source) -> list[Any]:
    """The callbacks a config asks for (``callbacks = {early_stopping = {...}, tensorboard =
    {log_dir = "tb"}, ...}``: any name of ``ember.callbacks.REGISTRY`` with its arguments).

    Example:
        >>> from pathlib import Path
        >>> cbs = build_callbacks({"callbacks": {"early_stopping": {"monitor": "loss"}}},
        ...                       Source("c.toml", Path(".")))
        >>> type(cbs[0]).__name__, cbs[0].monitor
        ('EarlyStopping', 'loss')
    """
    from ember.train import callbacks

    out = []
    for name, args in cfg["callbacks"].items():
        try:
            out.append(callbacks.get(name, **args))
        except (ValueError, TypeError) as e:
            raise src.error(f"callbacks.{name}", str(e)) from None
    return out


def check_fit(trainer: Any, data: Data, src: Source) -> None:
    """Run the model and the loss on a few training samples (eval mode, no gradient) so that a
    model that does not fit the data (input size, number of classes) is an error before
    training starts, not a traceback in its first step. The samples include the smallest and
    the largest integer label.

    Example:
        >>> from pathlib import Path
        >>> import ember
        >>> from ember import nn
        >>> d = Data(np.zeros((4, 2), "float32"), np.array([0, 1, 2, 1]), None, None, "")
        >>> t = ember.Trainer(nn.Linear(2, 2), "cross_entropy", "sgd")
        >>> try:
        ...     check_fit(t, d, Source("c.toml", Path(".")))
        ... except CliError as e:
        ...     print(str(e).split(" (labels")[0])
        c.toml: model: the model and the loss do not fit the data: SoftmaxCrossEntropy: label 2 \
at index (1,) is out of range for 2 classes
    """
    import ember

    x, y = data.x_train, data.y_train
    idx = [0]
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer) and len(y):
        idx = sorted({0, int(np.argmin(y)), int(np.argmax(y))})
    xb = x[idx].astype(np.float32) if x.dtype == np.float64 else x[idx]
    model = trainer.model
    was_training = model.training
    model.eval()
    try:
        with ember.no_grad():
            trainer.loss(model(ember.tensor(xb)), ember.tensor(y[idx]))
    except (ValueError, TypeError) as e:
        raise src.error("model", f"the model and the loss do not fit the data: {e}") from None
    finally:
        model.train(was_training)
