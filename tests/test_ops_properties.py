"""Numerical stability at extreme inputs, and hypothesis properties of the broadcasting ops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import ember


def value_and_grad(fn, x, dtype="float32"):
    t = ember.tensor(np.asarray(x, dtype=dtype), requires_grad=True)
    out = fn(t)
    out.sum().backward()
    return out.numpy(), t.grad.numpy()


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_softmax_family_is_finite_for_huge_logits(name, backend):
    logits = [[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]]
    out, grad = value_and_grad(lambda t: getattr(t, name)(axis=-1), logits)
    assert np.isfinite(out).all() and np.isfinite(grad).all()
    if name == "softmax":
        np.testing.assert_allclose(out, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-7)
    if name == "log_softmax":
        np.testing.assert_allclose(out[0], [0, -2e4, -1e4], rtol=1e-7)
        np.testing.assert_allclose(grad[0], [1 - 3, 1, 1], atol=1e-6)  # 1 - n * softmax
    if name == "logsumexp":
        np.testing.assert_allclose(out, [1e4, -1e4 + np.log(3)], rtol=1e-7)
        np.testing.assert_allclose(grad, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-7)


def test_log_softmax_is_exact_at_88_72_in_float32(backend):
    # exp(88.72) overflows float32 (max ~3.4e38 = e^88.72...): the max-shift must avoid it
    x = np.array([88.72, 0.0, -5.0], dtype=np.float32)
    out, grad = value_and_grad(lambda t: t.log_softmax(), x)
    x64 = x.astype(np.float64)
    expected = x64 - (x64.max() + np.log(np.exp(x64 - x64.max()).sum()))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad, 1 - 3 * np.exp(expected), atol=1e-6)


def test_sigmoid_and_softplus_are_finite_at_1e3(backend):
    out, grad = value_and_grad(lambda t: t.sigmoid(), [-1e3, 0.0, 1e3])
    np.testing.assert_array_equal(out, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(grad, [0.0, 0.25, 0.0])
    out, grad = value_and_grad(lambda t: t.softplus(), [-1e3, 0.0, 1e3])
    np.testing.assert_allclose(out, [0.0, np.log(2), 1e3], rtol=1e-7)
    np.testing.assert_array_equal(grad, [0.0, 0.5, 1.0])
    out, grad = value_and_grad(lambda t: t.tanh(), [-1e3, 1e3])
    np.testing.assert_array_equal(out, [-1.0, 1.0])
    np.testing.assert_array_equal(grad, [0.0, 0.0])


def test_sigmoid_keeps_relative_precision_for_negative_inputs(backend):
    out, _ = value_and_grad(lambda t: t.sigmoid(), [-30.0, -80.0])
    np.testing.assert_allclose(out, 1 / (1 + np.exp([30.0, 80.0])), rtol=1e-6)


def test_logsumexp_of_all_minus_infinity_is_minus_infinity(backend):
    with np.errstate(divide="ignore"):
        out = ember.tensor([-np.inf, -np.inf]).logsumexp()
    assert out.item() == -np.inf


def test_ties_share_the_gradient(backend):
    a = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = ember.tensor([1.0, 5.0, 0.0], requires_grad=True)
    ember.maximum(a, b).sum().backward()
    assert a.grad.tolist() == [0.5, 0.0, 1.0]
    assert b.grad.tolist() == [0.5, 1.0, 0.0]
    x = ember.tensor([[4.0, 1.0, 4.0], [0.0, 2.0, 1.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    assert x.grad.tolist() == [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]]


def test_gradient_of_relu_abs_clip_at_their_kinks(backend):
    x = ember.tensor([0.0, 0.0, 0.0], requires_grad=True)
    (x.relu() + abs(x) + x.clip(0.0, 1.0)).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]  # relu'(0)=0, abs'(0)=0, clip passes at a bound


BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, None),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, None),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, None),
    "div": (lambda a, b: a / b, lambda a, b: a / b, "positive"),
    "pow": (lambda a, b: a**b, lambda a, b: a**b, "positive"),
    "maximum": (ember.maximum, np.maximum, None),
    "minimum": (ember.minimum, np.minimum, None),
}


def _check_binary(name, shapes, seed):
    fn, ref, domain = BINARY[name]
    rng = np.random.default_rng(seed)
    draw = (lambda s: rng.uniform(0.5, 2.0, s)) if domain else rng.standard_normal
    a, b = draw(shapes.input_shapes[0]), draw(shapes.input_shapes[1])
    ta, tb = ember.tensor(a, requires_grad=True), ember.tensor(b, requires_grad=True)
    out = fn(ta, tb)
    np.testing.assert_allclose(out.numpy(), ref(a, b), rtol=1e-12)
    assert out.shape == shapes.result_shape
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape
    # the reduced gradient equals the broadcast gradient summed over the broadcast axes
    eps = 1e-6
    for t, x in ((ta, a), (tb, b)):
        if x.size:
            k = int(rng.integers(x.size))
            bump = np.zeros_like(x)
            bump.reshape(-1)[k] = eps
            plus = ref(a + bump, b) if x is a else ref(a, b + bump)
            minus = ref(a - bump, b) if x is a else ref(a, b - bump)
            numeric = np.sum((plus - minus) * upstream) / (2 * eps)
            np.testing.assert_allclose(t.grad.numpy().reshape(-1)[k], numeric, rtol=1e-4,
                                       atol=1e-6)


shapes_strategy = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(BINARY)), shapes=shapes_strategy, seed=st.integers(0, 2**16))
def test_binary_ops_broadcast_gradients_numpy(name, shapes, seed):
    ember.set_backend("numpy")
    _check_binary(name, shapes, seed)


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(sorted(BINARY)), shapes=shapes_strategy, seed=st.integers(0, 2**16))
def test_binary_ops_broadcast_gradients_jax(name, shapes, seed):
    ember.set_backend("jax")
    try:
        _check_binary(name, shapes, seed)
    finally:
        ember.set_backend("numpy")
