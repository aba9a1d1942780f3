"""The update rules: pure functions of arrays, ``(param, grad, state, lr, step) -> (param, state)``.

Each rule takes backend arrays (NumPy, JAX, or JAX tracers inside a compiled step), the rule's
state as a dict of arrays, the learning rate as a 0-d array of the parameter's dtype and the step
count *after* this update (1 on the first update) as a 0-d integer array. Hyperparameters are
static Python values. Nothing is mutated in place and nothing branches on an array's value, so the
same rule runs eagerly on NumPy and inside ``jax.jit``. The formulas are PyTorch's (``torch.optim``
documents them); where optax's differ, the optimizer's docstring says how.

Example:
    >>> import numpy as np
    >>> from ember.optim import rules
    >>> p, g = np.array([1.0, 2.0]), np.array([0.5, -0.5])
    >>> new_p, state = rules.sgd(p, g, {}, np.array(0.1), np.array(1))
    >>> new_p.tolist()
    [0.95, 2.05]
"""

from __future__ import annotations

from typing import Any

from ember import backend

__all__ = ["sgd", "adagrad", "rmsprop", "adam", "adamw"]

State = dict[str, Any]


def sgd(param: Any, grad: Any, state: State, lr: Any, step: Any, *, momentum: float = 0.0,
        dampening: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0) -> tuple[Any, State]:
    """SGD with optional (Nesterov) momentum: state ``momentum_buffer`` when ``momentum > 0``.

    Example:
        >>> import numpy as np
        >>> from ember.optim import rules
        >>> p, g = np.array([1.0, 2.0]), np.array([0.5, -0.5])
        >>> state = {"momentum_buffer": np.zeros(2)}
        >>> new_p, state = rules.sgd(p, g, state, np.array(0.1), np.array(1), momentum=0.9)
        >>> new_p.tolist(), state["momentum_buffer"].tolist()
        ([0.95, 2.05], [0.5, -0.5])
    """
    if weight_decay:
        grad = grad + weight_decay * param
    if not momentum:
        return param - lr * grad, state
    buf = momentum * state["momentum_buffer"] + (1.0 - dampening) * grad
    if dampening:  # PyTorch starts the buffer at the undamped gradient
        buf = backend.get().xp.where(step == 1, grad, buf)
    direction = grad + momentum * buf if nesterov else buf
    return param - lr * direction, {"momentum_buffer": buf}


def adagrad(param: Any, grad: Any, state: State, lr: Any, step: Any, *, eps: float,
            weight_decay: float = 0.0) -> tuple[Any, State]:
    """AdaGrad: divide by the root of the running sum of squared gradients (state ``sum``).

    Example:
        >>> import numpy as np
        >>> from ember.optim import rules
        >>> p, g = np.array([1.0, 2.0]), np.array([0.5, -0.5])
        >>> new_p, state = rules.adagrad(p, g, {"sum": np.zeros(2)}, np.array(0.1), np.array(1),
        ...                              eps=1e-10)
        >>> new_p.round(6).tolist(), state["sum"].tolist()
        ([0.9, 2.1], [0.25, 0.25])
    """
    if weight_decay:
        grad = grad + weight_decay * param
    total = state["sum"] + grad * grad
    return param - lr * grad / (backend.get().xp.sqrt(total) + eps), {"sum": total}


def rmsprop(param: Any, grad: Any, state: State, lr: Any, step: Any, *, alpha: float, eps: float,
            momentum: float = 0.0, centered: bool = False,
            weight_decay: float = 0.0) -> tuple[Any, State]:
    """RMSProp: divide by the root of a running mean of squared gradients (``square_avg``);
    ``centered`` subtracts the squared running mean gradient (``grad_avg``) first.

    Example:
        >>> import numpy as np
        >>> from ember.optim import rules
        >>> p, g = np.array([1.0, 2.0]), np.array([0.5, -0.5])
        >>> new_p, state = rules.rmsprop(p, g, {"square_avg": np.zeros(2)}, np.array(0.1),
        ...                              np.array(1), alpha=0.99, eps=1e-8)
        >>> new_p.round(4).tolist(), state["square_avg"].round(6).tolist()
        ([0.0, 3.0], [0.0025, 0.0025])
    """
    xp = backend.get().xp
    if weight_decay:
        grad = grad + weight_decay * param
    square_avg = alpha * state["square_avg"] + (1.0 - alpha) * grad * grad
    new: State = {"square_avg": square_avg}
    if centered:
        grad_avg = alpha * state["grad_avg"] + (1.0 - alpha) * grad
        new["grad_avg"] = grad_avg
        square_avg = square_avg - grad_avg * grad_avg
    direction = grad / (xp.sqrt(square_avg) + eps)
    if momentum:
        direction = new["momentum_buffer"] = momentum * state["momentum_buffer"] + direction
    return param - lr * direction, new


def adam(param: Any, grad: Any, state: State, lr: Any, step: Any, *, betas: tuple[float, float],
         eps: float, weight_decay: float = 0.0, amsgrad: bool = False) -> tuple[Any, State]:
    """Adam with bias correction (``exp_avg``, ``exp_avg_sq``; ``max_exp_avg_sq`` for AMSGrad);
    ``weight_decay`` adds ``weight_decay * param`` to the gradient (L2, not AdamW's decay).

    Example (the first step moves each element by about ``lr``):
        >>> import numpy as np
        >>> from ember.optim import rules
        >>> p, g = np.array([1.0, 2.0]), np.array([0.5, -0.5])
        >>> state = {"exp_avg": np.zeros(2), "exp_avg_sq": np.zeros(2)}
        >>> new_p, state = rules.adam(p, g, state, np.array(0.1), np.array(1), betas=(0.9, 0.999),
        ...                           eps=1e-8)
        >>> new_p.round(6).tolist()
        [0.9, 2.1]
    """
    xp = backend.get().xp
    beta1, beta2 = betas
    if weight_decay:
        grad = grad + weight_decay * param
    # Written as products into fresh arrays that are then updated with ``+=``/``*=``: on NumPy
    # that reuses each new buffer instead of allocating one per operator (about 25% faster); a
    # JAX array or tracer is immutable, so there ``a += b`` simply rebinds ``a`` to ``a + b``.
    exp_avg = state["exp_avg"] * beta1
    exp_avg += grad * (1.0 - beta1)
    exp_avg_sq = state["exp_avg_sq"] * beta2
    exp_avg_sq += grad * grad * (1.0 - beta2)
    new: State = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    if amsgrad:  # PyTorch keeps the maximum of the raw second moment, then bias-corrects it
        exp_avg_sq = new["max_exp_avg_sq"] = xp.maximum(state["max_exp_avg_sq"], exp_avg_sq)
    t = step.astype(param.dtype)
    bias1, bias2 = 1.0 - beta1**t, 1.0 - beta2**t
    denom = xp.sqrt(exp_avg_sq)
    denom /= xp.sqrt(bias2)
    denom += eps
    update = exp_avg / denom
    update *= lr / bias1
    return param - update, new


def adamw(param: Any, grad: Any, state: State, lr: Any, step: Any, *, betas: tuple[float, float],
          eps: float, weight_decay: float = 0.0, amsgrad: bool = False) -> tuple[Any, State]:
    """AdamW: Adam after shrinking the parameter by ``lr * weight_decay`` (decoupled decay).

    Example (``p * (1 - 0.1 * 0.5)``, then Adam's first step of about ``lr``):
        >>> import numpy as np
        >>> from ember.optim import rules
        >>> p, g = np.array([1.0, 2.0]), np.array([0.5, -0.5])
        >>> state = {"exp_avg": np.zeros(2), "exp_avg_sq": np.zeros(2)}
        >>> new_p, state = rules.adamw(p, g, state, np.array(0.1), np.array(1), betas=(0.9, 0.999),
        ...                            eps=1e-8, weight_decay=0.5)
        >>> new_p.round(6).tolist()
        [0.85, 2.0]
    """
    param = param * (1.0 - lr * weight_decay)
    return adam(param, grad, state, lr, step, betas=betas, eps=eps, amsgrad=amsgrad)
