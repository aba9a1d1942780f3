"""Parameter groups for the usual weight-decay recipe.

Example:
    >>> import ember
    >>> groups = ember.optim.decay_groups(ember.nn.Linear(3, 2), weight_decay=0.1)
    >>> [(len(g["params"]), g["weight_decay"]) for g in groups]
    [(1, 0.1), (1, 0.0)]
"""

from __future__ import annotations

from typing import Any

__all__ = ["decay_groups"]


def decay_groups(model: Any, weight_decay: float = 0.1) -> list[dict[str, Any]]:
    """Two parameter groups: weight decay on the parameters with two or more dimensions (matrices,
    embeddings, kernels), none on the others (biases, norm gains) — the GPT-2 / nanoGPT recipe.

    Args:
        model: a Module (anything with ``named_parameters()``), or an iterable of tensors.
        weight_decay: the decay of the first group.

    Returns:
        ``[{"params": [...], "weight_decay": weight_decay}, {"params": [...],
        "weight_decay": 0.0}]`` for an optimizer such as ``AdamW``; an empty group is left out.
        A tensor shared by two layers (a tied weight) appears once.

    Example:
        >>> import ember
        >>> model = ember.nn.Sequential(ember.nn.Linear(4, 8), ember.nn.LayerNorm(8))
        >>> opt = ember.optim.AdamW(ember.optim.decay_groups(model, 0.1), lr=1e-3)
        >>> [[tuple(p.shape) for p in g["params"]] for g in opt.param_groups]
        [[(8, 4)], [(8,), (8,), (8,)]]
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) \
            or weight_decay < 0:
        raise ValueError(f"decay_groups: weight_decay must be a number >= 0, got {weight_decay!r}")
    if hasattr(model, "named_parameters"):
        params = [p for _, p in model.named_parameters()]
    else:
        params = list(model)
    seen: set[int] = set()
    decay, no_decay = [], []
    for p in params:
        if id(p) in seen or not getattr(p, "requires_grad", True):
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": float(weight_decay)},
              {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("decay_groups: the model has no trainable parameters")
    return groups
