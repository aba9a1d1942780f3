"""`ember train` on the text presets and `ember sample` (issue 13 item 4): tiny sizes, a few
steps, so that the whole file runs in seconds."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.cli import main
from ember.data import load_names, load_tiny_shakespeare

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "steps=3", "--set", "eval_every=2", "--set", "eval_steps=1", "--set",
        "batch_size=2", "--set", "sample.tokens=30", "--verbose", "0"]
SMALL = {"shakespeare-char": ["--set", "model.n_layer=1", "--set", "model.n_head=2",
                              "--set", "model.n_embd=16"],
         "names": ["--set", "model.n_layer=1", "--set", "model.n_head=2", "--set",
                   "model.n_embd=16"],
         "names-bigram": [], "names-mlp": ["--set", "model.n_embd2=16"], "names-mlp-layers": [],
         "names-gru": ["--set", "model.n_embd=8", "--set", "model.n_embd2=8"]}


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_folder(out):
    return Path(re.findall(r"^run folder: (\S+)$", out, flags=re.M)[-1])


def test_shakespeare_char_preset_is_the_nanogpt_cpu_recipe():
    cfg = tomllib.loads((ROOT / "ember/presets/shakespeare-char.toml").read_text())
    assert cfg["model"] == {"name": "gpt", "n_layer": 4, "n_head": 4, "n_embd": 128,
                            "dropout": 0.0, "bias": False}
    assert cfg["data"] == {"name": "tiny-shakespeare", "block_size": 64}
    assert (cfg["batch_size"], cfg["steps"], cfg["eval_every"], cfg["eval_steps"],
            cfg["grad_clip"]) == (12, 2000, 250, 20, 1.0)
    assert cfg["optimizer"] == {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.99],
                                "weight_decay": 0.1}
    assert cfg["schedule"] == {"warmup_steps": 100, "min_lr": 1e-4, "decay_steps": 2000}


def test_names_preset_is_makemores_transformer():
    from ember import models

    cfg = tomllib.loads((ROOT / "ember/presets/names.toml").read_text())
    model = models.build(cfg["model"], 27, cfg["data"]["block_size"])
    assert (model.n_layer, model.n_head, model.n_embd, model.bias, model.tie_weights,
            model.init) == (4, 4, 64, True, False, "pytorch")
    assert sum(p.size for p in model.parameters()) == 204_544  # makemore's "model #params"
    assert (cfg["batch_size"], cfg["data"]) == (32, {"name": "names", "block_size": 16})


@pytest.mark.parametrize("name", sorted(SMALL))
def test_each_text_preset_trains_and_samples(name, tmp_path, capsys):
    code, out, err = cli(capsys, "train", "--preset", name, "--runs-dir", tmp_path, *TINY,
                         *SMALL[name], *([] if name == "shakespeare-char" else ["--no-plots"]))
    assert code == 0, err
    run = run_folder(out)
    for f in ("config.json", "tokenizer.json", "history.csv", "model.safetensors",
              "samples.txt", "results.json"):
        assert (run / f).is_file(), f
    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 3] and all(r["val_loss"] for r in rows)
    corpus = (load_tiny_shakespeare() if name == "shakespeare-char"
              else "\n".join(load_names()) + "\n")
    vocab = set(json.loads((run / "tokenizer.json").read_text())["vocab"])
    assert vocab == set(corpus)
    assert set((run / "samples.txt").read_text()) <= vocab
    code, out, err = cli(capsys, "sample", run, "--tokens", 50, "--temperature", 0.8,
                         "--top-k", 5, "--seed", 3)
    assert code == 0, err
    text = out[:-1]  # print's newline
    assert len(text) == 50 and set(text) <= vocab
    assert cli(capsys, "sample", run, "--tokens", 50, "--temperature", 0.8, "--top-k", 5,
               "--seed", 3)[1] == out  # the seed decides
    if name == "shakespeare-char":
        assert (run / "loss.png").stat().st_size > 1000
        code, out, _ = cli(capsys, "sample", run, "--prompt", "ROMEO:", "--tokens", 10)
        assert out.startswith("ROMEO:") and len(out) == 17


def test_sample_errors(tmp_path, capsys):
    code, _, err = cli(capsys, "sample", tmp_path)
    assert code == 2 and "not a text run folder" in err
    code, out, _ = cli(capsys, "train", "--preset", "names-bigram", "--runs-dir", tmp_path,
                       *TINY, "--no-plots")
    code, _, err = cli(capsys, "sample", run_folder(out), "--prompt", "Zoë")
    assert code == 2 and "character 'Z' is not in the run's vocabulary" in err


def test_a_config_of_your_own_txt_file(tmp_path, capsys):
    (tmp_path / "poem.txt").write_text("the cat sat on the mat. " * 20)
    (tmp_path / "c.toml").write_text(
        'name = "poem"\nsteps = 4\neval_every = 2\neval_steps = 1\nbatch_size = 2\n'
        'data = { name = "poem.txt", block_size = 8 }\n'
        'model = { name = "gpt", n_layer = 1, n_head = 1, n_embd = 8 }\n'
        'sample = { tokens = 20 }\n')
    code, out, err = cli(capsys, "train", tmp_path / "c.toml", "--runs-dir", tmp_path,
                         "--verbose", "0", "--no-plots")
    assert code == 0, err
    assert set((run_folder(out) / "samples.txt").read_text()) <= set("the cat sat on mat.\n")
    (tmp_path / "bad.toml").write_text('data = { name = "poem.txt" }\nmodel = { name = "gtp" }\n')
    code, _, err = cli(capsys, "train", tmp_path / "bad.toml", "--runs-dir", tmp_path)
    assert code == 2 and "model.name: expected one of gpt, bigram, mlp, rnn, gru, got 'gtp'" in err
    code, _, err = cli(capsys, "train", "--preset", "names-bigram", "--epochs", 2)
    assert code == 2 and "--epochs: a text config trains by steps; use --set steps=N" in err
    code, _, err = cli(capsys, "train", "--preset", "names", "--set", "schedule.decay_steps=5",
                       "--set", "steps=5")
    assert code == 2 and ("schedule.warmup_steps: 200 warm-up steps leave no decay over 5 "
                          "steps; give fewer warm-up steps or schedule.decay_steps") in err


def test_resume_a_text_run_with_more_steps_equals_the_longer_run(tmp_path, capsys):
    common = ["--preset", "names-bigram", "--set", "eval_every=2", "--set", "eval_steps=1",
              "--set", "batch_size=2", "--verbose", "0", "--no-plots"]
    code, out, err = cli(capsys, "train", "--runs-dir", tmp_path / "a", "--set", "steps=4",
                         *common)
    full = ember.load_model(run_folder(out) / "model.safetensors").state_dict()
    code, out, err = cli(capsys, "train", "--runs-dir", tmp_path / "b", "--set", "steps=2",
                         *common)
    run = run_folder(out)
    code, out, err = cli(capsys, "train", "--resume", run, "--set", "steps=4", "--verbose", 0,
                         "--no-plots")
    assert code == 0, err
    resumed = ember.load_run(run).model.state_dict()
    assert resumed.keys() == full.keys()
    for k in full:
        np.testing.assert_array_equal(np.asarray(resumed[k]), np.asarray(full[k]), err_msg=k)
    assert "step 4" in out
    code, out, err = cli(capsys, "summary", run)
    assert code == 0 and "Total params: 729" in out  # 27 x 27 logits table
    code, _, err = cli(capsys, "evaluate", run)
    assert code == 2 and "a text run (a language model)" in err


def test_a_run_folder_of_the_older_layout_still_loads_and_samples(tmp_path, capsys):
    """Text runs used to write weights.safetensors (a state_dict) and vocab.json: load_run and
    `ember sample` rebuild the model from config.json and give the same model and text."""
    import shutil

    code, out, err = cli(capsys, "train", "--preset", "names-gru", "--runs-dir", tmp_path,
                         *TINY, *SMALL["names-gru"], "--no-plots")
    assert code == 0, err
    run = run_folder(out)
    new = cli(capsys, "sample", run, "--tokens", 40, "--seed", 1)[1]
    old = tmp_path / "old-layout"
    shutil.copytree(run, old)
    ember.save(ember.load_model(run / "model.safetensors").state_dict(),
               old / "weights.safetensors")
    (old / "tokenizer.json").rename(old / "vocab.json")
    (old / "model.safetensors").unlink()
    shutil.rmtree(old / "checkpoint")
    a, b = ember.load_run(run), ember.load_run(old)
    assert type(b.model).__name__ == "GRULM" and b.tokenizer.vocab == a.tokenizer.vocab
    for k, v in a.model.state_dict().items():
        np.testing.assert_array_equal(np.asarray(b.model.state_dict()[k]), np.asarray(v))
    code, again, err = cli(capsys, "sample", old, "--tokens", 40, "--seed", 1)
    assert code == 0 and again == new, err
    (old / "weights.safetensors").unlink()
    code, _, err = cli(capsys, "sample", old)
    assert code == 2 and "has neither model.safetensors nor a checkpoint" in err


LAYERS = """
name = "makemore-mlp"
seed = 0
steps = 60
eval_every = 30
eval_steps = 2
batch_size = 32
data = { name = "names", context = 3 }
model = [
    { type = "embedding", num_embeddings = "vocab_size", embedding_dim = 4 },
    { type = "flatten" },
    { type = "dense", units = 32 },
    { type = "tanh" },
    { type = "dense", units = "vocab_size" },
]
optimizer = { name = "adamw", lr = 1e-2 }
sample = { tokens = 60 }
"""


def test_a_layer_list_config_trains_on_per_character_examples(tmp_path, capsys):
    (tmp_path / "mlp.toml").write_text(LAYERS)
    code, out, err = cli(capsys, "train", tmp_path / "mlp.toml", "--runs-dir", tmp_path,
                         "--verbose", "0", "--no-plots")
    assert code == 0, err
    assert "one example per character, context 3" in out and "model: 5 layers, 1," in out
    run = run_folder(out)
    results = json.loads((run / "results.json").read_text())
    assert results["test_loss"] < 2.9  # from ln(27) = 3.30 at the start
    loaded = ember.load_run(run)
    assert [type(m).__name__ for m in loaded.model] == ["Embedding", "Flatten", "Linear", "Tanh",
                                                        "Linear"]
    assert loaded.model[0].weight.shape == (27, 4) and loaded.model[4].out_features == 27
    from ember.cli.text import per_character_loss
    from ember.data import NameExamples

    test = NameExamples(load_names("test"), 100, context=3, tokenizer=loaded.tokenizer)
    assert per_character_loss(loaded.model, test) == pytest.approx(results["test_loss"],
                                                                  rel=1e-6)
    code, out, err = cli(capsys, "sample", run, "--tokens", 60, "--seed", 2, "--prompt", "ka")
    assert code == 0, err
    text = out[:-1]
    assert text.startswith("ka") and len(text) == 62 and set(text) <= set(loaded.tokenizer.vocab)
    assert all(0 < len(w) <= 32 for w in text.split("\n")[:-1])  # one name a line
    (tmp_path / "bad.toml").write_text(LAYERS.replace('{ type = "flatten" }', '"flatten"'))
    code, _, err = cli(capsys, "train", tmp_path / "bad.toml", "--runs-dir", tmp_path)
    assert code == 2 and "model[1]: a layer list needs tables with a type" in err
    (tmp_path / "bad.toml").write_text(LAYERS.replace("context = 3", "context = 3, "
                                                      "block_size = 4"))
    code, _, err = cli(capsys, "train", tmp_path / "bad.toml", "--runs-dir", tmp_path)
    assert code == 2 and "data.context: one example per character" in err


def test_accumulate_steps_in_a_text_config_trains_as_fit_does(tmp_path, monkeypatch, capsys):
    """``--set accumulate_steps=2`` on a text preset gives exactly the weights of the same run
    whose Trainer.fit is called with accumulate_steps=2 (two batches per optimizer step), and not
    those of a run without it; a bad value is a config error."""
    from ember.train.trainer import Trainer

    args = ["train", "--preset", "names-bigram", "--no-plots", *TINY]

    def weights(extra, accumulate=None):
        if accumulate is not None:
            fit = Trainer.fit
            monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: fit(
                self, *a, **{**k, "accumulate_steps": accumulate}))
        runs = tmp_path / f"runs{len(list(tmp_path.iterdir()))}"
        code, out, err = cli(capsys, *args, "--runs-dir", runs, *extra)
        monkeypatch.undo()
        assert code == 0, err
        model = ember.load_run(run_folder(out)).model
        return {k: np.asarray(v) for k, v in model.state_dict().items()}

    from_config = weights(["--set", "accumulate_steps=2"])
    from_fit = weights([], accumulate=2)
    plain = weights([])
    for k in from_config:
        np.testing.assert_array_equal(from_config[k], from_fit[k])
    assert any(not np.array_equal(from_config[k], plain[k]) for k in plain)
    code, _, err = cli(capsys, *args, "--runs-dir", tmp_path / "bad", "--set", "accumulate_steps=0")
    assert code == 2 and "accumulate_steps: expected an integer >= 1, got 0" in err
    code, _, err = cli(capsys, *args, "--runs-dir", tmp_path / "bad", "--set", "backend=jax",
                       "--set", "accumulate_steps=2", "--set", "steps_per_execution=2")
    assert code == 2 and ("accumulate_steps: 2 runs one optimizer step per compiled call; it "
                          "cannot be combined with steps_per_execution = 2 on JAX") in err
