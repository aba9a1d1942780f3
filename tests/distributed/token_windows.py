"""TokenWindows and NameExamples on a mesh of 4 CPU devices (run by tests/test_text_train.py with
XLA_FLAGS=--xla_force_host_platform_device_count=4, EMBER_BACKEND=jax): batches come out split
over the devices with the values of plain batches, and a Trainer with devices=4 trains a tiny GPT
on them like one device does. Prints one line ``RESULT {json}``."""

from __future__ import annotations

import json

import jax
import numpy as np

import ember
from ember import distributed
from ember.data import NameExamples, TokenWindows, load_names
from ember.models import GPT


def spec(t):
    return list(t.data.sharding.spec) if not t.data.sharding.is_fully_replicated else "replicated"


def train(devices):
    ember.manual_seed(0)
    tokens = np.random.default_rng(0).integers(0, 11, size=500)
    model = GPT(11, block_size=8, n_layer=1, n_head=2, n_embd=16)
    trainer = ember.Trainer(model, "cross_entropy", ember.optim.AdamW(model.parameters(),
                                                                      lr=1e-2),
                            devices=devices)
    windows = TokenWindows(tokens, 8, 8, seed=0)
    h = trainer.fit(windows, steps=6, eval_every=3, eval_steps=2,
                    validation_data=TokenWindows(tokens[:100], 8, 4), verbose=0)
    return h, windows, {k: np.asarray(v) for k, v in model.state_dict().items()}


def main():
    assert jax.device_count() == 4, jax.devices()
    out = {}
    mesh = distributed.make_mesh(4)
    tokens = np.arange(300) % 17
    w = TokenWindows(tokens, 8, 8, seed=3, mesh=mesh)
    plain = TokenWindows(tokens, 8, 8, seed=3)
    x, y = w.next()
    px, py = plain.next()
    out["batch_spec"] = spec(x)
    out["batch_equal"] = bool((x.numpy() == px.numpy()).all() and (y.numpy() == py.numpy()).all())
    xs, _ = w.next_batches(3)
    out["stacked_spec"], out["stacked_shape"] = spec(xs), list(xs.shape)
    out["stacked_equal"] = bool((xs.numpy() == plain.next_batches(3)[0].numpy()).all())
    short = TokenWindows(tokens, 8, 4, mesh=mesh)  # 4 rows split; a last batch of 1 does not
    last = list(short.eval_batches(steps=None))[-1][0]
    out["short_batch"] = [int(last.shape[0]), spec(last)]
    names = NameExamples(load_names("test"), 8, block_size=16, seed=0, mesh=mesh)
    nx, ny = names.next()
    plain_names = NameExamples(load_names("test"), 8, block_size=16, seed=0)
    out["names_spec"] = spec(ny)
    out["names_equal"] = bool((nx.numpy() == plain_names.next()[0].numpy()).all())
    try:
        TokenWindows(tokens, 8, 6, mesh=mesh)
    except ValueError as e:
        out["error"] = str(e)
    h1, _, w1 = train(None)
    h4, windows4, w4 = train(4)
    out["trainer_set_mesh"] = windows4.mesh is not None
    out["loss_1"], out["loss_4"] = h1["loss"], h4["loss"]
    out["val_1"], out["val_4"] = h1["val_loss"], h4["val_loss"]
    out["max_weight_diff"] = max(float(np.abs(w1[k] - w4[k]).max()) for k in w1)
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
