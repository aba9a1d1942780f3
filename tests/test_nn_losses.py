"""Losses and penalties: NumPy formulas and optax oracles, gradchecks on both backends, stability
at probabilities 0 and 1 and logits of +-1e4, exact error messages, weighted combinations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ember
from ember import nn
from ember.nn import functional as F  # noqa: N812 - PyTorch's spelling

jax.config.update("jax_enable_x64", True)  # float64 oracles, whichever backend runs first

RNG = np.random.default_rng(7)
PRED = RNG.standard_normal((4, 3))
TARGET = RNG.standard_normal((4, 3))
LOGITS = RNG.standard_normal((4, 3)) * 2
LABELS = np.array([2, 0, 1, 2])
ONEHOT = np.eye(3)[LABELS]
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
SOFT_TARGET = np.exp(TARGET) / np.exp(TARGET).sum(-1, keepdims=True)
BIN_P = 1 / (1 + np.exp(-PRED))
BIN_T = (TARGET > 0).astype(float)


def np_log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def huber_np(d, delta):
    a = np.abs(d)
    return np.where(a <= delta, 0.5 * d * d, delta * (a - 0.5 * delta))


# (loss, pred, target, per-element or per-example NumPy loss)
CASES = [
    (nn.MSE(), PRED, TARGET, (PRED - TARGET) ** 2),
    (nn.MAE(), PRED, TARGET, np.abs(PRED - TARGET)),
    (nn.Huber(), PRED, TARGET, huber_np(PRED - TARGET, 1.0)),
    (nn.Huber(delta=0.5), PRED, TARGET, huber_np(PRED - TARGET, 0.5)),
    (nn.BinaryCrossentropy(), BIN_P, BIN_T,
     -(BIN_T * np.log(BIN_P) + (1 - BIN_T) * np.log(1 - BIN_P))),
    (nn.BinaryCrossentropy(from_logits=True), PRED, BIN_T,
     np.logaddexp(0, PRED) - PRED * BIN_T),
    (nn.CategoricalCrossentropy(), PROBS, SOFT_TARGET, -(SOFT_TARGET * np.log(PROBS)).sum(-1)),
    (nn.CategoricalCrossentropy(from_logits=True), LOGITS, ONEHOT,
     -(ONEHOT * np_log_softmax(LOGITS)).sum(-1)),
    (nn.SparseCategoricalCrossentropy(), PROBS, LABELS, -np.log(PROBS[np.arange(4), LABELS])),
    (nn.SparseCategoricalCrossentropy(from_logits=True), LOGITS, LABELS,
     -np_log_softmax(LOGITS)[np.arange(4), LABELS]),
    (nn.SoftmaxCrossEntropy(), LOGITS, LABELS, -np_log_softmax(LOGITS)[np.arange(4), LABELS]),
    (nn.CrossEntropyLoss(), LOGITS, SOFT_TARGET, -(SOFT_TARGET * np_log_softmax(LOGITS)).sum(-1)),
    (nn.KLDivergence(), PROBS, SOFT_TARGET,
     (SOFT_TARGET * np.log(SOFT_TARGET / PROBS)).sum(-1)),
]
IDS = [f"{type(c[0]).__name__}-{i}" for i, c in enumerate(CASES)]


def with_reduction(loss, reduction):
    return type(loss)(**{**loss._options, "reduction": reduction})


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_losses_match_numpy_for_every_reduction(case, backend):
    loss, pred, target, per_item = case
    for reduction, expected in (("mean", per_item.mean()), ("sum", per_item.sum()),
                                ("none", per_item)):
        out = with_reduction(loss, reduction)(ember.tensor(pred), ember.tensor(target))
        assert out.shape == np.shape(expected)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)
    out32 = loss(ember.tensor(pred.astype(np.float32)), ember.tensor(target))
    assert out32.dtype == np.float32


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_losses_gradcheck_float64(case, backend):
    loss, pred, target, _ = case
    differentiable_target = target.dtype.kind == "f" and loss.name not in (
        "sparse_categorical_crossentropy", "softmax_cross_entropy")
    if differentiable_target:
        ember.gradcheck(loss, ember.tensor(pred, requires_grad=True),
                        ember.tensor(target, requires_grad=True))
    else:
        ember.gradcheck(lambda p: loss(p, target), ember.tensor(pred, requires_grad=True))


def test_softmax_cross_entropy_matches_optax():
    ember.set_backend("jax")
    for labels, oracle in (
        (LABELS, optax.softmax_cross_entropy_with_integer_labels),
        (ONEHOT, optax.softmax_cross_entropy),
        (SOFT_TARGET, optax.softmax_cross_entropy),
    ):
        logits = ember.tensor(LOGITS, requires_grad=True)
        out = nn.SoftmaxCrossEntropy(reduction="none")(logits, labels)
        expected, vjp = jax.vjp(lambda x, lab=labels, f=oracle: f(x, jnp.asarray(lab)),
                                jnp.asarray(LOGITS))
        np.testing.assert_allclose(out.numpy(), np.asarray(expected), rtol=1e-12, atol=1e-12)
        upstream = np.arange(1.0, 5.0)
        out.backward(upstream)
        np.testing.assert_allclose(logits.grad.numpy(), np.asarray(vjp(jnp.asarray(upstream))[0]),
                                   rtol=1e-12, atol=1e-12)


def test_bce_with_logits_and_huber_match_optax():
    ember.set_backend("jax")
    out = nn.BinaryCrossentropy(from_logits=True, reduction="none")(ember.tensor(PRED), BIN_T)
    np.testing.assert_allclose(out.numpy(), optax.sigmoid_binary_cross_entropy(PRED, BIN_T),
                               rtol=1e-12)
    out = nn.Huber(delta=0.7, reduction="none")(ember.tensor(PRED), TARGET)
    np.testing.assert_allclose(out.numpy(), optax.huber_loss(PRED, TARGET, delta=0.7),
                               rtol=1e-12)


EXTREME_P = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
EXTREME_LOGITS = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4]])
EXTREME = [
    (nn.BinaryCrossentropy(), EXTREME_P, 1 - EXTREME_P),
    (nn.BinaryCrossentropy(), EXTREME_P, EXTREME_P),
    (nn.BinaryCrossentropy(from_logits=True), EXTREME_LOGITS, np.array([[0, 1, 1], [1, 0, 0.]])),
    (nn.CategoricalCrossentropy(), EXTREME_P, np.eye(3)[[0, 1]]),
    (nn.CategoricalCrossentropy(from_logits=True), EXTREME_LOGITS, np.eye(3)[[1, 0]]),
    (nn.SparseCategoricalCrossentropy(), EXTREME_P, np.array([0, 1])),
    (nn.SparseCategoricalCrossentropy(from_logits=True), EXTREME_LOGITS, np.array([1, 0])),
    (nn.SoftmaxCrossEntropy(), EXTREME_LOGITS, np.array([2, 1])),
    (nn.KLDivergence(), EXTREME_P, np.eye(3)[[0, 1]]),
    (nn.KLDivergence(), EXTREME_P, EXTREME_P),
    (nn.MSE(), EXTREME_LOGITS, EXTREME_P),
    (nn.Huber(), EXTREME_LOGITS, EXTREME_P),
]


@pytest.mark.parametrize("case", EXTREME, ids=range(len(EXTREME)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_loss_is_finite_at_the_extremes(case, dtype, backend):
    loss, pred, target = case
    p = ember.tensor(pred.astype(dtype), requires_grad=True)
    out = loss(p, target)
    out.backward()
    assert np.isfinite(out.item())
    assert np.all(np.isfinite(p.grad.numpy()))


def test_extreme_values_are_the_right_ones(backend):
    # a confidently wrong logit of 1e4 costs 2e4 exactly; a confidently right one costs 0
    out = nn.SoftmaxCrossEntropy(reduction="none")(ember.tensor(EXTREME_LOGITS), [0, 0])
    np.testing.assert_allclose(out.numpy(), [0.0, 2e4])
    bce = nn.BinaryCrossentropy(reduction="none")(ember.tensor([0.0, 1.0], dtype="float64"),
                                                   [1.0, 1.0])
    np.testing.assert_allclose(bce.numpy(), [-np.log(1e-7), -np.log(1 - 1e-7)], rtol=1e-6)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: nn.SparseCategoricalCrossentropy()(ember.ones(4, 3) / 3, [0, 3, 1, 2]),
     "SparseCategoricalCrossentropy: label 3 at index (1,) is out of range for 3 classes "
     "(labels of shape (4,), predictions of shape (4, 3)); labels must be in [0, 3)"),
    (lambda: nn.CrossEntropyLoss()(ember.ones(2, 3), [-1, 0]),
     "CrossEntropyLoss: label -1 at index (0,) is out of range for 3 classes (labels of shape "
     "(2,), predictions of shape (2, 3)); labels must be in [0, 3)"),
    (lambda: nn.SoftmaxCrossEntropy()(ember.ones(2, 3), ember.tensor([1.0, 1.5])),
     "SoftmaxCrossEntropy: labels must be integer class indices, got 1.5 at index (1,) (labels "
     "of shape (2,), predictions of shape (2, 3))"),
    (lambda: nn.SparseCategoricalCrossentropy()(ember.ones(2, 3), ember.ones(2, 3)),
     "SparseCategoricalCrossentropy: labels of shape (2, 3) do not match predictions of shape "
     "(2, 3); expected integer class indices of shape (2,)"),
    (lambda: nn.MSE()(ember.ones(4, 3), ember.ones(4, 2)),
     "MSE: predictions of shape (4, 3) and targets of shape (4, 2) differ; they must have the "
     "same shape"),
    (lambda: nn.BinaryCrossentropy()(ember.ones(4, 1), ember.ones(4)),
     "BinaryCrossentropy: predictions of shape (4, 1) and targets of shape (4,) differ"),
    (lambda: F.mse_loss(ember.ones(2), ember.ones(3)),
     "mse_loss: predictions of shape (2,) and targets of shape (3,) differ"),
    (lambda: nn.MSE(reduction="avg"),
     "MSE: reduction must be one of 'mean', 'sum', 'none', got 'avg'"),
    (lambda: nn.get_loss("crossentropy"),
     "unknown loss 'crossentropy'; valid names: mse, mean_squared_error, mae"),
    (lambda: nn.Huber(delta=0.0), "Huber: delta must be positive, got 0.0"),
    (lambda: ember.softmax_cross_entropy(ember.ones(2, 3), [0, 5]),
     "ember.softmax_cross_entropy: label 5 at index (1,) is out of range for 3 classes"),
])
def test_loss_errors_name_the_loss_the_shapes_and_the_value(call, message, backend):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)


def test_labels_may_be_whole_floats_or_have_a_trailing_axis(backend):
    logits = ember.tensor(LOGITS)
    ref = nn.SparseCategoricalCrossentropy(from_logits=True)(logits, LABELS).item()
    assert nn.SparseCategoricalCrossentropy(from_logits=True)(
        logits, LABELS.astype(np.float32)).item() == ref
    assert nn.SparseCategoricalCrossentropy(from_logits=True)(logits, LABELS[:, None]).item() == ref


def test_weighted_losses(backend):
    p, t = ember.tensor(PRED, requires_grad=True), ember.tensor(TARGET)
    combo = 0.7 * nn.MSE() + 0.3 * nn.MAE()
    assert isinstance(combo, nn.WeightedLoss)
    assert repr(combo) == "WeightedLoss([(MSE(), 0.7), (MAE(), 0.3)])"
    expected = 0.7 * ((PRED - TARGET) ** 2).mean() + 0.3 * np.abs(PRED - TARGET).mean()
    np.testing.assert_allclose(combo(p, t).item(), expected, rtol=1e-12)
    same = nn.WeightedLoss([(nn.MSE(), 0.7), (nn.MAE(), 0.3)])
    assert same(p, t).item() == combo(p, t).item()
    nested = 2 * (combo + nn.Huber()) / 4
    assert [(type(loss).__name__, w) for loss, w in nested.terms] == [
        ("MSE", 0.35), ("MAE", 0.15), ("Huber", 0.5)]
    assert sum([nn.MSE(), nn.MAE()]).terms[1][1] == 1.0
    ember.gradcheck(lambda a: combo(a, t), p)
    rebuilt = nn.get_loss(combo.config())
    assert rebuilt(p, t).item() == combo(p, t).item()
    with pytest.raises(TypeError, match="WeightedLoss expects"):
        nn.WeightedLoss([nn.MSE()])


def test_loss_names_and_configs():
    assert nn.get_loss("mse").name == "mse"
    assert isinstance(nn.get_loss("Categorical_Crossentropy"), nn.CategoricalCrossentropy)
    assert nn.get_loss("kld").name == "kl_divergence"
    for loss in (nn.MSE(), nn.Huber(delta=2.0), nn.BinaryCrossentropy(from_logits=True),
                 nn.SparseCategoricalCrossentropy(epsilon=1e-5, reduction="sum"),
                 nn.KLDivergence(), nn.CrossEntropyLoss(reduction="none")):
        conf = loss.config()
        again = nn.get_loss(conf)
        assert again.config() == conf and type(again).__name__ in (type(loss).__name__,
                                                                   "SoftmaxCrossEntropy")
    assert nn.Huber(delta=2.0).config() == {"type": "huber", "delta": 2.0}
    assert nn.BinaryCrossentropy(from_logits=True).config() == {
        "type": "binary_crossentropy", "from_logits": True}


def test_functional_forms_match_the_classes(backend):
    p, t = ember.tensor(PRED), ember.tensor(TARGET)
    assert F.mse_loss(p, t).item() == nn.MSE()(p, t).item()
    assert F.l1_loss(p, t, reduction="sum").item() == nn.MAE(reduction="sum")(p, t).item()
    assert F.huber_loss(p, t, delta=0.5).item() == nn.Huber(0.5)(p, t).item()
    lg = ember.tensor(LOGITS)
    assert F.cross_entropy(lg, LABELS).item() == nn.CrossEntropyLoss()(lg, LABELS).item()
    assert (F.sparse_categorical_crossentropy(lg, LABELS, from_logits=True).item()
            == F.cross_entropy(lg, LABELS).item())
    np.testing.assert_allclose(F.categorical_crossentropy(lg, ONEHOT, from_logits=True).item(),
                               F.cross_entropy(lg, LABELS).item(), rtol=1e-12)
    np.testing.assert_allclose(
        F.binary_cross_entropy(ember.tensor(BIN_P), BIN_T).item(),
        F.binary_cross_entropy(p, BIN_T, from_logits=True).item(), rtol=1e-9)
    assert F.kl_divergence(ember.tensor(PROBS), PROBS).item() == pytest.approx(0.0, abs=1e-12)
    assert F.relu is ember.relu and F.conv2d is ember.conv2d
    assert F.dropout(p, 0.5, training=False) is p
    assert F.global_avg_pool2d(ember.ones(2, 3, 4, 4), keepdims=True).shape == (2, 3, 1, 1)


# -- penalties -------------------------------------------------------------------------------------

def test_penalties_cover_weights_not_biases(backend):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Conv2D(1, 2, 2))
    model.to(ember.float64)
    w1 = model[0].weight.numpy()
    w2 = model[2].weight.numpy()
    l2 = nn.L2(0.01)(model)
    np.testing.assert_allclose(l2.item(), 0.01 * ((w1 ** 2).sum() + (w2 ** 2).sum()), rtol=1e-12)
    l1 = nn.L1(0.02)(model)
    np.testing.assert_allclose(l1.item(), 0.02 * (np.abs(w1).sum() + np.abs(w2).sum()),
                               rtol=1e-12)
    x = ember.tensor(RNG.standard_normal((5, 3)))
    loss = nn.MSE()(model[0](x), ember.zeros(5, 4, dtype=ember.float64))
    loss.backward()
    g_loss = model[0].weight.grad.numpy()
    b_loss = model[0].bias.grad.numpy()
    model.zero_grad()
    (nn.MSE()(model[0](x), ember.zeros(5, 4, dtype=ember.float64)) + nn.L2(0.01)(model)
     ).backward()
    np.testing.assert_allclose(model[0].weight.grad.numpy(), g_loss + 0.02 * w1, rtol=1e-12)
    np.testing.assert_allclose(model[0].bias.grad.numpy(), b_loss, rtol=1e-12)
    np.testing.assert_allclose(model[2].weight.grad.numpy(), 0.02 * w2, rtol=1e-12)
    assert model[2].bias.grad is None


def test_penalties_on_chosen_parameters(backend):
    w = nn.Parameter(ember.tensor([[1.0, -2.0]], dtype=ember.float64))
    b = nn.Parameter(ember.tensor([3.0], dtype=ember.float64))
    penalty = nn.L1(0.5, parameters=[w, b])
    out = penalty()
    out.backward()
    assert out.item() == 3.0
    assert w.grad.tolist() == [[0.5, -0.5]] and b.grad.tolist() == [0.5]
    assert nn.L2(1.0)([b]).item() == 9.0
    assert ember.gradcheck(lambda t: nn.L2(0.3)([t]), ember.tensor(PRED, requires_grad=True))
    assert nn.L2(0.1)(nn.Sequential(nn.ReLU())).item() == 0.0
    with pytest.raises(ValueError, match="L2: lam must be a non-negative number, got -1"):
        nn.L2(-1)
    with pytest.raises(TypeError, match=r"call it with the model, penalty\(model\)"):
        nn.L1(0.1)()
