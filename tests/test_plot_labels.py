"""Plots people read without help: titles, axis labels, legends, integer epoch ticks."""

from __future__ import annotations

import contextlib
import io

import matplotlib
import numpy as np

matplotlib.use("Agg")

from matplotlib.ticker import MaxNLocator  # noqa: E402

import ember  # noqa: E402
from ember import nn, plot  # noqa: E402


def _legend(ax):
    leg = ax.get_legend()
    return leg.get_title().get_text(), [t.get_text() for t in leg.get_texts()]


def test_decision_boundary_says_what_the_points_are():
    x = np.array([[-1.0, 0.0], [1.0, 0.5], [0.5, -1.0], [-0.5, 1.0]], np.float32)
    y = np.array([0, 1, 1, 0])
    fig = plot.plot_decision_boundary(nn.Linear(2, 2), x, y, resolution=10, points="test set")
    ax = fig.axes[0]
    assert ax.get_title() == "decision regions of Linear"
    assert ax.get_xlabel() == "x[:, 0] (input feature 0)"
    assert ax.get_ylabel() == "x[:, 1] (input feature 1)"
    assert _legend(ax) == ("test set (true label)\nshading: predicted class",
                           ["class 0", "class 1"])
    # each class's points are drawn in their own collection, at their own coordinates
    offsets = [c.get_offsets().data.tolist() for c in ax.collections[-2:]]
    assert offsets == [x[y == 0].tolist(), x[y == 1].tolist()]


def test_history_has_integer_epoch_ticks_and_labels():
    fig = plot.plot_history({"loss": [0.9, 0.5, 0.4], "val_loss": [1.0, 0.6, 0.5]})
    ax = fig.axes[0]
    fig.canvas.draw()
    assert isinstance(ax.xaxis.get_major_locator(), MaxNLocator)
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "loss")


def test_kernels_show_every_input_channel_or_say_which():
    ember.manual_seed(0)
    conv = nn.Conv2D(2, 3, 3)
    w = conv.weight.numpy()
    fig = plot.plot_kernels(conv, channel="all")
    assert len(fig.axes) == 3 * 2 + 1
    for o in range(3):
        for i in range(2):
            ax = fig.axes[2 * o + i]
            np.testing.assert_array_equal(ax.images[0].get_array(), w[o, i])
            assert ax.get_title() == f"out {o}, in {i}"
    assert fig.texts[0].get_text() == ("Conv2D 2->3 3x3: the kernel of each output channel "
                                       "(columns: the 2 input channels)")
    fig = plot.plot_kernels(conv)
    assert fig.texts[0].get_text().endswith("(input channel 0 of 2)")
    assert fig.axes[-1].get_ylabel() == "weight"  # the colour bar
    fig = plot.plot_kernels(w, channel="mean")
    assert fig.texts[0].get_text() == ("weight: the kernel of each output channel (mean over "
                                       "the 2 input channels)")


def test_param_stats_are_labelled_as_running_statistics():
    model = nn.Linear(3, 2)
    monitor = nn.Monitor(model)
    monitor.step()
    monitor.step()
    fig = plot.plot_param_stats(monitor)
    assert [ax.get_title() for ax in fig.axes] == ["running mean", "running std"]
    assert fig.texts[0].get_text() == ("parameter values: running statistics over all recorded "
                                       "steps so far")
    assert [ax.get_xlabel() for ax in fig.axes] == ["step", "step"]


def test_cli_decision_boundary_names_the_test_set(tmp_path, monkeypatch):
    from ember.cli import main

    seen = {}
    original = plot.plot_decision_boundary

    def spy(*args, **kwargs):
        fig = original(*args, **kwargs)
        seen["title"] = fig.axes[0].get_title()
        seen["legend"] = _legend(fig.axes[0])[0]
        return fig

    monkeypatch.setattr(plot, "plot_decision_boundary", spy)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--preset", "xor", "--epochs", "1", "--runs-dir", str(tmp_path),
                     "--verbose", "0"]) == 0
    assert seen["title"] == "xor: decision regions after 1 epoch"
    assert seen["legend"].startswith("test set (") and "points) (true label)" in seen["legend"]
