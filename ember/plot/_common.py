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

from ember.train.boundaries import (  # noqa: F401  (host-side helpers the plots share)
    _as_input,
    _EvalMode,
    _labels,
    _positive,
    _to_numpy,
)

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


def _grid_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """Rows and columns for ``n`` panels (near-square unless ``ncols`` is given)."""
    cols = ncols if ncols is not None else math.ceil(math.sqrt(n))
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def _panel_grid(fig: Figure, n: int, ncols: int | None = None) -> list[Any]:
    """``n`` axes in a grid on ``fig``; the unused cells of the last row are not created."""
    rows, cols = _grid_shape(n, ncols)
    return [fig.add_subplot(rows, cols, i + 1) for i in range(n)]


def _class_colors(k: int) -> np.ndarray:
    """``k`` distinct RGBA colours (tab10, then tab20, then a sampled rainbow)."""
    if k <= 20:
        return np.asarray(matplotlib.colormaps["tab10" if k <= 10 else "tab20"](np.arange(k)))
    return np.asarray(matplotlib.colormaps["turbo"](np.linspace(0.0, 1.0, k)))


