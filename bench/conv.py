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

Then whole training steps of two CNNs (``--models W2,LeNet5``; ``--models ''`` skips them), float32,
batch 64 of 1x28x28 images, softmax cross-entropy, plain SGD (lr 0.01), the same initial weights and
batch for everyone:

- W2 (bench/train.py's CNN): conv(1->16, 3x3, pad 1)-ReLU-maxpool 2 - conv(16->32, 3x3, pad 1)-
  ReLU-maxpool 2 - flatten - dense(1568->10).
- LeNet5: conv(1->6, 5x5, pad 2)-ReLU-maxpool 2 - conv(6->16, 5x5)-ReLU-maxpool 2 - flatten -
  dense(400->120)-ReLU-dense(120->84)-ReLU-dense(84->10).

Implementations: ember-numpy (eager), ember-jax step (the same step under ``ember.jit``), PyTorch
eager (``torch.optim.SGD``; when torch imports) and JAX by hand (``jax.jit`` of
``jax.value_and_grad`` and an SGD update; ``lax.conv_general_dilated`` and ``reduce_window``). The
losses of the first step must agree to 1e-4 before timing. Each line gives samples/s, the ratio to
PyTorch eager from the same rounds and the fraction of the GEMM limit: the model's forward +
backward FLOPs per sample (counted from the layer shapes; the first layer needs no input gradient)
times samples/s over the float32 GEMM rate of this machine, measured in the same run with a
1024^3 NumPy matmul. Targets (issue 17): ember-numpy >= 1.2x and ember-jax step >= 1.2x PyTorch
eager on both.

Every framework gets the same number of CPU threads: one by default (``--threads N``; ``0`` leaves
each its own default), set for BLAS (NumPy), torch and XLA before they start. One thread is also
what a shared machine measures most steadily.

Run it with ``python bench/conv.py`` (about a minute); ``--quick`` is a smoke test of a few seconds.
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

# The same number of CPU threads for every framework (a fair comparison): 1 unless --threads
# says otherwise (0: each framework's own default). Set before NumPy, torch and XLA start their
# thread pools.
THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
if THREADS:
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = str(THREADS)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen="
                               + ("false" if THREADS == 1 else "true")
                               + f" intra_op_parallelism_threads={THREADS}")

import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

# Measure this checkout's ember, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ember  # noqa: E402
from ember import nn  # noqa: E402

try:
    import torch
except ImportError:  # optional: the comparison is skipped, ember never depends on torch
    torch = None
if torch is not None and THREADS:
    torch.set_num_threads(THREADS)

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

    def channels_last(xa: Any, wa: Any) -> Any:  # XLA's convolution on NHWC / HWIO
        y = lax.conv_general_dilated(xa.transpose(0, 2, 3, 1), wa.transpose(2, 3, 1, 0), (1, 1),
                                     ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y.transpose(0, 3, 1, 2)

    impls = []
    args = (jnp.asarray(x), jnp.asarray(w))
    for fn in (im2col_dot, channels_last):
        diff = float(jnp.abs(lax_conv(*args) - fn(*args)).max())
        assert diff < 1e-4, f"the {fn.__name__} kernel differs from lax.conv by {diff}"
    for name, fn in (("jax.jit lax.conv", lax_conv), ("jax.jit im2col+dot", im2col_dot),
                     ("jax.jit lax.conv NHWC", channels_last)):
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


# -- whole training steps of W2 and LeNet-5 ------------------------------------------------------

BATCH, LR = 64, 0.01
#: name -> layers: ("conv", in, out, kernel, padding) / ("pool",) / ("dense", in, out) / ("relu",)
MODELS: dict[str, list[tuple[Any, ...]]] = {
    "W2": [("conv", 1, 16, 3, 1), ("relu",), ("pool",), ("conv", 16, 32, 3, 1), ("relu",),
           ("pool",), ("dense", 1568, 10)],
    "LeNet5": [("conv", 1, 6, 5, 2), ("relu",), ("pool",), ("conv", 6, 16, 5, 0), ("relu",),
               ("pool",), ("dense", 400, 120), ("relu",), ("dense", 120, 84), ("relu",),
               ("dense", 84, 10)],
}


def flops_per_sample(layers: list[tuple[Any, ...]]) -> float:
    """Forward + backward multiply-adds x 2 of the convolutions and dense layers: the forward
    product, the weight gradient, and the input gradient for every layer but the first."""
    total, hw, first = 0.0, 28, True
    for layer in layers:
        if layer[0] == "conv":
            _, c, o, k, pad = layer
            hw = hw + 2 * pad - k + 1
            macs = o * c * k * k * hw * hw
        elif layer[0] == "dense":
            macs = layer[1] * layer[2]
        else:
            hw = hw // 2 if layer[0] == "pool" else hw
            continue
        total += 2 * macs * (2 if first else 3)
        first = False
    return total


def ember_cnn(layers: list[tuple[Any, ...]]) -> Any:
    mods: list[Any] = []
    for layer in layers:
        if layer[0] == "conv":
            mods.append(nn.Conv2D(layer[1], layer[2], layer[3], padding=layer[4]))
        elif layer[0] == "dense":
            if not any(isinstance(m, nn.Flatten) for m in mods):
                mods.append(nn.Flatten())
            mods.append(nn.Linear(layer[1], layer[2]))
        else:
            mods.append(nn.ReLU() if layer[0] == "relu" else nn.MaxPool2D(2))
    return nn.Sequential(*mods)


def ember_step_impl(name: str, layers: Any, init: Any, x: np.ndarray, y: np.ndarray,
                    backend_name: str) -> Impl:
    ember.set_backend(backend_name)
    model = ember_cnn(layers)
    model.load_state_dict(init)
    opt = ember.optim.SGD(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    tx, ty = ember.tensor(x), ember.tensor(y)

    def train_step(model: Any, opt: Any, xb: Any, yb: Any) -> Any:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    run = ember.jit(train_step) if backend_name == "jax" else train_step
    last: list[Any] = []

    def step() -> Any:
        ember.set_backend(backend_name)
        loss = run(model, opt, tx, ty)
        if backend_name == "jax":
            import jax

            jax.block_until_ready(loss.data)
        last[:] = [loss]
        return loss

    return Impl(name, step, lambda: {"loss": np.asarray(float(last[0].item()))})


def torch_step_impl(layers: Any, init: Any, x: np.ndarray, y: np.ndarray) -> Impl:
    assert torch is not None
    mods: list[Any] = []
    for layer in layers:
        if layer[0] == "conv":
            mods.append(torch.nn.Conv2d(layer[1], layer[2], layer[3], padding=layer[4]))
        elif layer[0] == "dense":
            if not any(isinstance(m, torch.nn.Flatten) for m in mods):
                mods.append(torch.nn.Flatten())
            mods.append(torch.nn.Linear(layer[1], layer[2]))
        else:
            mods.append(torch.nn.ReLU() if layer[0] == "relu" else torch.nn.MaxPool2d(2))
    model = torch.nn.Sequential(*mods)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in init.items()})
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    last: list[Any] = []

    def step() -> Any:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(tx), ty)
        loss.backward()
        opt.step()
        last[:] = [loss]
        return loss

    return Impl("PyTorch eager", step, lambda: {"loss": np.asarray(float(last[0].item()))})


def jax_step_impl(layers: Any, init: Any, x: np.ndarray, y: np.ndarray) -> Impl:
    import jax
    import jax.numpy as jnp
    from jax import lax

    names = list(init)

    def forward(params: list[Any], a: Any) -> Any:
        it = iter(params)
        for layer in layers:
            if layer[0] == "conv":
                w, b = next(it), next(it)
                a = lax.conv_general_dilated(a, w, (1, 1), [(layer[4], layer[4])] * 2,
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
                a = a + b[None, :, None, None]
            elif layer[0] == "dense":
                w, b = next(it), next(it)
                a = a.reshape(a.shape[0], -1) @ w.T + b
            elif layer[0] == "relu":
                a = jax.nn.relu(a)
            else:
                a = lax.reduce_window(a, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        return a

    def loss_fn(params: list[Any], a: Any, labels: Any) -> Any:
        logits = forward(params, a)
        logp = jax.nn.log_softmax(logits)
        return -jnp.take_along_axis(logp, labels[:, None], axis=1).mean()

    @jax.jit
    def train(params: list[Any], a: Any, labels: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, a, labels)
        return [p - LR * g for p, g in zip(params, grads)], loss

    state = [[jnp.asarray(init[k]) for k in names]]
    xa, ya = jnp.asarray(x), jnp.asarray(y.astype(np.int32))
    last: list[Any] = []

    def step() -> Any:
        state[0], loss = train(state[0], xa, ya)
        jax.block_until_ready(loss)
        last[:] = [loss]
        return loss

    return Impl("JAX by hand (jit)", step, lambda: {"loss": np.asarray(float(last[0]))})


def gemm_rate() -> float:
    """float32 FLOP/s of a 1024^3 NumPy matmul on this machine (the best of a few)."""
    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    a @ a
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        a @ a
        best = max(best, 2 * 1024**3 / (time.perf_counter() - t0))
    return best


def run_models(names: list[str], rounds: int, target_s: float) -> None:
    global N
    N = BATCH  # samples per step, for measure()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    for name in names:
        layers = MODELS[name]
        ember.set_backend("numpy")
        ember.manual_seed(0)
        init = {k: np.asarray(v) for k, v in ember_cnn(layers).state_dict().items()}
        impls = [ember_step_impl("ember-numpy", layers, init, x, y, "numpy"),
                 ember_step_impl("ember-jax step (jit)", layers, init, x, y, "jax"),
                 jax_step_impl(layers, init, x, y)]
        if torch is not None:
            impls.append(torch_step_impl(layers, init, x, y))
        first = [(impl.step(), float(impl.grads()["loss"]))[1] for impl in impls]
        if max(first) - min(first) > 1e-4 * max(1.0, abs(first[0])):
            raise SystemExit(f"{name}: first-step losses disagree: {first}")
        for impl in impls:
            calibrate(impl, target_s)
        gemm = []
        for r in range(rounds):
            for impl in impls[r % len(impls):] + impls[:r % len(impls)]:
                measure(impl)
            gemm.append(gemm_rate())
        limit, flops = statistics.median(gemm), flops_per_sample(layers)
        print(f"\n{name}: one SGD training step, batch {BATCH}, float32; {rounds} rounds; "
              f"{flops / 1e6:.2f} MFLOP/sample; GEMM limit {limit / 1e9:.0f} GFLOP/s = "
              f"{limit / flops:,.0f} samples/s; {THREADS or 'default'} thread(s) per framework; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'implementation':<24}{'samples/s':>12}{'range':>22}{'/ PyTorch':>11}"
              f"{'of limit':>10}")
        base = impls[-1] if torch is not None else None
        for impl in impls:
            rate = statistics.median(impl.rates)
            rel = "" if base is None else \
                f"{statistics.median(a / b for a, b in zip(impl.rates, base.rates)):.2f}x"
            rng_text = f"{min(impl.rates):,.0f} - {max(impl.rates):,.0f}"
            print(f"{impl.name:<24}{rate:>12,.0f}{rng_text:>22}{rel:>11}"
                  f"{rate * flops / limit:>10.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: a smoke test")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--models", default="W2,LeNet5",
                        help="comma-separated CNN training steps to time after the layer: "
                             "W2,LeNet5 ('' for none)")
    parser.add_argument("--skip-layer", action="store_true", help="only the CNN training steps")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for every framework (BLAS, torch, XLA's Eigen pool); "
                             "0: each framework's own choice (default: 1)")
    args = parser.parse_args()
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    target_s = QUICK_TARGET_S if args.quick else TARGET_S

    models = [m for m in args.models.split(",") if m]
    if args.skip_layer:
        run_models(models, rounds, target_s)
        return
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
          f"{os.cpu_count()} CPUs" + (f", torch {torch.__version__}" if torch else "")
          + f"; {THREADS or 'default'} thread(s) per framework; load average "
          f"{os.getloadavg()[0]:.1f}")
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
    lax_k, col_k, last_k = kernels
    print(f"JAX kernel under jax.jit: lax.conv / im2col+dot = "
          f"{per_round_ratio(lax_k, col_k):.2f}x, lax.conv / NHWC lax.conv = "
          f"{per_round_ratio(lax_k, last_k):.2f}x (ember's JAX backend uses lax.conv: whole "
          f"W2 and LeNet-5 steps under ember.jit were no faster with an im2col lowering)")
    run_models(models, rounds, target_s)


if __name__ == "__main__":
    main()
