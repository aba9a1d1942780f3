"""The ``ember`` command line, end to end in a temporary folder, as a new user would run it.

Most commands run in-process through ``ember.cli.main`` (fast); the console entry and Ctrl-C run
as real subprocesses (``python -m ember``).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ember
from ember import nn
from ember.cli import main
from ember.data import moons, two_spirals
from ember.train import read_checkpoint

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser under its old name
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ROOT / "ember" / "presets"
HAVE_PLOT = importlib.util.find_spec("matplotlib") is not None


def cli(capsys, *args):
    """Run ``ember ARGS`` in-process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_folder(out: str) -> Path:
    """The run folder that ``ember train`` printed last."""
    found = re.findall(r"^run folder: (\S+)$", out, flags=re.M)
    assert found, out
    return Path(found[-1])


def history_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def model_arrays(run: Path) -> dict[str, np.ndarray]:
    return read_checkpoint(run / "checkpoint")[0]["model"]


def preset(name: str) -> dict:
    return tomllib.loads((PRESETS / f"{name}.toml").read_text())


def env_without_backend() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMBER_BACKEND": "numpy"}
    return env


# -- train -----------------------------------------------------------------------------------------

def test_train_without_arguments_runs_the_spirals_preset(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "train")
    assert code == 0, err
    run = run_folder(out)
    assert run.parent == Path("runs") and run.name.startswith("spirals-")
    assert re.fullmatch(r"spirals-\d{8}-\d{6}", run.name)
    # every file of a run folder
    for name in ("config.json", "history.csv", "results.json", "checkpoint/checkpoint.json"):
        assert (run / name).is_file(), name
    if HAVE_PLOT:
        assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
        assert (run / "decision_boundary.png").read_bytes()[:4] == b"\x89PNG"
    else:
        assert '(install "ember[plot]" for the PNG plots)' in out
    # what ran is the preset, every default resolved
    spec = preset("spirals")
    cfg = json.loads((run / "config.json").read_text())
    for key in ("name", "model", "data", "loss", "optimizer", "metrics", "epochs", "batch_size",
                "seed"):
        assert cfg[key] == spec[key], key
    assert cfg["input_shape"] == [2] and cfg["backend"] == ember.get_backend()
    assert cfg["validation_split"] == 0.0 and cfg["callbacks"] == {}
    rows = history_rows(run)
    assert len(rows) == spec["epochs"] == 50
    assert [int(r["epoch"]) for r in rows] == list(range(50))
    assert read_checkpoint(run / "checkpoint")[1]["epoch"] == 50
    # progress lines, the final accuracies (as results.json holds them) and the next commands
    assert "Epoch 50/50" in out
    results = json.loads((run / "results.json").read_text())
    assert f"test (200 samples): loss: {results['test']['loss']:.4f} - accuracy: " \
           f"{results['test']['accuracy']:.4f}" in out
    assert f"train (800 samples): loss: {results['train']['loss']:.4f}" in out
    assert results["test"]["accuracy"] > 0.95 and results["train"]["accuracy"] > 0.95
    assert f"ember evaluate {run}" in out and f"ember train --resume {run}" in out


def test_config_json_round_trips(tmp_path, capsys):
    code, out, err = cli(capsys, "train", "--epochs", 2, "--runs-dir", tmp_path, "--no-plots",
                         "--set", "data.n=200", "--backend", "numpy")
    assert code == 0, err
    first = run_folder(out)
    code, out, err = cli(capsys, "train", first / "config.json", "--runs-dir", tmp_path,
                         "--no-plots")
    assert code == 0, err
    second = run_folder(out)
    assert second != first
    assert json.loads((second / "config.json").read_text()) == json.loads(
        (first / "config.json").read_text())
    a, b = model_arrays(first), model_arrays(second)  # the same run again, bit for bit
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_overrides_are_recorded_in_config_json(tmp_path, capsys):
    code, out, err = cli(capsys, "train", "--epochs", 1, "--lr", 0.5, "--batch-size", 8,
                         "--seed", 3, "--name", "ovr", "--runs-dir", tmp_path, "--no-plots",
                         "--set", "data.n=100", "--set", "optimizer.schedule=cosine_decay",
                         "--set", "model.0.units=8")
    assert code == 0, err
    run = run_folder(out)
    assert run.parent == tmp_path and run.name.startswith("ovr-")
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["epochs"] == 1 and cfg["batch_size"] == 8 and cfg["seed"] == 3
    assert cfg["name"] == "ovr" and cfg["data"]["n"] == 100 and cfg["model"][0]["units"] == 8
    # 80 training points in batches of 8: the schedule lasts 10 steps from lr 0.5
    assert cfg["optimizer"] == {"name": "adam", "lr": 0.5,
                                "schedule": {"name": "cosine_decay", "total_steps": 10}}
    assert len(history_rows(run)) == 1
    assert model_arrays(run)["0.weight"].shape == (8, 2)


@pytest.mark.parametrize(("name", "extra"), [
    ("spirals", []),
    ("xor", []),
    ("mnist-mlp", ["--set", "data.limit=600"]),
    ("mnist-cnn", ["--set", "data.limit=128"]),
])
def test_presets_train_one_epoch(name, extra, tmp_path, capsys):
    which = [name] if name == "xor" else ["--preset", name]  # `ember train xor` works too
    code, out, err = cli(capsys, "train", *which, "--epochs", 1, "--runs-dir", tmp_path,
                         "--no-plots", *extra)
    assert code == 0, err
    run = run_folder(out)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["name"] == name and cfg["model"] == preset(name)["model"]
    rows = history_rows(run)
    assert len(rows) == 1
    if name.startswith("mnist"):
        assert cfg["input_shape"] == ([1, 28, 28] if name == "mnist-cnn" else [784])
        assert "test (1000 samples)" in out
    if name == "mnist-mlp":  # validation_split 0.1 and early stopping come from the preset
        assert "val_accuracy" in rows[0] and "early_stopping" in cfg["callbacks"]


def test_the_example_config_of_the_reference_trains(tmp_path, capsys):
    import ember.cli

    block = ember.cli.__doc__.split("works on any Python)::\n\n")[1].split("\nErrors\n")[0]
    text = "\n".join(line[4:] for line in block.splitlines())
    assert tomllib.loads(text)["name"] == "spirals-wide"
    (tmp_path / "example.toml").write_text(text)
    code, out, err = cli(capsys, "train", tmp_path / "example.toml", "--epochs", 6, "--no-plots",
                         "--runs-dir", tmp_path, "--set", "data.n=400")
    assert code == 0, err
    cfg = json.loads((run_folder(out) / "config.json").read_text())
    # 300 training points, 10% held out for validation: 270 in batches of 32 -> 9 steps an epoch
    assert cfg["optimizer"]["schedule"] == {"name": "cosine_decay", "warmup_steps": 50,
                                            "total_steps": 54}
    assert "val_loss" in history_rows(run_folder(out))[0]


def test_summary_of_the_mnist_cnn_preset(capsys):
    code, out, err = cli(capsys, "summary", "--preset", "mnist-cnn")
    assert code == 0, err
    assert cli(capsys, "summary", "mnist-cnn")[1] == out
    assert out.splitlines()[0] == "mnist-cnn: input shape (1, 28, 28)"
    # conv 1->16 3x3: 160; conv 16->32 3x3: 4640; dense 32*7*7 -> 10: 15690
    assert "Total params: 20,490" in out
    assert re.search(r"\(None, 32, 7, 7\)", out)


# -- evaluate, predict, resume (on one trained run) ------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One spirals run of 5 epochs: its folder and the lines `ember train` printed."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("runs")
    buf = io.StringIO()
    previous = ember.get_backend()
    try:
        with contextlib.redirect_stdout(buf):
            code = main(["train", "--epochs", "5", "--runs-dir", str(folder), "--no-plots"])
    finally:
        ember.set_backend(previous)
    assert code == 0
    return run_folder(buf.getvalue()), buf.getvalue()


def test_evaluate_prints_what_train_printed(trained, tmp_path, capsys):
    run, train_out = trained
    test_line = next(line for line in train_out.splitlines() if line.startswith("test ("))
    code, out, err = cli(capsys, "evaluate", run)
    assert code == 0, err
    assert test_line in out.splitlines()
    # the same test set from a .npz file gives the same numbers
    x, y = two_spirals(1000, noise=0.05, seed=0)
    np.savez(tmp_path / "test.npz", x=x[800:], y=y[800:])
    code, out, err = cli(capsys, "evaluate", run, "--data", tmp_path / "test.npz")
    assert code == 0, err
    assert f"test.npz (200 samples): {test_line.split(': ', 1)[1]}" in out.splitlines()
    # another data set by name, with the run's n, noise and seed
    code, out, err = cli(capsys, "evaluate", run, "--data", "moons")
    assert code == 0, err
    assert re.search(r"^test \(200 samples\): loss: [0-9.]+ - accuracy: [0-9.]+$", out, re.M)


def test_predict_writes_the_argmax_of_the_model_outputs(trained, tmp_path, capsys):
    run, _ = trained
    x, _ = moons(30, noise=0.1, seed=4)
    np.save(tmp_path / "points.npy", x)
    code, out, err = cli(capsys, "predict", run, tmp_path / "points.npy")
    assert code == 0, err
    classes = np.load(tmp_path / "points-predictions.npy")
    assert "30 inputs of shape (2,) -> classes of shape (30,)" in out
    # the oracle: the model rebuilt by hand from config.json and the checkpoint's weights
    cfg = json.loads((run / "config.json").read_text())
    model = nn.from_config(cfg["model"], input_shape=cfg["input_shape"])
    model.load_state_dict(model_arrays(run))
    model.eval()
    with ember.no_grad():
        logits = model(ember.tensor(x)).numpy()
    assert classes.shape == (30,) and classes.dtype == np.int64
    np.testing.assert_array_equal(classes, logits.argmax(axis=1))
    code, out, err = cli(capsys, "predict", run, tmp_path / "points.npy", "--probabilities",
                         "-o", tmp_path / "p.npy")
    assert code == 0, err
    p = np.load(tmp_path / "p.npy")
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p, expected / expected.sum(axis=1, keepdims=True), rtol=1e-6)
    assert "probabilities of shape (30, 2)" in out


def test_resume_equals_the_uninterrupted_run(tmp_path, capsys):
    common = ["--runs-dir", tmp_path, "--no-plots", "--backend", "numpy", "--set", "data.n=300",
              "--set", "model.0.dropout=0.2", "--set", "validation_split=0.2"]
    code, out, err = cli(capsys, "train", "--epochs", 3, "--name", "whole", *common)
    assert code == 0, err
    whole = run_folder(out)
    code, out, err = cli(capsys, "train", "--epochs", 1, "--name", "parts", *common)
    assert code == 0, err
    parts = run_folder(out)
    assert len(history_rows(parts)) == 1
    code, out, err = cli(capsys, "train", "--resume", parts, "--epochs", 3, "--no-plots")
    assert code == 0, err
    assert "resuming after epoch 1 of 3" in out and run_folder(out) == parts
    assert re.findall(r"^Epoch (\d+)/3", out, re.M) == ["2", "3"]  # only the missing epochs
    assert history_rows(parts) == history_rows(whole)  # every logged digit, val_* included
    a, b = model_arrays(whole), model_arrays(parts)
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
    oa = read_checkpoint(whole / "checkpoint")[0]["optimizer"]
    ob = read_checkpoint(parts / "checkpoint")[0]["optimizer"]
    assert all(np.array_equal(oa[k], ob[k]) for k in oa)
    assert json.loads((parts / "config.json").read_text())["epochs"] == 3
    # negative control: a different seed does not give the same weights
    code, out, err = cli(capsys, "train", "--epochs", 3, "--name", "other", "--seed", 1, *common)
    c = model_arrays(run_folder(out))
    assert not np.array_equal(a["0.weight"], c["0.weight"])
    # a resumed run keeps its config: only --epochs may change; a finished run needs more
    code, _, err = cli(capsys, "train", "--resume", parts, "--lr", 0.1)
    assert code == 2 and err == ("ember: error: --lr: a resumed run keeps its config (so that it "
                                 "continues exactly); only --epochs (--set steps=N for a text run) "
                                 "may change\n")
    code, _, err = cli(capsys, "train", "--resume", parts)
    assert code == 2 and "the run has trained 3 epochs already" in err


def test_run_folder_gets_a_suffix_when_taken(tmp_path, capsys, monkeypatch):
    from ember.cli import commands

    monkeypatch.setattr(commands, "run_folder_name", lambda name, stamp=None: f"{name}-fixed")
    args = ["train", "--epochs", 1, "--runs-dir", tmp_path, "--no-plots", "--set", "data.n=50"]
    assert cli(capsys, *args)[0] == 0
    code, out, _ = cli(capsys, *args)
    assert code == 0 and run_folder(out) == tmp_path / "spirals-fixed-2"


def test_npz_data_and_a_json_config(tmp_path, monkeypatch, capsys):
    x, y = moons(120, noise=0.1, seed=0)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "train.npz", x=x[:100], y=y[:100])
    np.savez(tmp_path / "data" / "test.npz", x=x[100:], y=y[100:])
    config = {"name": "mine", "data": {"train": "data/train.npz", "test": "data/test.npz"},
              "model": [{"type": "dense", "units": 8, "activation": "tanh"},
                        {"type": "dense", "units": 2}], "epochs": 2,
              "optimizer": "sgd", "loss": [{"name": "cross_entropy", "weight": 1.0}]}
    (tmp_path / "c.json").write_text(json.dumps(config))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # relative paths start from the config's folder
    code, out, err = cli(capsys, "train", tmp_path / "c.json", "--no-plots")
    assert code == 0, err
    run = run_folder(out)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"] == {"train": str(tmp_path / "data" / "train.npz"),
                           "test": str(tmp_path / "data" / "test.npz")}
    assert cfg["optimizer"] == {"name": "sgd", "lr": 0.01}
    assert "test (20 samples)" in out and len(history_rows(run)) == 2


# -- Ctrl-C and the console entry (real processes) -------------------------------------------------

def test_ctrl_c_keeps_the_last_epoch_and_resume_continues(tmp_path, capsys):
    proc = subprocess.Popen(
        [sys.executable, "-m", "ember", "train", "--epochs", "100000", "--runs-dir", "runs",
         "--name", "long", "--no-plots", "--set", "data.n=200"],
        cwd=tmp_path, env=env_without_backend(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("runs/long-*/checkpoint/checkpoint.json")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.3)  # a few more epochs
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    found = re.search(r"^interrupted at epoch (\d+); resume with: ember train --resume (\S+)$",
                      err, re.M)
    assert found, err
    epoch, run = int(found.group(1)), tmp_path / found.group(2)
    arrays, meta = read_checkpoint(run / "checkpoint")  # verified: complete, not torn
    done = meta["epoch"]
    assert 1 <= done and done in (epoch - 1, epoch)
    assert set(arrays["model"]) == {"0.weight", "0.bias", "1.weight", "1.bias", "2.weight",
                                    "2.bias"}
    before = history_rows(run)
    assert len(before) in (done, done + 1)
    code, out, err = cli(capsys, "train", "--resume", run, "--epochs", done + 2, "--no-plots")
    assert code == 0, err
    assert re.findall(r"^Epoch (\d+)/", out, re.M) == [str(done + 1), str(done + 2)]
    after = history_rows(run)
    assert len(after) == done + 2 and after[:done] == before[:done]


def test_console_entry_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "ember", "--help"], env=env_without_backend(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("train", "evaluate", "predict", "summary", "info", "gradcheck"):
        assert command in done.stdout
    done = subprocess.run([sys.executable, "-m", "ember", "trian"], env=env_without_backend(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "invalid choice: 'trian'" in done.stderr


# -- errors ----------------------------------------------------------------------------------------

GOOD = ('model = [{ type = "dense", units = 2 }]\n'
        'data = { name = "spirals", n = 40 }\n')
ALL_DATA = "spirals, ellipses, moons, circles, xor, blobs, mnist, mnist-5k, fashion-mnist"


@pytest.mark.parametrize(("toml", "message"), [
    ('model = [{ type = "dense", units = 2 }]\ndata = { name = "spiral" }\n',
     "config.toml: data.name: unknown data set 'spiral' (did you mean 'spirals'?); choose one "
     f"of {ALL_DATA}"),
    (GOOD + "epoch = 3\n",
     "config.toml: epoch: unknown key; did you mean 'epochs'? allowed: name, model, input_shape, "
     "data, loss, optimizer, epochs, batch_size, metrics, backend, seed, validation_split, "
     "callbacks, steps_per_execution, accumulate_steps"),
    (GOOD + "accumulate_steps = 0\n", "config.toml: accumulate_steps: expected an integer >= 1, "
     "got 0"),
    (GOOD + 'backend = "jax"\naccumulate_steps = 2\nsteps_per_execution = "epoch"\n',
     "config.toml: accumulate_steps: 2 runs one optimizer step per compiled call; it cannot be "
     "combined with steps_per_execution = 'epoch' on JAX (set steps_per_execution = 1)"),
    (GOOD + 'epochs = "10"\n', "config.toml: epochs: expected an integer >= 1, got '10' (a "
     "string)"),
    (GOOD + "epochs = 2.5\n", "config.toml: epochs: expected an integer >= 1, got 2.5"),
    ('model = [{ type = "dense2", units = 2 }]\ndata = "xor"\n',
     "config.toml: model: entry 0: unknown layer type 'dense2'; valid types: "),
    ('model = [{ type = "dense" }]\ndata = "xor"\n',
     "config.toml: model: entry 0 ('dense'): missing field(s) 'units'; a 'dense' entry takes: "),
    (GOOD + 'optimizer = { name = "adam", weight_decy = 0.1 }\n',
     "config.toml: optimizer.weight_decy: unknown key; did you mean 'weight_decay'? allowed: "
     "name, lr, schedule, betas, eps, weight_decay, amsgrad, clip_norm, clip_value"),
    (GOOD + 'optimizer = "adamm"\n', "config.toml: optimizer.name: unknown optimizer 'adamm' "
     "(did you mean 'adam'?); choose one of sgd, momentum, adagrad, rmsprop, adam, adamw"),
    (GOOD + 'loss = "mse2"\n', "config.toml: loss: unknown loss 'mse2' (did you mean 'mse'?); "),
    (GOOD + "callbacks = { early_stopping = { patience = 2 } }\n",
     "config.toml: callbacks.early_stopping.monitor: 'val_loss' needs a validation set: set "
     "validation_split (e.g. 0.1) or monitor = \"loss\""),
    (GOOD + "metrics = [\"acuracy\"]\n", "config.toml: metrics.0: unknown metric 'acuracy'"),
    ("data = \"xor\"\n", "config.toml: model: missing: give a list of layers such as "),
    ('model = [{ type = "dense", units = 1 }]\ndata = "xor"\n',
     "config.toml: model: the model and the loss do not fit the data: SoftmaxCrossEntropy: "
     "label 1 at index "),
    (GOOD + "input_shape = [3]\n", "config.toml: input_shape: the model takes samples of shape "
     "(3,) but the training data has samples of shape (2,)"),
    ("epochs = [\n", "config.toml: not valid TOML: "),
])
def test_bad_config_is_one_error_line_and_exit_2(toml, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text(toml)
    code, out, err = cli(capsys, "train", "config.toml")
    assert code == 2
    assert err.startswith("ember: error: " + message), err
    assert err.count("\n") == 1 and err.endswith("\n")
    assert not (tmp_path / "runs").exists()  # nothing is written for a bad config


@pytest.mark.parametrize(("args", "message"), [
    (["train", "missing.toml"], "missing.toml: no such config file"),
    (["train", "--preset", "nope"],
     "--preset: unknown preset 'nope'; choose one of mnist-cnn, mnist-mlp, names, "
     "names-bigram, names-gru, names-mlp, names-mlp-layers, shakespeare-char, spirals, xor"),
    (["train", "--preset", "spiral"], "--preset: unknown preset 'spiral' (did you mean "
     "'spirals'?); "),
    (["train", "--set", "epochs=0"], "--set epochs: epochs: expected an integer >= 1, got 0"),
    (["train", "--set", "data.nosie=0.1"], "--set data.nosie: data.nosie: unknown key; did you "
     "mean 'noise'? "),
    (["train", "--resume", "no-such-run"], "no-such-run: no such run folder"),
    (["evaluate", "no-such-run"], "no-such-run: no such run folder"),
    (["predict", "no-such-run", "x.npy"], "no-such-run: no such run folder"),
    (["summary", "no-such.json"], "no-such.json: no such config file"),
    (["gradcheck", "--op", "tanhh"], "--op: no op 'tanhh' in the op table (did you mean "
     "'tanh'?)"),
])
def test_bad_command_line_is_one_error_line_and_exit_2(args, message, tmp_path, monkeypatch,
                                                       capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, *args)
    assert code == 2
    assert err.startswith("ember: error: " + message), err
    assert err.count("\n") == 1


def test_a_folder_without_config_json_is_not_a_run(tmp_path, capsys):
    code, _, err = cli(capsys, "evaluate", tmp_path)
    assert (code, err) == (2, f"ember: error: {tmp_path}: not a run folder of `ember train` (it "
                              f"has no config.json)\n")


def test_toml_without_tomllib_says_to_use_json(tmp_path, monkeypatch, capsys):
    import importlib

    real = importlib.import_module

    def no_toml(name, *a, **k):
        if name in ("tomllib", "tomli"):
            raise ModuleNotFoundError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", no_toml)
    (tmp_path / "c.toml").write_text(GOOD)
    code, _, err = cli(capsys, "train", tmp_path / "c.toml")
    assert code == 2 and err == (f"ember: error: {tmp_path / 'c.toml'}: reading TOML needs "
                                 f"Python 3.11 or newer (or `pip install tomli`); on this Python "
                                 f"write the config as JSON\n")


def test_missing_matplotlib_skips_the_plots_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delattr(ember, "plot", raising=False)
    monkeypatch.setitem(sys.modules, "ember.plot", None)  # `from ember import plot` fails
    code, out, err = cli(capsys, "train", "--epochs", 1, "--runs-dir", tmp_path, "--set",
                         "data.n=50")
    assert code == 0, err
    assert out.count('(install "ember[plot]" for the PNG plots)') == 1
    assert not list(run_folder(out).glob("*.png"))


# -- info and gradcheck ----------------------------------------------------------------------------

def test_info_prints_versions(capsys):
    code, out, err = cli(capsys, "info")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"ember {ember.__version__} (")
    assert f"NumPy {np.__version__}" in lines
    assert any(line.startswith(f"Python {sys.version_info.major}.{sys.version_info.minor}.")
               for line in lines)
    assert "backend: numpy (" in out and "backends available: numpy" in out
    if importlib.util.find_spec("jax"):
        import jax

        assert f"jax {jax.__version__}" in lines
        assert re.search(r"^JAX devices: .*cpu", out, re.M | re.I)


def test_gradcheck_of_one_op_passes_and_prints_one_line_per_case(capsys):
    from ember.testing.table import ROWS

    code, out, err = cli(capsys, "gradcheck", "--op", "tanh")
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("tanh-")]
    assert len(lines) == sum(len(r.cases) for r in ROWS if r.name == "tanh") == 3
    for line, shape in zip(lines, ["(3, 4)", "()", "(2, 1, 3)"]):
        assert shape in line and line.endswith("pass")
        err_value = float(re.search(r"max abs err (\S+)", line).group(1))
        assert 0 <= err_value < 1e-6
    assert out.splitlines()[-1].startswith("3 cases, 0 failed")
    code, out, err = cli(capsys, "gradcheck", "--op", "abs")  # its 0-d case too
    assert code == 0 and out.splitlines()[-1].startswith("3 cases, 0 failed"), out


def test_gradcheck_reports_a_wrong_gradient_and_exits_1(capsys, monkeypatch):
    from ember.testing import table

    class BadTanh(ember.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return ember.backend.get().xp.tanh(x)

        @staticmethod
        def backward(ctx, grad):  # the derivative of tanh is 1 - tanh^2, not 1 - x^2
            (x,) = ctx.saved_tensors
            return (1 - x * x) * grad

    bad = table.Row("tanh", BadTanh.apply, lambda xp, a: xp.tanh(a), [((3, 4),)])
    monkeypatch.setattr(table, "ROWS", [bad])
    code, out, err = cli(capsys, "gradcheck", "--op", "tanh")
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("tanh-"))
    assert line.endswith("FAIL") and float(re.search(r"max abs err (\S+)", line).group(1)) > 0.01
    assert out.splitlines()[-1].startswith("1 cases, 1 failed")


def test_first_ctrl_c_stops_at_the_next_boundary_and_a_second_at_once():
    from ember.cli.commands import _CtrlC

    before = signal.getsignal(signal.SIGINT)
    with _CtrlC() as ctrl_c:
        assert signal.getsignal(signal.SIGINT) == ctrl_c._on_signal
        ctrl_c.on_batch_end(0, {})  # nothing pressed: training goes on
        ctrl_c._on_signal(signal.SIGINT, None)  # the first press only takes note
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.on_batch_end(1, {})
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.on_epoch_end(0, {})
        with pytest.raises(KeyboardInterrupt):
            ctrl_c._on_signal(signal.SIGINT, None)  # the second press interrupts at once
    assert signal.getsignal(signal.SIGINT) == before


def test_accumulate_steps_in_a_config_trains_as_fit_does(tmp_path, monkeypatch, capsys):
    """``accumulate_steps = 3`` in a config gives exactly the weights of the same run whose
    Trainer.fit is called with accumulate_steps=3, and not those of a run without it."""
    from ember.train.trainer import Trainer

    monkeypatch.chdir(tmp_path)
    base = GOOD + "epochs = 2\nbatch_size = 4\nseed = 1\n"

    def weights(toml, accumulate=None):
        (tmp_path / "c.toml").write_text(toml)
        if accumulate is not None:
            fit = Trainer.fit
            monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: fit(
                self, *a, **{**k, "accumulate_steps": accumulate}))
        code, out, err = cli(capsys, "train", "c.toml", "--no-plots", "--runs-dir", "runs")
        monkeypatch.undo()
        monkeypatch.chdir(tmp_path)
        assert code == 0, err
        model = ember.load_run(run_folder(out)).model
        return {k: np.asarray(v) for k, v in model.state_dict().items()}

    from_config = weights(base + "accumulate_steps = 3\n")
    from_fit = weights(base, accumulate=3)
    plain = weights(base)
    assert from_config.keys() == from_fit.keys()
    for k in from_config:
        np.testing.assert_array_equal(from_config[k], from_fit[k])
    assert any(not np.array_equal(from_config[k], plain[k]) for k in plain)
