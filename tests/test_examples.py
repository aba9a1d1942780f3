"""The examples and the training benchmark run end to end (tiny settings, in subprocesses)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("EMBER_BACKEND", None)
    done = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, f"{script} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def accuracies(out: str) -> list[float]:
    return [float(v) for v in re.findall(r"test accuracy (\d+(?:\.\d+)?)%", out)]


@pytest.mark.parametrize("script, backend", [
    ("examples/two_spirals.py", "numpy"),
    ("examples/mnist_mlp.py", "numpy"),
    ("examples/mnist_mlp.py", "jax"),
    ("examples/mnist_cnn.py", "numpy"),
])
def test_example_runs_and_reports_accuracy(script: str, backend: str) -> None:
    out = run(script, "--epochs", "1", "--limit", "512", "--backend", backend)
    found = accuracies(out)
    assert found, f"{script} printed no test accuracy:\n{out}"
    assert all(0.0 <= a <= 100.0 for a in found)
    assert "\r" not in out  # not a terminal: plain lines


def test_two_spirals_learns() -> None:
    # The full default run must separate the spirals (both the Trainer and train_one_step).
    out = run("examples/two_spirals.py", "--epochs", "40")
    trainer_acc, loop_acc = accuracies(out)
    assert trainer_acc >= 90.0, out


def test_bench_train_quick_smoke() -> None:
    out = run("bench/train.py", "--quick", "--workloads", "W3", "--limit", "256", "--rounds", "1")
    assert "first-batch loss" in out and "in every implementation" in out
    for name in ("ember-numpy", "ember-jax step", "ember-jax epoch"):
        assert re.search(rf"^{re.escape(name)}\s+[\d,]+\s", out, re.M), out
