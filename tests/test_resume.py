"""Checkpoint and resume: a run killed mid-training and resumed from its last checkpoint
reproduces the uninterrupted run (exactly on NumPy), and only with all of its random state."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import nn, optim
from ember.train.callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint
from ember.train.checkpoint import CheckpointError, read_checkpoint, write_checkpoint

EPOCHS = 4
BATCH = 8


class KilledError(Exception):
    pass


class KillAt(Callback):
    """Raises in the middle of an epoch, as a killed process would stop."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch
        self.current = -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            raise KilledError


def dataset():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    y = (x[:, 0] - x[:, 2] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)
    return x, y


def weights(model):
    return {k: ember.backend.get().to_numpy(v) for k, v in model.state_dict().items()}


def run(folder, seed=7, kill=None, resume=False):
    """One training process: build the model from ``seed``, fit with checkpoints every epoch."""
    ember.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    opt = optim.Adam(model.parameters(), lr=0.01)
    losses = []
    stop = EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
    callbacks = [stop, ModelCheckpoint(folder),
                 LambdaCallback(on_batch_end=lambda b, logs: losses.append(logs["loss"]))]
    if kill is not None:
        callbacks.append(KillAt(*kill))
    t = ember.Trainer(model, "cross_entropy", opt, metrics=["accuracy"])
    h = t.fit(*dataset(), epochs=EPOCHS, batch_size=BATCH, validation_split=0.2, shuffle=True,
              callbacks=callbacks, verbose=0, resume_from=folder if resume else None)
    return losses, weights(model), h, stop


def killed_and_resumed(tmp_path, name):
    folder = tmp_path / name
    with pytest.raises(KilledError):
        run(folder, kill=(2, 3))  # killed in epoch 2: the checkpoint of epoch 1 is the last
    _, meta = read_checkpoint(folder)
    assert meta["epoch"] == 2
    return folder


def test_resume_reproduces_the_uninterrupted_run_exactly_on_numpy(tmp_path):
    full_losses, full_w, full_h, full_stop = run(tmp_path / "full")
    steps = len(full_losses) // EPOCHS
    assert steps == 6
    folder = killed_and_resumed(tmp_path, "killed")
    # a new process: another seed, a fresh model; everything comes from the checkpoint
    losses, w, h, stop = run(folder, seed=123, resume=True)
    assert losses == full_losses[2 * steps:]  # the same batches, dropout masks and updates
    for k in full_w:
        np.testing.assert_array_equal(w[k], full_w[k], err_msg=k)
    assert h.history == full_h.history and h.epoch == full_h.epoch
    assert (stop.best, stop.best_epoch, stop.wait) == (full_stop.best, full_stop.best_epoch,
                                                      full_stop.wait)
    for k in full_stop.best_weights:
        np.testing.assert_array_equal(np.asarray(stop.best_weights[k]),
                                      np.asarray(full_stop.best_weights[k]))


def test_resume_on_jax_matches_to_1e_6(tmp_path, backend):
    if backend != "jax":
        return  # the NumPy case is the exact test above
    full_losses, full_w, full_h, _ = run(tmp_path / "full")
    folder = killed_and_resumed(tmp_path, "killed")
    losses, w, h, _ = run(folder, seed=123, resume=True)
    np.testing.assert_allclose(losses, full_losses[12:], rtol=1e-6, atol=1e-6)
    for k in full_w:
        np.testing.assert_allclose(w[k], full_w[k], rtol=1e-6, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(h.history["val_loss"], full_h.history["val_loss"], rtol=1e-6)


@pytest.mark.parametrize("dropped", ["dropout keys", "data order"])
def test_negative_control_without_the_random_state_the_run_differs(tmp_path, dropped):
    _, full_w, _, _ = run(tmp_path / "full")
    folder = killed_and_resumed(tmp_path, "killed")
    arrays, meta = read_checkpoint(folder)
    if dropped == "dropout keys":  # as if the keys were not saved: fresh ones from another seed
        ember.manual_seed(99)
        arrays["model"]["2.key"] = ember.backend.get().to_numpy(ember.random.next_key())
    else:  # as if the loader's seed were not saved
        meta["data"]["seed"] = meta["data"]["seed"] + 1
    write_checkpoint(tmp_path / "edited", arrays, meta)
    _, w, _, _ = run(tmp_path / "edited", seed=123, resume=True)
    assert any(not np.allclose(w[k], full_w[k], atol=1e-4) for k in full_w)


def test_save_checkpoint_contents(tmp_path):
    x, y = dataset()
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    t = ember.Trainer(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    t.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[EarlyStopping("loss")])
    t.save_checkpoint(tmp_path / "c")
    arrays, meta = read_checkpoint(tmp_path / "c")
    assert sorted(arrays) == ["callbacks", "model", "optimizer", "rng"]
    assert sorted(arrays["model"]) == ["0.bias", "0.weight"]
    assert sorted(arrays["optimizer"]) == ["groups.0.lr", "state.0.momentum_buffer",
                                           "state.1.momentum_buffer", "step"] or \
        "step" in arrays["optimizer"]
    assert int(arrays["optimizer"]["step"]) == 8
    assert meta["epoch"] == 2 and meta["backend"] == "numpy"
    assert meta["optimizer"]["name"] == "SGD"
    assert meta["data"]["epoch"] == 2 and meta["data"]["position"] == 0
    assert meta["history"]["epoch"] == [0, 1]
    assert meta["callbacks"]["0.EarlyStopping"]["best_epoch"] in (0, 1)


def test_a_tampered_checkpoint_is_refused_before_training(tmp_path):
    x, y = dataset()
    model = nn.Linear(4, 3)
    t = ember.Trainer(model, "cross_entropy", "sgd")
    t.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "c")])
    (array_file,) = (tmp_path / "c").glob("arrays-*.safetensors")
    raw = bytearray(array_file.read_bytes())
    raw[-1] ^= 0xFF
    array_file.write_bytes(bytes(raw))
    before = weights(model)
    started = []
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        t.fit(x, y, epochs=3, verbose=0, resume_from=tmp_path / "c",
              callbacks=[LambdaCallback(on_train_begin=lambda logs: started.append(1))])
    assert started == []
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, before[k])


def test_resume_on_another_backend_is_refused(tmp_path):
    x, y = dataset()
    t = ember.Trainer(nn.Linear(4, 3), "cross_entropy", "sgd")
    t.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "c")])
    ember.set_backend("jax")
    t = ember.Trainer(nn.Linear(4, 3), "cross_entropy", "sgd")
    with pytest.raises(ValueError, match="was written on the 'numpy' backend but the active one "
                                         "is 'jax'; resume on the same backend"):
        t.fit(x, y, epochs=2, verbose=0, resume_from=tmp_path / "c")


def test_resume_from_an_empty_folder_starts_fresh_and_a_finished_run_does_nothing(tmp_path):
    x, y = dataset()
    model = nn.Linear(4, 3)
    t = ember.Trainer(model, "cross_entropy", "sgd")
    h = t.fit(x, y, epochs=2, verbose=0, resume_from=tmp_path / "new",
              callbacks=[ModelCheckpoint(tmp_path / "new")])
    assert h.epoch == [0, 1]
    w = weights(model)
    h = t.fit(x, y, epochs=2, verbose=0, resume_from=tmp_path / "new")
    assert h.epoch == [0, 1]
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, w[k])
