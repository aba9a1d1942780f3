"""ember.callbacks: hook order, EarlyStopping, ModelCheckpoint, LR scheduling, CSVLogger."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

import ember
from ember import nn, optim
from ember.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)


def weights(model):
    return {k: ember.backend.get().to_numpy(v) for k, v in model.state_dict().items()}


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(f"batch_begin {batch}")

    def on_batch_end(self, batch, logs=None):
        self.calls.append(f"batch_end {batch} {sorted(logs)}")


@pytest.mark.parametrize("spe", [1, "epoch"])
def test_hook_order(backend, spe):
    x, y = data(12)
    rec = Recorder()
    t = ember.Trainer(nn.Linear(3, 1), "mse", "sgd", metrics=["mae"], steps_per_execution=spe)
    t.fit(x, y, epochs=2, batch_size=8, validation_data=(x, y), validation_freq=2,
          callbacks=[rec], verbose=0)
    batches = ["batch_begin 0", "batch_end 0 ['loss', 'size']",
               "batch_begin 1", "batch_end 1 ['loss', 'size']"]
    assert rec.calls == [
        "train_begin",
        "epoch_begin 0", *batches, "epoch_end 0 ['loss', 'lr', 'mae']",
        "epoch_begin 1", *batches, "epoch_end 1 ['loss', 'lr', 'mae', 'val_loss', 'val_mae']",
        "train_end",
    ]
    assert rec.trainer is t and rec.model is t.model


def test_lambda_callback_and_stop_training():
    x, y = data()
    calls = []
    cb = LambdaCallback(
        on_train_begin=lambda logs: calls.append("begin"),
        on_epoch_begin=lambda e, logs: calls.append(f"e{e}"),
        on_batch_end=lambda b, logs: calls.append(f"b{b}"),
        on_epoch_end=lambda e, logs: setattr(t, "stop_training", e == 1),
        on_train_end=lambda logs: calls.append("end"))
    t = ember.Trainer(nn.Linear(3, 1), "mse", "sgd")
    h = t.fit(x, y, epochs=5, batch_size=16, callbacks=[cb], verbose=0)
    assert calls == ["begin", "e0", "b0", "e1", "b0", "end"]
    assert h.epoch == [0, 1]
    with pytest.raises(TypeError, match="callbacks must be ember.callbacks.Callback objects, "
                                        "got function"):
        t.fit(x, y, callbacks=[lambda: None], verbose=0)


class Scores(Callback):
    """Puts a scripted 'score' into the epoch logs and remembers the weights of each epoch."""

    def __init__(self, scores):
        self.scores = scores
        self.snapshots = []

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]
        self.snapshots.append(weights(self.model))


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_restores_the_best_weights(backend, restore):
    x, y = data()
    scores = Scores([3.0, 1.0, 2.0, 1.5, 0.1, 0.1])
    stop = EarlyStopping(monitor="score", patience=2, restore_best_weights=restore)
    model = nn.Linear(3, 1)
    t = ember.Trainer(model, "mse", optim.SGD(model.parameters(), lr=0.05))
    h = t.fit(x, y, epochs=6, batch_size=8, callbacks=[scores, stop], verbose=0)
    assert h.epoch == [0, 1, 2, 3]  # best at epoch 1, no improvement in 2 and 3: stop
    assert (stop.best, stop.best_epoch, stop.stopped_epoch, stop.wait) == (1.0, 1, 3, 2)
    expected = scores.snapshots[1 if restore else 3]
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, expected[k])


def test_early_stopping_modes_min_delta_and_baseline():
    assert EarlyStopping("val_loss").mode == "min"
    assert EarlyStopping("val_accuracy").mode == "max"
    assert EarlyStopping("f1").mode == "max"
    assert EarlyStopping("val_mae", mode="max").mode == "max"
    with pytest.raises(ValueError, match="EarlyStopping: mode must be 'auto', 'min' or 'max', "
                                         "got 'up'"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience must be a non-negative integer, got -1"):
        EarlyStopping(patience=-1)
    x, y = data()
    # min_delta: 0.95 is not an improvement of more than 0.1 over 1.0
    stop = EarlyStopping(monitor="score", patience=1, min_delta=0.1)
    t = ember.Trainer(nn.Linear(3, 1), "mse", "sgd")
    h = t.fit(x, y, epochs=5, batch_size=16, callbacks=[Scores([1.0, 0.95, 0.5, 0.4, 0.3]), stop],
              verbose=0)
    assert h.epoch == [0, 1]
    # baseline: improvements that do not beat the baseline do not reset the counter
    scripted = [1.0, 0.9, 0.95, 0.97, 0.6]
    stop = EarlyStopping(monitor="score", patience=2, baseline=0.1)
    h = t.fit(x, y, epochs=5, batch_size=16, callbacks=[Scores(scripted), stop], verbose=0)
    assert h.epoch == [0, 1, 2]
    stop = EarlyStopping(monitor="score", patience=2)
    h = t.fit(x, y, epochs=5, batch_size=16, callbacks=[Scores(scripted), stop], verbose=0)
    assert h.epoch == [0, 1, 2, 3]
    with pytest.warns(UserWarning, match="EarlyStopping: 'val_loss' is not in the epoch logs"):
        t.fit(x, y, epochs=1, batch_size=16, callbacks=[EarlyStopping()], verbose=0)


def test_learning_rate_scheduler_sets_the_rate(backend):
    x, y = data(8)
    model = nn.Linear(3, 1)
    w0 = weights(model)
    sched = LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch)
    t = ember.Trainer(model, "mse", optim.SGD(model.parameters(), lr=1.0))
    h = t.fit(x, y, epochs=3, batch_size=8, shuffle=False, callbacks=[sched], verbose=0)
    assert h.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    w, b = w0["weight"].astype(np.float64), w0["bias"].astype(np.float64)
    for lr in (0.1, 0.05, 0.025):  # one full-batch SGD step per epoch
        g = 2 * (x @ w.T + b - y) / len(x)
        w, b = w - lr * (g.T @ x), b - lr * g.sum(0)
    np.testing.assert_allclose(weights(model)["weight"], w, rtol=1e-5)
    np.testing.assert_allclose(weights(model)["bias"], b, rtol=1e-5)
    two = LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    h = t.fit(x, y, epochs=2, batch_size=8, callbacks=[two], verbose=0)
    assert h.history["lr"] == pytest.approx([0.0125, 0.00625])
    bad = LearningRateScheduler(lambda epoch: -1.0)
    with pytest.raises(ValueError, match="the schedule gave lr=-1.0 for epoch 0"):
        t.fit(x, y, epochs=1, callbacks=[bad], verbose=0)


def test_csv_logger(tmp_path):
    x, y = data()
    path = tmp_path / "log.csv"
    t = ember.Trainer(nn.Linear(3, 1), "mse", "sgd", metrics=["mae"])
    h = t.fit(x, y, epochs=2, batch_size=8, callbacks=[CSVLogger(path)], verbose=0)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "loss", "mae", "lr"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1]
    assert [float(r[1]) for r in rows[1:]] == pytest.approx(h.history["loss"])
    t.fit(x, y, epochs=1, batch_size=8, callbacks=[CSVLogger(path, append=True)], verbose=0)
    rows = list(csv.reader(path.open()))
    assert len(rows) == 4 and rows[0] == ["epoch", "loss", "mae", "lr"]


def test_csv_logger_creates_its_folder(tmp_path):
    x, y = data()
    path = tmp_path / "runs" / "a" / "log.csv"
    t = ember.Trainer(nn.Linear(3, 1), "mse", "sgd")
    t.fit(x, y, epochs=1, batch_size=8, callbacks=[CSVLogger(path)], verbose=0)
    assert [r[0] for r in csv.reader(path.open())] == ["epoch", "0"]


def test_model_checkpoint_save_best_only(tmp_path):
    from ember.train.checkpoint import read_checkpoint

    x, y = data()
    scores = Scores([3.0, 1.0, 2.0, 0.5, 0.7])
    saves = []
    ckpt = ModelCheckpoint(tmp_path / "best", monitor="score", save_best_only=True)
    model = nn.Linear(3, 1)
    t = ember.Trainer(model, "mse", "sgd")
    orig = t.save_checkpoint
    t.save_checkpoint = lambda d: saves.append(t._epoch) or orig(d)
    t.fit(x, y, epochs=5, batch_size=8, callbacks=[scores, ckpt], verbose=0)
    assert saves == [1, 2, 4]  # after epochs 0, 1 and 3 (the epoch counter is the next epoch)
    arrays, meta = read_checkpoint(tmp_path / "best")
    assert meta["epoch"] == 4 and ckpt.best == 0.5
    assert meta["history"]["history"]["score"] == [3.0, 1.0, 2.0, 0.5]
    for k, v in scores.snapshots[3].items():
        np.testing.assert_array_equal(arrays["model"][k], v)


def test_terminate_on_nan_is_added_once():
    t = ember.Trainer(nn.Linear(3, 1), "mse", "sgd")
    from ember.train.callbacks import CallbackList

    mine = TerminateOnNaN()
    cbs = CallbackList([mine], trainer=t)
    assert [type(c).__name__ for c in cbs.callbacks] == ["TerminateOnNaN"]
    cbs = CallbackList([], trainer=t, verbose=1)
    assert [type(c).__name__ for c in cbs.callbacks] == ["TerminateOnNaN", "ProgbarLogger"]
    assert not cbs.needs_sync_batches  # progress and NaN checks may report a step late
    assert CallbackList([Recorder()], trainer=t).needs_sync_batches
    assert not math.isnan(0.0)


def test_a_named_callback_class_is_reachable_from_a_config_without_editing_the_cli():
    from ember.cli.config import Source, _resolve_callbacks, build_callbacks
    from ember.train import callbacks

    class CountEpochs(callbacks.Callback, name="count_epochs_test"):
        def __init__(self, every=1):
            self.every = every

        def config(self):
            return {"name": "count_epochs_test", "every": self.every}

    try:
        assert callbacks.REGISTRY["count_epochs_test"] is CountEpochs
        src = Source("c.toml", ".")
        cfg = {"callbacks": _resolve_callbacks({"count_epochs_test": {"every": 3}}, 0.0, src)}
        (cb,) = build_callbacks(cfg, src)
        assert isinstance(cb, CountEpochs) and cb.every == 3
        assert callbacks.from_config(cb.config()).every == 3
    finally:
        callbacks.REGISTRY.pop("count_epochs_test")
