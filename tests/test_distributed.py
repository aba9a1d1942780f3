"""Data parallelism: 4 devices equal 1, state stays replicated, batches are split, checkpoints move
between device counts, two processes train like one, and bad inputs say what is wrong.

This pytest process started JAX with one device, so the multi-device checks run in subprocesses
with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (tests/distributed/*.py); each prints
or writes what it measured and the tests below compare.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax  # the dev extras install jax: a missing one fails here, it never skips
import numpy as np
import pytest

import ember
from ember import distributed, nn, optim

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "distributed"


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu", EMBER_BACKEND="jax",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _tail(text: str, n: int = 4000) -> str:
    return text[-n:]


def _run_single_host(out: Path) -> dict:
    proc = subprocess.run([sys.executable, str(SCRIPTS / "single_host.py"), str(out)],
                          env=_env(4), capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": f"single_host.py failed (exit {proc.returncode}):\n"
                         f"{_tail(proc.stdout + proc.stderr)}"}
    result: dict = json.loads(lines[-1][len("RESULT "):])
    return result


@pytest.fixture(scope="module")
def single_host(tmp_path_factory):
    """What tests/distributed/single_host.py measured on 4 CPU devices: one run per test session,
    also under pytest-xdist (the first worker runs it, the others wait for its result file)."""
    out = tmp_path_factory.mktemp("single_host")
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        result = _run_single_host(out)
    else:
        shared = tmp_path_factory.getbasetemp().parent  # one folder per run, shared by workers
        done = shared / "ember-single-host.json"
        try:
            os.close(os.open(shared / "ember-single-host.lock", os.O_CREAT | os.O_EXCL))
        except FileExistsError:  # another worker runs it
            deadline = time.monotonic() + 400
            while not done.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            result = (json.loads(done.read_text()) if done.exists()
                      else {"error": "the worker running single_host.py gave no result"})
        else:
            result = _run_single_host(out)
            tmp = shared / "ember-single-host.json.tmp"
            tmp.write_text(json.dumps(result))
            tmp.replace(done)
    if "error" in result:
        pytest.fail(result["error"])
    return result


@pytest.fixture
def on_jax():
    ember.set_backend("jax")
    yield
    ember.set_backend("numpy")


# -- one host, 4 devices --------------------------------------------------------------------------

@pytest.mark.parametrize("workload", ["w1", "w2"])
def test_four_devices_train_like_one(single_host, workload):
    """20 steps of W1 (MLP, batch 128) and W2 (CNN, batch 64) on MNIST, float32: the per-step
    losses agree to 1e-6 and the parameters to 1e-5 (the sums of the gradient are split over the
    devices, so they are rounded in another order); the epoch's metrics agree too."""
    r = single_host[workload]
    assert r["steps"] == [20, 20]
    assert r["loss_diff"] <= 1e-6
    assert r["param_diff"] <= 1e-5
    one, four = r["history"]
    assert four["loss"] == pytest.approx(one["loss"], abs=1e-6)
    assert four["accuracy"] == one["accuracy"]
    assert r["traces"] == [1, 1]


@pytest.mark.parametrize("workload", ["w1", "w2"])
def test_state_replicated_batch_split(single_host, workload):
    r = single_host[workload]
    assert r["replicated"] and r["opt_replicated"]  # parameters, buffers, Adam's moments: P()
    assert r["batch_spec"] == ["data"] and r["batch_devices"] == 4
    assert single_host["all_reduce"]  # XLA sums W1's gradients over the devices


@pytest.mark.parametrize("workload", ["w1", "w2"])
def test_evaluate_and_predict_match(single_host, workload):
    r = single_host[workload]
    one, four = r["eval"]
    assert four["loss"] == pytest.approx(one["loss"], abs=1e-6)
    assert four["accuracy"] == one["accuracy"]
    assert r["pred_shape"] == [250, 10]  # 100 + 100 + a short batch of 50 rows, all kept
    assert r["pred_diff"] <= 1e-5


def test_steps_per_execution_with_devices(single_host):
    r = single_host["scan"]
    assert r["steps"] == 20 and r["loss_diff"] <= 1e-6 and r["param_diff"] <= 1e-5
    assert r["scan_traces"] == 2 and r["train_traces"] == 0  # chunks of 8 steps, then 4
    assert r["stack_spec"] == ["None", "data"]  # (steps, batch, ...) split on the batch axis


def test_short_last_batch_runs_replicated(single_host):
    """102 samples in batches of 16: the last 6 do not split over 4 devices; they run on every
    device whole, so no sample is dropped or counted twice and the result is the 1-device one."""
    r = single_host["short"]
    assert r["steps"] == [7, 7]
    assert r["loss_diff"] <= 1e-6 and r["param_diff"] <= 1e-6
    assert r["batches"] == {"100": [[16, ["data"]], [4, ["data"]]],  # 4 rows: one per device
                            "102": [[16, ["data"]], [6, []]]}  # 6 rows: every device, whole


def test_jit_mesh_loop_equals_the_unsharded_loop(single_host):
    """A hand-written loop under ember.jit(mesh=...) and under jax.set_mesh, in float64 (so the
    order of the sums does not show): equal to the unsharded loop to 1e-12."""
    r = single_host["jit"]
    assert r["dtype"] == "float64"
    assert r["loss_diff"] <= 1e-12 and r["param_diff"] <= 1e-12
    assert r["set_mesh_loss_diff"] <= 1e-12 and r["set_mesh_param_diff"] <= 1e-12
    assert r["traces"] == [1, 1]
    assert r["replicated"] and r["set_mesh_params_on_mesh"] == 4
    assert r["batch_spec"] == ["data"] and r["all_reduce"]


def test_checkpoint_from_four_devices_resumes_on_one_and_two(single_host):
    r = single_host["resume"]
    for devices in ("None", "2"):
        assert r[devices]["steps"] == 4  # the second epoch only
        assert r[devices]["history"][0] == r[devices]["full_history"][0]  # restored, not rerun
        assert r[devices]["history"][1] == pytest.approx(r[devices]["full_history"][1],
                                                         abs=1e-6)
        assert r[devices]["loss_diff"] <= 1e-6 and r[devices]["param_diff"] <= 1e-6
    assert r["1_vs_2_param_diff"] <= 1e-6


def test_bad_inputs_name_the_numbers(single_host):
    e = single_host["errors"]
    split = "batch_size 30 does not divide over 4 devices; use a multiple of 4"
    assert e["fit"] == f"ValueError: Trainer.fit: {split}"
    assert e["fit_loader"] == f"ValueError: Trainer.fit: {split}"
    assert e["evaluate"] == f"ValueError: Trainer.evaluate: {split}"
    assert e["predict"] == f"ValueError: Trainer.predict: {split}"
    assert e["dataloader"] == f"ValueError: DataLoader: {split}"
    assert e["shard_batch"] == ("ValueError: ember.distributed.shard_batch: a batch of 30 samples "
                                "does not divide over 4 devices; use a multiple of 4")
    assert e["too_many"] == ('ValueError: Trainer: devices=8 but there are only 4 cpu devices; '
                             'use devices="all" or at most 4')
    assert e["zero"] == "ValueError: Trainer: devices must be a positive number, got 0"
    assert e["name"] == ("ValueError: Trainer: devices must be 'all', a number, a list of JAX "
                         "devices or a jax.sharding.Mesh, got 'gpu'")
    assert e["empty"] == "ValueError: Trainer: devices is an empty list; give at least one device"
    assert e["twice"].startswith("ValueError: Trainer: devices lists a device twice: ")
    assert e["axis"] == ("ValueError: Trainer: the mesh has axes ('batch',) but no 'data' axis "
                         "to split batches along; name one axis 'data'")
    assert e["jit_false"] == "ValueError: Trainer: devices= runs compiled steps; drop jit=False"
    assert e["set_mesh_explicit"] == (
        "ValueError: ember.jit: the mesh set with jax.set_mesh has axis types ('Explicit',); "
        "ember needs Auto axes (its ops carry no out_sharding): make it with "
        "ember.distributed.make_mesh(...) or jax.make_mesh(..., "
        "axis_types=(jax.sharding.AxisType.Auto,) * 1), or pass ember.jit(fn, mesh=mesh) instead")
    assert single_host["two_devices"] == 2 and single_host["given_mesh"]
    assert single_host["explicit_axes"] == [["Explicit"], ["Auto"]]


# -- in this process (one device) ----------------------------------------------------------------

def test_devices_on_numpy_says_it_needs_jax():
    ember.set_backend("numpy")
    needs = ("needs the JAX backend (the active one is 'numpy'); call ember.set_backend(\"jax\") "
             "or set EMBER_BACKEND=jax first")
    with pytest.raises(ValueError) as info:
        ember.Trainer(nn.Linear(2, 1), "mse", "sgd", devices="all")
    assert str(info.value) == f"Trainer: devices= {needs}"
    with pytest.raises(ValueError) as info:
        ember.data.DataLoader(np.zeros((4, 2)), batch_size=2, mesh="all")
    assert str(info.value) == f"DataLoader: mesh= {needs}"
    with pytest.raises(RuntimeError) as info:
        distributed.initialize("localhost:1", 2, 0)
    assert str(info.value) == f"ember.distributed.initialize {needs}"
    with pytest.raises(RuntimeError, match="ember.distributed.shard_batch needs the JAX"):
        distributed.shard_batch(np.zeros((4, 2)))
    assert (distributed.process_index(), distributed.process_count()) == (0, 1)


def test_more_devices_than_exist(on_jax):
    n = jax.device_count()
    platform = jax.devices()[0].platform
    with pytest.raises(ValueError) as info:
        ember.Trainer(nn.Linear(2, 1), "mse", "sgd", devices=n + 1)
    plural = "s" if n != 1 else ""
    assert str(info.value) == (f"Trainer: devices={n + 1} but there are only {n} {platform} "
                               f"device{plural}; use devices=\"all\" or at most {n}")


def test_default_devices_change_nothing(on_jax):
    """devices=None: no mesh anywhere, the single-device path of ember.jit."""
    model = nn.Linear(3, 2)
    t = ember.Trainer(model, "mse", optim.SGD(model.parameters(), lr=0.1))
    assert t.mesh is None and t.train_function.mesh is None
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)
    t.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert t.train_function.trace_count == 1
    assert len(model.weight.data.sharding.device_set) == 1
    assert t._train_loader.mesh is None


def test_one_device_mesh_equals_no_mesh(on_jax):
    """A mesh of this process's one device runs the mesh path (placement, shardings) and gives
    the plain results bit for bit."""
    x = np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    weights = []
    for devices in (None, 1):
        ember.manual_seed(1)
        model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))
        t = ember.Trainer(model, "cross_entropy", "adam", metrics=["accuracy"], devices=devices)
        h = t.fit(x, y, batch_size=8, epochs=2, verbose=0)
        weights.append(({k: np.asarray(v) for k, v in model.state_dict().items()}, h.history,
                        t.predict(x, batch_size=16).numpy()))
    (w0, h0, p0), (w1, h1, p1) = weights
    assert h0 == h1
    for k in w0:
        np.testing.assert_array_equal(w0[k], w1[k])
    np.testing.assert_array_equal(p0, p1)


# -- two processes --------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def _reference() -> dict[int, tuple]:
    """The one-process run the two processes must reproduce (on this process's one device):
    per epoch, the weights, batch losses, history, evaluate and predict after it."""
    x, y = ember.data.load_mnist(subset="5k")
    x, y = x[:512].reshape(-1, 784), y[:512]
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    t = ember.Trainer(model, "cross_entropy", optim.Adam(model.parameters(), 1e-3),
                      metrics=["accuracy"])
    losses: list[float] = []
    after: dict[int, tuple] = {}

    def epoch_end(epoch, logs):
        history = {k: [*v, logs[k]] for k, v in t.history.history.items()}
        history = history or {k: [v] for k, v in logs.items()}
        after[epoch + 1] = ({k: np.asarray(v) for k, v in model.state_dict().items()},
                            list(losses[-4:]), history,
                            t.evaluate(x[:256], y[:256], batch_size=64),
                            t.predict(x[:8], batch_size=8).numpy()[0].tolist())

    cb = ember.callbacks.LambdaCallback(on_batch_end=lambda b, logs: losses.append(logs["loss"]),
                                        on_epoch_end=epoch_end)
    t.fit(x, y, epochs=2, batch_size=128, verbose=0, callbacks=[cb])
    return after


def test_two_processes_train_like_one(tmp_path, on_jax):
    """Two processes on localhost (jax.distributed with JAX's CPU collectives, 2 devices each, a
    mesh of 4): each reads half of every batch; the parameters, losses and metrics equal a
    one-process run; only process 0 writes the checkpoint, the CSV log and progress lines; both
    resume from process 0's checkpoint."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(SCRIPTS / "multi_process.py"), str(pid), "2",
                               str(port), str(tmp_path)], env=_env(2), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for pid in (0, 1)]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=120)[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        rest = [p.communicate()[0] for p in procs]
        pytest.fail("the two-process run hung:\n" + "\n----\n".join(_tail(o) for o in rest))
    for pid, (p, text) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"process {pid} failed:\n{_tail(text)}"

    results = [json.loads((tmp_path / f"result-p{pid}.json").read_text()) for pid in (0, 1)]
    for pid, r in enumerate(results):
        assert (r["process_index"], r["process_count"]) == (pid, 2)
        assert (r["devices"], r["local_devices"]) == (4, 2)
    reference = _reference()
    for epochs, tag in ((1, "epoch1"), (2, "epoch2")):
        ref_w, ref_losses, ref_h, ref_eval, ref_pred = reference[epochs]
        for pid, r in enumerate(results):
            got = r[tag]
            assert got["mesh_size"] == 4 and got["replicated"]
            assert got["shard"] == [pid, 2] and got["local_rows"] == 64
            assert got["batch_shape"] == [128, 784] and got["batch_spec"] == ["data"]
            assert got["batch_local_shards"] == 2
            np.testing.assert_allclose(got["losses"], ref_losses, rtol=0, atol=1e-6)
            # metrics are computed on the global batch inside the step: global by construction
            assert got["history"]["loss"] == pytest.approx(ref_h["loss"], abs=1e-6)
            assert got["history"]["accuracy"] == ref_h["accuracy"]
            assert got["evaluate"]["loss"] == pytest.approx(ref_eval["loss"], abs=1e-6)
            assert got["evaluate"]["accuracy"] == ref_eval["accuracy"]
            np.testing.assert_allclose(got["predict_row0"], ref_pred, atol=1e-5)
            params = np.load(tmp_path / f"params-p{pid}-{tag}.npz")
            for k in ref_w:
                np.testing.assert_allclose(params[k], ref_w[k], rtol=0, atol=1e-5, err_msg=k)
    # only process 0 writes files and progress
    assert (tmp_path / "ckpt-p0" / "checkpoint.json").exists()
    assert not (tmp_path / "ckpt-p1").exists()
    assert (tmp_path / "log-p0.csv").exists() and not (tmp_path / "log-p1.csv").exists()
    assert "Epoch 1/1 - 4 steps" in outputs[0] and "Epoch 2/2 - 4 steps" in outputs[0]
    assert "Epoch" not in outputs[1]
