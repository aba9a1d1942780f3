"""Every NumPy convolution and pooling kernel path forced on and off (``numpy_backend.PATHS``), on
inputs in both memory orders the NumPy backend produces ((N, C, H, W) and the convolution's
(C, N, H, W)): hypothesis cases against jax.lax, float64 gradchecks, ties and NaN windows.
The paths are NumPy kernels; the JAX backend keeps XLA's convolution (measured faster there)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax import lax
from test_conv_options import _check_against  # the lax oracle of the conv option tests

import ember
from ember.backend import numpy_backend
from ember.testing.table import _pool_ref_full

jax.config.update("jax_enable_x64", True)
SETTINGS = settings(max_examples=6, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
DN = ("NCHW", "OIHW", "NCHW")


@pytest.fixture(params=[True, False], ids=["path-on", "path-off"])
def forced(request):
    """Force every NumPy kernel path on (or off) for the test; restore the choice after it."""
    ember.set_backend("numpy")
    before = dict(numpy_backend.PATHS)
    numpy_backend.PATHS.update({k: request.param for k in before})
    try:
        yield request.param
    finally:
        numpy_backend.PATHS.update(before)


def _channels_outer(a: np.ndarray) -> np.ndarray:
    """The same values laid out in memory as (C, N, H, W), as a NumPy convolution's output."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


@st.composite
def conv_cases(draw):
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = draw(st.sampled_from([(1, 1), (1, 1), (2, 1), (2, 2)]))  # the shifted path: 1
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    size = tuple(max(d * (k - 1) + 1 - lo - hi, 1) + draw(st.integers(0, 4))
                 for k, d, (lo, hi) in zip(kernel, dil, pads))
    return ((draw(st.integers(1, 3)), c_in, *size), (c_out, c_in, *kernel), stride, pads, dil,
            draw(st.booleans()), draw(st.integers(0, 2**31)))


@SETTINGS
@given(case=conv_cases())
def test_conv2d_paths_against_lax(case, forced):
    xs, ws, stride, pads, dil, outer, seed = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    tensors = [ember.tensor(_channels_outer(x) if outer else x, requires_grad=True),
               ember.tensor(w, requires_grad=True), ember.tensor(b, requires_grad=True)]
    out = ember.conv2d(*tensors, stride=stride, padding=pads, dilation=dil)

    def oracle(x, w, b):
        y = lax.conv_general_dilated(x, w, stride, pads, rhs_dilation=dil, dimension_numbers=DN)
        return y + b[None, :, None, None]

    _check_against(out, tensors, oracle, (x, w, b), rng)


@pytest.mark.parametrize("outer", [False, True], ids=["NCHW", "CNHW"])
def test_conv2d_shifted_input_gradient_gradcheck_float64(forced, outer, rng):
    x = rng.standard_normal((2, 3, 5, 6))
    x = ember.tensor(_channels_outer(x) if outer else x, requires_grad=True)
    w = ember.tensor(rng.standard_normal((2, 3, 3, 2)), requires_grad=True)
    b = ember.tensor(rng.standard_normal(2), requires_grad=True)
    assert ember.gradcheck(lambda x, w, b: ember.conv2d(x, w, b, padding=((1, 2), (0, 1)),
                                                        dilation=(1, 2)), x, w, b)


def test_the_shifted_path_is_chosen_for_a_padded_3x3_layer(rng, monkeypatch):
    # W2's second layer: the padded grid is 1.31x the output; LeNet-5's 5x5 valid layer: 1.96x
    ember.set_backend("numpy")
    calls = []
    monkeypatch.setattr(numpy_backend, "_input_grad_shifted",
                        lambda *a, f=numpy_backend._input_grad_shifted: calls.append(1) or f(*a))
    for shape, pad in (((2, 4, 14, 14), 1), ((2, 4, 14, 14), 0)):
        x = ember.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
        w = ember.tensor(rng.standard_normal((3, 4, 3 if pad else 5, 3 if pad else 5))
                         .astype(np.float32))
        ember.conv2d(x, w, padding=pad).sum().backward()
        assert x.grad.dtype == np.float32  # no silent float64 on either path
    assert calls == [1]


@st.composite
def pool_cases(draw):
    kernel = draw(st.sampled_from([(2, 2), (2, 2), (1, 4), (3, 2)]))  # 4 taps: the pairs path
    stride = draw(st.sampled_from([kernel, (1, 1), (2, 1)]))
    dil = draw(st.sampled_from([(1, 1), (1, 1), (2, 1)]))
    pads = tuple((p, p) for p in (draw(st.integers(0, k // 2)) for k in kernel))
    size = tuple(d * (k - 1) + 1 + draw(st.integers(0, 4)) for k, d in zip(kernel, dil))
    return ((draw(st.integers(1, 3)), draw(st.integers(1, 3)), *size), kernel, stride, pads, dil,
            draw(st.booleans()), draw(st.booleans()), draw(st.integers(0, 2**31)))


@SETTINGS
@given(case=pool_cases())
def test_max_pool_paths_against_a_reference(case, forced):
    xs, kernel, stride, pads, dil, outer, ties, seed = case
    rng = np.random.default_rng(seed)
    ties = ties and dil == (1, 1)  # lax has no gradient of a dilated max reduce_window
    # small integers as floats: most windows then hold several equal maxima, as after a ReLU;
    # lax's select-and-scatter then gives each window's gradient to its first maximum
    x = rng.integers(0, 3, xs).astype(np.float64) if ties else rng.standard_normal(xs)
    tx = ember.tensor(_channels_outer(x) if outer else x, requires_grad=True)
    out = ember.max_pool2d(tx, kernel, stride, pads, dil)
    hw = out.shape[2:]

    def oracle(a):
        if ties:
            return lax.reduce_window(a, -jnp.inf, lax.max, (1, 1, *kernel), (1, 1, *stride),
                                     ((0, 0), (0, 0), *pads))
        return _pool_ref_full(jnp, a, kernel, stride, pads, dil, hw, "max")

    _check_against(out, [tx], oracle, (x,), rng)


@pytest.mark.parametrize("outer", [False, True], ids=["NCHW", "CNHW"])
def test_max_pool_pairs_gradcheck_and_first_of_ties(forced, outer, rng):
    x = rng.standard_normal((2, 3, 6, 4))
    tx = ember.tensor(_channels_outer(x) if outer else x, requires_grad=True)
    assert ember.gradcheck(lambda a: ember.max_pool2d(a, 2), tx)
    # every order of ties in a 2x2 window: the first maximum in row-major order takes it all
    windows = np.array([[[a, b], [c, d]] for a in range(2) for b in range(2) for c in range(2)
                        for d in range(2)], dtype=np.float64)  # (16, 2, 2)
    y = ember.tensor(windows.reshape(1, 16, 2, 2), requires_grad=True)
    ember.max_pool2d(y, 2).sum().backward()
    first = [int(np.flatnonzero(w.ravel() == w.max())[0]) for w in windows]
    assert [int(np.flatnonzero(g.ravel())[0]) for g in y.grad.numpy()[0]] == first
    assert y.grad.numpy().sum() == 16


def test_max_pool_nan_window_gets_no_gradient_on_every_path(forced):
    x = ember.tensor([[[[1.0, np.nan, 2.0, 3.0], [0.0, 0.0, 4.0, 1.0]]]], requires_grad=True)
    out = ember.max_pool2d(x, 2)
    assert np.isnan(out.numpy()[0, 0, 0, 0]) and out.numpy()[0, 0, 0, 1] == 4.0
    out.sum().backward()
    assert x.grad.numpy()[0, 0].tolist() == [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]


def test_conv_pool_chain_keeps_float32_and_the_channels_outer_order(rng):
    # the convolution's (C, N, H, W) order flows through ReLU and pooling into the next layer
    ember.set_backend("numpy")
    x = ember.tensor(rng.standard_normal((4, 2, 8, 8)).astype(np.float32), requires_grad=True)
    w1 = ember.tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), requires_grad=True)
    w2 = ember.tensor(rng.standard_normal((5, 3, 3, 3)).astype(np.float32), requires_grad=True)
    h = ember.max_pool2d(ember.relu(ember.conv2d(x, w1, padding=1)), 2)
    assert numpy_backend._channels_outer(h.data) and h.dtype == np.float32
    ember.conv2d(h, w2, padding=1).sum().backward()
    assert {x.grad.dtype, w1.grad.dtype, w2.grad.dtype} == {np.dtype(np.float32)}
