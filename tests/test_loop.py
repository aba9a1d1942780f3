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
