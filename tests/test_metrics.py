"""ember.metrics: every metric against a NumPy reference on both backends, accumulation over
batches, the same numbers inside ember.jit and a scan, name resolution and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ember
from ember import backend as _backend
from ember import metrics, nn
from ember.train.metrics import (
    F1,
    MAE,
    MSE,
    Accuracy,
    ConfusionMatrix,
    MeanMetric,
    Precision,
    Recall,
    TopKAccuracy,
    get_metric,
)

N, C = 24, 4


# -- NumPy references (written independently of the implementation) -----------------------------

def ref_confusion(pred, true, n):
    m = np.zeros((n, n), np.int64)
    for p, t in zip(pred.ravel(), true.ravel()):
        m[int(t), int(p)] += 1
    return m


def ref_macro(pred, true, n, of):
    """scikit-learn's average="macro" with zero_division=0, over labels present in either."""
    scores = []
    for c in sorted(set(pred.ravel().tolist()) | set(true.ravel().tolist())):
        tp = np.sum((pred == c) & (true == c))
        fp = np.sum((pred == c) & (true != c))
        fn = np.sum((pred != c) & (true == c))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        scores.append({"precision": prec, "recall": rec, "f1": f1}[of])
    return float(np.mean(scores))


def ref_top_k(scores, labels, k):
    order = np.argsort(-scores, axis=-1)[:, :k]  # random scores: no ties
    return float(np.mean([labels[i] in order[i] for i in range(len(labels))]))


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def data(rng):
    logits = rng.standard_normal((N, C)).astype(np.float32)
    labels = rng.integers(0, C, N)
    labels[:8] = logits[:8].argmax(-1)  # some right, some wrong
    return logits, labels


def value(metric, y_pred, y_true):
    return np.asarray(metric(ember.tensor(y_pred), ember.tensor(y_true)).numpy())


# -- every metric against its reference -----------------------------------------------------------

def test_accuracy_sparse_logits_probabilities_onehot(backend, data):
    logits, labels = data
    expected = np.mean(logits.argmax(-1) == labels)
    onehot = np.eye(C, dtype=np.float32)[labels]
    assert 0.2 < expected < 0.9
    assert value(Accuracy(), logits, labels) == expected
    assert value(Accuracy(), softmax(logits), labels) == expected
    assert value(Accuracy(), logits, labels[:, None]) == expected  # Keras' (N, 1) labels
    assert value(Accuracy(), logits, onehot) == expected
    assert value(Accuracy(kind="categorical"), logits, onehot) == expected
    assert value(Accuracy(kind="sparse_categorical"), logits, labels) == expected
    assert value(Accuracy(), labels, labels) == 1.0  # integer predictions: equality


def test_accuracy_binary_threshold(backend, rng):
    probs = rng.random(N).astype(np.float32)
    targets = (rng.random(N) > 0.5).astype(np.float32)
    expected = np.mean((probs > 0.5) == (targets > 0.5))
    assert value(Accuracy(), probs, targets) == expected
    assert value(Accuracy(), probs[:, None], targets) == expected  # (N, 1) predictions
    assert value(Accuracy(kind="binary"), probs[:, None], targets[:, None]) == expected
    logits = (probs - 0.5) * 4
    assert value(Accuracy(kind="binary", threshold=0.0), logits, targets) == expected
    assert value(Accuracy(kind="binary", threshold=0.9), probs, targets) == np.mean(
        (probs > 0.9) == (targets > 0.5))
    # multi-label binary targets of shape (N, 3): every element counts
    p3, t3 = rng.random((N, 3)), (rng.random((N, 3)) > 0.5).astype(np.float64)
    assert value(Accuracy(kind="binary"), p3, t3) == np.mean((p3 > 0.5) == t3)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_top_k_accuracy(backend, data, k):
    logits, labels = data
    expected = ref_top_k(logits, labels, min(k, C))
    assert value(TopKAccuracy(k=k), logits, labels) == expected
    assert value(TopKAccuracy(k=k), logits, np.eye(C)[labels]) == expected  # one-hot
    if k == 1:
        assert expected == np.mean(logits.argmax(-1) == labels)


def test_top_k_ties_count_and_nan_does_not(backend):
    scores = np.array([[1.0, 1.0, 1.0, 0.0], [np.nan, 0.0, 0.0, 0.0], [0.0, 2.0, 1.0, 3.0]])
    # row 0: two others tie with the label, none is higher; row 1: NaN label score; row 2: rank 3
    got = TopKAccuracy(k=1).update(TopKAccuracy(k=1).init(), ember.tensor(scores),
                                   ember.tensor([2, 0, 2]))
    assert got["total"].item() == 1.0 and got["count"].item() == 3.0
    assert value(TopKAccuracy(k=3), scores, np.array([2, 0, 2])) == 2 / 3


@pytest.mark.parametrize("cls, ref", [(MSE, lambda d: np.mean(d * d)),
                                      (MAE, lambda d: np.mean(np.abs(d)))])
def test_mse_mae(backend, rng, cls, ref):
    p = rng.standard_normal((N, 3)).astype(np.float32)
    t = rng.standard_normal((N, 3)).astype(np.float32)
    expected = ref(p.astype(np.float64) - t.astype(np.float64))
    np.testing.assert_allclose(value(cls(), p, t), expected, rtol=1e-12)
    np.testing.assert_allclose(value(cls(), p[:, :1], t[:, 0]), ref(
        p[:, 0].astype(np.float64) - t[:, 0]), rtol=1e-12)  # (N, 1) predictions, (N,) targets


@pytest.mark.parametrize("cls, of", [(Precision, "precision"), (Recall, "recall"), (F1, "f1")])
def test_precision_recall_f1_macro(backend, data, cls, of):
    logits, labels = data
    pred = logits.argmax(-1)
    expected = ref_macro(pred, labels, C, of)
    assert 0.2 < expected < 0.9
    np.testing.assert_allclose(value(cls(num_classes=C), logits, labels), expected, rtol=1e-14)
    np.testing.assert_allclose(value(cls(num_classes=C), pred, labels), expected, rtol=1e-14)
    np.testing.assert_allclose(value(cls(), softmax(logits), np.eye(C)[labels]), expected,
                               rtol=1e-14)
    # a class absent from y_true and y_pred is not averaged in (scikit-learn's labels=None)
    np.testing.assert_allclose(value(cls(num_classes=C + 3), pred, labels), expected, rtol=1e-14)


def test_precision_recall_f1_hand_computed(backend):
    # true 0 0 1 1 1 2, pred 0 1 1 1 2 2: per class precision 1, 2/3, 1/2; recall 1/2, 2/3, 1
    pred, true = np.array([0, 1, 1, 1, 2, 2]), np.array([0, 0, 1, 1, 1, 2])
    assert value(Precision(num_classes=3), pred, true) == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    assert value(Recall(num_classes=3), pred, true) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert value(F1(num_classes=3), pred, true) == pytest.approx((2 / 3 + 2 / 3 + 2 / 3) / 3)
    # a predicted class with no samples scores 0 in recall's denominator... and precision 0
    assert value(Precision(num_classes=3), np.array([2, 2]), np.array([0, 0])) == 0.0


def test_binary_precision_thresholds(backend, rng):
    probs = rng.random(N)
    targets = (rng.random(N) > 0.5).astype(np.float64)
    pred = (probs > 0.5).astype(int)
    expected = ref_macro(pred, targets.astype(int), 2, "precision")
    np.testing.assert_allclose(value(Precision(), probs, targets), expected, rtol=1e-14)
    np.testing.assert_allclose(value(Precision(), probs[:, None], targets), expected, rtol=1e-14)
    np.testing.assert_allclose(value(Precision(threshold=0.0), probs - 0.5, targets), expected,
                               rtol=1e-14)


def test_confusion_matrix(backend, data):
    logits, labels = data
    got = ConfusionMatrix(num_classes=C)(ember.tensor(logits), ember.tensor(labels))
    assert got.dtype == np.int64 and got.shape == (C, C)
    np.testing.assert_array_equal(got.numpy(), ref_confusion(logits.argmax(-1), labels, C))
    assert got.numpy().sum() == N


def test_mean_metric_wraps_a_function(backend, rng):
    p, t = rng.standard_normal(N), rng.standard_normal(N)
    m = get_metric(lambda yp, yt: (yp - yt).abs(), name="l1")
    assert isinstance(m, MeanMetric) and m.name == "l1"
    np.testing.assert_allclose(value(m, p, t), np.mean(np.abs(p - t)), rtol=1e-12)


# -- accumulation, purity, compilation ------------------------------------------------------------

ALL = [
    lambda: Accuracy(), lambda: TopKAccuracy(k=2), lambda: MSE(), lambda: MAE(),
    lambda: Precision(num_classes=C), lambda: Recall(num_classes=C), lambda: F1(num_classes=C),
    lambda: ConfusionMatrix(num_classes=C),
]


def batches(metric, logits, labels):
    if isinstance(metric, (MSE, MAE)):
        return logits, softmax(logits) + 0.1  # regression: same shapes
    return logits, labels


@pytest.mark.parametrize("make", ALL)
def test_batches_accumulate_to_the_metric_of_the_whole(backend, data, make):
    metric = make()
    y_pred, y_true = batches(metric, *data)
    state = metric.init()
    cuts = [(0, 5), (5, 6), (6, 17), (17, N)] if backend == "numpy" else [(0, 8), (8, 16), (16, N)]
    for lo, hi in cuts:  # (on jax, eager ops compile once per shape: few shapes keep it fast)
        state = metric.update(state, ember.tensor(y_pred[lo:hi]), ember.tensor(y_true[lo:hi]))
    whole = metric(ember.tensor(y_pred), ember.tensor(y_true))
    np.testing.assert_allclose(metric.result(state).numpy(), whole.numpy(), rtol=1e-14)


@pytest.mark.parametrize("make", ALL)
def test_update_is_pure_and_records_no_graph(backend, data, make):
    metric = make()
    y_pred, y_true = batches(metric, *data)
    pred = ember.tensor(y_pred, requires_grad=True)
    state = metric.init()
    before = {k: v.numpy().copy() for k, v in state.items()}
    new = metric.update(state, pred, ember.tensor(y_true))
    for k, v in state.items():
        np.testing.assert_array_equal(v.numpy(), before[k])  # the old state is unchanged
    assert all(not v.requires_grad and v.grad_fn is None for v in new.values())
    assert metric.result(new).grad_fn is None
    assert pred.grad is None


@pytest.mark.parametrize("make", ALL)
def test_update_inside_jit_equals_eager(data, make):
    ember.set_backend("jax")
    metric = make()
    y_pred, y_true = batches(metric, *data)
    step = ember.jit(lambda state, p, t: metric.update(state, p, t))
    compiled, eager = metric.init(), metric.init()
    for lo, hi in [(0, 8), (8, 16), (16, 24)]:
        p, t = ember.tensor(y_pred[lo:hi]), ember.tensor(y_true[lo:hi])
        compiled = step(compiled, p, t)
        eager = metric.update(eager, p, t)
    assert step.trace_count == 1  # the state's structure, shapes and dtypes never change
    for k in eager:
        assert compiled[k].dtype == eager[k].dtype == np.float64
        np.testing.assert_allclose(compiled[k].numpy(), eager[k].numpy(), rtol=1e-14)
    np.testing.assert_allclose(metric.result(compiled).numpy(), metric.result(eager).numpy(),
                               rtol=1e-14)


@pytest.mark.parametrize("make", ALL)
def test_update_in_a_scan_over_an_epoch(backend, data, make):
    """The trainer's whole-epoch mode: the metric state is part of a scan's carry."""
    metric = make()
    y_pred, y_true = batches(metric, *data)
    xs = ember.tensor(y_pred.reshape(3, 8, *y_pred.shape[1:]))
    ys = ember.tensor(y_true.reshape(3, 8, *y_true.shape[1:]))

    @ember.jit
    def epoch(xs, ys):
        def body(carry, batch):
            state = {k: ember.Tensor(v) for k, v in carry.items()}
            state = metric.update(state, ember.Tensor(batch[0]), ember.Tensor(batch[1]))
            return {k: v.data for k, v in state.items()}, batch[0].sum()
        init = {k: v.data for k, v in metric.init().items()}
        final, _ = _backend.get().scan(body, init, (xs.data, ys.data))
        return {k: ember.Tensor(v) for k, v in final.items()}

    state = epoch(xs, ys)
    whole = metric(ember.tensor(y_pred), ember.tensor(y_true))
    np.testing.assert_allclose(metric.result(state).numpy(), whole.numpy(), rtol=1e-14)


def test_metric_inside_a_compiled_training_step(data):
    ember.set_backend("jax")
    ember.manual_seed(0)
    logits, labels = data
    model = nn.Linear(C, C)
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    acc = Accuracy()

    @ember.jit
    def step(model, opt, state, x, y):
        out = model(x)
        loss = nn.SoftmaxCrossEntropy()(out, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss, acc.update(state, out, y)

    state = acc.init()
    expected = 0.0
    for lo in (0, 8, 16):
        x, y = ember.tensor(logits[lo:lo + 8]), ember.tensor(labels[lo:lo + 8])
        with ember.no_grad():
            expected += float(np.sum(model(x).numpy().argmax(-1) == labels[lo:lo + 8]))
        _, state = step(model, opt, state, x, y)
    assert step.trace_count == 1
    assert acc.result(state).item() == expected / N


def test_lazy_num_classes(backend, data):
    logits, labels = data
    f1 = F1()
    assert f1.init() == {}
    assert f1.result({}).item() == 0.0
    state = f1.update(f1.init(), ember.tensor(logits[:4]), ember.tensor(labels[:4]))
    assert f1.num_classes == C and state["matrix"].shape == (C, C)
    assert f1.init()["matrix"].shape == (C, C)  # later epochs start from the full state
    # the empty-batch trick gives the initial state without counting anything
    cm = ConfusionMatrix()
    empty = cm.update(cm.init(), ember.tensor(logits[:0]), ember.tensor(labels[:0]))
    np.testing.assert_array_equal(cm.result(empty).numpy(), np.zeros((C, C)))


def test_empty_state_results_are_zero(backend):
    for metric in (Accuracy(), TopKAccuracy(), MSE(), MAE(), Precision(num_classes=2)):
        assert metric.result(metric.init()).item() == 0.0


# -- names and resolution -------------------------------------------------------------------------

def test_ember_metrics_is_the_module():
    assert ember.metrics is metrics
    assert ember.metrics.get_metric is get_metric
    from ember.train import metrics as from_train
    assert from_train is metrics


@pytest.mark.parametrize("name, cls, options", [
    ("accuracy", Accuracy, {}),
    ("acc", Accuracy, {}),
    ("binary_accuracy", Accuracy, {"kind": "binary"}),
    ("categorical_accuracy", Accuracy, {"kind": "categorical"}),
    ("sparse_categorical_accuracy", Accuracy, {"kind": "sparse_categorical"}),
    ("top_k_accuracy", TopKAccuracy, {"k": 5}),
    ("top5", TopKAccuracy, {"k": 5}),
    ("top2", TopKAccuracy, {"k": 2}),
    ("mse", MSE, {}),
    ("mean_absolute_error", MAE, {}),
    ("precision", Precision, {}),
    ("recall", Recall, {}),
    ("f1", F1, {}),
    ("confusion_matrix", ConfusionMatrix, {}),
])
def test_get_metric_names(name, cls, options):
    m = get_metric(name.upper())
    assert type(m) is cls and m.name == name
    for k, v in options.items():
        assert getattr(m, k) == v
    again = get_metric(m.config())
    assert type(again) is cls and repr(again) == repr(m)


@pytest.mark.parametrize("loss, kind, threshold", [
    (None, "auto", 0.5),
    (nn.BinaryCrossentropy(), "binary", 0.5),
    (nn.BinaryCrossentropy(from_logits=True), "binary", 0.0),
    ("binary_crossentropy", "binary", 0.5),
    ({"type": "binary_crossentropy", "from_logits": True}, "binary", 0.0),
    (nn.CategoricalCrossentropy(from_logits=True), "categorical", 0.5),
    (nn.SparseCategoricalCrossentropy(), "sparse_categorical", 0.5),
    (nn.SoftmaxCrossEntropy(), "auto", 0.5),
    (nn.CrossEntropyLoss(), "auto", 0.5),
    (nn.MSE(), "auto", 0.5),
    (0.5 * nn.BinaryCrossentropy(from_logits=True) + 0.5 * nn.MSE(), "binary", 0.0),
    ([(nn.SparseCategoricalCrossentropy(), 1.0), (nn.MSE(), 0.1)], "sparse_categorical", 0.5),
])
def test_accuracy_resolved_from_the_loss(loss, kind, threshold):
    m = get_metric("accuracy", loss=loss)
    assert (m.kind, m.threshold) == (kind, threshold)


def test_loss_sets_the_binary_threshold_of_class_metrics():
    logits_loss = nn.BinaryCrossentropy(from_logits=True)
    for name in ("precision", "recall", "f1", "confusion_matrix"):
        assert get_metric(name, loss=logits_loss).threshold == 0.0
    assert get_metric("binary_accuracy", loss=logits_loss).threshold == 0.0
    assert get_metric("categorical_accuracy", loss=logits_loss).kind == "categorical"
    assert get_metric("f1", num_classes=10).num_classes == 10
    assert get_metric("top_k_accuracy", k=3).k == 3
    m = Accuracy()
    assert get_metric(m, loss=logits_loss) is m  # a Metric is returned as is


# -- errors ---------------------------------------------------------------------------------------

def test_unknown_metric_lists_the_names():
    with pytest.raises(ValueError, match="unknown metric 'acuracy'; valid names: accuracy, acc, "
                                         "binary_accuracy, .*confusion_matrix, top<k>"):
        get_metric("acuracy")
    with pytest.raises(TypeError, match="a metric is a name, a config dict, a Metric or a "
                                        "function fn\\(y_pred, y_true\\), got int"):
        get_metric(3)


def test_bad_options():
    with pytest.raises(ValueError, match="accuracy: unknown kind 'multi'; valid kinds: auto, "
                                         "binary, categorical, sparse_categorical"):
        Accuracy(kind="multi")
    with pytest.raises(ValueError, match="top_k_accuracy: k must be a positive integer, got 0"):
        TopKAccuracy(k=0)
    with pytest.raises(ValueError, match="f1: num_classes must be an integer >= 2, got 1"):
        F1(num_classes=1)


def test_shape_mismatch_messages(backend):
    p, t = ember.zeros(8, 10), ember.zeros(7, dtype=ember.int64)
    with pytest.raises(ValueError, match=r"^accuracy: y_pred of shape \(8, 10\) does not match "
                                         r"y_true of shape \(7,\); expected y_true of shape "
                                         r"\(8,\) \(integer labels\) or \(8, 10\) \(one-hot or "
                                         r"binary targets\)$"):
        Accuracy()(p, t)
    with pytest.raises(ValueError, match=r"categorical_accuracy: y_pred of shape \(8, 10\) does "
                                         r"not match y_true of shape \(8,\); expected y_true of "
                                         r"shape \(8, 10\) \(one-hot"):
        get_metric("categorical_accuracy")(p, ember.zeros(8))
    with pytest.raises(ValueError, match=r"mse: y_pred of shape \(8, 10\) does not match y_true "
                                         r"of shape \(8, 9\); expected y_true of shape \(8, 10\)"):
        get_metric("mse")(p, ember.zeros(8, 9))
    with pytest.raises(ValueError, match=r"top5: y_pred of shape \(8, 10\) does not match y_true "
                                         r"of shape \(7,\)"):
        get_metric("top5")(p, t)
    with pytest.raises(ValueError, match=r"confusion_matrix: y_pred of shape \(8, 10\) implies 10 "
                                         r"classes, but num_classes=3"):
        ConfusionMatrix(num_classes=3)(p, ember.zeros(8, dtype=ember.int64))
    with pytest.raises(ValueError, match="precision: cannot tell the number of classes from "
                                         "integer predictions; pass num_classes"):
        Precision()(ember.tensor([0, 1]), ember.tensor([1, 1]))


def test_results_are_finite_numbers(backend, data):
    logits, labels = data
    for make in ALL[:-1]:
        metric = make()
        y_pred, y_true = batches(metric, logits, labels)
        out = metric(ember.tensor(y_pred), ember.tensor(y_true))
        assert out.shape == () and math.isfinite(out.item())
