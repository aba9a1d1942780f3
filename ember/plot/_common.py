"""Shared helpers of the plot package: figures without pyplot, array conversion, labels."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np  # host-side only: the numbers that are drawn
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ember import backend
from ember.creation import tensor
from ember.function import no_grad
from ember.nn.module import Module
from ember.tensor import Tensor

PathLike = str | os.PathLike[str]


# -- helpers ---------------------------------------------------------------------------------------

def _new_figure(width: float, height: float) -> Figure:
    """A Figure with its own Agg canvas (no pyplot, no GUI backend)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _finish(fig: Figure, path: PathLike | None) -> Figure:
    """Save ``fig`` to ``path`` (creating parent folders) when a path is given; return it."""
    if path is not None:
        p = Path(os.fspath(path))
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p)
    return fig


def _to_numpy(a: Any) -> np.ndarray:
    """A Tensor (either backend), a JAX array, a NumPy array or nested lists as a NumPy array."""
    if isinstance(a, Tensor):
        return np.asarray(a.numpy())
    return np.asarray(a)


def _grid_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """Rows and columns for ``n`` panels (near-square unless ``ncols`` is given)."""
    cols = ncols if ncols is not None else math.ceil(math.sqrt(n))
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def _panel_grid(fig: Figure, n: int, ncols: int | None = None) -> list[Any]:
    """``n`` axes in a grid on ``fig``; the unused cells of the last row are not created."""
    rows, cols = _grid_shape(n, ncols)
    return [fig.add_subplot(rows, cols, i + 1) for i in range(n)]


def _positive(value: Any, name: str, owner: str) -> int:
    """``value`` when it is a positive integer, else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _class_colors(k: int) -> np.ndarray:
    """``k`` distinct RGBA colours (tab10, then tab20, then a sampled rainbow)."""
    if k <= 20:
        return np.asarray(matplotlib.colormaps["tab10" if k <= 10 else "tab20"](np.arange(k)))
    return np.asarray(matplotlib.colormaps["turbo"](np.linspace(0.0, 1.0, k)))


class _EvalMode:
    """Eval mode and no gradient recording for a model, each module's own mode restored after."""

    def __init__(self, model: Module) -> None:
        self.model = model
        self._modes: list[tuple[Module, bool]] = []
        self._grad: Any = None

    def __enter__(self) -> None:
        self._modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        self._grad = no_grad()
        self._grad.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._grad.__exit__(*exc)
        for m, mode in self._modes:
            object.__setattr__(m, "training", mode)


def _float_dtype(model: Module) -> Any:
    """The dtype of the model's first floating-point parameter (default float32)."""
    for p in model.parameters():
        if p.dtype.kind == "f":
            return p.dtype
    return backend.default_float


def _as_input(model: Module, a: Any) -> Tensor:
    """``a`` as a Tensor the model can take: floats in the model's parameter dtype."""
    if isinstance(a, Tensor):
        return a
    arr = np.asarray(a)
    if arr.dtype.kind in "biuf":
        return tensor(arr, dtype=_float_dtype(model))
    return tensor(arr)


def _labels(y: Any, n: int, owner: str, name: str = "y") -> np.ndarray:
    """Integer class labels from labels ``(n,)``, ``(n, 1)`` or one-hot/scores ``(n, k)``."""
    arr = _to_numpy(y)
    if arr.ndim == 2 and arr.shape[1] > 1:
        arr = arr.argmax(axis=1)
    elif arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{owner}: {name} must hold one label per sample, shape ({n},), "
                         f"({n}, 1) or ({n}, classes); got {tuple(_to_numpy(y).shape)}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.rint(arr)):
            raise ValueError(f"{owner}: {name} must be integer class labels, got non-integer "
                             f"values")
        arr = np.rint(arr)
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{owner}: {name} must be class labels >= 0, got {int(arr.min())}")
    return arr
