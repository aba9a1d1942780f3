"""Attention layers: MultiheadAttention (PyTorch's parameters and masks) and the GPT-style
TransformerBlock.

Example:
    >>> import ember
    >>> from ember import nn
    >>> block = nn.TransformerBlock(32, 4, causal=True)
    >>> block(ember.zeros(2, 10, 32)).shape
    (2, 10, 32)
"""

from __future__ import annotations

from typing import Any

from ember import backend
from ember import random as _random
from ember.nn import init as _init
from ember.nn.activations import get_activation
from ember.nn.containers import Sequential
from ember.nn.layers import Dropout, Lambda, LayerNorm, Linear
from ember.nn.module import Module, Parameter
from ember.nn.norm import RMSNorm
from ember.nn.registry import REQUIRED
from ember.ops.attention import scaled_dot_product_attention
from ember.ops.dropout import dropout
from ember.tensor import Tensor

__all__ = ["MultiheadAttention", "TransformerBlock", "TransformerEncoderLayer"]


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _mask_tensor(mask: Any) -> Tensor:
    return mask if isinstance(mask, Tensor) else Tensor._make(backend.get().asarray(mask),
                                                             False, None)


class MultiheadAttention(Module):
    """Multi-head attention, ``softmax(q k^T / sqrt(d) + mask) v`` per head, with PyTorch's
    parameters: ``in_proj_weight`` (3E, E) holding the query, key and value projections,
    ``in_proj_bias`` (3E,) and ``out_proj`` (a Linear E->E). With keys of ``kdim`` or values
    of ``vdim`` features other than E, the projections are ``q_proj_weight`` (E, E),
    ``k_proj_weight`` (E, kdim) and ``v_proj_weight`` (E, vdim) instead, as in PyTorch.

    ``mha(query, key=None, value=None, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)`` returns ``(output, weights)``:
    output (B, T, E), weights (B, T, S) averaged over heads (or (B, H, T, S)), or None when
    ``need_weights=False`` (then a fused attention op runs: use it for speed). ``key`` and
    ``value`` default to ``query`` (self-attention).

    Masks follow ``torch.nn.MultiheadAttention``: a boolean ``attn_mask`` (T, S) or (B*H, T, S)
    is True where attention is NOT allowed, a float one is added to the scores;
    ``key_padding_mask`` (B, S) is True at keys to ignore (padding); ``is_causal=True`` lets query
    i see keys j <= i only. Unlike PyTorch, ``batch_first`` defaults to True.

    Args:
        embed_dim: E, the model size; a multiple of ``num_heads``.
        num_heads: H, the number of heads (each of size E / H).
        dropout: dropout on the attention weights, in training.
        bias: whether the projections have biases.
        batch_first: True: (B, T, E); False: (T, B, E).
        kdim, vdim: the features of the keys and of the values (default E).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> mha = nn.MultiheadAttention(16, 4)
        >>> out, w = mha(ember.zeros(2, 5, 16), is_causal=True)
        >>> out.shape, w.shape
        ((2, 5, 16), (2, 5, 5))
        >>> cross = nn.MultiheadAttention(16, 4, kdim=6, vdim=3)
        >>> cross(ember.zeros(2, 5, 16), ember.zeros(2, 7, 6), ember.zeros(2, 7, 3))[0].shape
        (2, 5, 16)
    """

    config_name, config_aliases = "multiheadattention", ("mha", "multihead_attention")
    config_fields = {"num_heads": REQUIRED, "embed_dim": None, "dropout": 0.0, "bias": True,
                     "batch_first": True, "kdim": None, "vdim": None}
    config_infer = {"embed_dim": lambda s: s[-1]}

    def config(self) -> dict[str, Any]:
        """The generic entry, with ``kdim``/``vdim`` only where they differ from embed_dim."""
        from ember.nn.config import generic_config

        return {k: v for k, v in generic_config(self).items()
                if k not in ("kdim", "vdim") or v != self.embed_dim}

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = True, kdim: int | None = None, vdim: int | None = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.embed_dim = int(embed_dim)
        self.num_heads = int(num_heads)
        if self.num_heads < 1 or self.embed_dim % self.num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim={embed_dim} must be divisible by "
                             f"num_heads={num_heads}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"MultiheadAttention: dropout is a probability in [0, 1), got "
                             f"{dropout}")
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.bias = bool(bias)
        e = self.embed_dim
        self.kdim = e if kdim is None else int(kdim)
        self.vdim = e if vdim is None else int(vdim)
        if self.kdim < 1 or self.vdim < 1:
            raise ValueError(f"MultiheadAttention: kdim={kdim} and vdim={vdim} must be positive "
                             f"(or None for embed_dim={e})")
        if self.kdim == e and self.vdim == e:
            self.in_proj_weight = Parameter(shape=(3 * e, e), init=_init.xavier_uniform_,
                                            dtype=dtype)
        else:  # PyTorch's layout for keys and values of other sizes
            self.register_parameter("in_proj_weight", None)
            for name, n in (("q", e), ("k", self.kdim), ("v", self.vdim)):
                setattr(self, f"{name}_proj_weight",
                        Parameter(shape=(e, n), init=_init.xavier_uniform_, dtype=dtype))
        if bias:
            self.in_proj_bias = Parameter(shape=(3 * e,), init=_init.zeros_, dtype=dtype)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(e, e, bias=bias, dtype=dtype,
                               bias_init=_init.zeros_ if bias else None)
        if self.dropout:
            # not persistent: a PyTorch state_dict has no such key
            self.register_buffer("dropout_key", _random.next_key(), persistent=False)

    # -- input checks ------------------------------------------------------------------------------
    def _batched(self, x: Any, what: str, size: int | None = None) -> Tensor:
        x = _tensor(x)
        size = self.embed_dim if size is None else size
        if x.ndim != 3 or x.shape[-1] != size:
            lead = "B, T" if self.batch_first else "T, B"
            raise ValueError(f"{self.path()} ({self.describe()}): expected {what} "
                             f"({lead}, {size}), got {x.shape}")
        return x if self.batch_first else x.swapaxes(0, 1)

    def _allowed(self, attn_mask: Any, key_padding_mask: Any, is_causal: bool, b: int, t: int,
                 s: int) -> Tensor | None:
        """One mask for the fused op: boolean (True = may attend) or additive float, shaped to
        broadcast against (B, H, T, S); None when nothing is masked."""
        xp = backend.get().xp
        parts: list[Tensor] = []
        if attn_mask is not None:
            m = _mask_tensor(attn_mask)
            if m.shape == (t, s):
                m = m.reshape(1, 1, t, s)
            elif m.shape == (b * self.num_heads, t, s):
                m = m.reshape(b, self.num_heads, t, s)
            else:
                raise ValueError(f"{self.path()} ({self.describe()}): attn_mask must have shape "
                                 f"{(t, s)} or {(b * self.num_heads, t, s)}, got {m.shape}")
            parts.append(m)
        if key_padding_mask is not None:
            m = _mask_tensor(key_padding_mask)
            if m.shape != (b, s):
                raise ValueError(f"{self.path()} ({self.describe()}): key_padding_mask must "
                                 f"have shape {(b, s)} (batch, keys), got {m.shape}")
            parts.append(m.reshape(b, 1, 1, s))
        if is_causal:
            causal = xp.arange(t)[:, None] < xp.arange(s)[None, :]  # True = not allowed
            parts.append(Tensor._make(causal.reshape(1, 1, t, s), False, None))
        if not parts:
            return None
        if all(p.dtype.kind == "b" for p in parts):
            blocked = parts[0].data
            for p in parts[1:]:
                blocked = blocked | p.data
            return Tensor._make(~blocked, False, None)
        dtype = next(p.dtype for p in parts if p.dtype.kind == "f")
        total: Tensor | None = None
        for p in parts:
            if p.dtype.kind == "b":
                p = Tensor._make(xp.where(p.data, -xp.inf, 0.0).astype(dtype), False, None)
            total = p if total is None else total + p
        return total

    # -- forward -----------------------------------------------------------------------------------
    def forward(self, query: Any, key: Any = None, value: Any = None,
                key_padding_mask: Any = None, need_weights: bool = True, attn_mask: Any = None,
                average_attn_weights: bool = True, is_causal: bool = False
                ) -> tuple[Tensor, Tensor | None]:
        self_attention = (key is None or key is query) and (value is None or value is query)
        q_in = self._batched(query, "query")
        b, t, e = q_in.shape
        h, d = self.num_heads, self.head_dim
        w, bias = self.in_proj_weight, self.in_proj_bias
        if w is None:  # separate projections (kdim or vdim other than embed_dim)
            self_attention = False
        if self_attention:
            qkv = q_in @ w.T
            if bias is not None:
                qkv = qkv + bias
            qkv = qkv.reshape(b, t, 3, h, d).permute(2, 0, 3, 1, 4)  # (3, B, H, T, D)
            q, k, v = qkv[0], qkv[1], qkv[2]
            s = t
        else:
            k_in = self._batched(query if key is None else key, "key", self.kdim)
            v_in = self._batched(k_in if value is None else value, "value", self.vdim)
            if k_in.shape[:2] != v_in.shape[:2] or k_in.shape[0] != b:
                raise ValueError(f"{self.path()} ({self.describe()}): key {k_in.shape} and value "
                                 f"{v_in.shape} must have the same batch and length, with the "
                                 f"query's batch {b}")
            s = k_in.shape[1]
            heads = []
            for i, x_in in enumerate((q_in, k_in, v_in)):
                proj = (w[i * e:(i + 1) * e] if w is not None else
                        (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i])
                y = x_in @ proj.T
                if bias is not None:
                    y = y + bias[i * e:(i + 1) * e]
                heads.append(y.reshape(b, x_in.shape[1], h, d).swapaxes(1, 2))
            q, k, v = heads
        # the fused op applies is_causal itself, from a mask it makes once per (T, S)
        mask = self._allowed(attn_mask, key_padding_mask, is_causal and need_weights, b, t, s)
        p_drop = self.dropout if self.training else 0.0
        rng = None
        if p_drop:
            keys = backend.get().split(self.dropout_key.data, 2)
            self.dropout_key = keys[0]
            rng = keys[1]
        weights = None
        if need_weights:
            scores = (q @ k.swapaxes(-1, -2)) * (1.0 / d ** 0.5)
            if mask is not None:
                if mask.dtype.kind == "b":
                    blocked = Tensor._make(~mask.data, False, None)
                    scores = scores.masked_fill(blocked, float("-inf"))  # type: ignore[attr-defined]
                else:
                    scores = scores + mask
            weights = scores.softmax(axis=-1)
            attn = dropout(weights, p_drop, rng) if p_drop else weights  # type: ignore
            out = attn @ v
            if average_attn_weights:
                weights = weights.mean(axis=1)
        else:
            out = scaled_dot_product_attention(  # type: ignore[attr-defined]
                q, k, v, mask=mask, is_causal=is_causal, dropout_p=p_drop, rng_key=rng)
        out = self.out_proj(out.swapaxes(1, 2).reshape(b, t, e))
        if not self.batch_first:
            out = out.swapaxes(0, 1)
        return out, weights

    def describe(self) -> str:
        return f"MultiheadAttention {self.embed_dim}/{self.num_heads}"

    def extra_repr(self) -> str:
        extra = "" if self.in_proj_weight is not None else f", kdim={self.kdim}, vdim={self.vdim}"
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, bias={self.in_proj_bias is not None}{extra}")


class TransformerBlock(Module):
    """A transformer block: self-attention and an MLP, each in a residual branch.

    Pre-norm (GPT-2, the default): ``x = x + drop(attn(norm1(x)))``, then
    ``x = x + drop(mlp(norm2(x)))``; post-norm (the original Transformer, PyTorch's default):
    ``x = norm1(x + drop(attn(x)))``, then ``x = norm2(x + drop(mlp(x)))``. The MLP is
    Linear(d, mlp_ratio*d), activation, Linear(mlp_ratio*d, d) (``mlp.0``, ``mlp.2``).

    Args:
        d_model: the model size.
        n_head: the number of attention heads.
        mlp_ratio: the MLP's hidden size over ``d_model``.
        dropout: dropout on the attention weights and after each branch, in training.
        norm: "layer" (LayerNorm) or "rms" (RMSNorm).
        pre_norm: normalise before each branch (True) or after the residual sum.
        causal: each position attends only to itself and earlier ones (a GPT decoder).
        activation: the MLP's activation (default "gelu").
        bias: whether the linear layers have biases.
        norm_eps: the norms' epsilon.

    ``block(x, attn_mask=None, key_padding_mask=None)`` takes (B, T, d_model); the masks are
    :class:`MultiheadAttention`'s.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.TransformerBlock(16, 2, norm="rms")(ember.zeros(3, 4, 16)).shape
        (3, 4, 16)
    """

    config_name, config_aliases = "transformerblock", ("transformer",)
    config_fields = {"n_head": REQUIRED, "d_model": None, "mlp_ratio": 4, "dropout": 0.0,
                     "norm": "layer", "pre_norm": True, "causal": False, "activation": "gelu",
                     "bias": True, "norm_eps": 1e-5}
    config_infer = {"d_model": lambda s: s[-1]}

    def config_output_shape(self, shape: Any) -> Any:
        return shape

    def __init__(self, d_model: int, n_head: int, mlp_ratio: float = 4, dropout: float = 0.0,
                 norm: str = "layer", pre_norm: bool = True, causal: bool = False,
                 activation: Any = "gelu", bias: bool = True, norm_eps: float = 1e-5,
                 dtype: Any = None) -> None:
        super().__init__()
        if norm not in ("layer", "rms"):
            raise ValueError(f"TransformerBlock: norm must be 'layer' or 'rms', got {norm!r}")
        self.d_model = int(d_model)
        self.n_head = int(n_head)
        self.mlp_ratio = mlp_ratio
        self.norm = norm
        self.pre_norm = bool(pre_norm)
        self.causal = bool(causal)
        self.dropout = float(dropout)
        self.bias = bool(bias)
        self.norm_eps = float(norm_eps)
        # the name for config(); a callable or module given here has no config form
        self.activation = activation if isinstance(activation, str) else repr(activation)
        hidden = int(round(self.d_model * mlp_ratio))

        def make_norm() -> Module:
            if norm == "rms":
                return RMSNorm(self.d_model, eps=norm_eps, dtype=dtype)
            return LayerNorm(self.d_model, eps=norm_eps, dtype=dtype)

        self.norm1 = make_norm()
        self.attn = MultiheadAttention(self.d_model, self.n_head, dropout=dropout, bias=bias,
                                       dtype=dtype)
        self.norm2 = make_norm()
        act = get_activation(activation)
        if not isinstance(act, Module):
            act = Lambda(act)
        self.mlp = Sequential(Linear(self.d_model, hidden, bias=bias, dtype=dtype), act,
                              Linear(hidden, self.d_model, bias=bias, dtype=dtype))
        self.drop = Dropout(dropout)

    def forward(self, x: Any, attn_mask: Any = None, key_padding_mask: Any = None) -> Tensor:
        x = _tensor(x)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise self.shape_error(f"(B, T, {self.d_model})", x.shape)

        def attend(y: Tensor) -> Tensor:
            out, _ = self.attn(y, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                               need_weights=False, is_causal=self.causal)
            return self.drop(out) if self.dropout else out

        def mlp(y: Tensor) -> Tensor:
            out = self.mlp(y)
            return self.drop(out) if self.dropout else out

        if self.pre_norm:
            x = x + attend(self.norm1(x))
            return x + mlp(self.norm2(x))
        x = self.norm1(x + attend(x))
        return self.norm2(x + mlp(x))

    def describe(self) -> str:
        return f"TransformerBlock {self.d_model}/{self.n_head}"

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, n_head={self.n_head}, mlp_ratio={self.mlp_ratio}, "
                f"norm={self.norm!r}, pre_norm={self.pre_norm}, causal={self.causal}")


class TransformerEncoderLayer(TransformerBlock):
    """:class:`TransformerBlock` with ``torch.nn.TransformerEncoderLayer``'s arguments:
    ``(d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
    layer_norm_eps=1e-5, batch_first=True, norm_first=False, bias=True)``.

    Only ``batch_first=True`` is supported; ``layer(src, src_mask=None,
    src_key_padding_mask=None, is_causal=False)``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0)
        >>> layer(ember.zeros(3, 4, 16)).shape
        (3, 4, 16)
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: Any = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = True, norm_first: bool = False, bias: bool = True,
                 dtype: Any = None) -> None:
        if not batch_first:
            raise ValueError("TransformerEncoderLayer: only batch_first=True is supported; "
                             "pass (B, T, d_model) inputs (x.swapaxes(0, 1))")
        super().__init__(d_model, nhead, mlp_ratio=dim_feedforward / d_model, dropout=dropout,
                         pre_norm=norm_first, activation=activation, bias=bias,
                         norm_eps=layer_norm_eps, dtype=dtype)

    def forward(self, src: Any, src_mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool = False) -> Tensor:
        causal, self.causal = self.causal, bool(is_causal) or self.causal
        try:
            return super().forward(src, attn_mask=src_mask, key_padding_mask=src_key_padding_mask)
        finally:
            self.causal = causal
