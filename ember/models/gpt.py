"""A character-level GPT, written to be read beside nanoGPT's ``model.py``.

Token and position embeddings, ``n_layer`` pre-norm causal ``nn.TransformerBlock``s, a final
LayerNorm and a head tied to the token embedding (one matrix, used twice), or with
``tie_weights=False`` and ``init="pytorch"`` makemore's Transformer (its own head ``lm_head``,
PyTorch's default initialisation). Names follow nanoGPT
where ember's layers allow (``wte``, ``wpe``, ``h.0``, ``ln_f``); inside a block they are
``nn.TransformerBlock``'s (``norm1``, ``attn.in_proj_weight``, ``attn.out_proj``, ``mlp.0``…).

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
from typing import Any

from ember import nn
from ember.creation import tensor
from ember.models.sampling import generate
from ember.tensor import Tensor

__all__ = ["GPT"]


_INITS = ("gpt2", "pytorch")


def _pytorch_init(model: nn.Module) -> None:
    """PyTorch's defaults as makemore's Transformer gets them: the embeddings N(0, 1), every
    matrix U(+-1/sqrt(fan_in)) (``nn.init.default_``), LayerNorm gains one; biases start at zero
    (one difference: PyTorch draws a Linear's bias from U(+-1/sqrt(fan_in)))."""
    for name, p in model.named_parameters():
        key = nn.init.path_key(name)
        if name.startswith(("wte.", "wpe.")):
            nn.init.normal_(p, std=1.0, key=key)
        elif p.ndim >= 2:
            nn.init.default_(p, key=key)
        elif name.endswith("bias"):
            nn.init.zeros_(p)


def _gpt2_init(model: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation: matrices N(0, 0.02), the residual projections (attention output,
    MLP output) N(0, 0.02 / sqrt(2 n_layer)) so that the sum over the blocks stays O(1), biases
    zero. Each draw uses the key of the parameter's path (reproducible from ``manual_seed``)."""
    residual = 0.02 / math.sqrt(2 * n_layer)
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            std = residual if name.endswith(("attn.out_proj.weight", "mlp.2.weight")) else 0.02
            nn.init.normal_(p, std=std, key=nn.init.path_key(name))
        elif name.endswith("bias"):
            nn.init.zeros_(p)


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
        tie_weights: the head is the token embedding (nanoGPT); False gives the model its own
            head ``lm_head`` (makemore, minGPT).
        init: ``"gpt2"``: every weight N(0, 0.02), the two residual projections of each block
            N(0, 0.02 / sqrt(2 * n_layer)), biases zero, LayerNorm gains one (nanoGPT);
            ``"pytorch"``: the embeddings N(0, 1), every other matrix U(+-1/sqrt(fan_in)),
            biases zero (makemore's Transformer, which keeps PyTorch's defaults, except that
            PyTorch draws a Linear's bias from U(+-1/sqrt(fan_in))).

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
                 n_embd: int, dropout: float = 0.0, bias: bool = False,
                 tie_weights: bool = True, init: str = "gpt2") -> None:
        super().__init__()
        for arg, value in (("vocab_size", vocab_size), ("block_size", block_size),
                           ("n_layer", n_layer), ("n_head", n_head), ("n_embd", n_embd)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPT: {arg} must be a positive int, got {value!r}")
        if n_embd % n_head:
            raise ValueError(f"GPT: n_embd={n_embd} must be a multiple of n_head={n_head} (each "
                             f"head gets n_embd / n_head channels)")
        if init not in _INITS:
            raise ValueError(f"GPT: init must be one of {', '.join(_INITS)}, got {init!r}")
        self.vocab_size, self.block_size = vocab_size, block_size
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.dropout, self.bias = float(dropout), bool(bias)
        self.tie_weights, self.init = bool(tie_weights), init
        self.wte = nn.Embedding(vocab_size, n_embd)  # tokens; also the head when tied
        self.wpe = nn.Embedding(block_size, n_embd)  # positions
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([
            nn.TransformerBlock(n_embd, n_head, dropout=dropout, causal=True, bias=bias)
            for _ in range(n_layer)])
        for block in self.h:  # nanoGPT's LayerNorm(bias=bias): no bias by default
            block.norm1 = nn.LayerNorm(n_embd, bias=bias)
            block.norm2 = nn.LayerNorm(n_embd, bias=bias)
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        if not self.tie_weights:
            self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        if init == "gpt2":
            _gpt2_init(self, n_layer)
        else:
            _pytorch_init(self)

    def forward(self, idx: Any) -> Tensor:
        idx = idx if isinstance(idx, Tensor) else tensor(idx)
        if idx.ndim != 2:
            raise ValueError(f"GPT: expected token indices (batch, time), got shape {idx.shape}")
        t = idx.shape[1]
        if t > self.block_size:
            raise ValueError(f"GPT: a sequence of {t} tokens is longer than block_size="
                             f"{self.block_size}; crop it to the last {self.block_size} tokens")
        x = self.wte(idx) + self.wpe.weight[:t]
        x = self.drop(x)
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        if not self.tie_weights:
            return self.lm_head(x)
        return x @ self.wte.weight.T  # the head is the token embedding, transposed (tying)

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
                "dropout": self.dropout, "bias": self.bias, "tie_weights": self.tie_weights,
                "init": self.init}

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, block_size={self.block_size}, "
                f"n_layer={self.n_layer}, n_head={self.n_head}, n_embd={self.n_embd}")
