"""Safe checkpoints: arrays in safetensors, everything else in JSON, written atomically.

Two levels:

* :func:`save` / :func:`load`: one flat ``name -> array`` mapping (a ``state_dict()``) in one
  safetensors file. :func:`save` records a format version and a SHA-256 of the arrays in the
  file's header; :func:`load` checks both (plain safetensors files from other tools load too).
* :func:`write_checkpoint` / :func:`read_checkpoint`: a checkpoint folder holding groups of arrays
  (``{"model": ..., "optimizer": ..., "rng": ...}``) and JSON metadata (config, hyperparameters,
  history, data order, epoch…). The folder holds::

      checkpoint.json              format version, metadata, name and SHA-256 of the array file
      arrays-000007.safetensors    every group's arrays, keys "group/name"

Writes are atomic: each file is written under a temporary name in the same folder, flushed to
disk (fsync) and renamed into place (``os.replace``). A new version writes a new array file first
and replaces ``checkpoint.json`` last, so the previous checkpoint stays complete and readable until
the new one is; older array files and stray temporary files are removed afterwards. A process
killed at any moment leaves either the old or the new checkpoint, never a mix.

Nothing here ever unpickles: loading reads JSON and safetensors only, so a file cannot run code.
A truncated, modified or foreign file (a pickle, a PyTorch ``.pt``) raises
:class:`CheckpointError` naming the file.

Example:
    >>> import os, tempfile
    >>> import ember
    >>> from ember.train.checkpoint import read_checkpoint, write_checkpoint
    >>> folder = os.path.join(tempfile.mkdtemp(), "run")
    >>> _ = write_checkpoint(folder, {"model": {"w": ember.ones(2)}}, {"epoch": 3})
    >>> arrays, meta = read_checkpoint(folder)
    >>> arrays["model"]["w"].tolist(), meta["epoch"]
    ([1.0, 1.0], 3)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np  # host-side only: checkpoints are NumPy arrays on disk, whatever the backend

from ember import backend
from ember.tensor import Tensor

__all__ = [
    "save",
    "load",
    "write_checkpoint",
    "read_checkpoint",
    "has_checkpoint",
    "discard_leftovers",
    "CheckpointError",
    "FORMAT_VERSION",
    "POINTER",
]

#: the version of both file formats; files with another version are refused
FORMAT_VERSION = 1
#: the file that names the complete checkpoint of a folder (replaced last)
POINTER = "checkpoint.json"

_FILE_FORMAT = "ember-arrays"
_DIR_FORMAT = "ember-checkpoint"
_ARRAYS = re.compile(r"arrays-(\d{6,})\.safetensors")
_TEMP = re.compile(r"\.(?:arrays-\d{6,}\.safetensors|checkpoint\.json)\.[0-9a-f]{16}\.tmp")
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


class CheckpointError(ValueError):
    """A checkpoint or array file that is truncated, modified, of another format or version."""


# -- writing ---------------------------------------------------------------------------------------

def _host(value: Any, where: str) -> np.ndarray:
    """``value`` (Tensor, backend array, NumPy array or number) as a C-contiguous NumPy array."""
    if isinstance(value, Tensor):
        value = value.numpy()
    elif backend.get().owns(value) or hasattr(value, "__array__"):
        value = np.asarray(value)
    elif isinstance(value, (bool, int, float, list, tuple)):
        value = np.asarray(value)
    else:
        raise TypeError(f"{where} is a {type(value).__name__}, not an array; checkpoints hold "
                        f"tensors and arrays (put other values in the JSON metadata)")
    if value.dtype.kind not in "fiub":
        raise TypeError(f"{where} has dtype {value.dtype}; safetensors holds numbers and booleans "
                        f"only")
    return np.asarray(value, order="C")  # (np.ascontiguousarray would make 0-d arrays 1-d)


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of names, dtypes, shapes and bytes, in order (independent of the file layout)."""
    h = hashlib.sha256()
    for name, a in arrays.items():
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _serialize(arrays: Mapping[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    from safetensors.numpy import save as _st_save

    return bytes(_st_save(dict(arrays), metadata=metadata))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); folders cannot be opened for fsync on Windows."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either untouched or complete: a temporary
    file in the same folder, fsync, ``os.replace``, fsync of the folder."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _flat_arrays(state_dict: Mapping[str, Any], where: str) -> dict[str, np.ndarray]:
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{where} must be a mapping name -> array (e.g. model.state_dict()), got "
                        f"{type(state_dict).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"{where}: names must be strings, got {name!r}")
        if isinstance(value, Mapping):
            raise TypeError(f"{where}[{name!r}] is a mapping; a state dict is flat "
                            f"(name -> array); save groups of arrays with write_checkpoint")
        out[name] = _host(value, f"{where}[{name!r}]")
    return out


def save(state_dict: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a flat ``name -> array`` mapping to one safetensors file, atomically.

    Args:
        state_dict: e.g. ``model.state_dict()``: Tensors, NumPy or JAX arrays, or numbers.
        path: the file to write (its folder must exist); an existing file is replaced only once
            the new one is complete.

    Example:
        >>> import os, tempfile
        >>> import ember
        >>> path = os.path.join(tempfile.mkdtemp(), "weights.safetensors")
        >>> ember.save({"w": ember.tensor([1.0, 2.0]), "step": 3}, path)
        >>> loaded = ember.load(path)
        >>> loaded["w"].tolist(), int(loaded["step"])
        ([1.0, 2.0], 3)
    """
    path = Path(path)
    arrays = _flat_arrays(state_dict, "ember.save: state_dict")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"ember.save: folder {str(path.parent)!r} does not exist; create "
                                f"it first (os.makedirs)")
    metadata = {"format": _FILE_FORMAT, "format_version": str(FORMAT_VERSION),
                "keys": json.dumps(list(arrays)), "sha256": _digest(arrays)}
    _atomic_write(path, _serialize(arrays, metadata))


# -- reading ---------------------------------------------------------------------------------------

def _foreign(raw: bytes) -> str | None:
    """What a non-safetensors file looks like, for the error message."""
    if raw[:1] == b"\x80" and raw[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (e.g. a PyTorch .pt/.pth file or a pickled object)"
    if raw[:4] == b"PK\x03\x04":
        return "a zip archive (PyTorch's .pt format holds a pickle inside)"
    if raw[:6] == b"\x93NUMPY":
        return "a NumPy .npy file"
    return None


def _header(raw: bytes, path: Path) -> tuple[dict[str, Any] | None, str]:
    """The JSON header of safetensors bytes, or None and what is wrong."""
    if len(raw) < 8:
        return None, (f"{path} is not a safetensors file: {len(raw)} bytes, shorter than the "
                      f"8-byte header length (truncated or empty)")
    (size,) = struct.unpack("<Q", raw[:8])
    if size > _MAX_HEADER:
        return None, (f"{path} is not a safetensors file: its first 8 bytes give a header of "
                      f"{size} bytes")
    if 8 + size > len(raw):
        return None, (f"{path} is truncated: its header needs {8 + size} bytes, the file has "
                      f"{len(raw)}")
    try:
        header = json.loads(raw[8:8 + size])
    except ValueError as e:
        return None, f"{path} is not a safetensors file: its header is not valid JSON ({e})"
    if not isinstance(header, dict):
        return None, f"{path} is not a safetensors file: its header is not a JSON object"
    return header, ""


def _parse(raw: bytes, path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays and header metadata of safetensors bytes; nothing but JSON is interpreted."""
    header, problem = _header(raw, path)
    if header is None:
        kind = _foreign(raw)  # only a diagnosis: a valid header may start with pickle's bytes
        if kind is not None:
            raise CheckpointError(f"{path} is {kind}, not a safetensors file; ember never "
                                  f"unpickles files (loading a pickle can run arbitrary code): "
                                  f"convert it to safetensors with the program that wrote it")
        raise CheckpointError(problem)
    metadata = header.get("__metadata__") or {}
    from safetensors import SafetensorError
    from safetensors.numpy import load as _st_load

    try:
        arrays = _st_load(raw)
    except SafetensorError as e:
        reason = "truncated" if "not fully covered" in str(e) else "damaged"
        raise CheckpointError(f"{path} is {reason}: safetensors says: {e}") from None
    return arrays, metadata


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    return path.read_bytes()


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a file written by :func:`save` (or any safetensors file) as ``name -> NumPy array``.

    Names come back in the order they were saved. Files written by :func:`save` are checked
    against their format version and SHA-256. Give the arrays to ``model.load_state_dict`` (on
    either backend) or wrap them with ``ember.tensor``.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        CheckpointError: for a truncated, modified or non-safetensors file (a pickle is refused
            without being run), or one of another format version.

    Example:
        >>> import os, tempfile
        >>> import ember
        >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> ember.save({"b": ember.zeros(2), "a": ember.ones(())}, path)
        >>> list(ember.load(path))
        ['b', 'a']
    """
    path = Path(path)
    arrays, metadata = _parse(_read_bytes(path, "ember.load: file"), path)
    if metadata.get("format") != _FILE_FORMAT:
        return {name: np.array(arrays[name]) for name in sorted(arrays)}  # another tool's file
    _check_version(metadata.get("format_version"), path)
    try:
        keys = json.loads(metadata["keys"])
        ordered = {name: np.array(arrays[name]) for name in keys}
    except (KeyError, ValueError, TypeError):
        raise CheckpointError(f"{path} is damaged: its list of array names does not match its "
                              f"arrays") from None
    if len(ordered) != len(arrays) or _digest(ordered) != metadata.get("sha256"):
        raise CheckpointError(f"{path}: SHA-256 mismatch: the arrays are not those that were "
                              f"saved (the file was modified or damaged)")
    return ordered


def _check_version(version: Any, path: Path) -> None:
    if str(version) != str(FORMAT_VERSION):
        raise CheckpointError(f"{path} has format version {version!r}; this ember reads version "
                              f"{FORMAT_VERSION} (use the ember version that wrote it)")


# -- checkpoint folders ----------------------------------------------------------------------------

def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} is not JSON-serialisable")


def _versions(folder: Path) -> list[int]:
    return [int(m.group(1)) for p in folder.iterdir() if (m := _ARRAYS.fullmatch(p.name))]


def write_checkpoint(directory: str | os.PathLike[str], arrays: Mapping[str, Mapping[str, Any]],
                     meta: Mapping[str, Any]) -> Path:
    """Write a checkpoint folder atomically: array groups in safetensors, ``meta`` in JSON.

    Args:
        directory: the folder (created if needed). A checkpoint already there stays readable
            until the new one is complete, then its array file is removed.
        arrays: groups of arrays, e.g. ``{"model": model.state_dict(), "optimizer":
            opt.state_dict(), "rng": {"key": ember.random.get_state()}}``; group names are
            non-empty strings without ``/``; groups may be empty.
        meta: JSON values (dicts with string keys, lists, strings, numbers incl. NaN, booleans,
            None; NumPy scalars are converted): config, hyperparameters, history, epoch…
            Tuples come back as lists.

    Returns:
        The folder, as a Path (what :func:`read_checkpoint` takes).

    Example:
        >>> import os, tempfile
        >>> import ember
        >>> folder = os.path.join(tempfile.mkdtemp(), "ckpt")
        >>> write_checkpoint(folder, {"model": {}}, {"epoch": 0}).name
        'ckpt'
    """
    folder = Path(directory)
    if not isinstance(arrays, Mapping):
        raise TypeError(f"write_checkpoint: arrays must be a mapping group -> (name -> array), "
                        f"got {type(arrays).__name__}")
    flat: dict[str, np.ndarray] = {}
    groups: dict[str, list[str]] = {}
    for group, members in arrays.items():
        if not isinstance(group, str) or not group or "/" in group:
            raise ValueError(f"write_checkpoint: group names are non-empty strings without '/', "
                             f"got {group!r}")
        host = _flat_arrays(members, f"write_checkpoint: arrays[{group!r}]")
        groups[group] = list(host)
        flat.update((f"{group}/{name}", a) for name, a in host.items())
    if not isinstance(meta, Mapping):
        raise TypeError(f"write_checkpoint: meta must be a mapping, got {type(meta).__name__}")
    try:
        json.dumps(meta, default=_json_default)
    except (TypeError, ValueError) as e:
        raise TypeError(f"write_checkpoint: meta is not JSON-serialisable: {e}; meta holds JSON "
                        f"values, put arrays in `arrays`") from None
    payload = _serialize(flat, {"format": _FILE_FORMAT, "format_version": str(FORMAT_VERSION)})

    folder.mkdir(parents=True, exist_ok=True)
    version = max([0, *_versions(folder)]) + 1
    array_file = f"arrays-{version:06d}.safetensors"
    pointer = {
        "format": _DIR_FORMAT,
        "format_version": FORMAT_VERSION,
        "arrays": {"file": array_file, "sha256": hashlib.sha256(payload).hexdigest(),
                   "groups": groups},
        "meta": json.loads(json.dumps(meta, default=_json_default)),  # as it will read back
    }
    pointer["sha256"] = _pointer_digest(pointer)
    text = json.dumps(pointer, indent=1)
    _atomic_write(folder / array_file, payload)
    _atomic_write(folder / POINTER, text.encode())  # the commit point
    for p in folder.iterdir():  # the previous versions and what killed writers left behind
        if (p.name != array_file and _ARRAYS.fullmatch(p.name)) or _TEMP.fullmatch(p.name):
            with contextlib.suppress(OSError):
                p.unlink()
    return folder


def _pointer_digest(pointer: Mapping[str, Any]) -> str:
    """SHA-256 of everything in checkpoint.json that is loaded: the array file's name, hash and
    groups, and the metadata (epoch, history, data order…), so that an edit is detected."""
    body = {k: pointer.get(k) for k in ("format", "format_version", "arrays", "meta")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def discard_leftovers(directory: str | os.PathLike[str]) -> bool:
    """True when ``directory`` holds no checkpoint and nothing else but the temporary files of a
    writer killed before its first commit; those are removed. A run can start afresh there.

    Example:
        >>> import tempfile
        >>> discard_leftovers(tempfile.mkdtemp())
        True
    """
    folder = Path(directory)
    if has_checkpoint(folder) or not folder.is_dir():
        return False
    entries = list(folder.iterdir())
    if not all(_TEMP.fullmatch(p.name) or _ARRAYS.fullmatch(p.name) for p in entries):
        return False
    for p in entries:  # uncommitted: a pointer never named them
        with contextlib.suppress(OSError):
            p.unlink()
    return True


def has_checkpoint(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds a committed checkpoint (it may still fail verification).

    Example:
        >>> import tempfile
        >>> has_checkpoint(tempfile.mkdtemp())
        False
    """
    return (Path(directory) / POINTER).is_file()


def read_checkpoint(
    directory: str | os.PathLike[str],
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Read and verify the checkpoint in ``directory``.

    Returns:
        ``(arrays, meta)``: the groups of NumPy arrays (names in the order written) and the JSON
        metadata, as given to :func:`write_checkpoint`.

    Raises:
        FileNotFoundError: when the folder holds no complete checkpoint.
        CheckpointError: for a damaged, modified or foreign file (SHA-256 mismatch, truncated,
            not JSON / not safetensors, a pickle), or another format version; the message names
            the file. Nothing is unpickled or executed.

    Example:
        >>> import os, tempfile
        >>> folder = os.path.join(tempfile.mkdtemp(), "ckpt")
        >>> _ = write_checkpoint(folder, {"rng": {"key": [1, 2]}}, {"note": "hi"})
        >>> read_checkpoint(folder)[0]["rng"]["key"].tolist()
        [1, 2]
    """
    folder = Path(directory)
    for attempt in range(2):  # a writer may commit and delete the old array file meanwhile
        pointer_path = folder / POINTER
        if not pointer_path.is_file():
            raise FileNotFoundError(f"no checkpoint in {str(folder)!r}: {str(pointer_path)!r} "
                                    f"does not exist (write one with write_checkpoint or "
                                    f"Trainer.save_checkpoint)")
        pointer = _read_pointer(pointer_path)
        info = pointer["arrays"]
        array_path = folder / info["file"]
        if not array_path.is_file() and attempt == 0:
            continue
        raw = _read_bytes(array_path, f"the array file of checkpoint {str(pointer_path)!r},")
        if hashlib.sha256(raw).hexdigest() != info["sha256"]:
            raise CheckpointError(f"{array_path}: SHA-256 mismatch with {pointer_path}: the "
                                  f"array file was modified, truncated or damaged")
        flat, metadata = _parse(raw, array_path)
        _check_version(metadata.get("format_version"), array_path)
        groups: dict[str, dict[str, np.ndarray]] = {}
        expected = 0
        for group, names in info["groups"].items():
            try:
                groups[group] = {name: np.array(flat[f"{group}/{name}"]) for name in names}
            except KeyError as e:
                raise CheckpointError(f"{array_path} lacks the array {e.args[0]!r} that "
                                      f"{pointer_path} lists") from None
            expected += len(names)
        if expected != len(flat):
            raise CheckpointError(f"{array_path} holds arrays that {pointer_path} does not list")
        return groups, pointer["meta"]
    raise AssertionError("unreachable")  # pragma: no cover


def _read_pointer(path: Path) -> dict[str, Any]:
    raw = _read_bytes(path, "checkpoint file")
    kind = _foreign(raw)
    if kind is not None:
        raise CheckpointError(f"{path} is {kind}, not ember's JSON checkpoint file; ember never "
                              f"unpickles files (loading a pickle can run arbitrary code)")
    try:
        pointer = json.loads(raw)
    except ValueError as e:
        raise CheckpointError(f"{path} is not valid JSON (truncated or damaged): {e}") from None
    if not isinstance(pointer, dict) or pointer.get("format") != _DIR_FORMAT:
        raise CheckpointError(f"{path} is not an ember checkpoint file (no \"format\": "
                              f"\"{_DIR_FORMAT}\")")
    _check_version(pointer.get("format_version"), path)
    info = pointer.get("arrays")
    if (not isinstance(info, dict) or not isinstance(info.get("file"), str)
            or not _ARRAYS.fullmatch(info["file"]) or not isinstance(info.get("sha256"), str)
            or not isinstance(info.get("groups"), dict) or "meta" not in pointer
            or not all(isinstance(names, list) and all(isinstance(n, str) for n in names)
                       for names in info["groups"].values())):
        raise CheckpointError(f"{path} is damaged: its \"arrays\" entry (file, sha256, groups) or "
                              f"its \"meta\" entry is missing or malformed")
    if pointer.get("sha256") != _pointer_digest(pointer):
        what = ("has no SHA-256 of its metadata (written by an older ember? save it again)"
                if "sha256" not in pointer else
                "SHA-256 mismatch: its metadata (epoch, history, data order…) or its list of "
                "arrays was edited or damaged after it was written")
        raise CheckpointError(f"{path} {what}; resuming from it would not continue the run "
                              f"that wrote it")
    return pointer
