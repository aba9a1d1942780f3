"""Time one forward+backward of a Conv2D layer in ember (NumPy and JAX), hand-written NumPy and
PyTorch eager.

Workload: Conv2D(16 -> 32, 3x3, padding 1, with bias) on a (64, 16, 14, 14) float32 batch;
``loss = conv(x).sum()``; gradients of the input, the weight and the bias. Reported in samples/s
(64 per step).

Implementations, all measured in the same run:

- ember-numpy: ``nn.Conv2D`` on the NumPy backend, eager; grads reset each step.
- ember-jax (jit): a function of arrays that wraps them in ember tensors, runs ``ember.conv2d``,
  ``sum`` and ``backward`` and returns the gradient arrays, compiled with ``jax.jit``.
- NumPy im2col (by hand): the same layer written directly on NumPy arrays in this file: an im2col
  over ``sliding_window_view``, one matmul forward, one matmul per gradient and a col2im loop
  over the 9 kernel offsets. The baseline that ember-numpy is held to.
- PyTorch eager (only when ``import torch`` works): ``torch.nn.Conv2d``, grads set to None.

The JAX kernel choice is measured too, outside ember: the same forward+backward under
``jax.jit`` with ``lax.conv_general_dilated`` and with an im2col + dot (ember's JAX backend uses
whichever is faster; the lines below the table say which that is on this machine).

Before timing, ember's gradients on both backends are checked against the hand-written ones.
Each implementation is warmed up and its iteration count calibrated so that one measurement lasts
about ``TARGET_S``; in each of ``--rounds`` rounds every implementation is measured once, in a
rotating order (these machines are shared and noisy). The table shows the median over rounds; each
ratio is the median of per-round ratios.

Targets: ember-numpy >= 0.9x the hand-written NumPy im2col; ember's faster backend >= 0.7x
PyTorch eager.

Run it with ``python bench/conv.py`` (about 30 s); ``--quick`` is a smoke test of a few seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Measure this checkout's ember, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ember  # noqa: E402
from ember import nn  # noqa: E402

try:
    import torch
except ImportError:  # optional: the comparison is skipped, ember never depends on torch
    torch = None

N, C_IN, C_OUT, H, W, K = 64, 16, 32, 14, 14, 3
ROUNDS = 15
TARGET_S = 0.1
QUICK_ROUNDS = 3
QUICK_TARGET_S = 0.02
SETTLE_S = 0.12  # OpenBLAS threads busy-wait ~0.1 s after a matmul: let them sleep first
NUMPY_TARGET = 0.9  # ember-numpy / hand-written NumPy im2col
TORCH_TARGET = 0.7  # ember's faster backend / PyTorch eager

Grads = dict[str, np.ndarray]


@dataclass
class Impl:
    name: str
    step: Callable[[], Any]  # one forward+backward; returns something to wait on
    grads: Callable[[], Grads]  # the gradients of the last step, as NumPy arrays
    number: int = 1
    rates: list[float] = field(default_factory=list)  # samples/s, one per round


# -- hand-written NumPy im2col ---------------------------------------------------------------------

def numpy_impl(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Impl:
    out: Grads = {}

    def step() -> Any:
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        win = sliding_window_view(xp, (kh, kw), axis=(2, 3))  # (N, C, H, W, KH, KW)
        cols = win.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * h * wd)
        y = (w.reshape(o, -1) @ cols).reshape(o, n, h, wd).transpose(1, 0, 2, 3)
        y = y + b[None, :, None, None]
        loss = y.sum()
        g = np.ones_like(y)  # d loss / d y
        g_t = g.transpose(1, 0, 2, 3).reshape(o, -1)
        out["b"] = g.sum(axis=(0, 2, 3))
        out["w"] = (g_t @ cols.T).reshape(w.shape)
        dcols = (w.reshape(o, -1).T @ g_t).reshape(c, kh, kw, n, h, wd)
        dxp = np.zeros((c, n, h + 2, wd + 2), x.dtype)
        for i in range(kh):  # col2im: one whole-array add per kernel offset
            for j in range(kw):
                dxp[:, :, i:i + h, j:j + wd] += dcols[:, i, j]
        out["x"] = dxp[:, :, 1:-1, 1:-1].transpose(1, 0, 2, 3)
        return loss

    return Impl("NumPy im2col (by hand)", step, lambda: dict(out))


# -- ember -----------------------------------------------------------------------------------------

def ember_numpy_impl(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Impl:
    ember.set_backend("numpy")
    conv = nn.Conv2D(C_IN, C_OUT, K, padding=1)
    conv.load_state_dict({"weight": w, "bias": b})
    tx = ember.tensor(x, requires_grad=True)

    def step() -> Any:
        ember.set_backend("numpy")
        tx.grad = None
        conv.zero_grad()
        loss = conv(tx).sum()
        loss.backward()
        return loss

    def grads() -> Grads:
        return {"x": tx.grad.numpy(), "w": conv.weight.grad.numpy(), "b": conv.bias.grad.numpy()}

    return Impl("ember-numpy", step, grads)


def ember_jax_impl(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Impl:
    import jax
    import jax.numpy as jnp

    ember.set_backend("jax")

    def train_grads(xa: Any, wa: Any, ba: Any) -> Any:
        tx, tw, tb = (ember.Tensor._make(a, True, None) for a in (xa, wa, ba))
        ember.conv2d(tx, tw, tb, padding=1).sum().backward()  # type: ignore[attr-defined]
        return tx.grad.data, tw.grad.data, tb.grad.data

    compiled = jax.jit(train_grads)
    args = [jnp.asarray(a) for a in (x, w, b)]
    last: list[Any] = []

    def step() -> Any:
        ember.set_backend("jax")  # traced (once) on the jax backend
        res = compiled(*args)
        jax.block_until_ready(res)
        last[:] = res
        return res

    def grads() -> Grads:
        return {k: np.asarray(v) for k, v in zip("xwb", last)}

    return Impl("ember-jax (jit)", step, grads)


def torch_impl(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Impl:
    assert torch is not None
    conv = torch.nn.Conv2d(C_IN, C_OUT, K, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w))
        conv.bias.copy_(torch.from_numpy(b))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)

    def step() -> Any:
        tx.grad = None
        conv.weight.grad = conv.bias.grad = None
        loss = conv(tx).sum()
        loss.backward()
        return loss

    def grads() -> Grads:
        return {"x": tx.grad.numpy(), "w": conv.weight.grad.numpy(),
                "b": conv.bias.grad.numpy()}

    return Impl("PyTorch eager", step, grads)


# -- the JAX kernel choice: lax.conv vs im2col + dot under jax.jit ---------------------------------

def jax_kernel_impls(x: np.ndarray, w: np.ndarray) -> list[Impl]:
    import jax
    import jax.numpy as jnp
    from jax import lax

    def lax_conv(xa: Any, wa: Any) -> Any:
        return lax.conv_general_dilated(xa, wa, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))

    def im2col_dot(xa: Any, wa: Any) -> Any:
        xp = jnp.pad(xa, ((0, 0), (0, 0), (1, 1), (1, 1)))
        cols = jnp.stack([xp[:, :, i:i + H, j:j + W] for i in range(K) for j in range(K)], 1)
        cols = cols.reshape(N, K * K, C_IN, H, W).transpose(2, 1, 0, 3, 4)
        y = wa.reshape(C_OUT, -1) @ cols.reshape(C_IN * K * K, -1)
        return y.reshape(C_OUT, N, H, W).transpose(1, 0, 2, 3)

    impls = []
    args = (jnp.asarray(x), jnp.asarray(w))
    diff = float(jnp.abs(lax_conv(*args) - im2col_dot(*args)).max())
    assert diff < 1e-4, f"the im2col+dot kernel differs from lax.conv by {diff}"
    for name, fn in (("jax.jit lax.conv", lax_conv), ("jax.jit im2col+dot", im2col_dot)):
        compiled = jax.jit(jax.grad(lambda a, b, f=fn: f(a, b).sum(), argnums=(0, 1)))

        def step(c: Any = compiled) -> Any:
            return jax.block_until_ready(c(*args))

        impls.append(Impl(name, step, lambda: {}))
    return impls


# -- timing ----------------------------------------------------------------------------------------

def calibrate(impl: Impl, target_s: float) -> None:
    impl.step()  # warm-up (compiles the jax ones)
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            impl.step()
        dt = time.perf_counter() - t0
        if dt >= target_s / 4 or n >= 1 << 16:
            impl.number = max(1, round(n * target_s / max(dt, 1e-9)))
            return
        n *= 2


def measure(impl: Impl) -> None:
    time.sleep(SETTLE_S)
    t0 = time.perf_counter()
    for _ in range(impl.number):
        impl.step()
    dt = (time.perf_counter() - t0) / impl.number
    impl.rates.append(N / dt)


def check(reference: Impl, others: list[Impl]) -> None:
    reference.step()
    want = reference.grads()
    for impl in others:
        impl.step()
        got = impl.grads()
        for k, v in want.items():
            scale = float(np.abs(v).max())
            err = float(np.abs(got[k] - v).max())
            if err > 1e-4 * max(scale, 1.0):
                raise SystemExit(f"{impl.name}: gradient of {k} differs from the hand-written "
                                 f"one by {err:.3g} (scale {scale:.3g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: a smoke test")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    target_s = QUICK_TARGET_S if args.quick else TARGET_S

    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C_IN, H, W), dtype=np.float32)
    bound = 1 / np.sqrt(C_IN * K * K)
    w = rng.uniform(-bound, bound, (C_OUT, C_IN, K, K)).astype(np.float32)
    b = rng.uniform(-bound, bound, C_OUT).astype(np.float32)

    hand = numpy_impl(x, w, b)
    impls = [hand, ember_numpy_impl(x, w, b), ember_jax_impl(x, w, b)]
    if torch is not None:
        impls.append(torch_impl(x, w, b))
    check(hand, impls[1:])
    kernels = jax_kernel_impls(x, w)
    everything = impls + kernels
    for impl in everything:
        calibrate(impl, target_s)
    for r in range(rounds):
        order = everything[r % len(everything):] + everything[:r % len(everything)]
        for impl in order:
            measure(impl)

    def per_round_ratio(a: Impl, c: Impl) -> float:
        return statistics.median(x / y for x, y in zip(a.rates, c.rates))

    print(f"Conv2D({C_IN}->{C_OUT}, {K}x{K}, padding 1) forward+backward on a "
          f"({N}, {C_IN}, {H}, {W}) float32 batch; {rounds} rounds")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs" + (f", torch {torch.__version__}" if torch else ""))
    print(f"{'implementation':<26}{'samples/s (median)':>20}{'range':>22}")
    for impl in everything:
        lo, hi = min(impl.rates), max(impl.rates)
        print(f"{impl.name:<26}{statistics.median(impl.rates):>20,.0f}"
              f"{f'{lo:,.0f} - {hi:,.0f}':>22}")
    ember_np, ember_jax = impls[1], impls[2]
    ratio = per_round_ratio(ember_np, hand)
    print(f"\nember-numpy / NumPy im2col by hand: {ratio:.2f}x (target >= {NUMPY_TARGET}x: "
          f"{'met' if ratio >= NUMPY_TARGET else 'NOT met'})")
    faster = max((ember_np, ember_jax), key=lambda i: statistics.median(i.rates))
    if torch is not None:
        ratio = per_round_ratio(faster, impls[3])
        print(f"{faster.name} (ember's faster backend) / PyTorch eager: {ratio:.2f}x "
              f"(target >= {TORCH_TARGET}x: {'met' if ratio >= TORCH_TARGET else 'NOT met'})")
    else:
        print("PyTorch is not installed: no comparison with PyTorch eager")
    lax_k, col_k = kernels
    print(f"JAX kernel under jax.jit: lax.conv / im2col+dot = "
          f"{per_round_ratio(lax_k, col_k):.2f}x (ember's JAX backend uses lax.conv)")


if __name__ == "__main__":
    main()
