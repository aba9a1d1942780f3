"""Loss classes (Keras names, PyTorch call style), weighted combinations and the L1/L2 penalties.

A loss is called as ``loss(pred, target)`` and reduces with ``reduction="mean" | "sum" | "none"``
(see :mod:`ember.nn.functional` for the shapes and the errors). Each has a Keras-style ``name``
(``"mse"``, ``"categorical_crossentropy"``…) that :func:`get_loss` looks up. Losses combine with
arithmetic: ``0.7 * MSE() + 0.3 * MAE()`` is a :class:`WeightedLoss`.

Example:
    >>> import ember
    >>> from ember import nn
    >>> loss = 0.5 * nn.MSE() + 0.5 * nn.MAE()
    >>> loss
    WeightedLoss([(MSE(), 0.5), (MAE(), 0.5)])
    >>> loss(ember.tensor([0.0, 2.0]), ember.tensor([0.0, 0.0])).item()
    1.5
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from ember import backend
from ember.nn import functional as F  # noqa: N812 - PyTorch's spelling
from ember.tensor import Tensor

__all__ = [
    "Loss",
    "MSE",
    "MAE",
    "Huber",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "SoftmaxCrossEntropy",
    "CrossEntropyLoss",
    "NLLLoss",
    "KLDivergence",
    "WeightedLoss",
    "LOSSES",
    "get_loss",
    "Penalty",
    "L1",
    "L2",
]


class Loss:
    """Base class of the losses: ``loss(pred, target)`` calls :meth:`forward`.

    Subclasses set ``name`` (the Keras-style name) and implement ``forward``; the keyword
    arguments given to ``__init__`` are kept for ``repr`` and :meth:`config`.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> class MeanAbsolute(nn.Loss):
        ...     name = "mean_absolute"
        ...     def forward(self, pred, target):
        ...         return (pred - target).abs().mean()
        >>> MeanAbsolute()(ember.tensor([1.0, 4.0]), ember.tensor([2.0, 2.0])).item()
        1.5
    """

    name: ClassVar[str] = ""

    def __init__(self, reduction: str = "mean", **options: Any) -> None:
        F._check_reduction(type(self).__name__, reduction)
        self.reduction = reduction
        self._options = dict(options)
        if reduction != "mean":
            self._options["reduction"] = reduction

    def __call__(self, pred: Tensor, target: Any) -> Tensor:
        return self.forward(pred, target)

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        """The loss of ``pred`` against ``target`` (a scalar unless ``reduction="none"``)."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(pred, target)")

    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description: ``{"type": name, **options}`` (see :func:`get_loss`).

        Example:
            >>> from ember import nn
            >>> nn.BinaryCrossentropy(from_logits=True).config()
            {'type': 'binary_crossentropy', 'from_logits': True}
        """
        return {"type": self.name, **self._options}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"{type(self).__name__}({args})"

    # -- arithmetic: weighted sums of losses -------------------------------------------------------
    def _terms(self) -> list[tuple[Loss, float]]:
        return [(self, 1.0)]

    def __add__(self, other: Any) -> WeightedLoss:
        if isinstance(other, Loss):
            return WeightedLoss(self._terms() + other._terms())
        return NotImplemented

    def __radd__(self, other: Any) -> WeightedLoss:
        if isinstance(other, numbers.Number) and other == 0:  # sum([loss_a, loss_b])
            return WeightedLoss(self._terms())
        return NotImplemented

    def __mul__(self, weight: Any) -> WeightedLoss:
        if isinstance(weight, numbers.Real) and not isinstance(weight, bool):
            return WeightedLoss([(loss, w * float(weight)) for loss, w in self._terms()])
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, divisor: Any) -> WeightedLoss:
        if isinstance(divisor, numbers.Real) and not isinstance(divisor, bool):
            return self * (1.0 / float(divisor))
        return NotImplemented


class WeightedLoss(Loss):
    """``sum(weight * loss(pred, target))`` over ``[(loss, weight), ...]``.

    Also what ``0.7 * MSE() + 0.3 * MAE()`` builds. Nested weighted losses are flattened.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> loss = nn.WeightedLoss([(nn.MSE(), 2.0), (nn.MAE(), 1.0)])
        >>> loss(ember.tensor([1.0]), ember.tensor([0.0])).item()
        3.0
    """

    name = "weighted"

    def __init__(self, terms: Sequence[tuple[Loss, float]]) -> None:
        super().__init__()
        flat: list[tuple[Loss, float]] = []
        for item in terms:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise TypeError(f"WeightedLoss expects (loss, weight) pairs, got {item!r}")
            loss, weight = item
            if not isinstance(loss, Loss) or not isinstance(weight, numbers.Real):
                raise TypeError(f"WeightedLoss expects (loss, weight) pairs with a Loss and a "
                                f"number, got ({loss!r}, {weight!r})")
            flat.extend((inner, w * float(weight)) for inner, w in loss._terms())
        if not flat:
            raise ValueError("WeightedLoss needs at least one (loss, weight) pair")
        self.terms = flat

    def _terms(self) -> list[tuple[Loss, float]]:
        return list(self.terms)

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        total = None
        for loss, weight in self.terms:
            value = loss(pred, target) * weight
            total = value if total is None else total + value
        return total  # type: ignore[return-value]

    def config(self) -> dict[str, Any]:
        """``{"type": "weighted", "terms": [[loss config, weight], ...]}``."""
        return {"type": self.name, "terms": [[loss.config(), w] for loss, w in self.terms]}

    def __repr__(self) -> str:
        return f"WeightedLoss([{', '.join(f'({loss!r}, {w!r})' for loss, w in self.terms)}])"


class MSE(Loss):
    """Mean squared error (PyTorch: ``MSELoss``).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.MSE()(ember.tensor([1.0, 3.0]), ember.tensor([1.0, 1.0])).item()
        2.0
    """

    name = "mse"

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return F._mse(pred, target, self.reduction, "MSE")


class MAE(Loss):
    """Mean absolute error (PyTorch: ``L1Loss``).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.MAE(reduction="sum")(ember.tensor([1.0, 3.0]), ember.tensor([0.0, 0.0])).item()
        4.0
    """

    name = "mae"

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return F._mae(pred, target, self.reduction, "MAE")


class Huber(Loss):
    """Huber loss: quadratic within ``delta`` of the target, linear beyond (``HuberLoss``).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.Huber(delta=1.0)(ember.tensor([3.0]), ember.tensor([0.0])).item()
        2.5
    """

    name = "huber"

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        if not delta > 0:
            raise ValueError(f"Huber: delta must be positive, got {delta!r}")
        super().__init__(reduction, **({} if delta == 1.0 else {"delta": float(delta)}))
        self.delta = float(delta)

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return F._huber(pred, target, self.delta, self.reduction, "Huber")


class _FromLogits(Loss):
    def __init__(self, from_logits: bool = False, epsilon: float = 1e-7,
                 reduction: str = "mean") -> None:
        options: dict[str, Any] = {}
        if from_logits:
            options["from_logits"] = True
        if epsilon != 1e-7:
            options["epsilon"] = float(epsilon)
        super().__init__(reduction, **options)
        self.from_logits = bool(from_logits)
        self.epsilon = F._clip_eps(type(self).__name__, float(epsilon))


class BinaryCrossentropy(_FromLogits):
    """Binary cross-entropy of probabilities, or of logits with ``from_logits=True``.

    Probabilities are clipped to [epsilon, 1 - epsilon] (Keras); logits use the fused
    ``ember.binary_cross_entropy_with_logits``, exact for any logit.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> loss = nn.BinaryCrossentropy(from_logits=True)
        >>> loss(ember.tensor([1e4, -1e4]), ember.tensor([1.0, 0.0])).item()
        0.0
    """

    name = "binary_crossentropy"

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return F._bce(pred, target, self.from_logits, self.epsilon, self.reduction,
                      "BinaryCrossentropy")


class CategoricalCrossentropy(_FromLogits):
    """Cross-entropy with one-hot or probability targets (classes on the last axis).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> p = ember.tensor([[0.0, 1.0], [1.0, 0.0]])
        >>> round(nn.CategoricalCrossentropy()(p, ember.tensor([[0.0, 1.0], [0.0, 1.0]])).item(), 3)
        8.059
    """

    name = "categorical_crossentropy"

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return F._cce(pred, target, self.from_logits, self.epsilon, self.reduction,
                      "CategoricalCrossentropy")


def _class_options(weight: Any, ignore_index: int | None, label_smoothing: float) -> dict:
    """The class-index options that differ from their defaults, for ``config()``."""
    options: dict[str, Any] = {}
    if weight is not None:
        w = weight.numpy() if isinstance(weight, Tensor) else weight
        options["weight"] = [float(v) for v in backend.get().to_numpy(backend.get().asarray(w))]
    if ignore_index is not None:
        options["ignore_index"] = int(ignore_index)
    if label_smoothing:
        options["label_smoothing"] = float(label_smoothing)
    return options


class SparseCategoricalCrossentropy(_FromLogits):
    """Cross-entropy with integer labels of shape ``pred.shape[:-1]`` (probabilities, or logits
    with ``from_logits=True``); ``weight``, ``ignore_index`` and ``label_smoothing`` as in
    :class:`SoftmaxCrossEntropy`.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> loss = nn.SparseCategoricalCrossentropy(from_logits=True)
        >>> round(loss(ember.tensor([[0.0, 0.0]]), [1]).item(), 4)
        0.6931
    """

    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False, epsilon: float = 1e-7,
                 reduction: str = "mean", *, weight: Any = None, ignore_index: int | None = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(from_logits, epsilon, reduction)
        F._smoothing(type(self).__name__, label_smoothing)
        self._options.update(_class_options(weight, ignore_index, label_smoothing))
        self.weight, self.ignore_index = weight, ignore_index
        self.label_smoothing = float(label_smoothing)

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return F._sparse(pred, target, self.from_logits, self.epsilon, self.reduction,
                         "SparseCategoricalCrossentropy", self.weight, self.ignore_index,
                         self.label_smoothing)


class SoftmaxCrossEntropy(Loss):
    """Softmax cross-entropy from logits with integer labels or one-hot / probability targets:
    one fused, stable op (``ember.softmax_cross_entropy``). Alias: ``CrossEntropyLoss``.

    Classes are on the last axis: logits (..., C) with labels (...), so (B, T, C) sequence logits
    take (B, T) targets as they are. PyTorch's ``CrossEntropyLoss`` wants (N, C, ...) instead; the
    two agree for (N, C).

    Args:
        reduction: ``"mean"`` (weighted by ``weight`` when given, as PyTorch), ``"sum"``,
            ``"none"``.
        weight: one weight per class, shape (C,).
        ignore_index: a label value that adds nothing and is not counted in the mean (e.g. a
            padding token; PyTorch's default -100 must be given explicitly here).
        label_smoothing: in [0, 1]: the target becomes ``(1 - e) one_hot + e / C``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> loss = nn.CrossEntropyLoss()
        >>> loss(ember.tensor([[1e4, -1e4]]), [0]).item()
        0.0
        >>> smooth = nn.CrossEntropyLoss(label_smoothing=0.2, ignore_index=-100)
        >>> round(smooth(ember.tensor([[0.0, 2.0], [5.0, 0.0]]), [1, -100]).item(), 4)
        0.3269
    """

    name = "softmax_cross_entropy"

    def __init__(self, reduction: str = "mean", *, weight: Any = None,
                 ignore_index: int | None = None, label_smoothing: float = 0.0) -> None:
        F._smoothing(type(self).__name__, label_smoothing)
        super().__init__(reduction, **_class_options(weight, ignore_index, label_smoothing))
        self.weight, self.ignore_index = weight, ignore_index
        self.label_smoothing = float(label_smoothing)

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return F._softmax_ce(pred, target, self.reduction, type(self).__name__, self.weight,
                             self.ignore_index, self.label_smoothing)


class CrossEntropyLoss(SoftmaxCrossEntropy):
    """PyTorch's name for :class:`SoftmaxCrossEntropy` (classes on the last axis).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> loss = nn.CrossEntropyLoss(reduction="none")
        >>> [round(v, 4) for v in loss(ember.tensor([[0.0, 0.0], [0.0, 2.0]]), [0, 1]).tolist()]
        [0.6931, 0.1269]
    """


class NLLLoss(Loss):
    """Negative log-likelihood of integer labels (...) under log-probabilities (..., C), e.g.
    the output of ``log_softmax``; ``weight`` and ``ignore_index`` as in
    :class:`SoftmaxCrossEntropy` (classes on the last axis).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> lp = ember.tensor([[0.0, 0.0], [0.0, 2.0]]).log_softmax()
        >>> round(nn.NLLLoss()(lp, [0, 1]).item(), 4)
        0.41
    """

    name = "nll"

    def __init__(self, reduction: str = "mean", *, weight: Any = None,
                 ignore_index: int | None = None) -> None:
        super().__init__(reduction, **_class_options(weight, ignore_index, 0.0))
        self.weight, self.ignore_index = weight, ignore_index

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return F._nll(pred, target, self.reduction, "NLLLoss", self.weight, self.ignore_index)


class KLDivergence(Loss):
    """Kullback-Leibler divergence ``sum(target * log(target / pred))`` over the last axis, both
    clipped to [epsilon, 1]: finite for one-hot targets.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.KLDivergence()(ember.tensor([[0.5, 0.5]]), ember.tensor([[0.5, 0.5]])).item()
        0.0
    """

    name = "kl_divergence"

    def __init__(self, epsilon: float = 1e-7, reduction: str = "mean") -> None:
        super().__init__(reduction, **({} if epsilon == 1e-7 else {"epsilon": float(epsilon)}))
        self.epsilon = F._clip_eps("KLDivergence", float(epsilon))

    def forward(self, pred: Tensor, target: Any) -> Tensor:
        return F._kl(pred, target, self.epsilon, self.reduction, "KLDivergence")


#: Keras-style name -> loss class, for :func:`get_loss`
LOSSES: dict[str, type[Loss]] = {
    "mse": MSE,
    "mean_squared_error": MSE,
    "mae": MAE,
    "mean_absolute_error": MAE,
    "huber": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "cross_entropy": SoftmaxCrossEntropy,
    "nll": NLLLoss,
    "nll_loss": NLLLoss,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
}


def get_loss(loss: str | dict[str, Any] | Loss, **options: Any) -> Loss:
    """A loss from its name (``"mse"``), a :meth:`Loss.config` dict, or a Loss (returned as is).

    Raises:
        ValueError: for an unknown name, listing the valid ones.

    Example:
        >>> from ember import nn
        >>> nn.get_loss("categorical_crossentropy", from_logits=True)
        CategoricalCrossentropy(from_logits=True)
        >>> nn.get_loss(nn.Huber(delta=2.0).config())
        Huber(delta=2.0)
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, dict):
        conf = dict(loss)
        name = conf.pop("type", None)
        if name == WeightedLoss.name:
            return WeightedLoss([(get_loss(c), float(w)) for c, w in conf["terms"]])
        return get_loss(name, **conf, **options)  # type: ignore[arg-type]
    key = loss.strip().lower() if isinstance(loss, str) else None
    if key not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid names: {', '.join(LOSSES)}")
    return LOSSES[key](**options)


# -- penalties -------------------------------------------------------------------------------------

class Penalty:
    """Base of :class:`L1` and :class:`L2`: ``penalty(model)`` is a scalar tensor to add to a
    loss, with the gradient flowing into the chosen parameters.

    Example:
        >>> from ember import nn
        >>> model = nn.Linear(2, 1, init="ones")
        >>> penalty = nn.L2(0.01)              # then: loss = loss_fn(model(x), y) + penalty(model)
        >>> isinstance(penalty, nn.Penalty), round(penalty(model).item(), 4)  # 0.01 * (1 + 1)
        (True, 0.02)
    """

    def __init__(self, lam: float, parameters: Iterable[Tensor] | None = None) -> None:
        if not isinstance(lam, numbers.Real) or lam < 0:
            raise ValueError(f"{type(self).__name__}: lam must be a non-negative number, got "
                             f"{lam!r}")
        self.lam: float = float(lam)
        self._parameters: list[Tensor] | None = None if parameters is None else list(parameters)

    def _chosen(self, source: Any) -> list[Tensor]:
        if source is None:
            if self._parameters is None:
                raise TypeError(f"{type(self).__name__}: call it with the model, "
                                f"penalty(model), or give parameters= when creating it")
            return self._parameters
        if hasattr(source, "named_parameters"):  # a Module: the weights, not the biases
            return [p for _, p in source.named_parameters() if p.ndim >= 2]
        return list(source)

    def _term(self, p: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, source: Any = None) -> Tensor:
        """The penalty of ``source``: a Module (its weights), an iterable of tensors, or None
        (the parameters given at construction)."""
        total = None
        for p in self._chosen(source):
            term = self._term(p)
            total = term if total is None else total + term
        if total is None:
            return Tensor._make(backend.get().xp.zeros((), backend.default_float), False, None)
        return total * self.lam

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.lam!r})"


class L1(Penalty):
    """``lam * sum(|w|)`` over the weights (Keras' ``l1``); its gradient is ``lam * sign(w)``.

    Called with a model, it covers every parameter with two or more dimensions (the weights of
    Linear and Conv2D layers), not biases, normalisation scales or PReLU slopes; pass tensors
    (``penalty(params)`` or ``L1(lam, parameters=...)``) to choose others.

    Example:
        >>> from ember import nn
        >>> model = nn.Linear(3, 2, init="ones")
        >>> nn.L1(0.1)(model).item()
        0.6000000238418579
    """

    def _term(self, p: Tensor) -> Tensor:
        return p.abs().sum()


class L2(Penalty):
    """``lam * sum(w^2)`` over the weights (Keras' ``l2``); its gradient is ``2 * lam * w``.

    The same choice of parameters as :class:`L1`.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> w = nn.Parameter(ember.tensor([[1.0, 2.0]]))
        >>> penalty = nn.L2(0.5, parameters=[w])
        >>> penalty().backward()
        >>> penalty().item(), w.grad.tolist()
        (2.5, [[1.0, 2.0]])
    """

    def _term(self, p: Tensor) -> Tensor:
        return (p * p).sum()
