"""Checkpoints: round trips on both backends, atomic writes under a crash at every stage, and
clear errors (naming the file, running no code) for truncated, modified, foreign and pickle
files."""

from __future__ import annotations

import json
import math
import os
import pickle
import zipfile

import numpy as np
import pytest

import ember
from ember import nn, optim
from ember.train import checkpoint
from ember.train.checkpoint import (
    POINTER,
    CheckpointError,
    has_checkpoint,
    read_checkpoint,
    write_checkpoint,
)


def sample_arrays(tag: float = 0.0):
    """A state dict of every dtype a checkpoint holds, as backend arrays, tensors and numbers."""
    bk = ember.get_backend
    assert bk() in ("numpy", "jax")
    rng = np.random.default_rng(int(tag * 10))
    return {
        "w32": ember.tensor(rng.standard_normal((3, 2)).astype(np.float32) + tag),
        "w64": ember.tensor(rng.standard_normal(4) + tag, dtype=ember.float64).data,  # an array
        "i32": ember.tensor(np.array([[1, -2]], np.int32)),
        "i64": ember.tensor(np.int64(2**40 + int(tag))),  # 0-d
        "u8": np.array([0, 255], np.uint8),
        "u64": np.array([2**64 - 1, 7], np.uint64),  # an RNG key
        "flag": ember.tensor(np.array([True, False])),
        "empty": np.zeros((0, 3), np.float32),
        "scalar": 0.1 + tag,
        "count": 3,
    }


def as_host(state):
    return {k: np.asarray(v.numpy() if isinstance(v, ember.Tensor) else v) for k, v in
            state.items()}


def assert_same(loaded, state):
    expected = as_host(state)
    assert list(loaded) == list(expected)
    for k, v in expected.items():
        assert type(loaded[k]) is np.ndarray, k
        assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape, k
        np.testing.assert_array_equal(loaded[k], v)


def tmp_files(folder):
    return sorted(p for p in os.listdir(folder) if p.endswith(".tmp"))


# -- ember.save / ember.load ----------------------------------------------------------------------

def test_save_load_round_trip(backend, tmp_path):
    state = sample_arrays()
    path = tmp_path / "state.safetensors"
    ember.save(state, path)
    loaded = ember.load(str(path))
    assert_same(loaded, state)
    assert loaded["w32"].flags.writeable
    assert tmp_files(tmp_path) == []


def test_save_load_model_state_dict(backend, tmp_path):
    ember.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    ember.save(model.state_dict(), tmp_path / "m.safetensors")
    ember.manual_seed(2)
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    other.load_state_dict(ember.load(tmp_path / "m.safetensors"))
    x = ember.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(other(x).numpy(), model(x).numpy())


def test_load_reads_other_safetensors_files(tmp_path):
    from safetensors.numpy import save_file

    save_file({"b": np.ones(2, np.float32), "a": np.zeros((), np.int64)}, tmp_path / "x.st")
    loaded = ember.load(tmp_path / "x.st")
    assert list(loaded) == ["a", "b"] and loaded["b"].tolist() == [1.0, 1.0]


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    ember.save({"w": np.ones(3)}, path)
    faulty = FaultyOs(fail_at=("replace", 1))
    monkeypatch.setattr(checkpoint, "os", faulty)
    with pytest.raises(CrashError):
        ember.save({"w": np.zeros(3)}, path)
    monkeypatch.undo()
    assert ember.load(path)["w"].tolist() == [1.0, 1.0, 1.0]
    assert tmp_files(tmp_path) == []


def test_save_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="ember.save: folder '.*nowhere' does not exist; "
                                                "create it first"):
        ember.save({"w": np.ones(1)}, tmp_path / "nowhere" / "w.safetensors")
    with pytest.raises(TypeError, match=r"ember.save: state_dict\['model'\] is a mapping; a state "
                                        r"dict is flat \(name -> array\); save groups of arrays "
                                        r"with write_checkpoint"):
        ember.save({"model": {"w": np.ones(1)}}, tmp_path / "w.safetensors")
    with pytest.raises(TypeError, match=r"ember.save: state_dict\['f'\] is a set, not an array; "
                                        r"checkpoints hold tensors and arrays"):
        ember.save({"f": {1.0}}, tmp_path / "w.safetensors")
    with pytest.raises(TypeError, match=r"ember.save: state_dict\['s'\] has dtype <U2"):
        ember.save({"s": np.array(["ab"])}, tmp_path / "w.safetensors")
    with pytest.raises(TypeError, match="ember.save: state_dict must be a mapping name -> array"):
        ember.save([np.ones(1)], tmp_path / "w.safetensors")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("cut", [0, 5, 8, 40, -1])
def test_load_truncated_file(tmp_path, cut):
    path = tmp_path / "w.safetensors"
    ember.save({"w": np.arange(10.0), "b": np.ones(3, np.float32)}, path)
    raw = path.read_bytes()
    path.write_bytes(raw[:cut] if cut >= 0 else raw[:-4])
    with pytest.raises(CheckpointError, match=f"{path}.*(truncated|shorter than)"):
        ember.load(path)


def test_load_tampered_file(tmp_path):
    path = tmp_path / "w.safetensors"
    ember.save({"w": np.arange(10.0)}, path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=f"{path}: SHA-256 mismatch: the arrays are not those "
                                              f"that were saved"):
        ember.load(path)


def test_load_other_format_version(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": np.ones(1)}, path, metadata={"format": "ember-arrays", "format_version": "2",
                                                 "keys": '["w"]', "sha256": ""})
    with pytest.raises(CheckpointError, match=f"{path} has format version '2'; this ember reads "
                                              f"version 1"):
        ember.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="ember.load: file '.*missing.safetensors' does not "
                                                "exist"):
        ember.load(tmp_path / "missing.safetensors")


class Payload:
    """Unpickling this object creates a folder: the proof that a pickle would run code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_payload_is_live(tmp_path):
    """The negative control: pickle.loads really runs the payload the tests below refuse."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_load_refuses_pickle_and_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"w": Payload(marker)}, protocol=protocol))
    expected = "is a Python pickle" if protocol >= 2 else "is not a safetensors file"
    with pytest.raises(CheckpointError, match=f"{path} {expected}"):
        ember.load(path)
    assert not marker.exists()


def test_load_refuses_torch_zip_and_npy(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(Payload(tmp_path / "pwned")))
    with pytest.raises(CheckpointError, match=f"{path} is a zip archive .*ember never unpickles"):
        ember.load(path)
    np.save(tmp_path / "a.npy", np.ones(2))
    with pytest.raises(CheckpointError, match="a.npy is a NumPy .npy file, not a safetensors"):
        ember.load(tmp_path / "a.npy")
    assert not (tmp_path / "pwned").exists()


# -- checkpoint folders ---------------------------------------------------------------------------

META = {
    "epoch": 3,
    "config": {"model": [{"type": "dense", "units": 4}], "optimizer": {"name": "Adam",
                                                                       "lr": 1e-3}},
    "history": {"loss": [0.1 + 0.2, 1 / 3, float("nan")], "lr": [1e-3, 5e-4]},
    "data_order": [[3, 1, 2, 0]],
    "callbacks": {"early_stopping": {"wait": 1, "best": float("inf")}},
    "note": None,
}


def assert_meta(meta, expected):
    assert json.dumps(meta, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert meta["history"]["loss"][:2] == [0.1 + 0.2, 1 / 3]  # floats exactly
    assert math.isnan(meta["history"]["loss"][2])


def test_checkpoint_round_trip_every_group(backend, tmp_path):
    groups = {"model": sample_arrays(), "optimizer": {"step": ember.tensor(np.int32(7))},
              "rng": {"key": ember.random.get_state()},
              "callbacks": {"0.EarlyStopping/best/0.weight": np.ones((2, 2), np.float32)},
              "empty": {}}  # names may hold '/', groups may be empty
    out = write_checkpoint(tmp_path / "run", groups, META)
    assert out == tmp_path / "run" and has_checkpoint(out)
    arrays, meta = read_checkpoint(out)
    assert list(arrays) == list(groups)
    for name, group in groups.items():
        assert_same(arrays[name], group)
    assert_meta(meta, META)
    assert sorted(os.listdir(out)) == ["arrays-000001.safetensors", POINTER]


def test_meta_conversions(tmp_path):
    write_checkpoint(tmp_path, {}, {"t": (1, 2), "np": np.float32(0.5), "a": np.arange(2),
                                    "i": np.int64(3)})
    meta = read_checkpoint(tmp_path)[1]
    assert meta == {"t": [1, 2], "np": 0.5, "a": [0, 1], "i": 3}
    assert type(meta["i"]) is int


def test_model_and_optimizer_resume_from_checkpoint(backend, tmp_path):
    ember.manual_seed(3)
    x = ember.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
    y = ember.tensor([0, 1, 1, 0])

    def make():
        model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
        return model, optim.Adam(model.parameters(), lr=1e-2)

    def step(model, opt):
        loss = nn.SoftmaxCrossEntropy()(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss.item()

    model, opt = make()
    step(model, opt)
    write_checkpoint(tmp_path, {"model": model.state_dict(), "optimizer": opt.state_dict()},
                     {"optimizer": opt.config()})
    expected = [step(model, opt) for _ in range(3)]
    ember.manual_seed(4)
    model2, opt2 = make()
    arrays, _ = read_checkpoint(tmp_path)
    model2.load_state_dict(arrays["model"])
    opt2.load_state_dict(arrays["optimizer"])
    assert [step(model2, opt2) for _ in range(3)] == expected  # exact on both backends
    for a, b in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_new_version_replaces_the_old(tmp_path):
    write_checkpoint(tmp_path, {"model": {"w": np.ones(2)}}, {"epoch": 1})
    write_checkpoint(tmp_path, {"model": {"w": np.zeros(2)}}, {"epoch": 2})
    arrays, meta = read_checkpoint(tmp_path)
    assert arrays["model"]["w"].tolist() == [0.0, 0.0] and meta == {"epoch": 2}
    assert sorted(os.listdir(tmp_path)) == ["arrays-000002.safetensors", POINTER]


def test_write_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="write_checkpoint: group names are non-empty strings "
                                         "without '/', got 'a/b'"):
        write_checkpoint(tmp_path, {"a/b": {}}, {})
    with pytest.raises(TypeError, match="write_checkpoint: meta is not JSON-serialisable: a "
                                        "object is not JSON-serialisable; meta holds JSON values"):
        write_checkpoint(tmp_path, {}, {"x": object()})
    with pytest.raises(TypeError, match=r"write_checkpoint: arrays\['model'\]\['w'\] is a str, "
                                        r"not an array"):
        write_checkpoint(tmp_path, {"model": {"w": "x"}}, {})
    assert os.listdir(tmp_path) == []


# -- atomicity: a crash at every stage of a write -------------------------------------------------

class CrashError(Exception):
    """What the fault injection raises (stands for the process dying there)."""


class FaultyOs:
    """The checkpoint module's ``os``, failing at the n-th call of one function.

    ``partial`` makes a failing ``write`` first write half of its data (a torn file);
    ``no_cleanup`` makes ``unlink`` fail too, as if the process had been killed (no handler runs).
    """

    def __init__(self, fail_at=None, partial=False, no_cleanup=False):
        self.fail_at = fail_at
        self.partial = partial
        self.no_cleanup = no_cleanup
        self.calls: list[str] = []
        self.crashed_at = -1

    def __getattr__(self, name):
        real = getattr(os, name)
        if name not in ("write", "fsync", "replace", "unlink"):
            return real

        def call(*args):
            if name == "unlink" and self.no_cleanup:
                raise CrashError("killed: no cleanup")
            self.calls.append(name)
            if self.fail_at == (name, self.calls.count(name)):
                self.crashed_at = len(self.calls) - 1
                if name == "write" and self.partial:
                    os.write(args[0], bytes(args[1])[: len(args[1]) // 2])
                raise CrashError(f"{name} #{self.calls.count(name)}")
            return real(*args)

        return call


def stages(tmp_path, monkeypatch):
    """Every (function, n) of one complete write: the points where a crash can happen."""
    spy = FaultyOs()
    monkeypatch.setattr(checkpoint, "os", spy)
    write_checkpoint(tmp_path / "probe", {"model": {"w": np.ones(3)}}, {"epoch": 0})
    monkeypatch.undo()
    out = []
    for name in dict.fromkeys(spy.calls):
        out += [(name, i + 1) for i in range(spy.calls.count(name))]
    return out, spy.calls


def test_write_stages_are_the_expected_ones(tmp_path, monkeypatch):
    points, calls = stages(tmp_path, monkeypatch)
    # arrays: write, fsync, replace, fsync(dir); pointer: the same; nothing else is deleted
    assert calls == ["write", "fsync", "replace", "fsync", "write", "fsync", "replace", "fsync"]
    assert len(points) == 8


@pytest.mark.parametrize("partial", [False, True])
@pytest.mark.parametrize("no_cleanup", [False, True])
def test_crash_at_every_stage_keeps_a_valid_checkpoint(tmp_path, monkeypatch, partial,
                                                       no_cleanup):
    points, calls = stages(tmp_path, monkeypatch)
    commit = [i for i, c in enumerate(calls) if c == "replace"][-1]  # the pointer's replace
    old_arrays = {"model": {"w": np.arange(4.0)}, "optimizer": {"step": np.int32(1)}}
    new_arrays = {"model": {"w": -np.arange(4.0)}, "optimizer": {"step": np.int32(2)}}
    for k, point in enumerate(points):
        folder = tmp_path / f"run{k}"
        write_checkpoint(folder, old_arrays, {"epoch": 1})
        faulty = FaultyOs(fail_at=point, partial=partial, no_cleanup=no_cleanup)
        monkeypatch.setattr(checkpoint, "os", faulty)
        with pytest.raises(CrashError):
            write_checkpoint(folder, new_arrays, {"epoch": 2})
        monkeypatch.undo()
        committed = faulty.crashed_at > commit  # crashed after the pointer was replaced
        arrays, meta = read_checkpoint(folder)  # whatever happened, a complete checkpoint loads
        expected = new_arrays if committed else old_arrays
        assert meta == {"epoch": 2 if committed else 1}, point
        for group, members in expected.items():
            for name, a in members.items():
                np.testing.assert_array_equal(arrays[group][name], a)
        if not no_cleanup:
            assert tmp_files(folder) == [], point  # the failed write removed its temp file
        # the next write succeeds and leaves exactly one checkpoint behind
        write_checkpoint(folder, {"model": {"w": np.ones(1)}}, {"epoch": 3})
        files = sorted(os.listdir(folder))
        assert len(files) == 2 and files[1] == POINTER and files[0].startswith("arrays-"), files
        assert read_checkpoint(folder)[1] == {"epoch": 3}


def test_stray_files_are_not_mistaken_for_a_checkpoint(tmp_path):
    write_checkpoint(tmp_path, {"model": {"w": np.ones(2)}}, {"epoch": 1})
    # what killed writers leave: torn temp files and a complete but uncommitted array file
    (tmp_path / ".arrays-000002.safetensors.0123456789abcdef.tmp").write_bytes(b"\x08\x00torn")
    (tmp_path / ".checkpoint.json.0123456789abcdef.tmp").write_text('{"format": "ember-ch')
    write_checkpoint(tmp_path / "other", {"model": {"w": np.zeros(2)}}, {"epoch": 9})
    os.replace(tmp_path / "other" / "arrays-000001.safetensors",
               tmp_path / "arrays-000005.safetensors")
    arrays, meta = read_checkpoint(tmp_path)
    assert meta == {"epoch": 1} and arrays["model"]["w"].tolist() == [1.0, 1.0]
    write_checkpoint(tmp_path, {"model": {"w": np.full(2, 3.0)}}, {"epoch": 2})
    assert sorted(p for p in os.listdir(tmp_path) if p != "other") == [
        "arrays-000006.safetensors", POINTER]
    assert read_checkpoint(tmp_path)[0]["model"]["w"].tolist() == [3.0, 3.0]


def test_temp_file_alone_is_no_checkpoint(tmp_path):
    (tmp_path / ".checkpoint.json.0123456789abcdef.tmp").write_text("{}")
    assert not has_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"no checkpoint in '{tmp_path}': "
                                                f"'{tmp_path / POINTER}' does not exist"):
        read_checkpoint(tmp_path)


# -- damaged, modified and foreign checkpoint folders ---------------------------------------------

@pytest.fixture
def saved(tmp_path):
    write_checkpoint(tmp_path, {"model": {"w": np.arange(6.0)}, "rng": {"k": np.uint64([1, 2])}},
                     {"epoch": 4})
    return tmp_path, tmp_path / "arrays-000001.safetensors", tmp_path / POINTER


def test_truncated_array_file(saved):
    folder, arrays, _ = saved
    arrays.write_bytes(arrays.read_bytes()[:-8])
    with pytest.raises(CheckpointError, match=f"{arrays}: SHA-256 mismatch with .*checkpoint.json: "
                                              f"the array file was modified, truncated or "
                                              f"damaged"):
        read_checkpoint(folder)


def test_tampered_array_file(saved):
    folder, arrays, _ = saved
    raw = bytearray(arrays.read_bytes())
    raw[-1] ^= 0x40
    arrays.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=f"{arrays}: SHA-256 mismatch"):
        read_checkpoint(folder)


def test_truncated_pointer(saved):
    folder, _, pointer = saved
    pointer.write_bytes(pointer.read_bytes()[:30])
    with pytest.raises(CheckpointError, match=f"{pointer} is not valid JSON \\(truncated or "
                                              f"damaged\\)"):
        read_checkpoint(folder)


def edit_pointer(pointer, change):
    """Edit checkpoint.json and sign it again, to reach the checks behind its own SHA-256 (the
    bad-input catalogue shows that an unsigned edit is refused)."""
    from ember.train.checkpoint import _pointer_digest

    doc = json.loads(pointer.read_text())
    change(doc)
    doc["sha256"] = _pointer_digest(doc)
    pointer.write_text(json.dumps(doc))


def test_bad_format_version(saved):
    folder, _, pointer = saved
    edit_pointer(pointer, lambda d: d.update(format_version=2))
    with pytest.raises(CheckpointError, match=f"{pointer} has format version 2; this ember reads "
                                              f"version 1 \\(use the ember version that wrote "
                                              f"it\\)"):
        read_checkpoint(folder)


def test_foreign_or_malformed_pointer(saved):
    folder, _, pointer = saved
    edit_pointer(pointer, lambda d: d.update(format="keras"))
    with pytest.raises(CheckpointError, match=f"{pointer} is not an ember checkpoint file"):
        read_checkpoint(folder)
    edit_pointer(pointer, lambda d: d.update(format="ember-checkpoint", arrays={
        "file": "../../etc/passwd", "sha256": "", "groups": {}}))
    with pytest.raises(CheckpointError, match=f"{pointer} is damaged: its \"arrays\" entry"):
        read_checkpoint(folder)


def test_missing_array_file(saved):
    folder, arrays, _ = saved
    arrays.unlink()
    with pytest.raises(FileNotFoundError, match=f"the array file of checkpoint .*, "
                                                f"'{arrays}' does not exist"):
        read_checkpoint(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint in '.*nothing'"):
        read_checkpoint(tmp_path / "nothing")


def test_arrays_not_listed_or_missing(saved):
    folder, arrays, pointer = saved
    import hashlib

    from safetensors.numpy import save as st_save

    raw = st_save({"model/w": np.arange(6.0), "model/extra": np.ones(1), "rng/k": np.uint64([1])},
                  metadata={"format": "ember-arrays", "format_version": "1"})
    arrays.write_bytes(raw)
    edit_pointer(pointer, lambda d: d["arrays"].update(sha256=hashlib.sha256(raw).hexdigest()))
    with pytest.raises(CheckpointError, match=f"{arrays} holds arrays that .* does not list"):
        read_checkpoint(folder)
    edit_pointer(pointer, lambda d: d["arrays"]["groups"]["model"].append("bias"))
    with pytest.raises(CheckpointError, match=f"{arrays} lacks the array 'model/bias'"):
        read_checkpoint(folder)


def test_pickle_in_place_of_the_pointer_runs_nothing(saved):
    folder, _, pointer = saved
    marker = folder / "pwned"
    pointer.write_bytes(pickle.dumps(Payload(marker), protocol=4))
    with pytest.raises(CheckpointError, match=f"{pointer} is a Python pickle .*not ember's JSON "
                                              f"checkpoint file; ember never unpickles"):
        read_checkpoint(folder)
    assert not marker.exists()


def test_pickle_in_place_of_the_arrays_runs_nothing(saved):
    """Even with a matching SHA-256 (an attacker who edits both files), nothing is unpickled."""
    import hashlib

    folder, arrays, pointer = saved
    marker = folder / "pwned"
    payload = pickle.dumps({"model/w": Payload(marker)}, protocol=4)
    arrays.write_bytes(payload)
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        read_checkpoint(folder)
    edit_pointer(pointer, lambda d: d["arrays"].update(sha256=hashlib.sha256(payload).hexdigest()))
    with pytest.raises(CheckpointError, match=f"{arrays} is a Python pickle"):
        read_checkpoint(folder)
    assert not marker.exists()
