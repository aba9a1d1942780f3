"""ReduceLROnPlateau, TensorBoard, JSON-lines logs, callback configs, lr_find, accumulation."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import ember
from ember import callbacks, nn, optim
from ember.train.callbacks import JSONLinesLogger, ReduceLROnPlateau, TensorBoard


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)


def lr_sequence(values, lr, **kw):
    """The rate after each epoch's on_epoch_end, for a sequence of monitored values."""
    model = nn.Linear(1, 1)
    trainer = ember.Trainer(model, "mse", optim.SGD(model.parameters(), lr=lr))
    cb = ReduceLROnPlateau("val_loss", **kw)
    cb.set_trainer(trainer)
    cb.on_train_begin({})
    out = []
    for epoch, v in enumerate(values):
        cb.on_epoch_end(epoch, {"val_loss": v})
        out.append(float(ember.backend.get().to_numpy(trainer.optimizer.param_groups[0]["lr"])))
    return out


def test_reduce_lr_on_plateau_min_mode_patience_cooldown_min_lr(backend):
    # hand-computed with Keras's rules: patience 2, cooldown 1, halve, floor 0.01
    got = lr_sequence([1.0] * 5 + [0.5] * 7, 0.1, factor=0.5, patience=2, cooldown=1,
                      min_lr=0.01, min_delta=0.0)
    want = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.01, 0.01, 0.01]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_reduce_lr_on_plateau_max_mode_min_delta(backend):
    got = lr_sequence([0.5, 0.55, 0.555, 0.56, 0.6], 1.0, factor=0.1, patience=1, mode="max",
                      min_delta=0.02)
    np.testing.assert_allclose(got, [1.0, 1.0, 0.1, 0.01, 0.01], rtol=1e-6)


def test_reduce_lr_on_plateau_in_fit_history_lr(backend):
    ember.manual_seed(0)
    x, y = data()
    model = nn.Linear(3, 1)
    t = ember.Trainer(model, "mse", optim.SGD(model.parameters(), lr=0.1))
    cb = ReduceLROnPlateau("loss", factor=0.5, patience=1, min_delta=1e9)  # never improves
    h = t.fit(x, y, epochs=4, batch_size=8, callbacks=[cb], verbose=0)
    np.testing.assert_allclose(h.history["lr"], [0.1, 0.1, 0.05, 0.025], rtol=1e-6)


def test_reduce_lr_on_plateau_resumes_its_counters(backend, tmp_path):
    def run(epochs, resume=False, first=None):
        ember.manual_seed(0)
        x, y = data()
        model = nn.Linear(3, 1)
        t = ember.Trainer(model, "mse", optim.SGD(model.parameters(), lr=0.1))
        cbs = [ReduceLROnPlateau("loss", factor=0.5, patience=2, cooldown=1, min_delta=1e9),
               callbacks.ModelCheckpoint(tmp_path / "ckpt", monitor="loss")]
        return t.fit(x, y, epochs=epochs, batch_size=8, callbacks=cbs, verbose=0,
                     resume_from=tmp_path / "ckpt" if resume else None).history["lr"]

    straight = run(5)
    np.testing.assert_allclose(straight, [0.1, 0.1, 0.1, 0.05, 0.05], rtol=1e-6)
    run(2)
    assert run(5, resume=True) == straight  # wait 1 and the best loss came back


def test_reduce_lr_on_plateau_errors():
    with pytest.raises(ValueError, match=r"factor must be in \(0, 1\).*got 1.5"):
        ReduceLROnPlateau(factor=1.5)
    model = nn.Linear(1, 1)
    opt = optim.SGD(model.parameters(), lr=optim.schedules.exponential_decay(0.1, gamma=0.5))
    cb = ReduceLROnPlateau()
    cb.set_trainer(ember.Trainer(model, "mse", opt))
    with pytest.raises(ValueError, match="group 0 has a schedule"):
        cb.on_train_begin({})


def test_callback_configs_round_trip(tmp_path):
    made = [callbacks.EarlyStopping(monitor="loss", patience=3),
            callbacks.ModelCheckpoint(tmp_path / "c", monitor="loss"),
            callbacks.CSVLogger(tmp_path / "h.csv"),
            JSONLinesLogger(tmp_path / "h.jsonl", append=True),
            ReduceLROnPlateau("loss", factor=0.2, patience=4, cooldown=2, min_lr=1e-5),
            TensorBoard(tmp_path / "tb", histogram_freq=2)]
    assert sorted(cb.config()["name"] for cb in made) == sorted(callbacks.REGISTRY)
    for cb in made:
        again = callbacks.from_config(json.loads(json.dumps(cb.config())))
        assert type(again) is type(cb) and again.config() == cb.config()
    with pytest.raises(ValueError, match="unknown callback 'tensorbord'; choose one of"):
        callbacks.get("tensorbord")
    with pytest.raises(NotImplementedError, match="LambdaCallback has no config"):
        callbacks.LambdaCallback().config()


def test_json_lines_logger(tmp_path, backend):
    ember.manual_seed(0)
    x, y = data()
    path = tmp_path / "logs" / "train.jsonl"
    t = ember.Trainer(nn.Linear(3, 1), "mse", "sgd")
    h = t.fit(x, y, epochs=3, batch_size=8, validation_data=(x, y), verbose=0,
              callbacks=[JSONLinesLogger(path)])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    for key in ("loss", "val_loss", "lr"):
        assert [r[key] for r in rows] == h.history[key]
    assert all(r["time"] >= 0 for r in rows)


def read_events(folder):
    """Every Event in the TFRecord event files of ``folder`` (length, crc, data, crc records),
    parsed with tensorboardX's protobuf classes."""
    from tensorboardX.proto import event_pb2

    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        raw = path.read_bytes()
        i = 0
        while i < len(raw):
            (n,) = struct.unpack("<Q", raw[i:i + 8])
            ev = event_pb2.Event()
            ev.ParseFromString(raw[i + 12:i + 12 + n])
            events.append(ev)
            i += 12 + n + 4
    return events


def test_tensorboard_scalars_and_histograms(tmp_path, backend):
    ember.manual_seed(0)
    x, y = data()
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    t = ember.Trainer(model, "mse", optim.SGD(model.parameters(), lr=0.05), metrics=["mae"])
    seen = {}
    keep = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.setdefault(
        e, ember.backend.get().to_numpy(model[0].weight.data)))
    h = t.fit(x, y, epochs=3, batch_size=8, validation_data=(x, y), verbose=0,
              callbacks=[keep, TensorBoard(tmp_path / "tb", histogram_freq=2)])
    scalars, histos = {}, {}
    for ev in read_events(tmp_path / "tb"):
        for v in ev.summary.value:
            if v.HasField("histo"):
                histos.setdefault(v.tag, []).append((ev.step, v.histo))
            else:
                scalars.setdefault(v.tag, []).append((ev.step, v.simple_value))
    assert set(scalars) == set(h.history) == {"loss", "mae", "val_loss", "val_mae", "lr"}
    for key, series in scalars.items():
        assert [s for s, _ in series] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in series], h.history[key], rtol=1e-6)
    names = [n for n, _ in model.named_parameters()]
    assert set(histos) == {f"{kind}/{n}" for kind in ("weights", "gradients") for n in names}
    w = seen[1]  # the weights after epoch 1 (histograms every 2 epochs)
    (step, histo), = histos["weights/0.weight"]
    assert step == 1 and histo.num == w.size
    np.testing.assert_allclose([histo.min, histo.max, histo.sum], [w.min(), w.max(), w.sum()],
                               rtol=1e-5)


# -- gradient accumulation -------------------------------------------------------------------------

def accumulation_run(k, batch_size, jit, n=22, epochs=2, metrics=("mae",)):
    ember.manual_seed(3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = (np.sin(x) @ np.array([[1.0], [-2.0], [0.5]])).astype(np.float32)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    opt = optim.Adam(model.parameters(), lr=0.05)
    t = ember.Trainer(model, "mse", opt, metrics=list(metrics), jit=jit)
    h = t.fit(x, y, epochs=epochs, batch_size=batch_size, accumulate_steps=k, verbose=0)
    params = {name: ember.backend.get().to_numpy(p.data) for name, p in model.named_parameters()}
    return h, params, t


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("k,micro", [(3, 2), (2, 5)])
def test_accumulate_steps_equals_k_times_larger_batch(backend, jit, k, micro):
    # 22 samples: batches of 6 = 3 x 2 (and a last 4 = 2 + 2), or 10 = 2 x 5 (last 2 = one 2)
    if jit and backend == "numpy":
        pytest.skip("NumPy runs eagerly either way")
    h_big, big, _ = accumulation_run(1, k * micro, jit)
    h_acc, acc, t = accumulation_run(k, micro, jit)
    for name in big:
        assert acc[name].dtype == np.float64
        np.testing.assert_allclose(acc[name], big[name], rtol=0, atol=1e-6, err_msg=name)
    if not jit:  # the test can fail: plain small batches end elsewhere
        assert not np.allclose(big["0.weight"], accumulation_run(1, micro, jit)[1]["0.weight"],
                               atol=1e-3)
    np.testing.assert_allclose(h_acc.history["loss"], h_big.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(h_acc.history["mae"], h_big.history["mae"], rtol=1e-6)
    steps = int(ember.backend.get().to_numpy(t.optimizer.state_dict()["step"]))
    assert steps == 2 * -(-22 // (k * micro))  # one optimizer step per k batches
    if backend == "jax" and jit:
        assert t.train_function.trace_count == 2  # full groups, then the short last one


def test_accumulate_steps_counts_optimizer_steps_per_epoch(backend):
    h, _, t = accumulation_run(2, 4, None, n=40, epochs=1)
    seen = []
    cb = callbacks.LambdaCallback(on_batch_end=lambda b, logs: seen.append((b, logs["size"])))
    t.fit(np.zeros((40, 3), "float32"), np.zeros((40, 1), "float32"), batch_size=4,
          steps_per_epoch=3, accumulate_steps=2, callbacks=[cb], verbose=0)
    assert seen == [(0, 8), (1, 8), (2, 8)]


def test_accumulate_steps_errors(backend):
    t = ember.Trainer(nn.Linear(3, 1), "mse", "sgd", steps_per_execution=4)
    x, y = data()
    with pytest.raises(ValueError, match="accumulate_steps must be a positive integer, got 0"):
        t.fit(x, y, accumulate_steps=0, verbose=0)
    if t.compiled:
        with pytest.raises(ValueError, match="cannot be combined with steps_per_execution=4"):
            t.fit(x, y, accumulate_steps=2, verbose=0)


# -- learning-rate finder --------------------------------------------------------------------------

def test_lr_find_sweeps_and_restores_everything_bit_for_bit(backend, tmp_path):
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
    t = ember.Trainer(model, "cross_entropy", optim.Adam(model.parameters(), lr=0.01),
                      metrics=["accuracy"])
    t.fit(x, y, epochs=1, batch_size=16, verbose=0)  # an optimizer with state and a step count
    bk = ember.backend.get()
    before = {k: bk.to_numpy(v).copy() for k, v in model.state_dict().items()}
    opt_before = {k: bk.to_numpy(v).copy() for k, v in t.optimizer.state_dict().items()}
    key = bk.to_numpy(ember.random.get_state()).copy()

    r = t.lr_find(x, y, start=1e-5, end=100.0, steps=30, batch_size=16)
    assert 2 < len(r.lrs) == len(r.losses) == len(r.smoothed) <= 30
    want = 1e-5 * (100.0 / 1e-5) ** (np.arange(len(r.lrs)) / 29)
    np.testing.assert_allclose(r.lrs, want, rtol=1e-12)
    assert r.suggestion in r.lrs or r.suggestion == r.lrs[int(np.argmin(r.smoothed))] / 10
    if len(r.lrs) < 30:  # stopped early: the loss blew up at the end
        assert r.smoothed[-1] > 4 * min(r.smoothed) or not np.isfinite(r.losses[-1])

    after = {k: bk.to_numpy(v) for k, v in model.state_dict().items()}
    opt_after = {k: bk.to_numpy(v) for k, v in t.optimizer.state_dict().items()}
    assert before.keys() == after.keys() and opt_before.keys() == opt_after.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    for k in opt_before:
        np.testing.assert_array_equal(opt_after[k], opt_before[k], err_msg=k)
    np.testing.assert_array_equal(bk.to_numpy(ember.random.get_state()), key)
    assert all(p.grad is None for p in model.parameters()) and model.training

    fig = ember.plot.plot_lr_find(r, path=tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 0
    assert fig.axes[0].get_xscale() == "log"


def test_lr_find_leaves_the_next_fit_unchanged(backend):
    def run(find):
        ember.manual_seed(1)
        x, y = data(32)
        model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1))
        t = ember.Trainer(model, "mse", optim.Adam(model.parameters(), lr=0.01))
        if find:
            t.lr_find(x, y, start=1e-4, end=1.0, steps=6, batch_size=8)
        return t.fit(x, y, epochs=2, batch_size=8, verbose=0).history["loss"]

    assert run(True) == run(False)


def test_lr_find_suggests_the_steepest_fall_before_the_lowest_loss():
    from ember.train.lr_finder import _suggest

    lrs = list(np.logspace(-4, 1, 10))
    # central differences over steps 1..7 (the first tenth skipped, nothing after the lowest):
    # the steepest fall, (2.5 - 4.5) / 2, is at step 5
    assert _suggest(lrs, [5, 5, 5, 4.9, 4.5, 3, 2.5, 2.4, 3, 6]) == lrs[5]
    assert _suggest(lrs[:3], [3, 2, 1]) == lrs[2] / 10  # too short: a tenth of the best


def test_lr_find_errors():
    t = ember.Trainer(nn.Linear(3, 1), "mse", "sgd")
    x, y = data()
    with pytest.raises(ValueError, match=r"0 < start < end, got start=1.0, end=0.1"):
        t.lr_find(x, y, start=1.0, end=0.1)
    with pytest.raises(ValueError, match="steps must be an integer >= 2, got 1"):
        t.lr_find(x, y, steps=1)


# -- from a config and the command line ------------------------------------------------------------

def test_cli_callbacks_from_config_and_tensorboard_flag(tmp_path, monkeypatch, capsys):
    from ember.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(
        'model = [{ type = "dense", units = 8, activation = "relu" }, '
        '{ type = "dense", units = 2 }]\n'
        'data = { name = "spirals", n = 80 }\nepochs = 3\nbackend = "numpy"\n'
        'callbacks = { reduce_lr_on_plateau = { monitor = "loss", patience = 1, '
        'min_delta = 1e9, factor = 0.5 }, json_lines = { filename = "log.jsonl" } }\n')
    code = main(["train", "c.toml", "--tensorboard", "tb", "--no-plots", "--runs-dir", "runs",
                 "--verbose", "0"])
    out, err = capsys.readouterr()
    assert code == 0, err
    run = next((tmp_path / "runs").iterdir())
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["callbacks"]["tensorboard"] == {"log_dir": "tb"}
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    np.testing.assert_allclose([r["lr"] for r in rows], [1e-3, 1e-3, 5e-4], rtol=1e-6)
    tags = {v.tag for ev in read_events(tmp_path / "tb") for v in ev.summary.value}
    assert {"loss", "accuracy", "lr"} <= tags

    (tmp_path / "bad.toml").write_text(
        'model = [{ type = "dense", units = 2 }]\ndata = { name = "spirals", n = 40 }\n'
        'callbacks = { reduce_lr_on_plateau = { factor = 2.0, monitor = "loss" } }\n')
    assert main(["train", "bad.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ember: error: bad.toml: callbacks.reduce_lr_on_plateau: "
                          "ReduceLROnPlateau: factor must be in (0, 1)"), err
    (tmp_path / "typo.toml").write_text(
        'model = [{ type = "dense", units = 2 }]\ndata = { name = "spirals", n = 40 }\n'
        'callbacks = { tensorbord = true }\n')
    assert main(["train", "typo.toml"]) == 2
    assert "callbacks.tensorbord: unknown callback; did you mean 'tensorboard'?" in (
        capsys.readouterr().err)


def test_cli_tensorboard_without_tensorboardx_is_one_error_line(tmp_path, monkeypatch, capsys):
    import importlib.util

    from ember.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboardX" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text('model = [{ type = "dense", units = 2 }]\n'
                                     'data = { name = "spirals", n = 40 }\n')
    assert main(["train", "c.toml", "--tensorboard", "tb"]) == 2
    assert capsys.readouterr().err == (
        "ember: error: --tensorboard: callbacks.tensorboard.log_dir: TensorBoard logs need the "
        "tensorboardX package: pip install \"ember[tensorboard]\"\n")
    assert not (tmp_path / "runs").exists()


def read_graph(folder):
    """(name, op, inputs, output shapes) of each node of the GraphDef in the event files."""
    from tensorboardX.proto.graph_pb2 import GraphDef

    graphs = [ev.graph_def for ev in read_events(folder) if ev.graph_def]
    if not graphs:
        return None
    assert len(graphs) == 1
    g = GraphDef()
    g.ParseFromString(graphs[0])
    return [(n.name, n.op, list(n.input),
             [tuple(d.size for d in s.dim) for s in n.attr["_output_shapes"].list.shape])
            for n in g.node]


def test_tensorboard_model_graph(tmp_path, backend):
    ember.manual_seed(0)
    x, y = data()
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    t = ember.Trainer(model, "mse", "sgd")
    t.fit(x, y, epochs=2, batch_size=8, validation_data=(x, y), verbose=0,
          callbacks=[TensorBoard(tmp_path / "tb", histogram_freq=0)])
    assert read_graph(tmp_path / "tb") == [
        ("input", "Input", [], [(8, 3)]),
        ("Sequential/0", "Linear", ["input"], [(8, 4)]),
        ("Sequential/1", "Tanh", ["Sequential/0"], [(8, 4)]),
        ("Sequential/2", "Linear", ["Sequential/1"], [(8, 1)])]
    assert all(not m._forward_hooks for m in model.modules())  # the hooks are gone
    t.fit(x, y, epochs=1, batch_size=8, verbose=0,
          callbacks=[TensorBoard(tmp_path / "none", histogram_freq=0, write_graph=False)])
    assert read_graph(tmp_path / "none") is None


def test_tensorboard_graph_follows_residual_branches(tmp_path):
    """The tensors between layers are traced through the ops of a custom forward: each residual
    sum of a pre-norm TransformerBlock feeds the next layer from both of its branches."""
    ember.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(16, 4, 8)).astype(np.float32)
    model = nn.Sequential(nn.TransformerBlock(8, 2, mlp_ratio=2, causal=True), nn.Flatten(),
                          nn.Linear(32, 1))
    ember.Trainer(model, "mse", "sgd").fit(x, x[:, 0, :1], epochs=1, batch_size=8, verbose=0,
                                           callbacks=[TensorBoard(tmp_path, histogram_freq=0)])
    block = "Sequential/0/"
    assert {name: (op, inputs) for name, op, inputs, _ in read_graph(tmp_path)} == {
        "input": ("Input", []),
        block + "norm1": ("LayerNorm", ["input"]),
        block + "attn/out_proj": ("Linear", [block + "norm1"]),
        block + "norm2": ("LayerNorm", [block + "attn/out_proj", "input"]),
        block + "mlp/0": ("Linear", [block + "norm2"]),
        block + "mlp/1": ("GELU", [block + "mlp/0"]),
        block + "mlp/2": ("Linear", [block + "mlp/1"]),
        "Sequential/1": ("Flatten", [block + "attn/out_proj", block + "mlp/2", "input"]),
        "Sequential/2": ("Linear", ["Sequential/1"])}
