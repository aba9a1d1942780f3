"""ONNX export: onnxruntime runs the exported model and agrees with ember's eval-mode output."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import ember
import ember.onnx
from ember import models, nn
from tests.conftest import to_np

# the onnx extra and onnxruntime (both in the dev extra): skipped only where they are absent
onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def _run(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": np.asarray(x)})[0]


def _perturb(model):
    """Random weights and BatchNorm statistics, loaded without drawing the lazy initial values
    (on JAX every draw of a new shape compiles)."""
    rng = np.random.default_rng(7)
    state = {}
    for k, t in model._state_tensors().items():
        if np.dtype(t.dtype).kind != "f":
            state[k] = np.zeros(t.shape, t.dtype)
        elif k.endswith("running_var"):
            state[k] = rng.uniform(0.5, 1.5, t.shape).astype(t.dtype)
        else:
            state[k] = (0.5 * rng.normal(size=t.shape)).astype(t.dtype)
    model.load_state_dict(state)


def _mlp():
    return nn.Sequential(nn.Input((6,)), nn.Linear(6, 16, activation="relu"), nn.Dropout(0.5),
                         nn.Linear(16, 16), nn.BatchNorm1D(16), nn.Tanh(), nn.Linear(16, 3))


def _cnn():
    return nn.Sequential(
        nn.Conv2D(2, 4, 3, padding=1), nn.BatchNorm2D(4), nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(4, 6, 3, stride=2, padding=(1, 0), dilation=1), nn.AvgPool2D(2, stride=1,
                                                                              padding=1),
        nn.Flatten(), nn.Linear(6 * 3 * 2, 5))


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_parity_with_onnxruntime(backend, tmp_path, kind):
    ember.manual_seed(3)
    model, shape = (_mlp(), (6,)) if kind == "mlp" else (_cnn(), (2, 9, 9))
    _perturb(model)
    model.train()  # export uses eval mode whatever the model's mode, and restores it
    path = tmp_path / f"{kind}.onnx"
    ember.onnx.export(model, ember.randn(1, *shape), path)
    assert model.training
    model.eval()
    # dynamic batch: the example had batch 1 (eager JAX compiles each op for each new shape,
    # so one batch size there)
    for batch in (1, 7) if backend == "numpy" else (1,):
        x = np.random.default_rng(batch).normal(size=(batch, *shape)).astype(np.float32)
        want = to_np(model(ember.tensor(x)))
        np.testing.assert_allclose(_run(path, x), want, atol=1e-5, rtol=1e-5)


# Every converter, each in a small model (NumPy backend; the layers compute the same on JAX,
# which the parity test above checks for the MLP and CNN).
LAYER_CASES = [
    ("activations", nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.3), nn.Sigmoid(),
                                  nn.Softplus(), nn.GELU(), nn.GELU(approximate="tanh"),
                                  nn.Identity(), nn.Softmax(axis=-1), nn.LogSoftmax()), (4,)),
    ("prelu-channels", nn.Sequential(nn.Conv2D(1, 3, 1), nn.PReLU(3), nn.PReLU(),
                                     nn.GlobalAvgPool2D()), (1, 4, 4)),
    ("layernorm", nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5, eps=1e-3),
                                nn.LayerNorm((3, 5), elementwise_affine=False)), (3, 4)),
    ("mlp-class", nn.MLP(4, [8, 8], 2, activation="gelu", final_activation="sigmoid"), (4,)),
    ("bn-nonaffine-flatten", nn.Sequential(nn.BatchNorm1D(3, affine=False), nn.Flatten(1, 1),
                                           nn.Flatten(0, -1)), (3, 5)),
    ("flatten-middle", nn.Sequential(nn.Conv2D(1, 2, 1), nn.Flatten(1, 2), nn.Flatten(0, 1)),
     (1, 3, 4)),
    ("conv-same-nobias", nn.Sequential(nn.Conv2D(2, 3, (3, 2), padding="same", dilation=2,
                                                 bias=False),
                                       nn.Conv2D(3, 2, 3, padding=((1, 0), (2, 1))),
                                       nn.MaxPool2D(3, stride=2, padding=1)), (2, 7, 6)),
    ("named", nn.Sequential({"fc": nn.Linear(3, 2), "out": nn.Softmax()}), (3,)),
]

# Convolution and pooling options: each exported graph must compute what ember computes, on
# both backends (test_conv_and_pool_options_on_both_backends).
CONV_POOL_CASES = [
    ("conv1d", nn.Sequential(nn.Conv1D(3, 4, 3, stride=2, padding=(2, 1), dilation=2),
                             nn.Conv1D(4, 4, 2, padding="same", groups=2, bias=False),
                             nn.Conv1D(4, 2, 1, padding="valid")), (3, 11)),
    ("maxpool-options", nn.Sequential(nn.MaxPool2D(3, stride=2, padding=((1, 0), (0, 1)),
                                                   ceil_mode=True),
                                      nn.MaxPool2D(2, stride=1, dilation=(2, 1), padding=1)),
     (2, 8, 9)),
    # padding 2 of a window of reach 4 (kernel 2, dilation 3): more than onnxruntime's limit of
    # a pad below the kernel, so an explicit Pad; ceil_mode adds a partial last window
    ("maxpool-dilated-pad", nn.MaxPool2D(2, stride=3, dilation=3, padding=(2, 1),
                                         ceil_mode=True), (1, 9, 8)),
    ("avgpool-ceil-include-pad", nn.AvgPool2D(3, stride=2, padding=1, ceil_mode=True),
     (2, 6, 7)),
    ("avgpool-exclude-pad", nn.Sequential(
        nn.AvgPool2D(3, stride=2, padding=((1, 0), (1, 1)), count_include_pad=False),
        nn.AvgPool2D(2, padding=1, ceil_mode=True, count_include_pad=False)), (2, 7, 8)),
    ("adaptive-global", nn.Sequential(nn.AdaptiveMaxPool2D(1), nn.Conv2D(2, 2, 1),
                                      nn.AdaptiveAvgPool2D((1, 1))), (2, 5, 6)),
    ("adaptive-even", nn.Sequential(nn.AdaptiveAvgPool2D((3, None)), nn.AdaptiveMaxPool2D(2)),
     (2, 6, 4)),
    ("adaptive-uneven", nn.Sequential(nn.AdaptiveMaxPool2D((3, 4)), nn.AdaptiveAvgPool2D(2)),
     (2, 5, 7)),
]
LAYER_CASES += CONV_POOL_CASES


if hasattr(nn, "Embedding"):  # the sequence layers, once they exist in this ember
    LAYER_CASES += [
        ("rmsnorm", nn.Sequential(nn.Linear(4, 6), nn.RMSNorm(6), nn.RMSNorm((3, 6), eps=1e-3,
                                                                             elementwise_affine=False)),
         (3, 4)),
        ("groupnorm", nn.Sequential(nn.Conv2D(2, 6, 1), nn.GroupNorm(3, 6),
                                    nn.GroupNorm(2, 6, affine=False)), (2, 3, 4)),
    ]


@pytest.mark.parametrize("name", [c[0] for c in LAYER_CASES])
def test_each_converter_matches_ember(tmp_path, name):
    ember.manual_seed(4)
    _, model, shape = next(c for c in LAYER_CASES if c[0] == name)
    _perturb(model)
    model.eval()
    path = tmp_path / "m.onnx"
    ember.onnx.export(model, ember.randn(2, *shape), path, dynamic_batch="flatten" not in name)
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    np.testing.assert_allclose(_run(path, x), to_np(model(ember.tensor(x))), atol=1e-5,
                               rtol=1e-5)



@pytest.mark.parametrize("name", [c[0] for c in CONV_POOL_CASES])
def test_conv_and_pool_options_on_both_backends(backend, tmp_path, name):
    ember.manual_seed(5)
    _, model, shape = next(c for c in CONV_POOL_CASES if c[0] == name)
    _perturb(model)
    model.eval()
    path = tmp_path / "m.onnx"
    ember.onnx.export(model, ember.randn(2, *shape), path)
    x = np.random.default_rng(1).normal(size=(2, *shape)).astype(np.float32)
    want = to_np(model(ember.tensor(x)))
    assert want.shape == _run(path, x).shape
    np.testing.assert_allclose(_run(path, x), want, atol=1e-5, rtol=1e-5)


def test_pool_graphs_use_the_onnx_pools(tmp_path):
    def ops(model, shape):
        ember.onnx.export(model, ember.zeros(1, *shape), tmp_path / "m.onnx")
        return [n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node]

    assert ops(nn.AdaptiveAvgPool2D(1), (2, 5, 5)) == ["GlobalAveragePool"]
    assert ops(nn.AdaptiveMaxPool2D((1, 1)), (2, 5, 5)) == ["GlobalMaxPool"]
    assert ops(nn.AdaptiveAvgPool2D((2, 3)), (2, 4, 9)) == ["AveragePool"]
    assert ops(nn.AdaptiveMaxPool2D((2, 2)), (2, 3, 4)) == ["MaxPool"]  # windows 0:2, 1:3
    # windows 0:2, 1:4, 3:5 down the rows: three slices, then two down the columns
    assert ops(nn.AdaptiveMaxPool2D((3, 2)), (2, 5, 4)).count("ReduceMax") == 5
    assert ops(nn.MaxPool2D(2, ceil_mode=True), (2, 5, 5)) == ["MaxPool"]
    # ceil_mode adds a last row and column: the given padding counts in the means, they do not
    assert ops(nn.AvgPool2D(3, 2, padding=1, ceil_mode=True), (2, 6, 6)) == ["Pad",
                                                                            "AveragePool"]
    assert ops(nn.AvgPool2D(2, padding=1, ceil_mode=True), (2, 6, 6)) == ["AveragePool"]
    assert ops(nn.MaxPool2D(2, 3, dilation=3, padding=(2, 1)), (2, 9, 8)) == ["Pad",
                                                                         "MaxPool"]
    assert ops(nn.Conv1D(2, 3, 3), (2, 5)) == ["Conv"]


def test_a_dilated_average_pool_is_refused(tmp_path):
    class DilatedAvgPool(nn.AvgPool2D):  # ember.avg_pool2d takes dilation; the layer does not
        _options = (*nn.AvgPool2D._options, ("dilation", 2))

    ember.onnx.converter(DilatedAvgPool)(ember.onnx.CONVERTERS[nn.AvgPool2D])
    try:
        model = nn.Sequential(nn.Conv2D(1, 1, 1), DilatedAvgPool(2))
        with pytest.raises(ember.onnx.ExportError, match=r"^model.1 \(DilatedAvgPool 2x2\): "
                           r"dilation 2 has no ONNX form in opset 17 \(AveragePool takes "
                           r"dilations from opset 19\)"):
            ember.onnx.export(model, ember.zeros(1, 1, 6, 6), tmp_path / "m.onnx")
    finally:
        del ember.onnx.CONVERTERS[DilatedAvgPool]
    assert not (tmp_path / "m.onnx").exists()

def test_embedding_takes_integer_indices(tmp_path):
    if not hasattr(nn, "Embedding"):
        return  # arrives with the sequence layers
    ember.manual_seed(0)
    model = nn.Sequential(nn.Embedding(11, 4, padding_idx=0), nn.Linear(4, 3))
    _perturb(model)
    idx = np.random.default_rng(1).integers(0, 11, (5, 7)).astype(np.int64)
    ember.onnx.export(model, ember.tensor(idx[:1]), tmp_path / "emb.onnx")
    np.testing.assert_allclose(_run(tmp_path / "emb.onnx", idx), to_np(model(ember.tensor(idx))),
                               atol=1e-6, rtol=1e-6)


def test_converter_table_covers_every_builtin_layer_with_an_onnx_equivalent():
    exported = {type(m) for _, model, _ in LAYER_CASES for m in model.modules()}
    exported |= {type(m) for m in (*_mlp().modules(), *_cnn().modules())}
    exported |= {nn.Embedding}  # its own test above
    exported |= {type(m) for _, make, _ in SEQUENCE_CASES for m in make().modules()}
    exported |= {type(m) for make in SEQUENCE_MODELS.values() for m in make().modules()}
    assert set(ember.onnx.CONVERTERS) <= exported  # each converter is tested
    from ember.nn import registry

    no_equivalent = {nn.Lambda, nn.ModuleList, nn.ModuleDict}  # Python code, no forward order
    builtin = {c for c in registry._REGISTRY.values() if c.__module__.startswith("ember.")}
    missing = {c.__name__ for c in builtin - no_equivalent - set(ember.onnx.CONVERTERS)}
    assert sorted(missing) == []


def test_dynamic_batch_flag_and_graph_names(tmp_path):
    model = nn.Linear(3, 2)
    ember.onnx.export(model, ember.zeros(4, 3), tmp_path / "fixed.onnx", dynamic_batch=False)
    ember.onnx.export(model, ember.zeros(4, 3), tmp_path / "dyn.onnx")
    fixed = onnx.load(tmp_path / "fixed.onnx").graph
    dyn = onnx.load(tmp_path / "dyn.onnx").graph
    assert [d.dim_value for d in fixed.input[0].type.tensor_type.shape.dim] == [4, 3]
    assert [d.dim_param or d.dim_value for d in dyn.input[0].type.tensor_type.shape.dim] == \
        ["batch", 3]
    assert [o.name for o in dyn.output] == ["output"]


def test_a_layer_without_converter_is_named(tmp_path):
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return x + self.fc(x)

    model = nn.Sequential(nn.Linear(3, 3), Residual())
    with pytest.raises(ember.onnx.ExportError, match=r"^model.1 \(Residual\) has no ONNX "
                       r"converter: ember exports .*Conv2D.*Linear.*"
                       r"@ember.onnx.converter\(Residual\)"):
        ember.onnx.export(model, ember.zeros(1, 3), tmp_path / "m.onnx")
    with pytest.raises(ember.onnx.ExportError, match=r"Linear\): its activation .* Python "
                       r"function"):
        ember.onnx.export(nn.Linear(3, 3, activation=lambda t: t.tanh()), ember.zeros(1, 3),
                          tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export(tmp_path):
    from ember.cli import main

    runs = tmp_path / "runs"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--preset", "xor", "--epochs", "1", "--no-plots", "--runs-dir",
                     str(runs), "--verbose", "0"]) == 0
    (run_dir,) = runs.iterdir()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["export", str(run_dir), "-o", str(tmp_path / "xor.onnx")]) == 0
    assert "xor.onnx" in out.getvalue()
    model = ember.load_run(run_dir).model
    x = np.random.default_rng(0).normal(size=(9, 2)).astype(np.float32)
    np.testing.assert_allclose(_run(tmp_path / "xor.onnx", x), to_np(model(ember.tensor(x))),
                               atol=1e-5, rtol=1e-5)


# -- sequence layers and models ------------------------------------------------------------------

def _run_all(path, feeds):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: np.asarray(v) for k, v in feeds.items()})


def _outputs(y):
    """A model's outputs flattened as ONNX lists them (Nones left out)."""
    if isinstance(y, (tuple, list)):
        return [o for t in y for o in _outputs(t)]
    return [] if y is None else [to_np(y)]


def _check(model, path, feeds, args, kwargs=None):
    got = _run_all(path, feeds)
    want = _outputs(model(*args, **(kwargs or {})))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def _floats(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


SEQUENCE_MODELS = {
    "gpt": lambda: models.GPT(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16),
    "gpt-bias": lambda: models.GPT(vocab_size=7, block_size=6, n_layer=1, n_head=4, n_embd=8,
                                   bias=True),
    "gpt-untied": lambda: models.GPT(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8,
                                     bias=True, tie_weights=False, init="pytorch"),
    "bigram": lambda: models.Bigram(11),
    "mlp": lambda: models.MLP(11, block_size=3, n_embd=4, n_embd2=8),
    "rnnlm": lambda: models.RNNLM(11, n_embd=4, n_embd2=8),
    "grulm": lambda: models.GRULM(11, n_embd=4, n_embd2=8),
}


# every case on NumPy; on JAX, whose eager ops compile for each new shape (~10-50 s a case on a
# loaded 2-core machine), the cases that cover each converter's options
JAX_MODELS = ("gpt", "mlp", "grulm")


@pytest.mark.parametrize(("backend", "name"), [("numpy", n) for n in SEQUENCE_MODELS]
                         + [("jax", n) for n in JAX_MODELS], indirect=["backend"])
def test_language_models_match_with_any_batch_and_length(backend, tmp_path, name):
    ember.manual_seed(6)
    model = SEQUENCE_MODELS[name]()
    _perturb(model)
    model.train()
    rng = np.random.default_rng(2)
    path = tmp_path / f"{name}.onnx"
    ember.onnx.export(model, ember.tensor(rng.integers(0, 11 if name != "gpt-bias" else 7,
                                                        (2, 5))), path,
                      dynamic_axes={"input": {0: "batch", 1: "length"}})
    assert model.training
    model.eval()
    dims = onnx.load(path).graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "length", model.vocab_size]
    # the example's size and others; on JAX, whose eager ops compile for each new shape, the
    # size of export's second run (batch 1, length 3: compiled already)
    for b, t in ((2, 5), (3, 6), (1, 2)) if backend == "numpy" else ((2, 5), (1, 3)):
        idx = rng.integers(0, model.vocab_size, (b, t))
        _check(model, path, {"input": idx}, (ember.tensor(idx),))


def test_gpt_head_is_the_token_embedding(tmp_path):
    ember.manual_seed(0)
    model = SEQUENCE_MODELS["gpt"]()
    ember.onnx.export(model, ember.zeros(1, 4, dtype="int64"), tmp_path / "gpt.onnx")
    graph = onnx.load(tmp_path / "gpt.onnx").graph
    tables = [i for i in graph.initializer if tuple(i.dims) == (11, 16)]
    assert len(tables) == 1  # the tied head reads the same initializer, transposed
    readers = [n.op_type for n in graph.node if tables[0].name in n.input]
    assert sorted(readers) == ["Gather", "Transpose"]


# (name, model factory, example inputs as a function of (batch, length)): each layer with the
# arguments of its forward as graph inputs (and forward_kwargs fixed in the graph)
SEQUENCE_CASES = [
    ("mha-self", lambda: nn.MultiheadAttention(8, 2), lambda b, t: (_floats(b, t, 8),)),
    ("mha-self-nobias", lambda: nn.MultiheadAttention(8, 4, bias=False),
     lambda b, t: (_floats(b, t, 8),)),
    ("mha-cross-padding", lambda: nn.MultiheadAttention(8, 2),
     lambda b, t: (_floats(b, t, 8), _floats(b, t + 2, 8, seed=1), _floats(b, t + 2, 8, seed=2),
                   np.arange(t + 2)[None, :] >= (t + 2 - np.arange(b)[:, None] % 3))),
    ("mha-cross-kdim-vdim", lambda: nn.MultiheadAttention(8, 2, kdim=6, vdim=3),
     lambda b, t: (_floats(b, t, 8), _floats(b, t + 1, 6, seed=1), _floats(b, t + 1, 3, seed=2))),
    ("mha-seq-first", lambda: nn.MultiheadAttention(8, 2, batch_first=False),
     lambda b, t: (_floats(t, b, 8),)),
    ("block-pre", lambda: nn.TransformerBlock(8, 2, mlp_ratio=2), lambda b, t: (_floats(b, t, 8),)),
    ("block-causal-rms-relu", lambda: nn.TransformerBlock(8, 2, norm="rms", causal=True,
                                                          activation="relu", bias=False),
     lambda b, t: (_floats(b, t, 8),)),
    ("block-post-padding", lambda: nn.TransformerBlock(8, 4, pre_norm=False),
     lambda b, t: (_floats(b, t, 8), None,
                   np.arange(t)[None, :] >= (t - np.arange(b)[:, None] % 2))),
    ("encoder-layer", lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=16),
     lambda b, t: (_floats(b, t, 8),)),
    ("rnn", lambda: nn.RNN(3, 5), lambda b, t: (_floats(b, t, 3),)),
    ("rnn-relu-2layers-state", lambda: nn.RNN(3, 5, num_layers=2, nonlinearity="relu"),
     lambda b, t: (_floats(b, t, 3), _floats(2, b, 5, seed=1))),
    ("rnn-bidirectional-seq-first", lambda: nn.RNN(3, 4, bidirectional=True, batch_first=False),
     lambda b, t: (_floats(t, b, 3),)),
    ("lstm", lambda: nn.LSTM(3, 5), lambda b, t: (_floats(b, t, 3),)),
    ("lstm-2layers-bidirectional-state", lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True),
     lambda b, t: (_floats(b, t, 3), (_floats(4, b, 4, seed=1), _floats(4, b, 4, seed=2)))),
    ("lstm-nobias", lambda: nn.LSTM(3, 4, bias=False), lambda b, t: (_floats(b, t, 3),)),
    ("gru", lambda: nn.GRU(3, 5), lambda b, t: (_floats(b, t, 3),)),
    ("gru-3layers-bidirectional-state", lambda: nn.GRU(3, 4, num_layers=3, bidirectional=True),
     lambda b, t: (_floats(b, t, 3), _floats(6, b, 4, seed=1))),
    ("gru-unbatched", lambda: nn.GRU(3, 4, num_layers=2), lambda b, t: (_floats(t + b, 3),)),
    ("rnncell", lambda: nn.RNNCell(3, 5), lambda b, t: (_floats(b, 3),)),
    ("rnncell-relu-state", lambda: nn.RNNCell(3, 5, nonlinearity="relu"),
     lambda b, t: (_floats(b, 3), _floats(b, 5, seed=1))),
    ("lstmcell", lambda: nn.LSTMCell(3, 4), lambda b, t: (_floats(b, 3),)),
    ("lstmcell-state-nobias", lambda: nn.LSTMCell(3, 4, bias=False),
     lambda b, t: (_floats(b, 3), (_floats(b, 4, seed=1), _floats(b, 4, seed=2)))),
    ("grucell", lambda: nn.GRUCell(3, 4), lambda b, t: (_floats(b, 3),)),
    ("grucell-state", lambda: nn.GRUCell(3, 4), lambda b, t: (_floats(b, 3),
                                                              _floats(b, 4, seed=1))),
    ("grucell-unbatched", lambda: nn.GRUCell(3, 4), lambda b, t: (_floats(3),)),
]


def _seq_axes(name, inputs):
    """The dynamic axes of a case: the batch axes, and the time axes of the sequences."""
    if "unbatched" in name:  # no batch axis: (T, F) for a layer, (F,) for a cell
        return {"input": {} if "cell" in name else {0: "length"}}
    if "cell" in name:
        return {}
    if "seq-first" in name:
        return {"input": {0: "length", 1: "batch"}}
    axes = {"input": {0: "batch", 1: "length"}}
    if name.startswith("mha-cross"):  # key, value and padding mask: S keys, not T
        axes.update({f"input_{i}": {0: "batch", 1: "keys"} for i in range(1, len(inputs))})
    if name.startswith("block-post-padding"):  # (x, None, key_padding_mask)
        axes["input_1"] = {0: "batch", 1: "length"}
    if name.endswith("-state"):  # h_0 (and c_0): (layers * directions, batch, hidden)
        axes.update({f"input_{i}": {1: "batch"} for i in range(1, len(_leaves(inputs)))})
    return axes


def _tensors(tree):
    if isinstance(tree, tuple):
        return tuple(_tensors(t) for t in tree)
    return tree if tree is None else ember.tensor(tree)


def _feeds(inputs):
    leaves = [v for v in _leaves(inputs) if v is not None]
    return {("input" if i == 0 else f"input_{i}"): v for i, v in enumerate(leaves)}


def _leaves(tree):
    if isinstance(tree, tuple):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [tree]


JAX_CASES = ("mha-cross-padding", "block-causal-rms-relu", "block-post-padding",
             "rnn-relu-2layers-state", "lstm-2layers-bidirectional-state",
             "gru-3layers-bidirectional-state", "rnncell-relu-state", "lstmcell-state-nobias",
             "grucell-state")


@pytest.mark.parametrize(("backend", "name"), [("numpy", c[0]) for c in SEQUENCE_CASES]
                         + [("jax", n) for n in JAX_CASES], indirect=["backend"])
def test_sequence_layers_match_on_both_backends(backend, tmp_path, name):
    ember.manual_seed(8)
    _, make, inputs = next(c for c in SEQUENCE_CASES if c[0] == name)
    model = make()
    _perturb(model)
    model.eval()
    example = inputs(2, 4)
    path = tmp_path / "m.onnx"
    args = _tensors(example)
    ember.onnx.export(model, args, path, dynamic_axes=_seq_axes(name, example))
    for b, t in ((2, 4), (3, 6)) if _seq_axes(name, example) else ((2, 4), (5, 4)):
        now = inputs(b, t)
        _check(model, path, _feeds(now), _tensors(now))


@pytest.mark.parametrize("need_weights", [True, False])
def test_attention_masks_fixed_in_the_graph(tmp_path, need_weights):
    ember.manual_seed(9)
    mha = nn.MultiheadAttention(8, 2)
    _perturb(mha)
    x = _floats(3, 4, 8)
    blocked = np.zeros((6, 4, 4), bool)  # (B*H, T, S), True = not allowed
    blocked[1, 2] = True  # one row with every key hidden: the fused path gives zeros
    blocked[4, :, 1] = True
    blocked[5, 3, 1:] = True
    full = blocked[::-1].all(axis=-1, keepdims=True)
    float_mask = _floats(4, 4, seed=3)
    padding = np.array([[False] * 4, [False, False, True, True], [True, False, False, False]])
    cases = [{"is_causal": True}, {"attn_mask": float_mask, "is_causal": True},
             {"attn_mask": float_mask, "key_padding_mask": ember.tensor(padding)},
             {"average_attn_weights": False, "attn_mask": ember.tensor(blocked[::-1] & ~full)}]
    if not need_weights:  # a fully hidden row is NaN on the weights path (as PyTorch)
        cases.append({"attn_mask": ember.tensor(blocked), "key_padding_mask": padding})
    for kwargs in cases:
        kwargs = {"need_weights": need_weights, **kwargs}
        path = tmp_path / "mha.onnx"
        dynamic = "attn_mask" not in kwargs or np.ndim(kwargs["attn_mask"]) == 2
        ember.onnx.export(mha, ember.tensor(x), path, forward_kwargs=kwargs,
                          dynamic_batch=dynamic and "key_padding_mask" not in kwargs)
        _check(mha, path, {"input": x}, (ember.tensor(x),), kwargs)
        assert len(onnx.load(path).graph.output) == (2 if need_weights else 1)


def test_sequence_export_errors(tmp_path):
    block = nn.TransformerBlock(8, 2, activation=lambda t: t.tanh())
    with pytest.raises(ember.onnx.ExportError, match=r"^model.mlp.1 \(Lambda\) has no ONNX "
                       r"converter"):
        ember.onnx.export(block, ember.zeros(1, 3, 8), tmp_path / "m.onnx")
    mha = nn.MultiheadAttention(8, 2)
    with pytest.raises(ember.onnx.ExportError, match=r"^model \(MultiheadAttention 8/2\): a "
                       r"fixed key has no export; give it as a graph input"):
        ember.onnx.export(mha, ember.zeros(1, 3, 8), tmp_path / "m.onnx",
                          forward_kwargs={"key": ember.zeros(1, 5, 8)}, dynamic_batch=False)

    class Gated(nn.Linear):  # its forward takes a second input; the converter it borrows does not
        def forward(self, x, gate):
            return super().forward(x) * gate

    ember.onnx.converter(Gated)(ember.onnx.CONVERTERS[nn.Linear])
    try:
        with pytest.raises(ember.onnx.ExportError, match=r"^model \(Gated\): its converter "
                           r"takes \(g: .*not the further arguments given"):
            ember.onnx.export(Gated(3, 3), (ember.zeros(1, 3), ember.zeros(1, 3)),
                              tmp_path / "m.onnx")
    finally:
        del ember.onnx.CONVERTERS[Gated]
    with pytest.raises(ValueError, match=r"dynamic axis 'batch' has size 2 in one input and 1 "
                       r"in 'input_1'; axes that share a name share the size"):
        ember.onnx.export(nn.LSTM(3, 4), (ember.zeros(2, 5, 3), (ember.zeros(1, 2, 4),
                                                                   ember.zeros(1, 2, 4))),
                          tmp_path / "m.onnx")  # h_0's batch is axis 1: dynamic_axes says so
    with pytest.raises(ember.onnx.ExportError, match=r"^ember.onnx.export: Sequential fails on "
                       r"inputs resized along the dynamic axes .*export with "
                       r"dynamic_batch=False"):  # the batch flattened into the features
        ember.onnx.export(nn.Sequential(nn.Flatten(0, -1), nn.Linear(6, 2)), ember.zeros(2, 3),
                          tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_of_a_text_run(tmp_path):
    """`ember export` on a GPT trained by `ember train --preset shakespeare-char`: token indices
    of any batch and length up to the context in, logits out, as the run's model computes."""
    from ember.cli import main

    runs = tmp_path / "runs"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--preset", "shakespeare-char", "--runs-dir", str(runs),
                     "--set", "steps=2", "--set", "eval_every=2", "--set", "eval_steps=1",
                     "--set", "batch_size=2", "--set", "sample.tokens=5", "--set",
                     "model.n_layer=1", "--set", "model.n_head=2", "--set", "model.n_embd=16",
                     "--set", "data.block_size=8", "--verbose", "0", "--no-plots"]) == 0
    (run_dir,) = runs.iterdir()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["export", str(run_dir)]) == 0
    assert "(batch, length <= 8) of token indices" in out.getvalue()
    if (run_dir / "model.safetensors").is_file():
        model = ember.load_run(run_dir).model
    else:  # a run that wrote only weights.safetensors
        from ember.cli.commands import _text_model

        model = _text_model(str(run_dir))[0]
    assert type(model).__name__ == "GPT"
    idx = np.random.default_rng(0).integers(0, model.vocab_size, (3, 6))
    np.testing.assert_allclose(_run(run_dir / "model.onnx", idx), to_np(model(ember.tensor(idx))),
                               atol=1e-5, rtol=1e-5)


def test_dynamic_axes_are_checked(tmp_path):
    mha = nn.MultiheadAttention(4, 2)
    q, kv = ember.zeros(2, 3, 4), ember.zeros(2, 5, 4)
    with pytest.raises(ValueError, match=r"^ember.onnx.export: dynamic axis 'length' has size 3 "
                       r"in one input and 5 in 'input_1'; axes that share a name share the size"):
        ember.onnx.export(mha, (q, kv, kv), tmp_path / "m.onnx", dynamic_axes={
            n: {0: "batch", 1: "length"} for n in ("input", "input_1", "input_2")})
    with pytest.raises(ValueError, match=r"^ember.onnx.export: dynamic_axes gives axis 3 of "
                       r"input 'input', which has shape \(2, 3, 4\)"):
        ember.onnx.export(mha, q, tmp_path / "m.onnx", dynamic_axes={"input": {3: "x"}})
    with pytest.raises(ValueError, match=r"dynamic_axes names input 'query'; the inputs are "
                       r"\['input'\]"):
        ember.onnx.export(mha, q, tmp_path / "m.onnx", dynamic_axes={"query": {1: "length"}})
    # named inputs and outputs; the weights' axes follow the query's and the keys' lengths
    ember.onnx.export(mha, (q, kv, kv), tmp_path / "m.onnx", input_name=["q", "k", "v"],
                      output_name=["out", "weights"],
                      dynamic_axes={"q": {0: "batch", 1: "length"}, "k": {0: "batch", 1: "keys"},
                                    "v": {0: "batch", 1: "keys"}})
    graph = onnx.load(tmp_path / "m.onnx").graph
    assert [i.name for i in graph.input] == ["q", "k", "v"]
    assert {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
            for o in graph.output} == {"out": ["batch", "length", 4],
                                       "weights": ["batch", "length", "keys"]}
