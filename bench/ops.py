"""Time one forward+backward of two workloads in ember, plain NumPy and PyTorch eager.

Workloads:

1. small expression: ``((a * b) + c).relu().sum()`` on 32x32 float32 tensors ``a``, ``b``, ``c``
   that all require grad. At this size the arithmetic is negligible, so this measures the
   framework's per-op overhead (graph recording, the backward engine). Reported in µs.
2. matmul chain: ``loss = (((x @ w1) @ w2) @ w3).sum()`` with ``x``, ``w1``, ``w2``, ``w3`` of
   shape 512x512 float32, all requiring grad: 3 matmuls forward, 6 backward (a gradient for
   every input). The weights are scaled by 1/sqrt(512) so activations stay O(1) through the
   chain. BLAS dominates here, so this measures whether the framework adds anything on top of
   it. Reported in ms.

Implementations, all measured in the same run:

- ember-numpy: ember with its NumPy backend; grads reset with ``p.grad = None`` each step.
- plain NumPy: the forward and its chain-rule backward written by hand on NumPy arrays, the same
  array operations a framework-free derivation gives (a seed of ones for ``sum``, two matmuls per
  product), with no algebraic shortcuts. It is the zero-overhead baseline.
- PyTorch eager (only when ``import torch`` works); default thread count, ``p.grad = None``.

Before timing, every implementation's loss and gradients are checked against the hand-written
NumPy ones. Timing is timeit-style: each implementation is warmed up and its iteration count
calibrated so that one measurement lasts about ``TARGET_S``; then in each of ``--rounds`` rounds
every implementation is measured once, in a different order each round (these machines are
shared and noisy, and a measurement can be slowed by the thread pools of the one before it). The
table shows the median over rounds (and the range); each target ratio is the median of the
per-round ratios, which cancels drift that affects neighbouring measurements alike.

Targets: ember-numpy no slower than PyTorch eager on the small expression (ratio <= 1.0) and
within 1.1x of plain NumPy on the matmul chain.

Run it with ``python bench/ops.py`` (about 20 s on 2 cores); ``--quick`` is a smoke test of a few
seconds, ``--rounds N`` sets the number of rounds. Multi-threaded BLAS is very sensitive to other
load on a shared machine; ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/ops.py`` gives
steadier (single-threaded) numbers for all three.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Measure this checkout's ember, installed or not (`python bench/ops.py` puts only bench/ on the
# path, and an installed copy could be older).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import ember  # noqa: E402

try:
    import torch
except ImportError:  # optional: the comparison is skipped, ember never depends on torch
    torch = None

SMALL_SHAPE = (32, 32)
CHAIN_N = 512
CHAIN_DEPTH = 3  # number of weight matrices: x @ w1 @ w2 @ w3
# Many short rounds rather than a few long ones: on a shared machine the load from other jobs
# comes and goes within seconds (multi-threaded BLAS then runs several times slower), so only
# measurements close in time can be compared, and the median of many per-round ratios shrugs off
# the rounds where the load changed in between.
ROUNDS = 12  # a multiple of 3! = 6: every order of the three implementations equally often
TARGET_S = 0.1  # seconds per measurement (one implementation, one round)
QUICK_ROUNDS = 3
QUICK_TARGET_S = 0.02
# Pause before each measurement: OpenBLAS worker threads busy-wait ~0.1 s after a NumPy matmul
# and PyTorch's OpenMP threads for a while after its ops, which on 2 cores slows whatever is
# measured next (a NumPy matmul chain measured right after PyTorch's ran ~40% slower).
SETTLE_S = 0.12
SMALL_TARGET = 1.0  # ember-numpy / PyTorch eager on the small expression
CHAIN_TARGET = 1.1  # ember-numpy / plain NumPy on the matmul chain

Arrays = dict[str, np.ndarray]


@dataclass
class Impl:
    """One implementation of one workload."""

    name: str
    step: Callable[[], Any]  # one forward+backward with fresh grads; returns the loss
    read: Callable[[Any], Arrays]  # the loss and the gradients after a step, as NumPy arrays
    number: int = 1  # iterations per measurement, set by calibrate()
    times: list[float] = field(default_factory=list)  # seconds per iteration, one per round


@dataclass
class Workload:
    name: str
    unit: str
    scale: float  # seconds -> unit
    impls: list[Impl]


# -- inputs ------------------------------------------------------------------------------------


def small_inputs(rng: np.random.Generator) -> Arrays:
    return {k: rng.standard_normal(SMALL_SHAPE, dtype=np.float32) for k in "abc"}


def chain_inputs(rng: np.random.Generator) -> Arrays:
    out = {"x": rng.standard_normal((CHAIN_N, CHAIN_N), dtype=np.float32)}
    scale = np.float32(1 / math.sqrt(CHAIN_N))  # keeps every activation O(1)
    for i in range(1, CHAIN_DEPTH + 1):
        out[f"w{i}"] = rng.standard_normal((CHAIN_N, CHAIN_N), dtype=np.float32) * scale
    return out


# -- ember -------------------------------------------------------------------------------------


def autograd_impl(name: str, arrays: Arrays, chain: bool, leaf: Callable[[np.ndarray], Any],
                  to_numpy: Callable[[Any], np.ndarray]) -> Impl:
    """The workload written once for any eager autograd with PyTorch's tensor API: ``leaf``
    makes a tensor that requires grad from an array, ``to_numpy`` reads a tensor back."""
    params = {k: leaf(v.copy()) for k, v in arrays.items()}
    leaves = tuple(params.values())

    if chain:
        x, *ws = leaves

        def step() -> Any:
            for p in leaves:
                p.grad = None
            h = x
            for w in ws:
                h = h @ w
            loss = h.sum()
            loss.backward()
            return loss

    else:
        a, b, c = leaves

        def step() -> Any:
            a.grad = b.grad = c.grad = None
            loss = ((a * b) + c).relu().sum()
            loss.backward()
            return loss

    def read(loss: Any) -> Arrays:
        out = {k: to_numpy(p.grad) for k, p in params.items()}
        out["loss"] = to_numpy(loss)
        return out

    return Impl(name, step, read)


def ember_impl(arrays: Arrays, chain: bool) -> Impl:
    return autograd_impl("ember-numpy", arrays, chain,
                         lambda a: ember.tensor(a, requires_grad=True), lambda t: t.numpy())


# -- plain NumPy, backward by hand ---------------------------------------------------------------


def numpy_impl(arrays: Arrays, chain: bool) -> Impl:
    names = tuple(arrays)
    grads: dict[str, np.ndarray] = {}

    if chain:
        x = arrays["x"]
        ws = [arrays[k] for k in names[1:]]

        def step() -> Any:
            hs = [x]  # the inputs of each matmul, kept for the backward
            for w in ws:
                hs.append(hs[-1] @ w)
            loss = hs[-1].sum()
            g = np.ones_like(hs[-1])  # d loss / d out
            for i in range(len(ws) - 1, -1, -1):
                grads[names[i + 1]] = hs[i].T @ g  # d/dw of h @ w
                g = g @ ws[i].T  # d/dh of h @ w
            grads["x"] = g
            return loss

    else:
        a, b, c = (arrays[k] for k in "abc")

        def step() -> Any:
            z = a * b + c
            loss = np.maximum(z, 0).sum()
            g_out = np.ones_like(z)  # d loss / d relu(z)
            g_z = g_out * (z > 0)  # relu: the gradient passes where z > 0
            grads["a"] = g_z * b
            grads["b"] = g_z * a
            grads["c"] = g_z
            return loss

    def read(loss: Any) -> Arrays:
        return {**grads, "loss": np.asarray(loss)}

    return Impl("plain NumPy (by hand)", step, read)


# -- PyTorch eager -----------------------------------------------------------------------------


def torch_impl(arrays: Arrays, chain: bool) -> Impl:
    assert torch is not None
    return autograd_impl("PyTorch eager", arrays, chain,
                         lambda a: torch.from_numpy(a).requires_grad_(),
                         lambda t: t.detach().numpy())


# -- checking and timing -----------------------------------------------------------------------


def check(work: Workload) -> None:
    """Assert that every implementation's loss and gradients equal the hand-written NumPy ones."""
    ref_impl = next(i for i in work.impls if i.name.startswith("plain NumPy"))
    ref = ref_impl.read(ref_impl.step())
    for impl in work.impls:
        if impl is ref_impl:
            continue
        for _ in range(2):  # twice: the second step must not accumulate into stale grads
            got = impl.read(impl.step())
        assert set(got) == set(ref), f"{impl.name}: got gradients for {sorted(got)}"
        for k, want in ref.items():
            # float32: different summation orders (BLAS blocking, pairwise sums) differ by a few
            # ulps of the largest magnitude involved, hence an atol scaled to the array.
            atol = 1e-5 * max(1.0, float(np.abs(want).max()))
            np.testing.assert_allclose(
                got[k], want, rtol=1e-4, atol=atol, err_msg=f"{work.name}: {impl.name}: {k}"
            )


def calibrate(impl: Impl, target_s: float, warmup: int, settle_s: float) -> None:
    """Warm up, then pick the iteration count that makes one measurement last ``target_s``."""
    timer = timeit.Timer(impl.step)
    time.sleep(settle_s)
    timer.timeit(warmup)  # first calls allocate, fill caches and start thread pools
    n = 1
    while True:  # like Timer.autorange, but aiming at a tenth of the target
        t = timer.timeit(n)
        if t >= target_s / 10 or n >= 1 << 20:
            break
        n *= 2
    impl.number = max(1, round(n * target_s / max(t, 1e-9)))


def run_rounds(works: list[Workload], rounds: int, settle_s: float) -> None:
    for r in range(rounds):
        for work in works:
            # Every permutation in turn, not a rotation: a rotation keeps who-follows-whom fixed,
            # and what ran just before (thread pools still spinning) can slow a measurement.
            orders = list(itertools.permutations(work.impls))
            for impl in orders[r % len(orders)]:
                time.sleep(settle_s)
                t = timeit.Timer(impl.step).timeit(impl.number)
                impl.times.append(t / impl.number)


def ratio(work: Workload, num: str, den: str) -> tuple[float, float, float] | None:
    """Median and quartiles over rounds of time(num) / time(den); None when one was not run."""
    by_name = {i.name: i for i in work.impls}
    if num not in by_name or den not in by_name:
        return None
    pairs = zip(by_name[num].times, by_name[den].times, strict=True)
    ratios = sorted(a / b for a, b in pairs)
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), q1, q3


def fmt_time(impl: Impl | None, scale: float) -> str:
    if impl is None:
        return "skipped"
    med = statistics.median(impl.times) * scale
    lo, hi = min(impl.times) * scale, max(impl.times) * scale
    return f"{med:8.2f} ({lo:.2f}-{hi:.2f})"


def report(works: list[Workload], rounds: int) -> None:
    names = ["ember-numpy", "plain NumPy (by hand)", "PyTorch eager"]
    heads = [f"{w.name} ({w.unit})" for w in works]
    print(f"\nmedian over {rounds} rounds (min-max), per forward+backward:")
    print(f"{'implementation':<24}" + "".join(f"{h:>28}" for h in heads))
    for name in names:
        cells = []
        for w in works:
            impl = next((i for i in w.impls if i.name == name), None)
            cells.append(f"{fmt_time(impl, w.scale):>28}")
        print(f"{name:<24}" + "".join(cells))

    small, chain = works
    print("\ntargets (median of per-round ratios [quartiles]):")
    rows = [
        ("small expr", small, "PyTorch eager", SMALL_TARGET),
        ("matmul", chain, "plain NumPy (by hand)", CHAIN_TARGET),
    ]
    for label, work, den, target in rows:
        r = ratio(work, "ember-numpy", den)
        head = f"  {label:<11} ember-numpy / {den:<22}"
        if r is None:
            print(f"{head} n/a               (target <= {target:.2f}: {den} not installed)")
            continue
        med, q1, q3 = r
        verdict = "met" if med <= target else "NOT met"
        print(f"{head} {med:.2f} [{q1:.2f}-{q3:.2f}]  (target <= {target:.2f}: {verdict})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"rounds of interleaved measurements (default {ROUNDS}, "
                             f"{QUICK_ROUNDS} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="short measurements: a smoke test that finishes in seconds")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (QUICK_ROUNDS if args.quick else ROUNDS)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    target_s = QUICK_TARGET_S if args.quick else TARGET_S

    ember.set_backend("numpy")  # explicit: EMBER_BACKEND=jax in the environment must not leak in
    rng = np.random.default_rng(0)
    builders: list[Callable[[Arrays, bool], Impl]] = [ember_impl, numpy_impl]
    torch_note = "not installed: skipped (install with: pip install torch==2.13.0)"
    if torch is not None:
        builders.append(torch_impl)
        torch_note = f"{torch.__version__}, {torch.get_num_threads()} threads"

    small, chain = small_inputs(rng), chain_inputs(rng)  # the same inputs for every impl
    works = [
        Workload("small expr", "µs", 1e6, [b(small, False) for b in builders]),
        Workload(f"matmul {CHAIN_N}x{CHAIN_N} x{CHAIN_DEPTH}", "ms", 1e3,
                 [b(chain, True) for b in builders]),
    ]
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs; PyTorch {torch_note}")

    for work in works:
        check(work)
    checked = ", ".join(i.name for i in works[0].impls if not i.name.startswith("plain"))
    print(f"loss and gradients equal the hand-written NumPy ones for: {checked}")

    for work in works:
        for impl in work.impls:
            calibrate(impl, target_s, warmup=1 if args.quick else 3, settle_s=SETTLE_S)
    run_rounds(works, rounds, SETTLE_S)
    report(works, rounds)


if __name__ == "__main__":
    sys.exit(main())
