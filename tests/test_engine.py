"""The backward engine: accumulation, shared nodes, retain_graph, grad modes, deep graphs,
broadcasting, custom Functions, graph freeing and gradcheck itself."""

from __future__ import annotations

import gc
import re
import weakref

import numpy as np
import pytest

import ember

# -- custom Functions used below ---------------------------------------------------------------


class Cube(ember.Function):
    """The README's example: x**3 with a hand-written backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 3 * x * x * grad


class ScaleShift(ember.Function):
    """``x * scale + shift`` where scale is a tensor and shift a Python number (a constant)."""

    @staticmethod
    def forward(ctx, x, scale, shift):
        ctx.save_for_backward(x, scale)
        return x * scale + shift

    @staticmethod
    def backward(ctx, grad):
        x, scale = ctx.saved_tensors
        return grad * scale, grad * x, None


class PowAttr(ember.Function):
    """``x ** p`` with ``p`` given as a keyword attribute to ``apply``."""

    @staticmethod
    def forward(ctx, x, p=2):
        ctx.save_for_backward(x)
        ctx.p = p
        return x**p

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return ctx.p * x ** (ctx.p - 1) * grad


class StopSecond(ember.Function):
    """``a * b`` whose backward deliberately gives no gradient to ``b``."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        (b,) = ctx.saved_tensors
        return grad * b, None


class WrongSquare(ember.Function):
    """x**2 with a backward that is off by a factor of 2 (4x instead of 2x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 4 * x * grad


class SaveScratch(ember.Function):
    """Saves an array made in forward (only ctx holds it), so that its release is observable."""

    last_saved: weakref.ref | None = None

    @staticmethod
    def forward(ctx, x):
        scratch = x * 2
        SaveScratch.last_saved = weakref.ref(scratch)
        ctx.save_for_backward(scratch)
        return x * 3

    @staticmethod
    def backward(ctx, grad):
        (scratch,) = ctx.saved_tensors
        return grad * 3 + scratch * 0


def _f32(values):
    return np.asarray(values, dtype=np.float32)


# -- accumulation --------------------------------------------------------------------------------


def test_grad_accumulates_across_backward_calls_until_reset(backend):
    x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([2.0, 4.0, 6.0]))
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([4.0, 8.0, 12.0]))
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([7.0, 11.0, 15.0]))
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([2.0, 4.0, 6.0]))


def test_leaf_grad_is_a_plain_tensor_of_the_leaf_shape_and_dtype(backend):
    x = ember.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)  # float64
    w = ember.ones(2, 3, requires_grad=True)  # float32
    (x.astype(ember.float32) * w).sum().backward()
    assert isinstance(x.grad, ember.Tensor)
    assert x.grad.shape == (2, 3) and x.grad.dtype == np.float64
    assert w.grad.shape == (2, 3) and w.grad.dtype == np.float32
    assert not x.grad.requires_grad and x.grad.grad_fn is None
    np.testing.assert_array_equal(w.grad.numpy(), np.arange(6.0).reshape(2, 3))


def test_only_leaves_that_require_grad_receive_grad(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    c = ember.tensor([5.0, 7.0])
    h = x * c
    (h * h).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([50.0, 196.0]))  # 2 c^2 x
    assert c.grad is None
    assert h.grad is None  # intermediate results keep no .grad
    assert not h.is_leaf and x.is_leaf


# -- shared nodes (diamonds) ---------------------------------------------------------------------


def test_diamond_graph_matches_hand_derived_derivative(backend):
    xs = [1.0, 2.0, -3.0, 0.5]
    x = ember.tensor(xs, requires_grad=True)
    y = x * x + x * 3
    z = y * y + y
    z.sum().backward()
    xn = _f32(xs)
    yn = xn * xn + 3 * xn
    expected = (2 * yn + 1) * (2 * xn + 3)  # dz/dy * dy/dx: [45, 147, -3, 18], exact
    np.testing.assert_array_equal(expected, _f32([45.0, 147.0, -3.0, 18.0]))
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    np.testing.assert_array_equal(z.numpy(), yn * yn + yn)


def test_same_tensor_as_both_inputs_of_one_op(backend):
    x = ember.tensor([1.5, -2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([3.0, -4.0, 6.0]))

    a = ember.tensor([[1.0, 2.0]], requires_grad=True)
    (a + a).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), _f32([[2.0, 2.0]]))

    b = ember.tensor([2.0, 4.0], requires_grad=True)
    (b / b).sum().backward()  # d(b/b)/db = 1/b - b/b^2 = 0
    np.testing.assert_array_equal(b.grad.numpy(), _f32([0.0, 0.0]))


def test_one_value_used_many_times(backend):
    x = ember.tensor([1.0, -1.0, 2.0], requires_grad=True)
    total = x
    for k in range(2, 11):
        total = total + x * float(k)
    total.sum().backward()  # 1 + 2 + ... + 10
    np.testing.assert_array_equal(x.grad.numpy(), _f32([55.0, 55.0, 55.0]))


# -- retain_graph and errors of backward ---------------------------------------------------------


def test_retain_graph_allows_a_second_backward(backend):
    x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x * x).sum()
    y.backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), _f32([3.0, 12.0, 27.0]))
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([6.0, 24.0, 54.0]))


def test_second_backward_without_retain_graph_raises(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([2.0, 4.0]))  # unchanged by the failure


def test_backward_through_a_freed_shared_subgraph_raises(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    h.sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        (h * 2).sum().backward()


def test_backward_on_non_scalar_without_grad_names_the_shape(backend):
    x = ember.ones(2, 3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=re.escape("(2, 3)")) as info:
        y.backward()
    assert "grad=" in str(info.value)


def test_backward_on_single_element_non_scalar_is_implicit_one(backend):
    x = ember.tensor([[3.0]], requires_grad=True)
    (x * x).backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([[6.0]]))


def test_backward_with_grad_is_a_vector_jacobian_product(backend, rng):
    xn = rng.standard_normal((2, 3)).astype(np.float32)
    wn = rng.standard_normal((2, 3)).astype(np.float32)
    gn = rng.standard_normal((2, 3)).astype(np.float32)
    x = ember.tensor(xn, requires_grad=True)
    w = ember.tensor(wn, requires_grad=True)
    y = x * x * w
    y.backward(ember.tensor(gn))
    np.testing.assert_allclose(x.grad.numpy(), 2 * xn * wn * gn, rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), xn * xn * gn, rtol=1e-6)


def test_backward_grad_may_be_a_numpy_array(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(grad=np.array([1.0, -2.0], dtype=np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), _f32([3.0, -6.0]))


def test_backward_with_grad_of_wrong_shape_raises_value_error(backend):
    x = ember.ones(2, 3, requires_grad=True)
    y = x * 2
    with pytest.raises(ValueError, match=re.escape("(3, 2)")) as info:
        y.backward(ember.ones(3, 2))
    assert "(2, 3)" in str(info.value)


def test_backward_on_tensor_without_grad_raises(backend):
    x = ember.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2).sum().backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.sum().backward()


# -- grad modes ----------------------------------------------------------------------------------


def test_no_grad_context_manager_records_nothing(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    with ember.no_grad():
        assert not ember.is_grad_enabled()
        y = x * 2 + 1
    assert ember.is_grad_enabled()
    assert y.requires_grad is False and y.grad_fn is None and y.is_leaf
    np.testing.assert_array_equal(y.numpy(), _f32([3.0, 5.0]))
    z = x * 2
    assert z.requires_grad is True and z.grad_fn is not None


def test_no_grad_decorator_records_nothing(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)

    @ember.no_grad()
    def double(t):
        """Doc."""
        return t * 2

    y = double(x)
    assert y.requires_grad is False and y.grad_fn is None
    assert ember.is_grad_enabled()
    assert double.__name__ == "double" and double.__doc__ == "Doc."
    assert (x * 2).requires_grad


def test_no_grad_as_bare_decorator_like_pytorch(backend):
    # torch.no_grad can decorate without parentheses; a PyTorch user will write this.
    x = ember.tensor([1.0, 2.0], requires_grad=True)

    @ember.no_grad
    def double(t):
        return t * 2

    y = double(x)
    assert y.requires_grad is False and y.grad_fn is None
    assert ember.is_grad_enabled()


def test_enable_grad_inside_no_grad_records_again(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    with ember.no_grad():
        with ember.enable_grad():
            assert ember.is_grad_enabled()
            y = x * x
        assert not ember.is_grad_enabled()
        z = x * x
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad and z.grad_fn is None
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([2.0, 4.0]))


def test_enable_grad_decorator_inside_no_grad(backend):
    x = ember.tensor([3.0], requires_grad=True)

    @ember.enable_grad()
    def square(t):
        return t * t

    with ember.no_grad():
        y = square(x)
        assert not ember.is_grad_enabled()
    assert y.requires_grad and y.grad_fn is not None


def test_set_grad_enabled_context_manager(backend):
    x = ember.tensor([1.0], requires_grad=True)
    with ember.set_grad_enabled(False):
        assert not ember.is_grad_enabled()
        y = x * 2
        with ember.set_grad_enabled(True):
            assert ember.is_grad_enabled()
            z = x * 2
        assert not ember.is_grad_enabled()
    assert ember.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None


def test_set_grad_enabled_as_a_plain_call_like_pytorch(backend):
    # torch.set_grad_enabled(False) switches the mode when called, not only under `with`.
    try:
        ember.set_grad_enabled(False)
        assert not ember.is_grad_enabled()
        y = ember.tensor([1.0], requires_grad=True) * 2
        assert not y.requires_grad
    finally:
        ember.set_grad_enabled(True)
    assert ember.is_grad_enabled()


def test_nested_grad_modes_restore_previous_state(backend):
    states = [ember.is_grad_enabled()]
    with ember.no_grad():
        states.append(ember.is_grad_enabled())
        with ember.no_grad():
            states.append(ember.is_grad_enabled())
            with ember.enable_grad():
                states.append(ember.is_grad_enabled())
                with ember.set_grad_enabled(False):
                    states.append(ember.is_grad_enabled())
                states.append(ember.is_grad_enabled())
            states.append(ember.is_grad_enabled())
        states.append(ember.is_grad_enabled())
    states.append(ember.is_grad_enabled())
    assert states == [True, False, False, True, False, True, False, False, True]


def test_grad_mode_is_restored_after_an_exception(backend):
    with pytest.raises(KeyError):
        with ember.no_grad():
            raise KeyError("boom")
    assert ember.is_grad_enabled()

    @ember.no_grad()
    def fail():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        fail()
    assert ember.is_grad_enabled()


def test_one_no_grad_object_can_be_reused_and_nested(backend):
    ng = ember.no_grad()
    with ng:
        with ng:
            assert not ember.is_grad_enabled()
        assert not ember.is_grad_enabled()
    assert ember.is_grad_enabled()


# -- deep graphs ---------------------------------------------------------------------------------


def test_chain_of_100k_adds_has_no_recursion_limit():
    ember.set_backend("numpy")  # the autouse fixture restores the previous backend
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + x
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([100_001.0, 100_001.0]))
    np.testing.assert_array_equal(y.numpy(), _f32([100_001.0, 200_002.0]))


def test_chain_of_100k_multiplications_is_exact():
    ember.set_backend("numpy")
    x = ember.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0001
    y.sum().backward()
    expected = np.float32(1.0)
    factor = np.float32(1.0001)
    for _ in range(100_000):
        expected = expected * factor
    assert x.grad.numpy()[0] == expected
    exact = float(np.float32(1.0001)) ** 100_000  # float32(1.0001) = 1.0001000166...
    assert abs(float(expected) - exact) < 1e-3 * exact


def test_chain_of_300_ops_on_both_backends(backend):
    x = ember.tensor([0.5, -1.0], requires_grad=True)
    y = x
    for _ in range(300):
        y = y + x
    y = y * 2.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([602.0, 602.0]))
    np.testing.assert_array_equal(y.numpy(), _f32([301.0, -602.0]))


# -- broadcasting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((), (2, 3)), ((2, 1, 4), (3, 1)), ((1,), (5,))],
)
def test_broadcast_gradients_are_summed_to_the_input_shape(backend, rng, shape_a, shape_b):
    an = rng.standard_normal(shape_a)
    bn = rng.standard_normal(shape_b)
    out_shape = np.broadcast_shapes(shape_a, shape_b)
    gn = rng.standard_normal(out_shape)

    def reduce_to(g, shape):
        lead = g.ndim - len(shape)
        g = g.sum(axis=tuple(range(lead)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
        return g.sum(axis=axes, keepdims=True).reshape(shape)

    a = ember.tensor(an, requires_grad=True)
    b = ember.tensor(bn, requires_grad=True)
    (a + b).backward(ember.tensor(gn))
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    np.testing.assert_allclose(a.grad.numpy(), reduce_to(gn, shape_a), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), reduce_to(gn, shape_b), rtol=1e-12, atol=1e-12)

    a.grad = b.grad = None
    (a * b).backward(ember.tensor(gn))
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    np.testing.assert_allclose(a.grad.numpy(), reduce_to(gn * bn, shape_a), rtol=1e-10)
    np.testing.assert_allclose(b.grad.numpy(), reduce_to(gn * an, shape_b), rtol=1e-10)


def test_broadcast_sum_of_ones_counts_uses(backend):
    a = ember.zeros(3, 1, requires_grad=True)
    b = ember.zeros(1, 4, requires_grad=True)
    (a + b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full((3, 1), 4.0, np.float32))
    np.testing.assert_array_equal(b.grad.numpy(), np.full((1, 4), 3.0, np.float32))
    s = ember.tensor(2.0, requires_grad=True)
    (s * ember.ones(2, 3)).sum().backward()
    assert s.grad.shape == ()
    assert s.grad.item() == 6.0


# -- custom Functions -----------------------------------------------------------------------------


def test_custom_function_readme_cube(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = Cube.apply(x)
    assert type(y.grad_fn) is Cube
    assert repr(y) == "tensor([1., 8.], grad_fn=<CubeBackward>)"
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([3.0, 12.0]))
    x64 = ember.tensor([0.3, -1.2, 2.0], dtype=ember.float64, requires_grad=True)
    assert ember.gradcheck(Cube.apply, x64) is True


def test_custom_function_with_a_constant_argument(backend, rng):
    xn, sn = rng.standard_normal(3), rng.standard_normal(3)
    x = ember.tensor(xn, requires_grad=True)
    s = ember.tensor(sn, requires_grad=True)
    y = ScaleShift.apply(x, s, 2.5)
    np.testing.assert_allclose(y.numpy(), xn * sn + 2.5, rtol=1e-12)
    assert y.grad_fn.needs_input_grad == (True, True, False)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), sn, rtol=1e-12)
    np.testing.assert_allclose(s.grad.numpy(), xn, rtol=1e-12)
    assert ember.gradcheck(lambda a, b: ScaleShift.apply(a, b, -4.0), x, s) is True


def test_custom_function_with_a_keyword_attribute(backend):
    x = ember.tensor([1.0, 2.0, -3.0], requires_grad=True)
    y = PowAttr.apply(x, p=3)
    np.testing.assert_array_equal(y.numpy(), _f32([1.0, 8.0, -27.0]))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), _f32([3.0, 12.0, 27.0]))
    x64 = ember.tensor([0.5, 1.5], dtype=ember.float64, requires_grad=True)
    assert ember.gradcheck(lambda t: PowAttr.apply(t, p=4), x64) is True


def test_custom_function_backward_returning_none_for_an_input(backend):
    a = ember.tensor([1.0, 2.0], requires_grad=True)
    b = ember.tensor([3.0, 5.0], requires_grad=True)
    y = StopSecond.apply(a, b)
    y.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), _f32([3.0, 5.0]))
    assert b.grad is None
    # b still gets its gradient through other paths
    z = StopSecond.apply(a, b) + b * 2
    z.sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), _f32([2.0, 2.0]))


def test_custom_function_without_grad_is_not_recorded(backend):
    x = ember.tensor([2.0])
    y = Cube.apply(x)
    assert not y.requires_grad and y.grad_fn is None
    with ember.no_grad():
        z = Cube.apply(ember.tensor([2.0], requires_grad=True))
    assert not z.requires_grad and z.grad_fn is None
    assert z.item() == 8.0


# -- determinism -----------------------------------------------------------------------------------


def test_same_computation_twice_gives_bit_identical_grads(backend):
    def run():
        ember.manual_seed(7)
        x = ember.randn(8, 5, requires_grad=True)
        w = ember.randn(5, 3, requires_grad=True)
        h = (x @ w).tanh()
        loss = (h.log_softmax(axis=1) * h).sum() + (w * w).mean()
        loss.backward()
        return x.grad.numpy(), w.grad.numpy(), loss.numpy()

    first, second = run(), run()
    for a, b in zip(first, second, strict=True):
        assert a.dtype == b.dtype == np.float32
        assert a.tobytes() == b.tobytes()


# -- graph freeing ---------------------------------------------------------------------------------


def test_backward_releases_saved_arrays(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = SaveScratch.apply(x)
    saved = SaveScratch.last_saved
    gc.collect()
    assert saved() is not None  # held by the graph until backward
    y.sum().backward()
    gc.collect()
    assert saved() is None
    np.testing.assert_array_equal(x.grad.numpy(), _f32([3.0, 3.0]))


def test_retain_graph_keeps_saved_arrays(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = SaveScratch.apply(x)
    saved = SaveScratch.last_saved
    y.sum().backward(retain_graph=True)
    gc.collect()
    assert saved() is not None
    y.sum().backward()
    gc.collect()
    assert saved() is None


def test_backward_releases_intermediate_tensors(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    ref = weakref.ref(h)
    y = (h * h).sum()
    del h
    gc.collect()
    assert ref() is not None  # the graph holds it
    y.backward()
    gc.collect()
    assert ref() is None
    assert y.grad_fn is not None  # the output keeps its (emptied) node
    np.testing.assert_array_equal(x.grad.numpy(), _f32([8.0, 16.0]))


# -- gradcheck itself ------------------------------------------------------------------------------


def test_gradcheck_true_for_a_correct_op(backend):
    x = ember.tensor([[0.5, -1.0], [2.0, 0.1]], requires_grad=True)
    w = ember.tensor([[1.0, 0.3, -0.7], [0.2, -2.0, 0.4]], requires_grad=True)
    assert ember.gradcheck(lambda a, b: (a @ b).tanh(), x, w) is True
    assert ember.gradcheck(lambda a: (a * a).sum(), x) is True


def test_gradcheck_reports_the_worst_element_of_a_wrong_backward(backend):
    xs = np.array([[0.5, -1.0, 0.25], [2.0, 1.5, -0.75]])
    const = ember.tensor([1.0, 2.0])  # input 0 does not require grad
    x = ember.tensor(xs, requires_grad=True)
    with pytest.raises(ember.GradcheckError) as info:
        ember.gradcheck(lambda c, t: WrongSquare.apply(t), const, x)
    msg = str(info.value)
    # the upstream gradient is drawn from `seed` (0): analytic 4*x*u, numeric 2*x*u
    upstream = np.random.default_rng(0).standard_normal(xs.shape)
    analytic, numeric = 4 * xs * upstream, 2 * xs * upstream
    err = np.abs(analytic - numeric) - (1e-5 + 1e-3 * np.abs(numeric))
    worst = np.unravel_index(int(np.argmax(err)), xs.shape)
    assert "input 1" in msg
    assert "(shape (2, 3))" in msg
    assert f"worst element {tuple(int(i) for i in worst)}" in msg
    found = re.search(r"analytic gradient (\S+) but numeric (\S+?) ", msg)
    assert found, msg
    got_analytic, got_numeric = float(found.group(1)), float(found.group(2))
    assert got_analytic == pytest.approx(analytic[worst], rel=1e-5)
    assert got_numeric == pytest.approx(numeric[worst], rel=1e-5)
    assert f"{analytic[worst]:.6g}" in msg


def test_gradcheck_error_is_an_assertion_error(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(AssertionError, match="input 0"):
        ember.gradcheck(WrongSquare.apply, x)


def test_gradcheck_needs_an_input_that_requires_grad(backend):
    x = ember.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="requires_grad"):
        ember.gradcheck(lambda t: t * 2, x)
    with pytest.raises(ValueError, match="requires_grad"):
        ember.gradcheck(lambda a: a * 2, 3.0)


def test_gradcheck_runs_in_float64(backend):
    seen = []

    def fn(t):
        seen.append(t.dtype)
        return t.sin()

    x = ember.tensor([0.1, 0.2], requires_grad=True)  # float32 input
    assert ember.gradcheck(fn, x) is True
    assert seen and set(seen) == {np.dtype("float64")}
    assert x.grad is None  # gradcheck works on copies
