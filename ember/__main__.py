"""``python -m ember``: train a tiny two-layer network with ember's autograd and print the loss.

The problem is two noisy concentric rings (inner ring class 0, outer ring class 1) that no linear
model separates; a 2-16-2 tanh network learns it with plain gradient descent in a second or two.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import ember


def rings(n: int, noise: float = 0.1) -> tuple[ember.Tensor, ember.Tensor]:
    """``n`` points on two rings of radius 1 and 2 (half each), labelled 0 and 1."""
    angle = ember.rand(n) * (2 * math.pi)
    label = (ember.arange(n) >= n // 2).astype(ember.int64)
    radius = 1 + label.astype(ember.float32) + noise * ember.randn(n)
    x = ember.stack([radius * angle.cos(), radius * angle.sin()], axis=1)  # type: ignore[attr-defined]
    return x, label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ember", description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=["numpy", "jax"], default=None)
    args = parser.parse_args(argv)
    if args.backend:
        ember.set_backend(args.backend)
    ember.manual_seed(args.seed)

    x, y = rings(400)
    w1 = (ember.randn(2, args.hidden) * math.sqrt(1 / 2)).requires_grad_()
    b1 = ember.zeros(args.hidden, requires_grad=True)
    w2 = (ember.randn(args.hidden, 2) * math.sqrt(1 / args.hidden)).requires_grad_()
    b2 = ember.zeros(2, requires_grad=True)
    params = [w1, b1, w2, b2]
    rows = ember.arange(len(y))

    print(f"ember {ember.__version__} on {ember.get_backend()}: a 2-{args.hidden}-2 tanh network "
          f"on two rings ({len(y)} points), gradient descent, lr {args.lr}")
    start = time.perf_counter()
    for step in range(args.steps + 1):
        logits = (x @ w1 + b1).tanh() @ w2 + b2
        loss = -logits.log_softmax(axis=1)[rows, y].mean()
        for p in params:
            p.grad = None
        loss.backward()
        with ember.no_grad():
            for p in params:
                p.data = p.data - args.lr * p.grad.data  # type: ignore[union-attr]
        if step % (args.steps // 10 or 1) == 0:
            acc = (logits.argmax(axis=1) == y).astype(ember.float32).mean().item()
            print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {acc:.3f}")
    print(f"done in {time.perf_counter() - start:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
