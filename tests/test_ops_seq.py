"""Sequence ops beyond their op-table rows: scatter-add gradients, the fused attention, sorting,
random sampling, PyTorch keyword spellings, and the errors; hypothesis cases for the index ops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember.ops import attention


def test_embedding_gradient_accumulates_repeated_indices(backend):
    w = ember.tensor(np.arange(8.0).reshape(4, 2), requires_grad=True)
    idx = ember.tensor([[3, 0, 3], [3, 1, 0]])
    out = ember.embedding(idx, w)
    assert out.tolist() == [[[6, 7], [0, 1], [6, 7]], [[6, 7], [2, 3], [0, 1]]]
    upstream = np.arange(12.0).reshape(2, 3, 2)
    out.backward(upstream)
    expected = np.zeros((4, 2))
    np.add.at(expected, np.array([[3, 0, 3], [3, 1, 0]]), upstream)
    np.testing.assert_array_equal(w.grad.numpy(), expected)
    assert w.grad.numpy()[2].tolist() == [0.0, 0.0]


def test_embedding_padding_idx_gets_no_gradient(backend):
    w = ember.tensor(np.ones((3, 2)), requires_grad=True)
    ember.embedding(ember.tensor([0, 2, 2, 1]), w, padding_idx=2).sum().backward()
    assert w.grad.tolist() == [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]


def test_embedding_backward_scatters_rows_not_a_one_hot_matmul(monkeypatch):
    bk = ember.backend.get()
    calls = []
    real = type(bk).index_add

    def spy(self, shape, dtype, index, values):
        calls.append((shape, tuple(values.shape)))
        return real(self, shape, dtype, index, values)

    monkeypatch.setattr(type(bk), "index_add", spy)
    w = ember.zeros(1000, 8, requires_grad=True)
    ember.embedding(ember.tensor([[1, 2, 3]]), w).sum().backward()
    assert calls == [((1000, 8), (1, 3, 8))]  # one scatter of the 3 looked-up rows


def test_embedding_index_out_of_range_names_the_op():
    with pytest.raises(IndexError, match=r"ember.embedding: an index is out of range for a weight "
                                         r"of 3 rows \(indices must be in \[0, 3\)\)"):
        ember.embedding(ember.tensor([0, 3]), ember.ones(3, 2))


def test_embedding_rejects_float_indices():
    with pytest.raises(TypeError, match=r"ember.embedding: indices must be integers, got dtype "
                                        r"float32"):
        ember.embedding(ember.tensor([1.0]), ember.ones(3, 2))


def test_take_along_axis_and_gather_follow_numpy_and_pytorch(backend):
    x = ember.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    # torch.gather(t, 1, [[0, 0], [1, 0]]) == [[1, 1], [4, 3]] (PyTorch's documented example)
    out = x.gather(1, ember.tensor([[0, 0], [1, 0]]))
    assert out.tolist() == [[1.0, 1.0], [4.0, 3.0]]
    out.backward(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert x.grad.tolist() == [[3.0, 0.0], [4.0, 3.0]]
    # gather with an index smaller than x outside dim
    small = ember.tensor(np.arange(12.0).reshape(3, 4)).gather(0, ember.tensor([[2, 0]]))
    assert small.tolist() == [[8.0, 1.0]]


def test_index_errors_name_the_op_and_shapes():
    x = ember.ones(3, 4)
    with pytest.raises(ValueError, match=r"ember.take_along_axis: indices of shape \(2,\) need as "
                                         r"many dimensions as x of shape \(3, 4\)"):
        x.take_along_axis(ember.tensor([0, 1]), axis=1)
    with pytest.raises(ValueError, match=r"ember.gather: index of shape \(4, 1\) must have the "
                                         r"dimensions of x \(3, 4\) and be no larger outside"):
        x.gather(1, ember.tensor([[0]] * 4))
    with pytest.raises(ValueError, match=r"ember.take_along_axis: axis 2 is out of range for 2 "
                                         r"dimensions"):
        x.take_along_axis(ember.tensor([[0]]), axis=2)
    with pytest.raises(TypeError, match="ember.masked_fill: mask must be boolean, got dtype int64"):
        x.masked_fill(ember.tensor([1, 0, 1, 0]), 0.0)
    with pytest.raises(ValueError, match=r"ember.tril: needs at least 2 dimensions, got shape "
                                         r"\(4,\)"):
        ember.ones(4).tril()


def test_one_hot(backend):
    out = ember.one_hot(ember.tensor([[0, 3], [1, 1]]), 4)
    assert out.dtype == np.int64
    assert out.tolist() == [[[1, 0, 0, 0], [0, 0, 0, 1]], [[0, 1, 0, 0], [0, 1, 0, 0]]]
    assert ember.one_hot(ember.tensor([2, 0])).shape == (2, 3)  # -1: max + 1 classes
    assert ember.one_hot(ember.tensor([1]), 2, dtype="float32").tolist() == [[0.0, 1.0]]
    assert not out.requires_grad


def test_masked_fill_broadcasts_and_blocks_the_gradient(backend):
    x = ember.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    out = x.masked_fill(ember.tensor([True, False, False]), float("-inf"))
    assert out.tolist() == [[-np.inf, 1.0, 2.0], [-np.inf, 4.0, 5.0]]
    out.softmax().sum().backward()  # -inf entries give exact zeros, not NaN
    assert np.isfinite(x.grad.numpy()).all()
    assert x.grad.numpy()[:, 0].tolist() == [0.0, 0.0]


def test_sort_topk_argsort_ties_and_gradient(backend):
    x = ember.tensor([2.0, 1.0, 2.0, 0.5], requires_grad=True)
    assert x.argsort().tolist() == [3, 1, 0, 2]  # stable: equal values keep their order
    assert x.argsort(descending=True).tolist() == [0, 2, 1, 3]
    values, indices = x.topk(3)
    assert values.tolist() == [2.0, 2.0, 1.0] and indices.tolist() == [0, 2, 1]
    values.backward(np.array([1.0, 10.0, 100.0]))
    assert x.grad.tolist() == [1.0, 100.0, 10.0, 0.0]
    with pytest.raises(ValueError, match=r"ember.topk: k=5 must be in \[1, 4\] for axis 0 of "
                                         r"shape \(4,\)"):
        x.topk(5)


def test_topk_on_a_long_axis_matches_a_full_sort(backend):
    data = np.random.default_rng(0).permutation(1000).astype(np.float64).reshape(4, 250)
    values, indices = ember.tensor(data).topk(7, axis=1)
    order = np.argsort(-data, axis=1)[:, :7]
    np.testing.assert_array_equal(indices.numpy(), order)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(data, order, 1))


def test_einsum_errors():
    a = ember.ones(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match=r"ember.einsum: 'ij,jk->ik' does not fit operands of "
                                         r"shapes \(2, 3\), \(2, 3\)"):
        ember.einsum("ij,jk->ik", a, a)
    with pytest.raises(ValueError, match="ember.einsum: 'ij,jk' names 2 operands but 1 were"):
        ember.einsum("ij,jk", a)


def test_einsum_trace_gradient_is_the_identity(backend):
    b = ember.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    out = ember.einsum("ii", b)  # implicit output: the trace
    assert out.item() == 12.0
    out.backward()
    assert b.grad.tolist() == np.eye(3).tolist()


# -- scaled dot-product attention --------------------------------------------------------------


def _attn_inputs(seed=0, shape=(2, 3, 5, 4), dtype="float64"):
    rng = np.random.default_rng(seed)
    return [ember.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)
            for _ in range(3)]


def test_attention_is_one_node_with_a_fused_backward(backend):
    q, k, v = _attn_inputs()
    out = ember.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert type(out._ctx).__name__ == "ScaledDotProductAttention"
    assert out._ctx.inputs == (q, k, v)  # no matmul/softmax nodes underneath


def test_causal_mask_is_made_once_per_shape_and_backend(backend):
    attention._CAUSAL.clear()
    q, k, v = _attn_inputs()
    a = ember.scaled_dot_product_attention(q, k, v, is_causal=True)
    mask = attention._CAUSAL[(5, 5, backend)]
    b = ember.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert attention._CAUSAL[(5, 5, backend)] is mask and len(attention._CAUSAL) == 1
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    # query 0 sees only key 0
    np.testing.assert_allclose(a.numpy()[..., 0, :], v.numpy()[..., 0, :], rtol=1e-12)


def test_boolean_mask_equals_a_large_negative_additive_mask(backend):
    q, k, v = _attn_inputs(1)
    keep = np.random.default_rng(2).random((5, 5)) > 0.4
    keep[:, 0] = True
    a = ember.scaled_dot_product_attention(q, k, v, ember.tensor(keep))
    b = ember.scaled_dot_product_attention(q, k, v, np.where(keep, 0.0, -1e30))
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)


def test_fully_masked_rows_give_zeros_and_finite_gradients(backend):
    q, k, v = _attn_inputs(3)
    keep = np.ones((5, 5), bool)
    keep[2] = False
    out = ember.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    assert out.numpy()[..., 2, :].tolist() == np.zeros((2, 3, 4)).tolist()
    out.sum().backward()
    for t in (q, k, v):
        assert np.isfinite(t.grad.numpy()).all()


def test_attention_dropout_is_seeded_and_gradchecks(backend):
    q, k, v = _attn_inputs(4, (2, 4, 3))
    key = ember.backend.get().key(5)

    def fn(q, k, v):
        return ember.scaled_dot_product_attention(q, k, v, dropout_p=0.4, rng_key=key)

    assert ember.gradcheck(fn, q, k, v)
    np.testing.assert_array_equal(fn(q, k, v).numpy(), fn(q, k, v).numpy())
    ember.manual_seed(0)  # from the stream: two calls draw two masks
    a = ember.scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    b = ember.scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    assert not np.array_equal(a.numpy(), b.numpy())


def test_attention_float32_matches_float64(backend):
    q, k, v = _attn_inputs(6, dtype="float32")
    out = ember.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert out.dtype == np.float32
    ref = ember.scaled_dot_product_attention(*[ember.tensor(t.numpy().astype(np.float64))
                                               for t in (q, k, v)], is_causal=True)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


def test_attention_inside_jit_equals_eager():
    ember.set_backend("jax")
    q, k, v = _attn_inputs(7)

    def f(q, k, v):
        out = ember.scaled_dot_product_attention(q, k, v, is_causal=True)
        out.sum().backward()
        return out

    eager = f(q, k, v).numpy()
    compiled = ember.jit(f)
    np.testing.assert_allclose(compiled(q, k, v).numpy(), eager, rtol=1e-12)
    assert not any(ember.backend.is_traced(m) for m in attention._CAUSAL.values())


def test_attention_shape_errors():
    q = ember.ones(2, 5, 4)
    with pytest.raises(ValueError, match=r"ember.scaled_dot_product_attention: query \(2, 5, 4\), "
                                         r"key \(2, 5, 3\) and value \(2, 5, 4\) must be"):
        ember.scaled_dot_product_attention(q, ember.ones(2, 5, 3), q)
    with pytest.raises(ValueError, match=r"dropout_p=1.0 must be in \[0, 1\)"):
        ember.scaled_dot_product_attention(q, q, q, dropout_p=1.0)


# -- random sampling ----------------------------------------------------------------------------


def test_categorical_frequencies_follow_softmax(backend):
    ember.manual_seed(0)
    probs = np.array([0.1, 0.2, 0.7, 0.0])
    with np.errstate(divide="ignore"):
        logits = np.log(probs)
    draws = ember.random.categorical(ember.tensor(np.stack([logits, logits[::-1]])), 20000)
    assert draws.shape == (2, 20000) and draws.dtype == np.int64
    freq = np.stack([np.bincount(d, minlength=4) / 20000 for d in draws.numpy()])
    # 4 standard errors of a binomial proportion at n=20000 is < 0.013
    np.testing.assert_allclose(freq, np.stack([probs, probs[::-1]]), atol=0.013)
    ember.manual_seed(0)
    again = ember.random.categorical(ember.tensor(np.stack([logits, logits[::-1]])), 20000)
    np.testing.assert_array_equal(again.numpy(), draws.numpy())


def test_multinomial_with_and_without_replacement(backend):
    ember.manual_seed(1)
    probs = ember.tensor([[2.0, 0.0, 1.0, 1.0]] * 500)  # unnormalised weights
    draws = ember.random.multinomial(probs, 3).numpy()
    assert draws.shape == (500, 3)
    assert all(sorted(row) == [0, 2, 3] for row in draws)  # each index once, never weight 0
    first = np.bincount(draws[:, 0], minlength=4) / 500
    np.testing.assert_allclose(first, [0.5, 0.0, 0.25, 0.25], atol=0.09)
    with_rep = ember.random.multinomial(probs, 6, replacement=True).numpy()
    assert with_rep.shape == (500, 6) and not (with_rep == 1).any()
    with pytest.raises(ValueError, match="cannot draw 5 samples without replacement from 4"):
        ember.random.multinomial(probs, 5)
    with pytest.raises(ValueError, match="probs must be non-negative"):
        ember.random.multinomial(ember.tensor([0.5, -0.1]), 1)


# -- PyTorch spellings and wrong keywords -------------------------------------------------------


def test_pytorch_keyword_spellings(backend):
    x = ember.tensor(np.arange(6.0).reshape(2, 3))
    assert x.sum(dim=1).tolist() == [3.0, 12.0]
    assert x.mean(dim=0, keepdim=True).shape == (1, 3)
    assert ember.softmax(x, dim=0).shape == (2, 3)
    values, indices = x.max(dim=-1)  # PyTorch's (values, indices) with dim=
    assert values.tolist() == [2.0, 5.0] and indices.tolist() == [2, 2]
    assert x.max(axis=-1).tolist() == [2.0, 5.0]  # NumPy's axis= gives the values
    assert x.cumsum(dim=1).tolist() == [[0.0, 1.0, 3.0], [3.0, 7.0, 12.0]]
    assert x.flatten(start_dim=0).shape == (6,)
    assert ember.cat([x, x], dim=1).shape == (2, 6)
    assert ember.stack([x, x], dim=2).shape == (2, 3, 2)
    assert x.clamp(min=1.0, max=4.0).tolist() == [[1.0, 1.0, 2.0], [3.0, 4.0, 4.0]]
    assert x.argmax(dim=1).tolist() == [2, 2]
    idx = ember.tensor([[0], [2]])
    assert x.gather(dim=1, index=idx).tolist() == x.gather(axis=1, index=idx).tolist() == [[0.0],
                                                                                         [5.0]]


def test_functional_forms_are_the_ops():
    from ember.nn import functional as F  # noqa: N812

    assert F.embedding is ember.embedding and F.one_hot is ember.one_hot
    assert F.scaled_dot_product_attention is ember.scaled_dot_product_attention


def test_pytorch_spellings_on_layers():
    from ember import nn

    x = ember.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(nn.Softmax(dim=0)(x).numpy(), x.softmax(axis=0).numpy())
    assert nn.Softmax(dim=0).config() == {"type": "softmax", "axis": 0}
    assert nn.Flatten(start_dim=0)(ember.zeros(2, 3, 4)).shape == (24,)
    assert nn.Flatten(end_dim=1)(ember.zeros(2, 3, 4)).shape == (2, 3, 4)


def test_a_wrong_keyword_names_the_op_and_its_arguments():
    x = ember.ones(2, 3)
    with pytest.raises(TypeError) as err:
        x.sum(axes=1)
    assert str(err.value) == ("ember.sum: got an unexpected keyword argument 'axes'; it accepts "
                              "(x, axis (or dim), keepdims (or keepdim))")
    with pytest.raises(TypeError, match=r"^ember.var: got an unexpected keyword argument "
                                        r"'unbiased'; it accepts \(x, axis \(or dim\)"):
        x.var(unbiased=True)
    with pytest.raises(TypeError, match=r"^ember.concatenate: .*'dims'; it accepts \(tensors, "
                                        r"axis \(or dim\)\)"):
        ember.concatenate([x, x], dims=0)
    with pytest.raises(TypeError, match=r"^ember.embedding: got an unexpected keyword argument "
                                        r"'pad'; it accepts \(indices, weight, padding_idx\)"):
        ember.embedding([0], x, pad=1)


def test_an_error_inside_an_op_is_not_mistaken_for_a_keyword_error():
    with pytest.raises(TypeError, match="indices must be integers"):
        ember.embedding(ember.tensor([0.5]), ember.ones(2, 2), padding_idx=None)


# -- hypothesis: index ops against NumPy, gradients against np.add.at ----------------------------


@st.composite
def _take_case(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    axis = draw(st.integers(-ndim, ndim - 1))
    n_idx = draw(st.integers(1, 5))
    idx_shape = list(shape)
    idx_shape[axis] = n_idx
    seed = draw(st.integers(0, 2**16))
    return shape, tuple(idx_shape), axis, seed


def _check_take(shape, idx_shape, axis, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    idx = rng.integers(0, shape[axis], idx_shape)
    t = ember.tensor(x, requires_grad=True)
    out = t.take_along_axis(ember.tensor(idx), axis=axis)
    np.testing.assert_array_equal(out.numpy(), np.take_along_axis(x, idx, axis))
    upstream = rng.standard_normal(idx_shape)
    out.backward(upstream)
    expected = np.zeros_like(x)
    grid = list(np.indices(idx_shape, sparse=True))
    grid[axis] = idx
    np.add.at(expected, tuple(grid), upstream)
    np.testing.assert_allclose(t.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(case=_take_case())
def test_take_along_axis_property_numpy(case):
    ember.set_backend("numpy")
    _check_take(*case)


@settings(max_examples=10, deadline=None)
@given(case=_take_case())
def test_take_along_axis_property_jax(case):
    ember.set_backend("jax")
    try:
        _check_take(*case)
    finally:
        ember.set_backend("numpy")


@settings(max_examples=30, deadline=None)
@given(vocab=st.integers(1, 6), dim=st.integers(1, 3),
       idx_shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 2**16))
def test_embedding_property(vocab, dim, idx_shape, seed):
    ember.set_backend("numpy")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((vocab, dim))
    idx = rng.integers(0, vocab, idx_shape)
    t = ember.tensor(w, requires_grad=True)
    out = ember.embedding(ember.tensor(idx), t)
    np.testing.assert_array_equal(out.numpy(), w[idx])
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    expected = np.zeros_like(w)
    np.add.at(expected, idx, upstream)
    np.testing.assert_allclose(t.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(shapes=st.sampled_from([((3, 4), (4,)), ((3, 4), (3, 1)), ((4,), (3, 4)), ((2, 1), (1, 3)),
                               ((), (2,)), ((2, 3), (2, 3))]), seed=st.integers(0, 2**16))
def test_masked_fill_broadcasting_property(shapes, seed):
    ember.set_backend("numpy")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shapes[0])
    mask = rng.random(shapes[1]) > 0.5
    t = ember.tensor(x, requires_grad=True)
    out = t.masked_fill(ember.tensor(mask), 7.0)
    np.testing.assert_array_equal(out.numpy(), np.where(mask, 7.0, x))
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    full = np.where(mask, 0.0, upstream)
    lead = full.ndim - x.ndim  # sum the broadcast axes back to x's shape
    full = full.sum(axis=tuple(range(lead)))
    expected = full.sum(axis=tuple(i for i, n in enumerate(x.shape) if n == 1), keepdims=True)
    np.testing.assert_allclose(t.grad.numpy(), expected, rtol=1e-12, atol=1e-12)
