"""Recurrent layers with PyTorch's equations, parameter names and layouts: RNN, LSTM, GRU and their
cells.

Parameters are ``weight_ih_l{k}`` (G*H, input), ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}`` and
``bias_hh_l{k}`` (G*H,) for layer ``k``, with a ``_reverse`` suffix for the backward direction of
a bidirectional layer; G is 1 (RNN), 4 (LSTM: gates i, f, g, o) or 3 (GRU: r, z, n). A PyTorch
``state_dict`` converted to arrays therefore loads unchanged. Every weight starts as
U(+-1/sqrt(hidden_size)), as in PyTorch.

Unlike PyTorch, ``batch_first`` defaults to True: inputs are (B, T, input_size), as everywhere
else in ember (pass ``batch_first=False`` for (T, B, input_size)). An input without a batch axis,
(T, input_size), is accepted too.

The layers run each direction of each layer as one fused op (:mod:`ember.ops.recurrent`); the
cells are written with ordinary ops, for custom loops.

Example:
    >>> import ember
    >>> from ember import nn
    >>> lstm = nn.LSTM(8, 16, num_layers=2)
    >>> out, (h, c) = lstm(ember.zeros(4, 10, 8))
    >>> out.shape, h.shape, c.shape
    ((4, 10, 16), (2, 4, 16), (2, 4, 16))
"""

from __future__ import annotations

from typing import Any

from ember import backend
from ember import random as _random
from ember.nn import init as _init
from ember.nn.module import Module, Parameter
from ember.nn.registry import REQUIRED
from ember.ops.dropout import dropout
from ember.ops.recurrent import GRUScan, LSTMScan, RNNScan
from ember.ops.shape import concatenate, stack
from ember.tensor import Tensor

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"]

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _zeros(shape: tuple[int, ...], dtype: Any) -> Tensor:
    return Tensor._make(backend.get().xp.zeros(shape, dtype), False, None)


def _check_nonlinearity(who: str, nonlinearity: str) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{who}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


# -- cells -----------------------------------------------------------------------------------------

class _Cell(Module):
    _mode = "rnn"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.bias = bool(bias)
        g = _GATES[self._mode] * self.hidden_size
        init = _init.bias_uniform(self.hidden_size)
        self.weight_ih = Parameter(shape=(g, self.input_size), init=init, dtype=dtype)
        self.weight_hh = Parameter(shape=(g, self.hidden_size), init=init, dtype=dtype)
        if bias:
            self.bias_ih = Parameter(shape=(g,), init=init, dtype=dtype)
            self.bias_hh = Parameter(shape=(g,), init=init, dtype=dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def _input(self, x: Any) -> tuple[Tensor, bool]:
        x = _tensor(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise self.shape_error(f"(B, {self.input_size}) or ({self.input_size},)", x.shape)
        return (x, False) if x.ndim == 2 else (x.reshape(1, -1), True)

    def _state(self, h: Any, x: Tensor, unbatched: bool, what: str) -> Tensor:
        shape = (x.shape[0], self.hidden_size)
        if h is None:
            return _zeros(shape, x.dtype)
        h = _tensor(h)
        if unbatched and h.shape == shape[1:]:
            return h.reshape(shape)
        if h.shape != shape:
            raise ValueError(f"{self.path()} ({self.describe()}): expected {what} of shape "
                             f"{shape if not unbatched else shape[1:]}, got {h.shape}")
        return h

    def _proj(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        gi = x @ self.weight_ih.T
        gh = h @ self.weight_hh.T
        if self.bias_ih is not None:
            gi = gi + self.bias_ih
            gh = gh + self.bias_hh
        return gi, gh

    def describe(self) -> str:
        return f"{type(self).__name__} {self.input_size}->{self.hidden_size}"

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class RNNCell(_Cell):
    """One step of an Elman RNN: ``h' = tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)``.

    Args:
        input_size: features of the input.
        hidden_size: features of the state.
        bias: whether to learn ``bias_ih`` and ``bias_hh``.
        nonlinearity: "tanh" or "relu".

    ``cell(x, h=None)`` takes x (B, input_size) or (input_size,) and returns h' (B, hidden_size);
    a missing ``h`` is zeros.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.RNNCell(3, 5)(ember.zeros(2, 3)).shape
        (2, 5)
    """

    config_name = "rnncell"
    config_fields = {"hidden_size": REQUIRED, "input_size": None, "bias": True,
                     "nonlinearity": "tanh"}
    config_infer = {"input_size": lambda s: s[-1]}

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, bias, dtype)
        self.nonlinearity = _check_nonlinearity("RNNCell", nonlinearity)

    def forward(self, x: Any, hx: Any = None) -> Tensor:
        x, unbatched = self._input(x)
        h = self._state(hx, x, unbatched, "hx")
        gi, gh = self._proj(x, h)
        a = gi + gh
        h = a.tanh() if self.nonlinearity == "tanh" else a.relu()
        return h.reshape(-1) if unbatched else h


class LSTMCell(_Cell):
    """One LSTM step with PyTorch's gates (i, f, g, o in the rows of the weights):
    ``c' = f * c + i * g``, ``h' = o * tanh(c')``.

    ``cell(x, (h, c)=None)`` returns ``(h', c')``; a missing state is zeros.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> h, c = nn.LSTMCell(3, 5)(ember.zeros(2, 3))
        >>> h.shape, c.shape
        ((2, 5), (2, 5))
    """

    config_name = "lstmcell"
    config_fields = {"hidden_size": REQUIRED, "input_size": None, "bias": True}
    config_infer = {"input_size": lambda s: s[-1]}

    _mode = "lstm"

    def forward(self, x: Any, hx: Any = None) -> tuple[Tensor, Tensor]:
        x, unbatched = self._input(x)
        h0, c0 = (None, None) if hx is None else hx
        h = self._state(h0, x, unbatched, "h")
        c = self._state(c0, x, unbatched, "c")
        gi, gh = self._proj(x, h)
        i, f, g, o = (gi + gh).split(4, axis=-1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        return (h.reshape(-1), c.reshape(-1)) if unbatched else (h, c)


class GRUCell(_Cell):
    """One GRU step with PyTorch's gates (r, z, n): ``n = tanh(x W_in + b_in + r * (h W_hn +
    b_hn))``, ``h' = (1 - z) * n + z * h``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> nn.GRUCell(3, 5)(ember.zeros(3)).shape
        (5,)
    """

    config_name = "grucell"
    config_fields = {"hidden_size": REQUIRED, "input_size": None, "bias": True}
    config_infer = {"input_size": lambda s: s[-1]}

    _mode = "gru"

    def forward(self, x: Any, hx: Any = None) -> Tensor:
        x, unbatched = self._input(x)
        h = self._state(hx, x, unbatched, "hx")
        gi, gh = self._proj(x, h)
        ir, iz, in_ = gi.split(3, axis=-1)
        hr, hz, hn = gh.split(3, axis=-1)
        r = (ir + hr).sigmoid()
        z = (iz + hz).sigmoid()
        n = (in_ + r * hn).tanh()
        h = n + z * (h - n)
        return h.reshape(-1) if unbatched else h


# -- layers ----------------------------------------------------------------------------------------

class _Recurrent(Module):
    _mode = "rnn"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        if self.input_size < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError(f"{name}: input_size, hidden_size and num_layers must be positive, "
                             f"got {input_size}, {hidden_size}, {num_layers}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{name}: dropout is a probability in [0, 1), got {dropout}")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        g = _GATES[self._mode] * self.hidden_size
        init = _init.bias_uniform(self.hidden_size)
        for k in range(self.num_layers):
            n_in = self.input_size if k == 0 else self.hidden_size * self.num_directions
            for sfx in self._suffixes():
                setattr(self, f"weight_ih_l{k}{sfx}",
                        Parameter(shape=(g, n_in), init=init, dtype=dtype))
                setattr(self, f"weight_hh_l{k}{sfx}",
                        Parameter(shape=(g, self.hidden_size), init=init, dtype=dtype))
                if bias:
                    setattr(self, f"bias_ih_l{k}{sfx}", Parameter(shape=(g,), init=init,
                                                                  dtype=dtype))
                    setattr(self, f"bias_hh_l{k}{sfx}", Parameter(shape=(g,), init=init,
                                                                  dtype=dtype))
        if self.dropout and self.num_layers > 1:
            # not persistent: a PyTorch state_dict has no such key
            self.register_buffer("dropout_key", _random.next_key(), persistent=False)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _input(self, x: Any) -> tuple[Tensor, bool]:
        x = _tensor(x)
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            lead = "B, T" if self.batch_first else "T, B"
            raise self.shape_error(f"({lead}, {self.input_size}) or (T, {self.input_size})",
                                   x.shape)
        if x.ndim == 2:
            return x.reshape(x.shape[0], 1, x.shape[1]), True
        return (x.swapaxes(0, 1) if self.batch_first else x), False

    def _initial(self, hx: Any, batch: int, unbatched: bool, dtype: Any, what: str) -> Tensor:
        n = self.num_layers * self.num_directions
        shape = (n, batch, self.hidden_size)
        if hx is None:
            return _zeros(shape, dtype)
        hx = _tensor(hx)
        if unbatched and hx.shape == (n, self.hidden_size):
            return hx.reshape(shape)
        if hx.shape != shape:
            want = (n, self.hidden_size) if unbatched else shape
            raise ValueError(f"{self.path()} ({self.describe()}): expected {what} of shape "
                             f"{want} (num_layers * num_directions, batch, hidden_size), got "
                             f"{hx.shape}")
        return hx

    def _drop(self, x: Tensor) -> Tensor:
        keys = backend.get().split(self.dropout_key.data, 2)
        self.dropout_key = keys[0]
        return dropout(x, self.dropout, keys[1])  # type: ignore[attr-defined, no-any-return]

    def _run(self, x: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """All layers over time-major ``x``; ``states`` holds each initial state tensor
        (L*D, B, H); returns the top layer's output and the final states, stacked like them."""
        finals: list[list[Tensor]] = [[] for _ in states]
        for k in range(self.num_layers):
            if k and self.dropout and self.training:
                x = self._drop(x)
            outs = []
            for d, sfx in enumerate(self._suffixes()):
                idx = k * self.num_directions + d
                w_ih = getattr(self, f"weight_ih_l{k}{sfx}")
                w_hh = getattr(self, f"weight_hh_l{k}{sfx}")
                b_ih = getattr(self, f"bias_ih_l{k}{sfx}", None) if self.bias else None
                b_hh = getattr(self, f"bias_hh_l{k}{sfx}", None) if self.bias else None
                out, last = self._direction(x, [s[idx] for s in states], w_ih, w_hh, b_ih, b_hh,
                                            reverse=d == 1)
                outs.append(out)
                for f, v in zip(finals, last):
                    f.append(v)
            x = outs[0] if len(outs) == 1 else concatenate(outs, axis=-1)
        return x, [stack(f, axis=0) for f in finals]

    def _direction(self, x: Tensor, h0: list[Tensor], w_ih: Tensor, w_hh: Tensor,
                   b_ih: Tensor | None, b_hh: Tensor | None, reverse: bool
                   ) -> tuple[Tensor, list[Tensor]]:
        raise NotImplementedError

    def forward(self, x: Any, hx: Any = None) -> tuple[Tensor, Any]:
        x, unbatched = self._input(x)
        if self._mode == "lstm":
            h0, c0 = (None, None) if hx is None else hx
            states = [self._initial(h0, x.shape[1], unbatched, x.dtype, "h_0"),
                      self._initial(c0, x.shape[1], unbatched, x.dtype, "c_0")]
        else:
            states = [self._initial(hx, x.shape[1], unbatched, x.dtype, "h_0")]
        out, finals = self._run(x, states)
        if unbatched:
            out = out.reshape(out.shape[0], out.shape[2])
            finals = [f.reshape(f.shape[0], f.shape[2]) for f in finals]
        elif self.batch_first:
            out = out.swapaxes(0, 1)
        if self._mode == "lstm":
            return out, (finals[0], finals[1])
        return out, finals[0]

    def describe(self) -> str:
        return f"{type(self).__name__} {self.input_size}->{self.hidden_size}"

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if not self.bias:
            parts.append("bias=False")
        if not self.batch_first:
            parts.append("batch_first=False")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        return ", ".join(parts)


def _project(x: Tensor, w: Tensor, *biases: Tensor | None) -> Tensor:
    out = x @ w.T
    for b in biases:
        if b is not None:
            out = out + b
    return out


class RNN(_Recurrent):
    """A multi-layer Elman RNN: ``h_t = tanh(x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh)``.

    Args:
        input_size: features of the input.
        hidden_size: features of the state.
        num_layers: stacked layers (each runs over the previous one's output).
        nonlinearity: "tanh" or "relu".
        bias: whether to learn biases.
        batch_first: True (ember's default): input (B, T, F); False: (T, B, F).
        dropout: dropout on the output of each layer but the last, in training.
        bidirectional: also run each layer from the last step to the first and concatenate.

    ``rnn(x, h_0=None)`` returns ``(output, h_n)``: output (B, T, D*H) from the top layer, h_n
    (num_layers*D, B, H) the last state of each layer and direction.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> out, h = nn.RNN(3, 4, bidirectional=True)(ember.zeros(2, 5, 3))
        >>> out.shape, h.shape
        ((2, 5, 8), (2, 2, 4))
    """

    config_name, config_aliases = "rnn", ("simplernn",)
    config_fields = {"hidden_size": REQUIRED, "input_size": None, "num_layers": 1, "bias": True,
                     "batch_first": True, "dropout": 0.0, "bidirectional": False,
                     "nonlinearity": "tanh"}
    config_infer = {"input_size": lambda s: s[-1]}

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = True,
                 dropout: float = 0.0, bidirectional: bool = False, dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype)
        self.nonlinearity = _check_nonlinearity("RNN", nonlinearity)

    def _direction(self, x, h0, w_ih, w_hh, b_ih, b_hh, reverse):  # type: ignore[no-untyped-def]
        hs = RNNScan.apply(_project(x, w_ih, b_ih, b_hh), h0[0], w_hh,
                           nonlinearity=self.nonlinearity, reverse=reverse)
        return hs, [hs[0 if reverse else -1]]

    def extra_repr(self) -> str:
        base = super().extra_repr()
        return base if self.nonlinearity == "tanh" else base + ", nonlinearity='relu'"


class LSTM(_Recurrent):
    """A multi-layer LSTM with PyTorch's gates (i, f, g, o): ``c_t = f * c_{t-1} + i * g``,
    ``h_t = o * tanh(c_t)``.

    Arguments as :class:`RNN` (without ``nonlinearity``). ``lstm(x, (h_0, c_0)=None)`` returns
    ``(output, (h_n, c_n))``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> out, (h, c) = nn.LSTM(3, 4)(ember.zeros(2, 5, 3))
        >>> out.shape, h.shape
        ((2, 5, 4), (1, 2, 4))
    """

    config_name = "lstm"
    config_fields = {"hidden_size": REQUIRED, "input_size": None, "num_layers": 1, "bias": True,
                     "batch_first": True, "dropout": 0.0, "bidirectional": False}
    config_infer = {"input_size": lambda s: s[-1]}

    _mode = "lstm"

    def _direction(self, x, h0, w_ih, w_hh, b_ih, b_hh, reverse):  # type: ignore[no-untyped-def]
        n = self.hidden_size
        hc = LSTMScan.apply(_project(x, w_ih, b_ih, b_hh), h0[0], h0[1], w_hh, reverse=reverse)
        last = hc[0 if reverse else -1]
        return hc[..., :n], [last[:, :n], last[:, n:]]


class GRU(_Recurrent):
    """A multi-layer GRU with PyTorch's gates (r, z, n): ``n = tanh(x W_in + b_in + r * (h W_hn
    + b_hn))``, ``h_t = (1 - z) * n + z * h_{t-1}``.

    Arguments as :class:`RNN` (without ``nonlinearity``). ``gru(x, h_0=None)`` returns
    ``(output, h_n)``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> out, h = nn.GRU(3, 4, num_layers=2)(ember.zeros(2, 5, 3))
        >>> out.shape, h.shape
        ((2, 5, 4), (2, 2, 4))
    """

    config_name = "gru"
    config_fields = {"hidden_size": REQUIRED, "input_size": None, "num_layers": 1, "bias": True,
                     "batch_first": True, "dropout": 0.0, "bidirectional": False}
    config_infer = {"input_size": lambda s: s[-1]}

    _mode = "gru"

    def _direction(self, x, h0, w_ih, w_hh, b_ih, b_hh, reverse):  # type: ignore[no-untyped-def]
        hs = GRUScan.apply(_project(x, w_ih, b_ih), h0[0], w_hh, b_hh, reverse=reverse)
        return hs, [hs[0 if reverse else -1]]
