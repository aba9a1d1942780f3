"""Convolution and pooling options (issue 12): groups, conv1d, pool dilation / ceil_mode /
per-side padding / count_include_pad, adaptive pools, BCE pos_weight; hypothesis cases against
jax.lax on both backends, the layers, their configs and errors."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax import lax

import ember
from ember import nn
from ember.testing.table import _adaptive_ref, _pool_ref_full

jax.config.update("jax_enable_x64", True)
SETTINGS = settings(max_examples=4, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check_against(out, tensors, oracle, arrays, rng):
    """``out`` (from ``tensors``) equals ``oracle(*arrays)``, and so do the gradients of a random
    upstream gradient (jax.vjp)."""
    expected, vjp = jax.vjp(oracle, *map(jnp.asarray, arrays))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), np.asarray(expected), rtol=1e-10, atol=1e-11)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    for t, e in zip(tensors, vjp(jnp.asarray(upstream))):
        got = np.zeros(t.shape) if t.grad is None else t.grad.numpy()  # an unused bias
        np.testing.assert_allclose(got, np.asarray(e), rtol=1e-9, atol=1e-10)


@st.composite
def conv_cases(draw, ndim):
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim))
    size = tuple(max(d * (k - 1) + 1 - lo - hi, 1) + draw(st.integers(0, 4))
                 for k, d, (lo, hi) in zip(kernel, dil, pads))
    return (draw(st.integers(1, 2)), c_in, *size), (c_out, c_in // groups, *kernel), stride, \
        pads, dil, groups, draw(st.booleans()), draw(st.integers(0, 2**31))


@SETTINGS
@given(case=conv_cases(2))
def test_conv2d_property_against_lax(case, backend):
    xs, ws, stride, pads, dil, groups, bias, seed = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    tensors = [ember.tensor(a, requires_grad=True) for a in (x, w, b)]
    out = ember.conv2d(tensors[0], tensors[1], tensors[2] if bias else None, stride, pads, dil,
                       groups)

    def oracle(x, w, b):
        y = lax.conv_general_dilated(x, w, stride, pads, rhs_dilation=dil,
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                     feature_group_count=groups)
        return y + b[None, :, None, None] * bias

    _check_against(out, tensors, oracle, (x, w, b), rng)


@SETTINGS
@given(case=conv_cases(1))
def test_conv1d_property_against_lax(case, backend):
    xs, ws, (stride,), (pads,), (dil,), groups, bias, seed = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    tensors = [ember.tensor(a, requires_grad=True) for a in (x, w, b)]
    out = ember.conv1d(tensors[0], tensors[1], tensors[2] if bias else None, stride, pads, dil,
                       groups)

    def oracle(x, w, b):
        y = lax.conv_general_dilated(x, w, (stride,), (pads,), rhs_dilation=(dil,),
                                     dimension_numbers=("NCH", "OIH", "NCH"),
                                     feature_group_count=groups)
        return y + b[None, :, None] * bias

    _check_against(out, tensors, oracle, (x, w, b), rng)


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
    pads = tuple((draw(st.integers(0, r // 2)), draw(st.integers(0, r // 2))) for r in reach)
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    size = tuple(max(r - lo - hi, 1) + draw(st.integers(0, 5)) for r, (lo, hi) in zip(reach, pads))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size), kernel, stride, pads, dil, \
        draw(st.booleans()), draw(st.booleans()), draw(st.integers(0, 2**31))


def _pool_out(size, kernel, stride, pads, dil, ceil):
    out = []
    for n, k, s, (lo, hi), d in zip(size, kernel, stride, pads, dil):
        span = n + lo + hi - d * (k - 1) - 1
        o = (-(-span // s) if ceil else span // s) + 1
        out.append(o - 1 if ceil and (o - 1) * s >= n + lo else o)
    return tuple(out)


@SETTINGS
@given(case=pool_cases())
def test_pools_property_against_a_reference(case, backend):
    xs, kernel, stride, pads, dil, ceil, include, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs)
    out_hw = _pool_out(xs[2:], kernel, stride, pads, dil, ceil)
    tx = ember.tensor(x, requires_grad=True)
    out = ember.max_pool2d(tx, kernel, stride, pads, dil, ceil_mode=ceil)
    _check_against(out, [tx], lambda a: _pool_ref_full(jnp, a, kernel, stride, pads, dil, out_hw,
                                                       "max"), (x,), rng)
    tx = ember.tensor(x, requires_grad=True)
    out = ember.avg_pool2d(tx, kernel, stride, pads, ceil_mode=ceil, count_include_pad=include,
                           dilation=dil)
    _check_against(out, [tx], lambda a: _pool_ref_full(jnp, a, kernel, stride, pads, dil, out_hw,
                                                       "avg", include), (x,), rng)


@SETTINGS
@given(h=st.integers(1, 9), w=st.integers(1, 9), oh=st.integers(1, 5), ow=st.integers(1, 5),
       seed=st.integers(0, 2**31))
def test_adaptive_pools_property_against_a_reference(h, w, oh, ow, seed, backend):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, h, w))
    for kind, op in (("avg", ember.adaptive_avg_pool2d), ("max", ember.adaptive_max_pool2d)):
        tx = ember.tensor(x, requires_grad=True)
        _check_against(op(tx, (oh, ow)), [tx], lambda a, k=kind: _adaptive_ref(jnp, a, (oh, ow), k),
                       (x,), rng)


def test_pool_options_exact_values():
    x = ember.arange(25.0).reshape(1, 1, 5, 5)
    # ceil_mode keeps a last partial window; PyTorch's values
    assert ember.max_pool2d(x, 2, ceil_mode=True)[0, 0].tolist() == [
        [6.0, 8.0, 9.0], [16.0, 18.0, 19.0], [21.0, 23.0, 24.0]]
    assert ember.avg_pool2d(x, 2, ceil_mode=True)[0, 0].tolist() == [
        [3.0, 5.0, 6.5], [13.0, 15.0, 16.5], [20.5, 22.5, 24.0]]
    # the last window would start in the right padding: dropped
    assert ember.max_pool2d(ember.zeros(1, 1, 4, 4), 2, stride=2, padding=1,
                            ceil_mode=True).shape == (1, 1, 3, 3)
    ones = ember.tensor(np.ones((1, 1, 3, 3)))  # float64: exact ninths
    assert ember.avg_pool2d(ones, 3, stride=1, padding=1)[0, 0, 0].tolist() == [
        4 / 9, 6 / 9, 4 / 9]
    assert ember.avg_pool2d(ones, 3, stride=1, padding=1,
                            count_include_pad=False)[0, 0].tolist() == [[1.0] * 3] * 3
    # dilation 2: the taps 0, 2, 4
    assert ember.max_pool2d(x, (1, 3), stride=1, dilation=2)[0, 0, 0].tolist() == [4.0]
    assert ember.avg_pool2d(x, (1, 3), stride=1, dilation=(1, 2))[0, 0, 0].tolist() == [2.0]


def test_max_pool_dilated_gradient_goes_to_the_first_maximum(backend):
    x = ember.tensor([[[[1.0, 9.0, 1.0, 9.0, 1.0]]]], requires_grad=True)
    ember.max_pool2d(x, (1, 3), stride=1, dilation=(1, 2)).sum().backward()  # taps 0, 2, 4: ties
    assert x.grad.numpy()[0, 0, 0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_depthwise_conv_keeps_channels_apart(backend):
    x = ember.tensor(np.stack([np.ones((4, 4)), 2 * np.ones((4, 4))])[None])
    out = ember.conv2d(x, ember.ones(2, 1, 3, 3), groups=2)
    assert out[0, :, 0, 0].tolist() == [9.0, 18.0]


def test_bce_pos_weight_matches_the_formula(backend, rng):
    x, t = rng.standard_normal((4, 3)) * 4, (rng.random((4, 3)) > 0.5).astype(float)
    pw = np.array([3.0, 0.5, 1.0])
    loss = nn.BinaryCrossentropy(from_logits=True, pos_weight=pw, reduction="none")
    tx = ember.tensor(x, requires_grad=True)
    out = loss(tx, t)
    sig = 1 / (1 + np.exp(-x))
    expected = -(pw * t * np.log(sig) + (1 - t) * np.log(1 - sig))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-9)  # the naive formula rounds
    out.sum().backward()
    np.testing.assert_allclose(tx.grad.numpy(), (1 - t) * sig - pw * t * (1 - sig), rtol=1e-10)
    assert ember.gradcheck(lambda a, b, c: ember.binary_cross_entropy_with_logits(a, b, c),
                           ember.tensor(x, requires_grad=True),
                           ember.tensor(t * 0.6 + 0.2, requires_grad=True),
                           ember.tensor(pw, requires_grad=True))
    assert np.isfinite(nn.BinaryCrossentropy(from_logits=True, pos_weight=2.0)(
        ember.tensor([1e4, -1e4]), [0.0, 1.0]).item())


def test_layers_and_config_round_trip(backend, rng):
    ember.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=((1, 1), (2, 1)), groups=4), nn.ReLU(),
        nn.MaxPool2d(3, 2, ((1, 0), (1, 1)), dilation=(1, 2), ceil_mode=True),
        nn.AvgPool2d(2, 1, 1, ceil_mode=True, count_include_pad=False),
        nn.AdaptiveAvgPool2d((2, None)), nn.AdaptiveMaxPool2d(2), nn.Flatten(), nn.Linear(32, 3))
    conf = model.config()
    assert conf[0] == {"type": "conv2d", "filters": 8, "kernel_size": 3,
                       "padding": [1, [2, 1]], "groups": 4, "in_channels": 4}
    assert conf[2] == {"type": "maxpool2d", "pool_size": 3, "stride": 2,
                       "padding": [[1, 0], 1], "dilation": [1, 2], "ceil_mode": True}
    assert conf[4:6] == [{"type": "adaptiveavgpool2d", "output_size": [2, None]},
                         {"type": "adaptivemaxpool2d", "output_size": 2}]
    ember.manual_seed(3)
    again = nn.from_config(json.loads(json.dumps(conf)))
    assert again.config() == conf
    x = ember.tensor(rng.standard_normal((2, 4, 11, 10)))
    np.testing.assert_array_equal(again(x).numpy(), model(x).numpy())
    ember.manual_seed(4)
    seq = nn.from_config([{"type": "conv1d", "filters": 6, "kernel_size": 3, "padding": "same",
                           "groups": 2, "activation": "relu"},
                          {"type": "flatten"}, {"type": "dense", "units": 2}], input_shape=(2, 10))
    assert seq(ember.zeros(5, 2, 10)).shape == (5, 2)
    assert nn.from_config(seq.config()).config() == seq.config()
    assert seq[0].weight.shape == (6, 1, 3)


def test_conv1d_layer_against_lax(backend, rng):
    conv = nn.Conv1D(4, 6, 5, stride=2, padding=(2, 1), dilation=2, groups=2, dtype="float64")
    x = rng.standard_normal((3, 4, 17))
    tx = ember.tensor(x, requires_grad=True)
    w, b = conv.weight.numpy(), conv.bias.numpy()
    expected = lax.conv_general_dilated(x, w, (2,), ((2, 1),), rhs_dilation=(2,),
                                        dimension_numbers=("NCH", "OIH", "NCH"),
                                        feature_group_count=2) + b[None, :, None]
    np.testing.assert_allclose(conv(tx).numpy(), np.asarray(expected), rtol=1e-12)
    assert ember.gradcheck(lambda a: conv(a), tx)
    bound = 1 / np.sqrt(2 * 5)  # fan_in = in_channels / groups * kernel_size
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ember.conv2d(ember.zeros(1, 6, 5, 5), ember.zeros(4, 2, 3, 3), groups=2),
     "ember.conv2d: input of shape (1, 6, 5, 5) has 6 channels but weight of shape (4, 2, 3, 3) "
     "expects 4 (weight is (out_channels, in_channels / groups, kH, kW) with groups=2)"),
    (lambda: ember.conv2d(ember.zeros(1, 6, 5, 5), ember.zeros(4, 2, 3, 3), groups=4),
     "ember.conv2d: groups=4 must divide the input's 6 channels and the weight's 4 output "
     "channels"),
    (lambda: ember.conv1d(ember.zeros(3, 5), ember.zeros(4, 3, 3)),
     "ember.conv1d: expected a 3-d input (N, C, L), got shape (3, 5) (add a batch axis with "
     "x.unsqueeze(0))"),
    (lambda: ember.conv1d(ember.zeros(1, 3, 4), ember.zeros(4, 3, 3), dilation=2),
     "ember.conv1d: the kernel 3 with dilation 2 spans 5, more than the padded length 4 of an "
     "input of shape (1, 3, 4)"),
    (lambda: ember.max_pool2d(ember.zeros(1, 1, 9, 9), 3, padding=((0, 2), 0), dilation=1),
     "ember.max_pool2d: padding ((0, 2), 0) is more than half the kernel (3, 3)"),
    (lambda: ember.max_pool2d(ember.zeros(1, 1, 9, 9), 2, padding=2, dilation=2),
     "ember.max_pool2d: padding 2 is more than half the window (3, 3) (kernel (2, 2), dilation "
     "(2, 2))"),
    (lambda: ember.adaptive_avg_pool2d(ember.zeros(1, 1, 4, 4), 0),
     "ember.adaptive_avg_pool2d: output_size must be >= 1, got (0, 0)"),
    (lambda: nn.Sequential(nn.Conv1D(4, 8, 3))(ember.zeros(2, 3, 10)),
     "model.0 (Conv1D 4->8 k3): expected input (N, 4, L), got (2, 3, 10)"),
    (lambda: nn.Conv2D(6, 4, 3, groups=4),
     "Conv2D: groups=4 must divide in_channels=6 and out_channels=4"),
    (lambda: nn.Sequential(nn.AdaptiveAvgPool2D(2))(ember.zeros(2, 3, 10)),
     "model.0 (AdaptiveAvgPool2D 2): expected input (N, C, H, W), got (2, 3, 10)"),
    (lambda: nn.AdaptiveMaxPool2D((2, 0)),
     "AdaptiveMaxPool2D: output_size must be an int >= 1 or a pair of them (None keeps that "
     "axis), got (2, 0)"),
    (lambda: nn.BinaryCrossentropy(pos_weight=2.0),
     "BinaryCrossentropy: pos_weight needs from_logits=True"),
    (lambda: nn.BinaryCrossentropy(from_logits=True, pos_weight=[1.0, 2.0])(
        ember.zeros(4, 3), ember.zeros(4, 3)),
     "BinaryCrossentropy: pos_weight of shape (2,) does not broadcast to the predictions' "
     "shape (4, 3); give one weight per class on the last axis"),
])
def test_option_errors_name_the_op_layer_and_shapes(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)


def test_new_layers_do_not_retrace_under_ember_jit(rng):
    ember.set_backend("jax")
    try:
        ember.manual_seed(0)
        model = nn.Sequential(nn.Conv1D(3, 4, 3, padding=1, groups=1), nn.ReLU())
        model2 = nn.Sequential(nn.Conv2D(4, 4, 3, groups=4, padding=1),
                               nn.MaxPool2D(3, 2, 1, ceil_mode=True),
                               nn.AvgPool2D(2, count_include_pad=False, padding=1),
                               nn.AdaptiveAvgPool2D(3), nn.Flatten(), nn.Linear(36, 2))
        opt = ember.optim.SGD(list(model.parameters()) + list(model2.parameters()), lr=0.1)

        def step(m, m2, o, x, y):
            o.zero_grad()
            h = m(x).reshape(x.shape[0], 4, 4, 4)
            loss = nn.BinaryCrossentropy(from_logits=True, pos_weight=[2.0, 1.0])(m2(h), y)
            loss.backward()
            o.step()
            return loss

        compiled = ember.jit(step)
        x = ember.tensor(rng.standard_normal((5, 3, 16)).astype(np.float32))
        y = ember.tensor((rng.random((5, 2)) > 0.5).astype(np.float32))
        losses = [float(compiled(model, model2, opt, x, y).item()) for _ in range(2)]
        traces = compiled.trace_count  # this step pattern traces twice even for a plain Conv2D
        losses += [float(compiled(model, model2, opt, x, y).item()) for _ in range(3)]
        assert compiled.trace_count == traces and losses[-1] < losses[0]
    finally:
        ember.set_backend("numpy")
