"""ember.optim: every optimizer against its closed form, against optax over 100 steps, on the
Rosenbrock function, through a state_dict round trip and under jax.jit; clipping; bad input.

Conventions: ember follows PyTorch. Where optax computes something else, the optax oracle is
configured to agree (AdaGrad: ``eps`` inside the root and a 0.1 initial accumulator in optax,
so ``eps=0, initial_accumulator_value=0``; RMSProp: ``eps_in_sqrt=False`` and ``decay=alpha``;
L2 decay: ``add_decayed_weights`` chained in front) and where optax has no equivalent (SGD's
``dampening``, PyTorch's AMSGrad, which keeps the maximum of the raw second moment) a NumPy
reference written out here is the oracle.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ember
from ember import optim
from ember.optim import schedules

jax.config.update("jax_enable_x64", True)  # as ember's jax backend does: optax runs in float64
SHAPES = [(3, 4), (5,)]


@pytest.fixture
def problem():
    """Two float64 parameters and 100 steps of random gradients."""
    rng = np.random.default_rng(7)
    p0 = [rng.normal(size=s) for s in SHAPES]
    grads = [[rng.normal(size=s) for s in SHAPES] for _ in range(100)]
    return p0, grads


def make_params(p0, dtype=None):
    return [ember.tensor(a, dtype=dtype, requires_grad=True) for a in p0]


def set_grads(params, gs):
    for p, g in zip(params, gs):
        p.grad = ember.tensor(g, dtype=p.dtype)


def run_ember(make_opt, p0, grads):
    params = make_params(p0)
    opt = make_opt(params)
    for gs in grads:
        set_grads(params, gs)
        opt.step()
    return [p.numpy() for p in params]


def run_optax(tx, p0, grads):
    params = [jnp.asarray(a) for a in p0]
    state = tx.init(params)

    @jax.jit
    def update(params, state, gs):
        updates, state = tx.update(gs, state, params)
        return optax.apply_updates(params, updates), state

    for gs in grads:
        params, state = update(params, state, [jnp.asarray(g) for g in gs])
    return [np.asarray(p) for p in params]


def assert_all_close(got, want, atol):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=atol)


# -- one step against the closed form --------------------------------------------------------------
P = np.array([0.5, -1.5, 2.0])
G = np.array([0.2, -3.0, 0.0])
ONE_STEP = {
    "sgd": (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=0.01),
            P - 0.1 * (G + 0.01 * P)),
    "momentum": (lambda ps: optim.Momentum(ps, lr=0.1, beta=0.9),
                 P - 0.1 * G),  # the first buffer is the gradient itself
    "nesterov": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
                 P - 0.1 * (G + 0.9 * G)),
    "adagrad": (lambda ps: optim.AdaGrad(ps, lr=0.1, eps=1e-3, initial_accumulator_value=0.5),
                P - 0.1 * G / (np.sqrt(0.5 + G * G) + 1e-3)),
    "rmsprop": (lambda ps: optim.RMSProp(ps, lr=0.01, alpha=0.9, eps=1e-3),
                P - 0.01 * G / (np.sqrt(0.1 * G * G) + 1e-3)),
    "rmsprop_centered": (lambda ps: optim.RMSProp(ps, lr=0.01, alpha=0.9, eps=1e-3, centered=True),
                         P - 0.01 * G / (np.sqrt(0.1 * G * G - (0.1 * G) ** 2) + 1e-3)),
    "adam": (lambda ps: optim.Adam(ps, lr=0.1, betas=(0.8, 0.9), eps=1e-3),
             P - (0.1 / 0.2) * (0.2 * G) / (np.sqrt(0.1 * G * G) / np.sqrt(0.1) + 1e-3)),
    "adam_l2": (lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.5),
                P - 0.1 * (G + 0.5 * P) / (np.abs(G + 0.5 * P) + 1e-8)),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.5, eps=1e-3),
              P * (1 - 0.1 * 0.5) - 0.1 * G / (np.abs(G) + 1e-3)),
}


@pytest.mark.parametrize("name", list(ONE_STEP))
def test_one_step_closed_form(backend, name):
    make_opt, want = ONE_STEP[name]
    (p,) = make_params([P])
    opt = make_opt([p])
    set_grads([p], [G])
    opt.step()
    np.testing.assert_allclose(p.numpy(), want, rtol=1e-12, atol=1e-15)
    assert int(opt.state_dict()["step"]) == 1


# -- 100 steps against optax -----------------------------------------------------------------------
VS_OPTAX = {
    "sgd": (lambda ps: optim.SGD(ps, lr=0.05), optax.sgd(0.05)),
    "sgd_momentum": (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
                     optax.sgd(0.05, momentum=0.9)),
    "sgd_nesterov": (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
                     optax.sgd(0.05, momentum=0.9, nesterov=True)),
    "sgd_weight_decay": (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.5, weight_decay=0.1),
                         optax.chain(optax.add_decayed_weights(0.1),
                                     optax.sgd(0.05, momentum=0.5))),
    # optax: eps inside the root, accumulator from 0.1; eps=0 and 0 agree with PyTorch's form
    "adagrad": (lambda ps: optim.AdaGrad(ps, lr=0.1),
                optax.adagrad(0.1, initial_accumulator_value=0.0, eps=0.0)),
    # optax: eps inside the root by default, decay 0.9; eps_in_sqrt=False is PyTorch's form
    "rmsprop": (lambda ps: optim.RMSProp(ps, lr=0.01, alpha=0.9),
                optax.rmsprop(0.01, decay=0.9, eps=1e-8, eps_in_sqrt=False)),
    "rmsprop_centered_momentum": (
        lambda ps: optim.RMSProp(ps, lr=0.01, alpha=0.95, eps=1e-6, momentum=0.8, centered=True),
        optax.rmsprop(0.01, decay=0.95, eps=1e-6, eps_in_sqrt=False, centered=True,
                      momentum=0.8)),
    "adam": (lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.95)),
             optax.adam(0.01, b1=0.8, b2=0.95)),
    "adam_l2": (lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1),
                optax.chain(optax.add_decayed_weights(0.1), optax.adam(0.01))),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.2),
              optax.adamw(0.01, weight_decay=0.2)),
}


@pytest.mark.parametrize("name", list(VS_OPTAX))
def test_100_steps_match_optax(backend, problem, name):
    make_opt, tx = VS_OPTAX[name]
    p0, grads = problem
    got = run_ember(make_opt, p0, grads)
    assert_all_close(got, run_optax(tx, p0, grads), atol=1e-6)
    assert not np.allclose(got[0], p0[0], atol=1e-2)  # the parameters did move


def numpy_amsgrad(p0, grads, lr, betas, eps, decoupled_decay=0.0):
    """PyTorch's AMSGrad: the maximum of the raw second moment, bias-corrected afterwards."""
    b1, b2 = betas
    out = []
    for k, p in enumerate(p0):
        m = v = vmax = np.zeros_like(p)
        for t, gs in enumerate(grads, start=1):
            g = gs[k]
            p = p * (1 - lr * decoupled_decay)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            vmax = np.maximum(vmax, v)
            p = p - lr / (1 - b1**t) * m / (np.sqrt(vmax) / np.sqrt(1 - b2**t) + eps)
        out.append(p)
    return out


def numpy_sgd_dampening(p0, grads, lr, momentum, dampening):
    """PyTorch's SGD with dampening: the first buffer is the raw gradient, then damped."""
    out = []
    for k, p in enumerate(p0):
        buf = None
        for gs in grads:
            g = gs[k]
            buf = g if buf is None else momentum * buf + (1 - dampening) * g
            p = p - lr * buf
        out.append(p)
    return out


def test_amsgrad_follows_pytorch(backend, problem):
    p0, grads = problem
    got = run_ember(lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.9), amsgrad=True), p0, grads)
    assert_all_close(got, numpy_amsgrad(p0, grads, 0.01, (0.8, 0.9), 1e-8), atol=1e-10)
    got = run_ember(lambda ps: optim.AdamW(ps, lr=0.01, amsgrad=True), p0, grads)
    assert_all_close(got, numpy_amsgrad(p0, grads, 0.01, (0.9, 0.999), 1e-8, 0.01), atol=1e-10)


def test_sgd_dampening_follows_pytorch(backend, problem):
    p0, grads = problem
    got = run_ember(lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9, dampening=0.3), p0, grads)
    assert_all_close(got, numpy_sgd_dampening(p0, grads, 0.01, 0.9, 0.3), atol=1e-10)


# -- convergence -----------------------------------------------------------------------------------
def rosenbrock(w):
    x, y = w[0], w[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def train(opt, params, loss_fn, steps):
    """``steps`` updates; on jax each one compiled (its arrays passed in and out), else eager."""

    def step(datas, state):
        for p, d in zip(params, datas):
            p.data = d
        opt.load_state_dict(state)
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
        return [p.data for p in params], opt.state_dict()

    if ember.get_backend() == "jax":
        step = jax.jit(step)
    datas, state = [p.data for p in params], opt.state_dict()
    for _ in range(steps):
        datas, state = step(datas, state)
    for p, d in zip(params, datas):
        p.data = d
    opt.load_state_dict(state)


ROSENBROCK = {
    "sgd": (lambda ps: optim.SGD(ps, lr=2e-3), 4000),
    "momentum": (lambda ps: optim.Momentum(ps, lr=1e-3, beta=0.9), 1000),
    "nesterov": (lambda ps: optim.SGD(ps, lr=1e-3, momentum=0.9, nesterov=True), 1000),
    "adagrad": (lambda ps: optim.AdaGrad(ps, lr=0.3), 8000),
    "rmsprop": (lambda ps: optim.RMSProp(ps, lr=1e-2, momentum=0.5), 2000),
    "adam": (lambda ps: optim.Adam(ps, lr=0.02, betas=(0.9, 0.99)), 2500),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.01, betas=(0.9, 0.99), weight_decay=1e-4), 2500),
}


@pytest.mark.parametrize("name", list(ROSENBROCK))
def test_rosenbrock_converges(backend, name):
    make_opt, steps = ROSENBROCK[name]
    w = ember.tensor(np.array([-1.0, 1.5]), requires_grad=True)
    train(make_opt([w]), [w], lambda: rosenbrock(w), steps)
    assert float(rosenbrock(w)) < 1e-3
    np.testing.assert_allclose(w.numpy(), [1.0, 1.0], atol=0.05)


# -- state ----------------------------------------------------------------------------------------
ROUND_TRIP = {
    "sgd_momentum": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1),
    "adagrad": lambda ps: optim.AdaGrad(ps, lr=0.1),
    "rmsprop": lambda ps: optim.RMSProp(ps, lr=0.01, momentum=0.5, centered=True),
    "adam_amsgrad_schedule": lambda ps: optim.Adam(
        ps, lr=schedules.cosine_decay(0.01, total_steps=10, warmup_steps=3), amsgrad=True),
    "adamw_groups": lambda ps: optim.AdamW(
        [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.1, "weight_decay": 0.0}], lr=0.01),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_state_dict_round_trip_mid_run(backend, problem, name):
    make_opt = ROUND_TRIP[name]
    p0, grads = problem
    params = make_params(p0)
    opt = make_opt(params)
    for gs in grads[:5]:
        set_grads(params, gs)
        opt.step()
    saved = {k: ember.backend.get().to_numpy(v).copy() for k, v in opt.state_dict().items()}
    resumed_params = make_params([p.numpy() for p in params])
    resumed = make_opt(resumed_params)
    resumed.load_state_dict(saved)
    for gs in grads[5:12]:
        set_grads(params, gs)
        set_grads(resumed_params, gs)
        opt.step()
        resumed.step()
    for a, b in zip(params, resumed_params):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(ember.backend.get().to_numpy(v),
                                      ember.backend.get().to_numpy(resumed.state_dict()[k]))
    assert int(resumed.state_dict()["step"]) == 12


def test_state_dict_layout_and_dtypes(backend):
    a = ember.zeros(2, 3, requires_grad=True)
    b = ember.zeros(4, requires_grad=True)
    opt = optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.1}], amsgrad=True)
    sd = opt.state_dict()
    assert list(sd) == ["step", "groups.0.lr", "groups.1.lr",
                        "state.0.exp_avg", "state.0.exp_avg_sq", "state.0.max_exp_avg_sq",
                        "state.1.exp_avg", "state.1.exp_avg_sq", "state.1.max_exp_avg_sq"]
    assert sd["step"].dtype == ember.int32 and sd["step"].shape == ()
    assert sd["groups.1.lr"].dtype == ember.float32 and float(sd["groups.1.lr"]) == np.float32(0.1)
    assert sd["state.0.exp_avg"].shape == (2, 3) and sd["state.1.exp_avg_sq"].dtype == ember.float32
    for p in (a, b):
        p.grad = ember.ones_like(p)
    opt.step()
    assert a.dtype == ember.float32 and b.dtype == ember.float32  # float32 stays float32
    assert all(v.dtype == ember.float32 for k, v in opt.state_dict().items() if k != "step")
    assert optim.SGD([a], lr=0.1).state_dict().keys() == {"step", "groups.0.lr"}  # no momentum


def test_load_state_dict_reports_every_problem(backend):
    opt = optim.Adam([ember.zeros(2, 3, requires_grad=True), ember.zeros(4, requires_grad=True)])
    sd = dict(opt.state_dict())
    del sd["state.1.exp_avg"]
    sd["state.9.exp_avg"] = np.zeros(3)
    sd["state.0.exp_avg_sq"] = np.zeros((3, 2))
    with pytest.raises(ValueError) as err:
        opt.load_state_dict(sd)
    msg = str(err.value)
    assert msg.startswith("Adam.load_state_dict: 3 problem(s)")
    assert "missing key 'state.1.exp_avg'" in msg
    assert "unexpected key 'state.9.exp_avg'" in msg
    assert ("shape mismatch for 'state.0.exp_avg_sq': the state_dict has (3, 2), this optimizer "
            "has (2, 3)") in msg


def test_config_is_json_and_complete(backend):
    w = ember.zeros(3, requires_grad=True)
    opt = optim.Adam([w], lr=schedules.linear_decay(0.1, 0.01, steps=10), betas=(0.8, 0.9),
                     clip_norm=1.0)
    cfg = json.loads(json.dumps(opt.config()))
    assert cfg == {"name": "Adam", "clip_norm": 1.0, "clip_value": None, "param_groups": [{
        "num_params": 1, "lr": {"name": "linear_decay", "lr": 0.1, "final_lr": 0.01, "steps": 10},
        "betas": [0.8, 0.9], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}]}
    assert optim.SGD([w], lr=0.5).config()["param_groups"][0]["lr"] == 0.5


# -- behaviour of the shell ------------------------------------------------------------------------
def test_param_groups_have_their_own_lr_and_weight_decay(backend):
    a, b = ember.ones(2, requires_grad=True), ember.ones(2, requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "weight_decay": 1.0}], lr=0.1)
    a.grad, b.grad = ember.ones(2), ember.ones(2)
    opt.step()
    np.testing.assert_allclose(a.numpy(), [0.9, 0.9], rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), [0.0, 0.0], atol=1e-6)  # 1 - 0.5 * (1 + 1 * 1)


def test_params_without_grad_are_skipped_and_zero_grad(backend):
    a, b = ember.ones(2, requires_grad=True), ember.ones(3, requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    (a * 2).sum().backward()
    opt.step()
    np.testing.assert_array_equal(b.numpy(), np.ones(3))
    assert float(np.abs(opt.state_dict()["state.1.exp_avg"]).sum()) == 0.0
    assert not np.allclose(a.numpy(), 1.0)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros(2))
    assert b.grad is None
    opt.zero_grad()
    assert a.grad is None


def test_step_rebinds_never_mutates(backend):
    w = ember.ones(3, requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    before_param, before_state = w.data, opt.state_dict()
    kept = [ember.backend.get().to_numpy(v).copy() for v in before_state.values()]
    w.grad = ember.ones(3)
    opt.step()
    np.testing.assert_array_equal(ember.backend.get().to_numpy(before_param), np.ones(3))
    for k, v in zip(before_state.values(), kept):
        np.testing.assert_array_equal(ember.backend.get().to_numpy(k), v)


def test_accepts_tensor_subclasses_generators_and_closure(backend):
    class Parameter(ember.Tensor):
        __slots__ = ()

    w = Parameter([1.0, 2.0], requires_grad=True)
    opt = optim.SGD((p for p in [w]), lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure)) == 5.0
    np.testing.assert_allclose(w.numpy(), [0.0, 0.0])


def test_user_can_set_group_lr_and_repr(backend):
    w = ember.ones(1, requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    opt.param_groups[0]["lr"] = 0.5  # PyTorch's way to change the rate by hand
    w.grad = ember.ones(1)
    opt.step()
    np.testing.assert_allclose(w.numpy(), [0.5])
    assert repr(opt) == ("SGD(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, "
                         "nesterov=False; 1 group(s), 1 parameter(s))")


# -- compiled -------------------------------------------------------------------------------------
def jit_step(opt, params):
    """One ``opt.step()`` as a pure function of (params, grads, state), and its trace counter."""
    traces = []

    def step(datas, grads, state):
        traces.append(1)
        for p, d, g in zip(params, datas, grads):
            p.data, p.grad = d, ember.Tensor(g)
        opt.load_state_dict(state)
        opt.step()
        return [p.data for p in params], opt.state_dict()

    return jax.jit(step), traces


@pytest.mark.parametrize("name", ["sgd_momentum", "adam_amsgrad_schedule", "rmsprop"])
def test_step_runs_under_jax_jit(problem, name):
    ember.set_backend("jax")
    make_opt = ROUND_TRIP[name]
    p0, grads = problem
    eager_params = make_params(p0)
    eager = make_opt(eager_params)
    params = make_params(p0)
    opt = make_opt(params)
    step, traces = jit_step(opt, params)
    datas, state = [p.data for p in params], opt.state_dict()
    for gs in grads[:4]:  # the schedule's rate changes every step: it must not be frozen
        datas, state = step(datas, [jnp.asarray(g) for g in gs], state)
        set_grads(eager_params, gs)
        eager.step()
    assert len(traces) == 1
    for d, p in zip(datas, eager_params):
        np.testing.assert_allclose(np.asarray(d), p.numpy(), rtol=1e-12, atol=1e-14)
    for k, v in eager.state_dict().items():
        np.testing.assert_allclose(np.asarray(state[k]), np.asarray(v), rtol=1e-12, atol=1e-14)
    assert int(state["step"]) == 4


def test_clip_options_under_jax_jit(problem):
    ember.set_backend("jax")
    p0, grads = problem
    params = make_params(p0)
    opt = optim.SGD(params, lr=0.1, clip_norm=0.5, clip_value=0.3)
    step, traces = jit_step(opt, params)
    datas, _ = step([p.data for p in params], [jnp.asarray(g) for g in grads[0]],
                    opt.state_dict())
    clipped = [np.clip(g, -0.3, 0.3) for g in grads[0]]
    norm = math.sqrt(sum(float((g * g).sum()) for g in clipped))
    want = [p - 0.1 * g * min(1.0, 0.5 / (norm + 1e-6)) for p, g in zip(p0, clipped)]
    assert_all_close([np.asarray(d) for d in datas], want, atol=1e-12)
    assert len(traces) == 1


# -- clipping -------------------------------------------------------------------------------------
def numpy_clip_norm(grads, max_norm, norm_type):
    flat = np.concatenate([g.ravel() for g in grads])
    norm = np.abs(flat).max() if norm_type == math.inf else np.linalg.norm(flat, ord=norm_type)
    return [g * min(1.0, max_norm / (norm + 1e-6)) for g in grads], norm


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_numpy(backend, problem, norm_type, max_norm):
    p0, grads = problem
    params = make_params(p0) + [ember.zeros(2, requires_grad=True)]  # no grad: skipped
    set_grads(params, grads[0])
    norm = optim.clip_grad_norm(params, max_norm, norm_type=norm_type)
    want, want_norm = numpy_clip_norm(grads[0], max_norm, norm_type)
    assert isinstance(norm, ember.Tensor) and norm.shape == ()
    np.testing.assert_allclose(norm.item(), want_norm, rtol=1e-12)
    assert_all_close([p.grad.numpy() for p in params[:2]], want, atol=1e-12)
    assert params[2].grad is None


def test_clip_grad_value_matches_numpy(backend, problem):
    p0, grads = problem
    params = make_params(p0)
    set_grads(params, grads[0])
    assert optim.clip_grad_value(params, 0.7) is None
    assert_all_close([p.grad.numpy() for p in params], [np.clip(g, -0.7, 0.7) for g in grads[0]],
                     atol=0)


def test_clip_norm_option_matches_clip_then_step(backend, problem):
    p0, grads = problem
    got = run_ember(lambda ps: optim.Adam(ps, lr=0.01, clip_norm=1.0), p0, grads[:10])
    params = make_params(p0)
    opt = optim.Adam(params, lr=0.01)
    for gs in grads[:10]:
        set_grads(params, gs)
        optim.clip_grad_norm(params, 1.0)
        opt.step()
    assert_all_close(got, [p.numpy() for p in params], atol=1e-14)


# -- bad input ------------------------------------------------------------------------------------
def _w():
    return ember.zeros(3, requires_grad=True)


BAD = [
    (lambda: optim.Adam([_w()], lr=-0.1), "Adam: lr must be a finite number > 0, got -0.1"),
    (lambda: optim.SGD([_w()], lr=0), "SGD: lr must be a finite number > 0, got 0"),
    (lambda: optim.Adam([_w()], betas=(0.9, 1.0)),
     "Adam: betas must be two numbers in [0, 1), got (0.9, 1.0)"),
    (lambda: optim.AdamW([_w()], betas=(-0.1, 0.9)),
     "AdamW: betas must be two numbers in [0, 1), got (-0.1, 0.9)"),
    (lambda: optim.Adam([_w()], eps=0.0), "Adam: eps must be a finite number > 0, got 0.0"),
    (lambda: optim.RMSProp([_w()], eps=-1e-8),
     "RMSProp: eps must be a finite number > 0, got -1e-08"),
    (lambda: optim.AdaGrad([_w()], eps=0), "AdaGrad: eps must be a finite number > 0, got 0"),
    (lambda: optim.AdamW([_w()], weight_decay=-0.01),
     "AdamW: weight_decay must be a finite number >= 0, got -0.01"),
    (lambda: optim.SGD([_w()], lr=0.1, weight_decay=-1.0),
     "SGD: weight_decay must be a finite number >= 0, got -1.0"),
    (lambda: optim.SGD([_w()], lr=0.1, momentum=-0.5), "SGD: momentum must be in [0, 1), got -0.5"),
    (lambda: optim.Momentum([_w()], lr=0.1, beta=1.5), "Momentum: beta must be in [0, 1), got 1.5"),
    (lambda: optim.RMSProp([_w()], alpha=1.0), "RMSProp: alpha must be in [0, 1), got 1.0"),
    (lambda: optim.SGD([_w()], lr=0.1, nesterov=True),
     "SGD: nesterov=True needs momentum > 0 and dampening == 0, got momentum=0.0, dampening=0.0"),
    (lambda: optim.Adam([]),
     "Adam: got an empty parameter list; pass model.parameters() or a non-empty list of tensors"),
    (lambda: optim.Adam([{"params": []}]), "Adam: param group 0: got an empty parameter list"),
    (lambda: optim.Adam([ember.zeros(3)]),
     "Adam: parameter 0 (shape (3,)) does not require grad; pass only trainable tensors"),
    (lambda: optim.Adam([_w(), ember.zeros(3)]), "Adam: parameter 1 (shape (3,)) does not"),
    (lambda: optim.Adam([{"params": [_w()], "lr": -1.0}]),
     "Adam: param group 0: lr must be a finite number > 0, got -1.0"),
    (lambda: optim.Adam([_w()], clip_norm=0.0), "Adam: clip_norm must be > 0 or None, got 0.0"),
    (lambda: optim.clip_grad_norm([_w()], -1.0), "clip_grad_norm: max_norm must be > 0, got -1.0"),
    (lambda: optim.clip_grad_value([_w()], 0), "clip_grad_value: clip_value must be > 0, got 0"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input_names_argument_and_value(backend, case):
    make, message = BAD[case]
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_parameter_in_two_groups_or_twice():
    w, v = _w(), _w()
    with pytest.raises(ValueError) as err:
        optim.SGD([{"params": [w]}, {"params": [v, w]}], lr=0.1)
    assert str(err.value) == ("SGD: parameter 1 of param group 1 (shape (3,)) is already in param "
                              "group 0; a parameter may appear in one group, once")
    with pytest.raises(ValueError, match="parameter 1 of param group 0 .* is already in this"):
        optim.SGD([w, w], lr=0.1)
    opt = optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError, match="already in param group 0"):
        opt.add_param_group({"params": [w]})


def test_not_a_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="SGD: parameter 0 is a ndarray, not an ember Tensor"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="set_schedule expects a callable step -> lr or None"):
        optim.SGD([_w()], lr=0.1).set_schedule(0.5)


# -- the one learning-rate check ---------------------------------------------------------------

LR_VALUES = [(0.1, True), (1, True), (np.float32(0.5), True), (0, False), (-0.1, False),
             (math.inf, False), (math.nan, False), (True, False), ("0.1", False), (None, False)]


@pytest.mark.parametrize("value, ok", LR_VALUES)
def test_every_lr_site_accepts_the_same_learning_rates(value, ok):
    from ember.cli.config import CliError, Source, _resolve_optimizer
    from ember.optim.lr import is_lr

    sites = {
        "optimizer": lambda: optim.SGD([_w()], lr=value),
        "set_lr": lambda: optim.SGD([_w()], lr=0.1).set_lr(value),
        "schedule": lambda: optim.schedules.constant(value),
        "cli": lambda: _resolve_optimizer({"name": "sgd", "lr": value}, Source("c.toml", ".")),
    }
    outcome = {}
    for name, make in sites.items():
        try:
            make()
            outcome[name] = True
        except (ValueError, CliError):
            outcome[name] = False
    assert outcome == dict.fromkeys(sites, ok)
    assert is_lr(value) is ok


def test_check_lr_names_the_owner_the_value_and_what_it_must_be():
    from ember.optim.lr import check_lr

    with pytest.raises(ValueError, match=r"^Adam: lr must be a finite number > 0, got -1$"):
        check_lr(-1, "Adam: lr")
    with pytest.raises(ValueError, match=r"^x: lr=nan at step 3; must be >= 0$"):
        check_lr(math.nan, "x: lr", allow_zero=True, need=">= 0",
                 message="{what}={got}{where}; must be {need}", where=lambda: " at step 3")
    assert check_lr(0, "x", allow_zero=True) == 0
