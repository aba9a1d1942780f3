"""ember.Trainer: fit / evaluate / predict, compiled steps, epoch scans, bad inputs, output."""

from __future__ import annotations

import io
import math
import sys

import numpy as np
import pytest

import ember
from ember import nn, optim
from ember.train.callbacks import LambdaCallback


def make_data(n=64, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (np.abs(x[:, 0] * 2 + x[:, 1]) * 1.3).astype(np.int64) % classes
    return x, y


def make_mlp(d=4, classes=3, seed=3, dropout=0.2, bn=True):
    ember.manual_seed(seed)
    layers = [nn.Linear(d, 16, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm1D(16))
    layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, classes)]
    return nn.Sequential(*layers)


def weights(model):
    return {k: np.asarray(ember.backend.get().to_numpy(v)) for k, v in model.state_dict().items()}


def batch_losses():
    seen = []
    return seen, LambdaCallback(on_batch_end=lambda b, logs: seen.append(logs["loss"]))


# -- history, evaluate, predict --------------------------------------------------------------------

def test_history_keys_and_values(backend):
    x, y = make_data()
    model = make_mlp()
    t = ember.Trainer(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1),
                      metrics=["accuracy", "f1"])
    h = t.fit(x, y, epochs=3, batch_size=16, validation_data=(x[:20], y[:20]), verbose=0)
    assert list(h.history) == ["loss", "accuracy", "f1", "val_loss", "val_accuracy", "val_f1",
                               "lr"]
    assert h.epoch == [0, 1, 2]
    assert all(len(v) == 3 for v in h.history.values())
    assert h.history["lr"] == pytest.approx([0.1] * 3)
    assert h.history["loss"][-1] < h.history["loss"][0]
    # the last val_ logs are those evaluate() gives on the same data
    logs = t.evaluate(x[:20], y[:20], batch_size=16)
    assert logs["loss"] == pytest.approx(h.history["val_loss"][-1], rel=1e-6)
    assert logs["accuracy"] == pytest.approx(h.history["val_accuracy"][-1])


def test_evaluate_and_predict_match_the_model(backend):
    x, y = make_data(n=37)
    model = make_mlp()
    t = ember.Trainer(model, "cross_entropy", "adam", metrics=["accuracy"])
    t.fit(x, y, epochs=1, batch_size=8, verbose=0)
    pred = t.predict(x, batch_size=8)
    assert model.training  # fit and predict leave the mode as they found it
    model.eval()
    ref = model(ember.tensor(x))
    np.testing.assert_allclose(pred.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    logits = ref.numpy().astype(np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    expected_loss = -logp[np.arange(len(y)), y].mean()
    logs = t.evaluate(x, y, batch_size=8)
    assert list(logs) == ["loss", "accuracy"]
    assert logs["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert logs["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))
    assert t.evaluate(x, y, batch_size=8, steps=1)["accuracy"] == pytest.approx(
        np.mean(logits[:8].argmax(1) == y[:8]))


def test_fit_on_a_dataloader_and_steps_per_epoch():
    x, y = make_data(n=40)
    model = make_mlp(bn=False, dropout=0.0)
    loader = ember.data.DataLoader((x, y), batch_size=8, shuffle=True, seed=1)
    t = ember.Trainer(model, "cross_entropy", "sgd")
    seen, cb = batch_losses()
    h = t.fit(loader, epochs=3, steps_per_epoch=3, callbacks=[cb], verbose=0)
    assert len(seen) == 9 and len(h.epoch) == 3
    assert (loader.epoch, loader.position) == (1, 4)  # 9 batches: one pass of 5, then 4
    with pytest.raises(ValueError, match="x is a DataLoader"):
        t.fit(loader, y, verbose=0)


def test_validation_freq_and_steps():
    x, y = make_data(n=32)
    model = make_mlp(bn=False)
    t = ember.Trainer(model, "cross_entropy", "sgd")
    h = t.fit(x, y, epochs=3, batch_size=16, validation_data=(x, y), validation_freq=2,
              verbose=0)
    assert len(h.history["val_loss"]) == 1 and len(h.history["loss"]) == 3
    h = t.fit(x, y, epochs=3, batch_size=16, validation_data=(x, y), validation_freq=[1, 3],
              validation_steps=1, verbose=0)
    assert len(h.history["val_loss"]) == 2


def test_validation_split_is_a_seeded_shuffle():
    x, y = make_data(n=40)
    ember.manual_seed(5)
    model = make_mlp(bn=False, dropout=0.0)
    t = ember.Trainer(model, "cross_entropy", "sgd")
    ember.manual_seed(5)
    h = t.fit(x, y, epochs=1, batch_size=8, validation_split=0.25, verbose=0)
    perm = np.random.default_rng([5, 0x5EED]).permutation(40)
    held = perm[30:]
    assert sorted(held) != list(range(30, 40))  # not Keras's last samples
    assert t.evaluate(x[held], y[held])["loss"] == pytest.approx(h.history["val_loss"][0],
                                                                   rel=1e-6)
    with pytest.raises(ValueError, match="validation_split=0.01 of 40 samples leaves 40 for "
                                         "training and 0 for validation"):
        t.fit(x, y, validation_split=0.01, verbose=0)


def test_loss_forms_and_optimizer_names():
    model = nn.Linear(2, 1)
    t = ember.Trainer(model, [(nn.MSE(), 0.7), ("mae", 0.3)], "adam")
    assert isinstance(t.loss, nn.WeightedLoss)
    assert [w for _, w in t.loss.terms] == [0.7, 0.3]
    assert isinstance(t.optimizer, optim.Adam)
    assert float(t.optimizer.param_groups[0]["lr"]) == pytest.approx(1e-3)
    t2 = ember.Trainer(model, ["mse", "mae"], "sgd", loss_weights=[2.0, 1.0])
    assert [w for _, w in t2.loss.terms] == [2.0, 1.0]
    x = np.ones((3, 2), np.float32)
    y = np.zeros((3, 1), np.float32)
    pred = model(ember.tensor(x)).numpy()
    expected = 0.7 * np.mean(pred ** 2) + 0.3 * np.mean(np.abs(pred))
    assert t.evaluate(x, y)["loss"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'; valid names: sgd"):
        ember.Trainer(model, "mse", "adamx")
    with pytest.raises(ValueError, match="unknown loss 'msee'"):
        ember.Trainer(model, "msee", "sgd")
    with pytest.raises(ValueError, match="2 losses but 1 loss_weights"):
        ember.Trainer(model, ["mse", "mae"], "sgd", loss_weights=[1.0])
    with pytest.raises(ValueError, match="steps_per_execution must be a positive integer"):
        ember.Trainer(model, "mse", "sgd", steps_per_execution=0)
    with pytest.raises(ValueError, match="metric names must be unique"):
        ember.Trainer(model, "mse", "sgd", metrics=["mae", "mae"])


# -- bad inputs: ValueError before any training ----------------------------------------------------

@pytest.mark.parametrize("case, message", [
    ("empty", "Trainer.fit: x is empty (0 samples)"),
    ("batch0", "Trainer.fit: batch_size must be a positive integer, got 0"),
    ("batch-1", "Trainer.fit: batch_size must be a positive integer, got -1"),
    ("batch_float", "Trainer.fit: batch_size must be a positive integer, got 2.5"),
    ("lengths", "Trainer.fit: x has 10 samples but y has 9"),
    ("nan_x", "Trainer.fit: x contains NaN at index (3, 1)"),
    ("inf_x", "Trainer.fit: x contains inf at index (0, 0)"),
    ("nan_y", "Trainer.fit: y contains NaN at index (2, 0)"),
    ("nan_val", "Trainer.fit: validation_data x contains -inf"),
    ("epochs", "Trainer.fit: epochs must be a non-negative integer, got -1"),
    ("split", "Trainer.fit: validation_split must be in [0, 1), got 1.5"),
])
def test_bad_inputs_raise_before_training(case, message):
    x = np.ones((10, 2), np.float32)
    y = np.zeros((10, 1), np.float32)
    kwargs = {}
    if case == "empty":
        x, y = x[:0], y[:0]
    elif case.startswith("batch"):
        kwargs["batch_size"] = {"batch0": 0, "batch-1": -1, "batch_float": 2.5}[case]
    elif case == "lengths":
        y = y[:9]
    elif case == "nan_x":
        x[3, 1] = np.nan
    elif case == "inf_x":
        x[0, 0] = np.inf
    elif case == "nan_y":
        y[2, 0] = np.nan
    elif case == "nan_val":
        xv = x.copy()
        xv[1, 1] = -np.inf
        kwargs["validation_data"] = (xv, y)
    elif case == "epochs":
        kwargs["epochs"] = -1
    elif case == "split":
        kwargs["validation_split"] = 1.5
    model = nn.Linear(2, 1)
    before = weights(model)
    started = []
    cb = LambdaCallback(on_train_begin=lambda logs: started.append(1))
    t = ember.Trainer(model, "mse", "sgd")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        t.fit(x, y, callbacks=[cb], verbose=0, **kwargs)
    assert started == []
    assert all(np.array_equal(before[k], v) for k, v in weights(model).items())


def test_bad_inputs_of_evaluate_and_predict():
    t = ember.Trainer(nn.Linear(2, 1), "mse", "sgd")
    with pytest.raises(ValueError, match="Trainer.evaluate: x has 3 samples but y has 2"):
        t.evaluate(np.ones((3, 2), np.float32), np.ones((2, 1), np.float32))
    with pytest.raises(ValueError, match="Trainer.predict: x contains NaN"):
        t.predict(np.full((3, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="Trainer.predict: batch_size must be a positive"):
        t.predict(np.ones((3, 2), np.float32), batch_size=0)


# -- output ----------------------------------------------------------------------------------------

def test_plain_lines_off_a_terminal(capsys):
    x, y = make_data(n=32)
    t = ember.Trainer(make_mlp(bn=False), "cross_entropy", "sgd", metrics=["accuracy"])
    t.fit(x, y, epochs=3, batch_size=8, validation_data=(x, y), verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out and "\b" not in out
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1/3 - 4 steps - ")
    assert " - loss: " in lines[0] and " - val_accuracy: " in lines[2]
    assert lines[2].endswith(" - lr: 0.01")
    t.fit(x, y, epochs=2, batch_size=8, verbose=0)
    t.evaluate(x, y)
    t.predict(x)
    assert capsys.readouterr().out == ""


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal(monkeypatch):
    x, y = make_data(n=32)
    stream = _Terminal()
    monkeypatch.setattr(sys, "stdout", stream)
    t = ember.Trainer(make_mlp(bn=False), "cross_entropy", "sgd", metrics=["accuracy"])
    t.fit(x, y, epochs=2, batch_size=8, verbose=1)
    out = stream.getvalue()
    assert "\r" in out  # tqdm redraws in place
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "4/4" in out
    assert "loss: " in out and "accuracy: " in out


# -- train_one_step and Keras-style compile/fit ----------------------------------------------------

def test_train_one_step_is_sgd_with_weight_decay(backend):
    model = nn.Linear(3, 2)
    w0, b0 = weights(model)["weight"].astype(np.float64), weights(model)["bias"].astype(np.float64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    y = rng.standard_normal((5, 2)).astype(np.float32)
    loss = ember.train_one_step(model, "mse", 0.1, x, y, weight_decay=0.01)
    pred = x @ w0.T + b0
    assert loss == pytest.approx(np.mean((pred - y) ** 2), rel=1e-5)
    g = 2 * (pred - y) / pred.size
    w1 = w0 - 0.1 * (g.T @ x + 0.01 * w0)
    b1 = b0 - 0.1 * (g.sum(0) + 0.01 * b0)
    np.testing.assert_allclose(weights(model)["weight"], w1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights(model)["bias"], b1, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_module_compile_fit_evaluate_predict():
    x, y = make_data(n=24)
    model = make_mlp(bn=False)
    with pytest.raises(RuntimeError, match=r"Sequential.fit: the model is not compiled; call "
                                           r"model.compile\(optimizer, loss\) first"):
        model.fit(x, y)
    model.compile(optimizer="sgd", loss="cross_entropy", metrics=["accuracy"])
    h = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert list(h.history) == ["loss", "accuracy", "lr"]
    assert set(model.evaluate(x, y)) == {"loss", "accuracy"}
    assert model.predict(x).shape == (24, 3)
    model.compile(optim.Adam(model.parameters(), lr=0.01), ["mse", "mae"], loss_weights=[1, 2])
    assert isinstance(model._trainer.optimizer, optim.Adam)


# -- non-finite losses -----------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:overflow encountered in multiply")  # NumPy on 1e30 ** 2
@pytest.mark.parametrize("spe", [1, "epoch"])
def test_nan_loss_stops_with_the_last_finite_weights(backend, spe):
    check_nan_stop(spe)


@pytest.mark.parametrize("guard", ["auto", "branch", "select"])
@pytest.mark.parametrize("spe", [1, "epoch"])
def test_every_compiled_step_guard_keeps_the_last_finite_weights(on_jax, monkeypatch, spe, guard):
    """A compiled step whose loss is not finite leaves the state from before it, whether a
    ``cond`` skipped its update (``branch``, CPU's default) or a ``where`` kept the old state
    (``select``); with several steps per call, ``auto`` runs them unguarded first and again,
    guarded, from the state before the call."""
    from ember.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "STEP_GUARD", guard)
    t = check_nan_stop(spe)
    # several steps per call run unguarded first, then again with the guard after the bad one
    assert t.guarded_scan_function.trace_count == (1 if spe == "epoch" else 0)


@pytest.mark.filterwarnings("ignore:overflow encountered in multiply")
@pytest.mark.parametrize("guard", ["branch", "select"])
def test_a_non_finite_last_step_of_the_epoch_is_put_back(on_jax, monkeypatch, guard):
    """A bad last step of the epoch leaves the weights and optimizer moments of the steps before
    it (the moments would be inf: training on shows them)."""
    from ember.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "STEP_GUARD", guard)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((24, 3)).astype(np.float32)
    y = rng.standard_normal((24, 1)).astype(np.float32)
    y[20, 0] = 1e30  # (1e30)^2 overflows float32: the third and last batch
    ember.manual_seed(0)
    model = nn.Linear(3, 1)
    t = ember.Trainer(model, "mse", optim.Adam(model.parameters(), lr=0.01))
    with pytest.warns(RuntimeWarning, match=r"the loss is (inf|nan) at epoch 0, step 2"):
        t.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    ember.manual_seed(0)
    ref = nn.Linear(3, 1)
    rt = ember.Trainer(ref, "mse", optim.Adam(ref.parameters(), lr=0.01))
    rt.fit(x[:16], y[:16], epochs=1, batch_size=8, shuffle=False, verbose=0)
    for trainer in (t, rt):  # the optimizer's moments too: train on from both
        trainer.fit(x[:16], y[:16], epochs=1, batch_size=8, shuffle=False, verbose=0)
    for k, v in weights(ref).items():
        np.testing.assert_allclose(weights(model)[k], v, rtol=1e-6, atol=1e-7, err_msg=k)


def test_the_compiled_cpu_step_updates_the_state_in_place(on_jax):
    """On CPU the NaN guard is a branch around the update: XLA's program copies no parameter
    and no optimizer moment (a ``where(ok, new, old)`` over the state made 16 copies on this
    model), in the per-step program and in the guarded epoch scan alike."""
    import re

    x, y = make_data(32)
    model = make_mlp(bn=False, dropout=0.0)
    t = ember.Trainer(model, "cross_entropy", optim.Adam(model.parameters(), lr=0.01))
    t.fit(x, y, epochs=1, batch_size=8, verbose=0)
    alive = ember.tensor(True)
    xb, yb = ember.tensor(x[:8]), ember.tensor(y[:8])
    xs, ys = ember.tensor(x.reshape(4, 8, 4)), ember.tensor(y.reshape(4, 8))
    shapes = {str(list(p.shape)).replace(" ", "") for p in model.parameters()}
    scan_args = (model, t.optimizer, xs, ys, t._mstate, alive, False, True)
    for fn, args in [(t.train_function, (model, t.optimizer, xb, yb, t._mstate, alive, False)),
                     (t.guarded_scan_function, scan_args)]:
        text = fn.lower(*args).compile().as_text()
        copied = re.findall(r"= f32(\[[0-9,]*\])\{[0-9,]*\} copy\(", text)
        assert not shapes & set(copied), copied
        assert "conditional(" in text


def check_nan_stop(spe):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = rng.standard_normal((40, 1)).astype(np.float32)
    y[21, 0] = 1e30  # (1e30)^2 overflows float32: step 2 (samples 16..23) has loss inf
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.3), nn.Linear(4, 1))
    t = ember.Trainer(model, "mse", optim.Adam(model.parameters(), lr=0.01),
                      steps_per_execution=spe)
    seen, cb = batch_losses()
    with pytest.warns(RuntimeWarning, match=r"the loss is inf at epoch 0, step 2 \(counted from "
                                            r"0\); training stopped"):
        h = t.fit(x, y, epochs=3, batch_size=8, shuffle=False, callbacks=[cb], verbose=0)
    assert h.epoch == [] and h.history == {} and t.stop_training  # epoch 0 did not finish
    assert [math.isfinite(v) for v in seen] == [True, True, False]
    assert t._epoch == 0 and t._train_loader.state_dict()["position"] == 2  # resumes at step 2
    # the same model trained on the two finite batches only
    ember.manual_seed(0)
    ref = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.3), nn.Linear(4, 1))
    rt = ember.Trainer(ref, "mse", optim.Adam(ref.parameters(), lr=0.01))
    rt.fit(x[:16], y[:16], epochs=1, batch_size=8, shuffle=False, verbose=0)
    for k, v in weights(ref).items():
        np.testing.assert_allclose(weights(model)[k], v, rtol=1e-6, atol=1e-7, err_msg=k)
    return t


# -- compiled steps (JAX) --------------------------------------------------------------------------

@pytest.fixture
def on_jax():
    ember.set_backend("jax")
    ember.manual_seed(0)
    yield
    ember.set_backend("numpy")


OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "momentum": lambda p: optim.Momentum(p, lr=0.05),
    "adagrad": lambda p: optim.AdaGrad(p, lr=0.1),
    "rmsprop": lambda p: optim.RMSProp(p, lr=0.01, centered=True, momentum=0.5),
    "adam": lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.01),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_jitted_fit_equals_eager_fit_after_20_steps(name, on_jax):
    x, y = make_data(n=160)
    results = []
    for jit in (False, True):
        model = make_mlp()
        t = ember.Trainer(model, "cross_entropy", OPTIMIZERS[name](model.parameters()),
                          metrics=["accuracy"] if name == "adam" else None, jit=jit)
        assert t.compiled is jit
        seen, cb = batch_losses()
        h = t.fit(x, y, epochs=1, batch_size=8, callbacks=[cb], verbose=0)
        assert len(seen) == 20
        results.append((seen, weights(model), h.history))
    (l0, w0, h0), (l1, w1, h1) = results
    np.testing.assert_allclose(l1, l0, rtol=1e-5, atol=1e-6)
    for k in w0:
        np.testing.assert_allclose(w1[k], w0[k], rtol=1e-5, atol=1e-5, err_msg=k)
    assert list(h1) == list(h0)
    for k in h0:
        np.testing.assert_allclose(h1[k], h0[k], rtol=1e-5, err_msg=k)


def test_trace_count_one_per_epoch_and_one_more_for_a_new_batch_shape(on_jax):
    x, y = make_data(n=64)
    model = make_mlp()
    t = ember.Trainer(model, "cross_entropy", "adam", metrics=["accuracy"])
    t.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert t.train_function.trace_count == 1
    t.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert t.train_function.trace_count == 1
    t.fit(x[:56], y[:56], epochs=2, batch_size=16, verbose=0)  # a short last batch of 8
    assert t.train_function.trace_count == 2
    t.evaluate(x, y, batch_size=16)
    t.evaluate(x, y, batch_size=16)
    assert t.test_function.trace_count == 1


def test_steps_per_execution_equals_one_step_at_a_time(on_jax):
    x, y = make_data(n=70)  # 8 batches of 8 and one of 6
    runs = {}
    for spe in (1, 3, 7, "epoch"):
        model = make_mlp()
        t = ember.Trainer(model, "cross_entropy", optim.Adam(model.parameters(), lr=0.01),
                          metrics=["accuracy", "f1"], steps_per_execution=spe)
        seen, cb = batch_losses()
        h = t.fit(x, y, epochs=2, batch_size=8, callbacks=[cb], verbose=0)
        runs[spe] = (seen, weights(model), h.history, t)
    l0, w0, h0, _ = runs[1]
    assert len(l0) == 18
    for spe in (3, 7, "epoch"):
        l1, w1, h1, t1 = runs[spe]
        np.testing.assert_allclose(l1, l0, rtol=1e-6, atol=1e-6)
        for k in w0:
            np.testing.assert_allclose(w1[k], w0[k], rtol=1e-6, atol=1e-6, err_msg=k)
        for k in h0:
            np.testing.assert_allclose(h1[k], h0[k], rtol=1e-6, atol=1e-6, err_msg=k)
        # the short batch is one step; with 7, the eighth full batch (a chunk of one) too
        assert t1.train_function.trace_count == (2 if spe == 7 else 1)
    # "epoch": one scan of the 8 full batches per epoch, traced once; 3: scans of 3, 3 and 2;
    # 7: a scan of 7, then the chunk of one runs as an ordinary step
    assert runs["epoch"][3].scan_function.trace_count == 1
    assert runs[3][3].scan_function.trace_count == 2
    assert runs[7][3].scan_function.trace_count == 1


def test_steps_per_execution_on_numpy_loops():
    x, y = make_data(n=30)
    out = []
    for spe in (1, "epoch"):
        model = make_mlp()
        t = ember.Trainer(model, "cross_entropy", "adam", steps_per_execution=spe)
        t.fit(x, y, epochs=2, batch_size=8, verbose=0)
        out.append(weights(model))
    assert all(np.array_equal(out[0][k], out[1][k]) for k in out[0])


@pytest.mark.parametrize("n", [64, 70])  # 64: the epoch divides into batches; 70: a short batch
def test_epoch_mode_runs_each_epoch_once_whether_or_not_batches_divide_it(n):
    ember.set_backend("jax")
    try:
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, 2, n)
        results = []
        for spe in (1, "epoch"):
            ember.manual_seed(0)
            model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
            trainer = ember.Trainer(model, nn.SoftmaxCrossEntropy(), optim.SGD(
                model.parameters(), lr=0.1), steps_per_execution=spe)
            history = trainer.fit(x, y, epochs=2, batch_size=16, verbose=0)
            results.append((history.history["loss"], model.state_dict()))
        np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
        for key, value in results[0][1].items():
            np.testing.assert_allclose(np.asarray(results[1][1][key]), np.asarray(value),
                                       rtol=1e-5, atol=1e-6, err_msg=key)
    finally:
        ember.set_backend("numpy")


def test_lazy_metric_state_needs_no_dry_forward_pass(on_jax):
    """F1 without num_classes gets its (3, 3) state from the shapes of the model's output before
    compiling: it adds no run of the model on concrete arrays, and each step traces once."""
    from ember import backend as bk

    x, y = make_data(n=32)
    concrete = {}
    for metrics in ([], ["f1"]):
        model = make_mlp()
        calls = concrete[len(metrics)] = []
        model.register_forward_hook(lambda m, args, out, calls=calls: calls.append(
            not bk.is_traced(args[0].data)))
        t = ember.Trainer(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1),
                          metrics=metrics, steps_per_execution=2)
        t.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert sum(concrete[1]) == sum(concrete[0])  # the label check's probe, nothing more
    f1 = t.metrics[0]
    assert f1.num_classes == 3 and f1.init()["matrix"].shape == (3, 3)
    assert t.scan_function.trace_count == 1


def test_a_cnn_on_cpu_runs_epoch_mode_unrolled_and_equal_to_per_step(on_jax):
    """XLA's CPU convolutions are slow inside a while loop: steps_per_execution="epoch" runs at
    most UNROLL_STEPS steps per dispatch, unrolled (no while op in the program), with the same
    numbers as one step per dispatch."""
    from ember.tensor import Tensor
    from ember.train.trainer import UNROLL_STEPS

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    runs = {}
    for spe in (1, "epoch"):
        ember.manual_seed(0)
        model = nn.Sequential(nn.Conv2D(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),
                              nn.Flatten(), nn.Linear(18, 3))
        t = ember.Trainer(model, "cross_entropy", optim.Adam(model.parameters(), lr=0.01),
                          steps_per_execution=spe)
        seen, cb = batch_losses()
        t.fit(x, y, epochs=2, batch_size=8, shuffle=False, callbacks=[cb], verbose=0)
        runs[spe] = (seen, weights(model), t)
    np.testing.assert_allclose(runs["epoch"][0], runs[1][0], rtol=1e-5, atol=1e-6)
    for k, w in runs[1][1].items():
        np.testing.assert_allclose(runs["epoch"][1][k], w, rtol=1e-5, atol=1e-6, err_msg=k)
    t = runs["epoch"][2]
    assert t._execution() == (UNROLL_STEPS, True) and t.scan_function.trace_count == 1
    xs = Tensor(x[:16].reshape(2, 8, 1, 6, 6))
    ys = Tensor(y[:16].reshape(2, 8))
    args = (t.model, t.optimizer, xs, ys, t._init_mstate(with_loss=False), Tensor(True))
    unrolled = t.scan_function.lower(*args, True).as_text()
    looped = t.scan_function.lower(*args, False).as_text()
    assert "convolution" in unrolled and "while" not in unrolled
    assert "while" in looped  # the check sees a loop where there is one


def test_the_label_check_follows_a_changed_head_across_fits(backend):
    """``fit`` finds the number of classes once per model structure (not a forward pass per
    call): a new head with fewer classes is still checked."""
    x, y = make_data(24, classes=3)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    t = ember.Trainer(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1))
    t.fit(x, y, epochs=1, batch_size=8, verbose=0)
    t.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model[2] = nn.Linear(8, 2)
    with pytest.raises(ValueError, match=r"the model outputs 2 classes, so labels must be in "
                                         r"\[0, 2\)"):
        t.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model[2].weight = nn.Parameter(np.zeros((1, 8), np.float32))  # a new parameter's shape
    model[2].bias = nn.Parameter(np.zeros(1, np.float32))
    with pytest.raises(ValueError, match=r"the model outputs 1 classes"):
        t.fit(x, y, epochs=1, batch_size=8, verbose=0)


def test_many_device_scalars_come_back_in_order_in_one_transfer_per_64(on_jax):
    """The Trainer reads step losses in groups: the JAX backend stacks up to 64 scalars on the
    device per transfer (one compiled program for every count), mixed dtypes go one by one."""
    import jax.numpy as jnp

    bk = ember.backend.get()
    values = [jnp.float32(i * 0.5) for i in range(150)]
    np.testing.assert_array_equal(bk.to_numpy(values), np.arange(150) * 0.5)
    np.testing.assert_array_equal(bk.to_numpy(values[:3]), [0.0, 0.5, 1.0])
    mixed = bk.to_numpy([jnp.float32(1.5), jnp.int32(2)])
    assert mixed.tolist() == [1.5, 2.0]
