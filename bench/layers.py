"""Time forward+backward (float32) of the sequence layers in ember (NumPy eager, JAX under
``ember.jit``) and PyTorch eager.

Workloads (``loss = out.sum()``; gradients of every parameter, and of the input where it is
floating point):

- attention: causal self-attention, ``nn.MultiheadAttention(128, 4)`` on (12, 64, 128),
  ``need_weights=False`` (torch: the same module with a causal mask, ``is_causal=True``);
- block: one ``nn.TransformerBlock(128, 4, causal=True)`` (pre-norm, GELU MLP of 512) on
  (12, 64, 128) (torch: ``TransformerEncoderLayer(128, 4, 512, dropout=0, activation="gelu",
  norm_first=True)`` with a causal mask);
- lstm: ``nn.LSTM(65, 256)`` over (32, 64, 65);
- embedding: ``nn.Embedding(65, 128)`` on (12, 64) indices.

Each implementation is warmed up and its iteration count calibrated so that one measurement lasts
about ``TARGET_S``; in each of ``--rounds`` rounds every implementation is measured once, in a
rotating order (the machines are shared and noisy). The table shows the median ms per step and,
per ember backend, the median of per-round speed ratios to PyTorch eager (>1: ember is faster).

Targets: ember-jax >= 1.5x PyTorch eager on each workload; ember-numpy >= 0.8x on attention and
the block.

``--overhead`` also prints what a recorded op costs on the NumPy backend (a tiny forward+backward
per op) and the number of graph nodes per workload, which is where ember-numpy's time goes on
small tensors. ``--scan`` times the LSTM under ``ember.jit`` with the time loop unrolled and with
``backend.scan`` (the choice in ``ember/ops/recurrent.py``).

Run it with ``python bench/layers.py`` (about a minute); ``--quick`` is a smoke test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Measure this checkout's ember, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ember  # noqa: E402
from ember import nn  # noqa: E402
from ember.ops import recurrent as _rec  # noqa: E402

try:
    import torch
except ImportError:  # optional: the comparison is skipped, ember never depends on torch
    torch = None

ROUNDS, TARGET_S = 7, 0.15
QUICK_ROUNDS, QUICK_TARGET_S = 2, 0.02
JAX_TARGET, NUMPY_TARGET = 1.5, 0.8
B, T, C, HEADS = 12, 64, 128, 4
LB, LT, LIN, LH = 32, 64, 65, 256
VOCAB = 65


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((B, T, C)).astype(np.float32),
            "seq": rng.standard_normal((LB, LT, LIN)).astype(np.float32),
            "idx": rng.integers(0, VOCAB, (B, T))}


def _ember_models() -> dict[str, tuple[nn.Module, str, Callable[..., Any]]]:
    """name -> (module, input key, forward that returns the output tensor)."""
    ember.manual_seed(0)
    return {
        "attention": (nn.MultiheadAttention(C, HEADS), "x",
                      lambda m, x: m(x, need_weights=False, is_causal=True)[0]),
        "block": (nn.TransformerBlock(C, HEADS, causal=True), "x", lambda m, x: m(x)),
        "lstm": (nn.LSTM(LIN, LH), "seq", lambda m, x: m(x)[0]),
        "embedding": (nn.Embedding(VOCAB, C), "idx", lambda m, x: m(x)),
    }


def ember_steps(backend: str, data: dict[str, np.ndarray]) -> dict[str, Callable[[], Any]]:
    ember.set_backend(backend)
    steps = {}
    for name, (model, key, fwd) in _ember_models().items():
        model.materialize()
        floating = data[key].dtype.kind == "f"

        def run(model: nn.Module, x: Any, fwd: Callable[..., Any] = fwd) -> Any:
            model.zero_grad()
            loss = fwd(model, x).sum()
            loss.backward()
            return loss

        if backend == "jax":
            compiled = ember.jit(run)
            x = ember.tensor(data[key])

            def step(model: nn.Module = model, x: Any = x, compiled: Any = compiled) -> Any:
                loss = compiled(model, x)
                loss.data.block_until_ready()
                return loss
        else:
            def step(model: nn.Module = model, key: str = key, floating: bool = floating,
                     run: Any = run) -> Any:
                x = ember.tensor(data[key], requires_grad=floating)
                return run(model, x)
        steps[name] = step
    return steps


def torch_steps(data: dict[str, np.ndarray]) -> dict[str, Callable[[], Any]]:
    torch.manual_seed(0)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T)
    mha = torch.nn.MultiheadAttention(C, HEADS, batch_first=True)
    block = torch.nn.TransformerEncoderLayer(C, HEADS, 4 * C, dropout=0.0, activation="gelu",
                                             batch_first=True, norm_first=True)
    lstm = torch.nn.LSTM(LIN, LH, batch_first=True)
    emb = torch.nn.Embedding(VOCAB, C)
    x_np, seq_np, idx = data["x"], data["seq"], torch.from_numpy(data["idx"])

    def make(module: Any, inp: np.ndarray | None, fwd: Callable[..., Any]) -> Callable[[], Any]:
        def step() -> Any:
            for p in module.parameters():
                p.grad = None
            x = idx if inp is None else torch.tensor(inp, requires_grad=True)
            loss = fwd(x).sum()
            loss.backward()
            return loss
        return step

    return {
        "attention": make(mha, x_np, lambda x: mha(x, x, x, attn_mask=mask, is_causal=True,
                                                   need_weights=False)[0]),
        "block": make(block, x_np, lambda x: block(x, src_mask=mask, is_causal=True)),
        "lstm": make(lstm, seq_np, lambda x: lstm(x)[0]),
        "embedding": make(emb, None, emb),
    }


def _time(step: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        step()
    return (time.perf_counter() - start) / number


def _calibrate(step: Callable[[], Any], target: float) -> int:
    for _ in range(2):
        step()
    once = _time(step, 1)
    return max(1, int(target / max(once, 1e-6)))


def measure(impls: dict[str, tuple[str | None, Callable[[], Any]]], rounds: int,
            target: float) -> dict[str, list[float]]:
    """name -> seconds per step, one per round; each impl runs with its backend active."""
    numbers = {}
    for name, (bk, step) in impls.items():
        if bk:
            ember.set_backend(bk)
        numbers[name] = _calibrate(step, target)
    out: dict[str, list[float]] = {name: [] for name in impls}
    names = list(impls)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            bk, step = impls[name]
            if bk:
                ember.set_backend(bk)
            time.sleep(0.05)  # let BLAS threads settle
            out[name].append(_time(step, numbers[name]))
    return out


def overhead(data: dict[str, np.ndarray]) -> None:
    """What one recorded op costs on NumPy, and how many ops each workload records."""
    ember.set_backend("numpy")
    a = ember.tensor(np.ones(4, np.float32), requires_grad=True)

    def tiny() -> None:
        (a * 2.0).sum().backward()

    n = _calibrate(tiny, 0.2)
    per = _time(tiny, n) / 2
    print(f"ember-numpy: one recorded op (forward+backward, 4 floats): {per * 1e6:.1f} us")
    for name, (model, key, fwd) in _ember_models().items():
        x = ember.tensor(data[key], requires_grad=data[key].dtype.kind == "f")
        out = fwd(model, x).sum()
        seen, stack, count = set(), [out], 0
        while stack:
            t = stack.pop()
            if id(t) in seen or t._ctx is None:
                continue
            seen.add(id(t))
            count += 1
            stack.extend(i for i in t._ctx.inputs if isinstance(i, ember.Tensor))
        print(f"  {name}: {count} recorded ops, ~{count * per * 1e3:.2f} ms of per-op overhead")


def scan_choice(data: dict[str, np.ndarray], rounds: int, target: float, steps: int) -> None:
    """The LSTM under ember.jit with the time loop unrolled and as backend.scan (the unrolled
    program takes minutes to compile at T=64: ``--scan-steps`` shortens the sequence)."""
    ember.set_backend("jax")
    data = dict(data, seq=data["seq"][:, :steps])
    impls = {}
    for mode in ("unrolled", "scan"):
        _rec.SCAN = mode
        fns = ember_steps("jax", data)
        impls[f"lstm {mode}"] = ("jax", fns["lstm"])
        start = time.perf_counter()
        fns["lstm"]()  # compile now, with this mode
        print(f"  lstm {mode} (T={steps}): compiled in {time.perf_counter() - start:.1f} s")
    _rec.SCAN = "scan"
    times = measure(impls, rounds, target)
    for name, ts in times.items():
        print(f"  {name}: {statistics.median(ts) * 1e3:.2f} ms/step (ember.jit, fwd+bwd)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--quick", action="store_true", help="a few seconds: a smoke test")
    parser.add_argument("--overhead", action="store_true", help="per-op cost on NumPy")
    parser.add_argument("--scan", action="store_true", help="unrolled loop vs backend.scan")
    parser.add_argument("--scan-steps", type=int, default=16, help="sequence length for --scan")
    parser.add_argument("--threads", type=int, default=0,
                        help="limit NumPy's BLAS and PyTorch to this many threads (a machine "
                             "shared with other jobs punishes spinning BLAS threads)")
    args = parser.parse_args()
    rounds, target = (QUICK_ROUNDS, QUICK_TARGET_S) if args.quick else (args.rounds, TARGET_S)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    data = _data()
    backends = [b for b in ("numpy", "jax") if b in ember.backend.available()]
    impls: dict[str, dict[str, tuple[str | None, Callable[[], Any]]]] = {}
    for bk in backends:
        for name, step in ember_steps(bk, data).items():
            impls.setdefault(name, {})[f"ember-{bk}"] = (bk, step)
    if torch is not None:
        for name, step in torch_steps(data).items():
            impls[name]["torch"] = (None, step)
    cols = [f"ember-{b}" for b in backends] + (["torch"] if torch is not None else [])
    print(f"forward+backward, float32, ms per step (median of {rounds} rounds"
          + (f", {args.threads} BLAS/torch threads)" if args.threads else ")")
          + ("" if torch is not None else "; PyTorch not installed: no ratios"))
    header = f"{'workload':<11}" + "".join(f"{c:>13}" for c in cols)
    if torch is not None:
        header += "".join(f"{'x torch ' + b[:2]:>14}" for b in backends)
    print(header)
    misses = []
    for name, group in impls.items():
        times = measure(group, rounds, target)
        row = f"{name:<11}" + "".join(f"{statistics.median(times[c]) * 1e3:>13.3f}"
                                      for c in cols)
        if torch is not None:
            for b in backends:
                ratio = statistics.median(t / e for t, e in zip(times["torch"],
                                                                  times[f"ember-{b}"]))
                row += f"{ratio:>13.2f}x"
                want = JAX_TARGET if b == "jax" else (
                    NUMPY_TARGET if name in ("attention", "block") else None)
                if want is not None and ratio < want:
                    misses.append(f"{name} ember-{b} {ratio:.2f}x < {want}x")
        print(row, flush=True)
    if torch is not None:
        print("targets: ember-jax >= 1.5x torch everywhere, ember-numpy >= 0.8x on attention "
              "and block: " + ("all met" if not misses else "missed: " + "; ".join(misses)))
    if args.overhead:
        overhead(data)
    if args.scan and "jax" in backends:
        scan_choice(data, rounds, target, args.scan_steps)


if __name__ == "__main__":
    main()
