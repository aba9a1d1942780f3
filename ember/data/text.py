"""Text data for character-level language models: two corpora, a tokenizer and token windows.

``load_tiny_shakespeare()`` and ``load_names()`` read the corpora shipped with ember (offline, the
SHA-256 of the text checked on every load). :class:`CharTokenizer` maps characters to integers,
and :class:`TokenWindows` hands out random ``(x, y)`` windows of a token stream, ``y`` being ``x``
shifted by one (nanoGPT's ``get_batch``), plus a fixed pass over windows for evaluation.

Example:
    >>> from ember.data import CharTokenizer, TokenWindows, load_tiny_shakespeare
    >>> text = load_tiny_shakespeare()
    >>> tok = CharTokenizer.from_text(text)
    >>> windows = TokenWindows(tok.encode(text), block_size=8, batch_size=4, seed=0)
    >>> x, y = windows.next()
    >>> x.shape, tok.vocab_size, bool((x.numpy()[:, 1:] == y.numpy()[:, :-1]).all())
    ((4, 8), 65, True)
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np  # host-side only: tokens are encoded and windows indexed on the host

from ember import backend
from ember import random as _random
from ember.data.loader import Execution
from ember.tensor import Tensor

__all__ = [
    "load_tiny_shakespeare",
    "load_names",
    "split_names",
    "name_examples",
    "CharTokenizer",
    "TokenWindows",
    "NameExamples",
]

CORPORA_DIR = Path(__file__).resolve().parent / "corpora"
_CORPORA = {  # file -> SHA-256 of the uncompressed text (see corpora/README.md)
    "tinyshakespeare.txt.gz": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    "names.txt.gz": "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
}


def _read_corpus(name: str) -> str:
    path = CORPORA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"ember.data: the corpus {name} is missing from {CORPORA_DIR}; reinstall ember (the "
            f"corpora are package data)"
        )
    raw = gzip.decompress(path.read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != _CORPORA[name]:
        raise ValueError(
            f"ember.data: {path} has SHA-256 {digest} but {_CORPORA[name]} was expected; the file "
            f"is damaged: reinstall ember"
        )
    return raw.decode("utf-8")


def _split_fraction(owner: str, n: int, split: str | None, val_fraction: float) -> slice:
    if split not in (None, "train", "val"):
        raise ValueError(f"{owner}: split must be None, 'train' or 'val', got {split!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"{owner}: val_fraction must lie in (0, 1), got {val_fraction!r}")
    cut = int(n * (1.0 - val_fraction))
    return {None: slice(0, n), "train": slice(0, cut), "val": slice(cut, n)}[split]


def load_tiny_shakespeare(split: str | None = None, val_fraction: float = 0.1) -> str:
    """Tiny Shakespeare (1,115,394 characters, 65 distinct): the nanoGPT character-level corpus.

    Args:
        split: ``None`` for the whole text, ``"train"`` for its first 90 % and ``"val"`` for the
            last 10 % (a split in file order, as nanoGPT's ``prepare.py`` makes it).
        val_fraction: the share of the text that goes to ``"val"``.

    Example:
        >>> from ember.data import load_tiny_shakespeare
        >>> text = load_tiny_shakespeare()
        >>> len(text), text[:14], len(load_tiny_shakespeare("val"))
        (1115394, 'First Citizen:', 111540)
    """
    text = _read_corpus("tinyshakespeare.txt.gz")
    return text[_split_fraction("load_tiny_shakespeare", len(text), split, val_fraction)]


def split_names(names: Sequence[str], test_size: int = 1000,
                seed: int = 3141) -> tuple[list[str], list[str]]:
    """A seeded word-level split ``(train, test)``: ``test_size`` names drawn at random (at most
    10 % of them, as makemore does), the rest for training, both in the drawn order.

    Example:
        >>> from ember.data import split_names
        >>> train, test = split_names(["ann", "bob", "cy", "dee", "eve"], test_size=1, seed=0)
        >>> len(train), len(test), sorted(train + test)
        (4, 1, ['ann', 'bob', 'cy', 'dee', 'eve'])
    """
    names = list(names)
    if not isinstance(test_size, int) or test_size < 1:
        raise ValueError(f"split_names: test_size must be an int >= 1, got {test_size!r}")
    count = max(1, min(test_size, len(names) // 10))
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[i] for i in order[count:]], [names[i] for i in order[:count]]


def load_names(split: str | None = None, test_size: int = 1000, seed: int = 3141) -> list[str]:
    """The 32,033 most common US baby names of 2018, lower case: makemore's corpus.

    Args:
        split: ``None`` for every name in file order, ``"train"`` or ``"test"`` for the parts of
            :func:`split_names` (``test_size`` names drawn with ``seed`` for the test set).
        test_size: names in the test split.
        seed: the seed of the split.

    Example:
        >>> from ember.data import load_names
        >>> names = load_names()
        >>> len(names), names[:3], len(load_names("test"))
        (32033, ['emma', 'olivia', 'ava'], 1000)
    """
    if split not in (None, "train", "test"):
        raise ValueError(f"load_names: split must be None, 'train' or 'test', got {split!r}")
    names = [w for w in _read_corpus("names.txt.gz").splitlines() if w]
    if split is None:
        return names
    train, test = split_names(names, test_size, seed)
    return train if split == "train" else test


class CharTokenizer:
    """Characters to integers and back: token ``i`` is the ``i``-th character of ``vocab``.

    Build it from a text with :meth:`from_text` (its sorted distinct characters, as the nanoGPT
    and makemore examples do) or from a saved vocabulary (``CharTokenizer(config["vocab"])`` or
    :meth:`from_config`). An unknown character or token is a ``ValueError`` naming it and its
    position.

    Args:
        vocab: the characters, each once, in token order (a string or a sequence of characters).

    Example:
        >>> from ember.data import CharTokenizer
        >>> tok = CharTokenizer.from_text("hello world")
        >>> tok.vocab, tok.encode("hello").tolist(), tok.decode([4, 2, 5])
        (' dehlorw', [3, 2, 4, 4, 5], 'leo')
    """

    def __init__(self, vocab: str | Sequence[str]) -> None:
        chars = list(vocab)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"CharTokenizer: the vocabulary holds {bad[0]!r}, which is not a "
                             f"single character; pass a string or a list of characters")
        if not chars:
            raise ValueError("CharTokenizer: the vocabulary is empty; pass at least one character")
        seen: dict[str, int] = {}
        for i, c in enumerate(chars):
            if c in seen:
                raise ValueError(f"CharTokenizer: {c!r} is in the vocabulary twice (positions "
                                 f"{seen[c]} and {i}); give each character once")
            seen[c] = i
        self.vocab = "".join(chars)
        self._index = seen
        self._chars = np.array(chars)

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer of ``text``'s sorted distinct characters.

        Example:
            >>> CharTokenizer.from_text("banana").vocab
            'abn'
        """
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.from_text: expected a str, got {type(text).__name__}")
        return cls(sorted(set(text)))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CharTokenizer:
        """The tokenizer that :meth:`config` describes.

        Example:
            >>> tok = CharTokenizer("ab")
            >>> CharTokenizer.from_config(tok.config()).vocab
            'ab'
        """
        return cls(config["vocab"])

    @property
    def vocab_size(self) -> int:
        """The number of tokens.

        Example:
            >>> CharTokenizer("abc").vocab_size
            3
        """
        return len(self.vocab)

    def config(self) -> dict[str, Any]:
        """``{"name": "char", "vocab": ...}``: JSON-ready, enough to make the tokenizer again.

        Example:
            >>> CharTokenizer("ab").config()
            {'name': 'char', 'vocab': 'ab'}
        """
        return {"name": "char", "vocab": self.vocab}

    def encode(self, text: str) -> np.ndarray:
        """The tokens of ``text``: a 1-D int64 NumPy array.

        Example:
            >>> CharTokenizer("ab").encode("abba").tolist()
            [0, 1, 1, 0]
            >>> CharTokenizer("ab").encode("abc")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ValueError: CharTokenizer.encode: character 'c' at position 2 is not in the...
        """
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.encode: expected a str, got {type(text).__name__}")
        index = self._index
        try:
            return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError:
            pos = next(i for i, c in enumerate(text) if c not in index)
            shown = self.vocab if len(self.vocab) <= 40 else self.vocab[:40] + "..."
            raise ValueError(
                f"CharTokenizer.encode: character {text[pos]!r} at position {pos} is not in the "
                f"vocabulary {shown!r}; build the tokenizer from a text that contains it"
            ) from None

    def decode(self, tokens: Any) -> str:
        """The text of ``tokens`` (a sequence of ints, a 1-D array or Tensor).

        Example:
            >>> CharTokenizer("ab").decode([1, 0, 7])  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ValueError: CharTokenizer.decode: token 7 at position 2 is outside the vocabulary...
        """
        if isinstance(tokens, Tensor):
            tokens = tokens.numpy()
        ids = np.asarray(tokens)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"CharTokenizer.decode: expected a 1-D sequence of integers, got "
                             f"shape {ids.shape} and dtype {ids.dtype}")
        bad = np.flatnonzero((ids < 0) | (ids >= self.vocab_size))
        if bad.size:
            pos = int(bad[0])
            raise ValueError(
                f"CharTokenizer.decode: token {int(ids[pos])} at position {pos} is outside the "
                f"vocabulary ({self.vocab_size} tokens: 0..{self.vocab_size - 1})"
            )
        return "".join(self._chars[ids.astype(np.int64)].tolist())

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def name_examples(names: Sequence[str], tokenizer: CharTokenizer | None = None,
                  block_size: int | None = None) -> tuple[np.ndarray, np.ndarray, CharTokenizer]:
    """makemore's per-name examples: ``x`` starts with token 0 (the ``"\\n"`` end mark), then the
    name; ``y`` is the name then 0; positions past the end have ``x = 0`` and ``y = -1`` (for a
    loss that ignores ``-1``). The tokenizer defaults to the sorted characters of the names plus
    ``"\\n"`` first; ``block_size`` defaults to the longest name + 1.

    Example:
        >>> from ember.data import name_examples
        >>> x, y, tok = name_examples(["ab", "b"])
        >>> x.tolist(), y.tolist(), tok.vocab
        ([[0, 1, 2], [0, 2, 0]], [[1, 2, 0], [2, 0, -1]], '\\nab')
    """
    names = list(names)
    if tokenizer is None:
        tokenizer = CharTokenizer(["\n", *sorted(set("".join(names)) - {"\n"})])
    if tokenizer.vocab[0] != "\n":
        raise ValueError(f"name_examples: token 0 of the tokenizer is {tokenizer.vocab[0]!r}, "
                         f"but it must be the end mark '\\n'; build it as "
                         f"CharTokenizer('\\n' + letters)")
    longest = max(len(w) for w in names)
    block = longest + 1 if block_size is None else int(block_size)
    if block < longest + 1:
        raise ValueError(f"name_examples: block_size={block} is too short for the longest name "
                         f"({longest} characters + the end mark); use block_size >= {longest + 1}")
    x = np.zeros((len(names), block), dtype=np.int64)
    y = np.full((len(names), block), -1, dtype=np.int64)
    for i, w in enumerate(names):
        ids = tokenizer.encode(w)
        x[i, 1:len(ids) + 1] = ids
        y[i, :len(ids)] = ids
        y[i, len(ids)] = 0
    return x, y, tokenizer


class TokenWindows:
    """Random ``(x, y)`` windows of a token stream for training, ``y`` = ``x`` shifted by one.

    Each training batch takes ``batch_size`` windows of ``block_size`` tokens starting at uniform
    random positions (nanoGPT's ``get_batch``). The starts of batch ``k`` are a pure function of
    ``(seed, k)`` (``numpy.random.default_rng([seed, k])``), so a run is reproducible from the seed
    and resumable from :meth:`state_dict` (the number of batches handed out). :meth:`eval_batches`
    is a fixed pass over windows for validation. Batches are int64 Tensors of the active backend;
    on JAX the token stream is copied to the device once and each batch is one compiled gather.

    Args:
        tokens: a 1-D integer array (NumPy, list, Tensor) longer than ``block_size``.
        block_size: tokens per window (the context length).
        batch_size: windows per batch.
        seed: the sampling seed; ``None`` takes ``ember.initial_seed()``.
        mesh: data parallelism on JAX (see :mod:`ember.distributed`): a ``jax.sharding.Mesh``
            with a ``"data"`` axis or what ``make_mesh`` takes. The token stream then lies on
            every device and each batch comes out split along its sample axis (``batch_size``
            must divide over the devices); ``Trainer(devices=...)`` sets it itself.

    Example:
        >>> import numpy as np
        >>> from ember.data import TokenWindows
        >>> w = TokenWindows(np.arange(100), block_size=4, batch_size=2, seed=0)
        >>> x, y = w.next()
        >>> (y.numpy() - x.numpy()).tolist(), w.step
        ([[1, 1, 1, 1], [1, 1, 1, 1]], 1)
    """

    _count_key = "num_tokens"  # what state_dict records of the data's size
    _count_text = "these windows hold {} tokens; load the same token stream"

    def __init__(self, tokens: Any, block_size: int, batch_size: int,
                 seed: int | None = None, mesh: Any = None) -> None:
        self._setup("TokenWindows", block_size, batch_size, seed)
        if isinstance(tokens, Tensor):
            tokens = tokens.numpy()
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or (tokens.size and tokens.dtype.kind not in "iu"):
            raise ValueError(f"TokenWindows: tokens must be a 1-D integer array, got shape "
                             f"{tokens.shape} and dtype {tokens.dtype}")
        if len(tokens) <= block_size:
            raise ValueError(f"TokenWindows: {len(tokens)} tokens make no window of block_size="
                             f"{block_size} plus its shifted target; use a smaller block_size "
                             f"(at most {len(tokens) - 1})")
        self.tokens = tokens.astype(np.int64)
        self.set_mesh(mesh)

    def _setup(self, owner: str, block_size: int, batch_size: int, seed: int | None) -> None:
        """Check and set what every kind of random batches has: sizes, seed, position."""
        for arg, value in (("block_size", block_size), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{owner}: {arg} must be a positive integer, got {value!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"{owner}: seed must be a non-negative integer or None, got "
                             f"{seed!r}")
        self.block_size, self.batch_size = int(block_size), int(batch_size)
        self.seed = int(_random.initial_seed() if seed is None else seed)
        self.step = 0
        self.mesh: Any = None
        self._device: tuple[Any, tuple[Any, ...]] | None = None

    def set_mesh(self, mesh: Any) -> None:
        """Hand out batches split over ``mesh``'s ``"data"`` devices from now on (``None``: plain
        batches on the default device). See ``mesh`` in the class docs.

        Example:
            >>> import ember
            >>> ember.set_backend("jax")
            >>> w = TokenWindows(list(range(20)), block_size=4, batch_size=2, seed=0)
            >>> w.set_mesh(ember.distributed.make_mesh(1))
            >>> tuple(w.next()[0].data.sharding.spec)
            ('data',)
            >>> ember.set_backend("numpy")
        """
        if mesh is not None:
            from ember import distributed

            owner = type(self).__name__
            mesh = distributed.make_mesh(mesh, owner=owner, arg="mesh")
            distributed.check_divides(owner, self.batch_size, mesh)
        self.mesh, self._device = mesh, None

    @property
    def _count(self) -> int:
        return len(self.tokens)

    def _host(self) -> tuple[np.ndarray, ...]:
        """The host arrays whose rows make ``(x, y)``: the inputs and targets streams."""
        t = self.tokens
        return t[:-1], t[1:]

    def _index(self, starts: np.ndarray) -> np.ndarray:
        """The rows of :meth:`_host` that the windows at ``starts`` take (``(*S, block_size)``)."""
        return starts[..., None] + np.arange(self.block_size)

    def __repr__(self) -> str:
        return (f"TokenWindows({len(self.tokens)} tokens, block_size={self.block_size}, "
                f"batch_size={self.batch_size}, step={self.step})")

    @property
    def num_windows(self) -> int:
        """The number of distinct windows (with their target), ``len(tokens) - block_size``.

        Example:
            >>> TokenWindows(list(range(10)), block_size=4, batch_size=1).num_windows
            6
        """
        return len(self.tokens) - self.block_size

    def starts(self, step: int | None = None) -> np.ndarray:
        """The window starts of training batch ``step`` (default: the next one).

        Example:
            >>> w = TokenWindows(list(range(50)), block_size=4, batch_size=3, seed=1)
            >>> bool((w.starts(7) == w.starts(7)).all()), w.starts(0).shape
            (True, (3,))
        """
        step = self.step if step is None else int(step)
        rng = np.random.default_rng([self.seed, step])
        return rng.integers(0, self.num_windows, size=self.batch_size)

    def _streams(self) -> tuple[Any, ...]:
        """:meth:`_host` as backend arrays, cached per backend, so that on JAX they are on the
        device once (on every device of the mesh, with one)."""
        bk = backend.get()
        if self._device is None or self._device[0] is not bk:
            host = self._host()
            if self.mesh is not None:
                from ember import distributed

                arrays = tuple(distributed.replicate(host, self.mesh))
            else:
                arrays = tuple(bk.asarray(a, dtype=a.dtype) for a in host)
            self._device = (bk, arrays)
        return self._device[1]

    def _gather(self, starts: np.ndarray) -> tuple[Any, ...]:
        """One gather of the rows of ``starts`` (``(B,)`` or stacked ``(count, B)``); with a
        mesh the samples come out split over it (whole on every device when they do not
        divide, as the DataLoader does with a short last batch)."""
        index = self._index(starts)
        if self.mesh is None:
            return backend.get().gather_rows(self._streams(), index)
        from ember import distributed

        stacked = starts.ndim == 2
        per = int(starts.shape[-1])
        sharding = (distributed.batch_sharding(self.mesh, 1 if stacked else 0)
                    if per % distributed.data_size(self.mesh) == 0
                    else distributed.replicated(self.mesh))
        flat = index.reshape(-1, *index.shape[starts.ndim:])
        return distributed.gather_rows(self._streams(), flat, sharding,
                                       int(starts.shape[0]) if stacked else 0)

    def windows(self, starts: Any) -> tuple[Tensor, Tensor]:
        """The windows beginning at ``starts`` (an integer array of any shape ``S``): Tensors of
        shape ``(*S, block_size)``, gathered in one call.

        Example:
            >>> w = TokenWindows(list(range(10)), block_size=3, batch_size=1)
            >>> x, y = w.windows([0, 5])
            >>> x.tolist(), y.tolist()
            ([[0, 1, 2], [5, 6, 7]], [[1, 2, 3], [6, 7, 8]])
        """
        starts = np.asarray(starts, dtype=np.int64)
        if starts.size and (starts.min() < 0 or starts.max() >= self.num_windows):
            raise ValueError(f"TokenWindows.windows: starts must lie in "
                             f"0..{self.num_windows - 1}, got {int(starts.min())}.."
                             f"{int(starts.max())}")
        x, y = self._gather(starts)
        return Tensor._make(x, False, None), Tensor._make(y, False, None)

    def next(self) -> tuple[Tensor, Tensor]:
        """The next training batch ``(x, y)``, each ``(batch_size, block_size)``; moves on a step.

        Example:
            >>> w = TokenWindows(list(range(20)), block_size=4, batch_size=2, seed=0)
            >>> x, y = w.next()
            >>> x.shape, w.step
            ((2, 4), 1)
        """
        batch = self.windows(self.starts())
        self.step += 1
        return batch

    __next__ = next

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self

    def next_batches(self, count: int) -> tuple[Tensor, Tensor]:
        """The next ``count`` training batches stacked, ``(count, batch_size, block_size)`` each
        (one gather; what one dispatch of several compiled steps takes); moves on ``count`` steps.

        Example:
            >>> w = TokenWindows(list(range(20)), block_size=4, batch_size=2, seed=0)
            >>> xs, ys = w.next_batches(3)
            >>> xs.shape, w.step, bool((xs.numpy()[1] == w.windows(w.starts(1))[0].numpy()).all())
            ((3, 2, 4), 3, True)
        """
        starts = np.stack([self.starts(self.step + k) for k in range(int(count))])
        self.step += int(count)
        return self.windows(starts)

    def batches(self, steps: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The next ``steps`` training batches, one by one (the stream never ends, so ``steps``
        is needed).

        Example:
            >>> w = TokenWindows(list(range(20)), block_size=4, batch_size=2, seed=0)
            >>> [x.shape for x, _ in w.batches(2)], w.step
            ([(2, 4), (2, 4)], 2)
        """
        if steps is None or isinstance(steps, bool) or int(steps) < 0:
            raise ValueError(f"TokenWindows.batches: steps must be a non-negative int (the "
                             f"windows never run out), got {steps!r}")
        for _ in range(int(steps)):
            yield self.next()

    def executions(self, steps: int, per_execution: int | str = 1) -> Iterator[Execution]:
        """How a training loop runs the next ``steps`` steps, as the DataLoader's executions:
        one :class:`~ember.data.loader.Execution` per compiled call of up to ``per_execution``
        steps (``"epoch"``: all ``steps``), stacked ``(count, batch_size, block_size)`` by one
        gather. The position moves as each execution is handed out (checkpoint state).

        Example:
            >>> w = TokenWindows(list(range(20)), block_size=4, batch_size=2, seed=0)
            >>> [(e.step, e.count, e.x.shape) for e in w.executions(5, per_execution=2)]
            [(0, 2, (2, 2, 4)), (2, 2, (2, 2, 4)), (4, 1, (2, 4))]
        """
        if steps is None or isinstance(steps, bool) or int(steps) < 0:
            raise ValueError(f"TokenWindows.executions: steps must be a non-negative int (the "
                             f"windows never run out), got {steps!r}")
        total = int(steps)
        k = max(total if per_execution == "epoch" else int(per_execution), 1)
        done = 0
        while done < total:
            n = min(k, total - done)
            if n == 1:
                x, y = self.next()
                yield Execution(done, x, y, 1)
            else:
                xs, ys = self.next_batches(n)
                yield Execution(done, xs, ys, n)
            done += n

    def eval_batches(self, steps: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """A fixed pass for validation: ``steps`` batches of windows whose starts are spread evenly
        over the stream, or with ``steps=None`` every non-overlapping window in order (the last
        batch may be smaller). The same batches every call; the training position does not move.

        Example:
            >>> w = TokenWindows(list(range(13)), block_size=4, batch_size=2)
            >>> [x.numpy()[:, 0].tolist() for x, _ in w.eval_batches()]
            [[0, 4], [8]]
            >>> [x.numpy()[:, 0].tolist() for x, _ in w.eval_batches(steps=2)]
            [[0, 3], [5, 8]]
        """
        b = self.batch_size
        if steps is None:
            starts = np.arange(0, (len(self.tokens) - 1) // self.block_size) * self.block_size
        else:
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise ValueError(f"TokenWindows.eval_batches: steps must be a positive int or "
                                 f"None, got {steps!r}")
            starts = np.round(np.linspace(0, self.num_windows - 1, steps * b)).astype(np.int64)
        for lo in range(0, len(starts), b):
            yield self.windows(starts[lo:lo + b])

    def state_dict(self) -> dict[str, Any]:
        """Where the sampling is: ``step`` (batches handed out), ``seed`` and the shape of the
        data, so that a resumed run draws the same next batch.

        Example:
            >>> w = TokenWindows(list(range(20)), block_size=4, batch_size=2, seed=5)
            >>> _ = w.next()
            >>> w.state_dict()
            {'step': 1, 'seed': 5, 'block_size': 4, 'batch_size': 2, 'num_tokens': 20}
        """
        return {"step": self.step, "seed": self.seed, "block_size": self.block_size,
                "batch_size": self.batch_size, self._count_key: self._count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: the next batch is the one the saved windows were at.

        Example:
            >>> w = TokenWindows(list(range(20)), block_size=4, batch_size=2, seed=5)
            >>> w.load_state_dict({"step": 3, "seed": 5})
            >>> w.step
            3
        """
        for key in ("block_size", "batch_size"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: the state has {key}={state[key]!r} "
                    f"but these have {key}={getattr(self, key)!r}; build them as they were saved"
                )
        key = self._count_key
        if key in state and state[key] != self._count:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state has {key}={state[key]!r} but "
                + self._count_text.format(self._count)
            )
        step = int(state["step"])
        if step < 0:
            raise ValueError(f"TokenWindows.load_state_dict: step must be >= 0, got {step}")
        self.step, self.seed = step, int(state.get("seed", self.seed))


class NameExamples(TokenWindows):
    """makemore's training examples from a list of names, drawn at random like
    :class:`TokenWindows` (same ``next`` / ``executions`` / ``eval_batches`` / state), so the
    Trainer trains on them by steps.

    Each name is framed by the boundary token 0 (``"\\n"``, makemore's ``"."``): it starts the
    context and ends the name, so the model learns where names start and stop. Two forms:

    - ``context=None``: one padded sequence per name (:func:`name_examples`), ``x`` and ``y``
      of shape ``(batch_size, block_size)``, ``y = -1`` past the end (train with
      ``CrossEntropyLoss(ignore_index=-1)``): for the sequence models (GPT, RNN, GRU, ...).
    - ``context=k``: one example per character (the end mark included): ``x`` the previous
      ``k`` tokens (padded with 0 before the name's start), ``y`` the next token, shapes
      ``(batch_size, k)`` and ``(batch_size,)``: Bengio et al.'s MLP as in makemore's lectures.

    Batch ``k`` draws ``batch_size`` examples with replacement from
    ``numpy.random.default_rng([seed, k])`` (makemore samples with replacement too).
    :meth:`eval_batches` with ``steps=None`` passes over every example once, in order.

    Args:
        names: the words (non-empty strings).
        batch_size: examples per batch.
        context: ``None`` or the context length ``k`` of the per-character form.
        block_size: the padded length of the per-name form (default: longest name + 1).
        tokenizer: a :class:`CharTokenizer` whose token 0 is ``"\\n"`` (default: ``"\\n"`` then
            the sorted characters of ``names``).
        seed: the sampling seed; ``None`` takes ``ember.initial_seed()``.
        mesh: data parallelism on JAX, as for :class:`TokenWindows`.

    Example:
        >>> from ember.data import NameExamples
        >>> ex = NameExamples(["ab", "b"], batch_size=2, context=2)
        >>> ex.x.tolist(), ex.y.tolist(), ex.tokenizer.vocab
        ([[0, 0], [0, 1], [1, 2], [0, 0], [0, 2]], [1, 2, 0, 2, 0], '\\nab')
        >>> NameExamples(["ab", "b"], batch_size=2).x.tolist()
        [[0, 1, 2], [0, 2, 0]]
    """

    _count_key = "num_examples"
    _count_text = "these examples number {}; load the same names"

    def __init__(self, names: Sequence[str], batch_size: int = 32, *, context: int | None = None,
                 block_size: int | None = None, tokenizer: CharTokenizer | None = None,
                 seed: int | None = None, mesh: Any = None) -> None:
        names = list(names)
        bad = [w for w in names if not isinstance(w, str) or not w or "\n" in w]
        if not names or bad:
            raise ValueError(f"NameExamples: names must be non-empty strings without newlines, "
                             f"got {bad[0] if bad else names!r}")
        if context is not None and block_size is not None:
            raise ValueError("NameExamples: give context (one example per character) or "
                             "block_size (one padded sequence per name), not both")
        x, y, tok = name_examples(names, tokenizer, block_size)
        if context is not None:
            if isinstance(context, bool) or not isinstance(context, (int, np.integer)) \
                    or context < 1:
                raise ValueError(f"NameExamples: context must be a positive integer or None, "
                                 f"got {context!r}")
            x, y = _context_examples(x, y, int(context))
        self._setup("NameExamples", x.shape[1], batch_size, seed)
        self.names, self.tokenizer, self.context = names, tok, context
        self.x, self.y = x, y
        self.set_mesh(mesh)

    def __repr__(self) -> str:
        form = "per name" if self.context is None else f"context={self.context}"
        return (f"NameExamples({len(self.names)} names, {self.num_windows} examples, {form}, "
                f"batch_size={self.batch_size}, step={self.step})")

    @property
    def _count(self) -> int:
        return len(self.x)

    @property
    def num_windows(self) -> int:
        """The number of examples (names, or characters + end marks with ``context``).

        Example:
            >>> NameExamples(["ab", "b"], batch_size=1, context=3).num_windows
            5
        """
        return len(self.x)

    @property
    def num_targets(self) -> int:
        """The number of predicted characters (each name's letters and its end mark): what a
        loss per character averages over.

        Example:
            >>> NameExamples(["ab", "b"], batch_size=1).num_targets
            5
        """
        return int((self.y >= 0).sum())

    def _host(self) -> tuple[np.ndarray, ...]:
        return self.x, self.y

    def _index(self, starts: np.ndarray) -> np.ndarray:
        return starts

    def eval_batches(self, steps: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """A fixed pass for evaluation: with ``steps=None`` every example once, in order (the
        last batch may be smaller); else ``steps`` batches of examples spread evenly.

        Example:
            >>> ex = NameExamples(["ab", "b", "c"], batch_size=2)
            >>> [x.shape for x, _ in ex.eval_batches()]
            [(2, 3), (1, 3)]
        """
        b = self.batch_size
        if steps is None:
            rows = np.arange(len(self.x))
        else:
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise ValueError(f"NameExamples.eval_batches: steps must be a positive int or "
                                 f"None, got {steps!r}")
            rows = np.round(np.linspace(0, len(self.x) - 1, steps * b)).astype(np.int64)
        for lo in range(0, len(rows), b):
            yield self.windows(rows[lo:lo + b])


def _context_examples(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The per-character ``(context, next)`` examples of per-name sequences ``(x, y)``."""
    n, t = x.shape
    padded = np.concatenate([np.zeros((n, k - 1), dtype=x.dtype), x], axis=1)
    ctx = np.lib.stride_tricks.sliding_window_view(padded, k, axis=1)[:, :t]  # (n, t, k)
    keep = y >= 0
    return np.ascontiguousarray(ctx[keep]), y[keep]
