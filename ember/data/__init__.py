"""Data: batching (DataLoader), small synthetic sets, MNIST and Fashion-MNIST, text corpora.

Example:
    >>> from ember.data import DataLoader, moons
    >>> x, y = moons(64, noise=0.1, seed=0)
    >>> xb, yb = next(iter(DataLoader((x, y), batch_size=16, shuffle=True, seed=0)))
    >>> xb.shape, yb.dtype
    ((16, 2), dtype('int64'))
"""

from __future__ import annotations

from ember.data.loader import BatchStream, DataLoader, Execution, validate_arrays
from ember.data.mnist import data_home, load_fashion_mnist, load_mnist, read_idx
from ember.data.synthetic import blobs, circles, ellipses, moons, two_spirals, xor
from ember.data.text import (
    CharTokenizer,
    NameExamples,
    TokenWindows,
    load_names,
    load_tiny_shakespeare,
    name_examples,
    split_names,
)

__all__ = [
    "DataLoader",
    "BatchStream",
    "Execution",
    "validate_arrays",
    "two_spirals",
    "ellipses",
    "moons",
    "circles",
    "xor",
    "blobs",
    "load_mnist",
    "load_fashion_mnist",
    "read_idx",
    "data_home",
    "load_tiny_shakespeare",
    "load_names",
    "split_names",
    "name_examples",
    "CharTokenizer",
    "NameExamples",
    "TokenWindows",
]
