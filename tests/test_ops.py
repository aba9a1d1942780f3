"""The op table (``ember/testing/table.py``): one row per registered op, each checked the same three
ways on both backends.

1. forward against a NumPy reference expression,
2. gradcheck in float64 against central differences (random upstream gradient, not all ones),
3. on the jax backend, gradients against ``jax.vjp`` of the same expression written in jax.numpy.

A meta-test fails when an op registered in ``ember.ops.REGISTRY`` has no row.
"""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.ops import NON_DIFFERENTIABLE, REGISTRY
from ember.testing.table import ROWS, inputs_for  # the table itself (shared with `ember gradcheck`)

CASES = [
    pytest.param(row, case, id=f"{row.name}-{i}-{j}")
    for i, row in enumerate(ROWS)
    for j, case in enumerate(row.cases)
]
GRAD_CASES = [p for p in CASES if p.values[0].grad]


def test_every_registered_op_has_a_row():
    covered = {row.name for row in ROWS}
    missing = sorted(set(REGISTRY) - covered)
    assert not missing, f"ops without a row in the op table: {missing}"
    unknown = sorted(covered - set(REGISTRY))
    assert not unknown, f"rows for ops that are not registered: {unknown}"


def test_rows_without_gradient_are_exactly_the_non_differentiable_ops():
    forward_only = {row.name for row in ROWS if not row.grad}
    assert forward_only == NON_DIFFERENTIABLE


def test_every_op_is_reachable_from_ember():
    for name, fn in REGISTRY.items():
        assert getattr(ember, name) is fn
        assert name in ember.__all__


@pytest.mark.parametrize(("row", "case"), CASES)
def test_forward_matches_numpy(row, case, backend):
    arrays = inputs_for(row, case, seed=0)
    out = row.fn(*[ember.tensor(a) for a in arrays])
    expected = row.ref(np, *arrays)
    assert out.shape == np.shape(expected)
    assert out.dtype == np.asarray(expected).dtype
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("row", "case"), CASES)
def test_float32_stays_float32(row, case, backend):
    arrays = [a.astype(np.float32) for a in inputs_for(row, case, seed=1)]
    out = row.fn(*[ember.tensor(a) for a in arrays])
    expected = np.asarray(row.ref(np, *arrays))
    if expected.dtype.kind == "f" and row.name != "astype":  # astype("float64") means it
        assert out.dtype == np.float32, f"{row.name} turned float32 into {out.dtype}"
    else:
        assert out.dtype == expected.dtype
    np.testing.assert_allclose(out.numpy(), expected, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(("row", "case"), GRAD_CASES)
def test_gradcheck_float64(row, case, backend):
    tensors = [ember.tensor(a, requires_grad=True) for a in inputs_for(row, case, seed=2)]
    assert ember.gradcheck(row.fn, *tensors, atol=row.atol, rtol=row.rtol)


def _reference_vjp(row):
    """``(xs, upstream) -> (ref(*xs), vjp of ref at xs)`` compiled as one XLA program: the oracle
    written in jax.numpy, differentiated by jax; run eagerly, each of its primitives (and each of
    their transposes) would be an XLA compile of its own."""
    import jax
    import jax.numpy as jnp

    def both(xs, upstream):
        primal, vjp = jax.vjp(lambda *a: row.ref(jnp, *a), *xs)
        return primal, vjp(upstream)

    jitted = jax.jit(both)

    def run(xs, upstream):
        try:
            return jitted(xs, upstream)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
            return both(xs, upstream)  # a reference that reads values (dropout's mask) runs eagerly

    return run


@pytest.mark.parametrize(("row", "case"), GRAD_CASES)
def test_gradients_match_jax_grad(row, case):
    import jax.numpy as jnp

    ember.set_backend("jax")
    arrays = inputs_for(row, case, seed=3)
    tensors = [ember.tensor(a, requires_grad=True) for a in arrays]
    out = row.fn(*tensors)
    upstream = np.random.default_rng(4).standard_normal(out.shape)
    out.backward(upstream)

    primal, expected = _reference_vjp(row)(tuple(jnp.asarray(a) for a in arrays),
                                           jnp.asarray(upstream))
    np.testing.assert_allclose(out.numpy(), np.asarray(primal), rtol=1e-10, atol=1e-12)
    for i, (t, e) in enumerate(zip(tensors, expected)):
        assert t.grad is not None, f"{row.name}: input {i} got no gradient"
        assert t.grad.shape == t.shape
        np.testing.assert_allclose(t.grad.numpy(), np.asarray(e), rtol=1e-9, atol=1e-11,
                                   err_msg=f"{row.name}: input {i}")


def test_every_attached_tensor_method_is_declared_for_type_checkers():
    import ast
    import inspect
    import sys

    from ember.ops import METHODS

    tree = ast.parse(inspect.getsource(sys.modules["ember.tensor"]))
    declared = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    missing = sorted(set(METHODS) - declared)
    assert not missing, f"declare these in Tensor's TYPE_CHECKING block (tensor.py): {missing}"


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_with_dim_return_values_and_indices_like_pytorch(op, backend):
    from tests.conftest import to_np

    rng = np.random.default_rng(0)
    data = rng.standard_normal((3, 4, 5))
    data[1, 2, :2] = data[1, 2].max() if op == "max" else data[1, 2].min()  # a tie: first wins
    x = ember.tensor(data, requires_grad=True)
    arg = np.argmax if op == "max" else np.argmin
    for dim in (0, 1, -1):
        values, indices = getattr(x, op)(dim=dim)
        assert values.shape == indices.shape == tuple(np.delete(data.shape, dim % 3))
        np.testing.assert_array_equal(to_np(indices), arg(data, axis=dim))
        np.testing.assert_array_equal(to_np(values), getattr(np, op)(data, axis=dim))
        kept = getattr(ember, op)(x, dim=dim, keepdim=True)
        assert kept.values.shape == kept.indices.shape == tuple(
            1 if i == dim % 3 else n for i, n in enumerate(data.shape))
    # the gradient goes to the returned index only (PyTorch), not shared between ties
    up = rng.standard_normal((3, 4))
    (getattr(x, op)(dim=2).values * ember.tensor(up)).sum().backward()
    want = np.zeros_like(data)
    np.put_along_axis(want, arg(data, axis=2)[..., None], up[..., None], axis=2)
    np.testing.assert_array_equal(to_np(x.grad), want)
    assert want[1, 2, 0] == up[1, 2] and want[1, 2, 1] == 0.0
    # NumPy's axis= (and a positional axis) is unchanged: the values alone
    assert isinstance(getattr(x, op)(axis=1), ember.Tensor)
    assert isinstance(getattr(x, op)(1), ember.Tensor)
    assert ember.gradcheck(lambda t: getattr(t, op)(dim=1).values,
                           ember.tensor(rng.standard_normal((3, 4)), requires_grad=True))
    zero_d = getattr(ember.tensor(2.5), op)(dim=0)
    assert (zero_d.values.item(), zero_d.indices.item()) == (2.5, 0)
    with pytest.raises(TypeError, match=rf"^ember.{op}: dim must be an int \(PyTorch's "
                                        rf"{op}\(x, dim\) returns values and indices\), got "
                                        rf"dim=\(0, 1\); use axis= for a tuple of axes or None$"):
        getattr(x, op)(dim=(0, 1))
    with pytest.raises(ValueError, match=f"{op}: axis 3 is out of range"):
        getattr(x, op)(dim=3)


def test_fused_layer_norm_and_gelu_equal_their_composites(backend):
    """The fused ops against the chains of primitives they replace, forward and gradients."""
    import math

    from ember.ops.elementwise import Erf
    from tests.conftest import to_np

    rng = np.random.default_rng(3)
    data, up = rng.standard_normal((2, 5, 6)) * 3, rng.standard_normal((2, 5, 6))
    w, b = rng.standard_normal(6), rng.standard_normal(6)

    def run(fn):
        x, wt, bt = (ember.tensor(a, requires_grad=True) for a in (data, w, b))
        y = fn(x, wt, bt)
        (y * ember.tensor(up)).sum().backward()
        return [to_np(a) for a in (y, x.grad, wt.grad, bt.grad)]

    def ln_chain(x, wt, bt):
        mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
        return (x - mean) / (var + 1e-5).sqrt() * wt + bt

    def gelu_chain(x, wt, bt):
        return 0.5 * x * (1 + Erf.apply(x * (1 / math.sqrt(2)))) * wt + bt

    def gelu_tanh_chain(x, wt, bt):
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1 + inner.tanh()) * wt + bt

    for fused, chain in [(lambda x, wt, bt: ember.layer_norm(x, 6, wt, bt), ln_chain),
                         (lambda x, wt, bt: x.gelu() * wt + bt, gelu_chain),
                         (lambda x, wt, bt: x.gelu(approximate="tanh") * wt + bt,
                          gelu_tanh_chain)]:
        for got, want in zip(run(fused), run(chain)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"^ember.layer_norm: normalized_shape \(5,\) must be "
                                         r"the last axes of x, got x of shape \(2, 5, 6\)$"):
        ember.layer_norm(ember.tensor(data), 5)
    with pytest.raises(ValueError, match=r"^ember.layer_norm: bias of shape \(5,\) must have "
                                         r"normalized_shape \(6,\)$"):
        ember.layer_norm(ember.tensor(data), 6, None, ember.tensor(np.zeros(5)))
