"""Language-model runs from the command line: configs whose ``data`` is a text (the presets
``shakespeare-char``, ``names``, ``names-bigram``, ``names-mlp``, ``names-mlp-layers``,
``names-gru``), trained by steps on :class:`~ember.data.TokenWindows` (the names: makemore's
per-name :class:`~ember.data.NameExamples`, ``data.context = k`` for one example per character),
and ``ember sample RUN_DIR``. ``model`` is a table naming a model of :mod:`ember.models` or a
list of layer tables (``"vocab_size"`` standing for the tokenizer's size). A run folder ends with
``model.safetensors`` and ``tokenizer.json``: ``ember.load_run`` reads it.

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

from ember.cli.config import CliError, Source, _check_accumulation, _did_you_mean, _lr

TEXT_DATA = ("tiny-shakespeare", "names")
MODELS = ("gpt", "bigram", "mlp", "rnn", "gru")
_TOP = {"name", "seed", "backend", "steps", "eval_every", "eval_steps", "batch_size", "grad_clip",
        "data", "model", "optimizer", "schedule", "sample", "text",
        "steps_per_execution", "accumulate_steps"}
_DEFAULTS: dict[str, Any] = {"name": "text", "seed": 0, "backend": "numpy", "steps": 1000,
                             "eval_every": None, "eval_steps": 20, "batch_size": 32,
                             "grad_clip": None, "schedule": None, "steps_per_execution": 1,
                             "accumulate_steps": 1,
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
    if data.get("context") is not None:
        if data["name"] != "names" or "block_size" in data:
            raise src.error("data.context", "one example per character with the previous "
                            "`context` characters is for the names (data.name = \"names\"), "
                            "instead of block_size")
        data["block_size"] = _pos_int(src, "data.context", data["context"])
    data.setdefault("block_size", 16 if data["name"] == "names" else 64)
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
    if isinstance(model, list):  # a layer list, as the image configs write them
        bad = [i for i, e in enumerate(model) if not isinstance(e, dict) or "type" not in e]
        if not model or bad:
            raise src.error(f"model[{bad[0] if bad else 0}]", "a layer list needs tables with a "
                            "type, e.g. { type = \"embedding\", num_embeddings = \"vocab_size\", "
                            "embedding_dim = 10 }")
    elif not isinstance(model, dict) or model.get("name") not in MODELS:
        got = model.get("name") if isinstance(model, dict) else model
        raise src.error("model.name", f"expected one of {', '.join(MODELS)}, got {got!r}"
                        f"{_did_you_mean(str(got), MODELS)}")
    cfg["model"] = model
    for key in ("steps", "batch_size"):
        _pos_int(src, key, cfg[key])
    cfg["eval_every"] = _pos_int(src, "eval_every", cfg["eval_every"], True) or cfg["steps"]
    _pos_int(src, "eval_steps", cfg["eval_steps"])
    _pos_int(src, "steps_per_execution", cfg["steps_per_execution"])
    _pos_int(src, "accumulate_steps", cfg["accumulate_steps"])
    _check_accumulation(src, cfg)
    _pos_float(src, "grad_clip", cfg["grad_clip"], True)
    opt = cfg["optimizer"]
    if opt.get("name") not in ("adamw", "adam"):
        raise src.error("optimizer.name", f"expected adamw or adam, got {opt.get('name')!r}")
    _lr(src, "optimizer.lr", opt.get("lr"))
    sched = cfg["schedule"]
    if sched and int(sched.get("warmup_steps", 0)) >= int(sched.get("decay_steps", cfg["steps"])):
        raise src.error("schedule.warmup_steps", f"{sched['warmup_steps']} warm-up steps leave "
                        f"no decay over {sched.get('decay_steps', cfg['steps'])} steps; give "
                        f"fewer warm-up steps or schedule.decay_steps")
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


def text_data(cfg: dict[str, Any]) -> tuple[Any, Any, Any]:
    """``(train, validation, tokenizer)`` of a resolved text config: random windows of a text
    (:class:`~ember.data.TokenWindows`) or, for the names, makemore's per-name examples
    (:class:`~ember.data.NameExamples`, the 1,000 test names for validation)."""
    from ember.data import CharTokenizer, NameExamples, TokenWindows, load_names

    data, b, seed = cfg["data"], cfg["batch_size"], cfg["seed"]
    if data["name"] == "names":
        train_names, test_names = load_names("train"), load_names("test")
        tok = CharTokenizer.from_text("\n" + "".join(train_names + test_names))
        form = ({"context": data["context"]} if data.get("context") is not None
                else {"block_size": data["block_size"]})
        return (NameExamples(train_names, b, tokenizer=tok, seed=seed, **form),
                NameExamples(test_names, b, tokenizer=tok, seed=seed, **form), tok)
    train_text_, val_text = load_text(data)
    tok = CharTokenizer.from_text(train_text_ + val_text)
    block = data["block_size"]
    return (TokenWindows(tok.encode(train_text_), block, b, seed=seed),
            TokenWindows(tok.encode(val_text), block, b, seed=seed), tok)


def build_lm(cfg: dict[str, Any], vocab_size: int, src: Source | None = None) -> Any:
    """The language model a config's ``model`` describes (a name or a layer list, see
    :func:`ember.models.build`), for ``vocab_size`` tokens."""
    from ember import models

    try:
        return models.build(cfg["model"], vocab_size, cfg["data"]["block_size"])
    except (ValueError, TypeError) as e:
        if src is None:
            raise
        raise src.error("model", str(e)) from None


def _loss(cfg: dict[str, Any]) -> Any:
    """Cross-entropy; per-name sequences mark the positions past a name's end with -1."""
    from ember import nn

    per_name = cfg["data"]["name"] == "names" and cfg["data"].get("context") is None
    return nn.CrossEntropyLoss(ignore_index=-1) if per_name else "cross_entropy"


def per_character_loss(model: Any, examples: Any) -> float:
    """The mean cross-entropy per predicted character over every example of ``examples`` (a
    :class:`~ember.data.NameExamples`: each name's letters and its end mark), in eval mode:
    the test loss makemore reports."""
    import numpy as np

    import ember
    from ember.nn import functional

    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with ember.no_grad():
            for x, y in examples.eval_batches():
                logits = model(x)
                total += functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum",
                    ignore_index=-1).item()
                count += int((np.asarray(y.numpy()) >= 0).sum())
    finally:
        model.train(was_training)
    return total / count


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


def _next_token(model: Any, seq: list[int], cfg: dict[str, Any], temperature: float,
                top_k: int | None) -> int:
    """One token drawn after ``seq``: a context model (logits (B, V)) sees the last
    ``data.context`` tokens, padded with the boundary 0; a sequence model the last
    ``block_size`` (:func:`ember.models.generate`)."""
    import numpy as np

    from ember import models
    from ember.creation import tensor

    k = cfg["data"].get("context")
    if k is not None:
        window = ([0] * k + seq)[-k:]
        logits = model(tensor(np.array([window], dtype=np.int64)))
        return int(models.sample_next(logits, temperature, top_k).numpy()[0])
    block = getattr(model, "block_size", cfg["data"]["block_size"])
    out = models.generate(model, tensor(np.array([seq], dtype=np.int64)), 1, temperature,
                          top_k, block)
    return int(out.numpy()[0, -1])


def sample_text(model: Any, cfg: dict[str, Any], tok: Any, prompt: str, tokens: int,
                temperature: float, top_k: int | None) -> str:
    """``prompt`` and ``tokens`` characters drawn from ``model`` on ember's seeded stream.

    On the names (makemore's examples) each name is drawn on its own, from the boundary token
    (the prompt starts the first one) to the end mark or the longest name the model was
    trained on, one name a line; on a text the characters continue the prompt (or a new line)."""
    import numpy as np

    from ember import models
    from ember.creation import tensor

    model.eval()
    if cfg["data"]["name"] != "names":
        start = tok.encode(prompt) if prompt else np.array(
            [tok.encode("\n")[0] if "\n" in tok.vocab else 0])
        block = getattr(model, "block_size", cfg["data"]["block_size"])
        out = models.generate(model, tensor(np.asarray(start, dtype=np.int64)[None, :]), tokens,
                              temperature, top_k, block)
        return prompt + tok.decode(np.asarray(out.numpy())[0, len(start):])
    longest = cfg["data"]["block_size"] - 1 if cfg["data"].get("context") is None else 32
    drawn: list[int] = []
    first = [int(t) for t in tok.encode(prompt)]
    while len(drawn) < tokens:
        seq = [0, *first]
        while len(seq) <= longest and (len(seq) == 1 or seq[-1] != 0):
            seq.append(_next_token(model, seq, cfg, temperature, top_k))
        name = seq[1 + len(first):]
        drawn += name if name and name[-1] == 0 else [*name, 0]
        first = []
    return prompt + tok.decode(np.array(drawn[:tokens], dtype=np.int64))


def train_text(raw: dict[str, Any], src: Source, args: argparse.Namespace, default_name: str,
               resume_dir: str | None) -> int:
    """``ember train`` for a text config: train by steps, then write the run folder."""
    import ember
    from ember.cli.commands import _atomic_write, _finish_run, _fit_run, _new_run_dir, _quoted

    if getattr(args, "epochs", None) is not None:
        raise CliError("--epochs: a text config trains by steps; use --set steps=N")
    cfg = resolve_text(raw, src, default_name)
    ember.set_backend(cfg["backend"])
    ember.manual_seed(cfg["seed"])
    train, val, tok = text_data(cfg)
    block = cfg["data"]["block_size"]
    model = build_lm(cfg, tok.vocab_size, src)
    trainer = ember.Trainer(model, _loss(cfg), _optimizer(cfg, model),
                            steps_per_execution=cfg["steps_per_execution"])
    run_dir = Path(resume_dir) if resume_dir else _new_run_dir(args.runs_dir or "runs",
                                                               cfg["name"])
    _atomic_write(run_dir / "config.json", json.dumps({**cfg, "text": True}, indent=2) + "\n")
    _atomic_write(run_dir / "tokenizer.json", json.dumps(tok.config()) + "\n")
    n_params = int(sum(p.size for p in model.parameters()))
    names = cfg["data"]["name"] == "names"
    print(f"ember {ember.__version__} on {cfg['backend']}: {cfg['name']}")
    if names:
        form = (f"one example per character, context {block}" if cfg["data"].get("context")
                else f"one sequence per name, padded to {block}")
        print(f"data: names, {len(train.names):,} train / {len(val.names):,} test names "
              f"({form}), vocabulary {tok.vocab_size}")
    else:
        print(f"data: {cfg['data']['name']}, {len(train.tokens):,} train / {len(val.tokens):,} "
              f"validation tokens, vocabulary {tok.vocab_size}, block size {block}")
    kind = cfg["model"]["name"] if isinstance(cfg["model"], dict) else (
        f"{len(cfg['model'])} layers")
    print(f"model: {kind}, {n_params:,} parameters")
    print(f"training: {cfg['steps']} steps, batch size {cfg['batch_size']}, evaluating every "
          f"{cfg['eval_every']} steps on {cfg['eval_steps']} batches, seed {cfg['seed']}")
    print(f"run folder: {run_dir}")
    start = time.perf_counter()
    history = _fit_run(run_dir, "in interval", lambda callbacks: trainer.fit(
        train, steps=cfg["steps"], eval_every=cfg["eval_every"], eval_steps=cfg["eval_steps"],
        accumulate_steps=cfg["accumulate_steps"],
        validation_data=val, verbose=args.verbose, callbacks=callbacks,
        resume_from=run_dir / "checkpoint" if resume_dir else None))
    if history is None:
        return 130
    seconds = time.perf_counter() - start
    results = {"val_loss": history["val_loss"][-1], "loss": history["loss"][-1],
               "steps": history["step"][-1], "seconds": seconds}
    if names:  # makemore's figure: the loss per character of every test name, end marks included
        results["test_loss"] = per_character_loss(model, val)
    _finish_run(run_dir, model, results)
    print(f"trained to step {results['steps']} in {seconds:.1f}s: validation loss "
          f"{results['val_loss']:.4f}" + (f", test loss {results['test_loss']:.4f} per "
                                            f"character over {val.num_targets:,} characters"
                                            if names else ""))
    if not args.no_plots:
        _curve(run_dir, history, cfg["name"])
    s = cfg["sample"]
    ember.manual_seed(cfg["seed"])
    text = sample_text(model, cfg, tok, s["prompt"], int(s["tokens"]), float(s["temperature"]),
                       s["top_k"])
    _atomic_write(run_dir / "samples.txt", text + ("" if text.endswith("\n") else "\n"))
    print(f"\nrun folder: {run_dir}\nnext:\n  ember sample {_quoted(run_dir)} --tokens 500")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """``ember sample RUN_DIR [--prompt] [--tokens] [--temperature] [--top-k] [--seed]``."""
    import ember

    run = Path(args.run_dir)
    cfg = json.loads((run / "config.json").read_text(encoding="utf-8")) if (
        run / "config.json").is_file() else {}
    if not cfg.get("text"):
        raise CliError(f"{args.run_dir}: not a text run folder (it needs the config.json of "
                       f"`ember train` on a text config)")
    ember.set_backend(args.backend or cfg["backend"])
    try:
        loaded = ember.load_run(run)
    except FileNotFoundError as e:
        raise CliError(str(e)) from None
    tok = loaded.tokenizer
    unknown = [c for c in args.prompt if c not in tok.vocab]
    if unknown:
        raise CliError(f"--prompt: character {unknown[0]!r} is not in the run's vocabulary of "
                       f"{tok.vocab_size} characters")
    ember.manual_seed(args.seed)
    sys.stdout.write(sample_text(loaded.model, cfg, tok, args.prompt, args.tokens,
                                 args.temperature, args.top_k) + "\n")
    return 0


def text_summary(raw: dict[str, Any], src: Source, default_name: str,
                 run_dir: str | None = None) -> int:
    """``ember summary`` of a text config or run: the model's layers for its vocabulary."""
    import numpy as np

    import ember
    from ember.data import CharTokenizer

    cfg = resolve_text(raw, src, default_name)
    ember.set_backend(cfg["backend"])
    folder = Path(run_dir) if run_dir is not None else None
    saved = [folder / f for f in ("tokenizer.json", "vocab.json")] if folder else []
    found = [f for f in saved if f.is_file()]
    if found:
        tok = CharTokenizer.from_config(json.loads(found[0].read_text(encoding="utf-8")))
    else:
        tok = text_data(cfg)[2]
    model = build_lm(cfg, tok.vocab_size, src)
    block = cfg["data"]["block_size"]
    kind = cfg["model"]["name"] if isinstance(cfg["model"], dict) else "layer list"
    print(f"{cfg['name']}: {kind} on {tok.vocab_size} characters, context {block}")
    model.summary((block,), dtype=np.int64)
    return 0


def not_for_text(run_dir: str, command: str) -> CliError:
    """The error of ``ember evaluate/predict/export`` on a text run."""
    return CliError(f"{run_dir}: a text run (a language model); `ember {command}` takes image and "
                    f"table runs; use `ember sample {run_dir}` (its validation loss is in "
                    f"results.json)")
