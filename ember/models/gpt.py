"""A character-level GPT, written to be read beside nanoGPT's ``model.py``.

Token and position embeddings, ``n_layer`` pre-norm causal Transformer blocks, a final LayerNorm
and a head tied to the token embedding (one matrix, used twice). Parameter names follow nanoGPT's
(``wte``, ``wpe``, ``h.0.attn.c_attn.weight``, ``ln_f``…), so its state_dicts map one to one.

Example:
    >>> import ember
    >>> from ember.models import GPT
    >>> ember.manual_seed(0)
    >>> model = GPT(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32)
    >>> model(ember.zeros(3, 16, dtype="int64")).shape
    (3, 16, 65)
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import ember
from ember import nn
from ember.models.sampling import generate
from ember.tensor import Tensor

__all__ = ["GPT", "CausalSelfAttention", "Block"]


def _normal(std: float) -> Any:
    """An initialiser drawing N(0, std**2) (with the parameter's own path-derived key)."""
    return partial(nn.init.normal_, mean=0.0, std=std)


def _linear(n_in: int, n_out: int, bias: bool, std: float = 0.02) -> nn.Linear:
    return nn.Linear(n_in, n_out, bias=bias, init=_normal(std), bias_init=nn.init.zeros_)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position ``t`` sees positions ``<= t`` only.

    Example:
        >>> import ember
        >>> from ember.models.gpt import CausalSelfAttention
        >>> CausalSelfAttention(8, n_head=2, n_layer=1)(ember.zeros(1, 4, 8)).shape
        (1, 4, 8)
    """

    def __init__(self, n_embd: int, n_head: int, n_layer: int, dropout: float = 0.0,
                 bias: bool = False) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"CausalSelfAttention: n_embd={n_embd} must be a multiple of "
                             f"n_head={n_head}")
        self.n_head, self.dropout = n_head, float(dropout)
        self.c_attn = _linear(n_embd, 3 * n_embd, bias)  # query, key, value of every head at once
        # GPT-2: residual projections start smaller, so the sum over n_layer blocks stays O(1)
        self.c_proj = _linear(n_embd, n_embd, bias, std=0.02 / math.sqrt(2 * n_layer))
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        qkv = self.c_attn(x).reshape(b, t, 3, self.n_head, c // self.n_head)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, heads, T, head size)
        p = self.dropout if self.training else 0.0
        y = ember.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True,
                                               dropout_p=p)
        y = y.permute(0, 2, 1, 3).reshape(b, t, c)  # the heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The block's feed-forward part: ``n_embd -> 4 n_embd -> GELU -> n_embd``.

    Example:
        >>> import ember
        >>> from ember.models.gpt import MLP
        >>> MLP(8, n_layer=1)(ember.zeros(2, 8)).shape
        (2, 8)
    """

    def __init__(self, n_embd: int, n_layer: int, dropout: float = 0.0,
                 bias: bool = False) -> None:
        super().__init__()
        self.c_fc = _linear(n_embd, 4 * n_embd, bias)
        self.c_proj = _linear(4 * n_embd, n_embd, bias, std=0.02 / math.sqrt(2 * n_layer))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(ember.gelu(self.c_fc(x))))


class Block(nn.Module):
    """A pre-norm Transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``.

    Example:
        >>> import ember
        >>> from ember.models.gpt import Block
        >>> Block(8, n_head=2, n_layer=1)(ember.zeros(1, 3, 8)).shape
        (1, 3, 8)
    """

    def __init__(self, n_embd: int, n_head: int, n_layer: int, dropout: float = 0.0,
                 bias: bool = False) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, n_layer, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, n_layer, dropout, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A GPT language model: ``model(idx) -> logits``, idx (B, T) integers, logits (B, T, V).

    Args:
        vocab_size: the number of tokens.
        block_size: the longest context (the number of learned positions).
        n_layer, n_head, n_embd: blocks, attention heads per block, channels.
        dropout: dropout after the embeddings, on the attention weights and on each residual
            branch, in training mode only.
        bias: biases in the linear layers and LayerNorms (nanoGPT's ``bias``; False is its
            recommended setting).

    Initialisation is GPT-2's: every weight N(0, 0.02), the two residual projections of each
    block N(0, 0.02 / sqrt(2 * n_layer)), biases zero, LayerNorm gains one.

    Example:
        >>> import ember
        >>> from ember.models import GPT
        >>> ember.manual_seed(0)
        >>> model = GPT(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=16)
        >>> out = model.generate(ember.tensor([[1, 2]]), max_new_tokens=10, top_k=3)
        >>> out.shape
        (1, 12)
    """

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int,
                 n_embd: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        for arg, value in (("vocab_size", vocab_size), ("block_size", block_size),
                           ("n_layer", n_layer), ("n_head", n_head), ("n_embd", n_embd)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPT: {arg} must be a positive int, got {value!r}")
        self.vocab_size, self.block_size = vocab_size, block_size
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.dropout, self.bias = float(dropout), bool(bias)
        self.wte = nn.Parameter(shape=(vocab_size, n_embd), init=_normal(0.02))  # tokens
        self.wpe = nn.Parameter(shape=(block_size, n_embd), init=_normal(0.02))  # positions
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([Block(n_embd, n_head, n_layer, dropout, bias)
                                for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)

    def forward(self, idx: Any) -> Tensor:
        idx = idx if isinstance(idx, Tensor) else ember.tensor(idx)
        if idx.ndim != 2:
            raise ValueError(f"GPT: expected token indices (batch, time), got shape {idx.shape}")
        t = idx.shape[1]
        if t > self.block_size:
            raise ValueError(f"GPT: a sequence of {t} tokens is longer than block_size="
                             f"{self.block_size}; crop it to the last {self.block_size} tokens")
        x = ember.embedding(idx, self.wte) + self.wpe[:t]
        x = self.drop(x)
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        return x @ self.wte.T  # the head is the token embedding, transposed (weight tying)

    def generate(self, idx: Any, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None) -> Tensor:
        """``idx`` (B, T) extended by ``max_new_tokens`` sampled tokens (see
        :func:`ember.models.generate`); the context is cropped to the last ``block_size``.

        Example:
            >>> import ember
            >>> from ember.models import GPT
            >>> ember.manual_seed(0)
            >>> GPT(5, 4, 1, 1, 8).generate(ember.tensor([[0]]), 6).shape
            (1, 7)
        """
        return generate(self, idx, max_new_tokens, temperature, top_k, self.block_size)

    def config(self) -> dict[str, Any]:
        """The constructor's arguments with ``"name": "gpt"`` (JSON-ready).

        Example:
            >>> from ember.models import GPT
            >>> GPT(5, 4, 1, 1, 8).config()["n_embd"]
            8
        """
        return {"name": "gpt", "vocab_size": self.vocab_size, "block_size": self.block_size,
                "n_layer": self.n_layer, "n_head": self.n_head, "n_embd": self.n_embd,
                "dropout": self.dropout, "bias": self.bias}

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, block_size={self.block_size}, "
                f"n_layer={self.n_layer}, n_head={self.n_head}, n_embd={self.n_embd}")
