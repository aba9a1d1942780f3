"""Optimizers, learning-rate schedules, gradient clipping and an optax adapter.

An optimizer is a pure update rule over arrays (``ember.optim.rules``) plus a PyTorch-style shell
(:class:`Optimizer`: parameter groups, ``step``, ``zero_grad``, ``state_dict``) whose state is all
arrays made in the constructor, so the same object runs eagerly on NumPy and inside ``jax.jit``.

Example:
    >>> import ember
    >>> from ember.optim import Adam, schedules
    >>> w = ember.tensor([2.0, -3.0], requires_grad=True)
    >>> opt = Adam([w], lr=schedules.cosine_decay(0.1, total_steps=200))
    >>> for _ in range(200):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    >>> bool((w.abs() < 0.05).numpy().all())
    True
"""

from __future__ import annotations

from ember.optim import rules, schedules
from ember.optim.clip import clip_grad_norm, clip_grad_norm_, clip_grad_value, clip_grad_value_
from ember.optim.groups import decay_groups
from ember.optim.optax_adapter import OptaxOptimizer, from_optax
from ember.optim.optimizer import Optimizer
from ember.optim.optimizers import (
    SGD,
    AdaGrad,
    Adagrad,
    Adam,
    AdamW,
    Momentum,
    RMSProp,
    RMSprop,
    get,
)

__all__ = [
    "Optimizer",
    "SGD",
    "Momentum",
    "AdaGrad",
    "Adagrad",
    "RMSProp",
    "RMSprop",
    "Adam",
    "AdamW",
    "clip_grad_norm",
    "clip_grad_value",
    "clip_grad_norm_",
    "clip_grad_value_",
    "from_optax",
    "OptaxOptimizer",
    "get",
    "decay_groups",
    "schedules",
    "rules",
]
