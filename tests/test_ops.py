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


@pytest.mark.parametrize(("row", "case"), GRAD_CASES)
def test_gradients_match_jax_grad(row, case):
    import jax
    import jax.numpy as jnp

    ember.set_backend("jax")
    arrays = inputs_for(row, case, seed=3)
    tensors = [ember.tensor(a, requires_grad=True) for a in arrays]
    out = row.fn(*tensors)
    upstream = np.random.default_rng(4).standard_normal(out.shape)
    out.backward(upstream)

    primal, vjp = jax.vjp(lambda *xs: row.ref(jnp, *xs), *[jnp.asarray(a) for a in arrays])
    np.testing.assert_allclose(out.numpy(), np.asarray(primal), rtol=1e-10, atol=1e-12)
    expected = vjp(jnp.asarray(upstream))
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
