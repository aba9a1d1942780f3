"""Embedding: a learned table of vectors looked up by integer index.

Example:
    >>> import ember
    >>> from ember import nn
    >>> nn.Embedding(65, 8)(ember.tensor([[1, 2, 3]])).shape
    (1, 3, 8)
"""

from __future__ import annotations

from typing import Any

from ember import backend
from ember.nn import init as _init
from ember.nn.module import Module, Parameter
from ember.nn.registry import REQUIRED
from ember.ops.index import Embedding as _EmbeddingOp
from ember.tensor import Tensor, as_array

__all__ = ["Embedding"]


def _init_rows(padding_idx: int | None) -> Any:
    """PyTorch's initialiser: N(0, 1), with the padding row set to zeros."""

    def init(tensor: Tensor, key: Any = None) -> Tensor:
        _init.normal_(tensor, key=key)
        if padding_idx is not None:
            xp = backend.get().xp
            keep = xp.arange(tensor.shape[0]) != padding_idx
            tensor.data = xp.where(keep[:, None], tensor.data, xp.zeros((), tensor.dtype))
        return tensor

    init.__name__ = init.__qualname__ = "embedding_normal"
    return init


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``; ``emb(idx)`` returns the
    rows at the integer indices ``idx`` (any shape), giving shape ``(*idx.shape, embedding_dim)``.

    The gradient scatter-adds into the looked-up rows (repeated indices accumulate); the row at
    ``padding_idx`` starts at zeros and gets no gradient. An index outside ``[0,
    num_embeddings)`` is an error naming the layer, the index and the size (checked on the host
    for concrete indices; inside ``ember.jit`` the indices are not known, and JAX clamps them).

    Args:
        num_embeddings: the number of rows (vocabulary size).
        embedding_dim: the size of each vector.
        padding_idx: a row that stays zero and is not trained (negative counts from the end).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> emb = nn.Embedding(10, 3, padding_idx=0)
        >>> emb(ember.tensor([0, 0])).tolist()
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
        >>> emb(ember.tensor([10]))
        Traceback (most recent call last):
        ...
        IndexError: model (Embedding 10x3): index 10 is out of range for 10 embeddings (valid: 0..9)
    """

    config_name = "embedding"
    config_fields = {"num_embeddings": REQUIRED, "embedding_dim": REQUIRED, "padding_idx": None}

    def config_output_shape(self, shape: Any) -> Any:
        return None if shape is None else (*shape, self.embedding_dim)

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 trainable: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        if padding_idx is not None:
            p = int(padding_idx)
            if not -self.num_embeddings <= p < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx={padding_idx} must be within "
                                 f"[-{self.num_embeddings}, {self.num_embeddings})")
            padding_idx = p % self.num_embeddings
        self.padding_idx = padding_idx
        self.weight = Parameter(shape=(self.num_embeddings, self.embedding_dim),
                                init=_init_rows(padding_idx), dtype=dtype,
                                requires_grad=trainable)

    def forward(self, idx: Any) -> Tensor:
        data = idx.data if isinstance(idx, Tensor) else as_array(idx)
        if data.dtype.kind not in "iu":
            raise TypeError(f"{self.path()} ({self.describe()}): indices must be integers, got "
                            f"dtype {data.dtype} (use .astype(ember.int64) for whole-number "
                            f"floats)")
        if not backend.is_traced(data) and data.size:
            bk = backend.get()
            lo, hi = int(bk.xp.min(data)), int(bk.xp.max(data))
            bad = hi if hi >= self.num_embeddings else (lo if lo < 0 else None)
            if bad is not None:
                raise IndexError(f"{self.path()} ({self.describe()}): index {bad} is out of range "
                                 f"for {self.num_embeddings} embeddings (valid: 0.."
                                 f"{self.num_embeddings - 1})")
        return _EmbeddingOp.apply(Tensor._make(data, False, None), self.weight,
                                  padding_idx=self.padding_idx)

    def describe(self) -> str:
        return f"Embedding {self.num_embeddings}x{self.embedding_dim}"

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
