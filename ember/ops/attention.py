"""Fused scaled dot-product attention over (..., T, D) queries and (..., S, D) keys/values.

Fused: one node instead of matmul -> scale -> mask -> softmax -> dropout -> matmul, so the backward
writes the softmax derivative once (``p * (dp - sum(p * dp))``) and keeps only ``p`` alive.
"""

from __future__ import annotations

import math
from typing import Any

from ember import backend
from ember.function import Function
from ember.ops import register
from ember.tensor import Tensor

# (T, S, backend name) -> boolean (T, S) array, True where a query may look (key j <= query i)
_CAUSAL: dict[tuple[int, int, str], Any] = {}


def _causal(t: int, s: int) -> Any:
    """The causal mask, made once per (T, S, backend); inside a trace an iota comparison that XLA
    folds into the program (a traced array cannot be cached across traces)."""
    bk = backend.get()
    key = (t, s, bk.name)
    mask = _CAUSAL.get(key)
    if mask is None:
        xp = bk.xp
        mask = xp.arange(t)[:, None] >= xp.arange(s)[None, :]
        if not backend.is_traced(mask):
            _CAUSAL[key] = mask
    return mask


class ScaledDotProductAttention(Function):
    op_name = "scaled_dot_product_attention"

    def forward(ctx, q, k, v, mask=None, is_causal=False, dropout_p=0.0, scale=None, key=None):
        xp = _xp()
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        qs = q * xp.asarray(scale, dtype=q.dtype)  # scale the (T, D) side, not the (T, S) one
        s = qs @ xp.swapaxes(k, -1, -2)
        allowed = _causal(q.shape[-2], k.shape[-2]) if is_causal else None
        guard = False  # a user's mask may hide every key of a row; the causal one never does
        if mask is not None:
            if mask.dtype.kind == "b":
                allowed = mask if allowed is None else allowed & mask
                guard = True
            else:
                s = s + mask.astype(s.dtype)
        if allowed is not None:
            s = xp.where(allowed, s, -xp.inf)
        m = xp.max(s, axis=-1, keepdims=True)
        if guard:  # a row with every key masked: zeros, not NaN
            m = xp.where(xp.isfinite(m), m, 0)
        e = xp.exp(s - m)
        total = xp.sum(e, axis=-1, keepdims=True)
        p = e * (1 / (xp.where(total > 0, total, 1) if guard else total))  # T divisions, not T*S
        pd = p
        keep = None
        if dropout_p > 0.0:
            keep = backend.get().uniform(key, p.shape, p.dtype) >= dropout_p
            pd = xp.where(keep, p * xp.asarray(1.0 / (1.0 - dropout_p), dtype=p.dtype), 0)
        ctx.scale, ctx.dropout_p = scale, dropout_p
        ctx.save_for_backward(qs, k, v, p, pd, keep)
        return pd @ v

    def backward(ctx, g):
        xp = _xp()
        qs, k, v, p, pd, keep = ctx.saved_tensors
        need = ctx.needs_input_grad
        dv = xp.swapaxes(pd, -1, -2) @ g if need[2] else None
        dp = g @ xp.swapaxes(v, -1, -2)
        if keep is not None:
            dp = xp.where(keep, dp * xp.asarray(1.0 / (1.0 - ctx.dropout_p), dtype=dp.dtype), 0)
        ds = p * (dp - xp.sum(p * dp, axis=-1, keepdims=True))  # softmax', written once
        dq = (ds @ k) * xp.asarray(ctx.scale, dtype=ds.dtype) if need[0] else None
        dk = xp.swapaxes(ds, -1, -2) @ qs if need[1] else None
        return dq, dk, dv, (ds if len(need) > 3 and need[3] else None)


def _xp() -> Any:
    return backend.get().xp


@register("scaled_dot_product_attention", method=False)
def scaled_dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Any = None, is_causal: bool = False,
    dropout_p: float = 0.0, scale: float | None = None, *, attn_mask: Any = None,
    rng_key: Any = None,
) -> Tensor:
    """``softmax(q @ k.T * scale + mask) @ v`` over (..., T, D) queries, (..., S, D) keys and
    (..., S, Dv) values, as one fused op (PyTorch's ``F.scaled_dot_product_attention``).

    Args:
        query, key, value: (..., T, D), (..., S, D), (..., S, Dv); leading axes broadcast.
        mask: broadcastable to (..., T, S): boolean (True = may attend, as PyTorch) or additive
            float (added to the scores; it gets a gradient). ``attn_mask=`` is the same.
        is_causal: query i sees keys j <= i (top-left aligned when T != S, as PyTorch).
        dropout_p: dropout on the attention weights, with a key from ember's stream (or
            ``rng_key``); pass 0.0 at evaluation.
        scale: defaults to ``1 / sqrt(D)``.

    A row whose keys a boolean mask hides entirely gives zeros (not NaN).

    Example:
        >>> import ember
        >>> q = k = v = ember.eye(2).reshape(1, 2, 2)
        >>> ember.scaled_dot_product_attention(q, k, v, is_causal=True)[0, 0].tolist()
        [1.0, 0.0]
    """
    if attn_mask is not None:
        if mask is not None:
            raise TypeError("ember.scaled_dot_product_attention: pass mask= or attn_mask=, "
                            "not both")
        mask = attn_mask
    for name, t in (("key", key), ("value", value)):
        if t.ndim < 2:
            raise ValueError(f"ember.scaled_dot_product_attention: {name} of shape {t.shape} "
                             f"needs (..., S, D)")
    if query.ndim < 2 or query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"ember.scaled_dot_product_attention: query {query.shape}, key "
                         f"{key.shape} and value {value.shape} must be (..., T, D), (..., S, D) "
                         f"and (..., S, Dv)")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"ember.scaled_dot_product_attention: dropout_p={dropout_p} must be in "
                         f"[0, 1)")
    if dropout_p > 0.0 and rng_key is None:
        from ember import random as _random  # the seeded stream (a sibling of backend/)

        rng_key = _random.next_key()
    if mask is not None and not isinstance(mask, Tensor):
        mask = backend.get().asarray(mask)
    args = (query, key, value) if mask is None else (query, key, value, mask)
    return ScaledDotProductAttention.apply(*args, is_causal=is_causal, dropout_p=dropout_p,
                                           scale=scale, key=rng_key)
