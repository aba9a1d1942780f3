"""Learning-rate schedules: functions of the step count, ``schedule(step) -> lr``.

``step`` is the number of updates already taken (0 for the first update), as a Python int or a 0-d
integer array; the result is a 0-d float64 array. The formulas use the backend's array namespace
and never branch on the step's value, so a schedule evaluated on a traced step count inside
``jax.jit`` stays a schedule (it is not frozen at the value seen while tracing).

Give one to an optimizer as ``lr=`` (``Adam(params, lr=schedules.cosine_decay(...))``) or attach it
later with ``opt.set_schedule(...)``. Any callable ``step -> lr`` works the same way. The optimizer
keeps the step count in its state, so a run resumed from ``state_dict()`` continues the schedule
where it stopped.

Example:
    >>> from ember.optim import schedules
    >>> s = schedules.step_decay(0.1, step_size=10, gamma=0.5)
    >>> [float(s(k)) for k in (0, 9, 10, 25)]
    [0.1, 0.1, 0.05, 0.025]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ember import backend
from ember.optim.lr import check_lr

__all__ = [
    "Schedule",
    "constant",
    "step_decay",
    "exponential_decay",
    "cosine_decay",
    "linear_decay",
    "warmup_linear",
    "from_config",
]


class Schedule:
    """A named learning-rate schedule: call it with a step count to get the learning rate.

    Made by the functions of this module; ``config()`` gives the name and arguments (JSON-ready)
    and :func:`from_config` makes the schedule again.

    Example:
        >>> from ember.optim import schedules
        >>> s = schedules.linear_decay(1.0, final_lr=0.0, steps=4)
        >>> s
        linear_decay(lr=1.0, final_lr=0.0, steps=4)
        >>> float(s(1))
        0.75
    """

    def __init__(self, name: str, fn: Callable[[Any, Any], Any], **args: Any) -> None:
        self.name, self._fn, self.args = name, fn, args  # fn(xp, step) -> lr

    def __call__(self, step: Any) -> Any:
        xp = backend.get().xp  # looked up per call: a schedule works on either backend
        return self._fn(xp, xp.asarray(step, dtype=backend.float64))

    def config(self) -> dict[str, Any]:
        """``{"name": ..., **arguments}``: enough to make the schedule again."""
        return {"name": self.name, **self.args}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.name}({args})"


def _check(name: str, arg: str, value: Any, ok: bool, need: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok:
        raise ValueError(f"{name}: {arg} must be {need}, got {value!r}")


def _check_lr(name: str, **lrs: float) -> None:
    for arg, value in lrs.items():  # ``lr`` > 0; ``final_lr``, ``initial_lr`` >= 0
        check_lr(value, f"{name}: {arg}", allow_zero=arg != "lr", need=">= 0" if arg != "lr"
                 else "> 0")


def _check_steps(name: str, **steps: int) -> None:
    for arg, value in steps.items():
        ok = isinstance(value, int) and value >= (0 if arg == "warmup_steps" else 1)
        _check(name, arg, value, ok, "an int >= 0" if arg == "warmup_steps" else "an int >= 1")


def constant(lr: float) -> Schedule:
    """The same learning rate at every step.

    Example:
        >>> float(constant(0.01)(1000))
        0.01
    """
    _check_lr("constant", lr=lr)
    return Schedule("constant", lambda xp, t: xp.full_like(t, lr), lr=lr)


def step_decay(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """``lr * gamma ** (step // step_size)``: multiply by ``gamma`` every ``step_size`` steps
    (PyTorch's ``StepLR``).

    Example:
        >>> float(step_decay(1.0, step_size=2, gamma=0.5)(5))
        0.25
    """
    _check_lr("step_decay", lr=lr)
    _check_steps("step_decay", step_size=step_size)
    _check("step_decay", "gamma", gamma, isinstance(gamma, (int, float)) and gamma > 0, "> 0")
    return Schedule("step_decay", lambda xp, t: lr * gamma ** xp.floor(t / step_size),
                    lr=lr, step_size=step_size, gamma=gamma)


def exponential_decay(lr: float, gamma: float) -> Schedule:
    """``lr * gamma ** step``: multiply by ``gamma`` every step (PyTorch's ``ExponentialLR``).

    Example:
        >>> float(exponential_decay(1.0, gamma=0.5)(3))
        0.125
    """
    _check_lr("exponential_decay", lr=lr)
    _check("exponential_decay", "gamma", gamma, isinstance(gamma, (int, float)) and gamma > 0,
           "> 0")
    return Schedule("exponential_decay", lambda xp, t: lr * gamma**t, lr=lr, gamma=gamma)


def _after_warmup(name: str, lr: float, initial_lr: float, warmup_steps: int, total_steps: int,
                  decay: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``fn(xp, t)``: linear from ``initial_lr`` to ``lr`` over ``warmup_steps``, then
    ``decay(xp, f)`` with ``f`` going from 0 to 1 over the remaining steps up to ``total_steps``
    (and staying at 1 after)."""
    if warmup_steps >= total_steps:
        raise ValueError(f"{name}: warmup_steps must be < total_steps, got "
                         f"warmup_steps={warmup_steps}, total_steps={total_steps}")

    def fn(xp: Any, t: Any) -> Any:
        warm = initial_lr + (lr - initial_lr) * t / max(warmup_steps, 1)
        f = xp.clip((t - warmup_steps) / (total_steps - warmup_steps), 0.0, 1.0)
        return xp.where(t < warmup_steps, warm, decay(xp, f))

    return fn


def cosine_decay(lr: float, total_steps: int, final_lr: float = 0.0, warmup_steps: int = 0,
                 initial_lr: float = 0.0) -> Schedule:
    """Cosine decay from ``lr`` to ``final_lr``, after an optional linear warmup.

    For ``step < warmup_steps`` the rate rises linearly from ``initial_lr`` to ``lr``; then it
    follows ``final_lr + (lr - final_lr) * (1 + cos(pi * f)) / 2`` with ``f`` going from 0 to 1
    over the remaining ``total_steps - warmup_steps`` steps, and stays at ``final_lr`` after
    (optax's ``warmup_cosine_decay_schedule`` with ``decay_steps=total_steps``).

    Example:
        >>> s = cosine_decay(1.0, total_steps=12, warmup_steps=2)
        >>> [round(float(s(k)), 3) for k in (0, 1, 2, 7, 12, 20)]
        [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    """
    _check_lr("cosine_decay", lr=lr, final_lr=final_lr, initial_lr=initial_lr)
    _check_steps("cosine_decay", total_steps=total_steps, warmup_steps=warmup_steps)
    fn = _after_warmup("cosine_decay", lr, initial_lr, warmup_steps, total_steps,
                       lambda xp, f: final_lr + (lr - final_lr) * 0.5 * (1.0 + xp.cos(math.pi * f)))
    return Schedule("cosine_decay", fn, lr=lr, total_steps=total_steps, final_lr=final_lr,
                    warmup_steps=warmup_steps, initial_lr=initial_lr)


def linear_decay(lr: float, final_lr: float, steps: int) -> Schedule:
    """Linear from ``lr`` at step 0 to ``final_lr`` at ``steps``, then constant.

    Example:
        >>> float(linear_decay(0.1, final_lr=0.0, steps=10)(5))
        0.05
    """
    _check_lr("linear_decay", lr=lr, final_lr=final_lr)
    _check_steps("linear_decay", steps=steps)
    return Schedule("linear_decay",
                    lambda xp, t: lr + (final_lr - lr) * xp.clip(t / steps, 0.0, 1.0),
                    lr=lr, final_lr=final_lr, steps=steps)


def warmup_linear(lr: float, warmup_steps: int, total_steps: int, final_lr: float = 0.0,
                  initial_lr: float = 0.0) -> Schedule:
    """Linear warmup from ``initial_lr`` to ``lr`` over ``warmup_steps``, then linear decay to
    ``final_lr`` at ``total_steps``, then constant.

    Example:
        >>> s = warmup_linear(1.0, warmup_steps=2, total_steps=6)
        >>> [float(s(k)) for k in (0, 1, 2, 4, 6, 9)]
        [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    """
    _check_lr("warmup_linear", lr=lr, final_lr=final_lr, initial_lr=initial_lr)
    _check_steps("warmup_linear", warmup_steps=warmup_steps, total_steps=total_steps)
    fn = _after_warmup("warmup_linear", lr, initial_lr, warmup_steps, total_steps,
                       lambda xp, f: lr + (final_lr - lr) * f)
    return Schedule("warmup_linear", fn, lr=lr, warmup_steps=warmup_steps,
                    total_steps=total_steps, final_lr=final_lr, initial_lr=initial_lr)


_FACTORIES: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "step_decay": step_decay,
    "exponential_decay": exponential_decay,
    "cosine_decay": cosine_decay,
    "linear_decay": linear_decay,
    "warmup_linear": warmup_linear,
}


def from_config(config: dict[str, Any]) -> Schedule:
    """The schedule described by ``config`` (as returned by :meth:`Schedule.config`).

    Example:
        >>> from_config({"name": "exponential_decay", "lr": 1.0, "gamma": 0.5})
        exponential_decay(lr=1.0, gamma=0.5)
    """
    args = dict(config)
    name = args.pop("name", None)
    if name not in _FACTORIES:
        raise ValueError(f"from_config: unknown schedule {name!r}; known: {', '.join(_FACTORIES)}")
    return _FACTORIES[name](**args)
