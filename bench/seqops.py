"""Time forward+backward of the sequence ops in ember-numpy, ember-jax (``ember.jit``) and
PyTorch eager (when ``import torch`` works; never an ember dependency), float32.

Workloads (the sizes of issue 12's char-level GPT):

1. attention: causal ``scaled_dot_product_attention`` on (B=12, H=4, T=64, D=32) q, k, v; the
   gradient of all three.
2. embedding: ``embedding(idx, weight)`` of a (65, 128) table at 12x64 indices; the weight's
   gradient (a scatter-add).
3. cross-entropy: (12, 64, 65) logits with (12, 64) targets, ``ignore_index`` and
   ``label_smoothing=0.1``; the logits' gradient.

Each implementation is warmed up, then measured ``--rounds`` times in a rotating order (the
machine is shared and noisy); the table shows the median per step and each one's ratio to
PyTorch eager (above 1: faster than PyTorch). Run ``python bench/seqops.py`` (about a minute on 2
cores) or ``--quick``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ember  # noqa: E402
from ember import nn  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

RNG = np.random.default_rng(0)
QKV = [RNG.standard_normal((12, 4, 64, 32)).astype(np.float32) for _ in range(3)]
TABLE = RNG.standard_normal((65, 128)).astype(np.float32)
TOKENS = RNG.integers(0, 65, (12, 64))
LOGITS = RNG.standard_normal((12, 64, 65)).astype(np.float32)
TARGETS = np.where(RNG.random((12, 64)) < 0.1, -100, RNG.integers(0, 65, (12, 64)))


def ember_steps() -> dict[str, Callable[..., object]]:
    loss = nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=0.1)

    def attention(q, k, v):
        out = ember.scaled_dot_product_attention(q, k, v, is_causal=True)
        out.sum().backward()
        return q.grad, k.grad, v.grad

    def embedding(idx, w):
        ember.embedding(idx, w).sum().backward()
        return w.grad

    def cross_entropy(z, y):
        loss(z, y).backward()
        return z.grad

    return {"attention": attention, "embedding": embedding, "cross_entropy": cross_entropy}


def ember_inputs() -> dict[str, list]:
    def leaf(a):
        return ember.tensor(a, requires_grad=True)

    return {"attention": [leaf(a) for a in QKV],
            "embedding": [ember.tensor(TOKENS), leaf(TABLE)],
            "cross_entropy": [leaf(LOGITS), ember.tensor(TARGETS)]}


def runner(backend: str, name: str) -> Callable[[], object]:
    ember.set_backend(backend)
    step = ember_steps()[name]
    args = ember_inputs()[name]
    if backend == "jax":
        compiled = ember.jit(step)

        def run() -> object:
            ember.set_backend("jax")
            for a in args:
                a.grad = None
            out = compiled(*args)
            return [o.data.block_until_ready() for o in (out if isinstance(out, tuple) else
                                                         (out,))]
        return run

    def run() -> object:
        ember.set_backend("numpy")
        for a in args:
            a.grad = None
        return step(*args)
    return run


def torch_runner(name: str) -> Callable[[], object]:
    f = torch.nn.functional
    if name == "attention":
        qkv = [torch.tensor(a, requires_grad=True) for a in QKV]

        def run() -> object:
            for t in qkv:
                t.grad = None
            f.scaled_dot_product_attention(*qkv, is_causal=True).sum().backward()
            return qkv[0].grad
    elif name == "embedding":
        w, idx = torch.tensor(TABLE, requires_grad=True), torch.tensor(TOKENS)

        def run() -> object:
            w.grad = None
            f.embedding(idx, w).sum().backward()
            return w.grad
    else:
        z, y = torch.tensor(LOGITS, requires_grad=True), torch.tensor(TARGETS)

        def run() -> object:
            z.grad = None
            f.cross_entropy(z.permute(0, 2, 1), y, ignore_index=-100,
                            label_smoothing=0.1).backward()
            return z.grad
    return run


def measure(run: Callable[[], object], seconds: float) -> float:
    """Seconds per call, timing enough calls to last about ``seconds``."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 3:
        run()
        n += 1
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, seconds = (2, 0.05) if args.quick else (args.rounds, 0.3)
    print(f"ember {ember.__version__}, torch {torch.__version__ if torch else 'not installed'}; "
          f"median ms per forward+backward over {rounds} rounds (ratio: PyTorch time / time)")
    print(f"{'workload':<15}{'ember-numpy':>14}{'ember-jax':>14}{'torch eager':>14}"
          f"{'numpy ratio':>13}{'jax ratio':>11}")
    for name in ("attention", "embedding", "cross_entropy"):
        runs = {"ember-numpy": runner("numpy", name), "ember-jax": runner("jax", name)}
        if torch is not None:
            runs["torch"] = torch_runner(name)
        for run in runs.values():
            run()
            run()
        times: dict[str, list[float]] = {k: [] for k in runs}
        keys = list(runs)
        for r in range(rounds):
            for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                times[key].append(measure(runs[key], seconds))
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        tt = med.get("torch", float("nan"))
        print(f"{name:<15}{med['ember-numpy']:>14.3f}{med['ember-jax']:>14.3f}{tt:>14.3f}"
              f"{tt / med['ember-numpy']:>13.2f}{tt / med['ember-jax']:>11.2f}")
    ember.set_backend("numpy")


if __name__ == "__main__":
    main()
