"""ember.nn: modules, parameters, layers, activations, initialisation and the config builder.

Example:
    >>> import ember
    >>> from ember import nn
    >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> model(ember.zeros(4, 2)).shape
    (4, 1)
"""

from __future__ import annotations

from ember.nn import init, registry
from ember.nn import summary as _summary  # noqa: F401  (attaches Module.summary)
from ember.nn.activations import (
    ACTIVATIONS,
    GELU,
    LeakyReLU,
    LogSoftmax,
    PReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
    get_activation,
)
from ember.nn.config import from_config
from ember.nn.containers import ModuleDict, ModuleList, Sequential
from ember.nn.layers import (
    MLP,
    BatchNorm1D,
    BatchNorm1d,
    BatchNorm2D,
    BatchNorm2d,
    Dense,
    Dropout,
    Flatten,
    Identity,
    Input,
    Lambda,
    LayerNorm,
    Linear,
)
from ember.nn.module import Module
from ember.nn.monitor import Monitor
from ember.nn.parameter import Parameter
from ember.nn.registry import register

__all__ = [
    "Module",
    "Parameter",
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "Linear",
    "Dense",
    "MLP",
    "Flatten",
    "Identity",
    "Input",
    "Lambda",
    "Dropout",
    "BatchNorm1D",
    "BatchNorm2D",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "GELU",
    "Softplus",
    "ACTIVATIONS",
    "get_activation",
    "init",
    "from_config",
    "Monitor",
    "registry",
    "register",
    "load",  # attached by ember.train.saving (the file format lives on the training floor)
]

# -- conv/pool layers, losses and penalties (nn-ops: ember/nn/conv.py, losses.py, functional.py) --

from ember.nn import functional  # noqa: E402
from ember.nn.conv import (  # noqa: E402
    AdaptiveAvgPool2D,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2D,
    AdaptiveMaxPool2d,
    AvgPool2D,
    AvgPool2d,
    Conv1D,
    Conv1d,
    Conv2D,
    Conv2d,
    GlobalAvgPool2D,
    MaxPool2D,
    MaxPool2d,
)
from ember.nn.losses import (  # noqa: E402
    L1,
    L2,
    LOSSES,
    MAE,
    MSE,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    CrossEntropyLoss,
    Huber,
    KLDivergence,
    Loss,
    NLLLoss,
    Penalty,
    SoftmaxCrossEntropy,
    SparseCategoricalCrossentropy,
    WeightedLoss,
    get_loss,
)

__all__ += [
    "functional",
    "Conv1D",
    "Conv1d",
    "Conv2D",
    "Conv2d",
    "AdaptiveAvgPool2D",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2D",
    "AdaptiveMaxPool2d",
    "MaxPool2D",
    "MaxPool2d",
    "AvgPool2D",
    "AvgPool2d",
    "GlobalAvgPool2D",
    "Loss",
    "MSE",
    "MAE",
    "Huber",
    "NLLLoss",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "SoftmaxCrossEntropy",
    "CrossEntropyLoss",
    "KLDivergence",
    "WeightedLoss",
    "LOSSES",
    "get_loss",
    "Penalty",
    "L1",
    "L2",
]

# -- sequence layers (seqlayers: ember/nn/attention.py, embedding.py, norm.py, recurrent.py) ------

from ember.nn.attention import (  # noqa: E402
    MultiheadAttention,
    TransformerBlock,
    TransformerEncoderLayer,
)
from ember.nn.embedding import Embedding  # noqa: E402
from ember.nn.norm import GroupNorm, RMSNorm  # noqa: E402
from ember.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: E402

__all__ += ["Embedding", "RMSNorm", "GroupNorm", "MultiheadAttention", "TransformerBlock",
            "TransformerEncoderLayer", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]
