"""Training by steps on a TokenWindows (issue 13 item 3): eval logging, exact resume, both
backends for a tiny GPT."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.data import CharTokenizer, TokenWindows
from ember.models import GPT

TEXT = "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. " * 3


def _setup(jit=None, init=None):
    ember.manual_seed(0)
    tok = CharTokenizer.from_text(TEXT)
    ids = tok.encode(TEXT)
    model = GPT(tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=16)
    if init is not None:  # the same initial weights on every backend
        model.load_state_dict(init)
    opt = ember.optim.AdamW(ember.optim.decay_groups(model), lr=3e-3, weight_decay=0.1)
    trainer = ember.Trainer(model, "cross_entropy", opt, jit=jit)
    train = TokenWindows(ids[:200], block_size=8, batch_size=4, seed=1)
    val = TokenWindows(ids[200:], block_size=8, batch_size=4, seed=2)
    return trainer, train, val


def test_fit_by_steps_logs_each_evaluation():
    trainer, train, val = _setup()
    h = trainer.fit(train, steps=7, eval_every=3, eval_steps=2, validation_data=val, verbose=0)
    assert h["step"] == [3, 6, 7]
    assert h.epoch == [0, 1, 2]
    assert len(h["loss"]) == len(h["val_loss"]) == 3
    assert train.step == 7
    # val_loss is the mean loss over the fixed eval_batches(2) pass: recompute it by hand
    trainer.model.eval()
    with ember.no_grad():
        losses = [float(ember.nn.functional.cross_entropy(trainer.model(x), y).item())
                  for x, y in val.eval_batches(2)]
    assert h["val_loss"][-1] == pytest.approx(np.mean(losses), rel=1e-5)
    assert trainer.evaluate(val, steps=2)["loss"] == pytest.approx(h["val_loss"][-1], rel=1e-6)


def test_fit_by_steps_errors():
    trainer, train, _ = _setup()
    with pytest.raises(ValueError, match="never runs out; pass steps="):
        trainer.fit(train, verbose=0)
    with pytest.raises(ValueError, match="not epochs"):
        trainer.fit(train, steps=3, epochs=2, verbose=0)
    with pytest.raises(ValueError, match="but x is a ndarray"):
        trainer.fit(np.zeros((4, 2)), np.zeros(4), steps=3, verbose=0)


def test_resume_mid_run_equals_uninterrupted_numpy(tmp_path):
    ember.set_backend("numpy")
    trainer, train, val = _setup()
    full = trainer.fit(train, steps=8, eval_every=2, eval_steps=1, validation_data=val,
                       verbose=0)
    want = {k: np.asarray(v) for k, v in trainer.model.state_dict().items()}

    trainer, train, val = _setup()
    trainer.fit(train, steps=4, eval_every=2, eval_steps=1, validation_data=val, verbose=0)
    trainer.save_checkpoint(tmp_path / "ckpt")
    ember.manual_seed(123)  # the checkpoint restores the random stream
    trainer, train, val = _setup()
    resumed = trainer.fit(train, steps=8, eval_every=2, eval_steps=1, validation_data=val,
                          verbose=0, resume_from=tmp_path / "ckpt")
    assert train.step == 8
    assert resumed.to_dict() == full.to_dict()
    got = {k: np.asarray(v) for k, v in trainer.model.state_dict().items()}
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_checkpoint_callback_keeps_windows_position(tmp_path):
    trainer, train, val = _setup()
    ckpt = ember.callbacks.ModelCheckpoint(tmp_path / "c")
    trainer.fit(train, steps=6, eval_every=3, validation_data=val, eval_steps=1, verbose=0,
                callbacks=[ckpt])
    from ember.train.checkpoint import read_checkpoint
    _, meta = read_checkpoint(tmp_path / "c")
    assert meta["data"]["step"] == 6 and meta["epoch"] == 2


def test_tiny_gpt_by_steps_both_backends(backend):
    """The same 6 steps (2 per compiled dispatch on JAX) give the same History on both."""
    results, init = {}, None
    for name in ("numpy", backend):
        ember.set_backend(name)
        trainer, train, val = _setup(init=init)
        init = {k: np.asarray(v) for k, v in trainer.model.state_dict().items()}
        if name == "jax":
            trainer.steps_per_execution = 2
        h = trainer.fit(train, steps=6, eval_every=3, eval_steps=2, validation_data=val,
                        verbose=0)
        results[name] = h
    np.testing.assert_allclose(results[backend]["loss"], results["numpy"]["loss"], rtol=1e-4)
    np.testing.assert_allclose(results[backend]["val_loss"], results["numpy"]["val_loss"],
                               rtol=1e-4)
    assert results["numpy"]["val_loss"][1] < results["numpy"]["val_loss"][0]


def test_token_windows_on_a_mesh_of_four_cpu_devices():
    """Data parallelism: batches split over the "data" axis with the values of plain batches,
    and Trainer(devices=4) on TokenWindows trains like one device (a subprocess, because this
    pytest process started JAX with one device)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu", EMBER_BACKEND="jax",
               PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(root / "tests/distributed/token_windows.py")],
                          env=env, capture_output=True, text=True, timeout=600)
    lines = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (proc.stdout + proc.stderr)[-4000:]
    r = json.loads(lines[-1][len("RESULT "):])
    assert r["batch_spec"] == ["data"] and r["batch_equal"]
    assert r["stacked_spec"] == [None, "data"] and r["stacked_shape"] == [3, 8, 8]
    assert r["stacked_equal"]
    assert r["short_batch"] == [1, "replicated"]  # 37 windows in batches of 4
    assert r["names_spec"] == ["data"] and r["names_equal"]
    assert r["error"] == "TokenWindows: batch_size 6 does not divide over 4 devices; use a " \
                         "multiple of 4"
    assert r["trainer_set_mesh"]
    np.testing.assert_allclose(r["loss_4"], r["loss_1"], rtol=1e-5)
    np.testing.assert_allclose(r["val_4"], r["val_1"], rtol=1e-5)
    assert r["max_weight_diff"] < 1e-5


def test_fit_by_steps_logs_the_rate_at_each_evaluation_step():
    """As nanoGPT's log: the learning rate at the evaluation's step (after 3 warm-up steps of 4
    it is 3/4 of the peak), not the rate the interval began with (0 during warm-up)."""
    trainer, train, val = _setup()
    sched = ember.optim.schedules.cosine_decay(3e-3, total_steps=7, warmup_steps=4)
    trainer.optimizer.set_schedule(sched)
    h = trainer.fit(train, steps=7, eval_every=3, eval_steps=1, validation_data=val, verbose=0)
    assert h["step"] == [3, 6, 7]
    assert h["lr"] == pytest.approx([float(sched(s)) for s in (3, 6, 7)], rel=1e-6)
    assert h["lr"][0] == pytest.approx(3e-3 * 3 / 4, rel=1e-6)
