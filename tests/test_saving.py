"""Whole models: ember.save(model, path) / ember.load_model(path), nn.register, load_run."""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pytest
from safetensors.numpy import save as st_save

import ember
from ember import nn
from ember.nn import registry
from ember.train.checkpoint import CheckpointError
from ember.train.saving import MODEL_FORMAT_VERSION, Run
from tests.conftest import to_np


@nn.register
class TwoHeads(nn.Module):
    """A user's model: a trunk, a dict of heads, keyword and tuple arguments."""

    def __init__(self, n_in, widths=(8, 4), heads=("a", "b"), act="tanh", dtype=None):
        super().__init__()
        self.trunk = nn.MLP(n_in, list(widths), widths[-1], activation=act, dtype=dtype)
        self.heads = nn.ModuleDict({h: nn.Linear(widths[-1], 1) for h in heads})
        self.norm = nn.ModuleList([nn.LayerNorm(widths[-1]), nn.Identity()])

    def forward(self, x):
        z = self.norm[1](self.norm[0](self.trunk(x)))
        return ember.concatenate([self.heads[h](z) for h in self.heads], axis=-1)


def _cases():
    """(name, model, per-sample input shape): every built-in layer at least once."""
    return [
        ("linear", nn.Linear(3, 4, activation="relu"), (3,)),
        ("linear-nobias-f64", nn.Linear(3, 2, bias=False, dtype=np.float64), (3,)),
        ("mlp", nn.MLP(3, [5, 4], 2), (3,)),
        ("activations", nn.Sequential(
            nn.Linear(3, 6), nn.LeakyReLU(0.2), nn.PReLU(), nn.GELU(approximate="tanh"),
            nn.Softplus(), nn.Sigmoid(), nn.Tanh(), nn.ReLU(), nn.Softmax(axis=-1),
            nn.LogSoftmax(), nn.Identity()), (3,)),
        ("norms-dropout", nn.Sequential(nn.Input((3,)), nn.Linear(3, 4), nn.BatchNorm1D(4),
                                        nn.Dropout(0.3), nn.LayerNorm(4, eps=1e-3)), (3,)),
        ("cnn", nn.Sequential(
            nn.Conv2D(2, 4, 3, padding=1), nn.BatchNorm2D(4), nn.ReLU(), nn.MaxPool2D(2),
            nn.Conv2D(4, 4, (3, 3), stride=1), nn.AvgPool2D(2, stride=1),
            nn.GlobalAvgPool2D(), nn.Flatten(), nn.Linear(4, 3)), (2, 8, 8)),
        ("conv-options", nn.Sequential(
            nn.Conv2D(2, 4, 3, padding=2, dilation=2, groups=2), nn.MaxPool2D(3, ceil_mode=True),
            nn.AvgPool2D(2, padding=1, count_include_pad=False), nn.AdaptiveMaxPool2D((3, 2)),
            nn.AdaptiveAvgPool2D(1), nn.Flatten()), (2, 9, 9)),
        ("conv1d", nn.Conv1D(2, 3, 3, stride=2, padding=1, dilation=1), (2, 7)),
        ("named-sequential", nn.Sequential({"fc": nn.Linear(3, 2), "act": nn.Tanh()}), (3,)),
        ("custom", TwoHeads(3, widths=(6, 5), heads=("x", "y", "z")), (3,)),
        *_sequence_cases(),
    ]


def _sequence_cases():
    """The sequence layers, once they exist in this ember (an input of dtype int64 is token
    indices in [0, 10))."""
    if not hasattr(nn, "Embedding"):
        return []
    return [
        ("embedding-rmsnorm", nn.Sequential(nn.Embedding(10, 8, padding_idx=0), nn.RMSNorm(8),
                                            nn.TransformerBlock(8, 2, causal=True),
                                            nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)),
         ("int64", 5)),
        ("groupnorm", nn.Sequential(nn.Conv2D(2, 4, 1), nn.GroupNorm(2, 4)), (2, 3, 3)),
        ("attention", nn.MultiheadAttention(8, 2), (5, 8)),
        ("rnn", nn.RNN(3, 4, num_layers=2, nonlinearity="relu"), (5, 3)),
        ("lstm", nn.LSTM(3, 4, bidirectional=True), (5, 3)),
        ("gru", nn.GRU(3, 4), (5, 3)),
        ("cells", nn.ModuleList([nn.RNNCell(3, 4), nn.LSTMCell(3, 4), nn.GRUCell(3, 4)]), (3,)),
        *_model_cases(),
    ]


def _model_cases():
    """The reference language models of ember.models (token indices in [0, 10))."""
    from ember import models

    return [
        ("gpt", models.GPT(10, block_size=8, n_layer=2, n_head=2, n_embd=8), ("int64", 5)),
        ("bigram", models.Bigram(10), ("int64", 5)),
        ("mlp-lm", models.MLP(10, block_size=3, n_embd=4, n_embd2=8), ("int64", 5)),
        ("rnn-lm", models.RNNLM(10, n_embd=4, n_embd2=6, block_size=8), ("int64", 5)),
        ("gru-lm", models.GRULM(10, n_embd=4, n_embd2=6, block_size=8), ("int64", 5)),
    ]


def _input(shape, n):
    if shape[0] == "int64":
        return ember.tensor(np.random.default_rng(n).integers(0, 10, (n, *shape[1:])))
    return ember.randn(n, *shape)


def _outputs(model, x):
    """Every output array of the model on ``x``, flattened (tuples of (output, state)...)."""
    if isinstance(model, nn.ModuleList):
        return [a for m in model for a in _outputs(m, x)]
    out = model(x)
    stack, flat = [out], []
    while stack:
        o = stack.pop(0)
        if isinstance(o, (tuple, list)):
            stack = list(o) + stack
        elif o is not None:
            flat.append(to_np(o))
    return flat


def _train_a_little(model, shape):
    """Move the weights and BatchNorm statistics away from their initial values."""
    for p in model.parameters():
        p.data = p.data + 0.1 * ember.randn(*p.shape, dtype=p.dtype).data
    model.train()
    _outputs(model, _input(shape, 6))


# The file holds host arrays whatever the backend: every case on NumPy, two on JAX (eager JAX
# compiles each op, which makes the CNN case slow there).
_ROUND_TRIPS = [("numpy", c[0]) for c in _cases()] + [("jax", "linear-nobias-f64"),
                                                      ("jax", "named-sequential")]


@pytest.mark.parametrize(("backend_name", "name"), _ROUND_TRIPS)
def test_round_trip_gives_identical_outputs(tmp_path, backend_name, name):
    ember.set_backend(backend_name)
    ember.manual_seed(1)
    _, model, shape = next(c for c in _cases() if c[0] == name)
    _train_a_little(model, shape)
    model.eval()
    path = tmp_path / "m.safetensors"
    ember.save(model, path)
    loaded = ember.load_model(path)
    assert type(loaded) is type(model) and not loaded.training
    assert list(loaded.state_dict()) == list(model.state_dict())
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert to_np(b).dtype == to_np(a).dtype, k
        np.testing.assert_array_equal(to_np(b), to_np(a), err_msg=k)
    x = _input(shape, 5)
    for a, b in zip(_outputs(loaded, x), _outputs(model, x), strict=True):
        np.testing.assert_array_equal(a, b)
    assert repr(loaded) == repr(model)


def test_every_builtin_layer_has_a_round_trip_case():
    covered = set()
    for _, model, _ in _cases():
        covered |= {type(m) for m in model.modules()}
    builtin = {cls for name, cls in registry._REGISTRY.items()
               if cls.__module__.startswith("ember.") and cls is not nn.Lambda}
    missing = sorted(c.__name__ for c in builtin - covered)
    assert not missing, f"add a round-trip case for {missing}"


@nn.register
class Stack(nn.Sequential):
    """A user's container without a constructor of its own: saved from its children."""

    def forward(self, x):
        return super().forward(x) * 2


def test_a_registered_container_subclass_is_saved_from_its_children(tmp_path):
    model = Stack(nn.Linear(2, 3), nn.Tanh())
    model.add_module("2", nn.Linear(3, 1))  # changed after it was built: saved as it is now
    ember.save(model, tmp_path / "m.safetensors")
    loaded = ember.load_model(tmp_path / "m.safetensors")
    assert type(loaded) is Stack and len(loaded) == 3
    x = ember.randn(4, 2)
    np.testing.assert_array_equal(to_np(loaded(x)), to_np(model(x)))


def test_training_mode_and_frozen_parameters_survive(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2, trainable=False), nn.Linear(2, 1))
    model[1].bias.requires_grad = False
    ember.save(model, tmp_path / "m.safetensors")
    loaded = nn.load(tmp_path / "m.safetensors")
    assert loaded.training
    assert [p.requires_grad for p in loaded.parameters()] == [False, False, True, False]


def test_keras_spelling_and_spec_of_a_registered_class(tmp_path):
    model = TwoHeads(2, heads=("only",))
    model.save(tmp_path / "m.safetensors")
    loaded = nn.load(tmp_path / "m.safetensors")
    assert list(loaded.heads) == ["only"]
    assert registry.spec(model) == {"type": "TwoHeads", "args": [2],
                                    "kwargs": {"heads": {"$tuple": ["only"]}}}


def test_state_dict_files_are_unchanged_and_point_to_load_state_dict(tmp_path):
    model = nn.Linear(2, 2)
    ember.save(model.state_dict(), tmp_path / "w.safetensors")
    assert list(ember.load(tmp_path / "w.safetensors")) == ["weight", "bias"]
    with pytest.raises(CheckpointError, match=r"weights only.*model.load_state_dict"):
        ember.load_model(tmp_path / "w.safetensors")


def test_unregistered_class_function_argument_and_changed_model_are_refused(tmp_path):
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

    with pytest.raises(registry.SpecError, match=r"model \(.*Plain\) is not a registered.*"
                       r"@nn.register"):
        ember.save(Plain(), tmp_path / "a.safetensors")
    with pytest.raises(registry.SpecError, match=r"model.1 \(Lambda\) argument 0 is a function"):
        ember.save(nn.Sequential(nn.Linear(2, 2), nn.Lambda(np.tanh)), tmp_path / "b.safetensors")
    with pytest.raises(registry.SpecError, match=r"model \(Linear\) argument 'dtype' is the "
                       r"type float, .*dtype='float64'"):
        ember.save(nn.Linear(2, 2, dtype=float), tmp_path / "d.safetensors")
    changed = TwoHeads(2)
    changed.heads["c"] = nn.Linear(4, 1)
    with pytest.raises(registry.SpecError, match=r"TwoHeads was changed after it was built.*"
                       r"heads.c.weight \(1, 4\)"):
        ember.save(changed, tmp_path / "c.safetensors")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"name 'TwoHeads' is taken by .*TwoHeads; give "
                       r".*Other another one"):
        @nn.register(name="TwoHeads")
        class Other(nn.Module):
            pass


def _model_file(path, tree, version=MODEL_FORMAT_VERSION):
    arrays = {"weight": np.zeros((1, 1), np.float32)}
    from ember.train.checkpoint import _digest

    meta = {"format": "ember-model", "format_version": str(version), "ember_version": "9.9",
            "model": json.dumps(tree), "keys": json.dumps(list(arrays)),
            "sha256": _digest(arrays)}
    path.write_bytes(st_save(arrays, metadata=meta))


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo hacked",))


def test_loading_runs_no_code_from_the_file(tmp_path, monkeypatch):
    import pickle

    (tmp_path / "model.pt").write_bytes(pickle.dumps(_Boom()))
    ran = []
    monkeypatch.setattr(os, "system", lambda *a: ran.append(a))
    for i, tree in enumerate([
        {"type": "os.system", "args": ["echo hacked"], "kwargs": {}},
        {"type": "__import__", "args": ["os"], "kwargs": {}},
        {"type": "Sequential", "modules": {"0": {"type": "eval", "args": ["1"]}}},
    ]):
        _model_file(tmp_path / f"{i}.safetensors", tree)
        with pytest.raises(registry.SpecError, match=r"no Module class is registered as"):
            ember.load_model(tmp_path / f"{i}.safetensors")
    with pytest.raises(CheckpointError, match=r"a Python pickle.*never unpickles"):
        ember.load_model(tmp_path / "model.pt")
    assert ran == []


def test_newer_format_version_is_a_clear_error(tmp_path):
    _model_file(tmp_path / "m.safetensors", {"type": "Linear", "args": [1, 1], "kwargs": {}},
                version=MODEL_FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match=rf"model format version '{MODEL_FORMAT_VERSION + 1}'"
                       r", newer than this ember reads \(1\); it was written by ember 9.9: "
                       r"upgrade ember"):
        ember.load_model(tmp_path / "m.safetensors")


def test_modified_weights_are_detected(tmp_path):
    path = tmp_path / "m.safetensors"
    ember.save(nn.Linear(2, 2), path)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        ember.load_model(path)


def test_load_run_of_ember_train(tmp_path):
    from ember.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--preset", "xor", "--epochs", "2", "--no-plots", "--runs-dir",
                     str(tmp_path), "--verbose", "0"]) == 0
    (run_dir,) = tmp_path.iterdir()
    run = ember.load_run(run_dir)
    assert isinstance(run, Run) and run.tokenizer is None and not run.model.training
    assert run.history.epoch == [0, 1] and len(run.history["loss"]) == 2
    assert run.config["epochs"] == 2
    from ember.train.checkpoint import read_checkpoint

    arrays, _ = read_checkpoint(run_dir / "checkpoint")
    for k, v in run.model.state_dict().items():
        np.testing.assert_array_equal(to_np(v), arrays["model"][k])
    import shutil

    csv_only = tmp_path / "csv-only"
    shutil.copytree(run_dir, csv_only)
    shutil.rmtree(csv_only / "checkpoint")  # model.safetensors and history.csv suffice
    from_files = ember.load_run(csv_only)
    assert from_files.history.epoch == [0, 1]
    assert from_files.history.history == {k: [float(v) for v in vs]
                                          for k, vs in run.history.history.items()}
    (run_dir / "model.safetensors").unlink()  # the checkpoint alone suffices
    again = ember.load_run(run_dir)
    x = ember.randn(4, 2)
    np.testing.assert_array_equal(to_np(again.model(x)), to_np(run.model(x)))
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        ember.load_run(tmp_path / "nowhere")
