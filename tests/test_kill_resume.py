"""SIGKILL at random moments, resume, and get the bit-identical result (NumPy backend).

One subprocess imports ember once and forks a worker per attempt: the first worker kills itself
in the middle of the very first checkpoint write (half the bytes of the array file written),
then each next worker resumes from the checkpoint folder and is killed by SIGKILL after a random
delay anywhere within the length of a whole run, and a last worker runs to the end. Its
weights, optimizer state and history must equal those of a run that was never stopped, bit for
bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

WORKER = r'''
import json, os, random, signal, sys, time
import numpy as np
import ember
from ember import nn, optim
from ember.train import checkpoint
from ember.train.callbacks import ModelCheckpoint

EPOCHS = 12


def train(folder, out):
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))
    trainer = ember.Trainer(model, nn.CrossEntropyLoss(),
                            optim.Adam(model.parameters(), lr=0.01))
    history = trainer.fit(x, y, epochs=EPOCHS, batch_size=16, shuffle=True, verbose=0,
                          callbacks=[ModelCheckpoint(folder, monitor="loss")],
                          resume_from=folder)
    arrays = {f"model/{k}": np.asarray(v.numpy() if hasattr(v, "numpy") else v)
              for k, v in model.state_dict().items()}
    arrays.update({f"optimizer/{k}": np.asarray(ember.backend.get().to_numpy(v))
                   for k, v in trainer.optimizer.state_dict().items()})
    np.savez(out, **arrays)
    with open(out + ".json", "w") as f:
        json.dump({"epoch": list(history.epoch), "loss": list(history.history["loss"])}, f)


def die_in_first_write():
    """Make this process SIGKILL itself halfway through its first array-file write."""
    real = checkpoint._write_all

    def half_then_die(fd, data):
        if len(data) > 64:
            real(fd, data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        real(fd, data)

    checkpoint._write_all = half_then_die


def run(folder, out, kill_after=None, die_first=False):
    pid = os.fork()
    if pid == 0:
        try:
            if die_first:
                die_in_first_write()
            train(folder, out)
        finally:
            os._exit(0)
    if kill_after is not None:
        time.sleep(kill_after)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


base, kills = sys.argv[1], int(sys.argv[2])
random.seed(int(sys.argv[3]))
start = time.perf_counter()
assert not run(os.path.join(base, "reference"), os.path.join(base, "reference.npz"))
full = time.perf_counter() - start
folder = os.path.join(base, "killed")
report = {"full_run_s": full, "killed": 0, "leftover_tmp_after_first": None, "delays": []}
report["killed"] += run(folder, os.path.join(base, "never.npz"), die_first=True)
report["leftover_tmp_after_first"] = sorted(os.listdir(folder))
for _ in range(4 * kills):
    if report["killed"] >= kills:
        break
    done = (checkpoint.read_checkpoint(folder)[1]["epoch"]
            if checkpoint.has_checkpoint(folder) else 0)
    delay = random.uniform(0.0, full * (EPOCHS - done) / EPOCHS)  # within what is left to run
    report["delays"].append(round(delay, 4))
    report["killed"] += run(folder, os.path.join(base, "never.npz"), kill_after=delay)
assert not run(folder, os.path.join(base, "resumed.npz"))
print(json.dumps(report))
'''


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL (POSIX)")
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    kills = 12
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMBER_BACKEND": "numpy"}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), str(kills), "20261203"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # the first worker died inside the first write: only its temp file was left behind
    left = report["leftover_tmp_after_first"]
    assert left and all(name.endswith(".tmp") for name in left), left
    # every attempt was a real SIGKILL, at moments spread over a whole run
    assert report["killed"] >= 10, report
    assert max(report["delays"]) > 0.3 * report["full_run_s"], report
    import numpy as np

    ref, got = np.load(tmp_path / "reference.npz"), np.load(tmp_path / "resumed.npz")
    assert sorted(ref.files) == sorted(got.files)
    for name in ref.files:
        assert ref[name].dtype == got[name].dtype, name
        assert np.array_equal(ref[name], got[name]), name  # bit-identical
    ref_h = json.loads((tmp_path / "reference.npz.json").read_text())
    got_h = json.loads((tmp_path / "resumed.npz.json").read_text())
    assert got_h == ref_h  # every epoch once, the same losses
    assert ref_h["epoch"] == list(range(12))
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "killed").iterdir())
    assert signal.SIGKILL  # POSIX only (skipped elsewhere)
