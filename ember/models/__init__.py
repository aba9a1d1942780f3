"""Reference language models built from ``ember.nn``: a GPT and the makemore ladder.

Every model maps token indices (B, T) to next-token logits (B, T, V) and has
``generate(idx, max_new_tokens, temperature=1.0, top_k=None)``, so one loop trains any of them.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> from ember.models import GPT
    >>> ember.manual_seed(0)
    >>> model = GPT(vocab_size=8, block_size=4, n_layer=1, n_head=1, n_embd=8)
    >>> x = ember.tensor([[1, 2, 3, 4]])
    >>> loss = F.cross_entropy(model(x).reshape(-1, 8), [2, 3, 4, 5])
    >>> round(loss.item(), 1)  # about ln(8) at initialisation
    2.1
"""

from __future__ import annotations

from ember.models.builder import NAMES, build
from ember.models.gpt import GPT
from ember.models.makemore import GRULM, MLP, RNNLM, Bigram
from ember.models.sampling import generate, sample_next

__all__ = ["GPT", "Bigram", "MLP", "RNNLM", "GRULM", "generate", "sample_next", "build", "NAMES"]
