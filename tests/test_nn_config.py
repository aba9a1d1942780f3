"""Models from configs: building, shape inference, config() round trips, error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ember
from ember import nn
from tests.conftest import to_np

CNN = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "batchnorm"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "conv2d", "filters": 6, "kernel_size": [3, 2], "stride": 2, "padding": 1,
     "dilation": 2, "bias": False},
    {"type": "avgpool2d", "pool_size": 2, "stride": 1},
    {"type": "flatten"},
    {"type": "dense", "units": 10, "activation": {"type": "leaky_relu", "alpha": 0.2},
     "dropout": 0.1},
    {"type": "layernorm"},
    {"type": "dense", "units": 3, "activation": "softmax"},
]

MLP_CFG = [
    {"type": "input", "shape": [5]},
    {"type": "dense", "units": 8, "activation": "tanh", "init": "xavier_uniform"},
    {"type": "batchnorm", "momentum": 0.2},
    {"type": "gelu"},
    {"type": "dropout", "rate": 0.5},
    {"type": "dense", "units": 2, "bias": False},
    {"type": "activation", "activation": "sigmoid"},
]


def test_cnn_from_config_infers_sizes():  # shape inference is backend-independent
    model = nn.from_config(CNN, input_shape=(1, 12, 12))
    assert [type(m).__name__ for m in model] == [
        "Conv2D", "ReLU", "BatchNorm2D", "MaxPool2D", "Conv2D", "AvgPool2D", "Flatten", "Linear",
        "Dropout", "LayerNorm", "Linear"]
    assert model[0].in_channels == 1 and model[2].num_features == 4
    assert model[4].in_channels == 4 and model[4].bias is None
    assert model[7].in_features == 12  # 6 channels x 1 x 2 after the strided conv and pool
    assert model[9].normalized_shape == (10,)
    assert model(ember.zeros(2, 1, 12, 12)).shape == (2, 3)


def test_config_round_trip_is_json_and_rebuilds_the_same_model():
    # the conv layers' jax kernels are tested in test_conv.py; the dense round trip below runs on
    # both backends
    ember.manual_seed(4)
    model = nn.from_config(CNN, input_shape=(1, 12, 12))
    cfg = model.config()
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg == [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "in_channels": 1},
        {"type": "relu"},
        {"type": "batchnorm2d", "num_features": 4},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 6, "kernel_size": [3, 2], "stride": 2, "padding": 1,
         "dilation": 2, "bias": False, "in_channels": 4},
        {"type": "avgpool2d", "pool_size": 2, "stride": 1},
        {"type": "flatten"},
        {"type": "dense", "units": 10, "activation": {"type": "leaky_relu", "alpha": 0.2},
         "in_features": 12},
        {"type": "dropout", "rate": 0.1},
        {"type": "layernorm", "normalized_shape": [10]},
        {"type": "dense", "units": 3, "activation": "softmax", "in_features": 10},
    ]
    ember.manual_seed(4)
    again = nn.from_config(json.loads(json.dumps(cfg)))  # no input_shape needed
    assert again.config() == cfg
    a, b = model.state_dict(), again.state_dict()
    assert list(a) == list(b)
    assert all(np.array_equal(to_np(a[k]), to_np(b[k])) for k in a)  # same seed, same weights
    x = ember.randn(2, 1, 12, 12)
    model.eval()
    again.eval()
    np.testing.assert_array_equal(model(x).numpy(), again(x).numpy())


def test_dense_config_round_trip_exact(backend):
    ember.manual_seed(0)
    model = nn.from_config(MLP_CFG)
    assert [type(m).__name__ for m in model] == ["Input", "Linear", "BatchNorm1D", "GELU",
                                                 "Dropout", "Linear", "Sigmoid"]
    assert model[2].momentum == 0.2 and model[1].init_name == "xavier_uniform"
    cfg = model.config()
    assert cfg == [
        {"type": "input", "shape": [5]},
        {"type": "dense", "units": 8, "activation": "tanh", "init": "xavier_uniform",
         "in_features": 5},
        {"type": "batchnorm1d", "num_features": 8, "momentum": 0.2},
        {"type": "gelu"},
        {"type": "dropout", "rate": 0.5},
        {"type": "dense", "units": 2, "bias": False, "in_features": 8},
        {"type": "sigmoid"},
    ]
    assert nn.from_config(cfg).config() == cfg
    assert model(ember.zeros(3, 5)).shape == (3, 2)
    bound = (6 / 13) ** 0.5
    assert np.abs(to_np(model[1].weight)).max() <= bound


def test_activation_types_and_nested_sequential():
    model = nn.from_config([
        {"type": "dense", "units": 4},
        {"type": "prelu", "num_parameters": 1, "init": 0.1},
        {"type": "softmax", "axis": 0},
        {"type": "sequential", "layers": [{"type": "dense", "units": 2}, {"type": "relu"}]},
        {"type": "identity"},
    ], input_shape=(3,))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight",
                                                        "3.0.weight", "3.0.bias"]
    assert model(ember.zeros(2, 3)).shape == (2, 2)
    cfg = model.config()
    assert cfg[1:3] == [{"type": "prelu", "num_parameters": 1, "init": 0.1},
                        {"type": "softmax", "axis": 0}]
    assert cfg[3] == {"type": "sequential", "layers": [
        {"type": "dense", "units": 2, "in_features": 4}, {"type": "relu"}]}
    assert nn.from_config(cfg).config() == cfg
    assert nn.MLP(3, [4], 2).config() == [{"type": "dense", "units": 4, "in_features": 3},
                                          {"type": "relu"},
                                          {"type": "dense", "units": 2, "in_features": 4}]


def test_config_errors_list_the_valid_choices():
    with pytest.raises(ValueError) as e:
        nn.from_config([{"type": "dense", "units": 2}, {"type": "desne", "units": 2}],
                       input_shape=(3,))
    assert str(e.value).startswith("entry 1: unknown layer type 'desne'; valid types: "
                                   "activation, adaptiveavgpool2d, adaptivemaxpool2d, avgpool2d, "
                                   "batchnorm, batchnorm1d, batchnorm2d, conv1d, conv2d, dense")
    with pytest.raises(ValueError) as e:
        nn.from_config([{"type": "dense", "activation": "relu"}], input_shape=(3,))
    assert str(e.value) == ("entry 0 ('dense'): missing field(s) 'units'; a 'dense' entry takes: "
                            "units (required), activation, bias, dropout, init, in_features")
    with pytest.raises(ValueError, match=r"^entry 0 \('dropout'\): unknown field\(s\) 'p'; a "
                                         r"'dropout' entry takes: rate \(required\)$"):
        nn.from_config([{"type": "dropout", "p": 0.5}])
    with pytest.raises(ValueError, match=r"^entry 0: cannot infer in_features: give it in the "
                                         r"entry or pass from_config\(\.\.\., "
                                         r"input_shape=\.\.\.\)$"):
        nn.from_config([{"type": "dense", "units": 2}])
    with pytest.raises(ValueError, match="entry 0: unknown activation 'rleu'; valid names: relu"):
        nn.from_config([{"type": "dense", "units": 2, "activation": "rleu"}], input_shape=(3,))
    with pytest.raises(ValueError, match="each entry is a dict with a 'type'; got 'dense'"):
        nn.from_config(["dense"])
    with pytest.raises(ValueError, match="from_config expects a list of layer entries"):
        nn.from_config({"type": "dense"})
    with pytest.raises(ValueError, match=r"entry 0: in_features=4 but the input has shape "
                                         r"\(None, 3\)"):
        nn.from_config([{"type": "dense", "units": 2, "in_features": 4}], input_shape=(3,))
    with pytest.raises(ValueError) as e:
        nn.from_config([{"type": "flatten"}, {"type": "maxpool2d", "pool_size": 2}],
                       input_shape=(1, 4, 4))
    assert str(e.value) == ("entry 1: model (MaxPool2D 2x2): expected input (N, C, H, W), got "
                            "(1, 16)")
    with pytest.raises(ValueError, match=r"^entry 0: ember.conv2d: the kernel \(5, 5\) with "
                                         r"dilation \(1, 1\) spans \(5, 5\), more than the "
                                         r"padded input \(4, 4\)"):
        nn.from_config([{"type": "conv2d", "filters": 2, "kernel_size": 5}],
                       input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match=r"batchnorm2d needs samples of shape \(C, H, W\); got "
                                         r"\(3,\)"):
        nn.from_config([{"type": "batchnorm2d"}], input_shape=(3,))


def test_config_of_an_unsupported_layer_names_it():
    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match=r"^entry 1 \(Custom\): no config form for this layer; "
                                         r"configs describe these types: activation, "):
        nn.Sequential(nn.ReLU(), Custom()).config()
    with pytest.raises(ValueError, match="has no config form; use a named activation"):
        nn.Sequential(nn.Linear(2, 2, activation=lambda t: t)).config()


def test_a_new_layer_is_its_class_alone():
    """A layer class that declares ``config_name`` is a config type: built from an entry (its
    size inferred from the input), written back by the generic form, rebuilt identically."""

    class Scale(nn.Module):
        config_name = "scale_test"
        config_infer = {"features": lambda shape: shape[-1]}

        def __init__(self, features, factor=2.0, learn=True):
            super().__init__()
            self.features, self.factor, self.learn = features, factor, learn
            self.weight = nn.Parameter(ember.ones(features) * factor, requires_grad=learn)

        def forward(self, x):
            return x * self.weight

        def config_output_shape(self, shape):
            return shape

    try:
        model = nn.from_config([{"type": "scale_test", "factor": 3.0},
                                {"type": "dense", "units": 2}], input_shape=(4,))
        assert isinstance(model[0], Scale) and model[0].features == 4
        assert model[1].in_features == 4  # the output shape followed from config_output_shape
        assert model.config()[0] == {"type": "scale_test", "features": 4, "factor": 3.0}
        again = nn.from_config(model.config())
        assert again.config() == model.config()
        np.testing.assert_array_equal(again[0].weight.numpy(), np.full(4, 3.0, np.float32))
        with pytest.raises(ValueError, match=r"^entry 0 \('scale_test'\): unknown field\(s\) "
                                             r"'size'; a 'scale_test' entry takes: features, "
                                             r"factor, learn$"):
            nn.from_config([{"type": "scale_test", "size": 3}], input_shape=(4,))
    finally:
        nn.registry.CONFIG_TYPES.pop("scale_test")
