"""Figures for training and models, on matplotlib, one module per subject: ``curves`` (training
history), ``boundaries`` (decision boundaries and their animation), ``images`` (image grids,
confusion matrices), ``kernels`` (convolution kernels, feature maps) and ``stats`` (parameter and
gradient statistics).

matplotlib is an optional extra (``pip install "ember[plot]"``); ``import ember`` never imports
it. Figures are made with ``matplotlib.figure.Figure`` and an Agg canvas, not with pyplot: no
GUI, no global figure state, nothing to close, safe in threads and on machines without a display.

Every function returns the ``Figure`` and takes ``path=None``: give a file name (``.png``,
``.svg``, ``.pdf``, ... by its extension; parent folders are created) to save it as well. Inputs
may be ember Tensors, NumPy arrays or JAX arrays. In a notebook, display a figure by leaving it
as the cell's value.

Example:
    >>> import ember
    >>> from ember import nn, plot
    >>> from ember.data import xor
    >>> x, y = xor(64, seed=0)
    >>> model = nn.Sequential(nn.Linear(2, 8, activation="tanh"), nn.Linear(8, 2))
    >>> fig = plot.plot_decision_boundary(model, x, y, resolution=20)
    >>> type(fig).__name__
    'Figure'
"""

from __future__ import annotations

try:
    import matplotlib  # noqa: F401  (first: say how to install it when it is missing)
except ImportError as e:  # pragma: no cover - exercised with matplotlib hidden in the tests
    raise ImportError('ember.plot needs matplotlib: pip install "ember[plot]"') from e

from ember.plot.boundaries import (
    DecisionBoundaryRecorder,
    DecisionFrame,
    animate_decision_boundary,
    decision_grid,
    plot_decision_boundary,
)
from ember.plot.curves import plot_history, plot_lr_find
from ember.plot.images import confusion_matrix, plot_confusion_matrix, plot_images
from ember.plot.kernels import plot_feature_maps, plot_kernels
from ember.plot.stats import plot_grad_norms, plot_histograms, plot_param_stats

__all__ = [
    "plot_history",
    "plot_lr_find",
    "decision_grid",
    "plot_decision_boundary",
    "DecisionBoundaryRecorder",
    "DecisionFrame",
    "animate_decision_boundary",
    "plot_images",
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_kernels",
    "plot_feature_maps",
    "plot_grad_norms",
    "plot_param_stats",
    "plot_histograms",
]
