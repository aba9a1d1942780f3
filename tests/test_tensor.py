"""Tensor, creation functions, the random stream, backends, error messages, the demo and the
README's figures."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ember

ROOT = Path(__file__).resolve().parent.parent


def _run_python(code: str, **env_changes: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("EMBER_BACKEND", None)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


# -- dtype rules ---------------------------------------------------------------------------------


def test_tensor_dtype_rules(backend):
    assert ember.tensor(1.5).dtype == np.float32
    assert ember.tensor([1.0, 2.0]).dtype == np.float32
    assert ember.tensor([1, 2.5]).dtype == np.float32
    assert ember.tensor([1, 2]).dtype == np.int64
    assert ember.tensor(3).dtype == np.int64
    assert ember.tensor([True, False]).dtype == np.bool_
    assert ember.tensor(np.array([1.0, 2.0])).dtype == np.float64
    assert ember.tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    assert ember.tensor(np.array([1.0], dtype=np.float16)).dtype == np.float16
    assert ember.tensor([1, 2], dtype=ember.float32).dtype == np.float32
    assert ember.tensor(np.array([1.0, 2.0]), dtype="float32").dtype == np.float32
    assert ember.tensor([1.5, 2.5], dtype=ember.float64).dtype == np.float64
    assert ember.tensor([1.7, -2.7], dtype=ember.int64).tolist() == [1, -2]
    assert ember.Tensor([1.0]).dtype == np.float32
    assert ember.tensor([[1.0, 2.0]], requires_grad=True).dtype == np.float32


def test_tensor_keeps_values(backend):
    values = [[1.5, -2.25], [3.0, 4.125]]
    np.testing.assert_array_equal(ember.tensor(values).numpy(), np.array(values, np.float32))
    src = ember.tensor([1.0, 2.0], requires_grad=True)
    copy = ember.tensor(src * 2)
    assert copy.is_leaf and not copy.requires_grad
    assert copy.tolist() == [2.0, 4.0]


@pytest.mark.parametrize("data", [[1, 2], [True, False]])
def test_requires_grad_on_non_float_raises(backend, data):
    dtype = str(np.asarray(data).dtype)
    with pytest.raises(TypeError, match=dtype):
        ember.tensor(data, requires_grad=True)
    t = ember.tensor(data)
    with pytest.raises(TypeError, match=dtype):
        t.requires_grad_()
    assert t.requires_grad is False
    with pytest.raises(TypeError, match="int64"):
        ember.zeros(2, dtype=ember.int64, requires_grad=True)


def test_requires_grad_(backend):
    t = ember.tensor([1.0])
    assert t.requires_grad_() is t and t.requires_grad is True
    assert t.requires_grad_(False) is t and t.requires_grad is False


def test_unsupported_data_raises(backend):
    with pytest.raises(TypeError, match="dtype"):
        ember.tensor(["a", "b"])
    with pytest.raises(TypeError):
        ember.tensor([1.0], dtype="complex64")


# -- creation ------------------------------------------------------------------------------------


def test_zeros_ones_full(backend):
    for make, value in ((ember.zeros, 0.0), (ember.ones, 1.0)):
        a, b = make(2, 3), make((2, 3))
        for t in (a, b):
            assert t.shape == (2, 3) and t.dtype == np.float32 and not t.requires_grad
            np.testing.assert_array_equal(t.numpy(), np.full((2, 3), value, np.float32))
        assert make([4]).shape == (4,)
        assert make().shape == ()
        assert make(2, dtype=ember.float64).dtype == np.float64
        assert make(2, dtype="int64").tolist() == [int(value)] * 2
        g = make(3, requires_grad=True)
        assert g.requires_grad and g.is_leaf
    f = ember.full((2, 2), 7.5)
    assert f.dtype == np.float32 and f.tolist() == [[7.5, 7.5], [7.5, 7.5]]
    assert ember.full(3, -1.0).tolist() == [-1.0, -1.0, -1.0]
    assert ember.full((2,), 3, dtype=ember.int64).dtype == np.int64
    assert ember.full((2,), 1.0, requires_grad=True).requires_grad


def test_bad_shapes_raise(backend):
    with pytest.raises(ValueError, match="non-negative"):
        ember.zeros(-1)
    with pytest.raises(ValueError, match="non-negative"):
        ember.ones(2.5)


def test_like_functions_keep_shape_and_dtype(backend):
    src = ember.tensor(np.arange(6.0).reshape(2, 3))  # float64
    for fn, value in ((ember.zeros_like, 0.0), (ember.ones_like, 1.0)):
        t = fn(src)
        assert t.shape == (2, 3) and t.dtype == np.float64
        np.testing.assert_array_equal(t.numpy(), np.full((2, 3), value))
        assert fn(src, dtype=ember.float32).dtype == np.float32
        assert fn(src, requires_grad=True).requires_grad
    t = ember.full_like(src, 2.5)
    assert t.shape == (2, 3) and t.dtype == np.float64
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), 2.5))
    assert ember.zeros_like(ember.tensor([1, 2])).dtype == np.int64
    assert ember.ones_like(np.zeros((1, 4), np.float32)).shape == (1, 4)
    assert not ember.zeros_like(ember.ones(2, requires_grad=True)).requires_grad


def test_arange(backend):
    a = ember.arange(5)
    assert a.dtype == np.int64 and a.tolist() == [0, 1, 2, 3, 4]
    assert ember.arange(1, 7, 2).tolist() == [1, 3, 5]
    f = ember.arange(0, 1, 0.25)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f.numpy(), np.arange(0, 1, 0.25, dtype=np.float32))
    assert ember.arange(3, dtype=ember.float32).dtype == np.float32
    assert ember.arange(4.0).tolist() == [0.0, 1.0, 2.0, 3.0]
    assert ember.arange(3.0, requires_grad=True).requires_grad


def test_linspace_and_eye(backend):
    t = ember.linspace(-1, 2, 7)
    assert t.dtype == np.float32 and t.shape == (7,)
    np.testing.assert_allclose(t.numpy(), np.linspace(-1, 2, 7), rtol=1e-6, atol=1e-6)
    assert ember.linspace(0, 1, 5, dtype=ember.float64).dtype == np.float64
    e = ember.eye(3)
    assert e.dtype == np.float32
    np.testing.assert_array_equal(e.numpy(), np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(ember.eye(2, 3).numpy(), np.eye(2, 3))
    assert ember.eye(2, requires_grad=True).requires_grad


def test_rand_randn_shapes_and_flags(backend):
    for fn in (ember.rand, ember.randn):
        for t in (fn(2, 3), fn((2, 3))):
            assert t.shape == (2, 3) and t.dtype == np.float32
        assert fn(4, dtype=ember.float64).dtype == np.float64
        g = fn(3, requires_grad=True)
        assert g.requires_grad and g.is_leaf


def test_from_numpy(backend):
    a = np.arange(6).reshape(2, 3)
    t = ember.from_numpy(a)
    assert t.dtype == np.int64 and t.shape == (2, 3)
    np.testing.assert_array_equal(t.numpy(), a)
    f = ember.from_numpy(np.array([1.5, 2.5]))
    assert f.dtype == np.float64 and f.tolist() == [1.5, 2.5]
    assert ember.from_numpy(np.ones(2, np.float32)).dtype == np.float32
    with pytest.raises(TypeError, match="numpy"):
        ember.from_numpy([1.0, 2.0])


def test_from_numpy_shares_memory_on_numpy():
    ember.set_backend("numpy")
    a = np.arange(3.0)
    assert np.shares_memory(ember.from_numpy(a).data, a)


# -- random stream ---------------------------------------------------------------------------------


def test_manual_seed_reproduces_draws(backend):
    ember.manual_seed(123)
    a, b = ember.rand(50), ember.randn(3, 4)
    c = ember.rand(50)
    ember.manual_seed(123)
    a2, b2 = ember.rand(50), ember.randn(3, 4)
    assert a.numpy().tobytes() == a2.numpy().tobytes()
    assert b.numpy().tobytes() == b2.numpy().tobytes()
    assert not np.array_equal(a.numpy(), c.numpy())  # the stream advances
    assert ember.initial_seed() == 123
    ember.manual_seed(124)
    assert not np.array_equal(ember.rand(50).numpy(), a.numpy())


def test_manual_seed_does_not_touch_numpy_global_state(backend):
    before = np.random.get_state()
    ember.manual_seed(99)
    ember.rand(10)
    ember.randn(10)
    after = np.random.get_state()
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_manual_seed_rejects_bad_seeds(backend):
    with pytest.raises(ValueError, match="non-negative integer"):
        ember.manual_seed(-1)
    with pytest.raises(ValueError, match="non-negative integer"):
        ember.manual_seed(1.5)


def test_rand_and_randn_distributions(backend):
    ember.manual_seed(2024)
    u = ember.rand(100_000).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01
    assert abs(u.std() - np.sqrt(1 / 12)) < 0.01
    n = ember.randn(100_000).numpy().astype(np.float64)
    assert abs(n.mean()) < 0.02
    assert abs(n.std() - 1.0) < 0.02
    assert abs(np.mean(np.abs(n) < 1.0) - 0.6827) < 0.01


# -- conversion and Python protocol ----------------------------------------------------------------


def test_numpy_item_tolist_and_metadata(backend):
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = ember.tensor(values)
    out = t.numpy()
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, values)
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and t.dtype == np.float32
    s = ember.tensor([[2.5]])
    assert s.item() == 2.5 and isinstance(s.item(), float)
    assert ember.tensor(7).item() == 7 and isinstance(ember.tensor(7).item(), int)
    assert ember.tensor(3.0).shape == () and ember.tensor(3.0).ndim == 0
    assert ember.tensor(3.0).size == 1


def test_item_on_many_elements_raises(backend):
    with pytest.raises(ValueError, match=re.escape("(2, 3)")) as info:
        ember.ones(2, 3).item()
    assert "item()" in str(info.value) and "6 elements" in str(info.value)


def test_astype_and_its_gradient(backend):
    x = ember.tensor([1.5, -2.5], requires_grad=True)
    y = x.astype(ember.float64)
    assert y.dtype == np.float64 and y.requires_grad
    (y * y * 3).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.array([9.0, -15.0], np.float32))
    assert ember.tensor([1.7, -1.2]).astype("int64").tolist() == [1, -1]
    assert ember.tensor([1, 0]).astype(ember.bool_).tolist() == [True, False]


def test_transpose_property(backend):
    a = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    t = ember.tensor(a, requires_grad=True)
    assert t.T.shape == (3, 2)
    np.testing.assert_array_equal(t.T.numpy(), a.T)
    (t.T * ember.tensor(a.T)).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), a)


def test_detach_stops_gradient(backend):
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), x.numpy())
    y = x * 2 + x.detach() * 3
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.array([2.0, 2.0], np.float32))
    h = (x * x).detach()
    assert not h.requires_grad
    with pytest.raises(RuntimeError):
        (h * 2).sum().backward()


def test_len_and_iteration(backend):
    t = ember.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3 and all(isinstance(r, ember.Tensor) for r in rows)
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert [float(v) for v in ember.tensor([1.5, 2.5])] == [1.5, 2.5]
    with pytest.raises(TypeError, match="0-d"):
        len(ember.tensor(1.0))


def test_iteration_keeps_the_graph(backend):
    x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    total = None
    for i, v in enumerate(x):
        total = v * float(i) if total is None else total + v * float(i)
    total.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.array([0.0, 1.0, 2.0], np.float32))


def test_python_number_conversions(backend):
    assert float(ember.tensor([2.5])) == 2.5
    assert int(ember.tensor(3.9)) == 3
    assert int(ember.tensor([[7]])) == 7
    assert bool(ember.tensor(1.0)) is True
    assert bool(ember.tensor([0.0])) is False
    with pytest.raises(ValueError, match="ambiguous"):
        bool(ember.ones(2))
    with pytest.raises(ValueError, match=re.escape("(2,)")):
        float(ember.ones(2))


def test_numpy_interop(backend):
    t = ember.tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.asarray(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    np.testing.assert_array_equal(a, [[1.0, 2.0], [3.0, 4.0]])
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    for y in (np.float32(2) * x, x * np.float32(2)):
        assert isinstance(y, ember.Tensor)
        assert y.dtype == np.float32 and y.tolist() == [2.0, 4.0] and y.requires_grad
    z = np.ones(2, np.float32) + x
    assert isinstance(z, ember.Tensor) and z.tolist() == [2.0, 3.0]


def test_tensors_are_immutable(backend):
    t = ember.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="immutable"):
        t[0] = 1
    assert t.tolist() == [1.0, 2.0]


def test_format(backend):
    assert f"{ember.tensor(2.0):.3f}" == "2.000"
    assert f"{ember.tensor([1.0, 2.0])}" == "tensor([1., 2.])"


# -- repr ------------------------------------------------------------------------------------------


def test_repr(backend):
    assert repr(ember.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(ember.tensor([1.0, 2.0], requires_grad=True)) == (
        "tensor([1., 2.], requires_grad=True)")
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x * 2) == "tensor([2., 4.], grad_fn=<MulBackward>)"
    assert repr(x + 1) == "tensor([2., 3.], grad_fn=<AddBackward>)"
    assert repr(ember.tensor(np.array([1.0, 2.0]))) == "tensor([1., 2.], dtype=float64)"
    assert repr(ember.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(ember.tensor([True, False])) == "tensor([ True, False])"
    assert repr(ember.tensor(3.5)) == "tensor(3.5)"
    assert repr(ember.tensor([1, 2], dtype=ember.int32)) == "tensor([1, 2], dtype=int32)"
    assert repr(ember.tensor([[1.0, 2.0], [3.0, 4.0]])) == (
        "tensor([[1., 2.],\n        [3., 4.]])")
    with ember.no_grad():
        assert repr(x * 2) == "tensor([2., 4.])"


# -- comparisons -----------------------------------------------------------------------------------


def test_comparisons_match_numpy(backend):
    an = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    bn = np.array([3.0, 2.0, 1.0, 4.0], np.float32)
    a = ember.tensor(an, requires_grad=True)
    b = ember.tensor(bn)
    cases = [
        (a == b, an == bn), (a != b, an != bn), (a < b, an < bn),
        (a <= b, an <= bn), (a > b, an > bn), (a >= b, an >= bn),
        (a > 2.5, an > 2.5), (2.5 < a, an > 2.5), (a == 2.0, an == 2.0),
        (ember.lt(a, b), an < bn), (a.ge(b), an >= bn),
    ]
    for got, expected in cases:
        assert isinstance(got, ember.Tensor)
        assert got.dtype == np.bool_
        assert got.requires_grad is False and got.grad_fn is None
        np.testing.assert_array_equal(got.numpy(), expected)


def test_comparison_broadcasts_and_reports_shapes(backend):
    got = ember.tensor([[1.0], [3.0]]) < ember.tensor([0.0, 2.0, 4.0])
    np.testing.assert_array_equal(got.numpy(), [[False, True, True], [False, False, True]])
    with pytest.raises(ValueError, match=re.escape("(3,)")):
        ember.ones(3) == ember.ones(4)  # noqa: B015


def test_tensors_are_hashable(backend):
    a, b = ember.tensor([1.0, 2.0]), ember.tensor([1.0, 2.0])
    table = {a: "a", b: "b"}
    assert len(table) == 2 and table[a] == "a" and table[b] == "b"
    assert len({a, b, a}) == 2
    assert hash(a) == hash(a)


# -- backends --------------------------------------------------------------------------------------


def test_set_backend_jax():
    import jax

    ember.set_backend("jax")
    assert ember.get_backend() == "jax"
    t = ember.ones(2, 3)
    assert isinstance(t.data, jax.Array)
    assert isinstance(t.numpy(), np.ndarray)
    assert isinstance(ember.tensor([1.0]).data, jax.Array)
    ember.set_backend("numpy")
    assert ember.get_backend() == "numpy"
    assert type(ember.ones(2).data) is np.ndarray


def test_set_backend_accepts_any_case():
    ember.set_backend(" JAX ")
    assert ember.get_backend() == "jax"


def test_environment_variable_selects_jax():
    code = "import ember; print(ember.get_backend(), type(ember.ones(2).data).__module__)"
    res = _run_python(code, EMBER_BACKEND="jax")
    assert res.returncode == 0, res.stderr
    name, module = res.stdout.split()
    assert name == "jax" and module.startswith("jax")
    res = _run_python("import ember; print(ember.get_backend())")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "numpy"


def test_environment_variable_with_unknown_backend():
    res = _run_python("import ember; ember.ones(2)", EMBER_BACKEND="tensorflow")
    assert res.returncode != 0
    assert "ValueError" in res.stderr and "'tensorflow'" in res.stderr
    assert "numpy, jax" in res.stderr


def test_unknown_backend_raises_listing_valid_ones():
    with pytest.raises(ValueError, match="unknown backend 'torch'") as info:
        ember.set_backend("torch")
    assert "numpy" in str(info.value) and "jax" in str(info.value)
    assert ember.get_backend() == "numpy"


def test_mixing_backends_raises():
    ember.set_backend("numpy")
    a = ember.ones(2)
    ember.set_backend("jax")
    b = ember.ones(2)
    for op in (lambda: a + b, lambda: b * a, lambda: a @ b, lambda: a.exp()):
        with pytest.raises(TypeError, match="tensors of two backends cannot be mixed") as info:
            op()
        assert "ember.tensor(t.numpy())" in str(info.value)
    with pytest.raises(TypeError, match="cannot be mixed"):
        a < b  # noqa: B015
    ember.set_backend("numpy")
    with pytest.raises(TypeError, match="cannot be mixed"):
        a + b


def test_float64_on_jax_and_float32_default():
    ember.set_backend("jax")
    x = ember.tensor(np.array([1.0, 2.0]))
    assert x.dtype == np.float64 and str(x.data.dtype) == "float64"
    y = (x * 2.0 + 1e-12).exp()
    assert y.dtype == np.float64
    assert (ember.tensor(np.array([1.0])) + 1e-12).item() != 1.0  # real double precision
    assert ember.ones(2, dtype=ember.float64).dtype == np.float64
    assert ember.ones(2).dtype == np.float32
    assert ember.tensor([1.5]).dtype == np.float32
    assert ember.rand(2).dtype == np.float32 and ember.randn(2).dtype == np.float32
    assert (ember.ones(2) * 2.0).dtype == np.float32
    assert ember.arange(3).dtype == np.int64
    assert ember.linspace(0, 1, 3).dtype == np.float32


def test_missing_jax_says_how_to_install():
    code = (
        "import sys\n"
        "sys.modules['jax'] = None\n"
        "import ember\n"
        "assert ember.ones(2).sum().item() == 2.0\n"
        "try:\n"
        "    ember.set_backend('jax')\n"
        "except ImportError as e:\n"
        "    print('ERROR:', e)\n"
        "print('BACKEND:', ember.get_backend())\n"
    )
    res = _run_python(code)
    assert res.returncode == 0, res.stderr
    assert 'pip install "ember[jax]"' in res.stdout
    assert "ERROR:" in res.stdout and "BACKEND: numpy" in res.stdout


# -- shape errors ----------------------------------------------------------------------------------


def test_add_shape_error_names_op_and_shapes(backend):
    with pytest.raises(ValueError) as info:
        ember.ones(3) + ember.ones(4)
    assert str(info.value) == "ember.add: shapes (3,) and (4,) cannot be broadcast together"
    with pytest.raises(ValueError, match=re.escape("ember.mul: shapes (2, 3) and (2,)")):
        ember.ones(2, 3) * ember.ones(2)


def test_matmul_shape_error_names_op_and_shapes(backend):
    with pytest.raises(ValueError) as info:
        ember.ones(2, 3) @ ember.ones(4, 5)
    msg = str(info.value)
    assert msg.startswith("ember.matmul: shapes (2, 3) and (4, 5)")
    with pytest.raises(ValueError, match=re.escape("ember.matmul: shapes (3,) and (4,)")):
        ember.ones(3) @ ember.ones(4)
    with pytest.raises(ValueError, match=re.escape("ember.matmul: shapes (2, 3) and ()")):
        ember.ones(2, 3) @ ember.tensor(2.0)


# -- the demo and the README -----------------------------------------------------------------------


def test_python_m_ember_learns():
    env = dict(os.environ)
    env.pop("EMBER_BACKEND", None)
    res = subprocess.run([sys.executable, "-m", "ember", "demo", "--steps", "50"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    losses = {int(step): float(loss)
              for step, loss in re.findall(r"step\s+(\d+)\s+loss\s+([0-9.]+)", res.stdout)}
    assert 0 in losses and 50 in losses, res.stdout
    assert max(losses) == 50
    assert losses[50] < losses[0]


def test_readme_line_count_is_current():
    counter = runpy.run_path(str(ROOT / "scripts" / "linecount.py"))
    total = sum(counter["count"]().values())
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"is\s+(\d+)\s+lines\s+of\s+code", readme)
    assert found, "README.md no longer states 'is N lines of code'"
    assert int(found.group(1)) == total
