"""Text data: the shipped corpora, CharTokenizer, TokenWindows and the names split."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

import ember
from ember.data import (
    CharTokenizer,
    NameExamples,
    TokenWindows,
    load_names,
    load_tiny_shakespeare,
    name_examples,
    split_names,
)
from ember.data import text as text_module


def test_shakespeare_is_the_published_text_and_splits_90_10_in_file_order():
    text = load_tiny_shakespeare()
    assert len(text) == 1_115_394 and len(set(text)) == 65
    train, val = load_tiny_shakespeare("train"), load_tiny_shakespeare("val")
    assert len(train) == int(len(text) * 0.9) == 1_003_854
    assert train + val == text


def test_names_corpus_and_seeded_split():
    names = load_names()
    assert len(names) == 32_033 and names[-1] == "zzyzx"
    assert set("".join(names)) == set("abcdefghijklmnopqrstuvwxyz")
    train, test = load_names("train"), load_names("test")
    assert len(test) == 1000 and len(train) == 31_033
    assert sorted(train + test) == sorted(names)
    assert load_names("test") == test  # same seed, same split
    assert load_names("test", seed=1) != test
    assert split_names(["a"] * 20, test_size=5)[1] == ["a", "a"]  # at most 10 %


def test_corrupted_corpus_names_the_file_and_both_hashes(tmp_path, monkeypatch):
    (tmp_path / "names.txt.gz").write_bytes(gzip.compress(b"emma\nava"))
    monkeypatch.setattr(text_module, "CORPORA_DIR", tmp_path)
    digest = hashlib.sha256(b"emma\nava").hexdigest()
    with pytest.raises(ValueError, match=f"names.txt.gz has SHA-256 {digest} but 0a30b555"):
        load_names()
    monkeypatch.setattr(text_module, "CORPORA_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="tinyshakespeare.txt.gz is missing"):
        load_tiny_shakespeare()


def test_bad_split_names_are_errors():
    with pytest.raises(ValueError, match="split must be None, 'train' or 'val', got 'test'"):
        load_tiny_shakespeare("test")
    with pytest.raises(ValueError, match="split must be None, 'train' or 'test', got 'val'"):
        load_names("val")


def test_tokenizer_round_trip_and_vocabulary_order():
    text = load_tiny_shakespeare()[:5000]
    tok = CharTokenizer.from_text(text)
    assert tok.vocab == "".join(sorted(set(text)))
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (5000,)
    assert ids.tolist() == [tok.vocab.index(c) for c in text]
    assert tok.decode(ids) == text
    assert tok.decode(ember.tensor(ids[:10])) == text[:10]
    again = CharTokenizer.from_config(tok.config())
    assert again.vocab == tok.vocab and again.vocab_size == len(set(text))
    assert tok.encode("").shape == (0,) and tok.decode([]) == ""


def test_tokenizer_errors_name_the_character_and_position():
    tok = CharTokenizer("abc")
    with pytest.raises(ValueError, match=r"character 'z' at position 3 is not in the vocabulary "
                                         r"'abc'; build the tokenizer from a text that contains"):
        tok.encode("abcz")
    with pytest.raises(ValueError, match=r"token 3 at position 1 is outside the vocabulary "
                                         r"\(3 tokens: 0..2\)"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match=r"token -1 at position 0"):
        tok.decode([-1])
    with pytest.raises(ValueError, match=r"'a' is in the vocabulary twice \(positions 0 and 2\)"):
        CharTokenizer("aba")
    with pytest.raises(ValueError, match="'ab', which is not a single character"):
        CharTokenizer(["ab", "c"])


def test_windows_y_is_x_shifted_and_follow_nanogpt_get_batch(backend):
    tokens = np.random.default_rng(0).integers(0, 50, size=300)
    w = TokenWindows(tokens, block_size=16, batch_size=5, seed=3)
    starts = w.starts()
    x, y = w.next()
    assert x.shape == (5, 16) and y.shape == (5, 16)
    assert x.dtype.kind == "i"
    xs, ys = x.numpy(), y.numpy()
    for row, s in enumerate(starts):
        assert xs[row].tolist() == tokens[s:s + 16].tolist()
        assert ys[row].tolist() == tokens[s + 1:s + 17].tolist()
    assert 0 <= starts.min() and starts.max() <= 300 - 16 - 1


def test_windows_reproducible_and_resumable(backend):
    tokens = np.arange(1000) % 97
    a = TokenWindows(tokens, block_size=8, batch_size=4, seed=7)
    run = [a.next()[0].numpy() for _ in range(6)]
    b = TokenWindows(tokens, block_size=8, batch_size=4, seed=7)
    b.next(), b.next(), b.next()
    state = b.state_dict()
    c = TokenWindows(tokens, block_size=8, batch_size=4, seed=7)
    c.load_state_dict(state)
    resumed = [c.next()[0].numpy() for _ in range(3)]
    for got, want in zip(resumed, run[3:]):
        np.testing.assert_array_equal(got, want)
    d = TokenWindows(tokens, block_size=8, batch_size=4, seed=8)
    assert not np.array_equal(d.next()[0].numpy(), run[0])
    stacked = TokenWindows(tokens, block_size=8, batch_size=4, seed=7).next_batches(6)[0]
    np.testing.assert_array_equal(stacked.numpy(), np.stack(run))


def test_windows_state_mismatch_is_an_error():
    w = TokenWindows(np.arange(100), block_size=8, batch_size=4)
    with pytest.raises(ValueError, match="the state has block_size=16 but these have "
                                         "block_size=8; build them as they were saved"):
        w.load_state_dict({"step": 1, "block_size": 16})
    with pytest.raises(ValueError, match="num_tokens=50 but these windows hold 100 tokens"):
        w.load_state_dict({"step": 1, "num_tokens": 50})


def test_windows_argument_errors():
    with pytest.raises(ValueError, match=r"10 tokens make no window .* \(at most 9\)"):
        TokenWindows(np.arange(10), block_size=10, batch_size=1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        TokenWindows(np.arange(10), block_size=2, batch_size=0)
    with pytest.raises(ValueError, match=r"1-D integer array, got shape \(2, 5\)"):
        TokenWindows(np.zeros((2, 5), dtype=int), block_size=2, batch_size=1)


def test_eval_batches_cover_the_stream_deterministically(backend):
    tokens = np.arange(103)
    w = TokenWindows(tokens, block_size=10, batch_size=4, seed=0)
    batches = list(w.eval_batches())
    assert [x.shape[0] for x, _ in batches] == [4, 4, 2]
    firsts = np.concatenate([x.numpy()[:, 0] for x, _ in batches])
    assert firsts.tolist() == list(range(0, 100, 10))
    last_y = batches[-1][1].numpy()[-1]
    assert last_y.tolist() == list(range(91, 101))
    spread = [x.numpy()[:, 0].tolist() for x, _ in w.eval_batches(steps=2)]
    assert spread == [[0, 13, 26, 39], [53, 66, 79, 92]]
    assert [x.numpy().tolist() for x, _ in w.eval_batches(steps=2)] == \
        [x.numpy().tolist() for x, _ in w.eval_batches(steps=2)]
    assert w.step == 0


def test_name_examples_follow_makemore():
    x, y, tok = name_examples(["emma", "al"])
    assert tok.vocab == "\naelm"
    e, m, a, l = (tok.vocab.index(c) for c in "emal")
    assert x.tolist() == [[0, e, m, m, a], [0, a, l, 0, 0]]
    assert y.tolist() == [[e, m, m, a, 0], [a, l, 0, -1, -1]]
    with pytest.raises(ValueError, match="block_size=3 is too short .* use block_size >= 5"):
        name_examples(["emma"], block_size=3)


def test_name_examples_one_per_character_with_a_padded_context():
    ex = NameExamples(["emma", "al"], batch_size=2, context=3)
    e, m, a, l_ = (ex.tokenizer.encode(c)[0] for c in "emal")
    assert ex.tokenizer.vocab == "\naelm"
    assert ex.x.tolist() == [[0, 0, 0], [0, 0, e], [0, e, m], [e, m, m], [m, m, a],
                             [0, 0, 0], [0, 0, a], [0, a, l_]]
    assert ex.y.tolist() == [e, m, m, a, 0, a, l_, 0]
    assert ex.num_windows == ex.num_targets == 4 + 1 + 2 + 1
    seq = NameExamples(["emma", "al"], batch_size=2)  # per-name sequences
    x, y, _ = name_examples(["emma", "al"])
    np.testing.assert_array_equal(seq.x, x)
    np.testing.assert_array_equal(seq.y, y)
    assert seq.num_windows == 2 and seq.num_targets == 8 and seq.block_size == 5


def test_name_examples_sample_with_replacement_reproducibly_and_resume(backend):
    names = load_names("test")
    ex = NameExamples(names, batch_size=8, context=3, seed=5)
    rows = np.random.default_rng([5, 0]).integers(0, ex.num_windows, size=8)
    x, y = ex.next()
    assert x.shape == (8, 3) and y.shape == (8,)
    np.testing.assert_array_equal(x.numpy(), ex.x[rows])
    np.testing.assert_array_equal(y.numpy(), ex.y[rows])
    _ = ex.next()
    state = ex.state_dict()
    assert state == {"step": 2, "seed": 5, "block_size": 3, "batch_size": 8,
                     "num_examples": ex.num_windows}
    want = ex.next()[0].numpy()
    again = NameExamples(names, batch_size=8, context=3, seed=0)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again.next()[0].numpy(), want)
    with pytest.raises(ValueError, match="num_examples=3 but these examples number"):
        again.load_state_dict({"step": 0, "num_examples": 3})
    xs, ys = NameExamples(names, batch_size=4, block_size=16, seed=1).next_batches(3)
    assert xs.shape == (3, 4, 16) and ys.shape == (3, 4, 16)


def test_name_examples_eval_pass_covers_every_example_once_in_order():
    ex = NameExamples(["ab", "b", "c", "dd"], batch_size=3)
    xs = [x.numpy() for x, _ in ex.eval_batches()]
    assert [len(x) for x in xs] == [3, 1]
    np.testing.assert_array_equal(np.concatenate(xs), ex.x)
    assert ex.step == 0


def test_name_examples_errors():
    with pytest.raises(ValueError, match="token 0 of the tokenizer is 'a', but it must be the "
                                         "end mark"):
        NameExamples(["ab"], tokenizer=CharTokenizer("ab\n"))
    with pytest.raises(ValueError, match="give context .* or block_size .*, not both"):
        NameExamples(["ab"], context=3, block_size=4)
    with pytest.raises(ValueError, match="names must be non-empty strings"):
        NameExamples(["ab", ""])
    with pytest.raises(ValueError, match="context must be a positive integer or None, got 0"):
        NameExamples(["ab"], context=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        NameExamples(["ab"], batch_size=0)


def test_per_character_loss_is_makemores_test_loss(backend):
    """The mean over every predicted character (end marks included) of -log p, checked against
    a NumPy bigram table computed independently."""
    from ember.cli.text import per_character_loss
    from ember.models import Bigram

    names = ["emma", "olivia", "ava", "al"]
    ex = NameExamples(names, batch_size=3)
    ember.manual_seed(0)
    model = Bigram(ex.tokenizer.vocab_size)
    table = np.random.default_rng(0).normal(size=model.logits.shape)
    model.logits.data = ember.tensor(table.astype(np.float32)).data
    logp = table - np.log(np.exp(table).sum(-1, keepdims=True))
    terms = []
    for w in names:
        ids = [0, *ex.tokenizer.encode(w).tolist(), 0]
        terms += [-logp[a, b] for a, b in zip(ids[:-1], ids[1:])]
    assert len(terms) == ex.num_targets == sum(len(w) + 1 for w in names)
    assert per_character_loss(model, ex) == pytest.approx(np.mean(terms), rel=1e-5)
    ctx = NameExamples(names, batch_size=5, context=1)  # the same pairs, one per example
    assert per_character_loss(model, ctx) == pytest.approx(np.mean(terms), rel=1e-5)
