"""ember.optim.from_optax: an optax transformation as an ember optimizer, against optax itself,
through state_dict, under jax.jit, and its errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ember
from ember import optim

SHAPES = [(3, 4), (5,)]


@pytest.fixture
def on_jax():
    ember.set_backend("jax")
    rng = np.random.default_rng(3)
    p0 = [rng.normal(size=s) for s in SHAPES]
    grads = [[3 * rng.normal(size=s) for s in SHAPES] for _ in range(20)]
    return p0, grads


def chain():
    schedule = optax.warmup_cosine_decay_schedule(0.0, 0.05, warmup_steps=3, decay_steps=20)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.1))


def make(p0, tx):
    params = [ember.tensor(a, requires_grad=True) for a in p0]
    return params, optim.from_optax(tx, params)


def step(opt, params, gs):
    for p, g in zip(params, gs):
        p.grad = ember.tensor(g)
    opt.step()


def pure_optax(tx, p0, grads):
    params = [jnp.asarray(a) for a in p0]
    state = tx.init(params)
    for gs in grads:
        updates, state = tx.update([jnp.asarray(g) for g in gs], state, params)
        params = optax.apply_updates(params, updates)
    return [np.asarray(p) for p in params]


def test_matches_optax(on_jax):
    p0, grads = on_jax
    params, opt = make(p0, chain())
    for gs in grads:
        step(opt, params, gs)
    for got, want in zip(params, pure_optax(chain(), p0, grads)):
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-14)
    assert got.dtype == ember.float64


def test_state_dict_layout_and_round_trip(on_jax):
    p0, grads = on_jax
    params, opt = make(p0, chain())
    assert list(opt.state_dict()) == [
        "step", "optax.1.0.count", "optax.1.0.mu.0", "optax.1.0.mu.1", "optax.1.0.nu.0",
        "optax.1.0.nu.1", "optax.1.2.count"]
    for gs in grads[:6]:
        step(opt, params, gs)
    saved = {k: np.asarray(v) for k, v in opt.state_dict().items()}
    resumed_params, resumed = make([p.numpy() for p in params], chain())
    resumed.load_state_dict(saved)
    for gs in grads[6:]:
        step(opt, params, gs)
        step(resumed, resumed_params, gs)
    for a, b in zip(params, resumed_params):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(resumed.state_dict()["step"]) == 20
    assert int(resumed.state_dict()["optax.1.2.count"]) == 20  # the schedule's position


def test_load_state_dict_reports_problems(on_jax):
    p0, _ = on_jax
    _, opt = make(p0, optax.adam(1e-3))
    sd = dict(opt.state_dict())
    del sd["optax.0.mu.1"]
    sd["optax.0.nu.0"] = np.zeros(2)
    with pytest.raises(ValueError) as err:
        opt.load_state_dict(sd)
    assert str(err.value).startswith("from_optax.load_state_dict: 2 problem(s)")
    assert "missing key 'optax.0.mu.1'" in str(err.value)
    assert "shape mismatch for 'optax.0.nu.0': the state_dict has (2,), this optimizer has (3, 4)" \
        in str(err.value)


def test_step_runs_under_jax_jit(on_jax):
    p0, grads = on_jax
    params, opt = make(p0, chain())
    traces = []

    @jax.jit
    def compiled(datas, gs, state):
        traces.append(1)
        for p, d, g in zip(params, datas, gs):
            p.data, p.grad = d, ember.Tensor(g)
        opt.load_state_dict(state)
        opt.step()
        return [p.data for p in params], opt.state_dict()

    datas, state = [p.data for p in params], opt.state_dict()
    for gs in grads[:5]:
        datas, state = compiled(datas, [jnp.asarray(g) for g in gs], state)
    assert len(traces) == 1
    for got, want in zip(datas, pure_optax(chain(), p0, grads[:5])):
        np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-14)


def test_zero_grad_and_missing_grad(on_jax):
    p0, grads = on_jax
    params, opt = make(p0, optax.sgd(0.1))
    step(opt, params, grads[0])
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    params[0].grad = ember.ones_like(params[0])
    with pytest.raises(ValueError, match=r"from_optax: parameter 1 \(shape \(5,\)\) has no "
                                         r"gradient; optax updates every parameter"):
        opt.step()


def test_errors(on_jax):
    w = ember.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match="from_optax expects an optax GradientTransformation"):
        optim.from_optax(lambda g: g, [w])
    with pytest.raises(ValueError, match="from_optax: got an empty parameter list"):
        optim.from_optax(optax.sgd(0.1), [])
    with pytest.raises(ValueError, match=r"from_optax: parameter 0 \(shape \(3,\)\) does not "
                                         r"require grad"):
        optim.from_optax(optax.sgd(0.1), [ember.zeros(3)])
    with pytest.raises(ValueError, match="from_optax: parameter 1 .* appears twice"):
        optim.from_optax(optax.sgd(0.1), [w, w])
    with pytest.raises(TypeError, match="one parameter group"):
        optim.from_optax(optax.sgd(0.1), [w]).add_param_group({"params": [ember.ones(1)]})
    assert isinstance(optim.from_optax(optax.sgd(0.1), [w]), optim.Optimizer)


def test_needs_the_jax_backend():
    ember.set_backend("numpy")
    with pytest.raises(RuntimeError) as err:
        optim.from_optax(optax.sgd(0.1), [ember.zeros(3, requires_grad=True)])
    assert str(err.value) == ("from_optax needs the jax backend (the active one is 'numpy'); "
                              "call ember.set_backend('jax') first")
