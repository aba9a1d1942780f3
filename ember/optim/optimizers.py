"""The optimizers: PyTorch's names, arguments and update formulas over ember's pure rules.

Each class is a thin shell: it names the rule (``ember.optim.rules``), validates its
hyperparameters and makes the rule's state arrays. The update formulas are PyTorch's; where optax
computes something differently (where ``eps`` sits, AMSGrad's maximum, defaults), the class says
so and says how to configure optax to agree (the test suite does exactly that).

Example:
    >>> import ember
    >>> w = ember.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = ember.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()                         # Adam's first step moves each element by ~lr
    >>> [round(v, 4) for v in w.tolist()]
    [0.9, 1.9]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember import backend
from ember.optim import rules
from ember.optim.optimizer import Optimizer, ParamsT, is_number

__all__ = ["SGD", "Momentum", "AdaGrad", "Adagrad", "RMSProp", "RMSprop", "Adam", "AdamW"]

LR = float | Callable[[Any], Any]


def _zeros(param: Any) -> Any:
    return backend.get().xp.zeros_like(param)


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum, Nesterov momentum and L2 decay.

    ``buf = momentum * buf + (1 - dampening) * g`` (the first buffer is ``g`` itself, as
    PyTorch), then ``p -= lr * buf``, or ``p -= lr * (g + momentum * buf)`` with Nesterov;
    ``weight_decay`` adds ``weight_decay * p`` to ``g`` first. optax's ``sgd(lr, momentum,
    nesterov)`` computes the same; it has no ``dampening``.

    Args:
        params: tensors or parameter groups (dicts).
        lr: learning rate (> 0), a schedule or a callable ``step -> lr``.
        momentum: momentum factor (>= 0; 0 is plain SGD and keeps no state).
        dampening: dampening for momentum, in [0, 1].
        weight_decay: L2 penalty (>= 0).
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        clip_norm, clip_value: optional gradient clipping before each update (see Optimizer).

    Example:
        >>> import ember
        >>> w = ember.tensor([1.0], requires_grad=True)
        >>> opt = ember.optim.SGD([w], lr=0.5, momentum=0.9)
        >>> for _ in range(2):
        ...     w.grad = ember.tensor([1.0]); opt.step()
        >>> round(w.item(), 4)                 # 1 - 0.5 * 1 - 0.5 * (0.9 + 1)
        -0.45
    """

    rule = staticmethod(rules.sgd)
    hyperparameters = ("momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, params: ParamsT, lr: LR, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *,
                 clip_norm: float | None = None, clip_value: float | None = None) -> None:
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov}
        super().__init__(params, defaults, clip_norm=clip_norm, clip_value=clip_value)

    def _check_hyperparameters(self, group: dict[str, Any], where: str) -> None:
        self._check_range(group, where, "momentum", 0.0)
        damp = group["dampening"]
        self._require(is_number(damp) and 0 <= damp <= 1, where, "dampening", "in [0, 1]", damp)
        self._check_range(group, where, "weight_decay", 0.0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{self._name}: {where}nesterov=True needs momentum > 0 and "
                             f"dampening == 0, got momentum={group['momentum']!r}, "
                             f"dampening={group['dampening']!r}")

    def _init_state(self, param: Any, group: dict[str, Any]) -> dict[str, Any]:
        return {"momentum_buffer": _zeros(param)} if group["momentum"] else {}


class Momentum(SGD):
    """SGD with momentum under the seed frameworks' name: ``SGD(params, lr, momentum=beta)``.

    Example:
        >>> import ember
        >>> w = ember.tensor([1.0], requires_grad=True)
        >>> ember.optim.Momentum([w], lr=0.1, beta=0.9).param_groups[0]["momentum"]
        0.9
    """

    def __init__(self, params: ParamsT, lr: LR, beta: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0, *, clip_norm: float | None = None,
                 clip_value: float | None = None) -> None:
        if not (is_number(beta) and 0 <= beta < 1):
            raise ValueError(f"Momentum: beta must be in [0, 1), got {beta!r}")
        super().__init__(params, lr, momentum=beta, weight_decay=weight_decay, nesterov=nesterov,
                         clip_norm=clip_norm, clip_value=clip_value)


class AdaGrad(Optimizer):
    """AdaGrad: ``sum += g * g``, ``p -= lr * g / (sqrt(sum) + eps)``.

    ember follows PyTorch: ``eps`` outside the square root and a zero initial accumulator. optax's
    ``adagrad`` uses ``g / sqrt(sum + eps)`` (0 where ``sum == 0``) and starts the accumulator at
    0.1; ``optax.adagrad(lr, initial_accumulator_value=0.0, eps=0.0)`` agrees with ember to within
    ``eps / sqrt(sum)``.

    Args:
        params: tensors or parameter groups (dicts).
        lr: learning rate (> 0), a schedule or a callable ``step -> lr``.
        eps: added to the denominator (> 0).
        initial_accumulator_value: the starting value of ``sum`` (>= 0).
        weight_decay: L2 penalty (>= 0).
        clip_norm, clip_value: optional gradient clipping before each update (see Optimizer).

    Example:
        >>> import ember
        >>> w = ember.tensor([1.0, 1.0], requires_grad=True)
        >>> opt = ember.optim.AdaGrad([w], lr=0.1)
        >>> w.grad = ember.tensor([4.0, -0.5]); opt.step()
        >>> [round(v, 4) for v in w.tolist()]  # first step: lr * sign(g)
        [0.9, 1.1]
    """

    rule = staticmethod(rules.adagrad)
    hyperparameters = ("eps", "weight_decay")

    def __init__(self, params: ParamsT, lr: LR = 0.01, eps: float = 1e-10,
                 initial_accumulator_value: float = 0.0, weight_decay: float = 0.0, *,
                 clip_norm: float | None = None, clip_value: float | None = None) -> None:
        defaults = {"lr": lr, "eps": eps, "initial_accumulator_value": initial_accumulator_value,
                    "weight_decay": weight_decay}
        super().__init__(params, defaults, clip_norm=clip_norm, clip_value=clip_value)

    def _check_hyperparameters(self, group: dict[str, Any], where: str) -> None:
        self._check_range(group, where, "eps", 0.0, low_open=True)
        self._check_range(group, where, "initial_accumulator_value", 0.0)
        self._check_range(group, where, "weight_decay", 0.0)

    def _init_state(self, param: Any, group: dict[str, Any]) -> dict[str, Any]:
        xp = backend.get().xp
        return {"sum": xp.full_like(param, group["initial_accumulator_value"])}


class RMSProp(Optimizer):
    """RMSProp: ``v = alpha * v + (1 - alpha) * g * g``, ``p -= lr * g / (sqrt(v) + eps)``.

    ``centered`` divides by ``sqrt(v - m * m) + eps`` with ``m`` the running mean gradient;
    ``momentum`` accumulates ``buf = momentum * buf + g / (...)`` and steps by ``lr * buf``.
    ember follows PyTorch: ``eps`` outside the square root and ``alpha=0.99``. optax's ``rmsprop``
    puts ``eps`` inside by default and decays with 0.9:
    ``optax.rmsprop(lr, decay=alpha, eps=eps, eps_in_sqrt=False, centered=..., momentum=...)``
    is the same update.

    Args:
        params: tensors or parameter groups (dicts).
        lr: learning rate (> 0), a schedule or a callable ``step -> lr``.
        alpha: smoothing constant of the running averages, in [0, 1).
        eps: added to the denominator (> 0).
        weight_decay: L2 penalty (>= 0).
        momentum: momentum factor (>= 0).
        centered: normalise by the estimated variance of the gradient instead of its second
            moment.
        clip_norm, clip_value: optional gradient clipping before each update (see Optimizer).

    Example:
        >>> import ember
        >>> w = ember.tensor([1.0], requires_grad=True)
        >>> opt = ember.optim.RMSProp([w], lr=0.01, alpha=0.75)
        >>> w.grad = ember.tensor([2.0]); opt.step()
        >>> round(w.item(), 4)                 # 1 - 0.01 * 2 / sqrt(0.25 * 4)
        0.98
    """

    rule = staticmethod(rules.rmsprop)
    hyperparameters = ("alpha", "eps", "momentum", "centered", "weight_decay")

    def __init__(self, params: ParamsT, lr: LR = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 clip_norm: float | None = None, clip_value: float | None = None) -> None:
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                    "momentum": momentum, "centered": centered}
        super().__init__(params, defaults, clip_norm=clip_norm, clip_value=clip_value)

    def _check_hyperparameters(self, group: dict[str, Any], where: str) -> None:
        self._check_range(group, where, "alpha", 0.0, 1.0)
        self._check_range(group, where, "eps", 0.0, low_open=True)
        self._check_range(group, where, "weight_decay", 0.0)
        self._check_range(group, where, "momentum", 0.0)

    def _init_state(self, param: Any, group: dict[str, Any]) -> dict[str, Any]:
        state = {"square_avg": _zeros(param)}
        if group["centered"]:
            state["grad_avg"] = _zeros(param)
        if group["momentum"]:
            state["momentum_buffer"] = _zeros(param)
        return state


class Adam(Optimizer):
    """Adam: bias-corrected running moments, ``p -= lr * m_hat / (sqrt(v_hat) + eps)``.

    ``weight_decay`` is an L2 penalty added to the gradient (for decoupled decay use
    :class:`AdamW`). PyTorch and optax agree on Adam (``eps`` outside the square root, optax's
    ``eps_root=0``); L2 decay in optax is ``optax.chain(optax.add_decayed_weights(wd),
    optax.adam(...))``. For AMSGrad, ember follows PyTorch: it keeps the maximum of the raw second
    moment and bias-corrects that, while ``optax.amsgrad`` keeps the maximum of the bias-corrected
    one, a different update.

    Args:
        params: tensors or parameter groups (dicts).
        lr: learning rate (> 0), a schedule or a callable ``step -> lr``.
        betas: decay rates of the first and second moments, each in [0, 1).
        eps: added to the denominator (> 0).
        weight_decay: L2 penalty (>= 0).
        amsgrad: use the AMSGrad variant.
        clip_norm, clip_value: optional gradient clipping before each update (see Optimizer).

    Example:
        >>> import ember
        >>> w = ember.tensor([1.0, -1.0], requires_grad=True)
        >>> opt = ember.optim.Adam([w], lr=0.01)
        >>> w.grad = ember.tensor([3.0, -0.1]); opt.step()
        >>> [round(v, 4) for v in w.tolist()]  # the first step is lr * sign(g)
        [0.99, -0.99]
    """

    rule = staticmethod(rules.adam)
    hyperparameters = ("betas", "eps", "weight_decay", "amsgrad")

    def __init__(self, params: ParamsT, lr: LR = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 clip_norm: float | None = None, clip_value: float | None = None) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad}
        super().__init__(params, defaults, clip_norm=clip_norm, clip_value=clip_value)

    def _check_hyperparameters(self, group: dict[str, Any], where: str) -> None:
        betas = group["betas"]
        ok = isinstance(betas, (tuple, list)) and len(betas) == 2
        ok = ok and all(is_number(b) and 0 <= b < 1 for b in betas)
        self._require(ok, where, "betas", "two numbers in [0, 1)", betas)
        group["betas"] = (float(betas[0]), float(betas[1]))
        self._check_range(group, where, "eps", 0.0, low_open=True)
        self._check_range(group, where, "weight_decay", 0.0)

    def _init_state(self, param: Any, group: dict[str, Any]) -> dict[str, Any]:
        state = {"exp_avg": _zeros(param), "exp_avg_sq": _zeros(param)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = _zeros(param)
        return state


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay, ``p *= 1 - lr * weight_decay`` before the step.

    PyTorch and optax agree (optax's ``adamw`` also scales the decay by the learning rate); only
    the default ``weight_decay`` differs (1e-2 here and in PyTorch, 1e-4 in optax).

    Args:
        params: tensors or parameter groups (dicts).
        lr: learning rate (> 0), a schedule or a callable ``step -> lr``.
        betas: decay rates of the first and second moments, each in [0, 1).
        eps: added to the denominator (> 0).
        weight_decay: decoupled decay rate (>= 0).
        amsgrad: use the AMSGrad variant (PyTorch's, see :class:`Adam`).
        clip_norm, clip_value: optional gradient clipping before each update (see Optimizer).

    Example:
        >>> import ember
        >>> w = ember.tensor([1.0], requires_grad=True)
        >>> opt = ember.optim.AdamW([w], lr=0.1, weight_decay=0.5)
        >>> w.grad = ember.tensor([0.0]); opt.step()
        >>> round(w.item(), 4)                 # 1 * (1 - 0.1 * 0.5); a zero gradient adds nothing
        0.95
    """

    rule = staticmethod(rules.adamw)

    def __init__(self, params: ParamsT, lr: LR = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 clip_norm: float | None = None, clip_value: float | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, clip_norm=clip_norm,
                         clip_value=clip_value)


Adagrad = AdaGrad  # PyTorch's spelling
RMSprop = RMSProp  # PyTorch's spelling


#: optimizer name -> (class, default learning rate: Keras's defaults); what :func:`get`,
#: ``Trainer(optimizer="adam")`` and config files name
REGISTRY: dict[str, tuple[type[Optimizer], float]] = {
    "sgd": (SGD, 0.01),
    "momentum": (Momentum, 0.01),
    "adagrad": (AdaGrad, 0.01),
    "rmsprop": (RMSProp, 1e-3),
    "adam": (Adam, 1e-3),
    "adamw": (AdamW, 1e-3),
}


def get(name: str, params: ParamsT, **options: Any) -> Optimizer:
    """The optimizer called ``name`` over ``params``; ``lr`` defaults to Keras's rate for it.

    Example:
        >>> import ember
        >>> opt = ember.optim.get("adamw", [ember.zeros(2, requires_grad=True)], weight_decay=0.1)
        >>> type(opt).__name__, float(opt.param_groups[0]["lr"])
        ('AdamW', 0.0010000000474974513)
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in REGISTRY:
        raise ValueError(f"optim.get: unknown optimizer {name!r}; valid names: "
                         f"{', '.join(REGISTRY)} (or pass an ember.optim optimizer)")
    cls, lr = REGISTRY[key]
    options.setdefault("lr", lr)
    return cls(params, **options)
