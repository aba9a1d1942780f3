"""Embedding, RMSNorm, GroupNorm, MultiheadAttention and TransformerBlock: forward against the
textbook formulas in NumPy, float64 gradchecks, eager equals ember.jit over Adam steps, errors."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import nn, optim
from tests.conftest import compiled_differences, to_np

# -- Embedding -------------------------------------------------------------------------------------


def test_embedding_rows_and_gradient_with_repeated_indices(backend):
    ember.manual_seed(0)
    emb = nn.Embedding(5, 3, dtype=ember.float64)
    w = to_np(emb.weight)
    idx = np.array([[1, 4, 1], [1, 0, 4]])
    out = emb(ember.tensor(idx))
    np.testing.assert_array_equal(to_np(out), w[idx])
    up = np.arange(18, dtype=np.float64).reshape(2, 3, 3)
    (out * ember.tensor(up)).sum().backward()
    want = np.zeros((5, 3))
    for pos, i in np.ndenumerate(idx):
        want[i] += up[pos]
    np.testing.assert_array_equal(to_np(emb.weight.grad), want)
    assert want[1].tolist() == [0 + 6 + 9, 1 + 7 + 10, 2 + 8 + 11]  # three lookups of row 1


def test_embedding_padding_row_is_zero_and_gets_no_gradient(backend):
    emb = nn.Embedding(4, 2, padding_idx=-1)
    assert emb.padding_idx == 3
    np.testing.assert_array_equal(to_np(emb.weight)[3], [0.0, 0.0])
    emb(ember.tensor([3, 3, 0])).sum().backward()
    np.testing.assert_array_equal(to_np(emb.weight.grad), [[1, 1], [0, 0], [0, 0], [0, 0]])


def test_embedding_index_errors_on_both_backends(backend):
    model = nn.Sequential(nn.Embedding(65, 8))
    with pytest.raises(IndexError, match=r"^model.0 \(Embedding 65x8\): index 65 is out of range "
                                         r"for 65 embeddings \(valid: 0..64\)$"):
        model(ember.tensor([[3, 65, 2]]))
    with pytest.raises(IndexError, match="index -1 is out of range"):
        model(ember.tensor([-1]))
    with pytest.raises(TypeError, match=r"model.0 \(Embedding 65x8\): indices must be integers, "
                                        r"got dtype float32"):
        model(ember.tensor([1.0]))
    with pytest.raises(ValueError, match=r"padding_idx=4 must be within \[-4, 4\)"):
        nn.Embedding(4, 2, padding_idx=4)


# -- norms -----------------------------------------------------------------------------------------


def test_rmsnorm_matches_formula_and_gradchecks(backend, rng):
    norm = nn.RMSNorm(6, eps=1e-6, dtype=ember.float64)
    norm.weight.data = norm.weight.data * 0 + ember.tensor(rng.standard_normal(6)).data
    x = rng.standard_normal((2, 3, 6))
    want = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * to_np(norm.weight)
    np.testing.assert_allclose(to_np(norm(ember.tensor(x))), want, rtol=1e-12)
    w = ember.tensor(to_np(norm.weight), requires_grad=True)
    fn = nn.RMSNorm(6, eps=1e-6, elementwise_affine=False, dtype=ember.float64)
    assert ember.gradcheck(lambda x, w: fn(x) * w, ember.tensor(x, requires_grad=True), w)
    # eps=None: the dtype's machine epsilon, as PyTorch
    tiny = nn.RMSNorm(2)(ember.zeros(1, 2))
    np.testing.assert_array_equal(to_np(tiny), [[0.0, 0.0]])


def test_groupnorm_matches_formula_and_gradchecks(backend, rng):
    gn = nn.GroupNorm(2, 4, dtype=ember.float64)
    gn.weight.data = ember.tensor(rng.standard_normal(4)).data
    gn.bias.data = ember.tensor(rng.standard_normal(4)).data
    x = rng.standard_normal((3, 4, 5, 2))
    g = x.reshape(3, 2, -1)
    norm = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5))
    want = norm.reshape(x.shape) * to_np(gn.weight)[:, None, None] + to_np(gn.bias)[:, None, None]
    np.testing.assert_allclose(to_np(gn(ember.tensor(x))), want, rtol=1e-11)
    assert ember.gradcheck(lambda x: gn(x), ember.tensor(x[:, :, :2, :1], requires_grad=True))


def test_norm_errors():
    with pytest.raises(ValueError, match=r"^model \(RMSNorm \(8,\)\): expected input "
                                         r"\(\.\.\., 8\), got \(2, 7\)$"):
        nn.RMSNorm(8)(ember.zeros(2, 7))
    with pytest.raises(ValueError, match=r"^model \(GroupNorm 2x3\): expected input "
                                         r"\(N, 6, \.\.\.\), got \(2, 5, 4\)$"):
        nn.GroupNorm(2, 6)(ember.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="num_groups=4 must be a positive divisor of "
                                         "num_channels=6"):
        nn.GroupNorm(4, 6)


# -- MultiheadAttention ----------------------------------------------------------------------------


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def ref_mha(q_in, k_in, v_in, w, b, wo, bo, heads, additive):
    """The textbook formula, one head at a time: softmax(q k^T / sqrt(d) + mask) v."""
    e = q_in.shape[-1]
    d = e // heads
    q = q_in @ w[:e].T + b[:e]
    k = k_in @ w[e:2 * e].T + b[e:2 * e]
    v = v_in @ w[2 * e:].T + b[2 * e:]
    outs, weights = [], []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        s = q[..., sl] @ np.swapaxes(k[..., sl], -1, -2) / np.sqrt(d) + additive[:, h]
        p = _softmax(s)
        weights.append(p)
        outs.append(p @ v[..., sl])
    out = np.concatenate(outs, -1) @ wo.T + bo
    return out, np.stack(weights, 1)


def _mha(e=8, heads=2):
    ember.manual_seed(5)
    mha = nn.MultiheadAttention(e, heads, dtype=ember.float64)
    rng = np.random.default_rng(9)  # random biases too (PyTorch starts them at zero)
    mha.in_proj_bias.data = ember.tensor(rng.standard_normal(3 * e)).data
    mha.out_proj.bias.data = ember.tensor(rng.standard_normal(e)).data
    return mha


MASKS = ["none", "causal", "bool", "float", "padding", "all"]


@pytest.mark.parametrize("masks", MASKS)
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_matches_textbook_formula(backend, masks, need_weights, rng):
    mha = _mha()
    b, t, e, heads = 3, 5, 8, 2
    x = rng.standard_normal((b, t, e))
    additive = np.zeros((b, heads, t, t))
    kw = {}
    if masks in ("causal", "all"):
        kw["is_causal"] = True
        additive += np.where(np.triu(np.ones((t, t)), 1) > 0, -np.inf, 0)
    if masks in ("bool", "all"):
        blocked = rng.random((t, t)) < 0.3
        np.fill_diagonal(blocked, False)  # every query keeps a key
        kw["attn_mask"] = ember.tensor(blocked)
        additive += np.where(blocked, -np.inf, 0)
    if masks == "float":
        m = rng.standard_normal((b * heads, t, t))
        kw["attn_mask"] = ember.tensor(m)
        additive += m.reshape(b, heads, t, t)
    if masks in ("padding", "all"):
        pad = np.zeros((b, t), bool)
        pad[0, 3:] = pad[2, 4] = True
        kw["key_padding_mask"] = ember.tensor(pad)
        additive += np.where(pad[:, None, None, :], -np.inf, 0)
    params = [to_np(p) for p in (mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight,
                                 mha.out_proj.bias)]
    want, want_w = ref_mha(x, x, x, *params, heads, additive)
    xt = ember.tensor(x)
    out, w = mha(xt, xt, xt, need_weights=need_weights, **kw)
    np.testing.assert_allclose(to_np(out), want, rtol=1e-10, atol=1e-12)
    if need_weights:
        np.testing.assert_allclose(to_np(w), want_w.mean(1), rtol=1e-10, atol=1e-12)
        _, w_all = mha(xt, need_weights=True, average_attn_weights=False, **kw)
        np.testing.assert_allclose(to_np(w_all), want_w, rtol=1e-10, atol=1e-12)
    else:
        assert w is None


def test_mha_cross_attention_and_time_major(backend, rng):
    mha = _mha()
    q, kv = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 6, 8))
    params = [to_np(p) for p in (mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight,
                                 mha.out_proj.bias)]
    want, _ = ref_mha(q, kv, kv, *params, 2, np.zeros((2, 2, 3, 6)))
    out, w = mha(ember.tensor(q), ember.tensor(kv), ember.tensor(kv))
    np.testing.assert_allclose(to_np(out), want, rtol=1e-10)
    assert w.shape == (2, 3, 6)
    tm = nn.MultiheadAttention(8, 2, batch_first=False, dtype=ember.float64)
    tm.load_state_dict(mha.state_dict())
    out_tm, _ = tm(ember.tensor(q.swapaxes(0, 1)), ember.tensor(kv.swapaxes(0, 1)),
                   ember.tensor(kv.swapaxes(0, 1)))
    np.testing.assert_allclose(to_np(out_tm).swapaxes(0, 1), want, rtol=1e-10)


def test_mha_pytorch_parameter_names():
    mha = nn.MultiheadAttention(8, 2)
    assert {n: p.shape for n, p in mha.named_parameters()} == {
        "in_proj_weight": (24, 8), "in_proj_bias": (24,), "out_proj.weight": (8, 8),
        "out_proj.bias": (8,)}
    np.testing.assert_array_equal(to_np(mha.in_proj_bias), np.zeros(24))


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_kdim_vdim_matches_textbook_formula_and_gradchecks(backend, need_weights, rng):
    ember.manual_seed(3)
    mha = nn.MultiheadAttention(4, 2, kdim=3, vdim=5, dtype=ember.float64)
    assert {n: p.shape for n, p in mha.named_parameters()} == {  # PyTorch's names and shapes
        "q_proj_weight": (4, 4), "k_proj_weight": (4, 3), "v_proj_weight": (4, 5),
        "in_proj_bias": (12,), "out_proj.weight": (4, 4), "out_proj.bias": (4,)}
    assert mha.in_proj_weight is None and (mha.kdim, mha.vdim) == (3, 5)
    mha.in_proj_bias.data = ember.tensor(rng.standard_normal(12)).data
    q, k, v = (rng.standard_normal(s) for s in ((2, 3, 4), (2, 6, 3), (2, 6, 5)))
    wq, wk, wv, b, wo, bo = (to_np(p) for p in mha.parameters())
    pad = np.zeros((2, 6), bool)
    pad[1, 4:] = True
    additive = np.broadcast_to(np.where(pad[:, None, None, :], -np.inf, 0), (2, 2, 3, 6))

    def textbook(q, k, v, wq, wk, wv, b, wo, bo):  # ref_mha with the three projections
        d = 2
        qp, kp, vp = q @ wq.T + b[:4], k @ wk.T + b[4:8], v @ wv.T + b[8:]
        heads = []
        for h in range(2):
            sl = slice(h * d, (h + 1) * d)
            p = _softmax(qp[..., sl] @ np.swapaxes(kp[..., sl], -1, -2) / np.sqrt(d)
                         + additive[:, h])
            heads.append(p @ vp[..., sl])
        return np.concatenate(heads, -1) @ wo.T + bo

    out, _ = mha(ember.tensor(q), ember.tensor(k), ember.tensor(v), need_weights=need_weights,
                 key_padding_mask=ember.tensor(pad))
    np.testing.assert_allclose(to_np(out), textbook(q, k, v, wq, wk, wv, b, wo, bo),
                               rtol=1e-10, atol=1e-12)
    names = [n for n, _ in mha.named_parameters()]
    params = [ember.tensor(to_np(p), requires_grad=True) for p in mha.parameters()]
    inputs = [ember.tensor(a, requires_grad=True) for a in (q, k, v)]

    def fn(q, k, v, *ws):
        saved = {n: mha.get_submodule(n.rpartition(".")[0])._parameters[n.rpartition(".")[2]]
                 for n in names}
        try:
            for n, wt in zip(names, ws):
                mha.get_submodule(n.rpartition(".")[0])._parameters[n.rpartition(".")[2]] = wt
            return mha(q, k, v, key_padding_mask=ember.tensor(pad),
                       need_weights=need_weights)[0]
        finally:
            for n, p in saved.items():
                mha.get_submodule(n.rpartition(".")[0])._parameters[n.rpartition(".")[2]] = p

    assert ember.gradcheck(compiled_differences(fn), *inputs, *params)


def test_mha_kdim_vdim_errors_and_config():
    mha = nn.MultiheadAttention(4, 2, kdim=3, vdim=5)
    with pytest.raises(ValueError, match=r"expected key \(B, T, 3\), got \(2, 3, 4\)$"):
        mha(ember.zeros(2, 3, 4))  # self-attention needs kdim == vdim == embed_dim
    with pytest.raises(ValueError, match=r"key \(2, 6, 3\) and value \(2, 5, 5\) must have "
                                         r"the same batch and length"):
        mha(ember.zeros(2, 3, 4), ember.zeros(2, 6, 3), ember.zeros(2, 5, 5))
    with pytest.raises(ValueError, match="kdim=0 and vdim=None must be positive"):
        nn.MultiheadAttention(4, 2, kdim=0)
    cfg = nn.Sequential(mha).config()
    assert cfg == [{"type": "multiheadattention", "num_heads": 2, "embed_dim": 4, "kdim": 3,
                    "vdim": 5}]
    assert nn.from_config(cfg)[0].k_proj_weight.shape == (4, 3)
    assert nn.Sequential(nn.MultiheadAttention(4, 2, kdim=4)).config()[0] == {
        "type": "multiheadattention", "num_heads": 2, "embed_dim": 4}


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_gradchecks_end_to_end(backend, need_weights, rng):
    mha = _mha(4, 2)
    names = [n for n, _ in mha.named_parameters()]
    params = [ember.tensor(to_np(p), requires_grad=True) for p in mha.parameters()]
    x = ember.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    pad = ember.tensor(np.array([[False, False, True], [False, False, False]]))

    def fn(x, *ws):
        saved = {n: mha.get_submodule(n.rpartition(".")[0])._parameters[n.rpartition(".")[2]]
                 for n in names}
        try:
            for n, wt in zip(names, ws):
                mha.get_submodule(n.rpartition(".")[0])._parameters[n.rpartition(".")[2]] = wt
            return mha(x, key_padding_mask=pad, is_causal=True, need_weights=need_weights)[0]
        finally:
            for n, p in saved.items():
                mha.get_submodule(n.rpartition(".")[0])._parameters[n.rpartition(".")[2]] = p

    assert ember.gradcheck(compiled_differences(fn), x, *params)


def test_mha_dropout_only_in_training():
    ember.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, dropout=0.5)
    assert "dropout_key" not in mha.state_dict()
    x = ember.randn(2, 4, 8)
    a, b = mha(x, need_weights=False)[0], mha(x, need_weights=False)[0]
    assert not np.allclose(to_np(a), to_np(b))
    mha.eval()
    np.testing.assert_allclose(to_np(mha(x)[0]), to_np(mha(x, need_weights=False)[0]),
                               rtol=1e-5, atol=1e-6)


def test_mha_errors():
    model = nn.Sequential(nn.MultiheadAttention(8, 2))
    with pytest.raises(ValueError, match=r"^model.0 \(MultiheadAttention 8/2\): expected query "
                                         r"\(B, T, 8\), got \(2, 4, 6\)$"):
        model(ember.zeros(2, 4, 6))
    mha = nn.MultiheadAttention(8, 2)
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(4, 4\) or \(4, 4, 4\), "
                                         r"got \(3, 3\)"):
        mha(ember.zeros(2, 4, 8), attn_mask=np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(2, 4\) \(batch, "
                                         r"keys\), got \(4,\)"):
        mha(ember.zeros(2, 4, 8), key_padding_mask=np.zeros(4, bool))
    with pytest.raises(ValueError, match="embed_dim=10 must be divisible by num_heads=3"):
        nn.MultiheadAttention(10, 3)


# -- TransformerBlock ------------------------------------------------------------------------------


def _layernorm(x, w, b):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * w + b


def _gelu(x):
    import scipy.special

    return 0.5 * x * (1 + scipy.special.erf(x / np.sqrt(2)))


@pytest.mark.parametrize("pre_norm", [True, False])
def test_transformer_block_matches_formula(backend, pre_norm, rng):
    ember.manual_seed(1)
    block = nn.TransformerBlock(8, 2, mlp_ratio=2, pre_norm=pre_norm, causal=True,
                                dtype=ember.float64)
    p = {n: to_np(v) for n, v in block.named_parameters()}
    x = rng.standard_normal((2, 5, 8))
    causal = np.where(np.triu(np.ones((5, 5)), 1) > 0, -np.inf, 0) + np.zeros((2, 2, 5, 5))

    def attn(y):
        return ref_mha(y, y, y, p["attn.in_proj_weight"], p["attn.in_proj_bias"],
                       p["attn.out_proj.weight"], p["attn.out_proj.bias"], 2, causal)[0]

    def mlp(y):
        return _gelu(y @ p["mlp.0.weight"].T + p["mlp.0.bias"]) @ p["mlp.2.weight"].T + \
            p["mlp.2.bias"]

    def n1(y):
        return _layernorm(y, p["norm1.weight"], p["norm1.bias"])

    def n2(y):
        return _layernorm(y, p["norm2.weight"], p["norm2.bias"])

    if pre_norm:
        y = x + attn(n1(x))
        want = y + mlp(n2(y))
    else:
        y = n1(x + attn(x))
        want = n2(y + mlp(y))
    np.testing.assert_allclose(to_np(block(ember.tensor(x))), want, rtol=1e-10, atol=1e-12)


def test_transformer_block_rms_gradchecks(backend, rng):
    ember.manual_seed(2)
    block = nn.TransformerBlock(4, 2, mlp_ratio=1, norm="rms", causal=True, dtype=ember.float64)
    assert isinstance(block.norm1, nn.RMSNorm)
    x = ember.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    assert ember.gradcheck(lambda x: block(x), x)


def test_transformer_encoder_layer_pytorch_arguments():
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=24, dropout=0.0)
    assert layer.mlp[0].out_features == 24 and not layer.pre_norm
    assert type(layer.mlp[1]).__name__ == "ReLU"
    x = ember.randn(2, 5, 16)
    full, causal = layer(x), layer(x, is_causal=True)
    np.testing.assert_allclose(to_np(full)[:, -1], to_np(causal)[:, -1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(to_np(full)[:, 0], to_np(causal)[:, 0])
    with pytest.raises(ValueError, match="only batch_first=True is supported"):
        nn.TransformerEncoderLayer(16, 4, batch_first=False)
    with pytest.raises(ValueError, match=r"^model \(TransformerBlock 16/4\): expected input "
                                         r"\(B, T, 16\), got \(5, 16\)$"):
        layer(ember.zeros(5, 16))


# -- eager equals ember.jit ------------------------------------------------------------------------


class TinyGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(11, 16)
        self.block = nn.TransformerBlock(16, 2, causal=True, dropout=0.1)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 11)

    def forward(self, idx):
        return self.head(self.norm(self.block(self.tok(idx))))


class TinyLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(11, 8)
        self.rnn = nn.LSTM(8, 16, num_layers=2)
        self.head = nn.Linear(16, 11)

    def forward(self, idx):
        return self.head(self.rnn(self.tok(idx))[0])


def _step(model, opt, x, y):
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss


@pytest.mark.parametrize("make", [TinyGPT, TinyLSTM])
def test_eager_equals_jit_over_8_adam_steps(make):
    ember.set_backend("jax")
    rng = np.random.default_rng(0)
    data = [(rng.integers(0, 11, (4, 7)), rng.integers(0, 11, (4, 7)))] * 8  # one batch: learnable
    results = []
    for compiled in (False, True):
        ember.manual_seed(0)
        model = make()
        opt = optim.Adam(model.parameters(), lr=0.01)
        step = ember.jit(_step) if compiled else _step
        losses = [float(step(model, opt, ember.tensor(x), ember.tensor(y)).item())
                  for x, y in data]
        results.append((losses, {k: to_np(v) for k, v in model.state_dict().items()}))
        if compiled:
            assert step.trace_count == 1
    (el, esd), (jl, jsd) = results
    np.testing.assert_allclose(jl, el, rtol=1e-5, atol=1e-6)
    assert el[-1] < el[0]
    for key in esd:
        got, want = jsd[key], esd[key]
        if key.endswith("in_proj_bias"):  # the key bias's gradient is 0 up to rounding (softmax
            got, want = got[:16], want[:16]  # ignores a constant score shift): Adam amplifies it
            got, want = np.r_[got, jsd[key][32:]], np.r_[want, esd[key][32:]]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=key)


# -- configs ---------------------------------------------------------------------------------------


def test_sequence_layers_config_round_trip():
    import json

    entries = [
        {"type": "embedding", "num_embeddings": 11, "embedding_dim": 8, "padding_idx": 0},
        {"type": "transformer", "n_head": 2, "causal": True, "norm": "rms"},
        {"type": "rmsnorm", "eps": 1e-6},
        {"type": "groupnorm", "num_groups": 2, "num_channels": 4},
        {"type": "mha", "num_heads": 2, "embed_dim": 8},
        {"type": "lstm", "hidden_size": 6, "input_size": 8, "num_layers": 2,
         "bidirectional": True},
        {"type": "gru", "hidden_size": 3, "input_size": 12},
        {"type": "rnn", "hidden_size": 3, "input_size": 3, "nonlinearity": "relu"},
        {"type": "lstmcell", "hidden_size": 3, "input_size": 2, "bias": False},
    ]
    ember.manual_seed(4)
    model = nn.from_config(entries, input_shape=(5,))
    assert isinstance(model[1], nn.TransformerBlock) and model[1].d_model == 8
    assert model[2].normalized_shape == (8,)
    cfg = model.config()
    assert cfg[1] == {"type": "transformerblock", "n_head": 2, "d_model": 8, "norm": "rms",
                      "causal": True}
    assert cfg[5] == {"type": "lstm", "hidden_size": 6, "input_size": 8, "num_layers": 2,
                      "bidirectional": True}
    ember.manual_seed(4)
    again = nn.from_config(json.loads(json.dumps(cfg)))
    assert again.config() == cfg
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        np.testing.assert_array_equal(to_np(a), to_np(b), err_msg=k)
    enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, dropout=0.0)
    assert nn.from_config(nn.Sequential(enc).config())[0].mlp[0].out_features == 12
