"""Fused recurrences: the time loop of an RNN, LSTM or GRU layer as one Function each.

A time loop written with ember's ops records ~12 nodes per step (about 800 for 64 steps, plus as
many in backward); each of these Functions records one. Its forward runs the recurrence on raw
arrays and keeps the gate activations; its backward runs the reverse recurrence by hand (the
gate derivatives of PyTorch's equations, below) and forms the weight gradient with one matmul
over all steps. The input projection ``x @ W_ih.T + b`` is done before, with ordinary ops, for
all steps at once.

The loop is a Python loop over steps (NumPy; eager JAX; unrolled inside ``ember.jit``) or
``backend.scan`` (``lax.scan`` inside ``ember.jit``); :data:`SCAN` chooses (see bench/layers.py:
on CPU the unrolled loop compiles to the faster program at the sizes measured there, so it is
the default).

These are internal ops of ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (not registered as ``ember.*``);
tests/test_nn_recurrent.py gradchecks each in float64 on both backends.

Example:
    >>> import ember
    >>> from ember.ops.recurrent import RNNScan
    >>> xw, h0, w = ember.zeros(3, 2, 4), ember.zeros(2, 4), ember.zeros(4, 4)
    >>> RNNScan.apply(xw, h0, w, nonlinearity="tanh", reverse=False).shape
    (3, 2, 4)
"""

from __future__ import annotations

from typing import Any

from ember import backend
from ember.function import Function

__all__ = ["RNNScan", "LSTMScan", "GRUScan", "SCAN"]

#: "unrolled": a Python loop over the steps everywhere; "scan": ``backend.scan`` when the arrays
#: are traced by ``ember.jit`` (a Python loop otherwise: eager calls have nothing to compile)
SCAN = "unrolled"


def _loop(body: Any, carry: Any, xs: tuple[Any, ...], reverse: bool = False) -> tuple[Any, Any]:
    """``lax.scan``'s contract over the leading axis of each array in ``xs``; ``reverse`` walks
    the steps from last to first and returns the ``ys`` in the original order."""
    bk = backend.get()
    if SCAN == "scan" and backend.is_traced(xs[0]):
        if reverse:
            carry, ys = bk.scan(body, carry, tuple(x[::-1] for x in xs))
            return carry, tuple(y[::-1] for y in ys)
        return bk.scan(body, carry, xs)
    n = xs[0].shape[0]
    steps = range(n - 1, -1, -1) if reverse else range(n)
    out: list[Any] = [None] * n
    for t in steps:
        carry, out[t] = body(carry, tuple(x[t] for x in xs))
    xp = bk.xp
    return carry, tuple(xp.stack(col) for col in zip(*out))


def _sigmoid(xp: Any, a: Any) -> Any:
    return 0.5 * xp.tanh(0.5 * a) + 0.5  # stable for large |a|, one transcendental


def _flip(a: Any, reverse: bool) -> Any:
    return a[::-1] if reverse else a


def _prev(h0: Any, hs: Any) -> Any:
    """The state before each step, in processing order: ``h0, h_0, ..., h_{T-2}``."""
    return backend.get().xp.concatenate([h0[None], hs[:-1]], axis=0)


def _weight_grad(da: Any, hprev: Any) -> Any:
    """``sum_t da_t.T @ hprev_t`` as one matmul over all steps and the batch."""
    g = da.shape[-1]
    return da.reshape(-1, g).T @ hprev.reshape(-1, hprev.shape[-1])


class RNNScan(Function):
    """``h_t = act(xw_t + h_{t-1} @ w.T)`` over the steps of ``xw`` (T, B, H); returns all h_t.

    ``xw`` holds the input projection with both biases; ``nonlinearity`` is "tanh" or "relu".
    """

    def forward(ctx, xw, h0, w, nonlinearity="tanh", reverse=False):
        xp = backend.get().xp
        wt = w.T
        relu = nonlinearity == "relu"

        def step(h: Any, x: Any) -> tuple[Any, Any]:
            a = x[0] + h @ wt
            h = xp.maximum(a, 0) if relu else xp.tanh(a)
            return h, (h,)

        _, (hs,) = _loop(step, h0, (xw,), reverse)
        ctx.save_for_backward(hs, h0, w)
        ctx.relu, ctx.reverse = relu, reverse
        return hs

    def backward(ctx, g):
        hs, h0, w = ctx.saved_tensors
        relu, reverse = ctx.relu, ctx.reverse
        hprev = _prev(h0, _flip(hs, reverse)) if ctx.needs_input_grad[2] else None

        def step(dh: Any, x: Any) -> tuple[Any, Any]:
            gt, ht = x
            da = (gt + dh) * ((ht > 0) if relu else (1 - ht * ht))
            return da @ w, (da,)

        dh0, (da,) = _loop(step, h0 * 0, (g, hs), not reverse)
        dw = _weight_grad(_flip(da, reverse), hprev) if hprev is not None else None
        return da, dh0, dw



class LSTMScan(Function):
    """PyTorch's LSTM recurrence over ``xw`` (T, B, 4H), gates in the order i, f, g, o:
    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)`` with ``[i, f, g, o] = [s, s, tanh,
    s](xw_t + h_{t-1} @ w.T)``. Returns ``h_t`` and ``c_t`` side by side: (T, B, 2H).
    """

    def forward(ctx, xw, h0, c0, w, reverse=False):
        xp = backend.get().xp
        wt = w.T
        n = h0.shape[-1]

        def step(carry: Any, x: Any) -> tuple[Any, Any]:
            h, c = carry
            a = x[0] + h @ wt
            s = _sigmoid(xp, a)
            tg = xp.tanh(a[:, 2 * n:3 * n])
            c = s[:, n:2 * n] * c + s[:, :n] * tg
            tc = xp.tanh(c)
            h = s[:, 3 * n:] * tc
            return (h, c), (h, c, s, tg, tc)

        _, (hs, cs, s, tg, tc) = _loop(step, (h0, c0), (xw,), reverse)
        ctx.save_for_backward(hs, cs, s, tg, tc, h0, c0, w)
        ctx.reverse = reverse
        return xp.concatenate([hs, cs], axis=-1)

    def backward(ctx, g):
        hs, cs, s, tg, tc, h0, c0, w = ctx.saved_tensors
        reverse = ctx.reverse
        xp = backend.get().xp
        n = h0.shape[-1]
        cprev = _flip(_prev(c0, _flip(cs, reverse)), reverse)

        def step(carry: Any, x: Any) -> tuple[Any, Any]:
            dh, dc = carry
            gt, st, tgt, tct, cp = x
            i, f, o = st[:, :n], st[:, n:2 * n], st[:, 3 * n:]
            dh = gt[:, :n] + dh
            dc = gt[:, n:] + dc + dh * o * (1 - tct * tct)
            da = xp.concatenate([dc * tgt * i * (1 - i), dc * cp * f * (1 - f),
                                 dc * i * (1 - tgt * tgt), dh * tct * o * (1 - o)], axis=-1)
            return (da @ w, dc * f), (da,)

        (dh0, dc0), (da,) = _loop(step, (h0 * 0, c0 * 0), (g, s, tg, tc, cprev), not reverse)
        dw = None
        if ctx.needs_input_grad[3]:
            dw = _weight_grad(_flip(da, reverse), _prev(h0, _flip(hs, reverse)))
        return da, dh0, dc0, dw


class GRUScan(Function):
    """PyTorch's GRU recurrence over ``xw`` (T, B, 3H) (input projection with ``b_ih``), gates
    r, z, n: ``gh = h_{t-1} @ w.T + b``, ``[r, z] = s(xw_t[:2H] + gh[:2H])``,
    ``n = tanh(xw_t[2H:] + r * gh[2H:])``, ``h_t = (1 - z) * n + z * h_{t-1}``. Returns all h_t.
    """

    def forward(ctx, xw, h0, w, b=None, reverse=False):
        xp = backend.get().xp
        wt = w.T
        n = h0.shape[-1]

        def step(h: Any, x: Any) -> tuple[Any, Any]:
            gh = h @ wt
            if b is not None:
                gh = gh + b
            rz = _sigmoid(xp, x[0][:, :2 * n] + gh[:, :2 * n])
            ghn = gh[:, 2 * n:]
            nt = xp.tanh(x[0][:, 2 * n:] + rz[:, :n] * ghn)
            h = nt + rz[:, n:] * (h - nt)
            return h, (h, rz, nt, ghn)

        _, (hs, rz, nt, ghn) = _loop(step, h0, (xw,), reverse)
        ctx.save_for_backward(hs, rz, nt, ghn, h0, w)
        ctx.reverse = reverse
        return hs

    def backward(ctx, g):
        hs, rz, nt, ghn, h0, w = ctx.saved_tensors
        reverse = ctx.reverse
        xp = backend.get().xp
        n = h0.shape[-1]
        hprev = _flip(_prev(h0, _flip(hs, reverse)), reverse)

        def step(dh: Any, x: Any) -> tuple[Any, Any]:
            gt, rzt, ntt, ghnt, hp = x
            r, z = rzt[:, :n], rzt[:, n:]
            dh = gt + dh
            dan = dh * (1 - z) * (1 - ntt * ntt)
            dar = dan * ghnt * r * (1 - r)
            daz = dh * (hp - ntt) * z * (1 - z)
            dgh = xp.concatenate([dar, daz, dan * r], axis=-1)
            return dh * z + dgh @ w, (xp.concatenate([dar, daz, dan], axis=-1), dgh)

        dh0, (dgi, dgh) = _loop(step, h0 * 0, (g, rz, nt, ghn, hprev), not reverse)
        dw = db = None
        if ctx.needs_input_grad[2]:
            dw = _weight_grad(dgh, hprev)
        if len(ctx.needs_input_grad) > 3 and ctx.needs_input_grad[3]:
            db = dgh.sum(axis=(0, 1))
        return dgi, dh0, dw, db
