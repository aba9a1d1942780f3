"""One CNN epoch with one CPU thread against several: when does ``--threads 1`` win?

Workload: ``ember train --preset mnist-cnn --epochs 1`` (the shipped 4,000-image MNIST subset,
the preset's CNN), each run a fresh process so that the thread setting reaches BLAS and XLA
alike (``EMBER_NUM_THREADS``). The thread counts alternate run by run for ``--rounds`` rounds
(these machines are shared and noisy); the table shows the median epoch time per count and its
ratio to one thread, and the machine's load average before and after, which says how busy the
machine was.

Run it with ``python bench/threads.py`` (a minute or two); ``--backend jax`` for XLA;
``--threads 1 2 4`` for other counts; ``--quick`` is a smoke test (one round, 500 images).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def epoch_seconds(threads: int, backend: str, limit: int | None) -> float:
    """The epoch time that ``ember train`` prints, in a fresh process with ``threads``."""
    env = dict(os.environ, EMBER_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    with tempfile.TemporaryDirectory() as runs:
        cmd = [sys.executable, "-m", "ember", "train", "--preset", "mnist-cnn", "--epochs", "1",
               "--no-plots", "--verbose", "0", "--runs-dir", runs, "--backend", backend]
        if limit is not None:
            cmd += ["--set", f"data.limit={limit}"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    match = re.search(r"trained 1 epochs in ([0-9.]+)s", out.stdout)
    if match is None:
        raise RuntimeError(f"no epoch time in the output of {' '.join(cmd)}:\n{out.stdout}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["numpy", "jax"], default="numpy")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, limit = (1, 500) if args.quick else (args.rounds, None)
    load_before = os.getloadavg()
    times: dict[int, list[float]] = {n: [] for n in args.threads}
    for r in range(rounds):
        order = args.threads if r % 2 == 0 else args.threads[::-1]
        for n in order:
            times[n].append(epoch_seconds(n, args.backend, limit))
    load_after = os.getloadavg()
    print(f"mnist-cnn, one epoch ({limit or 4000} images), {args.backend}, {os.cpu_count()} "
          f"CPUs, {rounds} rounds; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after")
    base = statistics.median(times[args.threads[0]])
    print(f"{'threads':>8} {'median s':>9} {'runs (s)':<30} {'vs ' + str(args.threads[0]):>6}")
    for n, ts in times.items():
        med = statistics.median(ts)
        runs = ", ".join(f"{t:.1f}" for t in ts)
        print(f"{n:>8} {med:>9.2f} {runs:<30} {med / base:>5.2f}x")


if __name__ == "__main__":
    main()
