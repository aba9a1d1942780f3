"""ember.plot: every figure renders to a non-blank PNG and shows the numbers it was given."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import ember
from ember import nn, plot  # dev extras include matplotlib: a missing one fails here
from ember.data import xor
from ember.train import History


def png_ok(path) -> np.ndarray:
    """The saved image as an RGB array, after checking it exists, is non-empty and not blank."""
    assert path.exists() and path.stat().st_size > 0
    with Image.open(path) as img:
        assert img.format == "PNG"
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.std() > 0
    return pixels


def split_at_x0(classes: int = 2) -> nn.Linear:
    """A linear classifier whose class is 1 exactly where x0 > 0 (ties at x0 == 0 go to 0)."""
    model = nn.Linear(2, classes)
    w = [[-1.0, 0.0], [1.0, 0.0]] if classes == 2 else [[1.0, 0.0]]
    model.weight.data = ember.tensor(w).data
    model.bias.data = ember.zeros(classes).data
    return model


# -- optional dependency ---------------------------------------------------------------------------

def test_import_ember_does_not_import_matplotlib():
    code = "import sys, ember; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_plot_and_the_recorder_are_reachable_from_ember_and_its_callbacks():
    assert ember.plot is plot
    assert ember.callbacks.DecisionBoundaryRecorder is plot.DecisionBoundaryRecorder
    with pytest.raises(AttributeError, match="module 'ember' has no attribute 'plots'"):
        ember.plots  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'Recorder'"):
        ember.callbacks.Recorder  # noqa: B018


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "ember.plot")
    with pytest.raises(ImportError) as err:
        importlib.import_module("ember.plot")
    assert str(err.value) == 'ember.plot needs matplotlib: pip install "ember[plot]"'


# -- plot_history ----------------------------------------------------------------------------------

def _history() -> History:
    h = History()
    for epoch in range(4):
        logs = {"loss": 1.0 / (epoch + 1), "accuracy": 0.5 + 0.1 * epoch, "lr": 0.1 * 0.5 ** epoch}
        if (epoch + 1) % 2 == 0:  # validation_freq=2
            logs.update(val_loss=1.2 / (epoch + 1), val_accuracy=0.45 + 0.1 * epoch)
        h.append(epoch, logs)
    return h


def test_plot_history_one_axes_per_metric_val_at_validated_epochs(tmp_path):
    fig = plot.plot_history(_history(), path=tmp_path / "sub" / "history.png",
                            validation_freq=2)
    png_ok(tmp_path / "sub" / "history.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    train, val = fig.axes[0].lines
    assert train.get_xdata().tolist() == [1, 2, 3, 4]
    assert val.get_xdata().tolist() == [2, 4]
    np.testing.assert_allclose(val.get_ydata(), [0.6, 0.3])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["train",
                                                                           "validation"]
    # without validation_freq the frequency 4 // 2 = 2 is inferred
    fig = plot.plot_history(_history())
    assert fig.axes[1].lines[1].get_xdata().tolist() == [2, 4]
    # the epochs a list validation_freq names (1-based, as fit)
    h = {"loss": [3.0, 2.0, 1.0], "val_loss": [2.5, 0.5]}
    fig = plot.plot_history(h, validation_freq=[1, 3])
    assert fig.axes[0].lines[1].get_xdata().tolist() == [1, 3]


def test_plot_history_lr_on_log_scale_and_plain_dict():
    fig = plot.plot_history(_history(), metrics=["loss", "lr"])
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "log"]
    fig = plot.plot_history({"accuracy": [0.1, 0.2], "loss": [2.0, 1.0]})
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert fig.axes[0].get_legend() is None  # nothing to tell apart
    fig = plot.plot_history(_history().to_dict(), metrics=["val_accuracy"])
    assert [ax.get_title() for ax in fig.axes] == ["accuracy"]


def test_plot_history_errors():
    with pytest.raises(KeyError, match=re.escape(
            "plot_history: no 'f1' in the history; it has ['loss', 'accuracy', 'lr']")):
        plot.plot_history(_history(), metrics=["f1"])
    with pytest.raises(ValueError, match="validation_freq=3 selects 1 of the 4 epochs, but "
                                         "'val_loss' has 2 values"):
        plot.plot_history(_history(), validation_freq=3)
    with pytest.warns(UserWarning, match="drawing them at the last 4 epochs"):
        fig = plot.plot_history({"loss": [1.0] * 10, "val_loss": [1.0] * 4})
    assert fig.axes[0].lines[1].get_xdata().tolist() == [7, 8, 9, 10]
    with pytest.raises(TypeError, match="expected an ember History"):
        plot.plot_history([1.0, 2.0])


# -- decision boundaries ---------------------------------------------------------------------------

def test_decision_grid_is_exactly_the_hand_set_boundary(backend):
    x = np.array([[-2.0, -1.0], [1.0, 3.0], [0.5, 0.0]], dtype=np.float32)
    xx, yy, classes = plot.decision_grid(split_at_x0(), x, resolution=41)
    assert xx.shape == yy.shape == classes.shape == (41, 41)
    np.testing.assert_allclose([xx.min(), xx.max(), yy.min(), yy.max()],
                               [-2.3, 1.3, -1.4, 3.4], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(classes, (xx > 0).astype(np.int64))
    # one logit column: class 1 where the logit x0 > 0 (or > threshold)
    _, _, binary = plot.decision_grid(split_at_x0(classes=1), x, resolution=41)
    np.testing.assert_array_equal(binary, (xx > 0).astype(np.int64))
    _, _, shifted = plot.decision_grid(split_at_x0(classes=1), x, resolution=41, threshold=0.5)
    assert (shifted == (xx > 0.5)).all() and shifted.sum() < binary.sum()


def test_decision_grid_restores_each_modules_mode():
    model = nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    model[1].eval()
    xx, _, a = plot.decision_grid(model, np.array([[0.0, 0.0], [1.0, 1.0]]), 30)
    _, _, b = plot.decision_grid(model, np.array([[0.0, 0.0], [1.0, 1.0]]), 30)
    np.testing.assert_array_equal(a, b)  # dropout off while evaluating: the same classes
    assert [m.training for m in model.modules()] == [True, True, False, True]
    assert ember.is_grad_enabled()


def test_plot_decision_boundary_fills_both_classes(backend, tmp_path):
    from matplotlib.colors import to_rgb

    x = np.array([[-1.0, -1.0], [1.0, 1.0], [-0.5, 0.8], [0.7, -0.4]], dtype=np.float32)
    y = np.array([0, 1, 0, 1])
    path = tmp_path / "boundary.png"
    fig = plot.plot_decision_boundary(split_at_x0(), x, y, path, resolution=50, title="x0 > 0")
    pixels = png_ok(path).astype(np.float64)
    assert fig.axes[0].get_title() == "x0 > 0"
    # each class region is filled with its colour (tab10 blue / orange at alpha 0.35 on white)
    for color in ("tab:blue", "tab:orange"):
        rgb = np.array(to_rgb(color))
        light = 255 * (1 - 0.35 * (1 - rgb))
        close = np.abs(pixels - light).max(axis=-1) <= 3
        assert close.sum() > 5000, color


def test_plot_decision_boundary_into_given_axes_and_errors():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot(1, 2, 2)
    x, y = xor(20, seed=0)
    assert plot.plot_decision_boundary(split_at_x0(), x, y, resolution=10, ax=ax) is fig
    with pytest.raises(ValueError, match=re.escape(
            "plot_decision_boundary: x must be 2-D points of shape (n, 2), got shape (20, 3)")):
        plot.plot_decision_boundary(nn.Linear(3, 2), np.zeros((20, 3)), y)
    with pytest.raises(ValueError, match=re.escape("y must hold one label per sample, shape "
                                                   "(20,), (20, 1) or (20, classes); got (19,)")):
        plot.plot_decision_boundary(split_at_x0(), x, y[:19])


def test_recorder_frames_and_gif(backend, tmp_path):
    ember.manual_seed(0)
    x, y = xor(64, seed=0)
    model = nn.Sequential(nn.Linear(2, 16, activation="tanh"), nn.Linear(16, 2))
    rec = plot.DecisionBoundaryRecorder(x, y, every=2, resolution=30)
    trainer = ember.Trainer(model, "cross_entropy", ember.optim.Adam(model.parameters(), lr=0.05),
                            metrics=["accuracy"])
    trainer.fit(x, y, epochs=7, batch_size=16, callbacks=[rec], verbose=0)
    assert [f.epoch for f in rec.frames] == [0, 2, 4, 6, 7]
    assert rec.frames[0].title() == "epoch 0"
    assert re.fullmatch(r"epoch 7  loss \d\.\d{4}  acc \d\.\d{3}", rec.frames[-1].title())
    assert rec.frames[-1].loss == pytest.approx(trainer.history["loss"][-1])
    # the last frame is the trained model's grid
    np.testing.assert_array_equal(rec.frames[-1].classes,
                                  plot.decision_grid(model, x, resolution=30)[2])

    path = tmp_path / "anim" / "xor.gif"
    fig = plot.animate_decision_boundary(rec, path=path, fps=4)
    assert fig.axes[0].get_title() == rec.frames[-1].title()
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 5
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")).astype(np.int16))
    assert all(f.std() > 0 for f in frames)
    assert any(np.abs(frames[i] - frames[0]).max() > 0 for i in range(1, 5))

    # a bare list of frames (no points), and the errors
    plot.animate_decision_boundary(rec.frames[:3], path=tmp_path / "bare.gif")
    with Image.open(tmp_path / "bare.gif") as gif:
        assert gif.n_frames == 3
    with pytest.raises(ValueError, match="animate_decision_boundary: path is required"):
        plot.animate_decision_boundary(rec)
    with pytest.raises(ValueError, match="there are no frames"):
        plot.animate_decision_boundary([], path=tmp_path / "none.gif")
    with pytest.raises(ValueError, match="every must be a positive integer, got 0"):
        plot.DecisionBoundaryRecorder(x, y, every=0)


# -- images and confusion matrices -----------------------------------------------------------------

def test_plot_images_titles_and_shapes(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((10, 784)).astype(np.float32)
    fig = plot.plot_images(ember.tensor(x), np.arange(10), [0, 1, 2, 9, 4, 5, 6, 7, 8, 9],
                           tmp_path / "digits.png", ncols=4, max_images=6)
    png_ok(tmp_path / "digits.png")
    assert len(fig.axes) == 6
    titles = [(ax.get_title(), ax.title.get_color()) for ax in fig.axes]
    assert titles[2] == ("2 / pred 2", "black") and titles[3] == ("3 / pred 9", "red")
    np.testing.assert_array_equal(fig.axes[5].images[0].get_array(), x[5].reshape(28, 28))
    fig = plot.plot_images(x[:2], [1, 0], class_names=["cat", "dog"])
    assert [ax.get_title() for ax in fig.axes] == ["true dog", "true cat"]
    fig = plot.plot_images(x[:2], y_pred=np.array([[0.1, 0.9], [0.8, 0.2]]))
    assert [ax.get_title() for ax in fig.axes] == ["pred 1", "pred 0"]
    for shape in [(3, 28, 28), (3, 1, 28, 28), (3, 3, 8, 8), (3, 8, 8, 3)]:
        imgs = rng.random(shape)
        fig = plot.plot_images(imgs, path=tmp_path / "shape.png")
        png_ok(tmp_path / "shape.png")
        assert fig.axes[0].images[0].get_array().shape[:2] in [(28, 28), (8, 8)]
    u8 = (rng.random((2, 4, 4, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(plot.plot_images(u8).axes[1].images[0].get_array(), u8[1])
    with pytest.raises(ValueError, match=re.escape(
            "plot_images: flat images need a square number of pixels (like 784 = 28 x 28), "
            "got shape (2, 783)")):
        plot.plot_images(np.zeros((2, 783)))


def test_plot_confusion_matrix_counts_match_an_oracle(tmp_path):
    rng = np.random.default_rng(3)
    t, p = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    oracle = np.zeros((4, 4), dtype=int)
    for a, b in zip(t, p):
        oracle[a, b] += 1
    np.testing.assert_array_equal(plot.confusion_matrix(t, p), oracle)
    fig = plot.plot_confusion_matrix(t, p, tmp_path / "cm.png", class_names=list("abcd"))
    png_ok(tmp_path / "cm.png")
    ax = fig.axes[0]
    assert [txt.get_text() for txt in ax.texts] == [str(v) for v in oracle.ravel()]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == list("abcd")
    fig = plot.plot_confusion_matrix(oracle, normalize=True)
    rows = oracle / oracle.sum(axis=1, keepdims=True)
    assert [txt.get_text() for txt in fig.axes[0].texts] == [f"{v:.2f}" for v in rows.ravel()]
    # scores as predictions; class_names fix the number of classes
    scores = np.eye(3)[[2, 0]]
    cm = plot.plot_confusion_matrix([2, 1], scores, class_names=["x", "y", "z"]).axes[0].texts
    assert [txt.get_text() for txt in cm] == ["0", "0", "0", "1", "0", "0", "0", "0", "1"]
    with pytest.raises(ValueError, match=re.escape("a confusion matrix must be square (k, k), "
                                                   "got shape (2, 3)")):
        plot.plot_confusion_matrix(np.zeros((2, 3)))


# -- kernels and feature maps ----------------------------------------------------------------------

def test_plot_kernels_draws_each_filter(tmp_path):
    conv = nn.Conv2D(2, 5, 3)
    w = conv.weight.numpy()
    fig = plot.plot_kernels(conv, tmp_path / "kernels.png")
    png_ok(tmp_path / "kernels.png")
    assert len(fig.axes) == 5 + 1  # the kernels and a colour bar
    for i in range(5):
        np.testing.assert_array_equal(fig.axes[i].images[0].get_array(), w[i, 0])
    limit = np.abs(w[:, 0]).max()
    assert fig.axes[0].images[0].get_clim() == (-limit, limit)
    fig = plot.plot_kernels(w, channel="mean", max_kernels=3)
    assert len(fig.axes) == 3 + 1
    np.testing.assert_allclose(fig.axes[2].images[0].get_array(), w[2].mean(axis=0))
    with pytest.raises(ValueError, match=re.escape(
            "expected a Conv2D layer or a 4-D weight (out_channels, in_channels, kH, kW), got "
            "Linear with weight shape (3, 2)")):
        plot.plot_kernels(nn.Linear(2, 3))
    with pytest.raises(ValueError, match=re.escape("channel must be an input channel in [0, 2), "
                                                   "'mean' or 'all', got 2")):
        plot.plot_kernels(conv, channel=2)


def test_plot_feature_maps_shows_the_layer_output(tmp_path):
    ember.manual_seed(1)
    cnn = nn.Sequential(nn.Conv2D(1, 3, 3, padding="same"), nn.ReLU(), nn.Dropout(0.5),
                        nn.Flatten(), nn.Linear(3 * 6 * 6, 4))
    sample = np.random.default_rng(0).random((1, 6, 6)).astype(np.float32)
    cnn.eval()
    expected = cnn[1](cnn[0](ember.tensor(sample[None]))).numpy()
    head = cnn(ember.tensor(sample[None])).numpy()
    cnn.train()
    fig = plot.plot_feature_maps(cnn, sample, "1", tmp_path / "maps.png")
    png_ok(tmp_path / "maps.png")
    assert len(fig.axes) == 3
    for i in range(3):
        np.testing.assert_allclose(fig.axes[i].images[0].get_array(), expected[0, i], rtol=1e-6)
    assert cnn.training and cnn[2].training
    # a Module instance, a batch of one, a (1, features) output as bars
    fig = plot.plot_feature_maps(cnn, sample[None], cnn[4])
    np.testing.assert_allclose([bar.get_height() for bar in fig.axes[0].patches], head[0],
                               rtol=1e-6)
    with pytest.raises(KeyError, match=re.escape(
            "plot_feature_maps: the model has no layer '5'; its layers are "
            "['0', '1', '2', '3', '4']")):
        plot.plot_feature_maps(cnn, sample, "5")
    with pytest.raises(ValueError, match=re.escape("x must be one sample, (features,) or "
                                                   "(C, H, W), or a batch of one")):
        plot.plot_feature_maps(cnn, np.zeros((2, 1, 6, 6)), "0")
    with pytest.raises(ValueError, match="layer 'Linear' was not called"):
        plot.plot_feature_maps(cnn, sample, nn.Linear(2, 2))


# -- monitor statistics and histograms -------------------------------------------------------------

def _monitored():
    ember.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4, activation="relu"), nn.Linear(4, 1))
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    monitor = nn.Monitor(model)
    x = ember.tensor(np.random.default_rng(0).random((8, 3)).astype(np.float32))
    for _ in range(5):
        model.zero_grad()
        (model(x) ** 2).mean().backward()
        monitor.step()
        opt.step()
    return model, monitor


def test_plot_grad_norms_and_param_stats(tmp_path):
    model, monitor = _monitored()
    hist = monitor.history()
    fig = plot.plot_grad_norms(monitor, tmp_path / "norms.png")
    png_ok(tmp_path / "norms.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.lines] == ["0.weight", "0.bias", "1.weight",
                                                       "1.bias"]
    np.testing.assert_array_equal(ax.lines[2].get_ydata(), hist["1.weight/grad_norm"])
    assert ax.lines[2].get_xdata().tolist() == [1, 2, 3, 4, 5]
    assert plot.plot_grad_norms(hist, log=False).axes[0].get_yscale() == "linear"

    fig = plot.plot_param_stats(monitor, tmp_path / "stats.png")
    png_ok(tmp_path / "stats.png")
    mean_ax, std_ax = fig.axes
    np.testing.assert_array_equal(mean_ax.lines[0].get_ydata(), hist["0.weight/mean"])
    np.testing.assert_allclose(std_ax.lines[1].get_ydata(), np.sqrt(hist["0.bias/var"]))
    with pytest.raises(ValueError, match=re.escape(
            "plot_grad_norms: no '<parameter>/grad_norm' records (call monitor.step()")):
        plot.plot_grad_norms(nn.Monitor(model))


def test_plot_histograms(tmp_path):
    model, _ = _monitored()
    fig = plot.plot_histograms(model, tmp_path / "hist.png", bins=7)
    png_ok(tmp_path / "hist.png")
    assert len(fig.axes) == 8
    assert [ax.get_title() for ax in fig.axes[:2]] == ["0.weight (4, 3)", "0.weight.grad"]
    counts = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_array_equal(counts, np.histogram(model[0].weight.numpy(), bins=7)[0])
    model.zero_grad()
    assert len(plot.plot_histograms(model).axes) == 4  # no gradients: values only
    model[1].bias.grad = ember.ones(1)
    fig = plot.plot_histograms(model)
    assert len(fig.axes) == 8 and fig.axes[1].texts[0].get_text() == "no gradient"
    assert len(plot.plot_histograms(model, grads=False).axes) == 4
