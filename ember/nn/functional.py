"""Functional forms, PyTorch's ``F.*`` style: losses, convolution, pooling, dropout, activations.

Losses take ``(pred, target, reduction="mean")`` with ``reduction`` one of ``"mean"``, ``"sum"``
or ``"none"``. With ``"none"``, elementwise losses (MSE, MAE, Huber, binary cross-entropy) keep
the input's shape and the class-axis losses (categorical, sparse, softmax cross-entropy, KL
divergence) give one value per example. Classes are on the last axis. Predictions and targets must
have the same shape (integer labels: the predictions' shape without the class axis); a mismatch,
a label out of range or a label that is not a whole number raises a ValueError that names the
loss, the shapes and the bad value.

Every loss is finite, with finite gradients, for probabilities of exactly 0 and 1 (they are
clipped to ``[epsilon, 1 - epsilon]``, as Keras does) and for logits of +-1e4 (the ``from_logits``
forms use the fused ops ``ember.softmax_cross_entropy`` and
``ember.binary_cross_entropy_with_logits``).

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.mse_loss(ember.tensor([1.0, 2.0]), ember.tensor([1.0, 4.0])).item()
    2.0
    >>> round(F.cross_entropy(ember.tensor([[2.0, 0.0]]), [0]).item(), 4)
    0.1269
"""

from __future__ import annotations

from typing import Any

import numpy as np  # host-side checks of targets and predictions only

from ember import backend
from ember import random as _random
from ember.ops import REGISTRY
from ember.ops.conv import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool2d,
    conv1d,
    conv2d,
    max_pool2d,
)
from ember.ops.dropout import dropout as _dropout
from ember.ops.loss import SoftmaxCrossEntropy, check_labels, softmax_cross_entropy
from ember.tensor import Tensor, as_array

__all__ = [
    "conv1d",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "global_avg_pool2d",
    "dropout",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softplus",
    "gelu",
    "softmax",
    "log_softmax",
    "logsumexp",
    "embedding",
    "one_hot",
    "scaled_dot_product_attention",
    "mse_loss",
    "l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "softmax_cross_entropy",
    "cross_entropy",
    "nll_loss",
    "kl_divergence",
    "REDUCTIONS",
]

REDUCTIONS = ("mean", "sum", "none")

# the activations and the fused BCE op, as registered (``ember.relu`` is ``F.relu``)
relu = REGISTRY["relu"]
gelu = REGISTRY["gelu"]
leaky_relu = REGISTRY["leaky_relu"]
sigmoid = REGISTRY["sigmoid"]
tanh = REGISTRY["tanh"]
softplus = REGISTRY["softplus"]
softmax = REGISTRY["softmax"]
log_softmax = REGISTRY["log_softmax"]
logsumexp = REGISTRY["logsumexp"]
binary_cross_entropy_with_logits = REGISTRY["binary_cross_entropy_with_logits"]
# the sequence ops PyTorch users reach for as F.* (ember.embedding is F.embedding)
embedding = REGISTRY["embedding"]
one_hot = REGISTRY["one_hot"]
scaled_dot_product_attention = REGISTRY["scaled_dot_product_attention"]


# -- layers as functions ---------------------------------------------------------------------------

def global_avg_pool2d(x: Tensor, keepdims: bool = False) -> Tensor:
    """The mean over the spatial axes of NCHW input: (N, C), or (N, C, 1, 1) with ``keepdims``.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.global_avg_pool2d(ember.ones(2, 3, 4, 4)).shape
        (2, 3)
    """
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool2d: expected a 4-d input (N, C, H, W), got shape "
                         f"{tuple(x.shape)}")
    return x.mean(axis=(2, 3), keepdims=keepdims)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, key: Any = None) -> Tensor:
    """Inverted dropout (see ``ember.dropout``); the identity when ``training`` is False.

    Without ``key``, the mask is drawn from ember's seeded stream (``ember.random.next_key()``);
    a compiled step should pass its key explicitly (or use ``nn.Dropout``, which keeps one).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.dropout(ember.ones(3), 0.5, training=False).tolist()
        [1.0, 1.0, 1.0]
    """
    if not training:
        return x
    if key is None and p != 0:
        key = _random.next_key()
    return _dropout(x, p, key)


# -- helpers ---------------------------------------------------------------------------------------

def _tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor._make(as_array(value), False, None)


def _target_like(pred: Tensor, target: Any) -> Tensor:
    """``target`` as a tensor; a constant one takes the predictions' floating dtype."""
    t = _tensor(target)
    if not t.requires_grad and t.dtype != pred.dtype and pred.dtype.kind == "f":
        t = Tensor._make(t.data.astype(pred.dtype), False, None)
    return t


def _check_reduction(who: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{who}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}, "
                         f"got {reduction!r}")


def _reduce(loss: Tensor, reduction: str, who: str) -> Tensor:
    _check_reduction(who, reduction)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _same_shape(who: str, pred: Tensor, target: Tensor) -> None:
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"{who}: predictions of shape {tuple(pred.shape)} and targets of shape "
                         f"{tuple(target.shape)} differ; they must have the same shape")


def _class_axis(who: str, pred: Tensor) -> int:
    if pred.ndim == 0:
        raise ValueError(f"{who}: predictions need a class axis (the last one), got a 0-d tensor")
    return int(pred.shape[-1])


def _labels(who: str, pred: Tensor, labels: Any, ignore_index: int | None = None) -> Tensor:
    """Integer labels of shape ``pred.shape[:-1]`` (a trailing axis of 1 is dropped), checked;
    labels equal to ``ignore_index`` are exempt from the range check."""
    n = _class_axis(who, pred)
    lab = _tensor(labels)
    shape = tuple(pred.shape)
    if tuple(lab.shape) == shape[:-1] + (1,) and len(shape) > 1:
        lab = Tensor._make(lab.data.reshape(shape[:-1]), False, None)
    if tuple(lab.shape) != shape[:-1]:
        raise ValueError(f"{who}: labels of shape {tuple(lab.shape)} do not match predictions of "
                         f"shape {shape}; expected integer class indices of shape {shape[:-1]}")
    checked = lab.data
    if ignore_index is not None:
        checked = backend.get().xp.where(checked == ignore_index, 0, checked)
    check_labels(who, checked, n, tuple(lab.shape), shape)
    if lab.dtype.kind not in "iu":
        lab = Tensor._make(lab.data.astype(backend.int64), False, None)
    return lab


def _class_weight(who: str, weight: Any, n: int, dtype: Any) -> Any:
    """The per-class ``weight`` as a backend array of ``dtype`` and shape (n,), or None."""
    if weight is None:
        return None
    w = as_array(weight.data if isinstance(weight, Tensor) else weight)
    if tuple(w.shape) != (n,):
        raise ValueError(f"{who}: weight of shape {tuple(w.shape)} does not match {n} classes; "
                         f"give one weight per class, shape ({n},)")
    return w.astype(dtype)


def _smoothing(who: str, label_smoothing: float) -> float:
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{who}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def _class_nll(pred: Tensor, lab: Tensor, reduction: str, who: str, weight: Any,
               ignore_index: int | None, label_smoothing: float,
               log_probs: Tensor | None) -> Tensor:
    """The class-index losses with PyTorch's options, from logits (``log_probs`` None: the fused
    op) or from log-probabilities. Per example, with ``w`` the class weights, ``m`` 0 where the
    label is ``ignore_index`` and ``e`` the smoothing over ``C`` classes::

        loss_i = m_i * ((1 - e) * w[y_i] * -logp[i, y_i] + e / C * sum_c w_c * -logp[i, c])

    and ``"mean"`` divides the sum by ``sum_i m_i * w[y_i]`` (PyTorch's weighted mean).
    """
    xp = backend.get().xp
    n = pred.shape[-1]
    w = _class_weight(who, weight, n, pred.dtype)
    e = _smoothing(who, label_smoothing)
    y = lab.data
    keep = None
    if ignore_index is not None:
        keep = y != ignore_index
        y = xp.where(keep, y, 0)
    factor = None if w is None else xp.take(w, y)  # each example's weight w[y_i] * m_i
    if keep is not None:
        factor = keep.astype(pred.dtype) if factor is None else xp.where(keep, factor, 0)
    if e:  # a dense target: (1 - e) one-hot + e / C, weighted per class, zero where ignored
        t = _onehot(Tensor._make(y, False, None), n, pred.dtype) * (1 - e) + e / n
        t = t if w is None else t * w
        t = t if keep is None else t * keep[..., None].astype(pred.dtype)
        loss = (SoftmaxCrossEntropy.apply(pred, t) if log_probs is None
                else -(log_probs * t).sum(axis=-1))
    else:
        loss = (SoftmaxCrossEntropy.apply(pred, y) if log_probs is None
                else -log_probs.take_along_axis(y[..., None], axis=-1)[..., 0])  # type: ignore
        if factor is not None:
            loss = loss * factor
    if reduction == "mean" and factor is not None:
        return loss.sum() / xp.sum(factor)
    return _reduce(loss, reduction, who)


def _onehot(labels: Tensor, n: int, dtype: Any) -> Any:
    xp = backend.get().xp
    return (labels.data[..., None] == xp.arange(n)).astype(dtype)


def _first_outside(values: Any, low: float, high: float) -> tuple[Any, tuple[int, ...]] | None:
    """The first value outside [low, high] (NaN included) and its index, or None; None also for
    traced arrays (inside ``ember.jit``), whose values are unknown while compiling."""
    data = values.data if isinstance(values, Tensor) else values
    if backend.is_traced(data):
        return None
    host = np.asarray(backend.get().to_numpy(data))
    slack = 1e-4 if host.dtype.kind == "f" else 0  # rounding (and gradcheck's nudges) at the ends
    bad = np.argwhere(~((host >= low - slack) & (host <= high + slack)))
    if not bad.size:
        return None
    idx = tuple(int(i) for i in bad[0])
    return host[idx].item(), idx


def _check_probabilities(who: str, pred: Tensor, target: Tensor | None, from_logits: bool) -> None:
    """Targets in [0, 1]; without ``from_logits``, predictions in [0, 1] too: logits fed to a
    probability loss are clipped, give zero gradients and nothing learns."""
    if target is not None:
        found = _first_outside(target, 0.0, 1.0)
        if found is not None:
            raise ValueError(f"{who}: targets must be in [0, 1] (probabilities or 0/1 labels), "
                             f"got {found[0]!r} at index {found[1]}")
    if not from_logits:
        found = _first_outside(pred, 0.0, 1.0)
        if found is not None:
            raise ValueError(f"{who}: predictions must be probabilities in [0, 1], got "
                             f"{found[0]!r} at index {found[1]}; if the model outputs logits "
                             f"(no sigmoid/softmax at the end), pass from_logits=True")


def _clip_eps(who: str, epsilon: float) -> float:
    if not 0 <= epsilon < 0.5:
        raise ValueError(f"{who}: epsilon must be in [0, 0.5), got {epsilon!r}")
    return float(epsilon)


# -- losses: the implementations take ``who``, the name their errors give --------------------------

def _mse(pred: Tensor, target: Any, reduction: str, who: str) -> Tensor:
    _check_reduction(who, reduction)
    t = _target_like(pred, target)
    _same_shape(who, pred, t)
    d = pred - t
    return _reduce(d * d, reduction, who)


def _mae(pred: Tensor, target: Any, reduction: str, who: str) -> Tensor:
    _check_reduction(who, reduction)
    t = _target_like(pred, target)
    _same_shape(who, pred, t)
    return _reduce((pred - t).abs(), reduction, who)


def _huber(pred: Tensor, target: Any, delta: float, reduction: str, who: str) -> Tensor:
    _check_reduction(who, reduction)
    if not delta > 0:
        raise ValueError(f"{who}: delta must be positive, got {delta!r}")
    t = _target_like(pred, target)
    _same_shape(who, pred, t)
    a = (pred - t).abs()
    q = a.minimum(delta)  # quadratic up to delta, linear beyond: 0.5 q^2 + delta (|d| - q)
    return _reduce(0.5 * q * q + delta * (a - q), reduction, who)


def _bce(pred: Tensor, target: Any, from_logits: bool, epsilon: float, reduction: str,
         who: str, pos_weight: Any = None) -> Tensor:
    _check_reduction(who, reduction)
    t = _target_like(pred, target)
    _same_shape(who, pred, t)
    if pos_weight is not None and not from_logits:
        raise ValueError(f"{who}: pos_weight needs from_logits=True (it weighs the fused "
                         f"loss of logits)")
    _check_probabilities(who, pred, t, from_logits)
    if from_logits:
        if pos_weight is not None:
            pw = _target_like(pred, pos_weight)
            try:
                backend.get().xp.broadcast_shapes(tuple(pw.shape), tuple(pred.shape))
            except ValueError:
                raise ValueError(f"{who}: pos_weight of shape {tuple(pw.shape)} does not "
                                 f"broadcast to the predictions' shape {tuple(pred.shape)}; "
                                 f"give one weight per class on the last axis") from None
            loss = binary_cross_entropy_with_logits(pred, t, pw)
        else:
            loss = binary_cross_entropy_with_logits(pred, t)
    else:
        eps = _clip_eps(who, epsilon)
        p = pred.clip(eps, 1 - eps)
        loss = -(t * p.log() + (1 - t) * (1 - p).log())
    return _reduce(loss, reduction, who)


def _cce(pred: Tensor, target: Any, from_logits: bool, epsilon: float, reduction: str,
         who: str) -> Tensor:
    _check_reduction(who, reduction)
    _class_axis(who, pred)
    t = _target_like(pred, target)
    _same_shape(who, pred, t)
    _check_probabilities(who, pred, t, from_logits)
    if from_logits:
        loss = SoftmaxCrossEntropy.apply(pred, t)
    else:
        eps = _clip_eps(who, epsilon)
        p = (pred / pred.sum(axis=-1, keepdims=True)).clip(eps, 1 - eps)
        loss = -(t * p.log()).sum(axis=-1)
    return _reduce(loss, reduction, who)


def _sparse(pred: Tensor, labels: Any, from_logits: bool, epsilon: float, reduction: str,
            who: str, weight: Any = None, ignore_index: int | None = None,
            label_smoothing: float = 0.0) -> Tensor:
    _check_reduction(who, reduction)
    lab = _labels(who, pred, labels, ignore_index)
    _check_probabilities(who, pred, None, from_logits)
    log_probs = None
    if not from_logits:
        eps = _clip_eps(who, epsilon)
        log_probs = (pred / pred.sum(axis=-1, keepdims=True)).clip(eps, 1 - eps).log()
    return _class_nll(pred, lab, reduction, who, weight, ignore_index, label_smoothing, log_probs)


def _softmax_ce(logits: Tensor, labels: Any, reduction: str, who: str, weight: Any = None,
                ignore_index: int | None = None, label_smoothing: float = 0.0) -> Tensor:
    _check_reduction(who, reduction)
    n = _class_axis(who, logits)
    lab = _tensor(labels)
    if tuple(lab.shape) == tuple(logits.shape) and logits.ndim:  # one-hot / probabilities
        if ignore_index is not None:
            raise ValueError(f"{who}: ignore_index needs integer class labels, got probability "
                             f"targets of shape {tuple(lab.shape)}")
        t = _one_hot_targets(who, logits, lab)
        e = _smoothing(who, label_smoothing)
        t = t * (1 - e) + e / n if e else t
        w = _class_weight(who, weight, n, logits.dtype)
        loss = SoftmaxCrossEntropy.apply(logits, t if w is None else t * w)
        return _reduce(loss, reduction, who)  # probability targets: a plain mean, as PyTorch
    lab = _labels(who, logits, lab, ignore_index)
    return _class_nll(logits, lab, reduction, who, weight, ignore_index, label_smoothing, None)


def _nll(log_probs: Tensor, labels: Any, reduction: str, who: str, weight: Any = None,
         ignore_index: int | None = None) -> Tensor:
    _check_reduction(who, reduction)
    lab = _labels(who, log_probs, labels, ignore_index)
    return _class_nll(log_probs, lab, reduction, who, weight, ignore_index, 0.0, log_probs)


def _one_hot_targets(who: str, logits: Tensor, targets: Tensor) -> Tensor:
    """Targets of the logits' shape as floats: integer and boolean one-hot rows are accepted
    (a 0/1 check names the first other value)."""
    if targets.dtype.kind in "iub":
        found = _first_outside(targets, 0, 1)
        if found is not None:
            raise ValueError(f"{who}: integer targets of the logits' shape {tuple(logits.shape)} "
                             f"are read as one-hot rows, which hold only 0 and 1; got "
                             f"{found[0]!r} at index {found[1]} (class indices have shape "
                             f"{tuple(logits.shape[:-1])})")
        targets = Tensor._make(targets.data.astype(logits.dtype), False, None)
    return _target_like(logits, targets)


def _kl(pred: Tensor, target: Any, epsilon: float, reduction: str, who: str) -> Tensor:
    _check_reduction(who, reduction)
    _class_axis(who, pred)
    t = _target_like(pred, target)
    _same_shape(who, pred, t)
    eps = _clip_eps(who, epsilon)
    tc, pc = t.clip(eps, 1), pred.clip(eps, 1)
    return _reduce((tc * (tc.log() - pc.log())).sum(axis=-1), reduction, who)


# -- the public functions --------------------------------------------------------------------------

def mse_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error ``(pred - target)^2``.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.mse_loss(ember.tensor([0.0, 1.0]), [1.0, 1.0], reduction="none").tolist()
        [1.0, 0.0]
    """
    return _mse(pred, target, reduction, "mse_loss")


def l1_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error ``|pred - target|`` (Keras: MAE).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.l1_loss(ember.tensor([0.0, 3.0]), [1.0, 1.0]).item()
        1.5
    """
    return _mae(pred, target, reduction, "l1_loss")


def huber_loss(pred: Tensor, target: Any, delta: float = 1.0, reduction: str = "mean") -> Tensor:
    """Huber loss: ``0.5 d^2`` where ``|d| <= delta``, else ``delta * (|d| - 0.5 delta)``.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> F.huber_loss(ember.tensor([0.5, 3.0]), [0.0, 0.0], reduction="none").tolist()
        [0.125, 2.5]
    """
    return _huber(pred, target, delta, reduction, "huber_loss")


def binary_cross_entropy(pred: Tensor, target: Any, from_logits: bool = False,
                         epsilon: float = 1e-7, reduction: str = "mean",
                         pos_weight: Any = None) -> Tensor:
    """Binary cross-entropy of probabilities (clipped to [epsilon, 1 - epsilon]) or logits.

    ``pos_weight`` (logits only, PyTorch's): a weight on the positive term that broadcasts to
    the predictions, e.g. one per class on the last axis (``negatives / positives`` balances a
    class).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> round(F.binary_cross_entropy(ember.tensor([1.0, 0.0]), [1.0, 1.0]).item(), 4)
        8.059
        >>> round(F.binary_cross_entropy(ember.tensor([0.0]), [1.0], from_logits=True,
        ...                              pos_weight=[2.0]).item(), 4)
        1.3863
    """
    return _bce(pred, target, from_logits, epsilon, reduction, "binary_cross_entropy",
                pos_weight)


def categorical_crossentropy(pred: Tensor, target: Any, from_logits: bool = False,
                             epsilon: float = 1e-7, reduction: str = "mean") -> Tensor:
    """Cross-entropy with one-hot or probability targets of the predictions' shape.

    Probabilities are renormalised over the last axis and clipped to [epsilon, 1 - epsilon]
    (Keras); with ``from_logits`` the predictions are logits (fused, exact).

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> round(F.categorical_crossentropy(ember.tensor([[0.5, 0.5]]), [[1.0, 0.0]]).item(), 4)
        0.6931
    """
    return _cce(pred, target, from_logits, epsilon, reduction, "categorical_crossentropy")


def sparse_categorical_crossentropy(pred: Tensor, labels: Any, from_logits: bool = False,
                                    epsilon: float = 1e-7, reduction: str = "mean", *,
                                    weight: Any = None, ignore_index: int | None = None,
                                    label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy with integer class labels of shape ``pred.shape[:-1]``; ``weight``,
    ``ignore_index`` and ``label_smoothing`` as in :func:`cross_entropy`.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> p = ember.tensor([[0.25, 0.75], [0.5, 0.5]])
        >>> round(F.sparse_categorical_crossentropy(p, [1, 0]).item(), 4)
        0.4904
    """
    return _sparse(pred, labels, from_logits, epsilon, reduction,
                   "sparse_categorical_crossentropy", weight, ignore_index, label_smoothing)


def cross_entropy(logits: Tensor, labels: Any, reduction: str = "mean", *, weight: Any = None,
                  ignore_index: int | None = None, label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy from logits, with integer labels or one-hot / probability targets.

    The class axis is the last one: logits (..., C) with labels (...), e.g. (B, T, C) logits of
    a sequence model with (B, T) targets. PyTorch puts classes on axis 1 ((N, C, ...) logits);
    for (N, C) the two agree, otherwise move the axis (``logits.permute(0, 2, 1)``).

    Args:
        weight: a weight per class (C,); ``"mean"`` then divides by the summed weights of the
            labels, as PyTorch.
        ignore_index: labels equal to it add nothing and are not counted (PyTorch's default is
            -100; ember's is None, so a stray -100 is an error rather than silently skipped).
        label_smoothing: mix the target with the uniform distribution: ``(1 - e) one_hot + e/C``.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> round(F.cross_entropy(ember.tensor([[0.0, 0.0]]), [[0.0, 1.0]]).item(), 4)
        0.6931
        >>> logits = ember.tensor([[[2.0, 0.0], [0.0, 0.0]]])  # (B=1, T=2, C=2)
        >>> round(F.cross_entropy(logits, [[0, -100]], ignore_index=-100).item(), 4)
        0.1269
    """
    return _softmax_ce(logits, labels, reduction, "cross_entropy", weight, ignore_index,
                       label_smoothing)


def nll_loss(log_probs: Tensor, labels: Any, reduction: str = "mean", *, weight: Any = None,
             ignore_index: int | None = None) -> Tensor:
    """Negative log-likelihood of integer ``labels`` (...) under log-probabilities (..., C)
    (e.g. from ``log_softmax``): ``-log_probs[..., label]``, weighted as :func:`cross_entropy`.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> lp = ember.tensor([[0.0, 0.0], [0.0, 2.0]]).log_softmax()
        >>> round(F.nll_loss(lp, [0, 1]).item(), 4)
        0.41
    """
    return _nll(log_probs, labels, reduction, "nll_loss", weight, ignore_index)


def kl_divergence(pred: Tensor, target: Any, epsilon: float = 1e-7,
                  reduction: str = "mean") -> Tensor:
    """``sum(target * log(target / pred))`` over the last axis, both clipped to [epsilon, 1].

    Finite for one-hot targets and for predicted probabilities of exactly 0.

    Example:
        >>> import ember
        >>> import ember.nn.functional as F
        >>> round(F.kl_divergence(ember.tensor([[0.5, 0.5]]), [[1.0, 0.0]]).item(), 4)
        0.6931
    """
    return _kl(pred, target, epsilon, reduction, "kl_divergence")
