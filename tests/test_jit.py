"""ember.jit: compiled steps equal eager ones, trace once, carry all state, leak nothing."""

from __future__ import annotations

import jax  # the dev extras install jax: a missing one fails here, it never skips
import numpy as np
import pytest

import ember
from ember import nn, optim


@pytest.fixture
def on_jax():
    ember.set_backend("jax")
    ember.manual_seed(0)
    yield
    ember.set_backend("numpy")


def make_model():
    ember.manual_seed(3)
    return nn.Sequential(
        nn.Linear(6, 12, bias=False), nn.BatchNorm1D(12), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(12, 3),  # no bias before BatchNorm: its gradient is 0 up to rounding
    )


def batches(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((16, 6)).astype(np.float32), rng.integers(0, 3, 16))
            for _ in range(n)]


def train_step(model, opt, x, y):
    loss = nn.SoftmaxCrossEntropy()(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad()  # at the end: no gradient needs carrying, so the step traces once
    return loss


OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda p: optim.AdaGrad(p, lr=0.1),
    "rmsprop": lambda p: optim.RMSProp(p, lr=0.01, centered=True, momentum=0.5),
    "adam": lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.01),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_jitted_training_equals_eager_for_every_optimizer(name, on_jax):
    results = []
    for compiled in (False, True):
        model = make_model()
        opt = OPTIMIZERS[name](model.parameters())
        step = ember.jit(train_step) if compiled else train_step
        losses = [float(step(model, opt, ember.tensor(x), ember.tensor(y)).item())
                  for x, y in batches()]
        results.append((losses, model.state_dict(), opt.state_dict()))
        if compiled:
            assert step.trace_count == 1
    (eager_losses, eager_sd, eager_opt), (jit_losses, jit_sd, jit_opt) = results
    np.testing.assert_allclose(jit_losses, eager_losses, rtol=1e-5, atol=1e-6)
    for key in eager_sd:  # weights, BatchNorm statistics and the dropout key
        np.testing.assert_allclose(np.asarray(jit_sd[key]), np.asarray(eager_sd[key]),
                                   rtol=1e-5, atol=1e-5, err_msg=key)
    for key in eager_opt:
        np.testing.assert_allclose(np.asarray(jit_opt[key]), np.asarray(eager_opt[key]),
                                   rtol=1e-5, atol=1e-5, err_msg=key)


def test_dropout_masks_differ_between_steps_and_batchnorm_stats_are_carried(on_jax):
    model = make_model()
    x = ember.tensor(batches(1)[0][0])

    @ember.jit
    def forward(model, x):
        return model(x)

    a, b = forward(model, x), forward(model, x)
    assert not np.allclose(a.numpy(), b.numpy())  # a fresh dropout mask per call
    assert forward.trace_count == 1
    assert int(model[1].num_batches_tracked.item()) == 2
    model.eval()
    c, d = forward(model, x), forward(model, x)  # eval mode: a new structure, deterministic
    np.testing.assert_array_equal(c.numpy(), d.numpy())
    assert forward.trace_count == 2


def test_retraces_only_on_new_shapes_dtypes_or_static_values(on_jax):
    w = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)

    @ember.jit
    def f(w, x, scale):
        return (w * x).sum() * scale

    f(w, ember.tensor([1.0, 1.0, 1.0]), 2.0)
    f(w, ember.tensor([5.0, 1.0, 0.0]), 2.0)
    assert f.trace_count == 1
    f(w, ember.tensor([[1.0, 1.0, 1.0]]), 2.0)  # new shape
    assert f.trace_count == 2
    f(w, ember.tensor([1.0, 1.0, 1.0]), 3.0)  # new static value
    assert f.trace_count == 3
    assert f(w, ember.tensor([1.0, 1.0, 1.0]), 3.0).item() == 18.0
    assert f.trace_count == 3


def test_reading_values_inside_a_trace_names_the_fix(on_jax):
    w = ember.tensor([1.0, 2.0], requires_grad=True)
    for read in (lambda t: t.item(), lambda t: float(t), lambda t: bool(t), lambda t: t.numpy()):
        @ember.jit
        def f(w, read=read):
            return read(w.sum())

        with pytest.raises(RuntimeError, match=r"being traced inside a compiled function "
                                               r"\(ember.jit\).*Return the tensor"):
            f(w)
        assert not ember.backend.is_traced(w.data), "a tracer leaked into the tensor"


def test_no_tracer_leaks_and_state_is_concrete_afterwards(on_jax):
    model = make_model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    step = ember.jit(train_step)
    x, y = batches(1)[0]
    with jax.checking_leaks():
        step(model, opt, ember.tensor(x), ember.tensor(y))
        step(model, opt, ember.tensor(x), ember.tensor(y))
    arrays = [t.data for t in (*model.parameters(), *model.buffers())]
    arrays += list(opt.state_dict().values()) + [ember.random.get_state()]
    assert not any(ember.backend.is_traced(a) for a in arrays)


def test_state_is_restored_when_the_function_raises(on_jax):
    w = ember.tensor([1.0, 2.0], requires_grad=True)
    before = w.data

    @ember.jit
    def bad(w):
        w.data = w.data * 2
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        bad(w)
    assert w.data is before


def test_random_stream_is_carried_through_compiled_calls(on_jax):
    @ember.jit
    def noise(x):
        return x + ember.randn(3)

    x = ember.zeros(3)
    a, b = noise(x).numpy(), noise(x).numpy()
    assert not np.allclose(a, b) and noise.trace_count == 1
    ember.manual_seed(0)
    c = noise(x).numpy()
    ember.manual_seed(0)
    np.testing.assert_array_equal(noise(x).numpy(), c)


def test_gradients_accumulate_across_calls_when_not_zeroed(on_jax):
    w = ember.tensor([1.0, -1.0], requires_grad=True)

    @ember.jit
    def accumulate(w, x):
        (w * x).sum().backward()

    accumulate(w, ember.tensor([1.0, 2.0]))
    accumulate(w, ember.tensor([3.0, 4.0]))
    accumulate(w, ember.tensor([5.0, 6.0]))
    assert w.grad.tolist() == [9.0, 12.0]
    assert accumulate.trace_count == 2  # None -> array is a new structure, then stable


def test_old_state_buffers_are_donated(on_jax):
    w = ember.tensor(np.ones(1000, np.float32), requires_grad=True)

    @ember.jit
    def update(w):
        w.data = w.data + 1

    update(w)
    old = w.data
    update(w)
    assert old.is_deleted()  # XLA reused it for the new value
    assert float(w.data[0].item()) == 3.0


def test_jit_runs_eagerly_on_numpy():
    ember.set_backend("numpy")
    w = ember.tensor([1.0, 2.0], requires_grad=True)

    @ember.jit
    def f(w):
        return w.sum().item()  # fine eagerly

    assert f(w) == 3.0 and f.trace_count == 0


def test_unhashable_static_argument_is_refused(on_jax):
    @ember.jit
    def f(x, options):
        return x

    assert f(ember.zeros(2), {"a": [1, 2]}).shape == (2,)  # containers flatten to static leaves
    with pytest.raises(TypeError, match="an argument of type set is neither a Module"):
        f(ember.zeros(2), {1, 2})


@pytest.mark.parametrize("backend_name", ["numpy", "jax"])
def test_whole_epoch_scan_over_state_slots_equals_per_step_training(backend_name):
    from ember.jit import state_slots

    ember.set_backend(backend_name)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((6, 5, 6)).astype(np.float32)
    ys = rng.integers(0, 3, (6, 5))

    model_a, model_b = make_model(), make_model()
    opt_a, opt_b = optim.Adam(model_a.parameters(), lr=0.01), optim.Adam(model_b.parameters(),
                                                                          lr=0.01)
    step = ember.jit(train_step)
    per_step = [step(model_a, opt_a, ember.tensor(x), ember.tensor(y)).item()
                for x, y in zip(xs, ys)]

    @ember.jit
    def epoch(model, opt, xs, ys):
        slots = state_slots(model, opt)

        def body(carry, batch):
            slots.set(carry)
            loss = train_step(model, opt, ember.Tensor(batch[0]), ember.Tensor(batch[1]))
            return slots.get(), loss.data

        final, losses = ember.backend.get().scan(body, slots.get(), (xs.data, ys.data))
        slots.set(final)
        return ember.Tensor(losses)

    scanned = epoch(model_b, opt_b, ember.tensor(xs), ember.tensor(ys)).tolist()
    np.testing.assert_allclose(scanned, per_step, rtol=1e-6)
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-7,
                                   err_msg=name)
    ember.set_backend("numpy")
