"""Initialisation: the schemes' statistics, PyTorch's layer defaults, and reproducible,
path-keyed, lazy initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ember
from ember import nn
from tests.conftest import to_np


def weights(model):
    return {k: to_np(v).copy() for k, v in model.state_dict().items()}


# -- reproducible, path-keyed ----------------------------------------------------------------------

def test_same_seed_same_model_bit_identical(backend):
    def build():
        return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.MLP(8, [6], 3), nn.PReLU())

    ember.manual_seed(7)
    a = weights(build())
    ember.manual_seed(7)
    b = weights(build())
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    ember.manual_seed(8)
    c = weights(build())
    assert not np.array_equal(a["0.weight"], c["0.weight"])


def test_appending_or_inserting_layers_keeps_other_weights(backend):
    ember.manual_seed(1)
    base = weights(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)))
    ember.manual_seed(1)
    longer = weights(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2), nn.Linear(2, 2)))
    assert all(np.array_equal(base[k], longer[k]) for k in base)
    ember.manual_seed(1)
    ember.randn(3)  # other draws from the stream do not move path-keyed weights
    inserted = weights(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2), nn.ReLU(),
                                     nn.Linear(2, 2)))
    assert np.array_equal(base["0.weight"], inserted["0.weight"])
    assert np.array_equal(base["1.bias"], inserted["1.bias"])
    assert not np.array_equal(longer["2.weight"], inserted["3.weight"])  # path 3 != path 2


def test_key_is_the_full_path_from_the_outermost_module(backend):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(3, 3))

    ember.manual_seed(2)
    net = Net()
    w = to_np(net.body[0].weight)  # attribute access on a child still keys by the full path
    want = nn.init.default_(ember.zeros(3, 3), key=nn.init.path_key("body.0.weight", seed=2))
    np.testing.assert_array_equal(w, to_np(want))
    alone = nn.Linear(3, 3)
    assert not np.array_equal(w, to_np(alone.weight))  # path "weight" is another key


def test_lazy_until_needed_and_seed_captured_at_construction(backend):
    ember.manual_seed(5)
    model = nn.Sequential(nn.Linear(2, 3))
    p = model._modules["0"]._parameters["weight"]
    assert not p.is_materialized
    ember.manual_seed(99)  # later seeds do not change a model that was already built
    model(ember.zeros(1, 2))
    assert p.is_materialized
    ember.manual_seed(5)
    again = nn.Sequential(nn.Linear(2, 3))
    np.testing.assert_array_equal(to_np(p), to_np(again[0].weight))


def test_lazy_draw_uses_the_construction_backend():
    ember.set_backend("numpy")
    ember.manual_seed(0)
    lin = nn.Linear(2, 2)
    ember.set_backend("jax")
    try:
        w = lin.weight
    finally:
        ember.set_backend("numpy")
    assert isinstance(w.data, np.ndarray)
    ember.manual_seed(0)
    np.testing.assert_array_equal(w.numpy(), nn.Linear(2, 2).weight.numpy())


def test_path_key_matches_ember_random(backend):
    ember.manual_seed(4)
    np.testing.assert_array_equal(to_np(nn.init.path_key("a.b")),
                                  to_np(ember.random.key_for("a.b")))
    np.testing.assert_array_equal(to_np(nn.init.path_key("a.b", seed=4)),
                                  to_np(ember.random.key_for("a.b")))


def test_init_by_name_and_callable(backend):
    lin = nn.Linear(3, 4, init="zeros", bias_init="ones")
    assert to_np(lin.weight).tolist() == [[0.0] * 3] * 4 and to_np(lin.bias).tolist() == [1.0] * 4
    seen = []

    def custom(t):
        seen.append(t.shape)
        return ember.full(t.shape, 0.5)

    lin = nn.Linear(3, 2, init=custom)
    assert to_np(lin.weight).tolist() == [[0.5] * 3] * 2 and seen == [(2, 3)]
    ember.manual_seed(3)
    a = nn.Linear(3, 2, init=lambda t: nn.init.normal_(t, std=0.02)).weight.numpy()
    ember.manual_seed(3)
    b = nn.Linear(3, 2, init=lambda t: nn.init.normal_(t, std=0.02)).weight.numpy()
    np.testing.assert_array_equal(a, b)  # draws inside an init callable use the path key
    with pytest.raises(ValueError, match=r"returned shape \(3,\); expected \(2, 3\)"):
        _ = nn.Linear(3, 2, init=lambda t: ember.zeros(3)).weight
    with pytest.raises(ValueError, match="unknown initialiser 'glorot'; valid names: zeros, ones, "
                                         "normal, uniform, xavier_uniform, glorot_uniform"):
        nn.Linear(2, 2, init="glorot")


# -- PyTorch's defaults ----------------------------------------------------------------------------

def test_linear_default_is_pytorchs(backend):
    ember.manual_seed(0)
    lin = nn.Linear(100, 300)
    w, b = to_np(lin.weight), to_np(lin.bias)
    bound = 1 / math.sqrt(100)
    assert w.shape == (300, 100) and np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.98 * bound  # uniform over the whole interval
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.03)  # U(-b, b): std b/sqrt3


# -- the schemes' statistics ---------------------------------------------------------------------

def draw(fn, shape=(256, 128), **kw):
    t = ember.zeros(*shape)
    out = fn(t, **kw)
    assert out is t  # rebinds the tensor's data and returns it
    return to_np(t).astype(np.float64)


def test_scheme_statistics(backend):
    ember.manual_seed(0)
    fan_in, fan_out = 128, 256
    w = draw(nn.init.kaiming_uniform_, nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / fan_in)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    w = draw(nn.init.kaiming_uniform_, mode="fan_out", nonlinearity="relu")
    assert np.abs(w).max() <= math.sqrt(6 / fan_out)
    np.testing.assert_allclose(draw(nn.init.kaiming_normal_, nonlinearity="relu").std(),
                               math.sqrt(2 / fan_in), rtol=0.02)
    np.testing.assert_allclose(draw(nn.init.he_normal_).std(), math.sqrt(2 / fan_in), rtol=0.02)
    assert np.abs(draw(nn.init.he_uniform_)).max() <= math.sqrt(6 / fan_in)
    xb = math.sqrt(6 / (fan_in + fan_out))
    w = draw(nn.init.xavier_uniform_)
    assert np.abs(w).max() <= xb and np.abs(w).max() > 0.99 * xb
    np.testing.assert_allclose(draw(nn.init.xavier_normal_, gain=2.0).std(),
                               2 * math.sqrt(2 / (fan_in + fan_out)), rtol=0.02)
    assert nn.init.glorot_uniform_ is nn.init.xavier_uniform_
    np.testing.assert_allclose(draw(nn.init.lecun_normal_).std(), math.sqrt(1 / fan_in),
                               rtol=0.02)
    w = draw(nn.init.normal_, mean=1.0, std=0.5)
    np.testing.assert_allclose([w.mean(), w.std()], [1.0, 0.5], rtol=0.02)
    w = draw(nn.init.uniform_, a=-3.0, b=-2.0)
    assert w.min() >= -3.0 and w.max() < -2.0
    np.testing.assert_allclose(w.mean(), -2.5, atol=0.01)
    assert set(np.unique(draw(nn.init.constant_, val=0.25))) == {0.25}
    assert set(np.unique(draw(nn.init.zeros_))) == {0.0}
    assert set(np.unique(draw(nn.init.ones_))) == {1.0}


@pytest.mark.parametrize("shape", [(8, 3), (3, 8), (4, 2, 3, 3)])
def test_orthogonal(backend, shape):
    q = draw(nn.init.orthogonal_, shape=shape, gain=1.0).reshape(shape[0], -1)
    rows, cols = q.shape
    if rows >= cols:
        np.testing.assert_allclose(q.T @ q, np.eye(cols), atol=1e-5)
    else:
        np.testing.assert_allclose(q @ q.T, np.eye(rows), atol=1e-5)
    q2 = draw(nn.init.orthogonal_, shape=(8, 3), gain=3.0)
    np.testing.assert_allclose(q2.T @ q2, 9 * np.eye(3), atol=1e-4)


def test_explicit_key_is_deterministic(backend):
    key = ember.backend.get().key(11)
    a = draw(nn.init.xavier_normal_, shape=(4, 4), key=key)
    b = draw(nn.init.xavier_normal_, shape=(4, 4), key=key)
    np.testing.assert_array_equal(a, b)


def test_gains_fans_and_errors():
    gain = nn.init.calculate_gain
    assert gain("linear") == gain("sigmoid") == gain("conv2d") == 1.0
    assert gain("relu") == math.sqrt(2) and gain("tanh") == 5 / 3 and gain("selu") == 0.75
    assert gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    assert gain("leaky_relu", math.sqrt(5)) == math.sqrt(1 / 3)
    with pytest.raises(ValueError, match="unknown nonlinearity 'swish'; valid: linear"):
        gain("swish")
    assert nn.init.calculate_fan_in_and_fan_out((16, 3, 5, 5)) == (75, 400)
    assert nn.init.calculate_fan_in_and_fan_out((10, 20)) == (20, 10)
    with pytest.raises(ValueError, match=r"at least 2 dimensions \(out, in, \.\.\.\); got shape "
                                         r"\(5,\): initialise a bias with uniform_"):
        nn.init.xavier_uniform_(ember.zeros(5))
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out', got 'fan_avg'"):
        nn.init.kaiming_normal_(ember.zeros(2, 2), mode="fan_avg")
    with pytest.raises(ValueError, match=r"orthogonal_ needs a tensor with at least 2 "
                                         r"dimensions; got shape \(3,\)"):
        nn.init.orthogonal_(ember.zeros(3))
    assert nn.init.get("He_Normal_") is nn.init.he_normal_
    b = nn.init.bias_uniform(16)(ember.zeros(1000)).numpy()
    assert np.abs(b).max() <= 0.25 and np.abs(b).max() > 0.24
