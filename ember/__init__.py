"""ember: a small deep-learning framework with its own autograd, running on NumPy or JAX.

Example:
    >>> import ember
    >>> x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad.tolist()
    [2.0, 4.0, 6.0]
"""

from __future__ import annotations

import sys as _sys
import typing as _typing

from ember import data, distributed, nn, optim
from ember import ops as _ops
from ember._version import __version__ as __version__  # written there only
from ember.backend import (
    as_dtype,
    bool_,
    float16,
    float32,
    float64,
    get_backend,
    int32,
    int64,
    set_backend,
    uint8,
)
from ember.backend.threads import get_num_threads, set_num_threads
from ember.creation import (
    arange,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from ember.function import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from ember.gradcheck import GradcheckError, gradcheck
from ember.jit import JitFunction, jit
from ember.random import initial_seed, manual_seed
from ember.tensor import Tensor
from ember.train import callbacks, metrics
from ember.train.checkpoint import load
from ember.train.saving import load_model, load_run, save
from ember.train.trainer import History, Trainer, train_one_step

# Every registered op is also ember.<name> (see ember/ops/__init__.py: one place per op).
globals().update(_ops.REGISTRY)

# `from ember.callbacks import EarlyStopping` and `from ember.metrics import ...` (Keras's paths):
# the modules live in ember/train/ and are registered under their short names too.
_sys.modules.setdefault(f"{__name__}.callbacks", callbacks)
_sys.modules.setdefault(f"{__name__}.metrics", metrics)

from ember.backend import threads as _threads  # noqa: E402

_threads._from_env()  # EMBER_NUM_THREADS

__all__ = [
    "data",
    "distributed",
    "nn",
    "optim",
    "metrics",
    "save",
    "load",
    "load_model",
    "load_run",
    "Trainer",
    "History",
    "train_one_step",
    "callbacks",
    "Tensor",
    "Function",
    "tensor",
    "from_numpy",
    "zeros",
    "ones",
    "full",
    "zeros_like",
    "ones_like",
    "full_like",
    "arange",
    "linspace",
    "eye",
    "rand",
    "randn",
    "manual_seed",
    "initial_seed",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "gradcheck",
    "GradcheckError",
    "jit",
    "JitFunction",
    "set_backend",
    "get_backend",
    "set_num_threads",
    "get_num_threads",
    "as_dtype",
    "float16",
    "float32",
    "float64",
    "int32",
    "int64",
    "uint8",
    "bool_",
    *sorted(_ops.REGISTRY),
]



if not _typing.TYPE_CHECKING:  # hidden from type checkers: unknown ember.X must stay errors there

    def __getattr__(name: str) -> _typing.Any:
        """``ember.plot`` and ``ember.onnx`` on first use: they import matplotlib and onnx,
        which ``import ember`` must not."""
        if name in ("plot", "onnx"):
            import importlib

            return importlib.import_module(f"ember.{name}")
        raise AttributeError(f"module 'ember' has no attribute {name!r}")
