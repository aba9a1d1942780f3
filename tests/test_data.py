"""ember.data: DataLoader (order, resume, shards, validation), synthetic sets, MNIST IDX loading."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

import ember
from ember import backend as _backend
from ember.data import (
    DataLoader,
    blobs,
    circles,
    ellipses,
    load_fashion_mnist,
    load_mnist,
    moons,
    read_idx,
    two_spirals,
    validate_arrays,
    xor,
)
from ember.data import mnist as mnist_mod

# ------------------------------------------------------------------------------------------------
# DataLoader
# ------------------------------------------------------------------------------------------------


def _np(t):
    return np.asarray(t.numpy())


def test_batches_of_a_tuple_follow_the_dtype_policy(backend):
    x = np.arange(30, dtype=np.float64).reshape(10, 3)
    y = np.arange(10, dtype=np.int32)
    loader = DataLoader((x, y), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    for i, (xb, yb) in enumerate(batches):
        assert isinstance(xb, ember.Tensor) and isinstance(yb, ember.Tensor)
        assert _backend.get().owns(xb.data) and _backend.get().owns(yb.data)
        assert xb.dtype == np.float32 and yb.dtype == np.int64
        assert not xb.requires_grad
        np.testing.assert_array_equal(_np(xb), x[4 * i:4 * i + 4].astype(np.float32))
        np.testing.assert_array_equal(_np(yb), y[4 * i:4 * i + 4])
    assert [tuple(b.shape) for b, _ in batches] == [(4, 3), (4, 3), (2, 3)]


def test_single_array_gives_single_tensors_and_drop_last():
    x = np.arange(10, dtype=np.float32)
    loader = DataLoader(x, batch_size=3, drop_last=True)
    batches = list(loader)
    assert len(loader) == 3
    assert all(isinstance(b, ember.Tensor) for b in batches)
    np.testing.assert_array_equal(np.concatenate([_np(b) for b in batches]), x[:9])
    assert DataLoader(x, batch_size=3).__len__() == 4
    # float16, float32 and bool keep their dtype; uint8 becomes int64
    assert next(iter(DataLoader(np.ones(4, np.float16), 2))).dtype == np.float16
    assert next(iter(DataLoader(np.ones(4, bool), 2))).dtype == np.bool_
    assert next(iter(DataLoader(np.ones(4, np.uint8), 2))).dtype == np.int64


class Squares:
    """A generic data set: __len__ and __getitem__ returning (features, label)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.array([i, i * i], dtype=np.float64), i % 3


def test_generic_dataset_matches_the_array_fast_path(backend):
    n = 23
    x = np.stack([np.arange(n), np.arange(n) ** 2], axis=1).astype(np.float64)
    y = np.arange(n) % 3
    fast = DataLoader((x, y), batch_size=5, shuffle=True, seed=7)
    slow = DataLoader(Squares(n), batch_size=5, shuffle=True, seed=7)
    assert len(fast) == len(slow) == 5
    for _ in range(2):  # two epochs
        for (xf, yf), (xs, ys) in zip(fast, slow, strict=True):
            assert xs.dtype == np.float32 and ys.dtype == np.int64
            np.testing.assert_array_equal(_np(xf), _np(xs))
            np.testing.assert_array_equal(_np(yf), _np(ys))
    # a list of arrays is (x, y, ...) data, like a tuple; a data set's items may be single arrays
    listed = next(iter(DataLoader([np.ones(2), np.zeros(2)], batch_size=2)))
    assert isinstance(listed, tuple) and len(listed) == 2

    class Plain:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.full(2, float(i))

    b = next(iter(DataLoader(Plain(), batch_size=2)))
    assert isinstance(b, ember.Tensor)
    np.testing.assert_array_equal(_np(b), [[0, 0], [1, 1]])


def test_shuffle_is_a_function_of_seed_and_epoch_only():
    n = 50
    x = np.arange(n)
    loader = DataLoader(x, batch_size=8, shuffle=True, seed=123)
    epochs = []
    for e in range(3):
        assert loader.epoch == e
        np.random.seed(e)  # NumPy's global state must not matter
        order = np.concatenate([_np(b) for b in loader])
        np.testing.assert_array_equal(order, np.random.default_rng([123, e]).permutation(n))
        epochs.append(order)
    assert loader.epoch == 3
    assert not np.array_equal(epochs[0], epochs[1])
    assert sorted(epochs[2].tolist()) == list(range(n))
    again = DataLoader(x, batch_size=8, shuffle=True, seed=123)
    np.testing.assert_array_equal(np.concatenate([_np(b) for b in again]), epochs[0])
    # seed=None follows ember.manual_seed
    try:
        ember.manual_seed(5)
        a = DataLoader(x, batch_size=50, shuffle=True)
        ember.manual_seed(5)
        b = DataLoader(x, batch_size=50, shuffle=True)
    finally:
        ember.manual_seed(0)
    assert a.seed == b.seed == 5
    np.testing.assert_array_equal(_np(next(iter(a))), _np(next(iter(b))))
    # without shuffle: the data's own order, every epoch
    plain = DataLoader(x, batch_size=50)
    for _ in range(2):
        np.testing.assert_array_equal(_np(next(iter(plain))), x)


def test_state_dict_resumes_the_same_batches():
    x = np.arange(21)
    ref = DataLoader(x, batch_size=4, shuffle=True, seed=9)
    seen = [_np(b).tolist() for _ in range(3) for b in ref]  # 3 epochs of 6 batches
    assert len(seen) == 18
    for stop in (0, 2, 5, 6, 11):  # mid-epoch, the last batch of an epoch, an epoch boundary
        first = DataLoader(x, batch_size=4, shuffle=True, seed=9)
        taken = []
        while len(taken) < stop:
            for b in first:
                taken.append(_np(b).tolist())
                if len(taken) == stop:
                    break
        state = first.state_dict()
        assert state["epoch"] * 6 + state["position"] == stop
        resumed = DataLoader(x, batch_size=4, shuffle=True, seed=1)  # the seed comes from state
        resumed.load_state_dict(dict(state))
        rest = []
        while len(taken) + len(rest) < 18:
            rest += [_np(b).tolist() for b in resumed]
        assert taken + rest == seen, stop


def test_early_stop_continues_and_state_checks():
    loader = DataLoader(np.arange(10), batch_size=3, seed=0)
    it = iter(loader)
    next(it)
    assert (loader.epoch, loader.position) == (0, 1)
    assert [_np(b).tolist() for b in loader] == [[3, 4, 5], [6, 7, 8], [9]]
    assert (loader.epoch, loader.position) == (1, 0)
    state = loader.state_dict()
    assert state == {"epoch": 1, "position": 0, "seed": 0, "shuffle": False, "batch_size": 3,
                     "num_samples": 10}
    other = DataLoader(np.arange(10), batch_size=2)
    with pytest.raises(ValueError, match=r"the state has batch_size=3 but this loader has "
                                         r"batch_size=2; build the loader as it was saved"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match=r"position 9 is out of range"):
        loader.load_state_dict({"epoch": 0, "position": 9})
    loader.load_state_dict({"epoch": 2, "position": 4})  # == len: the next epoch
    assert (loader.epoch, loader.position) == (3, 0)


@pytest.mark.parametrize("n,count", [(20, 2), (23, 3), (7, 7)])
def test_shards_are_disjoint_equal_slices_of_one_permutation(n, count):
    x = np.arange(n)
    for epoch in range(2):
        parts = []
        for rank in range(count):
            loader = DataLoader(x, batch_size=2, shuffle=True, seed=4, shard=(rank, count))
            loader.load_state_dict({"epoch": epoch, "position": 0})
            assert len(loader) == -(-(n // count) // 2)
            parts.append(np.concatenate([_np(b) for b in loader]))
        assert {len(p) for p in parts} == {n // count}
        union = np.concatenate(parts)
        assert len(set(union.tolist())) == len(union)  # disjoint
        perm = np.random.default_rng([4, epoch]).permutation(n)
        keep = perm[: (n // count) * count]  # the remainder at the end of the permutation is left
        assert sorted(union.tolist()) == sorted(keep.tolist())
        for rank in range(count):
            np.testing.assert_array_equal(parts[rank], keep[rank::count])


def test_epoch_arrays_stack_the_epoch(backend):
    x = np.arange(22 * 3, dtype=np.float32).reshape(22, 3)
    y = np.arange(22)
    loader = DataLoader((x, y), batch_size=4, shuffle=True, seed=2)
    xs, ys = loader.epoch_arrays(1)
    assert xs.shape == (5, 4, 3) and ys.shape == (5, 4)
    assert _backend.get().owns(xs.data)
    assert (loader.epoch, loader.position) == (0, 0)  # the state does not move
    loader.load_state_dict({"epoch": 1, "position": 0})
    batches = list(loader)[:5]  # the sixth, short batch is dropped by epoch_arrays
    np.testing.assert_array_equal(_np(xs), np.stack([_np(b) for b, _ in batches]))
    np.testing.assert_array_equal(_np(ys), np.stack([_np(b) for _, b in batches]))
    single = DataLoader(np.arange(9), batch_size=3).epoch_arrays()
    np.testing.assert_array_equal(_np(single), np.arange(9).reshape(3, 3))
    generic = DataLoader(Squares(7), batch_size=3).epoch_arrays()
    assert generic[0].shape == (2, 3, 2) and generic[1].shape == (2, 3)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: DataLoader(np.zeros((0, 3))),
         "DataLoader: data is empty (0 samples); pass at least one sample"),
        (lambda: DataLoader((np.zeros((0, 3)), np.zeros(0))),
         "DataLoader: x is empty (0 samples); pass at least one sample"),
        (lambda: DataLoader(np.zeros(3), batch_size=0),
         "DataLoader: batch_size must be a positive integer, got 0"),
        (lambda: DataLoader(np.zeros(3), batch_size=-2),
         "DataLoader: batch_size must be a positive integer, got -2"),
        (lambda: DataLoader(np.zeros(3), batch_size=2.5),
         "DataLoader: batch_size must be a positive integer, got 2.5"),
        (lambda: DataLoader(np.zeros(3), batch_size=True),
         "DataLoader: batch_size must be a positive integer, got True"),
        (lambda: DataLoader((np.zeros((100, 2)), np.zeros(99))),
         "DataLoader: x has 100 samples but y has 99; give every array the same first length"),
        (lambda: DataLoader((np.zeros(4), np.zeros(4), np.zeros(5))),
         "DataLoader: x has 4 samples but data[2] has 5"),
        (lambda: DataLoader((np.zeros((5, 2)), np.where(np.arange(10).reshape(5, 2) == 7,
                                                        np.nan, 1.0))),
         "DataLoader: y contains NaN at index (3, 1); remove or replace non-finite values "
         "before training"),
        (lambda: DataLoader(np.array([0.0, 1.0, np.inf])),
         "DataLoader: data contains inf at index (2);"),
        (lambda: DataLoader((np.array([[0.0, -np.inf]]),)),
         "DataLoader: x contains -inf at index (0, 1);"),
        (lambda: DataLoader(np.zeros(5), batch_size=8, drop_last=True),
         "DataLoader: drop_last=True with 5 samples and batch_size=8 leaves no batch"),
        (lambda: DataLoader(np.zeros(5), shard=(2, 2)),
         "DataLoader: shard must be (process_index, process_count) with 0 <= process_index < "
         "process_count, got (2, 2)"),
        (lambda: DataLoader(np.zeros(5), shard=(0, 6)),
         "DataLoader: 5 samples cannot be split into 6 shards"),
        (lambda: DataLoader(Squares(0)),
         "DataLoader: the data set (Squares) is empty (len 0)"),
        (lambda: DataLoader(()), "DataLoader: data is an empty tuple"),
        (lambda: DataLoader(np.zeros(3), seed=-1),
         "DataLoader: seed must be a non-negative integer or None, got -1"),
        (lambda: DataLoader(np.array(["a", "b"])),
         "DataLoader: data has dtype <U1; ember trains on floating point"),
    ],
)
def test_bad_data_is_refused_before_training(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value)


def test_bad_items_of_a_generic_dataset_name_the_item():
    class Bad(Squares):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return (x * np.nan if i == 4 else x), y

    loader = DataLoader(Bad(6), batch_size=3)
    it = iter(loader)
    next(it)
    with pytest.raises(ValueError, match=r"^DataLoader: item 4 \(field 0\) contains NaN at index "
                                         r"\(0\); remove or replace"):
        next(it)

    class Ragged(Squares):
        def __getitem__(self, i):
            return np.zeros(i + 1), 0

    with pytest.raises(ValueError, match=r"DataLoader: field 0 of samples 0\.\.1 of Ragged cannot "
                                         r"be stacked"):
        next(iter(DataLoader(Ragged(3), batch_size=2)))
    with pytest.raises(TypeError, match=r"DataLoader: cannot batch a int; pass an array"):
        DataLoader(5)


def test_validate_arrays_for_the_trainer():
    assert validate_arrays(np.zeros((4, 2)), None) == 4  # y=None is skipped
    with pytest.raises(ValueError, match=r"^Trainer.fit: x has 4 samples but y has 3"):
        validate_arrays(np.zeros((4, 2)), np.zeros(3), owner="Trainer.fit")
    with pytest.raises(ValueError, match=r"^fit: validation_data contains NaN at index \(1\)"):
        validate_arrays(np.array([1.0, np.nan]), names=["validation_data"], owner="fit")
    with pytest.raises(ValueError, match=r"DataLoader: x is a scalar"):
        validate_arrays(np.float32(1.0))
    t = ember.tensor([[1.0, 2.0]])
    assert validate_arrays(t) == 1


# ------------------------------------------------------------------------------------------------
# synthetic sets
# ------------------------------------------------------------------------------------------------

SETS = {
    "two_spirals": (two_spirals, 2),
    "ellipses": (ellipses, 2),
    "moons": (moons, 2),
    "circles": (circles, 2),
    "xor": (xor, 2),
    "blobs": (blobs, 3),
}


@pytest.mark.parametrize("name", sorted(SETS))
def test_synthetic_shapes_balance_and_reproducibility(name):
    fn, k = SETS[name]
    x, y = fn(120, noise=0.1, seed=3)
    assert x.shape == (120, 2) and x.dtype == np.float32
    assert y.shape == (120,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [120 // k] * k
    assert np.isfinite(x).all()
    x2, y2 = fn(120, noise=0.1, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _ = fn(120, noise=0.1, seed=4)
    assert not np.array_equal(x, x3)
    assert sorted(np.bincount(fn(121, noise=0.1, seed=0)[1]).tolist())[-1] == -(-121 // k)
    # rows are shuffled: the labels are not sorted
    assert not np.array_equal(y, np.sort(y))
    with pytest.raises(ValueError, match=rf"{name}: noise must be a finite number >= 0, got -1"):
        fn(10, noise=-1)
    with pytest.raises(ValueError, match=rf"{name}: n must be an integer >= {k}"):
        fn(1, noise=0.1)


def test_spiral_radius_grows_with_the_angle():
    turns = 1.5
    x, y = two_spirals(400, seed=0, turns=turns)
    r = np.hypot(x[:, 0], x[:, 1]).astype(np.float64)
    angle = np.arctan2(x[:, 1], x[:, 0]).astype(np.float64)
    assert r.min() >= 0.05 - 1e-6 and r.max() <= 1 + 1e-6
    expected = 2 * np.pi * turns * r + y * np.pi
    diff = np.angle(np.exp(1j * (angle - expected)))  # wrapped to (-pi, pi]
    assert np.abs(diff).max() < 1e-4
    # class 1 is class 0 turned by half a revolution: the same radius, the opposite point
    x1 = two_spirals(400, seed=0, turns=turns, noise=0.0)[0]
    assert np.array_equal(x, x1)


def test_circles_moons_ellipses_xor_blobs_geometry():
    x, y = circles(200, seed=1, factor=0.3)
    r = np.hypot(x[:, 0], x[:, 1])
    np.testing.assert_allclose(r[y == 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(r[y == 1], 0.3, atol=1e-6)
    x, y = moons(200, seed=1)
    np.testing.assert_allclose(np.hypot(x[y == 0, 0], x[y == 0, 1]), 1.0, atol=1e-6)
    assert (x[y == 0, 1] >= -1e-6).all()
    np.testing.assert_allclose(np.hypot(x[y == 1, 0] - 1, x[y == 1, 1] - 0.5), 1.0, atol=1e-6)
    assert (x[y == 1, 1] <= 0.5 + 1e-6).all()
    a, b, angle, k = 2.0, 0.5, 0.4, 3
    x, y = ellipses(300, seed=1, classes=k, axes=(a, b), angle=angle)
    u = np.cos(angle) * x[:, 0] + np.sin(angle) * x[:, 1]  # rotate back by angle
    v = -np.sin(angle) * x[:, 0] + np.cos(angle) * x[:, 1]
    rho = np.hypot(u / a, v / b)
    assert (rho >= y / k - 1e-5).all() and (rho <= (y + 1) / k + 1e-5).all()
    x, y = xor(200, seed=1)
    assert ((x[:, 0] * x[:, 1] < 0) == (y == 1)).all()
    assert (np.abs(x) <= 1).all()
    x, y = blobs(30, centers=[[0.0, 0.0], [5.0, 5.0]], noise=0.0, seed=0)
    np.testing.assert_array_equal(x[y == 1], np.full((15, 2), 5.0, np.float32))
    x, y = blobs(3000, centers=3, noise=0.5, seed=0, radius=3.0)
    for c in range(3):
        t = 2 * np.pi * c / 3
        np.testing.assert_allclose(x[y == c].mean(0), [3 * np.cos(t), 3 * np.sin(t)], atol=0.06)
        np.testing.assert_allclose(x[y == c].std(0), 0.5, atol=0.05)


def _linear_accuracy(x, y, steps=300):
    """Softmax regression on the raw coordinates, trained by full-batch gradient descent."""
    k = int(y.max()) + 1
    xb = np.concatenate([x, np.ones((len(x), 1))], axis=1).astype(np.float64)
    w = np.zeros((3, k))
    onehot = np.eye(k)[y]
    for _ in range(steps):
        z = xb @ w
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        w -= 0.5 * xb.T @ (p - onehot) / len(x)
    return float(((xb @ w).argmax(1) == y).mean())


def _nearest_neighbour_accuracy(x, y):
    """Leave-one-out 1-NN: high when the classes are what they claim (separate, learnable)."""
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((y[d.argmin(1)] == y).mean())


def test_a_linear_classifier_separates_blobs_but_not_xor_circles_spirals():
    assert _linear_accuracy(*blobs(300, noise=0.5, seed=0)) > 0.97
    assert _linear_accuracy(*xor(300, seed=0)) < 0.65
    assert _linear_accuracy(*circles(300, seed=0)) < 0.65
    assert _linear_accuracy(*ellipses(300, seed=0)) < 0.7
    assert _linear_accuracy(*two_spirals(300, seed=0)) < 0.75
    assert 0.8 < _linear_accuracy(*moons(300, seed=0)) < 0.95  # nearly, not quite, linear
    # the classes of xor and ellipses touch (no gap), so 1-NN errs only along the boundary
    for fn in (two_spirals, ellipses, moons, circles, xor):
        assert _nearest_neighbour_accuracy(*fn(300, noise=0.02, seed=0)) > 0.9, fn.__name__
    assert _nearest_neighbour_accuracy(*blobs(300, noise=0.3, seed=0)) > 0.97


# ------------------------------------------------------------------------------------------------
# MNIST
# ------------------------------------------------------------------------------------------------

SUBSET_SHA256 = {  # the shipped files, as listed in ember/data/mnist-5k/README.md
    "train-images-idx3-ubyte.gz":
        "fd5870a7d0c129c73066c5185bd140f3fd2e687a49664302f85f5b444b368fe1",
    "train-labels-idx1-ubyte.gz":
        "b0ec418df5245d5163835c454ef1af4c338ba0dcc7a9698956c34677fb574234",
    "t10k-images-idx3-ubyte.gz":
        "4e1ed994ea4b05ac9ad74a0a29d771faeb1a692476c17d551ea39d72b1bc96ed",
    "t10k-labels-idx1-ubyte.gz":
        "75898356302976bafb997b3d724bb3a77860495ff65037a554b77c20d7d0864e",
}
NAMES = sorted(SUBSET_SHA256)


@functools.cache
def _subset(train):
    return load_mnist(subset="5k", train=train, raw=True)


def test_shipped_subset_is_inside_the_package_and_intact():
    folder = mnist_mod.SUBSET_DIR
    assert folder == Path(ember.__file__).resolve().parent / "data" / "mnist-5k"
    for name, digest in SUBSET_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert "CC BY-SA 3.0" in (folder / "README.md").read_text()


def test_load_mnist_subset_format():
    x, y = load_mnist(subset="5k")
    assert x.shape == (4000, 28, 28) and x.dtype == np.float32
    assert y.shape == (4000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y).tolist() == [400] * 10
    raw, y_raw = _subset(True)
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(x, raw.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, y_raw)
    xt, yt = load_mnist(subset="5k", train=False)
    assert xt.shape == (1000, 28, 28) and np.bincount(yt).tolist() == [100] * 10
    # a real digit: ink in the centre, a blank border
    assert raw[:, 0, :].max() == 0 and raw[:, 10:18, 10:18].mean() > 40
    with pytest.raises(ValueError, match=r"load_mnist: unknown subset '60k'; the shipped one is"):
        load_mnist(subset="60k")


def _copy_subset(folder, names=NAMES):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(mnist_mod.SUBSET_DIR / name, folder / name)
    return folder


def test_a_given_folder_and_the_cache_are_read_offline(tmp_path, monkeypatch):
    root = _copy_subset(tmp_path / "mine")
    x, y = load_mnist(root=root, train=False, download=False, raw=True)
    np.testing.assert_array_equal(x, _subset(False)[0])
    np.testing.assert_array_equal(y, _subset(False)[1])
    # uncompressed files work too
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in NAMES:
        (plain / name.removesuffix(".gz")).write_bytes(gzip.decompress((root / name).read_bytes()))
    np.testing.assert_array_equal(load_mnist(root=plain, download=False, raw=True)[0],
                                  _subset(True)[0])
    # EMBER_DATA moves the cache: <EMBER_DATA>/mnist and <EMBER_DATA>/fashion-mnist
    monkeypatch.setenv("EMBER_DATA", str(tmp_path / "cache"))
    assert mnist_mod.data_home() == tmp_path / "cache"
    _copy_subset(tmp_path / "cache" / "fashion-mnist")
    x, _ = load_fashion_mnist(download=False, raw=True)
    np.testing.assert_array_equal(x, _subset(True)[0])
    monkeypatch.delenv("EMBER_DATA")
    assert mnist_mod.data_home() == Path.home() / ".cache" / "ember"


def test_idx_reader_validates_magic_sizes_and_gzip(tmp_path):
    good = gzip.decompress((mnist_mod.SUBSET_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert good[:8] == bytes([0, 0, 8, 1, 0, 0, 3, 232])  # 2049, 1000 labels
    bad_magic = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad_magic.write_bytes(gzip.compress(b"\0\0\x08\x03" + good[4:]))
    with pytest.raises(ValueError, match=rf"^{bad_magic}: bad magic number 2051 \(expected 2049 "
                                         rf"for an IDX label file\)"):
        read_idx(bad_magic, magic=2049)
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(good[:-7]))
    with pytest.raises(ValueError, match=rf"^{short}: the header says 1000 \(1000 bytes of data\) "
                                         rf"but the file holds 993; the file is truncated"):
        read_idx(short, magic=2049)
    cut = tmp_path / "cut.gz"
    cut.write_bytes((mnist_mod.SUBSET_DIR / "t10k-images-idx3-ubyte.gz").read_bytes()[:5000])
    with pytest.raises(ValueError, match=rf"^{cut}: not a readable gzip file"):
        read_idx(cut)
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x12\x34\x56\x78" + bytes(20))
    with pytest.raises(ValueError, match=r"bad magic number 305419896: not an IDX file"):
        read_idx(junk)
    # other IDX types are read with their own dtype (big-endian on disk)
    floats = tmp_path / "floats"
    floats.write_bytes(b"\0\0\x0d\x02" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
                       + np.arange(6, dtype=">f4").tobytes())
    out = read_idx(floats)
    assert out.dtype == np.float32 and out.tolist() == [[0, 1, 2], [3, 4, 5]]
    # load_mnist checks the pair: images with labels of another split
    mixed = _copy_subset(tmp_path / "mixed", ["train-images-idx3-ubyte.gz"])
    shutil.copyfile(mnist_mod.SUBSET_DIR / "t10k-labels-idx1-ubyte.gz",
                    mixed / "train-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match=r"holds 4000 images but .* holds 1000 labels"):
        load_mnist(root=mixed, download=False)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A local HTTP server: good/ holds the subset, bad/ truncated copies; nothing else exists."""
    top = tmp_path_factory.mktemp("mirror")
    _copy_subset(top / "good")
    (top / "bad").mkdir()
    for name in NAMES:
        raw = gzip.decompress((mnist_mod.SUBSET_DIR / name).read_bytes())
        # the header says 100 bytes more than the file holds
        (top / "bad" / name).write_bytes(gzip.compress(raw[:-100], compresslevel=1))
    handler = functools.partial(_Quiet, directory=str(top))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", top
    httpd.shutdown()
    httpd.server_close()


def _use(monkeypatch, key, mirrors, sha256):
    old = mnist_mod.RESOURCES[key]
    res = mnist_mod.Resource(old.title, old.folder, tuple(mirrors), dict(sha256))
    monkeypatch.setitem(mnist_mod.RESOURCES, key, res)
    monkeypatch.setattr(mnist_mod, "TIMEOUT", 5.0)


def test_download_checks_sha256_and_falls_back_over_mirrors(tmp_path, monkeypatch, server):
    url, _ = server
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    _use(monkeypatch, "mnist", [closed, url + "missing/", url + "good/"], SUBSET_SHA256)
    monkeypatch.setenv("EMBER_DATA", str(tmp_path))
    x, y = load_mnist(train=False, raw=True)
    np.testing.assert_array_equal(x, _subset(False)[0])
    np.testing.assert_array_equal(y, _subset(False)[1])
    files = sorted(p.name for p in (tmp_path / "mnist").iterdir())
    assert files == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]  # no .part left
    # a second call reads the cache: with no mirror at all it still works
    _use(monkeypatch, "mnist", [], {})
    np.testing.assert_array_equal(load_mnist(train=False, raw=True)[1], y)
    # Fashion-MNIST goes through the same path into its own folder
    _use(monkeypatch, "fashion-mnist", [url + "good/"], SUBSET_SHA256)
    assert load_fashion_mnist(train=True)[0].shape == (4000, 28, 28)
    assert (tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_download_with_a_wrong_checksum_keeps_nothing(tmp_path, monkeypatch, server):
    url, _ = server
    wrong = dict(SUBSET_SHA256, **{"t10k-labels-idx1-ubyte.gz": "0" * 64})
    _use(monkeypatch, "mnist", [url + "good/"], wrong)
    with pytest.raises(ValueError) as info:
        load_mnist(root=tmp_path / "dl", train=False)
    message = str(info.value)
    assert message.startswith(f"t10k-labels-idx1-ubyte.gz downloaded from "
                              f"{url}good/t10k-labels-idx1-ubyte.gz has SHA-256 "
                              f"{SUBSET_SHA256['t10k-labels-idx1-ubyte.gz']} but {'0' * 64} "
                              f"was expected")
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["t10k-images-idx3-ubyte.gz"]


def test_a_truncated_download_is_caught_by_the_reader(tmp_path, monkeypatch, server):
    url, top = server
    sums = {n: hashlib.sha256((top / "bad" / n).read_bytes()).hexdigest() for n in NAMES}
    _use(monkeypatch, "mnist", [url + "bad/"], sums)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz: the header says 1000 x 28 "
                                         r"x 28 \(784000 bytes of data\) but the file holds "
                                         r"783900; the file is truncated or corrupt; delete it"):
        load_mnist(root=tmp_path, train=False)


def test_neither_local_files_nor_download_says_what_to_do(tmp_path, monkeypatch, server):
    url, _ = server
    folder = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(root=folder, download=False)
    message = str(info.value)
    assert message.startswith(f"MNIST: train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz "
                              f"not found in {folder} (download=False).\nPut the files "
                              f"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz (gzip-"
                              f"compressed or not) into {folder} (they are at https://")
    assert 'load_mnist(subset="5k")' in message
    _use(monkeypatch, "mnist", [url + "missing/", url + "gone/"], SUBSET_SHA256)
    monkeypatch.setenv("EMBER_DATA", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(train=False)
    message = str(info.value)
    cache = tmp_path / "cache" / "mnist"
    assert message.startswith(f"MNIST: t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
                              f"not found in {cache} (all mirrors failed).\nDownloads failed: "
                              f"{url}missing/t10k-images-idx3-ubyte.gz: HTTP Error 404")
    assert f"{url}gone/t10k-labels-idx1-ubyte.gz" in message
    assert 'load_mnist(subset="5k")' in message
    assert not any(p.name.endswith(".part") for p in cache.iterdir())
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(root=folder, download=False)
    assert "subset" not in str(info.value)
