"""Language-model runs from the command line: configs whose ``data`` is a text (the presets
``shakespeare-char``, ``names``, ``names-bigram``, ``names-mlp``, ``names-gru``), trained by steps
on :class:`~ember.data.TokenWindows`, and ``ember sample RUN_DIR``.

A text config::

    name = "shakespeare-char"
    steps = 2000
    eval_every = 250
    eval_steps = 20
    batch_size = 12
    grad_clip = 1.0
    data = { name = "tiny-shakespeare", block_size = 64 }   # or "names", or "my.txt"
    model = { name = "gpt", n_layer = 4, n_head = 4, n_embd = 128 }
    optimizer = { name = "adamw", lr = 1e-3, betas = [0.9, 0.99], weight_decay = 0.1 }
    schedule = { warmup_steps = 100, min_lr = 1e-4 }         # cosine decay over the steps

Example:
    >>> from ember.cli.text import is_text_config
    >>> is_text_config({"data": {"name": "tiny-shakespeare"}}), is_text_config({"data": "xor"})
    (True, False)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ember.cli.config import CliError, Source, _did_you_mean, _lr

TEXT_DATA = ("tiny-shakespeare", "names")
MODELS = ("gpt", "bigram", "mlp", "rnn", "gru")
_TOP = {"name", "seed", "backend", "steps", "eval_every", "eval_steps", "batch_size", "grad_clip",
        "data", "model", "optimizer", "schedule", "sample", "text",
        "steps_per_execution"}
_DEFAULTS: dict[str, Any] = {"name": "text", "seed": 0, "backend": "numpy", "steps": 1000,
                             "eval_every": None, "eval_steps": 20, "batch_size": 32,
                             "grad_clip": None, "schedule": None, "steps_per_execution": 1,
                             "optimizer": {"name": "adamw", "lr": 1e-3},
                             "sample": {"tokens": 500, "temperature": 1.0, "top_k": None,
                                        "prompt": ""}}


def _data_name(raw: dict[str, Any]) -> Any:
    data = raw.get("data")
    return data.get("name") if isinstance(data, dict) else data


def is_text_config(raw: dict[str, Any]) -> bool:
    """Whether a raw config trains a language model (its data is a corpus or a ``.txt``)."""
    name = _data_name(raw)
    return isinstance(name, str) and (name in TEXT_DATA or name.lower().endswith(".txt"))


def _pos_int(src: Source, key: str, value: Any, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise src.error(key, f"expected an integer >= 1, got {value!r}")
    return value


def _pos_float(src: Source, key: str, value: Any, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise src.error(key, f"expected a number > 0, got {value!r}")
    return float(value)


def resolve_text(raw: dict[str, Any], src: Source, default_name: str) -> dict[str, Any]:
    """The checked, complete text config (what the run folder's ``config.json`` holds).

    Example:
        >>> from pathlib import Path
        >>> cfg = resolve_text({"data": {"name": "names", "block_size": 16},
        ...                     "model": {"name": "bigram"}}, Source("c", Path(".")), "run")
        >>> cfg["model"], cfg["steps"], cfg["eval_every"]
        ({'name': 'bigram'}, 1000, 1000)
    """
    for key in raw:
        if key not in _TOP:
            raise src.error(key, f"unknown key for a text config{_did_you_mean(key, sorted(_TOP))}"
                            f"; known: {', '.join(sorted(_TOP))}")
    cfg = json.loads(json.dumps({**_DEFAULTS, "name": default_name}))
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    data = cfg["data"] if isinstance(cfg["data"], dict) else {"name": cfg["data"]}
    data.setdefault("block_size", 64)
    _pos_int(src, "data.block_size", data["block_size"])
    if data["name"] not in TEXT_DATA and not Path(src.base, data["name"]).is_file():
        raise src.error("data.name", f"no such text file {data['name']!r} (a text data set is "
                        f"{' or '.join(TEXT_DATA)} or a .txt file)")
    if data["name"] not in TEXT_DATA:
        data["name"] = str(Path(src.base, data["name"]).resolve())
    cfg["data"] = data
    model = cfg.get("model")
    if isinstance(model, str):
        model = {"name": model}
    if not isinstance(model, dict) or model.get("name") not in MODELS:
        got = model.get("name") if isinstance(model, dict) else model
        raise src.error("model.name", f"expected one of {', '.join(MODELS)}, got {got!r}"
                        f"{_did_you_mean(str(got), MODELS)}")
    cfg["model"] = model
    for key in ("steps", "batch_size"):
        _pos_int(src, key, cfg[key])
    cfg["eval_every"] = _pos_int(src, "eval_every", cfg["eval_every"], True) or cfg["steps"]
    _pos_int(src, "eval_steps", cfg["eval_steps"])
    _pos_int(src, "steps_per_execution", cfg["steps_per_execution"])
    _pos_float(src, "grad_clip", cfg["grad_clip"], True)
    opt = cfg["optimizer"]
    if opt.get("name") not in ("adamw", "adam"):
        raise src.error("optimizer.name", f"expected adamw or adam, got {opt.get('name')!r}")
    _lr(src, "optimizer.lr", opt.get("lr"))
    if cfg["backend"] not in ("numpy", "jax"):
        raise src.error("backend", f"expected numpy or jax, got {cfg['backend']!r}")
    return cfg


def load_text(data: dict[str, Any]) -> tuple[str, str]:
    """``(train_text, val_text)`` of a text data set: Tiny Shakespeare's 90/10 split in file
    order, the names' seeded split (1,000 test names, one name a line), or a ``.txt``'s 90/10."""
    from ember.data import load_names, load_tiny_shakespeare

    if data["name"] == "tiny-shakespeare":
        return load_tiny_shakespeare("train"), load_tiny_shakespeare("val")
    if data["name"] == "names":
        return ("\n".join(load_names("train")) + "\n", "\n".join(load_names("test")) + "\n")
    text = Path(data["name"]).read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    return text[:cut], text[cut:]


def build_lm(cfg: dict[str, Any], vocab_size: int) -> Any:
    """The language model a config's ``model`` table names, for ``vocab_size`` tokens."""
    from ember import models

    spec = {k: v for k, v in cfg["model"].items() if k != "name"}
    name, block = cfg["model"]["name"], cfg["data"]["block_size"]
    if name == "gpt":
        return models.GPT(vocab_size, block_size=block, **spec)
    if name == "bigram":
        return models.Bigram(vocab_size, **spec)
    if name == "mlp":
        return models.MLP(vocab_size, block_size=spec.pop("block_size", block), **spec)
    return (models.RNNLM if name == "rnn" else models.GRULM)(vocab_size, **spec)


def _optimizer(cfg: dict[str, Any], model: Any) -> Any:
    from ember import optim
    from ember.optim import schedules

    opt = dict(cfg["optimizer"])
    name, lr = opt.pop("name"), opt.pop("lr")
    if cfg["schedule"]:
        s = cfg["schedule"]
        lr = schedules.cosine_decay(lr, total_steps=int(s.get("decay_steps", cfg["steps"])),
                                    final_lr=float(s.get("min_lr", 0.0)),
                                    warmup_steps=int(s.get("warmup_steps", 0)))
    if "betas" in opt:
        opt["betas"] = tuple(opt["betas"])
    wd = float(opt.pop("weight_decay", 0.0))
    if name == "adamw":
        return optim.AdamW(optim.decay_groups(model, wd), lr=lr, clip_norm=cfg["grad_clip"],
                           **opt)
    return optim.Adam(model.parameters(), lr=lr, clip_norm=cfg["grad_clip"], **opt)


def _curve(run_dir: Path, history: Any, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('(install "ember[plot]" for the loss curve PNG)')
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(history["step"], history["loss"], marker="o", label="train (interval mean)")
    if "val_loss" in history.history:
        ax.plot(history["step"], history["val_loss"], marker="o", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "loss.png", dpi=100)
    plt.close(fig)


def _sample_text(model: Any, tok: Any, prompt: str, tokens: int, temperature: float,
                 top_k: int | None) -> str:
    import numpy as np

    import ember

    start = tok.encode(prompt) if prompt else np.array([tok.encode("\n")[0]
                                                        if "\n" in tok.vocab else 0])
    idx = ember.tensor(np.asarray(start, dtype=np.int64)[None, :])
    model.eval()
    out = model.generate(idx, tokens, temperature=temperature, top_k=top_k)
    return prompt + tok.decode(np.asarray(out.numpy())[0, len(start):])


def train_text(raw: dict[str, Any], src: Source, args: argparse.Namespace, default_name: str,
               resume_dir: str | None) -> int:
    """``ember train`` for a text config: train by steps, then write the run folder."""
    import ember
    from ember.cli.commands import (
        _atomic_write,
        _CtrlC,
        _history_csv,
        _new_run_dir,
        _quoted,
        _RunFiles,
    )
    from ember.data import CharTokenizer, TokenWindows
    from ember.train.callbacks import ModelCheckpoint

    if getattr(args, "epochs", None) is not None:
        raise CliError("--epochs: a text config trains by steps; use --set steps=N")
    cfg = resolve_text(raw, src, default_name)
    ember.set_backend(cfg["backend"])
    ember.manual_seed(cfg["seed"])
    train_text_, val_text = load_text(cfg["data"])
    tok = CharTokenizer.from_text(train_text_ + val_text)
    block = cfg["data"]["block_size"]
    train = TokenWindows(tok.encode(train_text_), block, cfg["batch_size"], seed=cfg["seed"])
    val = TokenWindows(tok.encode(val_text), block, cfg["batch_size"], seed=cfg["seed"])
    model = build_lm(cfg, tok.vocab_size)
    trainer = ember.Trainer(model, "cross_entropy", _optimizer(cfg, model),
                            steps_per_execution=cfg["steps_per_execution"])
    run_dir = Path(resume_dir) if resume_dir else _new_run_dir(args.runs_dir or "runs",
                                                               cfg["name"])
    _atomic_write(run_dir / "config.json", json.dumps({**cfg, "text": True}, indent=2) + "\n")
    _atomic_write(run_dir / "vocab.json", json.dumps(tok.config()) + "\n")
    n_params = int(sum(p.size for p in model.parameters()))
    print(f"ember {ember.__version__} on {cfg['backend']}: {cfg['name']}")
    print(f"data: {cfg['data']['name']}, {len(train.tokens):,} train / {len(val.tokens):,} "
          f"validation tokens, vocabulary {tok.vocab_size}, block size {block}")
    print(f"model: {cfg['model']['name']}, {n_params:,} parameters")
    print(f"training: {cfg['steps']} steps, batch size {cfg['batch_size']}, evaluating every "
          f"{cfg['eval_every']} steps on {cfg['eval_steps']} batches, seed {cfg['seed']}")
    print(f"run folder: {run_dir}")
    start = time.perf_counter()
    files = _RunFiles(run_dir / "history.csv")
    try:
        with _CtrlC() as ctrl_c:  # last: an interval's checkpoint is written before it stops
            history = trainer.fit(
                train, steps=cfg["steps"], eval_every=cfg["eval_every"],
                eval_steps=cfg["eval_steps"], validation_data=val, verbose=args.verbose,
                callbacks=[ModelCheckpoint(run_dir / "checkpoint", monitor="loss"), files,
                           ctrl_c],
                resume_from=run_dir / "checkpoint" if resume_dir else None)
    except KeyboardInterrupt:
        sys.stdout.flush()
        print(f"\ninterrupted in interval {files.epoch + 1}; resume with: ember train --resume "
              f"{_quoted(run_dir)}", file=sys.stderr)
        return 130
    seconds = time.perf_counter() - start
    _atomic_write(run_dir / "history.csv", _history_csv(history))
    ember.save(model.state_dict(), run_dir / "weights.safetensors")
    results = {"val_loss": history["val_loss"][-1], "loss": history["loss"][-1],
               "steps": history["step"][-1], "seconds": seconds}
    _atomic_write(run_dir / "results.json", json.dumps(results, indent=2) + "\n")
    print(f"trained to step {results['steps']} in {seconds:.1f}s: validation loss "
          f"{results['val_loss']:.4f}")
    if not args.no_plots:
        _curve(run_dir, history, cfg["name"])
    s = cfg["sample"]
    ember.manual_seed(cfg["seed"])
    text = _sample_text(model, tok, s["prompt"], int(s["tokens"]), float(s["temperature"]),
                        s["top_k"])
    _atomic_write(run_dir / "samples.txt", text + ("" if text.endswith("\n") else "\n"))
    print(f"\nrun folder: {run_dir}\nnext:\n  ember sample {_quoted(run_dir)} --tokens 500")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """``ember sample RUN_DIR [--prompt] [--tokens] [--temperature] [--top-k] [--seed]``."""
    import ember
    from ember.data import CharTokenizer
    from ember.train.checkpoint import load

    run = Path(args.run_dir)
    if not (run / "config.json").is_file() or not (run / "vocab.json").is_file():
        raise CliError(f"{args.run_dir}: not a text run folder (it needs config.json and "
                       f"vocab.json, written by `ember train` on a text config)")
    cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))
    tok = CharTokenizer.from_config(json.loads((run / "vocab.json").read_text(encoding="utf-8")))
    if not (run / "weights.safetensors").is_file():
        raise CliError(f"{run / 'weights.safetensors'}: missing (the run did not finish)")
    ember.set_backend(args.backend or cfg["backend"])
    model = build_lm(cfg, tok.vocab_size)
    model.load_state_dict(load(run / "weights.safetensors"))
    unknown = [c for c in args.prompt if c not in tok.vocab]
    if unknown:
        raise CliError(f"--prompt: character {unknown[0]!r} is not in the run's vocabulary of "
                       f"{tok.vocab_size} characters")
    ember.manual_seed(args.seed)
    sys.stdout.write(_sample_text(model, tok, args.prompt, args.tokens, args.temperature,
                                  args.top_k) + "\n")
    return 0


def text_summary(raw: dict[str, Any], src: Source, default_name: str,
                 run_dir: str | None = None) -> int:
    """``ember summary`` of a text config or run: the model's layers for its vocabulary."""
    import numpy as np

    import ember
    from ember.data import CharTokenizer

    cfg = resolve_text(raw, src, default_name)
    ember.set_backend(cfg["backend"])
    if run_dir is not None and (Path(run_dir) / "vocab.json").is_file():
        tok = CharTokenizer.from_config(json.loads((Path(run_dir) / "vocab.json").read_text(
            encoding="utf-8")))
    else:
        tok = CharTokenizer.from_text("".join(load_text(cfg["data"])))
    model = build_lm(cfg, tok.vocab_size)
    block = cfg["data"]["block_size"]
    print(f"{cfg['name']}: {cfg['model']['name']} on {tok.vocab_size} characters, context "
          f"{block}")
    model.summary((block,), dtype=np.int64)
    return 0


def not_for_text(run_dir: str, command: str) -> CliError:
    """The error of ``ember evaluate/predict/export`` on a text run."""
    return CliError(f"{run_dir}: a text run (a language model); `ember {command}` takes image and "
                    f"table runs; use `ember sample {run_dir}` (its validation loss is in "
                    f"results.json)")
