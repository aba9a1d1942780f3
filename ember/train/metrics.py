"""Metrics accumulated over an epoch as arrays, so that they run inside a compiled step.

A :class:`Metric` is a pure accumulator with three methods::

    state = metric.init()                          # dict of zero tensors
    state = metric.update(state, y_pred, y_true)   # once per batch: array math only
    value = metric.result(state)                   # a 0-d tensor (2-d for ConfusionMatrix)

``update`` branches on shapes and dtypes (static while tracing) but never on values, reads no
numbers back to Python and records no gradient, so the same code runs eagerly on NumPy, inside an
``ember.jit`` step and inside a ``scan`` over an epoch. Sums and counts are float64 (exact counts
to 2**53, no drift over an epoch); a metric of several batches is the metric of their
concatenation. ``metric(y_pred, y_true)`` is the value for one batch.

Names (:func:`get_metric`, Keras spelling, also ``Trainer(metrics=[...])``): ``"accuracy"`` /
``"acc"``, ``"binary_accuracy"``, ``"categorical_accuracy"``, ``"sparse_categorical_accuracy"``,
``"top_k_accuracy"`` (k=5) and ``"top<k>"`` (``"top5"``, ``"top1"``), ``"mse"``, ``"mae"``,
``"precision"``, ``"recall"``, ``"f1"``, ``"confusion_matrix"``.

How ``"accuracy"`` is resolved from the loss (:func:`get_metric` with ``loss=``):

=====================================  =====================================================
loss                                   accuracy
=====================================  =====================================================
``BinaryCrossentropy``                 binary: ``y_pred > 0.5`` (``> 0.0`` with
                                       ``from_logits=True``) equals ``y_true > 0.5``
``CategoricalCrossentropy``            categorical: argmax of ``y_pred`` equals argmax of the
                                       one-hot (or probability) ``y_true``
``SparseCategoricalCrossentropy``      sparse: argmax of ``y_pred`` equals the integer label
anything else, or no loss              by shape (``kind="auto"``): integer labels of shape
                                       ``y_pred.shape[:-1]`` → sparse; same shape with more
                                       than one class on the last axis → categorical; same
                                       shape otherwise (or ``(N, 1)`` predictions with ``(N,)``
                                       targets) → binary with threshold 0.5; integer
                                       predictions → equality
=====================================  =====================================================

A weighted loss resolves like its first term. Argmax is the same for logits and probabilities, so
categorical and sparse accuracy take either. Precision, recall, F1 and the confusion matrix use
the same rules to turn predictions into class labels (binary predictions with the threshold
above, so ``num_classes=2``).

Example:
    >>> import ember
    >>> from ember import metrics
    >>> acc = metrics.get_metric("accuracy")
    >>> state = acc.init()
    >>> state = acc.update(state, ember.tensor([[2.0, 1.0], [0.0, 3.0]]), ember.tensor([0, 0]))
    >>> state = acc.update(state, ember.tensor([[0.1, 0.9]]), ember.tensor([1]))
    >>> round(acc.result(state).item(), 4)
    0.6667
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ember import backend
from ember.tensor import Tensor

__all__ = [
    "Metric",
    "Accuracy",
    "TopKAccuracy",
    "MSE",
    "MAE",
    "Precision",
    "Recall",
    "F1",
    "ConfusionMatrix",
    "MeanMetric",
    "METRICS",
    "get_metric",
]

_F64 = backend.float64
_ACCURACY_KINDS = ("auto", "binary", "categorical", "sparse_categorical")


def _array(x: Any) -> Any:
    """The backend array of a tensor, array or nested list (never part of a graph)."""
    if isinstance(x, Tensor):
        return x.data
    bk = backend.get()
    if bk.owns(x):
        return x
    return Tensor(x).data


def _zeros(shape: tuple[int, ...] = ()) -> Tensor:
    return Tensor._make(backend.get().xp.zeros(shape, _F64), False, None)


def _wrap(array: Any) -> Tensor:
    return Tensor._make(array, False, None)


def _is_float(a: Any) -> bool:
    return bool(a.dtype.kind == "f")


class Metric:
    """Base class: a pure accumulator ``init`` → ``update`` per batch → ``result``.

    Subclasses set ``name`` (the History key) and implement the three methods with array math only
    (see the module docstring). ``metric(y_pred, y_true)`` is the result for one batch.

    Example:
        >>> import ember
        >>> from ember import metrics
        >>> metrics.MAE()(ember.tensor([1.0, 4.0]), ember.tensor([0.0, 0.0])).item()
        2.5
    """

    default_name: ClassVar[str] = "metric"

    def __init__(self, name: str | None = None) -> None:
        self.name: str = self.default_name if name is None else str(name)
        self._options: dict[str, Any] = {}

    def init(self) -> dict[str, Tensor]:
        """The state before any batch: a dict of zero tensors. A metric whose size follows from
        the data (a confusion matrix without ``num_classes``) returns ``{}`` until it knows it,
        and takes ``init(y_pred, y_true)``: anything with ``.shape`` and ``.dtype`` for one
        batch (arrays, or shapes only: the Trainer passes the shapes of the model's output
        before compiling, so that a compiled step keeps one state structure)."""
        raise NotImplementedError(f"{type(self).__name__} must define init()")

    def update(self, state: Mapping[str, Tensor], y_pred: Any, y_true: Any) -> dict[str, Tensor]:
        """The state after one more batch (a new dict; ``state`` is not changed)."""
        raise NotImplementedError(f"{type(self).__name__} must define update(state, y_pred, "
                                  f"y_true)")

    def result(self, state: Mapping[str, Tensor]) -> Tensor:
        """The metric of every batch seen so far."""
        raise NotImplementedError(f"{type(self).__name__} must define result(state)")

    def __call__(self, y_pred: Any, y_true: Any) -> Tensor:
        return self.result(self.update(self.init(), y_pred, y_true))

    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description that :func:`get_metric` rebuilds the metric from.

        Example:
            >>> from ember import metrics
            >>> metrics.TopKAccuracy(k=3).config()
            {'type': 'top_k_accuracy', 'k': 3}
        """
        named = {} if self.name == self.default_name else {"name": self.name}
        return {"type": self.default_name, **named, **self._options}

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in self._options.items()]
        if self.name != self.default_name:
            args.append(f"name={self.name!r}")
        return f"{type(self).__name__}({', '.join(args)})"

    # -- shared helpers --------------------------------------------------------------------------
    def _mismatch(self, p: Any, t: Any, expected: str) -> ValueError:
        return ValueError(f"{self.name}: y_pred of shape {tuple(p.shape)} does not match y_true "
                          f"of shape {tuple(t.shape)}; expected {expected}")


class _Mean(Metric):
    """Shared by the metrics that are a mean over elements: state ``total`` and ``count``."""

    def init(self) -> dict[str, Tensor]:
        return {"total": _zeros(), "count": _zeros()}

    def _values(self, p: Any, t: Any) -> Any:
        raise NotImplementedError

    def update(self, state: Mapping[str, Tensor], y_pred: Any, y_true: Any) -> dict[str, Tensor]:
        values = self._values(_array(y_pred), _array(y_true)).astype(_F64)
        return {"total": _wrap(state["total"].data + values.sum()),
                "count": _wrap(state["count"].data + math.prod(values.shape))}

    def result(self, state: Mapping[str, Tensor]) -> Tensor:
        xp = backend.get().xp
        return _wrap(state["total"].data / xp.maximum(state["count"].data, 1.0))


class Accuracy(_Mean):
    """The fraction of correct predictions, from logits, probabilities, one-hot or integer labels.

    Args:
        kind: ``"auto"`` (decide by shapes and dtypes, see the module docstring), ``"binary"``,
            ``"categorical"`` (one-hot or probability targets) or ``"sparse_categorical"``
            (integer labels of shape ``y_pred.shape[:-1]``, or with a trailing axis of 1).
        threshold: binary predictions above it count as 1 (0.5 for probabilities, 0.0 for
            logits); targets above 0.5 count as 1.
        name: the History key (default ``"accuracy"``).

    Example:
        >>> import ember
        >>> from ember import metrics
        >>> metrics.Accuracy()(ember.tensor([[0.2, 0.8], [0.6, 0.4]]), ember.tensor([1, 1])).item()
        0.5
        >>> binary = metrics.Accuracy(kind="binary", threshold=0.0)  # from logits
        >>> binary(ember.tensor([2.0, -1.0, 0.5]), ember.tensor([1.0, 0.0, 0.0])).item()
        0.6666666666666666
    """

    default_name = "accuracy"

    def __init__(self, kind: str = "auto", threshold: float = 0.5, name: str | None = None) -> None:
        super().__init__(name)
        if kind not in _ACCURACY_KINDS:
            raise ValueError(f"{self.name}: unknown kind {kind!r}; valid kinds: "
                             f"{', '.join(_ACCURACY_KINDS)}")
        self.kind = kind
        self.threshold = float(threshold)
        if kind != "auto":
            self._options["kind"] = kind
        if self.threshold != 0.5:
            self._options["threshold"] = self.threshold

    def _resolve(self, p: Any, t: Any) -> tuple[str, Any, Any]:
        """(kind, y_pred, y_true) with the shapes made to fit that kind; raises on a mismatch."""
        ps, ts = tuple(p.shape), tuple(t.shape)
        kind = self._auto_kind(p, t) if self.kind == "auto" else self.kind
        if kind == "binary":
            if len(ps) == len(ts) + 1 and ps[:-1] == ts and ps[-1] == 1:
                p = p.reshape(ts)
            elif ps != ts:
                raise self._mismatch(p, t, f"y_true of shape {ps} (binary targets)")
        elif kind == "categorical":
            if ps != ts or not ps:
                raise self._mismatch(p, t, f"y_true of shape {ps} (one-hot or probability "
                                           f"targets, classes on the last axis)")
        elif kind == "sparse_categorical":
            if len(ps) == len(ts) and ts and ts[-1] == 1 and ps[:-1] == ts[:-1]:
                t = t.reshape(ts[:-1])
            elif not (len(ps) == len(ts) + 1 and ps[:-1] == ts):
                raise self._mismatch(p, t, f"y_true of shape {ps[:-1]} (integer labels)")
        return kind, p, t

    def _auto_kind(self, p: Any, t: Any) -> str:
        """The kind that the shapes (and the predictions' dtype) say."""
        ps, ts = tuple(p.shape), tuple(t.shape)
        if ps == ts:
            if not _is_float(p):
                return "equal"
            return "categorical" if len(ps) >= 2 and ps[-1] > 1 else "binary"
        if len(ps) == len(ts) + 1 and ps[:-1] == ts:
            return "binary" if ps[-1] == 1 else "sparse_categorical"
        if len(ps) == len(ts) and ps[:-1] == ts[:-1] and ts and ts[-1] == 1 and ps[-1] > 1:
            return "sparse_categorical"
        raise self._mismatch(p, t, f"y_true of shape {ps[:-1]} (integer labels) or {ps} "
                                   f"(one-hot or binary targets)")

    def _values(self, p: Any, t: Any) -> Any:
        xp = backend.get().xp
        kind, p, t = self._resolve(p, t)
        if kind == "binary":
            return (p > self.threshold) == (t > 0.5)
        if kind == "categorical":
            return xp.argmax(p, axis=-1) == xp.argmax(t, axis=-1)
        if kind == "sparse_categorical":
            return xp.argmax(p, axis=-1) == t
        return p == t  # "equal": integer predictions


class TopKAccuracy(_Mean):
    """The fraction of samples whose true class is among the ``k`` highest scores.

    ``y_pred`` holds scores (logits or probabilities) with classes on the last axis; ``y_true``
    integer labels of shape ``y_pred.shape[:-1]`` or one-hot targets of ``y_pred``'s shape. A
    sample counts when fewer than ``k`` classes score strictly higher than its true class (ties
    count in its favour, as ``tf.math.in_top_k``); a NaN score never counts.

    Example:
        >>> import ember
        >>> from ember import metrics
        >>> scores = ember.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
        >>> metrics.TopKAccuracy(k=2)(scores, ember.tensor([2, 2])).item()
        0.5
    """

    default_name = "top_k_accuracy"

    def __init__(self, k: int = 5, name: str | None = None) -> None:
        super().__init__(name)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"{self.name}: k must be a positive integer, got {k!r}")
        self.k = k
        self._options["k"] = k

    def _values(self, p: Any, t: Any) -> Any:
        xp = backend.get().xp
        ps, ts = tuple(p.shape), tuple(t.shape)
        if not ps:
            raise self._mismatch(p, t, "y_pred with classes on the last axis")
        if ps == ts:
            t = xp.argmax(t, axis=-1)
        elif len(ps) == len(ts) and ts and ts[-1] == 1 and ps[:-1] == ts[:-1]:
            t = t.reshape(ts[:-1])
        elif not (len(ps) == len(ts) + 1 and ps[:-1] == ts):
            raise self._mismatch(p, t, f"y_true of shape {ps[:-1]} (integer labels) or {ps} "
                                       f"(one-hot)")
        mine = xp.arange(ps[-1]) == t[..., None]
        target = xp.where(mine, p, 0).sum(axis=-1, keepdims=True)
        higher = (p > target).sum(axis=-1)
        return (higher < self.k) & (target[..., 0] == target[..., 0])


class _Regression(_Mean):
    def _pair(self, p: Any, t: Any) -> tuple[Any, Any]:
        ps, ts = tuple(p.shape), tuple(t.shape)
        if ps == ts:
            return p.astype(_F64), t.astype(_F64)
        if len(ps) == len(ts) + 1 and ps[:-1] == ts and ps[-1] == 1:
            return p.reshape(ts).astype(_F64), t.astype(_F64)
        raise self._mismatch(p, t, f"y_true of shape {ps} (the same shape; predictions of shape "
                                   f"(..., 1) also take targets without the last axis)")


class MSE(_Regression):
    """Mean squared error over every element (Keras ``"mse"``).

    Example:
        >>> import ember
        >>> from ember import metrics
        >>> metrics.MSE()(ember.tensor([[1.0], [3.0]]), ember.tensor([1.0, 1.0])).item()
        2.0
    """

    default_name = "mse"

    def _values(self, p: Any, t: Any) -> Any:
        p, t = self._pair(p, t)
        return (p - t) * (p - t)


class MAE(_Regression):
    """Mean absolute error over every element (Keras ``"mae"``).

    Example:
        >>> import ember
        >>> from ember import metrics
        >>> metrics.MAE()(ember.tensor([1.0, -3.0]), ember.tensor([1.0, 1.0])).item()
        2.0
    """

    default_name = "mae"

    def _values(self, p: Any, t: Any) -> Any:
        p, t = self._pair(p, t)
        return backend.get().xp.abs(p - t)


class MeanMetric(_Mean):
    """The mean of ``fn(y_pred, y_true)`` over every element of every batch (a custom metric).

    ``fn`` must be pure (ember ops or backend array math, no ``.item()``) to run compiled.

    Example:
        >>> import ember
        >>> from ember import metrics
        >>> err = metrics.MeanMetric(lambda p, t: (p - t).abs() > 0.5, name="far")
        >>> err(ember.tensor([0.0, 1.0, 2.0]), ember.tensor([0.0, 0.0, 0.0])).item()
        0.6666666666666666
    """

    default_name = "mean"

    def __init__(self, fn: Callable[[Tensor, Tensor], Any], name: str | None = None) -> None:
        super().__init__(name if name is not None else getattr(fn, "__name__", None))
        self.fn = fn

    def _values(self, p: Any, t: Any) -> Any:
        return _array(self.fn(_wrap(p), _wrap(t)))

    def config(self) -> dict[str, Any]:
        raise TypeError(f"MeanMetric {self.name!r} wraps a Python function and has no config; "
                        f"rebuild it in code")


class _ClassCounts(Metric):
    """Shared by the metrics of a confusion matrix: state ``matrix`` (true class x predicted)."""

    def __init__(self, num_classes: int | None = None, threshold: float = 0.5,
                 name: str | None = None) -> None:
        super().__init__(name)
        if num_classes is not None and (not isinstance(num_classes, int)
                                        or isinstance(num_classes, bool) or num_classes < 2):
            raise ValueError(f"{self.name}: num_classes must be an integer >= 2, got "
                             f"{num_classes!r}")
        self.num_classes = num_classes
        self.threshold = float(threshold)
        if num_classes is not None:
            self._options["num_classes"] = num_classes
        if self.threshold != 0.5:
            self._options["threshold"] = self.threshold

    def init(self, y_pred: Any = None, y_true: Any = None) -> dict[str, Tensor]:
        """Zeros of shape ``(num_classes, num_classes)``. While ``num_classes`` is unknown, the
        shapes of one batch's ``y_pred`` and ``y_true`` (arrays or shape structs) give it; without
        them the state is ``{}`` and the first update creates the matrix from ``y_pred``'s last
        axis (pass ``num_classes`` to the constructor to fix the state up front).

        Example:
            >>> import numpy as np
            >>> from ember import metrics
            >>> cm = metrics.ConfusionMatrix()
            >>> cm.init(), cm.init(np.zeros((8, 3)), np.zeros(8, int))["matrix"].shape
            ({}, (3, 3))
        """
        if self.num_classes is None and y_pred is not None and y_true is not None:
            self.num_classes = self._implied(y_pred, y_true)
        if self.num_classes is None:
            return {}
        return {"matrix": _zeros((self.num_classes, self.num_classes))}

    def _implied(self, p: Any, t: Any) -> int | None:
        """The number of classes that the shapes of ``y_pred`` and ``y_true`` imply (the cases of
        :meth:`_labels`), or None for integer predictions."""
        ps, ts, floats = tuple(p.shape), tuple(t.shape), _is_float(p)
        if len(ps) == len(ts) + 1 and ps[:-1] == ts:
            return 2 if ps[-1] == 1 else ps[-1]
        if len(ps) == len(ts) and ps[:-1] == ts[:-1] and ts and ts[-1] == 1 and ps[-1] > 1:
            return ps[-1]
        if ps == ts and floats:
            return ps[-1] if len(ps) >= 2 and ps[-1] > 1 else 2
        if ps == ts:
            return None
        raise self._mismatch(p, t, f"y_true of shape {ps[:-1]} (integer labels) or {ps} (one-hot "
                                   f"or binary targets)")

    def _labels(self, p: Any, t: Any) -> tuple[Any, Any, int | None]:
        """(predicted labels, true labels, number of classes the shapes imply or None)."""
        xp = backend.get().xp
        ps, ts = tuple(p.shape), tuple(t.shape)
        if len(ps) == len(ts) + 1 and ps[:-1] == ts:
            if ps[-1] == 1:
                return p.reshape(ts) > self.threshold, t > 0.5, 2
            return xp.argmax(p, axis=-1), t, ps[-1]
        if len(ps) == len(ts) and ps[:-1] == ts[:-1] and ts and ts[-1] == 1 and ps[-1] > 1:
            return xp.argmax(p, axis=-1), t.reshape(ts[:-1]), ps[-1]
        if ps == ts:
            if not _is_float(p):
                return p, t, None
            if len(ps) >= 2 and ps[-1] > 1:
                return xp.argmax(p, axis=-1), xp.argmax(t, axis=-1), ps[-1]
            return p > self.threshold, t > 0.5, 2
        raise self._mismatch(p, t, f"y_true of shape {ps[:-1]} (integer labels) or {ps} (one-hot "
                                   f"or binary targets)")

    def update(self, state: Mapping[str, Tensor], y_pred: Any, y_true: Any) -> dict[str, Tensor]:
        xp = backend.get().xp
        pred, true, implied = self._labels(_array(y_pred), _array(y_true))
        n = self.num_classes
        if n is None:
            if implied is None:
                raise ValueError(f"{self.name}: cannot tell the number of classes from integer "
                                 f"predictions; pass num_classes (e.g. get_metric("
                                 f"{self.default_name!r}, num_classes=10))")
            n = self.num_classes = implied
        elif implied is not None and implied != n:
            raise ValueError(f"{self.name}: y_pred of shape {tuple(_array(y_pred).shape)} implies "
                             f"{implied} classes, but num_classes={n}")
        matrix = state["matrix"].data if "matrix" in state else xp.zeros((n, n), _F64)
        classes = xp.arange(n)
        # Labels outside 0..n-1 have an all-zero one-hot row: they are not counted.
        true_hot = (true.reshape(-1, 1) == classes).astype(_F64)
        pred_hot = (pred.reshape(-1, 1) == classes).astype(_F64)
        return {"matrix": _wrap(matrix + true_hot.T @ pred_hot)}

    def _matrix(self, state: Mapping[str, Tensor]) -> Any:
        if "matrix" in state:
            return state["matrix"].data
        n = self.num_classes or 0
        return backend.get().xp.zeros((n, n), _F64)

    def _macro(self, state: Mapping[str, Tensor], of: str) -> Tensor:
        """The mean over classes seen in y_true or y_pred (scikit-learn's ``average="macro"``)
        of precision, recall or F1, with 0 for a class that has no predictions / no samples."""
        xp = backend.get().xp
        m = self._matrix(state)
        tp = (m * xp.eye(m.shape[0], dtype=_F64)).sum(axis=1)
        predicted, actual = m.sum(axis=0), m.sum(axis=1)
        if of == "precision":
            per_class, denominator = tp, predicted
        elif of == "recall":
            per_class, denominator = tp, actual
        else:
            per_class, denominator = 2 * tp, predicted + actual
        score = per_class / xp.maximum(denominator, 1.0)
        present = (predicted + actual) > 0
        return _wrap(xp.where(present, score, 0.0).sum() / xp.maximum(present.sum(), 1))


class Precision(_ClassCounts):
    """Macro precision: per class, correct predictions of it / all predictions of it; averaged
    over the classes present in y_true or y_pred.

    Args:
        num_classes: the number of classes; without it, taken from ``y_pred``'s last axis on the
            first update (see :meth:`init`). Binary predictions (one value per sample) have 2
            classes, and the macro average covers both.
        threshold: binary predictions above it are class 1 (0.0 for logits).
        name: the History key.

    Example:
        >>> import ember
        >>> from ember import metrics
        >>> p = metrics.Precision(num_classes=3)
        >>> p(ember.tensor([0, 1, 1, 2]), ember.tensor([0, 1, 2, 2])).item()
        0.8333333333333334
    """

    default_name = "precision"

    def result(self, state: Mapping[str, Tensor]) -> Tensor:
        return self._macro(state, "precision")


class Recall(_ClassCounts):
    """Macro recall: per class, correct predictions of it / its samples; averaged over the classes
    present in y_true or y_pred. Arguments as :class:`Precision`.

    Example:
        >>> import ember
        >>> from ember import metrics
        >>> r = metrics.Recall(num_classes=3)
        >>> r(ember.tensor([0, 1, 1, 2]), ember.tensor([0, 1, 2, 2])).item()
        0.8333333333333334
    """

    default_name = "recall"

    def result(self, state: Mapping[str, Tensor]) -> Tensor:
        return self._macro(state, "recall")


class F1(_ClassCounts):
    """Macro F1: per class ``2 TP / (2 TP + FP + FN)`` (the harmonic mean of its precision and
    recall); averaged over the classes present. Arguments as :class:`Precision`.

    Example:
        >>> import ember
        >>> from ember import metrics
        >>> f1 = metrics.F1(num_classes=3)
        >>> round(f1(ember.tensor([0, 1, 1, 2]), ember.tensor([0, 1, 2, 2])).item(), 4)
        0.7778
    """

    default_name = "f1"

    def result(self, state: Mapping[str, Tensor]) -> Tensor:
        return self._macro(state, "f1")


class ConfusionMatrix(_ClassCounts):
    """Counts of (true class, predicted class) pairs: row = true class, column = predicted
    (scikit-learn's layout), as an int64 tensor. Arguments as :class:`Precision`.

    Example:
        >>> import ember
        >>> from ember import metrics
        >>> cm = metrics.ConfusionMatrix(num_classes=2)
        >>> cm(ember.tensor([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]]), ember.tensor([0, 0, 1])).tolist()
        [[1, 1], [0, 1]]
    """

    default_name = "confusion_matrix"

    def result(self, state: Mapping[str, Tensor]) -> Tensor:
        return _wrap(self._matrix(state).astype(backend.int64))


#: name -> (class, keyword arguments); see :func:`get_metric`
METRICS: dict[str, tuple[type[Metric], dict[str, Any]]] = {
    "accuracy": (Accuracy, {}),
    "acc": (Accuracy, {}),
    "binary_accuracy": (Accuracy, {"kind": "binary"}),
    "categorical_accuracy": (Accuracy, {"kind": "categorical"}),
    "sparse_categorical_accuracy": (Accuracy, {"kind": "sparse_categorical"}),
    "top_k_accuracy": (TopKAccuracy, {}),
    "top_k_categorical_accuracy": (TopKAccuracy, {}),
    "sparse_top_k_categorical_accuracy": (TopKAccuracy, {}),
    "mse": (MSE, {}),
    "mean_squared_error": (MSE, {}),
    "mae": (MAE, {}),
    "mean_absolute_error": (MAE, {}),
    "precision": (Precision, {}),
    "recall": (Recall, {}),
    "f1": (F1, {}),
    "f1_score": (F1, {}),
    "confusion_matrix": (ConfusionMatrix, {}),
}

_TOP_K = re.compile(r"top(\d+)")


def _first_loss(loss: Any) -> Any:
    """The loss object that decides the accuracy kind: a name or config becomes a Loss, a weighted
    loss or a list of ``(loss, weight)`` pairs gives its first term."""
    from ember.nn import losses

    if isinstance(loss, (list, tuple)) and loss:
        first = loss[0]
        return _first_loss(first[0] if isinstance(first, (list, tuple)) else first)
    if isinstance(loss, (str, dict)):
        loss = losses.get_loss(loss)
    if isinstance(loss, losses.WeightedLoss):
        return _first_loss(loss.terms[0][0])
    return loss


def _from_loss(loss: Any) -> dict[str, Any]:
    """The accuracy options that ``loss`` implies (the table in the module docstring)."""
    from ember.nn import losses

    loss = _first_loss(loss)
    if isinstance(loss, losses.BinaryCrossentropy):
        return {"kind": "binary", "threshold": 0.0 if loss.from_logits else 0.5}
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return {"kind": "sparse_categorical"}
    if isinstance(loss, losses.CategoricalCrossentropy):
        return {"kind": "categorical"}
    return {}


def get_metric(metric: str | dict[str, Any] | Metric | Callable[..., Any], loss: Any = None,
               **options: Any) -> Metric:
    """A metric from its name, a :meth:`Metric.config` dict, a Metric (returned as is) or a
    function ``fn(y_pred, y_true)`` (wrapped in :class:`MeanMetric`).

    Args:
        metric: what to build; names are listed in the module docstring (``"top3"`` is top-3
            accuracy). The metric's ``name`` (its History key) is the name as given.
        loss: the training loss (a Loss, its name, or ``[(loss, weight), ...]``): resolves
            ``"accuracy"`` (and the binary threshold of precision, recall, F1 and the confusion
            matrix) as the module docstring's table says.
        **options: passed to the metric's constructor, e.g. ``num_classes=10``, ``k=3``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.

    Example:
        >>> from ember import metrics, nn
        >>> metrics.get_metric("acc", loss=nn.BinaryCrossentropy(from_logits=True))
        Accuracy(kind='binary', threshold=0.0, name='acc')
        >>> metrics.get_metric("top3")
        TopKAccuracy(k=3, name='top3')
    """
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, dict):
        conf = dict(metric)
        kind = conf.pop("type", None)
        return get_metric(kind, loss, **{**conf, **options})  # type: ignore[arg-type]
    if callable(metric) and not isinstance(metric, str):
        return MeanMetric(metric, **options)
    if not isinstance(metric, str):
        raise TypeError(f"a metric is a name, a config dict, a Metric or a function "
                        f"fn(y_pred, y_true), got {type(metric).__name__}")
    key = metric.strip().lower()
    match = _TOP_K.fullmatch(key)
    cls: type[Metric]
    if match:
        cls, defaults = TopKAccuracy, {"k": int(match.group(1))}
    elif key in METRICS:
        cls, defaults = METRICS[key]
    else:
        raise ValueError(f"unknown metric {metric!r}; valid names: {', '.join(METRICS)}, "
                         f"top<k> (e.g. top5)")
    kwargs = {"name": key, **defaults, **_implied_by(loss, cls, defaults), **options}
    return cls(**kwargs)


def _implied_by(loss: Any, cls: type[Metric], defaults: dict[str, Any]) -> dict[str, Any]:
    """What the training loss says about a metric: accuracy's kind and threshold, and the
    binary threshold of the confusion-matrix metrics."""
    if loss is None:
        return {}
    implied = _from_loss(loss)
    if cls is Accuracy and "kind" not in defaults:
        return dict(implied)
    binary = cls is Accuracy and defaults.get("kind") == "binary"
    if (issubclass(cls, _ClassCounts) or binary) and "threshold" in implied:
        return {"threshold": implied["threshold"]}
    return {}
