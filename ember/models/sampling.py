"""Sampling from a language model: one function that every model's ``generate`` calls.

Example:
    >>> import ember
    >>> from ember.models import Bigram
    >>> ember.manual_seed(0)
    >>> model = Bigram(vocab_size=5)
    >>> model.generate(ember.tensor([[0]]), max_new_tokens=4).shape
    (1, 5)
"""

from __future__ import annotations

from typing import Any

import numpy as np  # host-side only: the generated text is kept on the host

from ember import random as _random
from ember.creation import tensor
from ember.function import no_grad
from ember.jit import jit
from ember.ops.elementwise import Where as _Where
from ember.ops.index import take_along_axis, topk
from ember.tensor import Tensor

__all__ = ["sample_next", "generate"]


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None) -> Tensor:
    """One token per row of ``logits`` (B, V), drawn from ``softmax(logits / temperature)`` on
    ember's seeded stream; with ``top_k`` only the ``k`` most likely tokens can be drawn.

    The draw is ``ember.random.categorical`` (the Gumbel-max trick).

    Example:
        >>> import ember
        >>> ember.manual_seed(0)
        >>> logits = ember.tensor([[0.0, 5.0, 1.0, -1.0]])
        >>> sample_next(logits, top_k=1).tolist()
        [1]
    """
    if logits.ndim != 2:
        raise ValueError(f"sample_next: logits must be (batch, vocab), got shape {logits.shape}")
    if not temperature > 0:
        raise ValueError(f"sample_next: temperature must be > 0, got {temperature!r}; for the "
                         f"most likely token use top_k=1")
    logits = logits / temperature
    if top_k is not None:
        k = min(int(top_k), logits.shape[-1])
        if k < 1:
            raise ValueError(f"sample_next: top_k must be >= 1, got {top_k!r}")
        kth = topk(logits, k, axis=-1)[0][:, k - 1:k]
        logits = _Where.apply(logits < kth, float("-inf"), logits)
    return _random.categorical(logits)[:, 0]


def _sample_at(model: Any, window: Tensor, at: Tensor, temperature: float,
               top_k: int | None) -> Tensor:
    """The next token after position ``at`` (B, 1, 1) of each row of ``window``."""
    logits = model(window)
    at = at.broadcast_to((at.shape[0], 1, logits.shape[-1]))
    return sample_next(take_along_axis(logits, at, axis=1)[:, 0], temperature, top_k)


# One compiled program per model structure and window shape on JAX (eager on NumPy); ember's
# random stream goes in and out of it as state, so each call draws new numbers.
_next_token = jit(_sample_at)


def generate(model: Any, idx: Any, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, block_size: int | None = None) -> Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens`` tokens, one at a time: run ``model`` on the
    last ``block_size`` tokens, sample the next from the last position's logits, append it.

    The model runs in eval mode (no dropout) and without recording gradients; its mode is
    restored afterwards. Reproducible: ``ember.manual_seed(s)`` before the call fixes the text.

    Example:
        >>> import ember
        >>> from ember.models import Bigram, generate
        >>> ember.manual_seed(0)
        >>> out = generate(Bigram(4), ember.tensor([[1, 2]]), max_new_tokens=3, block_size=1)
        >>> out.shape, out[:, :2].tolist()
        ((1, 5), [[1, 2]])
    """
    idx = idx if isinstance(idx, Tensor) else tensor(idx)
    if idx.ndim == 1:
        idx = idx.reshape(1, -1)
    if idx.ndim != 2 or idx.dtype.kind not in "iu" or idx.shape[1] == 0:
        raise ValueError(f"generate: idx must be a (batch, time) integer array with at least one "
                         f"token, got shape {idx.shape} and dtype {idx.dtype}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    seq = idx.numpy()  # the text so far lives on the host; each step sends one window
    b, t0 = seq.shape
    seq = np.concatenate([seq, np.zeros((b, max_new_tokens), dtype=seq.dtype)], axis=1)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for t in range(t0, t0 + max_new_tokens):
                lo = 0 if block_size is None else max(0, t - block_size)
                window = seq[:, lo:t]
                n = window.shape[1]
                if block_size is not None and n < block_size:
                    # Pad on the right up to block_size: the models are causal, so the logits at
                    # position n - 1 ignore the padding, and every step has the same shapes
                    # (compiled once on JAX, not once per context length).
                    window = np.pad(window, ((0, 0), (0, block_size - n)))
                at = tensor(np.full((b, 1, 1), n - 1))
                nxt = _next_token(model, tensor(window), at, temperature, top_k)
                seq[:, t] = nxt.numpy()
    finally:
        model.train(was_training)
    return tensor(seq)
