"""RNN, LSTM, GRU and their cells against a loop of PyTorch's documented gate equations (NumPy
forward, jax.grad of the same loop in jax.numpy for gradients), float64 gradchecks of the fused
recurrences, PyTorch's parameter names, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import nn
from ember.ops import recurrent as rec
from tests.conftest import compiled_differences, to_np


def _sig(xp, a):
    return 1.0 / (1.0 + xp.exp(-a))


def ref_step(xp, mode, x, h, c, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh"):
    """One step of PyTorch's equations (torch.nn.RNN / LSTM / GRU documentation)."""
    gi = x @ w_ih.T + (0 if b_ih is None else b_ih)
    gh = h @ w_hh.T + (0 if b_hh is None else b_hh)
    n = h.shape[-1]
    if mode == "rnn":
        a = gi + gh
        return (xp.tanh(a) if nonlinearity == "tanh" else xp.maximum(a, 0)), None
    if mode == "lstm":
        a = gi + gh
        i, f, g, o = (_sig(xp, a[:, :n]), _sig(xp, a[:, n:2 * n]), xp.tanh(a[:, 2 * n:3 * n]),
                      _sig(xp, a[:, 3 * n:]))
        c = f * c + i * g
        return o * xp.tanh(c), c
    r = _sig(xp, gi[:, :n] + gh[:, :n])
    z = _sig(xp, gi[:, n:2 * n] + gh[:, n:2 * n])
    nt = xp.tanh(gi[:, 2 * n:] + r * gh[:, 2 * n:])
    return (1 - z) * nt + z * h, None


def ref_layer(xp, mode, x, params, num_layers, bidirectional, h0, c0, nonlinearity="tanh"):
    """The whole layer, batch first: returns output, h_n, c_n (None for RNN/GRU)."""
    dirs = ("", "_reverse") if bidirectional else ("",)
    steps = x.shape[1]
    hn, cn = [], []
    inp = x
    for k in range(num_layers):
        outs = []
        for d, sfx in enumerate(dirs):
            idx = k * len(dirs) + d
            p = [params.get(f"{name}_l{k}{sfx}") for name in
                 ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h, c = h0[idx], (c0[idx] if c0 is not None else None)
            hs = [None] * steps
            for t in (range(steps - 1, -1, -1) if d else range(steps)):
                h, c = ref_step(xp, mode, inp[:, t], h, c, *p, nonlinearity=nonlinearity)
                hs[t] = h
            outs.append(xp.stack(hs, axis=1))
            hn.append(h)
            cn.append(c)
        inp = xp.concatenate(outs, axis=-1)
    return inp, xp.stack(hn), (xp.stack(cn) if mode == "lstm" else None)


LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CASES = [
    ("rnn", 1, False, True, {}), ("rnn", 2, True, True, {"nonlinearity": "relu"}),
    ("lstm", 1, False, True, {}), ("lstm", 2, True, True, {}), ("lstm", 1, True, False, {}),
    ("gru", 1, False, True, {}), ("gru", 2, True, True, {}), ("gru", 2, False, False, {}),
]


def _make(mode, layers, bidir, bias, kw):
    ember.manual_seed(7)
    return LAYERS[mode](3, 4, num_layers=layers, bias=bias, bidirectional=bidir,
                        dtype=ember.float64, **kw)


@pytest.mark.parametrize("mode,layers,bidir,bias,kw", CASES)
def test_layer_matches_pytorch_equations(backend, mode, layers, bidir, bias, kw, rng):
    layer = _make(mode, layers, bidir, bias, kw)
    nd = layers * (2 if bidir else 1)
    x = rng.standard_normal((2, 5, 3))
    h0 = rng.standard_normal((nd, 2, 4))
    c0 = rng.standard_normal((nd, 2, 4)) if mode == "lstm" else None
    params = {n: to_np(p) for n, p in layer.named_parameters()}
    want_out, want_h, want_c = ref_layer(np, mode, x, params, layers, bidir, h0, c0, **kw)
    state = (ember.tensor(h0), ember.tensor(c0)) if mode == "lstm" else ember.tensor(h0)
    out, hn = layer(ember.tensor(x), state)
    if mode == "lstm":
        hn, cn = hn
        np.testing.assert_allclose(to_np(cn), want_c, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_np(out), want_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_np(hn), want_h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode,layers,bidir,bias,kw", CASES)
def test_layer_gradients_match_jax_grad_of_the_equations(backend, mode, layers, bidir, bias, kw,
                                                         rng):
    import jax
    import jax.numpy as jnp

    layer = _make(mode, layers, bidir, bias, kw)
    nd = layers * (2 if bidir else 1)
    x = rng.standard_normal((2, 5, 3))
    h0 = rng.standard_normal((nd, 2, 4))
    c0 = rng.standard_normal((nd, 2, 4)) if mode == "lstm" else None
    names = [n for n, _ in layer.named_parameters()]
    params = [to_np(p) for p in layer.parameters()]
    up_out = rng.standard_normal((2, 5, 4 * (2 if bidir else 1)))
    up_h, up_c = rng.standard_normal((nd, 2, 4)), rng.standard_normal((nd, 2, 4))

    def loss(x, h0, c0, *ps):
        out, hn, cn = ref_layer(jnp, mode, x, dict(zip(names, ps)), layers, bidir, h0, c0, **kw)
        total = jnp.sum(out * up_out) + jnp.sum(hn * up_h)
        return total + (jnp.sum(cn * up_c) if cn is not None else 0.0)

    argnums = (0, 1, 2) if mode == "lstm" else (0, 1)
    want = jax.grad(loss, argnums=(*argnums, *range(3, 3 + len(params))))(
        x, h0, c0, *params)
    xt, ht = ember.tensor(x, requires_grad=True), ember.tensor(h0, requires_grad=True)
    ct = ember.tensor(c0, requires_grad=True) if mode == "lstm" else None
    out, hn = layer(xt, (ht, ct) if mode == "lstm" else ht)
    total = (out * ember.tensor(up_out)).sum()
    if mode == "lstm":
        hn, cn = hn
        total = total + (cn * ember.tensor(up_c)).sum()
    (total + (hn * ember.tensor(up_h)).sum()).backward()
    got = [xt.grad, ht.grad] + ([ct.grad] if ct is not None else [])
    got += [p.grad for p in layer.parameters()]
    assert len(got) == len(want)
    for g, w, name in zip(got, want, ["x", "h0", *(["c0"] if ct is not None else []), *names]):
        np.testing.assert_allclose(to_np(g), np.asarray(w), rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("reverse", [False, True])
def test_fused_recurrences_gradcheck(backend, reverse, rng):
    def t(*shape):
        return ember.tensor(rng.standard_normal(shape) * 0.7, requires_grad=True)

    xw, h0, w = t(4, 2, 3), t(2, 3), t(3, 3)
    for act in ("tanh", "relu"):
        assert ember.gradcheck(compiled_differences(lambda a, b, c, act=act: rec.RNNScan.apply(
            a, b, c, nonlinearity=act, reverse=reverse)), xw, h0, w)
    xw4, c0, w4 = t(4, 2, 12), t(2, 3), t(12, 3)
    assert ember.gradcheck(compiled_differences(
        lambda a, b, c, d: rec.LSTMScan.apply(a, b, c, d, reverse=reverse)), xw4, h0, c0, w4)
    xw3, w3, b3 = t(4, 2, 9), t(9, 3), t(9)
    assert ember.gradcheck(compiled_differences(
        lambda a, b, c, d: rec.GRUScan.apply(a, b, c, d, reverse=reverse)), xw3, h0, w3, b3)


def test_scan_inside_jit_equals_unrolled(monkeypatch, rng):
    """backend.scan (lax.scan under ember.jit) and the unrolled loop give the same numbers."""
    ember.set_backend("jax")
    layer = _make("lstm", 2, True, True, {})
    x = ember.tensor(rng.standard_normal((2, 5, 3)))

    def run(layer, x):
        out, (h, c) = layer(x)
        loss = (out * out).sum() + h.sum() + c.sum()
        loss.backward()
        return loss

    results = []
    for scan in ("unrolled", "scan"):
        monkeypatch.setattr(rec, "SCAN", scan)
        layer.zero_grad()
        step = ember.jit(run)
        results.append((to_np(step(layer, x)), [to_np(p.grad) for p in layer.parameters()]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_cells_match_pytorch_equations_and_gradcheck(backend, mode, rng):
    cls = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[mode]
    ember.manual_seed(3)
    cell = cls(3, 4, dtype=ember.float64)
    x, h, c = (rng.standard_normal((2, 3)), rng.standard_normal((2, 4)),
               rng.standard_normal((2, 4)))
    p = [to_np(q) for q in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
    want_h, want_c = ref_step(np, mode, x, h, c, *p)
    if mode == "lstm":
        got_h, got_c = cell(ember.tensor(x), (ember.tensor(h), ember.tensor(c)))
        np.testing.assert_allclose(to_np(got_c), want_c, rtol=1e-12)
    else:
        got_h = cell(ember.tensor(x), ember.tensor(h))
    np.testing.assert_allclose(to_np(got_h), want_h, rtol=1e-12)
    # unbatched input, zero state
    want0, _ = ref_step(np, mode, x[:1], 0 * h[:1], 0 * c[:1], *p)
    got0 = cell(ember.tensor(x[0]))
    got0 = got0[0] if mode == "lstm" else got0
    np.testing.assert_allclose(to_np(got0), want0[0], rtol=1e-12)

    def fn(x, h, c):
        out = cell(x, (h, c)) if mode == "lstm" else cell(x, h)
        return out[0] * out[1] if mode == "lstm" else out

    assert ember.gradcheck(fn, *(ember.tensor(a, requires_grad=True) for a in (x, h, c)))


def test_cell_loop_equals_layer():
    ember.manual_seed(0)
    layer = nn.GRU(3, 4, dtype=ember.float64)
    cell = nn.GRUCell(3, 4, dtype=ember.float64)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = ember.randn(2, 6, 3, dtype=ember.float64)
    out, _ = layer(x)
    h = None
    for t in range(6):
        h = cell(x[:, t], h)
    np.testing.assert_allclose(to_np(h), to_np(out[:, -1]), rtol=1e-12)


def test_pytorch_names_layouts_and_unbatched_input():
    lstm = nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=False)
    shapes = {n: p.shape for n, p in lstm.named_parameters()}
    assert list(shapes)[:8] == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
        "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
        "bias_hh_l0_reverse"]
    assert shapes["weight_ih_l0"] == (28, 5) and shapes["weight_ih_l1"] == (28, 14)
    assert shapes["weight_hh_l1_reverse"] == (28, 7) and len(shapes) == 16
    bound = 1 / np.sqrt(7)
    assert all(np.abs(to_np(p)).max() <= bound for p in lstm.parameters())
    out, (h, c) = lstm(ember.zeros(6, 3, 5))  # time-major
    assert out.shape == (6, 3, 14) and h.shape == (4, 3, 7)
    out, (h, c) = lstm(ember.zeros(6, 5))  # no batch axis
    assert out.shape == (6, 14) and h.shape == (4, 7)
    assert [n for n, _ in nn.GRU(2, 3, bias=False).named_parameters()] == [
        "weight_ih_l0", "weight_hh_l0"]


def test_dropout_between_layers_only_in_training():
    ember.manual_seed(0)
    gru = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    assert "dropout_key" not in gru.state_dict()
    x = ember.randn(2, 5, 3)
    a, _ = gru(x)
    b, _ = gru(x)
    assert not np.allclose(to_np(a), to_np(b))
    gru.eval()
    np.testing.assert_array_equal(to_np(gru(x)[0]), to_np(gru(x)[0]))


def test_errors_name_the_layer_and_shapes():
    model = nn.Sequential(nn.LSTM(8, 16))
    with pytest.raises(ValueError, match=r"^model.0 \(LSTM 8->16\): expected input "
                                         r"\(B, T, 8\) or \(T, 8\), got \(4, 10, 7\)$"):
        model(ember.zeros(4, 10, 7))
    with pytest.raises(ValueError, match=r"model \(GRU 3->4\): expected h_0 of shape "
                                         r"\(2, 5, 4\) .* got \(1, 5, 4\)"):
        nn.GRU(3, 4, num_layers=2)(ember.zeros(5, 2, 3), ember.zeros(1, 5, 4))
    with pytest.raises(ValueError, match=r"model \(LSTMCell 3->4\): expected input \(B, 3\) or "
                                         r"\(3,\), got \(2, 4\)"):
        nn.LSTMCell(3, 4)(ember.zeros(2, 4))
    with pytest.raises(ValueError, match="RNN: nonlinearity must be 'tanh' or 'relu', got 'gelu'"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"LSTM: dropout is a probability in \[0, 1\), got 1.5"):
        nn.LSTM(3, 4, dropout=1.5)
