"""Convolution, pooling and dropout: the ops against jax.lax oracles on both backends, the exact
tie and error behaviour, and the Conv2D / pooling modules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import ember
from ember import nn

jax.config.update("jax_enable_x64", True)  # float64 oracles, whichever backend runs first
DN = ("NCHW", "OIHW", "NCHW")

# (x shape, w shape, stride, padding as given to ember, padding as ((top, bottom), (left, right)),
#  dilation)
CONV_CASES = [
    ((2, 3, 7, 7), (4, 3, 3, 3), 2, 1, ((1, 1), (1, 1)), 2),  # stride 2, padding 1, dilation 2
    ((2, 3, 6, 5), (5, 3, 2, 3), 1, "same", ((0, 1), (1, 1)), 1),  # even kernel: odd pad at end
    ((1, 2, 8, 6), (3, 2, 3, 2), (2, 1), ((2, 0), (1, 3)), ((2, 0), (1, 3)), (1, 2)),
    ((3, 4, 5, 5), (2, 4, 1, 1), 1, "valid", ((0, 0), (0, 0)), 1),
    ((1, 1, 9, 9), (2, 1, 3, 3), 3, 4, ((4, 4), (4, 4)), 1),  # padding wider than the kernel
]


def lax_conv(x, w, stride, pads, dil):
    s = stride if isinstance(stride, tuple) else (stride, stride)
    d = dil if isinstance(dil, tuple) else (dil, dil)
    return lax.conv_general_dilated(x, w, s, pads, rhs_dilation=d, dimension_numbers=DN)


@pytest.mark.parametrize("case", CONV_CASES, ids=range(len(CONV_CASES)))
def test_conv2d_matches_lax_forward_and_gradients(case, backend, rng):
    xs, ws, stride, padding, pads, dil = case
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0])
    tx, tw, tb = (ember.tensor(a, requires_grad=True) for a in (x, w, b))
    out = ember.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dil)
    expected, vjp = jax.vjp(
        lambda x, w, b: lax_conv(x, w, stride, pads, dil) + b[None, :, None, None],
        jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), np.asarray(expected), rtol=1e-10, atol=1e-12)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    for t, e in zip((tx, tw, tb), vjp(jnp.asarray(upstream))):
        np.testing.assert_allclose(t.grad.numpy(), np.asarray(e), rtol=1e-10, atol=1e-11)


def test_conv2d_float32_stays_float32_and_matches(backend, rng):
    x = rng.standard_normal((4, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    out = ember.conv2d(ember.tensor(x), ember.tensor(w), padding=1)
    assert out.dtype == np.float32
    expected = lax_conv(x.astype(np.float64), w.astype(np.float64), 1, ((1, 1), (1, 1)), 1)
    np.testing.assert_allclose(out.numpy(), np.asarray(expected), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("needs", [(False, True, True), (True, False, False), (False, False, True)])
def test_conv2d_gradients_of_only_the_inputs_that_need_them(needs, backend, rng):
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), \
        rng.standard_normal(4)
    full = [ember.tensor(a, requires_grad=True) for a in (x, w, b)]
    ember.conv2d(*full, padding=1).sum().backward()
    part = [ember.tensor(a, requires_grad=n) for a, n in zip((x, w, b), needs)]
    ember.conv2d(*part, padding=1).sum().backward()
    for t, f, n in zip(part, full, needs):
        assert (t.grad is not None) == n
        if n:
            np.testing.assert_array_equal(t.grad.numpy(), f.grad.numpy())


def test_conv2d_float64_bias_widens_a_float32_output(backend, rng):
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4)
    out = ember.conv2d(ember.tensor(x), ember.tensor(w), ember.tensor(b))
    assert out.dtype == np.float64
    expected = np.asarray(lax_conv(x, w, 1, ((0, 0), (0, 0)), 1)).astype(np.float64) \
        + b[None, :, None, None]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_conv2d_gradcheck_float64(backend, rng):
    x = ember.tensor(rng.standard_normal((2, 2, 5, 5)), requires_grad=True)
    w = ember.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    b = ember.tensor(rng.standard_normal(3), requires_grad=True)
    assert ember.gradcheck(lambda x, w, b: ember.conv2d(x, w, b, stride=2, padding=1,
                                                        dilation=2), x, w, b)


POOL_CASES = [  # (x shape, kernel, stride, padding): overlapping windows and padding
    ((2, 3, 7, 7), 3, 2, 1),
    ((1, 2, 6, 5), (2, 3), (1, 2), (1, 1)),
    ((2, 2, 4, 4), 2, None, 0),
    ((1, 1, 5, 5), 3, 1, 0),
    ((2, 3, 7, 9), 2, None, 0),  # windows tile the input; the last row and column are left out
    ((1, 2, 6, 9), (2, 3), None, 0),  # non-square tiles, no remainder
]


def lax_pool(x, kernel, stride, padding, kind):
    k = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    p = padding if isinstance(padding, tuple) else (padding, padding)
    args = ((1, 1, *k), (1, 1, *s), ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    if kind == "max":
        return lax.reduce_window(x, -jnp.inf, lax.max, *args)
    return lax.reduce_window(x, 0.0, lax.add, *args) / (k[0] * k[1])


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=range(len(POOL_CASES)))
def test_pooling_matches_lax_forward_and_gradients(case, kind, backend, rng):
    xs, kernel, stride, padding = case
    x = rng.standard_normal(xs)
    op = ember.max_pool2d if kind == "max" else ember.avg_pool2d
    tx = ember.tensor(x, requires_grad=True)
    out = op(tx, kernel, stride=stride, padding=padding)
    expected, vjp = jax.vjp(lambda a: lax_pool(a, kernel, stride, padding, kind), jnp.asarray(x))
    np.testing.assert_allclose(out.numpy(), np.asarray(expected), rtol=1e-12, atol=1e-12)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    np.testing.assert_allclose(tx.grad.numpy(), np.asarray(vjp(jnp.asarray(upstream))[0]),
                               rtol=1e-12, atol=1e-12)
    ember.gradcheck(lambda a: op(a, kernel, stride=stride, padding=padding),
                    ember.tensor(x, requires_grad=True))


def test_max_pool_ties_send_the_gradient_to_the_first_maximum(backend):
    x = ember.ones(1, 1, 3, 3, requires_grad=True)
    ember.max_pool2d(x, 2, stride=1).sum().backward()  # four overlapping windows, all tied
    assert x.grad.numpy()[0, 0].tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
    y = ember.tensor([[[[1.0, 3.0], [3.0, 2.0]]]], requires_grad=True)
    ember.max_pool2d(y, 2).sum().backward()
    assert y.grad.numpy()[0, 0].tolist() == [[0, 1], [0, 0]]


@pytest.mark.parametrize(("kernel", "stride", "padding"), [
    (2, None, 0),  # windows tile the input (the fast path on both backends)
    ((3, 2), None, 0),
    (3, 1, 1),  # overlapping windows with padding
])
def test_max_pool_ties_match_lax_on_many_tied_windows(kernel, stride, padding, backend, rng):
    # small integers as floats: most windows hold several equal maxima, as after a ReLU
    x = rng.integers(0, 3, (2, 3, 9, 8)).astype(np.float64)
    tx = ember.tensor(x, requires_grad=True)
    out = ember.max_pool2d(tx, kernel, stride=stride, padding=padding)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    _, vjp = jax.vjp(lambda a: lax_pool(a, kernel, stride, padding, "max"), jnp.asarray(x))
    # a wrong element would be off by O(1); overlapping windows may sum in another order
    np.testing.assert_allclose(tx.grad.numpy(), np.asarray(vjp(jnp.asarray(upstream))[0]),
                               rtol=1e-13, atol=1e-13)


def test_max_pool_gradient_leaves_other_elements_exactly_zero(backend):
    # An infinite upstream gradient goes to the first maximum only; the rest of the window gets
    # 0, not inf * 0 = nan
    x = ember.tensor([[[[1.0, 5.0, 2.0, 2.0], [0.0, 3.0, 2.0, 1.0]]]], requires_grad=True)
    out = ember.max_pool2d(x, 2)
    out.backward(ember.tensor([[[[np.inf, -np.inf]]]]))
    assert x.grad.numpy()[0, 0].tolist() == [[0.0, np.inf, -np.inf, 0.0], [0.0, 0.0, 0.0, 0.0]]


def test_max_pool_without_gradient_keeps_nothing_for_backward(backend):
    bk = ember.backend.get()
    x = ember.randn(2, 3, 4, 4)
    out, saved = bk.max_pool2d(x.data, (2, 2), (2, 2), ((0, 0), (0, 0)))
    assert saved is None and out.shape == (2, 3, 2, 2)
    with ember.no_grad():  # the op then asks for no saved state
        y = ember.max_pool2d(ember.randn(2, 3, 4, 4, requires_grad=True), 2)
    assert y.grad_fn is None


def test_avg_pool_counts_padding():
    out = ember.avg_pool2d(ember.ones(1, 1, 2, 2), 2, stride=1, padding=1)
    assert out.numpy()[0, 0].tolist() == [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]


def test_max_pool_integer_input():
    x = ember.tensor(np.arange(16).reshape(1, 1, 4, 4))
    assert ember.max_pool2d(x, 2, padding=1).numpy()[0, 0].tolist() == [
        [0, 2, 3], [8, 10, 11], [12, 14, 15]]


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ember.conv2d(ember.zeros(2, 3, 5, 5), ember.zeros(4, 2, 3, 3)),
     "ember.conv2d: input of shape (2, 3, 5, 5) has 3 channels but weight of shape "
     "(4, 2, 3, 3) expects 2 (weight is (out_channels, in_channels, kH, kW))"),
    (lambda: ember.conv2d(ember.zeros(3, 5, 5), ember.zeros(4, 3, 3, 3)),
     "ember.conv2d: expected a 4-d input (N, C, H, W), got shape (3, 5, 5) "
     "(add a batch axis with x.unsqueeze(0))"),
    (lambda: ember.conv2d(ember.zeros(1, 3, 5, 5), ember.zeros(4, 3, 3, 3), ember.zeros(3)),
     "ember.conv2d: bias of shape (3,) does not match weight of shape (4, 3, 3, 3); "
     "expected (4,)"),
    (lambda: ember.conv2d(ember.zeros(1, 1, 5, 5), ember.zeros(1, 1, 3, 3), stride=2,
                          padding="same"),
     "ember.conv2d: padding='same' needs stride 1, got stride (2, 2)"),
    (lambda: ember.conv2d(ember.zeros(1, 1, 4, 4), ember.zeros(1, 1, 3, 3), dilation=2),
     "ember.conv2d: the kernel (3, 3) with dilation (2, 2) spans (5, 5), more than the padded "
     "input (4, 4) of an input of shape (1, 1, 4, 4)"),
    (lambda: ember.conv2d(ember.zeros(1, 1, 4, 4), ember.zeros(1, 1, 3, 3), stride=0),
     "ember.conv2d: stride must be >= 1, got 0"),
    (lambda: ember.conv2d(ember.zeros(1, 1, 4, 4), ember.zeros(1, 1, 3, 3), padding="full"),
     "ember.conv2d: padding must be an int, a pair, 'valid' or 'same', got 'full'"),
    (lambda: ember.max_pool2d(ember.zeros(1, 1, 4, 4), 2, padding=2),
     "ember.max_pool2d: padding 2 is more than half the kernel (2, 2)"),
    (lambda: ember.avg_pool2d(ember.zeros(1, 1, 2, 2), 3),
     "ember.avg_pool2d: the window (3, 3) spans (3, 3), more than the padded input (2, 2)"),
    (lambda: ember.dropout(ember.ones(3), 1.0, ember.random.next_key()),
     "ember.dropout: p must be a number in [0, 1) (the probability of zeroing an element), "
     "got p=1.0"),
])
def test_errors_name_the_op_and_the_shapes(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)


# -- dropout ---------------------------------------------------------------------------------------

def test_dropout_mask_comes_from_the_key(backend):
    bk = ember.backend.get()
    x = ember.tensor(np.linspace(1.0, 2.0, 4000), requires_grad=True)
    key = bk.key(3)
    y = ember.dropout(x, 0.25, key)
    keep = bk.to_numpy(bk.uniform(key, (4000,), np.float64)) >= 0.25
    np.testing.assert_array_equal(y.numpy(), x.numpy() * (keep * (1 / 0.75)))
    assert abs(keep.mean() - 0.75) < 0.03
    np.testing.assert_array_equal(ember.dropout(x, 0.25, key).numpy(), y.numpy())
    assert not np.array_equal(ember.dropout(x, 0.25, bk.key(4)).numpy(), y.numpy())
    y.backward(np.ones(4000))
    np.testing.assert_array_equal(x.grad.numpy(), np.where(keep, 1 / 0.75, 0.0))


def test_dropout_p0_is_the_identity_and_key_may_be_a_tensor(backend):
    x = ember.ones(5)
    assert ember.dropout(x, 0.0, None) is x
    key = ember.Tensor(ember.random.next_key())
    a = ember.dropout(ember.ones(50), 0.5, key).numpy()
    b = ember.dropout(ember.ones(50), 0.5, key.data).numpy()
    np.testing.assert_array_equal(a, b)
    assert set(a.tolist()) == {0.0, 2.0}
    y = ember.dropout(ember.ones(10, dtype=ember.float32), 0.5, key)
    assert y.dtype == np.float32


def test_conv_pool_dropout_trace_under_jax_jit(rng):
    ember.set_backend("jax")
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)

    def step(xa, wa, key):
        tx, tw = ember.Tensor._make(xa, True, None), ember.Tensor._make(wa, True, None)
        y = ember.max_pool2d(ember.conv2d(tx, tw, padding=1).relu(), 2)
        loss = ember.dropout(ember.avg_pool2d(y, 3, stride=1, padding=1), 0.5, key).sum()
        loss.backward()
        return loss.data, tx.grad.data, tw.grad.data

    key = ember.backend.get().key(0)
    compiled = jax.jit(step)(jnp.asarray(x), jnp.asarray(w), key)
    eager = step(jnp.asarray(x), jnp.asarray(w), key)
    for c, e in zip(compiled, eager):
        np.testing.assert_allclose(np.asarray(c), np.asarray(e), rtol=1e-5, atol=1e-5)


# -- modules ---------------------------------------------------------------------------------------

def test_conv2d_module_gradients_against_lax(backend, rng):
    conv = nn.Conv2D(3, 4, 3, stride=2, padding=1, dilation=2, dtype=ember.float64)
    x = rng.standard_normal((2, 3, 7, 7))
    tx = ember.tensor(x, requires_grad=True)
    out = conv(tx)
    w, b = conv.weight.numpy(), conv.bias.numpy()
    expected, vjp = jax.vjp(
        lambda x, w, b: lax_conv(x, w, 2, ((1, 1), (1, 1)), 2) + b[None, :, None, None],
        jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
    np.testing.assert_allclose(out.numpy(), np.asarray(expected), rtol=1e-10, atol=1e-12)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    gx, gw, gb = vjp(jnp.asarray(upstream))
    np.testing.assert_allclose(tx.grad.numpy(), np.asarray(gx), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(conv.weight.grad.numpy(), np.asarray(gw), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(conv.bias.grad.numpy(), np.asarray(gb), rtol=1e-10, atol=1e-11)
    assert ember.gradcheck(conv, ember.tensor(rng.standard_normal((1, 3, 5, 5)),
                                              requires_grad=True))


def test_conv2d_module_defaults_and_shapes(backend):
    ember.manual_seed(5)
    conv = nn.Conv2D(16, 32, 3, padding=1)
    assert nn.Conv2d is nn.Conv2D and nn.MaxPool2d is nn.MaxPool2D
    assert conv.weight.shape == (32, 16, 3, 3) and conv.weight.dtype == np.float32
    bound = 1 / np.sqrt(16 * 9)  # PyTorch's default: U(+-1/sqrt(fan_in)) for weight and bias
    w, b = conv.weight.numpy(), conv.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound
    ember.manual_seed(5)
    np.testing.assert_array_equal(nn.Conv2D(16, 32, 3, padding=1).weight.numpy(), w)
    assert conv(ember.zeros(1, 16, 5, 4)).shape == (1, 32, 5, 4)
    assert nn.Conv2D(2, 3, (2, 4), padding="same")(ember.zeros(1, 2, 5, 6)).shape == (1, 3, 5, 6)
    assert nn.Conv2D(2, 3, 3, bias=False).bias is None
    assert repr(conv) == "Conv2D(16, 32, kernel_size=(3, 3), stride=(1, 1), padding=1)"
    frozen = nn.Conv2D(1, 1, 1, trainable=False)
    assert [p.requires_grad for p in frozen.parameters()] == [False, False]


def test_layer_errors_name_the_path():
    model = nn.Sequential(nn.Conv2D(3, 8, 3), nn.MaxPool2D(2), nn.Conv2D(8, 4, 5))
    with pytest.raises(ValueError) as info:
        model(ember.zeros(2, 1, 16, 16))
    assert str(info.value) == ("model.0 (Conv2D 3->8 3x3): expected input (N, 3, H, W), "
                               "got (2, 1, 16, 16)")
    with pytest.raises(ValueError) as info:
        model(ember.zeros(2, 3, 10, 10))  # 10 -> 8 -> 4: too small for the 5x5 kernel
    assert str(info.value).startswith(
        "model.2 (Conv2D 8->4 5x5): ember.conv2d: the kernel (5, 5) with dilation (1, 1) spans "
        "(5, 5), more than the padded input (4, 4)")
    with pytest.raises(ValueError, match=r"model \(MaxPool2D 2x2\): expected input "
                                         r"\(N, C, H, W\), got \(4, 4\)"):
        nn.MaxPool2D(2)(ember.zeros(4, 4))


def test_pool_modules_and_global_average(backend, rng):
    x = rng.standard_normal((2, 3, 6, 6))
    np.testing.assert_allclose(nn.MaxPool2D(3, stride=2, padding=1)(ember.tensor(x)).numpy(),
                               np.asarray(lax_pool(jnp.asarray(x), 3, 2, 1, "max")))
    np.testing.assert_allclose(nn.AvgPool2D((2, 3))(ember.tensor(x)).numpy(),
                               np.asarray(lax_pool(jnp.asarray(x), (2, 3), None, 0, "avg")))
    np.testing.assert_allclose(nn.GlobalAvgPool2D()(ember.tensor(x)).numpy(), x.mean(axis=(2, 3)))
    assert repr(nn.MaxPool2D(2)) == "MaxPool2D(kernel_size=2, stride=2, padding=0)"
    tx = ember.tensor(x, requires_grad=True)
    assert ember.gradcheck(nn.GlobalAvgPool2D(), tx)


def test_small_cnn_trains_on_both_backends(backend):
    model = nn.Sequential(nn.Conv2D(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),
                          nn.Conv2D(4, 4, 3, padding="same"), nn.ReLU(), nn.AvgPool2D(2),
                          nn.Flatten(), nn.Linear(16, 2))
    rng = np.random.default_rng(0)  # the same start on both backends
    model.load_state_dict({k: (rng.standard_normal(v.shape) * 0.5).astype(np.float32)
                           for k, v in model.state_dict().items()})
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(40):
        loss = loss_fn(model(ember.tensor(x)), y)
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data = p.data - 0.3 * p.grad.data
        losses.append(loss.item())
    # measured: 2.7777 -> 0.0524 on both backends
    assert losses[0] == pytest.approx(2.777677, abs=1e-5)
    assert losses[-1] == pytest.approx(0.052379, abs=1e-4)
