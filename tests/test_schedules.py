"""ember.optim.schedules: each schedule against its formula (and optax's equivalent), driving an
optimizer, resumed from a state_dict, attached mid-run, and evaluated on a traced step count."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ember
from ember import optim
from ember.optim import schedules

jax.config.update("jax_enable_x64", True)  # as ember's jax backend does
STEPS = list(range(0, 40))


def warm_then(t, warmup, initial, lr, after):
    return initial + (lr - initial) * t / warmup if t < warmup else after


FORMULAS = {
    "constant": (schedules.constant(0.3), lambda t: 0.3),
    "step_decay": (schedules.step_decay(0.5, step_size=7, gamma=0.3),
                   lambda t: 0.5 * 0.3 ** (t // 7)),
    "exponential_decay": (schedules.exponential_decay(0.5, gamma=0.9), lambda t: 0.5 * 0.9**t),
    "cosine_decay": (schedules.cosine_decay(0.4, total_steps=30, final_lr=0.01),
                     lambda t: 0.01 + 0.39 * 0.5 * (1 + math.cos(math.pi * min(t, 30) / 30))),
    "cosine_decay_warmup": (
        schedules.cosine_decay(0.4, total_steps=30, final_lr=0.01, warmup_steps=5,
                               initial_lr=0.1),
        lambda t: warm_then(t, 5, 0.1, 0.4, 0.01 + 0.39 * 0.5 * (
            1 + math.cos(math.pi * min(t - 5, 25) / 25)))),
    "linear_decay": (schedules.linear_decay(0.2, final_lr=0.02, steps=25),
                     lambda t: 0.2 + (0.02 - 0.2) * min(t, 25) / 25),
    "warmup_linear": (schedules.warmup_linear(0.2, warmup_steps=8, total_steps=30, final_lr=0.05),
                      lambda t: warm_then(t, 8, 0.0, 0.2,
                                          0.2 + (0.05 - 0.2) * min(t - 8, 22) / 22)),
}


@pytest.mark.parametrize("name", list(FORMULAS))
def test_schedule_matches_formula(backend, name):
    schedule, formula = FORMULAS[name]
    got = [float(schedule(t)) for t in STEPS]
    np.testing.assert_allclose(got, [formula(t) for t in STEPS], rtol=1e-12, atol=1e-15)
    out = schedule(ember.backend.get().xp.asarray(3, dtype=ember.int32))
    assert ember.backend.get().owns(out) and out.shape == () and out.dtype == ember.float64


OPTAX_EQUIVALENT = {
    "step_decay": optax.exponential_decay(0.5, transition_steps=7, decay_rate=0.3, staircase=True),
    "exponential_decay": optax.exponential_decay(0.5, transition_steps=1, decay_rate=0.9),
    "cosine_decay": optax.cosine_decay_schedule(0.4, decay_steps=30, alpha=0.01 / 0.4),
    "cosine_decay_warmup": optax.warmup_cosine_decay_schedule(
        0.1, peak_value=0.4, warmup_steps=5, decay_steps=30, end_value=0.01),
    "linear_decay": optax.linear_schedule(0.2, end_value=0.02, transition_steps=25),
}


@pytest.mark.parametrize("name", list(OPTAX_EQUIVALENT))
def test_schedule_matches_optax(name):
    schedule, _ = FORMULAS[name]
    want = [float(OPTAX_EQUIVALENT[name](t)) for t in STEPS]
    np.testing.assert_allclose([float(schedule(t)) for t in STEPS], want, rtol=1e-12, atol=1e-15)


def lrs_used(opt, w, steps):
    """The learning rate of each of ``steps`` SGD updates, read back from a unit gradient."""
    out = []
    for _ in range(steps):
        before = w.numpy().copy()
        w.grad = ember.ones_like(w)
        opt.step()
        out.append(float((before - w.numpy())[0]))
    return out


@pytest.mark.parametrize("name", ["cosine_decay_warmup", "step_decay", "warmup_linear"])
def test_schedule_drives_the_optimizer(backend, name):
    schedule, formula = FORMULAS[name]
    w = ember.zeros(2, dtype=ember.float64, requires_grad=True)
    opt = optim.SGD([w], lr=schedule)
    assert float(opt.param_groups[0]["lr"]) == formula(0)
    np.testing.assert_allclose(lrs_used(opt, w, 20), [formula(t) for t in range(20)], rtol=1e-12)
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(formula(20), rel=1e-12)


def test_any_callable_is_a_schedule(backend):
    w = ember.zeros(1, dtype=ember.float64, requires_grad=True)
    opt = optim.SGD([w], lr=lambda step: 0.1 * 0.5**step)
    np.testing.assert_allclose(lrs_used(opt, w, 4), [0.1, 0.05, 0.025, 0.0125], rtol=1e-12)


def test_set_schedule_mid_run_continues_from_the_step(backend):
    w = ember.zeros(1, dtype=ember.float64, requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    lrs_used(opt, w, 3)
    opt.set_schedule(schedules.exponential_decay(1.0, gamma=0.5))
    np.testing.assert_allclose(lrs_used(opt, w, 2), [0.125, 0.0625])
    opt.set_schedule(None)  # detached: the current rate stays
    np.testing.assert_allclose(lrs_used(opt, w, 2), [0.03125, 0.03125])


def test_per_group_schedule(backend):
    a = ember.zeros(1, dtype=ember.float64, requires_grad=True)
    b = ember.zeros(1, dtype=ember.float64, requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": schedules.linear_decay(1.0, 0.0, 4)}],
                    lr=0.5)
    for _ in range(2):
        a.grad, b.grad = ember.ones_like(a), ember.ones_like(b)
        opt.step()
    np.testing.assert_allclose([a.item(), b.item()], [-1.0, -1.75])


def test_resumed_run_continues_the_schedule(backend):
    schedule = schedules.cosine_decay(0.4, total_steps=30, warmup_steps=5)
    w = ember.zeros(2, dtype=ember.float64, requires_grad=True)
    opt = optim.SGD([w], lr=schedule)
    lrs_used(opt, w, 7)
    saved = {k: ember.backend.get().to_numpy(v) for k, v in opt.state_dict().items()}
    w2 = ember.tensor(w.numpy(), requires_grad=True)
    resumed = optim.SGD([w2], lr=schedule)
    resumed.load_state_dict(saved)
    want = [float(schedule(t)) for t in range(7, 12)]
    np.testing.assert_allclose(lrs_used(resumed, w2, 5), want, rtol=1e-12)
    lrs_used(opt, w, 5)
    np.testing.assert_array_equal(w.numpy(), w2.numpy())
    assert int(resumed.state_dict()["step"]) == 12


@pytest.mark.parametrize("name", list(FORMULAS))
def test_schedule_traces(name):
    ember.set_backend("jax")
    schedule, formula = FORMULAS[name]
    compiled = jax.jit(schedule)
    got = [float(compiled(jnp.asarray(t, dtype=jnp.int32))) for t in STEPS]
    np.testing.assert_allclose(got, [formula(t) for t in STEPS], rtol=1e-12, atol=1e-15)


def test_config_round_trip():
    for schedule, _ in FORMULAS.values():
        again = schedules.from_config(schedule.config())
        assert repr(again) == repr(schedule)
        assert [float(again(t)) for t in STEPS] == [float(schedule(t)) for t in STEPS]
    assert repr(schedules.cosine_decay(0.1, 10)) == (
        "cosine_decay(lr=0.1, total_steps=10, final_lr=0.0, warmup_steps=0, initial_lr=0.0)")
    with pytest.raises(ValueError, match="from_config: unknown schedule 'cyclic'; known: constant"):
        schedules.from_config({"name": "cyclic"})


BAD = [
    (lambda: schedules.constant(0.0), "constant: lr must be > 0, got 0.0"),
    (lambda: schedules.step_decay(0.1, step_size=0), "step_decay: step_size must be an int >= 1"),
    (lambda: schedules.step_decay(0.1, 5, gamma=-1.0), "step_decay: gamma must be > 0, got -1.0"),
    (lambda: schedules.exponential_decay(-1.0, 0.9), "exponential_decay: lr must be > 0, got -1.0"),
    (lambda: schedules.cosine_decay(0.1, total_steps=10, final_lr=-0.1),
     "cosine_decay: final_lr must be >= 0, got -0.1"),
    (lambda: schedules.cosine_decay(0.1, total_steps=10, warmup_steps=10),
     "cosine_decay: warmup_steps must be < total_steps, got warmup_steps=10, total_steps=10"),
    (lambda: schedules.linear_decay(0.1, 0.0, steps=2.5), "linear_decay: steps must be an int >= 1,"
                                                          " got 2.5"),
    (lambda: schedules.warmup_linear(0.1, warmup_steps=-1, total_steps=5),
     "warmup_linear: warmup_steps must be an int >= 0, got -1"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_schedule_arguments(case):
    make, message = BAD[case]
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)
