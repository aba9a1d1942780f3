"""Layers and activation modules: forward against NumPy references, gradients by gradcheck in
float64 and against jax.grad on the jax backend, train/eval behaviour, error messages."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import scipy.special

import ember
from ember import nn
from tests.conftest import to_np


@contextlib.contextmanager
def swapped(module, names, tensors):
    """Make the parameters at ``names`` be ``tensors`` while inside (for gradcheck)."""
    saved = []
    for name, t in zip(names, tensors):
        owner, _, leaf = name.rpartition(".")
        mod = module.get_submodule(owner)
        saved.append((mod, leaf, mod._parameters[leaf]))
        mod._parameters[leaf] = t
    try:
        yield
    finally:
        for mod, leaf, p in saved:
            mod._parameters[leaf] = p


def check_grads(layer, x):
    """gradcheck the layer's output with respect to its input and every parameter (float64)."""
    layer.double()
    names = [n for n, p in layer.named_parameters() if p.requires_grad]
    params = [ember.tensor(dict(layer.named_parameters())[n].numpy(), requires_grad=True)
              for n in names]

    def fn(x, *ws):
        with swapped(layer, names, ws):
            return layer(x)

    assert ember.gradcheck(fn, x, *params)


def ember_grads(layer, x, upstream):
    """Gradients of sum(layer(x) * upstream) for the input and each parameter, as NumPy."""
    layer.zero_grad()
    x = ember.tensor(x, requires_grad=True)
    (layer(x) * ember.tensor(upstream)).sum().backward()
    return [to_np(x.grad)] + [to_np(p.grad) for p in layer.parameters()]


def jax_grads(ref, x, params, upstream):
    """Gradients of sum(ref(x, *params) * upstream) by jax.grad."""
    import jax
    import jax.numpy as jnp

    def loss(*args):
        return jnp.sum(ref(jnp, *args) * upstream)

    grads = jax.grad(loss, argnums=tuple(range(1 + len(params))))(x, *params)
    return [np.asarray(g) for g in grads]


def compare_with_jax(backend, layer, ref, x, rng):
    """On the jax backend: ember's gradients equal jax.grad of the reference expression."""
    if backend != "jax":
        return
    layer.double()
    x = np.asarray(x, dtype=np.float64)
    params = [to_np(p) for p in layer.parameters()]
    out = to_np(layer(ember.tensor(x)))
    upstream = rng.standard_normal(out.shape)
    got = ember_grads(layer, x, upstream)
    want = jax_grads(ref, x, params, upstream)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


# -- Linear, MLP --------------------------------------------------------------------------------

def linear_ref(xp, x, w, b):
    return x @ w.T + b


def test_linear_forward_and_grads(backend, rng):
    layer = nn.Linear(4, 3)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    w, b = to_np(layer.weight), to_np(layer.bias)
    y = layer(ember.tensor(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), x @ w.T + b, rtol=1e-5, atol=1e-6)
    check_grads(layer, ember.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True))
    compare_with_jax(backend, nn.Linear(4, 3), linear_ref, rng.standard_normal((2, 3, 4)), rng)


def test_linear_weight_gradient_has_the_weights_layout_on_numpy(rng):
    # x @ w.T: the gradient of w comes back row-major like w (the optimizer's elementwise
    # update runs about twice as fast on matching layouts), with the values of x^T-style math
    layer = nn.Linear(6, 3)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    g = rng.standard_normal((5, 3)).astype(np.float32)
    layer(ember.tensor(x)).backward(ember.tensor(g))
    grad = layer.weight.grad.numpy()
    assert grad.flags.c_contiguous
    np.testing.assert_allclose(grad, g.T @ x, rtol=1e-5, atol=1e-6)


def test_linear_variants(backend, rng):
    x = rng.standard_normal((3, 4))
    lin = nn.Linear(4, 2, bias=False, activation="relu", dtype=ember.float64)
    assert [n for n, _ in lin.named_parameters()] == ["weight"] and lin.bias is None
    np.testing.assert_allclose(lin(ember.tensor(x)).numpy(),
                               np.maximum(x @ to_np(lin.weight).T, 0), rtol=1e-12)
    act = nn.Linear(4, 2, activation=nn.LeakyReLU(0.2), dtype=ember.float64)
    assert [n for n, _ in act.named_modules()] == ["", "activation"]
    fn = nn.Linear(4, 2, activation=lambda t: t * 0, dtype=ember.float64)
    assert fn(ember.tensor(x)).tolist() == [[0.0, 0.0]] * 3
    assert nn.Dense is nn.Linear
    with pytest.raises(ValueError, match="unknown activation 'rleu'; valid names: relu, "
                                         "leaky_relu, prelu, sigmoid, tanh, softmax, log_softmax, "
                                         "gelu, softplus"):
        nn.Linear(2, 2, activation="rleu")


def test_linear_accepts_arrays_and_checks_shapes():
    lin = nn.Linear(3, 2)
    assert lin(np.ones((4, 3), np.float32)).shape == (4, 2)
    assert lin(ember.ones(3)).shape == (2,)
    with pytest.raises(ValueError, match=r"^model \(Linear 3->2\): expected input \(\.\.\., 3\), "
                                         r"got \(\)$"):
        lin(ember.tensor(1.0))


def test_mlp(backend, rng):
    mlp = nn.MLP(3, [5, 4], 2, activation="tanh", final_activation="sigmoid", dropout=0.25)
    assert [type(m).__name__ for m in mlp] == ["Linear", "Tanh", "Dropout", "Linear", "Tanh",
                                               "Dropout", "Linear", "Sigmoid"]
    mlp.eval()
    x = rng.standard_normal((6, 3)).astype(np.float32)
    h = x
    for i in (0, 3):
        h = np.tanh(h @ to_np(mlp[i].weight).T + to_np(mlp[i].bias))
    want = scipy.special.expit(h @ to_np(mlp[6].weight).T + to_np(mlp[6].bias))
    np.testing.assert_allclose(mlp(ember.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-6)
    plain = nn.MLP(2, [], 1, activation=None)
    assert [type(m).__name__ for m in plain] == ["Linear"]
    check_grads(nn.MLP(3, [4], 2, activation="tanh"),
                ember.tensor(rng.standard_normal((4, 3)), requires_grad=True))


# -- Flatten, Identity, Input ---------------------------------------------------------------------

def test_flatten_identity_input(backend, rng):
    x = ember.tensor(rng.standard_normal((2, 3, 4, 5)))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(2)(x).shape == (2, 3, 20)
    np.testing.assert_array_equal(nn.Flatten()(x).numpy(), to_np(x).reshape(2, 60))
    assert nn.Identity()(x) is x
    assert nn.Input((3, 4, None))(x) is x
    assert nn.Input(5)(ember.zeros(7, 5)).shape == (7, 5)
    model = nn.Sequential(nn.Input((3, 4, 5)), nn.Flatten())
    with pytest.raises(ValueError) as e:
        model(ember.zeros(2, 3, 4, 6))
    assert str(e.value) == ("model.0 (Input (3, 4, 5)): expected input (None, 3, 4, 5), "
                            "got (2, 3, 4, 6)")
    with pytest.raises(ValueError, match=r"expected input \(None, 3, 4, 5\), got \(3, 4, 5\)"):
        model(ember.zeros(3, 4, 5))


# -- Dropout ------------------------------------------------------------------------------------

def test_dropout_train_eval_and_fresh_masks(backend):
    ember.manual_seed(3)
    drop = nn.Dropout(0.25)
    x = ember.ones(20000)
    key0 = to_np(drop.key).copy()
    y1, y2 = drop(x).numpy(), drop(x).numpy()
    assert set(np.unique(y1)) == {0.0, np.float32(1 / 0.75)}
    assert not np.array_equal(y1, y2)  # a fresh mask every call
    assert not np.array_equal(to_np(drop.key), key0)  # the key buffer moved on
    assert abs(y1.mean() - 1.0) < 0.03 and abs((y1 == 0).mean() - 0.25) < 0.02  # expectation kept
    drop.eval()
    assert drop(x) is x  # the identity in eval mode, and the key does not move
    key = to_np(drop.key).copy()
    drop(x)
    np.testing.assert_array_equal(to_np(drop.key), key)
    ember.manual_seed(3)
    again = nn.Dropout(0.25)
    np.testing.assert_array_equal(again(x).numpy(), y1)  # reproducible from the seed
    assert "key" in again.state_dict()


def test_dropout_gradient_is_the_mask(backend):
    drop = nn.Dropout(0.5)
    x = ember.ones(50, requires_grad=True)
    y = drop(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())
    with pytest.raises(ValueError, match=r"Dropout: p is the probability of dropping an element "
                                         r"and must be in \[0, 1\); got 1"):
        nn.Dropout(1)
    assert nn.Dropout(0.0)(x) is x


# -- BatchNorm ----------------------------------------------------------------------------------

def bn_train_ref(xp, x, w, b, eps=1e-5):
    axes = (0, *range(2, x.ndim))
    shape = (1, -1, *([1] * (x.ndim - 2)))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / xp.sqrt(var + eps) * w.reshape(shape) + b.reshape(shape)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 4, 4)])
def test_batchnorm_train_eval_against_numpy(backend, rng, shape):
    cls = nn.BatchNorm2D if len(shape) == 4 else nn.BatchNorm1D
    bn = cls(3, momentum=0.2)
    bn.weight.data = ember.tensor([1.0, 2.0, 0.5]).data
    bn.bias.data = ember.tensor([0.0, -1.0, 3.0]).data
    axes = (0, *range(2, len(shape)))
    rm, rv = np.zeros(3), np.ones(3)
    batches = [rng.standard_normal(shape) * 3 + 1 for _ in range(2)]
    for xb in batches:
        y = bn(ember.tensor(xb.astype(np.float32)))
        want = bn_train_ref(np, xb, np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 3.0]))
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-4)
        n = xb.size // 3
        rm = 0.8 * rm + 0.2 * xb.mean(axis=axes)
        rv = 0.8 * rv + 0.2 * xb.var(axis=axes) * n / (n - 1)  # unbiased in the running estimate
    np.testing.assert_allclose(to_np(bn.running_mean), rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_np(bn.running_var), rv, rtol=1e-5, atol=1e-6)
    assert int(bn.num_batches_tracked) == 2
    bn.eval()
    xe = rng.standard_normal(shape)
    bshape = (1, 3, *([1] * (len(shape) - 2)))
    want = ((xe - rm.reshape(bshape)) / np.sqrt(rv.reshape(bshape) + 1e-5)
            * np.array([1.0, 2.0, 0.5]).reshape(bshape) + np.array([0, -1, 3.0]).reshape(bshape))
    np.testing.assert_allclose(bn(ember.tensor(xe.astype(np.float32))).numpy(), want,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(to_np(bn.running_mean), rm, rtol=1e-5)  # eval leaves them alone


def test_batchnorm_gradients(backend, rng):
    for bn, shape in ((nn.BatchNorm1D(3), (4, 3)), (nn.BatchNorm2D(2), (2, 2, 2, 3))):
        bn.weight.data = bn.weight.data + ember.tensor(rng.standard_normal(bn.num_features)).data
        check_grads(bn, ember.tensor(rng.standard_normal(shape), requires_grad=True))
        compare_with_jax(backend, bn, bn_train_ref, rng.standard_normal(shape), rng)
    frozen = nn.BatchNorm1D(3).double().eval()  # eval: an affine map of the input
    check_grads(frozen, ember.tensor(rng.standard_normal((4, 3)), requires_grad=True))


def test_batchnorm_options_and_errors(backend, rng):
    x = rng.standard_normal((8, 2)).astype(np.float32)
    cumulative = nn.BatchNorm1D(2, momentum=None)
    for _ in range(3):
        cumulative(ember.tensor(x))
    np.testing.assert_allclose(to_np(cumulative.running_mean), x.mean(0), rtol=1e-5)
    bare = nn.BatchNorm1D(2, affine=False, track_running_stats=False)
    assert list(bare.state_dict()) == [] and bare.running_mean is None
    bare.eval()  # without running statistics it uses the batch's even in eval mode
    np.testing.assert_allclose(bare(ember.tensor(x)).numpy(),
                               (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-4, atol=1e-5)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1D(3))
    with pytest.raises(ValueError) as e:
        model(ember.zeros(8, 3))
    assert str(e.value) == ("model.1 (BatchNorm1D 3): expected input (N, 3) or (N, 3, L), got "
                            "(8, 4)")
    with pytest.raises(ValueError, match=r"^model \(BatchNorm2D 3\): expected input "
                                         r"\(N, 3, H, W\), got \(8, 3\)$"):
        nn.BatchNorm2D(3)(ember.zeros(8, 3))
    with pytest.raises(ValueError, match=r"more than 1 value per channel in training; got input "
                                         r"\(1, 3\) \(use a larger batch, or call .eval\(\)\)"):
        nn.BatchNorm1d(3)(ember.zeros(1, 3))
    assert nn.BatchNorm1d is nn.BatchNorm1D and nn.BatchNorm2d is nn.BatchNorm2D


# -- LayerNorm ----------------------------------------------------------------------------------

def ln_ref(xp, x, w, b, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / xp.sqrt(var + eps) * w + b


def test_layernorm(backend, rng):
    ln = nn.LayerNorm(4)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32) * 5
    np.testing.assert_allclose(ln(ember.tensor(x)).numpy(), ln_ref(np, x, 1.0, 0.0),
                               rtol=1e-4, atol=1e-5)
    ln.weight.data = ember.tensor(rng.standard_normal(4).astype(np.float32)).data
    check_grads(ln, ember.tensor(rng.standard_normal((3, 4)), requires_grad=True))
    ln2 = nn.LayerNorm((2, 3), elementwise_affine=False)
    x2 = rng.standard_normal((4, 2, 3)).astype(np.float32)
    flat = x2.reshape(4, 6)
    want = ((flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + 1e-5))
    np.testing.assert_allclose(ln2(ember.tensor(x2)).numpy(), want.reshape(4, 2, 3), rtol=1e-4,
                               atol=1e-5)
    with pytest.raises(ValueError, match=r"^model \(LayerNorm \(2, 3\)\): expected input "
                                         r"\(\.\.\., 2, 3\), got \(4, 3, 2\)$"):
        ln2(ember.zeros(4, 3, 2))
    compare_with_jax(backend, nn.LayerNorm(4), ln_ref, rng.standard_normal((3, 4)), rng)


# -- activation modules ---------------------------------------------------------------------------

ACTIVATION_REFS = [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.LeakyReLU(), lambda x: np.where(x > 0, x, 0.01 * x)),
    (nn.LeakyReLU(0.3), lambda x: np.where(x > 0, x, 0.3 * x)),
    (nn.Sigmoid(), scipy.special.expit),
    (nn.Tanh(), np.tanh),
    (nn.Softmax(), lambda x: scipy.special.softmax(x, axis=-1)),
    (nn.Softmax(axis=0), lambda x: scipy.special.softmax(x, axis=0)),
    (nn.LogSoftmax(), lambda x: scipy.special.log_softmax(x, axis=-1)),
    (nn.GELU(), lambda x: 0.5 * x * (1 + scipy.special.erf(x / np.sqrt(2)))),
    (nn.GELU("tanh"), lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi)
                                                         * (x + 0.044715 * x**3)))),
    (nn.Softplus(), lambda x: np.logaddexp(x, 0)),
    (nn.PReLU(), lambda x: np.where(x > 0, x, 0.25 * x)),
]


@pytest.mark.parametrize("module, ref", ACTIVATION_REFS, ids=lambda v: repr(v)[:20])
def test_activation_modules(backend, rng, module, ref):
    x = rng.standard_normal((3, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kinks for finite differences
    module = type(module)(**_init_args(module))  # a fresh one on this backend
    np.testing.assert_allclose(module(ember.tensor(x)).numpy(), ref(x), rtol=1e-10, atol=1e-12)
    check_grads(module, ember.tensor(x, requires_grad=True))


def _init_args(module):
    return {k: v for k, v in vars(module).items()
            if k in ("alpha", "axis", "approximate", "num_parameters", "init")}


def test_prelu_per_channel(backend, rng):
    prelu = nn.PReLU(3, init=0.1)
    prelu.weight.data = ember.tensor([0.1, 0.2, 0.3]).data
    x = rng.standard_normal((2, 3, 4))
    slope = np.array([0.1, 0.2, 0.3]).reshape(1, 3, 1)
    np.testing.assert_allclose(prelu(ember.tensor(x)).numpy(), np.where(x > 0, x, slope * x),
                               rtol=1e-6)
    check_grads(prelu, ember.tensor(x, requires_grad=True))
    with pytest.raises(ValueError, match=r"^model \(PReLU 3\): expected input \(N, 3, \.\.\.\), "
                                         r"got \(2, 4\)$"):
        prelu(ember.zeros(2, 4))


def test_get_activation():
    assert isinstance(nn.get_activation("ReLU"), nn.ReLU)
    assert nn.get_activation("linear") is None and nn.get_activation(None) is None
    relu = nn.ReLU()
    assert nn.get_activation(relu) is relu
    assert nn.get_activation(np.tanh) is np.tanh
    with pytest.raises(TypeError, match="activation must be a name, a Module, a callable or "
                                        "None; got int"):
        nn.get_activation(3)
    assert sorted(nn.ACTIVATIONS) == sorted(["relu", "leaky_relu", "prelu", "sigmoid", "tanh",
                                             "softmax", "log_softmax", "gelu", "softplus"])
    with pytest.raises(ValueError, match="GELU: approximate must be 'none' or 'tanh'"):
        nn.GELU("fast")


def test_lambda_and_callable_activation_in_mlp():
    mlp = nn.MLP(2, [3], 1, activation=np.negative)
    assert isinstance(mlp[1], nn.Lambda) and repr(mlp[1]) == "Lambda(negative)"
