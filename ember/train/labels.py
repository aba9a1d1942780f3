"""Class labels checked on the host before ``fit`` / ``evaluate`` run a step.

A loss over class indices (``SparseCategoricalCrossentropy``, ``SoftmaxCrossEntropy`` /
``CrossEntropyLoss``, and any loss with an ``ignore_index``) checks its labels eagerly, but inside
``ember.jit`` the values are unknown while compiling, and on JAX an index past the last class
reads a clamped or NaN value: a label >= the number of classes would show only as a NaN loss.
So the Trainer checks the labels of in-memory data (arrays, or a DataLoader over arrays) once,
before training, against the number of classes of the model's output (read from a one-sample
prediction in eval mode). Generators and map-style data sets are not read ahead; there the NaN
guard's warning names bad labels as a possible cause.

Example:
    >>> import numpy as np
    >>> from ember import nn
    >>> from ember.data import DataLoader
    >>> from ember.train.labels import check_class_labels
    >>> loader = DataLoader((np.zeros((4, 2), "float32"), np.array([0, 1, 2, 1])), 2)
    >>> check_class_labels("fit", nn.CrossEntropyLoss(), nn.Linear(2, 3), loader)  # fine
    >>> try:
    ...     check_class_labels("fit", nn.CrossEntropyLoss(), nn.Linear(2, 2), loader)
    ... except ValueError as e:
    ...     print(str(e)[:67])
    fit: y[2] = 2 is not a class of CrossEntropyLoss: the model outputs
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np  # host-side checks only

from ember import backend
from ember import random as _random
from ember.data.loader import DataLoader
from ember.function import no_grad
from ember.nn.losses import SoftmaxCrossEntropy, SparseCategoricalCrossentropy
from ember.tensor import Tensor

__all__ = ["check_class_labels", "class_losses"]


def class_losses(loss: Any) -> list[Any]:
    """The terms of ``loss`` (one, or those of a weighted sum) that take class indices.

    Example:
        >>> from ember import nn
        >>> from ember.train.labels import class_losses
        >>> [type(x).__name__ for x in class_losses(0.5 * nn.MSE() + nn.CrossEntropyLoss())]
        ['CrossEntropyLoss']
    """
    terms = [term for term, _ in loss.terms] if hasattr(loss, "terms") else [loss]
    return [term for term in terms if isinstance(
        term, (SparseCategoricalCrossentropy, SoftmaxCrossEntropy)) or hasattr(
        term, "ignore_index")]


#: the output shapes found per model, keyed by what decides them (the structure, the parameter
#: shapes, the sample's shape and dtype, the backend): ``fit`` called once per epoch does not run
#: a forward pass each time
_SHAPES: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()


def _classes(model: Any, x: np.ndarray) -> tuple[int, ...] | None:
    """The shape of the model's output for one sample (eval mode, no gradient, random state
    untouched), or None when that cannot be had (then training reports the problem itself)."""
    from ember.nn.module import structure_version

    try:
        cache = _SHAPES.setdefault(model, {})
    except TypeError:  # not weakly referable: no cache
        cache = {}
    key = (structure_version(), tuple(p.shape for p in model.parameters()),
           x.shape[1:], x.dtype, backend.get().name)
    if key not in cache:
        cache[key] = _forward_shape(model, x)
    return cache[key]


def _forward_shape(model: Any, x: np.ndarray) -> tuple[int, ...] | None:
    was_training, key = model.training, _random.get_state()
    model.eval()
    try:
        with no_grad():
            out = model(Tensor._make(backend.get().asarray(x[:1], dtype=x.dtype), False, None))
    except Exception:  # the first step will raise the same error, with its context
        return None
    finally:
        model.train(was_training)
        _random.set_state(key)
    return tuple(out.shape) if isinstance(out, Tensor) and out.ndim else None


def check_class_labels(owner: str, loss: Any, model: Any, source: Any,
                       name: str = "y") -> None:
    """Raise ValueError naming the loss, the first bad label, its index and the number of classes
    when a label of ``source`` (a DataLoader over ``(x, y)`` arrays; anything else is skipped) is
    negative, not below the number of classes of the model's output, or not a whole number;
    labels equal to the loss's ``ignore_index`` are exempt. Targets shaped as the predictions
    (one-hot rows) are not class indices and are left to the loss.
    """
    terms = class_losses(loss)
    arrays = source.arrays if isinstance(source, DataLoader) else None
    if not terms or arrays is None or len(arrays) != 2:
        return
    x, y = arrays
    shape = _classes(model, x)
    if shape is None or tuple(y.shape[1:]) not in (shape[1:-1], shape[1:-1] + (1,)):
        return
    n = shape[-1]
    for term in terms:
        _check(owner, type(term).__name__, getattr(term, "ignore_index", None), y, n, name)


def _check(owner: str, who: str, ignore: Any, y: np.ndarray, n: int, name: str) -> None:
    keep = np.ones(y.shape, bool) if ignore is None else y != ignore
    if y.dtype.kind == "f":
        bad = np.argwhere(keep & (y != np.round(y)))
        if bad.size:
            idx = tuple(int(i) for i in bad[0])
            raise ValueError(f"{owner}: {name}{list(idx)} = {y[idx].item()!r} is not a class "
                             f"index; {who} takes whole-number labels")
    elif y.dtype.kind not in "iu":
        return  # booleans and others: the loss names them
    out = keep & ((y < 0) | (y >= n))
    if not out.any():
        return
    idx = tuple(int(i) for i in np.argwhere(out)[0])
    value = y[idx].item()
    value = int(value) if float(value).is_integer() else value
    count = int(out.sum())
    exempt = "" if ignore is None else f" (or equal ignore_index={ignore})"
    raise ValueError(f"{owner}: {name}{list(idx)} = {value} is not a class of {who}: the model "
                     f"outputs {n} classes, so labels must be in [0, {n}){exempt}; {count} "
                     f"label{'s' if count > 1 else ''} of {y.size} "
                     f"{'are' if count > 1 else 'is'} out of range (min {y[keep].min().item()}, "
                     f"max {y[keep].max().item()})")
