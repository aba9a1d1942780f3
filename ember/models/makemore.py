"""The makemore ladder: a bigram table, an MLP (Bengio et al. 2003) and recurrent networks.

Each model maps token indices (B, T) to next-token logits (B, T, V) and can ``generate``, like
:class:`ember.models.GPT`, so that one training loop trains any of them. Read them beside
Karpathy's ``makemore.py``.

Example:
    >>> import ember
    >>> from ember.models import MLP, Bigram, GRULM, RNNLM
    >>> ember.manual_seed(0)
    >>> idx = ember.zeros(2, 5, dtype="int64")
    >>> [tuple(m(idx).shape) for m in (Bigram(27), MLP(27, 3), RNNLM(27), GRULM(27))]
    [(2, 5, 27), (2, 5, 27), (2, 5, 27), (2, 5, 27)]
"""

from __future__ import annotations

from typing import Any

from ember import nn
from ember.creation import full, randn, tensor, zeros
from ember.models.sampling import generate
from ember.ops.index import Embedding as _Embedding
from ember.ops.shape import concatenate
from ember.tensor import Tensor

__all__ = ["Bigram", "MLP", "RNNLM", "GRULM"]


def _tokens(owner: str, idx: Any) -> Tensor:
    idx = idx if isinstance(idx, Tensor) else tensor(idx)
    if idx.ndim != 2:
        raise ValueError(f"{owner}: expected token indices (batch, time), got shape {idx.shape}")
    return idx


class _LanguageModel(nn.Module):
    """What the ladder shares: ``generate`` with the context cropped to ``block_size``."""

    block_size: int

    def generate(self, idx: Any, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None) -> Tensor:
        """``idx`` (B, T) extended by ``max_new_tokens`` sampled tokens (see
        :func:`ember.models.generate`), the model seeing the last ``block_size`` tokens.

        Example:
            >>> import ember
            >>> from ember.models import Bigram
            >>> ember.manual_seed(0)
            >>> Bigram(3).generate(ember.tensor([[0]]), 4).shape
            (1, 5)
        """
        return generate(self, idx, max_new_tokens, temperature, top_k, self.block_size)


class Bigram(_LanguageModel):
    """The next token depends on the current one only: logits are a row of a (V, V) table.

    Example:
        >>> import ember
        >>> from ember.models import Bigram
        >>> Bigram(4)(ember.tensor([[0, 3]])).shape
        (1, 2, 4)
    """

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, 1
        self.logits = nn.Parameter(zeros(vocab_size, vocab_size))

    def forward(self, idx: Any) -> Tensor:
        return _Embedding.apply(_tokens("Bigram", idx), self.logits)


class MLP(_LanguageModel):
    """Bengio et al. (2003): embed the previous ``block_size`` tokens, concatenate, one hidden
    tanh layer, logits. Positions before the start see a special blank token (index V).

    Example:
        >>> import ember
        >>> from ember.models import MLP
        >>> MLP(27, block_size=3, n_embd=8, n_embd2=32)(ember.tensor([[1, 2, 3, 4]])).shape
        (1, 4, 27)
    """

    def __init__(self, vocab_size: int, block_size: int, n_embd: int = 64,
                 n_embd2: int = 64) -> None:
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.wte = nn.Parameter(randn(vocab_size + 1, n_embd))  # + the blank token
        self.mlp = nn.Sequential(nn.Linear(block_size * n_embd, n_embd2), nn.Tanh(),
                                 nn.Linear(n_embd2, vocab_size))

    def forward(self, idx: Any) -> Tensor:
        idx = _tokens("MLP", idx)
        b, t = idx.shape
        embs = []
        for k in range(self.block_size):  # the token k steps back, blank before the start
            blank = full((b, min(k, t)), self.vocab_size, dtype=idx.dtype)
            back = concatenate([blank, idx[:, :t - k]], axis=1) if k else idx
            embs.append(_Embedding.apply(back, self.wte))
        return self.mlp(concatenate(embs, axis=-1))


class RNNLM(_LanguageModel):
    """A recurrent language model: embed, run an RNN from a learned start state, project to
    logits (makemore's ``RNN`` with ``cell_type="rnn"``).

    Example:
        >>> import ember
        >>> from ember.models import RNNLM
        >>> RNNLM(27, n_embd=8, n_embd2=16)(ember.tensor([[1, 2, 3]])).shape
        (1, 3, 27)
    """

    _cell = "RNN"

    def __init__(self, vocab_size: int, n_embd: int = 64, n_embd2: int = 64,
                 block_size: int = 32) -> None:
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.start = nn.Parameter(zeros(1, 1, n_embd2))  # the hidden state before token 0
        self.wte = nn.Parameter(randn(vocab_size, n_embd))
        self.rnn = getattr(nn, self._cell)(n_embd, n_embd2, batch_first=True)
        self.lm_head = nn.Linear(n_embd2, vocab_size)

    def forward(self, idx: Any) -> Tensor:
        idx = _tokens(type(self).__name__, idx)
        h0 = self.start.broadcast_to((1, idx.shape[0], self.start.shape[-1]))
        out, _ = self.rnn(_Embedding.apply(idx, self.wte), h0)
        return self.lm_head(out)


class GRULM(RNNLM):
    """:class:`RNNLM` with a GRU (makemore's ``cell_type="gru"``).

    Example:
        >>> import ember
        >>> from ember.models import GRULM
        >>> GRULM(27, n_embd=8, n_embd2=16)(ember.tensor([[1, 2, 3]])).shape
        (1, 3, 27)
    """

    _cell = "GRU"
