"""A language model from its description: a named reference model or a list of layer dicts.

What a text config's ``model`` holds, and what a run folder's ``config.json`` keeps: either a
table naming one of :data:`NAMES` with its arguments (``{"name": "gpt", "n_layer": 4, ...}``) or
a list of layer entries for :func:`ember.nn.from_config` (``[{"type": "embedding", ...}, ...]``),
where the string ``"vocab_size"`` stands for the tokenizer's vocabulary size.

Example:
    >>> from ember.models import build
    >>> build({"name": "bigram"}, vocab_size=5, block_size=8)
    Bigram()
    >>> build([{"type": "embedding", "num_embeddings": "vocab_size", "embedding_dim": 2},
    ...        {"type": "flatten"}, {"type": "dense", "units": "vocab_size"}], 5, 3)[2]
    Linear(in_features=6, out_features=5, bias=True)
"""

from __future__ import annotations

from typing import Any

from ember import nn
from ember.models.gpt import GPT
from ember.models.makemore import GRULM, MLP, RNNLM, Bigram

__all__ = ["NAMES", "build"]

#: the named reference models a description can give
NAMES = ("gpt", "bigram", "mlp", "rnn", "gru")


def _vocab(value: Any, vocab_size: int) -> Any:
    if value == "vocab_size":
        return vocab_size
    if isinstance(value, dict):
        return {k: _vocab(v, vocab_size) for k, v in value.items()}
    if isinstance(value, list):
        return [_vocab(v, vocab_size) for v in value]
    return value


def build(spec: Any, vocab_size: int, block_size: int) -> nn.Module:
    """The model ``spec`` describes, for ``vocab_size`` tokens and inputs of ``block_size``
    tokens (the GPT's context and the default context of the MLP; the input shape a layer list
    is built for).

    Raises:
        ValueError: for a name not in :data:`NAMES` or a spec that is neither a table nor a list.

    Example:
        >>> from ember.models import build
        >>> build({"name": "gpt", "n_layer": 1, "n_head": 1, "n_embd": 8}, 5, 4).block_size
        4
    """
    if isinstance(spec, list):
        return nn.from_config(_vocab(spec, vocab_size), input_shape=(block_size,))
    if not isinstance(spec, dict) or spec.get("name") not in NAMES:
        got = spec.get("name") if isinstance(spec, dict) else spec
        raise ValueError(f"ember.models.build: expected a model name in {', '.join(NAMES)} or a "
                         f"list of layer dicts, got {got!r}")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    name = spec["name"]
    if name == "gpt":
        return GPT(vocab_size, block_size=block_size, **kwargs)
    if name == "bigram":
        return Bigram(vocab_size, **kwargs)
    if name == "mlp":
        return MLP(vocab_size, block_size=kwargs.pop("block_size", block_size), **kwargs)
    return (RNNLM if name == "rnn" else GRULM)(vocab_size, **kwargs)
