"""Class-index losses for sequences: label_smoothing, ignore_index, per-class weight, (..., C)
logits with (...) targets, and NLLLoss, against a NumPy formula and gradchecked in float64."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import functional as F  # noqa: N812

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((3, 4, 5))  # (B, T, C)
LABELS = RNG.integers(0, 5, (3, 4))
LABELS[0, 1] = LABELS[2, 3] = -100  # padding positions
WEIGHT = np.array([0.5, 2.0, 1.3, 1.0, 0.25])


def np_log_softmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def np_class_loss(lsm, y, weight=None, ignore=None, smoothing=0.0, reduction="mean"):
    """PyTorch's documented formula, with classes on the last axis."""
    c = lsm.shape[-1]
    keep = np.ones(y.shape, bool) if ignore is None else y != ignore
    ys = np.where(keep, y, 0)
    w = np.ones(c) if weight is None else weight
    nll = -np.take_along_axis(lsm, ys[..., None], -1)[..., 0]
    smooth = -(lsm * w).sum(-1)
    loss = keep * ((1 - smoothing) * w[ys] * nll + smoothing / c * smooth)
    if reduction == "mean":
        return loss.sum() / (keep * w[ys]).sum()
    return loss.sum() if reduction == "sum" else loss


OPTIONS = list(itertools.product([None, WEIGHT], [None, -100], [0.0, 0.3],
                                 ["mean", "sum", "none"]))


@pytest.mark.parametrize(("weight", "ignore", "smoothing", "reduction"), OPTIONS)
def test_cross_entropy_options_match_the_formula(weight, ignore, smoothing, reduction, backend):
    labels = LABELS if ignore is not None else np.abs(LABELS) % 5
    loss = nn.CrossEntropyLoss(reduction, weight=weight, ignore_index=ignore,
                               label_smoothing=smoothing)
    out = loss(ember.tensor(LOGITS), labels)
    expected = np_class_loss(np_log_softmax(LOGITS), labels, weight, ignore, smoothing, reduction)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("weight", "ignore", "smoothing"),
                         [(WEIGHT, -100, 0.3), (None, -100, 0.0), (WEIGHT, None, 0.0),
                          (None, None, 0.2)])
def test_cross_entropy_options_gradcheck(weight, ignore, smoothing, backend):
    labels = LABELS if ignore is not None else np.abs(LABELS) % 5
    loss = nn.CrossEntropyLoss(weight=weight, ignore_index=ignore, label_smoothing=smoothing)
    x = ember.tensor(LOGITS, requires_grad=True)
    assert ember.gradcheck(lambda t: loss(t, labels), x)
    # an ignored position gets exactly no gradient
    loss(x, labels).backward()
    if ignore is not None:
        assert x.grad.numpy()[0, 1].tolist() == [0.0] * 5


@pytest.mark.parametrize(("weight", "ignore", "smoothing"),
                         [(WEIGHT, -100, 0.3), (None, None, 0.0), (None, -100, 0.1)])
def test_sparse_categorical_crossentropy_options(weight, ignore, smoothing, backend):
    labels = LABELS if ignore is not None else np.abs(LABELS) % 5
    probs = np.exp(np_log_softmax(LOGITS))
    out = nn.SparseCategoricalCrossentropy(weight=weight, ignore_index=ignore,
                                           label_smoothing=smoothing)(ember.tensor(probs), labels)
    np.testing.assert_allclose(out.item(), np_class_loss(np.log(probs), labels, weight, ignore,
                                                         smoothing), rtol=1e-12)
    logits = nn.SparseCategoricalCrossentropy(from_logits=True, weight=weight, ignore_index=ignore,
                                              label_smoothing=smoothing)
    np.testing.assert_allclose(logits(ember.tensor(LOGITS), labels).item(),
                               np_class_loss(np_log_softmax(LOGITS), labels, weight, ignore,
                                             smoothing), rtol=1e-12)
    x = ember.tensor(probs, requires_grad=True)
    loss = nn.SparseCategoricalCrossentropy(weight=weight, ignore_index=ignore,
                                            label_smoothing=smoothing)
    assert ember.gradcheck(lambda t: loss(t, labels), x)


@pytest.mark.parametrize(("weight", "ignore"), [(None, None), (WEIGHT, -100), (None, -100)])
def test_nll_loss_over_log_probabilities(weight, ignore, backend):
    labels = LABELS if ignore is not None else np.abs(LABELS) % 5
    lsm = np_log_softmax(LOGITS)
    for reduction in ("mean", "sum", "none"):
        out = nn.NLLLoss(reduction, weight=weight, ignore_index=ignore)(ember.tensor(lsm), labels)
        np.testing.assert_allclose(out.numpy(), np_class_loss(lsm, labels, weight, ignore,
                                                              reduction=reduction), rtol=1e-12)
    x = ember.tensor(lsm, requires_grad=True)
    assert ember.gradcheck(lambda t: F.nll_loss(t, labels, weight=weight, ignore_index=ignore), x)
    # composed with log_softmax it is cross-entropy
    z = ember.tensor(LOGITS)
    np.testing.assert_allclose(
        F.nll_loss(z.log_softmax(), labels, weight=weight, ignore_index=ignore).item(),
        F.cross_entropy(z, labels, weight=weight, ignore_index=ignore).item(), rtol=1e-12)


def test_probability_targets_with_weight_and_smoothing(backend):
    probs = np.exp(np_log_softmax(RNG.standard_normal((4, 5))))
    z = LOGITS[:, 0].copy()
    z = np.concatenate([z, z[:1]])
    out = F.cross_entropy(ember.tensor(z), probs, weight=WEIGHT, label_smoothing=0.2)
    t = probs * 0.8 + 0.2 / 5
    expected = -(t * WEIGHT * np_log_softmax(z)).sum(-1).mean()
    np.testing.assert_allclose(out.item(), expected, rtol=1e-12)


def test_sequence_logits_equal_the_flattened_batch(backend):
    labels = np.abs(LABELS) % 5
    seq = F.cross_entropy(ember.tensor(LOGITS), labels, reduction="none")
    flat = F.cross_entropy(ember.tensor(LOGITS.reshape(-1, 5)), labels.reshape(-1),
                           reduction="none")
    assert seq.shape == (3, 4)
    np.testing.assert_allclose(seq.numpy().reshape(-1), flat.numpy(), rtol=1e-15)


def test_config_round_trip_keeps_the_options():
    loss = nn.CrossEntropyLoss(weight=[1.0, 2.0], ignore_index=-100, label_smoothing=0.1)
    conf = loss.config()
    assert conf == {"type": "softmax_cross_entropy", "weight": [1.0, 2.0], "ignore_index": -100,
                    "label_smoothing": 0.1}
    again = nn.get_loss(conf)
    z = ember.tensor([[0.3, -0.2], [1.0, 2.0]])
    assert again(z, [1, -100]).item() == loss(z, [1, -100]).item()
    assert nn.get_loss("nll", ignore_index=0).config() == {"type": "nll", "ignore_index": 0}
    assert repr(nn.NLLLoss(weight=[1.0, 3.0])) == "NLLLoss(weight=[1.0, 3.0])"


def test_loss_options_errors():
    z = ember.ones(2, 3)
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: weight of shape \(2,\) does not "
                                         r"match 3 classes; give one weight per class, shape "
                                         r"\(3,\)"):
        nn.CrossEntropyLoss(weight=[1.0, 2.0])(z, [0, 1])
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="cross_entropy: ignore_index needs integer class labels"):
        F.cross_entropy(z, ember.ones(2, 3) / 3, ignore_index=0)
    with pytest.raises(ValueError, match=r"label -100 at index \(1,\) is out of range for 3"):
        nn.CrossEntropyLoss()(z, [0, -100])  # no ignore_index given: -100 is an error
    with pytest.raises(ValueError, match=r"NLLLoss: label 7 at index \(0,\) is out of range"):
        nn.NLLLoss(ignore_index=-100)(z, [7, -100])


def test_ignore_index_and_weight_inside_jit():
    ember.set_backend("jax")
    loss = nn.CrossEntropyLoss(weight=WEIGHT, ignore_index=-100, label_smoothing=0.1)

    def step(x, y):
        return loss(x, y)

    x, y = ember.tensor(LOGITS), ember.tensor(LABELS)
    np.testing.assert_allclose(ember.jit(step)(x, y).numpy(), step(x, y).numpy(), rtol=1e-12)
