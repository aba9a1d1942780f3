"""The everyday idioms of issue 14: the canonical PyTorch step under ember.jit, the state
protocol, optax optimizers through fit, streams with steps_per_epoch, Sequential(list), the
gradient monitor as a callback."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import nn, optim


def _model(seed: int = 3) -> nn.Module:
    ember.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def _batches(n: int = 4, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((5, 6)).astype(np.float32), rng.integers(0, 3, 5))
            for _ in range(n)]


def zero_grad_first(model, opt, x, y):
    opt.zero_grad()
    loss = nn.SoftmaxCrossEntropy()(model(x), y)
    loss.backward()
    opt.step()
    return loss


def accumulate(model, opt, x, y):  # reads the gradients it is given: they must be carried
    loss = nn.SoftmaxCrossEntropy()(model(x), y)
    loss.backward()
    opt.step()
    return loss


# -- the zero_grad-first step ----------------------------------------------------------------------

@pytest.mark.parametrize("step_fn", [zero_grad_first, accumulate])
def test_compiled_step_equals_eager_step(backend, step_fn):
    data = _batches()
    results = []
    for compiled in (False, True):
        model = _model()
        opt = optim.Adam(model.parameters(), lr=0.01)
        step = ember.jit(step_fn) if compiled else step_fn
        losses = [float(step(model, opt, ember.tensor(x), ember.tensor(y)).item())
                  for x, y in data]
        grads = [p.grad.numpy() for p in model.parameters()]
        results.append((losses, [p.numpy() for p in model.parameters()], grads))
    (l0, w0, g0), (l1, w1, g1) = results
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    for a, b in zip(w0 + g0, w1 + g1):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def _state_inputs(step, *args) -> int:
    """How many state arrays the lowered program takes (its first argument, the state list)."""
    import jax

    lowered = step.lower(*args)
    state_info = lowered.args_info[0][0]
    return len(jax.tree_util.tree_leaves(state_info))


def test_zero_grad_first_traces_once_and_takes_no_gradient_inputs():
    ember.set_backend("jax")
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    step = ember.jit(zero_grad_first)
    for x, y in _batches(3):
        step(model, opt, ember.tensor(x), ember.tensor(y))
    assert step.trace_count == 1
    assert all(p.grad is not None for p in model.parameters())  # as eagerly, after the step
    x, y = (ember.tensor(a) for a in _batches(1)[0])
    n_params = len(list(model.parameters()))
    expected = 1 + n_params + len(opt.state_arrays())  # random key, weights, optimizer state
    assert _state_inputs(step, model, opt, x, y) == expected
    carried = ember.jit(accumulate)  # the gradients it reads are inputs: one more per parameter
    carried(model, opt, x, y)
    assert _state_inputs(carried, model, opt, x, y) == expected + n_params


# -- the state protocol ----------------------------------------------------------------------------

def test_state_protocol_round_trips(backend):
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = (ember.tensor(a) for a in _batches(1)[0])
    zero_grad_first(model, opt, x, y)
    for obj in (model, opt, ember.random):
        arrays = obj.state_arrays()
        before = [np.asarray(ember.backend.get().to_numpy(a)) for a in arrays]
        zero_grad_first(model, opt, x, y)
        ember.rand(3)
        obj.bind(arrays)
        after = [np.asarray(ember.backend.get().to_numpy(a)) for a in obj.state_arrays()]
        assert len(after) == len(before)
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b)
    assert [type(a) for a in opt.state_arrays()][:1] == [type(opt.state_dict()["step"])]
    assert opt.params() == list(model.parameters())


# -- Sequential(list), Monitor as a callback -------------------------------------------------------

def test_sequential_takes_a_list_as_the_seeds_write_it():
    ember.manual_seed(0)
    a = nn.Sequential([nn.Linear(2, 20), nn.ReLU(), nn.Linear(20, 2)])
    ember.manual_seed(0)
    b = nn.Sequential(nn.Linear(2, 20), nn.ReLU(), nn.Linear(20, 2))
    assert [n for n, _ in a.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    with pytest.raises(TypeError, match="argument 1 is a int"):
        nn.Sequential([nn.ReLU(), 3])


def test_monitor_as_a_callback_records_what_a_manual_loop_records(backend):
    data = _batches(3)
    x = np.concatenate([b[0] for b in data])
    y = np.concatenate([b[1] for b in data])
    manual_model = _model()
    manual = nn.Monitor(manual_model)
    opt = optim.SGD(manual_model.parameters(), lr=0.1)
    for xb, yb in data:
        zero_grad_first(manual_model, opt, ember.tensor(xb), ember.tensor(yb))
        manual.step()
    model = _model()
    monitor = nn.Monitor(model)
    trainer = ember.Trainer(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(),
                                                                       lr=0.1))
    trainer.fit(x, y, batch_size=5, shuffle=False, callbacks=[monitor], verbose=0)
    want, got = manual.history(), monitor.history()
    assert monitor.steps == 3 and sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-7, err_msg=key)
    trainer.fit(x, y, batch_size=5, shuffle=False, verbose=0)  # without it: no gradients kept
    assert all(p.grad is None for p in model.parameters())


# -- streams and data sets -------------------------------------------------------------------------

def _fit_weights(source, **kw) -> tuple[list[float], list[np.ndarray]]:
    model = _model()
    trainer = ember.Trainer(model, nn.SoftmaxCrossEntropy(), optim.Adam(model.parameters(),
                                                                        lr=0.01))
    history = trainer.fit(source, verbose=0, **kw)
    return history.history["loss"], [p.numpy() for p in model.parameters()]


def test_fit_on_a_generator_with_steps_per_epoch_equals_the_same_batches_from_arrays(backend):
    data = _batches(6)
    x = np.concatenate([b[0] for b in data])
    y = np.concatenate([b[1] for b in data])

    def gen():
        yield from data

    val = _batches(2, seed=1)
    loss_a, w_a = _fit_weights(x, y=y, batch_size=5, shuffle=False, epochs=2, steps_per_epoch=3,
                               validation_data=(np.concatenate([v[0] for v in val]),
                                                np.concatenate([v[1] for v in val])))
    loss_b, w_b = _fit_weights(gen(), steps_per_epoch=3, epochs=2,
                               validation_data=iter(val * 2), validation_steps=2)
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-6)
    for a, b in zip(w_a, w_b):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_fit_on_a_data_set_and_a_generator_that_runs_out(backend):
    data = _batches(4)
    x = np.concatenate([b[0] for b in data])
    y = np.concatenate([b[1] for b in data])

    class Pairs:  # a map-style data set: __len__ and __getitem__ of one sample
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i], y[i]

    loss_a, w_a = _fit_weights(x, y=y, batch_size=5, shuffle=False, epochs=2)
    loss_b, w_b = _fit_weights(Pairs(), batch_size=5, shuffle=False, epochs=2)
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-6)
    for a, b in zip(w_a, w_b):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    loss_c, _ = _fit_weights((b for b in data), epochs=5)  # one pass: the generator ends it
    assert len(loss_c) == 1
    np.testing.assert_allclose(loss_c, loss_a[:1], rtol=1e-6)


# -- optax optimizers through fit, checkpoints and resume ------------------------------------------

def test_optax_lion_trains_through_fit_and_resumes_exactly(tmp_path):
    import optax

    ember.set_backend("jax")
    data = _batches(4)
    x = np.concatenate([b[0] for b in data])
    y = np.concatenate([b[1] for b in data])

    def trainer():
        model = _model()
        opt = optim.from_optax(optax.lion(1e-3), model.parameters())
        return ember.Trainer(model, nn.SoftmaxCrossEntropy(), opt), model

    straight, model_a = trainer()
    history = straight.fit(x, y, epochs=4, batch_size=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert "lr" not in history.history  # the rate lives inside the optax transformation

    first, _ = trainer()
    first.fit(x, y, epochs=2, batch_size=5, verbose=0)
    first.save_checkpoint(tmp_path / "ckpt")
    resumed, model_b = trainer()
    h = resumed.fit(x, y, epochs=4, batch_size=5, verbose=0, resume_from=tmp_path / "ckpt")
    assert h.epoch == [0, 1, 2, 3]
    np.testing.assert_array_equal(h.history["loss"], history.history["loss"])
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        np.testing.assert_array_equal(q.numpy(), p.numpy())


# -- the progress bar ------------------------------------------------------------------------------

class _Terminal:
    """A text stream that says it is an 80-column terminal."""

    def __init__(self):
        self.text = []

    def write(self, s):
        self.text.append(s)

    def flush(self):
        pass

    def isatty(self):
        return True

    def value(self):
        return "".join(self.text)


def test_progress_bar_knows_its_total_and_keeps_validation_numbers_at_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    from ember.callbacks import ProgbarLogger

    out = _Terminal()
    bar = ProgbarLogger(verbose=1, epochs=2, stream=out)
    data = _batches(4)
    x = np.concatenate([b[0] for b in data])
    y = np.concatenate([b[1] for b in data])
    model = _model()
    trainer = ember.Trainer(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(),
                                                                       lr=0.1),
                            metrics=["accuracy"])
    trainer.fit(x, y, epochs=2, batch_size=5, validation_data=(x, y), callbacks=[bar],
                verbose=0)
    text = out.value()
    frames = [f for f in text.replace("\r", "\n").split("\n") if f.strip()]
    assert any("Epoch 1/2" in f and "4/4" in f for f in frames), frames  # a total at once
    summaries = [f for f in frames if f.startswith("Epoch") and "val_accuracy: " in f]
    assert len(summaries) == 2, frames  # each epoch's whole logs on a line of their own
    assert all("val_loss: " in f for f in summaries)
    assert not any("loss=" in f for f in frames)  # one format: "name: value"
