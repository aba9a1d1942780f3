"""MNIST and Fashion-MNIST: an IDX (gz) reader, a checked download into a cache, a shipped subset.

Where the files come from, in order:

1. ``subset="5k"`` (MNIST only): the 5,000-image real MNIST subset shipped inside ember
   (4,000 train / 1,000 test; see ``ember/data/mnist-5k/README.md``). Always offline.
2. The folder ``root`` when given, else the cache ``$EMBER_DATA/<name>`` (``EMBER_DATA`` defaults to
   ``~/.cache/ember``; ``<name>`` is ``mnist`` or ``fashion-mnist``), holding the original file
   names, gzip-compressed or not.
3. With ``download=True``, the missing files are fetched from the mirrors in :data:`RESOURCES`
   into that folder: written to a temporary file beside the target and renamed only after its
   SHA-256 matches.

When none of this works, the error lists the files, the folder to put them in and the offline
subset. Every file is validated as it is read: magic number (2051 images, 2049 labels), dimensions
and that the data length matches the header.

Example:
    >>> from ember.data import load_mnist
    >>> images, labels = load_mnist(subset="5k", train=False)
    >>> images.shape, images.dtype, labels.shape, labels.dtype
    ((1000, 28, 28), dtype('float32'), (1000,), dtype('int64'))
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np  # file decoding happens on the host

__all__ = [
    "load_mnist",
    "load_fashion_mnist",
    "read_idx",
    "data_home",
    "Resource",
    "RESOURCES",
    "SUBSET_DIR",
]

SUBSET_DIR = Path(__file__).resolve().parent / "mnist-5k"
"""The shipped 5k MNIST subset (package data)."""

TIMEOUT = 30.0
"""Seconds to wait for a mirror before trying the next one."""

_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049
# IDX type codes (third byte of the magic number) and the big-endian dtypes they stand for.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FILES = {
    True: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    False: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class Resource:
    """Where a data set's four IDX files come from and what their SHA-256 sums must be."""

    title: str
    folder: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str] = field(default_factory=dict)


# SHA-256 of the official gzip files, as published in many independent projects (TensorFlow
# Datasets' url_checksums, torchvision-style loaders, dataset manifests) and cross-checked there.
RESOURCES: dict[str, Resource] = {
    "mnist": Resource(
        title="MNIST",
        folder="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz":
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz":
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz":
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz":
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ),
    "fashion-mnist": Resource(
        title="Fashion-MNIST",
        folder="fashion-mnist",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz":
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz":
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz":
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz":
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    ),
}


def data_home() -> Path:
    """The cache folder: ``$EMBER_DATA`` if set, else ``~/.cache/ember``.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> from ember.data import data_home
        >>> with mock.patch.dict(os.environ, {"EMBER_DATA": "/tmp/my-data"}):
        ...     print(data_home())
        /tmp/my-data
    """
    env = os.environ.get("EMBER_DATA", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ember"


def read_idx(path: str | os.PathLike[str], magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a NumPy array, validating it.

    Args:
        path: the file.
        magic: the magic number it must have (2051 for MNIST images, 2049 for labels), or ``None``
            to accept any valid IDX header.

    Raises:
        ValueError: naming the file, when the magic number, the dimensions or the data length
            do not match, or the gzip stream is corrupt or cut short.

    Example:
        >>> from ember.data.mnist import SUBSET_DIR, read_idx
        >>> read_idx(SUBSET_DIR / "t10k-labels-idx1-ubyte.gz", magic=2049).shape
        (1000,)
    """
    path = Path(path)
    fix = "delete it and download it again (or copy a good one)"
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a readable gzip file ({e}); {fix}") from e
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an IDX header; {fix}")
    found = int.from_bytes(raw[:4], "big")
    if magic is not None and found != magic:
        kind = {_IMAGE_MAGIC: "image", _LABEL_MAGIC: "label"}.get(magic, "IDX")
        raise ValueError(
            f"{path}: bad magic number {found} (expected {magic} for an IDX {kind} file); the file "
            f"is not what its name says or is corrupt; {fix}"
        )
    code, ndim = raw[2], raw[3]
    if raw[:2] != b"\0\0" or code not in _IDX_TYPES or ndim == 0:
        raise ValueError(f"{path}: bad magic number {found}: not an IDX file; {fix}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: the header of {ndim} dimensions is cut short; {fix}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[code])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        shape = " x ".join(map(str, dims))
        raise ValueError(
            f"{path}: the header says {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header}; the file is truncated or corrupt; {fix}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _find(folder: Path, name: str) -> Path | None:
    """The file ``name`` in ``folder``, or its uncompressed twin (``name`` without ``.gz``)."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _download(url: str, target: Path, sha256: str | None) -> None:
    """Fetch ``url`` into a temp file beside ``target``; rename it once the SHA-256 matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if sha256 is not None and digest.hexdigest() != sha256:
            raise _ChecksumError(
                f"{target.name} downloaded from {url} has SHA-256 {digest.hexdigest()} but "
                f"{sha256} was expected; the download is corrupt or the mirror changed the file. "
                f"The file was not kept; try again, or put a good copy into {target.parent}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class _ChecksumError(ValueError):
    pass


def _reason(e: BaseException) -> str:
    """A short reason: "HTTP Error 404: Not Found", "[Errno 111] Connection refused"…"""
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        return str(e.reason)
    return str(e) or type(e).__name__


def _missing_message(res: Resource, folder: Path, missing: list[str], why: str,
                     failures: list[str]) -> str:
    urls = ", ".join(f"{res.mirrors[0]}{name}" for name in missing) if res.mirrors else ""
    lines = [
        f"{res.title}: {' and '.join(missing)} not found in {folder} ({why}).",
        f"Put the files {', '.join(missing)} (gzip-compressed or not) into {folder}"
        + (f" (they are at {urls})" if urls else "")
        + ", pass root= the folder that holds them, or set EMBER_DATA to a cache folder.",
    ]
    if failures:
        lines.insert(1, "Downloads failed: " + "; ".join(failures) + ".")
    if res.folder == "mnist":
        lines.append('Offline, load_mnist(subset="5k") reads the 5,000-image subset shipped with '
                     'ember.')
    return "\n".join(lines)


def _files(key: str, root: Any, train: bool, download: bool) -> list[Path]:
    """Paths of the images and labels files for one split, downloading what is missing."""
    res = RESOURCES[key]
    folder = Path(root).expanduser() if root is not None else data_home() / res.folder
    names = _FILES[bool(train)]
    missing = [n for n in names if _find(folder, n) is None]
    failures: list[str] = []
    if missing and download:
        dead: set[str] = set()  # mirrors that could not be reached are not asked again
        for name in missing:
            for mirror in res.mirrors:
                if mirror in dead:
                    continue
                try:
                    _download(mirror + name, folder / name, res.sha256.get(name))
                    break
                except _ChecksumError:
                    raise
                except (OSError, http.client.HTTPException, ValueError) as e:  # next mirror
                    failures.append(f"{mirror}{name}: {_reason(e)}")
                    if not isinstance(e, urllib.error.HTTPError):
                        dead.add(mirror)
        missing = [n for n in names if _find(folder, n) is None]
    if missing:
        why = "all mirrors failed" if download else "download=False"
        raise FileNotFoundError(_missing_message(res, folder, missing, why, failures))
    return [p for p in (_find(folder, n) for n in names) if p is not None]


def _load(paths: list[Path], raw: bool) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = paths
    images = read_idx(images_path, magic=_IMAGE_MAGIC)
    labels = read_idx(labels_path, magic=_LABEL_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: images of shape {images.shape[1:]}, expected (28, 28); "
                         f"this is not an MNIST-family file")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                         f"{len(labels)} labels of shape {labels.shape}; use files of one split")
    if len(labels) and int(labels.max()) > 9:
        raise ValueError(f"{labels_path}: label {int(labels.max())} is out of the range 0..9")
    x = images if raw else images.astype(np.float32) / np.float32(255.0)
    return x, labels.astype(np.int64)


def load_mnist(root: str | os.PathLike[str] | None = None, train: bool = True,
               download: bool = True, subset: str | None = None,
               raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """MNIST handwritten digits as ``(images, labels)`` NumPy arrays.

    Args:
        root: the folder holding the four IDX files (original names, ``.gz`` or not); default the
            cache ``$EMBER_DATA/mnist`` (``~/.cache/ember/mnist``).
        train: the 60,000-image training split (or the subset's 4,000), else the 10,000 (1,000)
            test images.
        download: fetch missing files from the mirrors, checking their SHA-256.
        subset: ``"5k"`` for the real MNIST subset shipped with ember (4,000 train / 1,000 test,
            400 / 100 per digit), read offline; ``root`` and ``download`` are then not used.
        raw: images as uint8 0..255 instead of float32 in [0, 1].

    Returns:
        ``images`` of shape ``(N, 28, 28)``, float32 in [0, 1] (uint8 with ``raw=True``), and
        ``labels`` of shape ``(N,)``, int64 digits 0..9.

    Example:
        >>> from ember.data import load_mnist
        >>> x, y = load_mnist(subset="5k")
        >>> x.shape, float(x.min()), float(x.max()), sorted(set(y.tolist())) == list(range(10))
        ((4000, 28, 28), 0.0, 1.0, True)
    """
    if subset is not None:
        if subset != "5k":
            raise ValueError(f'load_mnist: unknown subset {subset!r}; the shipped one is "5k"')
        names = _FILES[bool(train)]
        return _load([SUBSET_DIR / name for name in names], raw)
    return _load(_files("mnist", root, train, download), raw)


def load_fashion_mnist(root: str | os.PathLike[str] | None = None, train: bool = True,
                       download: bool = True, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST (Zalando's clothing images) as ``(images, labels)``, like :func:`load_mnist`.

    The files go into ``root`` or the cache ``$EMBER_DATA/fashion-mnist``; there is no shipped
    subset. Labels 0..9 are T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker,
    Bag, Ankle boot.

    Example:
        >>> from ember.data import load_fashion_mnist
        >>> try:
        ...     load_fashion_mnist(root="/nonexistent", download=False)
        ... except FileNotFoundError as e:
        ...     print(str(e).splitlines()[0])
        Fashion-MNIST: train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz not found in \
/nonexistent (download=False).
    """
    return _load(_files("fashion-mnist", root, train, download), raw)
