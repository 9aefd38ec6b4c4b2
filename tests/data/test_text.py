"""divekit.data.text: tokenize, Vocab, corpora, Zipf statistics, the sequence iterators, SeqLoader.

The iterators are checked on the book's toy sequence range(35) (batch_size 2, num_steps 5) and by
property tests; the real-data tests use the `shared_data` fixture (they skip when it is absent).
"""

from __future__ import annotations

import json
import string

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divekit.core.errors import ConfigError, DataError
from divekit.data.registry import DataBundle
from divekit.data.text import (
    SeqLoader,
    Vocab,
    language_model_bundle,
    load_corpus,
    ngram_freqs,
    preprocess_time_machine,
    read_ptb,
    read_time_machine,
    seq_data_iter_random,
    seq_data_iter_sequential,
    split_corpus,
    tokenize,
    zipf_exponent,
    zipf_plot,
)

FAST = settings(max_examples=40, deadline=None)
TOY = list(range(35))  # the book's toy corpus


def batches(iterator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(X.clone(), Y.clone()) for X, Y in iterator]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------
# tokenize, Vocab, preprocessing
# --------------------------------------------------------------------------------------------


def test_tokenize_chars_and_words():
    assert tokenize(["ab c", "d"], "char") == [["a", "b", " ", "c"], ["d"]]
    words = tokenize(["the time  machine", " by h g wells "], "word")
    assert words == [["the", "time", "machine"], ["by", "h", "g", "wells"]]
    assert tokenize("a b") == [["a", " ", "b"]]  # a string is one line; "char" is the default


def test_tokenize_unknown_kind_names_the_choices():
    with pytest.raises(ConfigError, match="'char', 'word'"):
        tokenize(["x"], "words")


def test_vocab_orders_by_frequency_then_first_appearance():
    vocab = Vocab(list("addcccbb"))  # counts a1 d2 c3 b2: c, then d before b (d seen first), then a
    assert vocab.idx_to_token == ["<unk>", "c", "d", "b", "a"]
    assert vocab.token_freqs == [("c", 3), ("d", 2), ("b", 2), ("a", 1)]
    assert vocab.token_to_idx == {"<unk>": 0, "c": 1, "d": 2, "b": 3, "a": 4}
    assert len(vocab) == 5


def test_vocab_min_freq_reserved_and_unknowns():
    lines = [["x", "y", "y"], ["z", "z", "z", "<eos>"]]  # a list of lines is flattened
    vocab = Vocab(lines, min_freq=2, reserved_tokens=["<pad>", "<unk>", "<eos>", "<pad>"])
    assert vocab.idx_to_token == ["<unk>", "<pad>", "<eos>", "z", "y"]  # x (count 1) left out; <eos> not twice
    assert vocab.unk == 0 and vocab["x"] == 0 and vocab["never seen"] == 0
    assert vocab["z"] == 3
    assert vocab[["y", "x", ("z", "<pad>")]] == [4, 0, [3, 1]]
    assert vocab.to_tokens(3) == "z"
    assert vocab.to_tokens([4, 0]) == ["y", "<unk>"]
    assert vocab.to_tokens(torch.tensor([[3, 1], [2, 4]])) == [["z", "<pad>"], ["<eos>", "y"]]
    assert vocab.to_tokens(torch.tensor(2)) == "<eos>"
    with pytest.raises(IndexError, match="outside the vocabulary of 5"):
        vocab.to_tokens(-1)


def test_vocab_round_trip_through_json():
    vocab = Vocab(tokenize(["hello world", "held"], "char"), min_freq=2, reserved_tokens=["<pad>"])
    d = json.loads(json.dumps(vocab.to_dict()))
    assert set(d) == {"idx_to_token", "min_freq"}
    restored = Vocab.from_dict(d)
    assert restored == vocab and restored is not vocab
    assert restored.idx_to_token == vocab.idx_to_token and restored.token_to_idx == vocab.token_to_idx
    assert restored.min_freq == 2
    assert restored[list("hold")] == vocab[list("hold")]
    assert Vocab(["a"]) != Vocab(["b"])


@pytest.mark.parametrize("d", [
    {"min_freq": 0},
    {"idx_to_token": []},
    {"idx_to_token": "<unk>ab"},
    {"idx_to_token": ["a", "<unk>"]},
    {"idx_to_token": ["<unk>", "a", "a"]},
    {"idx_to_token": ["<unk>", 3]},
    {"idx_to_token": ["<unk>", "a"], "min_freq": "2"},
    ["<unk>", "a"],
])
def test_vocab_from_corrupt_dict_raises(d):
    with pytest.raises(DataError, match="vocab is corrupt"):
        Vocab.from_dict(d)


def test_preprocess_a_line_of_the_book():
    line = "The Time Traveller (for so it will be convenient to speak of him)"
    assert preprocess_time_machine(line) == "the time traveller for so it will be convenient to speak of him "
    assert preprocess_time_machine("I.--Introduction\n\n'Tis 1895!") == "i introduction tis "


# --------------------------------------------------------------------------------------------
# split_corpus, n-grams, Zipf
# --------------------------------------------------------------------------------------------


def test_split_corpus_cuts_the_last_fraction():
    corpus = torch.arange(100)
    train, held = split_corpus(corpus, 0.1)
    assert torch.equal(train, torch.arange(90)) and torch.equal(held, torch.arange(90, 100))
    train, held = split_corpus(corpus, 0.0)
    assert len(train) == 100 and len(held) == 0
    for bad in (-0.1, 0.6):
        with pytest.raises(ConfigError, match=r"\[0, 0.5\]"):
            split_corpus(corpus, bad)


def test_ngram_freqs_counts_overlapping_ngrams():
    tokens = "a b a b a c".split()
    assert ngram_freqs(tokens, 1) == [(("a",), 3), (("b",), 2), (("c",), 1)]
    assert ngram_freqs(tokens, 2) == [(("a", "b"), 2), (("b", "a"), 2), (("a", "c"), 1)]
    assert ngram_freqs(tokens, 6) == [(tuple(tokens), 1)]
    assert ngram_freqs(tokens, 7) == []
    with pytest.raises(ConfigError):
        ngram_freqs(tokens, 0)


def test_zipf_exponent_recovers_a_power_law():
    assert zipf_exponent([1e6 / k for k in range(1, 2001)]) == pytest.approx(-1.0, abs=1e-9)
    pairs = [(str(k), 1e6 / k**1.5) for k in range(1, 50)]  # (item, count) pairs; ranks 10..49 fitted
    assert zipf_exponent(pairs) == pytest.approx(-1.5, abs=1e-9)
    few = [60 / k**2 for k in (5, 1, 3, 2, 4)]  # unsorted, and too few for ranks 10..: all ranks are fitted
    assert zipf_exponent(few) == pytest.approx(-2.0, abs=1e-9)
    with pytest.raises(ConfigError):
        zipf_exponent([5])


def test_zipf_plot_writes_a_png(tmp_path):
    tokens = "the cat sat on the mat and the dog sat on the log".split()
    path = zipf_plot(tokens, tmp_path / "plots" / "zipf.png", ns=(1, 2))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# The book's iterators on range(35), batch_size 2, num_steps 5
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_random_sampling_on_the_toy_sequence(seed):
    out = batches(seq_data_iter_random(TOY, 2, 5, gen(seed)))
    assert len(out) == 3  # (35 - offset - 1) // 5 = 6 subsequences for every offset 0..4
    starts = []
    for X, Y in out:
        assert X.shape == Y.shape == (2, 5) and X.dtype == Y.dtype == torch.int64
        assert torch.equal(X - X[:, :1], torch.arange(5).expand(2, 5))  # 5 consecutive numbers per row
        assert torch.equal(Y, X + 1)
        starts += X[:, 0].tolist()
    offset = min(starts)
    assert 0 <= offset <= 4
    assert sorted(starts) == [offset + 5 * k for k in range(6)]  # non-overlapping, all used once


def test_random_sampling_depends_only_on_the_generator():
    a = batches(seq_data_iter_random(TOY, 2, 5, gen(3)))
    b = batches(seq_data_iter_random(torch.tensor(TOY), 2, 5, gen(3)))
    assert all(torch.equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))
    orders = {tuple(torch.cat([X[:, 0] for X, _ in batches(seq_data_iter_random(TOY, 2, 5, gen(s)))]).tolist())
              for s in range(8)}
    assert len(orders) > 1  # the generator decides offset and order
    plain = batches(seq_data_iter_random(TOY, 2, 5, None))  # no generator: offset 0, text order
    assert [X[:, 0].tolist() for X, _ in plain] == [[0, 5], [10, 15], [20, 25]]


@pytest.mark.parametrize("seed", range(8))
def test_sequential_partitioning_on_the_toy_sequence(seed):
    out = batches(seq_data_iter_sequential(TOY, 2, 5, gen(seed)))
    offset = int(out[0][0][0, 0])
    assert 0 <= offset <= 5
    row_len = (35 - offset - 1) // 2
    assert len(out) == row_len // 5  # 3 batches for offsets 0..4, 2 for offset 5
    for t, (X, Y) in enumerate(out):
        assert X.shape == Y.shape == (2, 5) and X.dtype == torch.int64
        assert torch.equal(Y, X + 1)
        assert torch.equal(X[:, 0], offset + torch.tensor([0, row_len]) + 5 * t)  # row i starts at row_len * i
        assert torch.equal(X - X[:, :1], torch.arange(5).expand(2, 5))
        if t:
            assert torch.equal(X[:, 0], out[t - 1][0][:, -1] + 1)  # row i continues row i of the last batch


def test_sequential_partitioning_without_generator_starts_at_zero():
    out = batches(seq_data_iter_sequential(TOY, 2, 5, None))
    assert [X.tolist() for X, _ in out] == [
        [[0, 1, 2, 3, 4], [17, 18, 19, 20, 21]],
        [[5, 6, 7, 8, 9], [22, 23, 24, 25, 26]],
        [[10, 11, 12, 13, 14], [27, 28, 29, 30, 31]],
    ]


@FAST
@given(length=st.integers(0, 300), batch_size=st.integers(1, 8), num_steps=st.integers(1, 12),
       seed=st.integers(0, 10**6))
def test_random_sampling_properties(length, batch_size, num_steps, seed):
    out = batches(seq_data_iter_random(torch.arange(length), batch_size, num_steps, gen(seed)))
    starts = torch.cat([X[:, 0] for X, _ in out]).tolist() if out else []
    assert len(set(starts)) == len(starts)
    if out:
        offset = min(starts) % num_steps
        assert all((s - offset) % num_steps == 0 for s in starts)  # on the grid offset + k * num_steps
        assert len(out) == ((length - offset - 1) // num_steps) // batch_size
    for X, Y in out:
        assert X.shape == (batch_size, num_steps)
        assert torch.equal(X - X[:, :1], torch.arange(num_steps).expand_as(X))
        assert torch.equal(Y, X + 1) and int(Y.max()) < length


@FAST
@given(length=st.integers(0, 300), batch_size=st.integers(1, 8), num_steps=st.integers(1, 12),
       seed=st.integers(0, 10**6))
def test_sequential_partitioning_properties(length, batch_size, num_steps, seed):
    out = batches(seq_data_iter_sequential(torch.arange(length), batch_size, num_steps, gen(seed)))
    for t, (X, Y) in enumerate(out):
        assert X.shape == (batch_size, num_steps)
        assert torch.equal(Y, X + 1) and int(Y.max()) < length
        assert torch.equal(X - X[:, :1], torch.arange(num_steps).expand_as(X))
        if t:
            assert torch.equal(X[:, 0], out[t - 1][0][:, -1] + 1)
    if out:
        offset = int(out[0][0][0, 0])
        assert 0 <= offset <= num_steps
        assert len(out) == ((length - offset - 1) // batch_size) // num_steps


# --------------------------------------------------------------------------------------------
# SeqLoader
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampling", ["random", "sequential"])
def test_seq_loader_is_reproducible_per_seed_and_epoch(sampling):
    corpus = torch.arange(1000)

    def epoch(seed, e):
        loader = SeqLoader(corpus, 4, 7, sampling=sampling, seed=seed)
        loader.set_epoch(e)
        return torch.cat([torch.cat(b) for b in loader])

    assert torch.equal(epoch(0, 2), epoch(0, 2))
    assert not torch.equal(epoch(0, 2), epoch(0, 3))
    assert not torch.equal(epoch(1, 2), epoch(0, 2))


@FAST
@given(length=st.integers(2, 400), batch_size=st.integers(1, 6), num_steps=st.integers(1, 10),
       sampling=st.sampled_from(["random", "sequential"]), shuffle=st.booleans(),
       seed=st.integers(0, 1000), epoch=st.integers(0, 50))
def test_seq_loader_len_is_the_number_of_batches(length, batch_size, num_steps, sampling, shuffle, seed, epoch):
    try:
        loader = SeqLoader(torch.arange(length), batch_size, num_steps, sampling=sampling, shuffle=shuffle, seed=seed)
    except DataError:
        # too short for one batch even at the offset 0 would mean fewer than batch_size * num_steps + 1 tokens
        # (shuffled: plus the largest offset)
        assert length < batch_size * num_steps + 1 + (0 if not shuffle else num_steps - (sampling == "random"))
        return
    loader.set_epoch(epoch)
    out = list(loader)
    assert len(out) == len(loader) >= 1
    assert loader.num_tokens == sum(Y.numel() for _, Y in out) == len(loader) * batch_size * num_steps
    assert all(X.shape == Y.shape == (batch_size, num_steps) for X, Y in out)


def test_seq_loader_sequential_batches_continue_row_by_row():
    loader = SeqLoader(torch.arange(500), 3, 6, sampling="sequential", seed=4)
    assert loader.sequential
    assert (loader.batch_size, loader.num_steps, loader.device) == (3, 6, torch.device("cpu"))
    for e in range(3):
        loader.set_epoch(e)
        out = list(loader)
        for prev, (X, Y) in zip(out, out[1:]):
            assert torch.equal(X[:, 0], prev[0][:, -1] + 1)
            assert torch.equal(Y, X + 1)
    assert not SeqLoader(torch.arange(500), 3, 6, sampling="random").sequential


@pytest.mark.parametrize("sampling", ["random", "sequential"])
def test_seq_loader_without_shuffle_is_one_fixed_pass(sampling):
    loader = SeqLoader(torch.arange(100), 2, 5, sampling=sampling, shuffle=False, device="cpu")
    firsts = []
    for e in range(3):
        loader.set_epoch(e)
        firsts.append([X.tolist() for X, _ in loader])
    assert firsts[0] == firsts[1] == firsts[2]
    assert firsts[0][0][0] == [0, 1, 2, 3, 4]  # offset 0
    assert len(loader) == 9  # (100 - 1) // 2 = 49 columns // 5, or (100 - 1) // 5 = 19 subsequences // 2


def test_seq_loader_too_short_corpus_says_what_to_lower():
    SeqLoader(torch.arange(2 * 5 + 1), 2, 5, sampling="sequential", shuffle=False)  # just long enough
    message = r"10 tokens.*batch_size=2.*num_steps=5.*at least 11.*lower batch_size or num_steps"
    with pytest.raises(DataError, match=message):
        SeqLoader(torch.arange(10), 2, 5, sampling="sequential", shuffle=False)
    SeqLoader(torch.arange(15), 2, 5, sampling="random")  # offsets 0..4: 2 subsequences even at offset 4
    with pytest.raises(DataError, match="14 tokens"):
        SeqLoader(torch.arange(14), 2, 5, sampling="random")


def test_seq_loader_rejects_an_unknown_sampling():
    with pytest.raises(ConfigError, match="'random', 'sequential'"):
        SeqLoader(torch.arange(100), 2, 5, sampling="shuffled")


# --------------------------------------------------------------------------------------------
# language_model_bundle
# --------------------------------------------------------------------------------------------


def test_language_model_bundle_splits_and_context():
    vocab = Vocab(list("abcdefgh"))
    corpus = torch.randint(0, len(vocab), (1000,), generator=gen(0))
    bundle = language_model_bundle("toy", corpus, vocab, batch_size=4, num_steps=5, sampling="sequential",
                                   heldout=0.2, test_corpus=corpus[:100])
    assert isinstance(bundle, DataBundle)
    assert bundle.task == "language-model" and bundle.classes is None
    assert torch.equal(bundle.train.corpus, corpus[:800]) and torch.equal(bundle.valid.corpus, corpus[800:])
    assert bundle.train.shuffle and bundle.train.sequential
    for held in (bundle.valid, bundle.test):
        assert held.sequential and not held.shuffle
    assert bundle.context == {"vocab_size": 9, "vocab": vocab.to_dict(), "level": "char"}
    assert Vocab.from_dict(json.loads(json.dumps(bundle.context["vocab"]))) == vocab

    given_valid = language_model_bundle("toy", corpus, vocab, batch_size=4, num_steps=5, valid_corpus=corpus[:50])
    assert len(given_valid.train.corpus) == 1000 and not given_valid.train.sequential
    assert language_model_bundle("toy", corpus, vocab, batch_size=4, num_steps=5, heldout=0).valid is None
    with pytest.raises(DataError, match="toy held-out.*100 tokens"):
        language_model_bundle("toy", corpus, vocab, batch_size=4, num_steps=30)  # 100 held-out tokens < 4 * 30 + 1
    with pytest.raises(DataError, match="toy training text"):
        language_model_bundle("toy", corpus[:120], vocab, batch_size=4, num_steps=30, valid_corpus=corpus)


# --------------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ptb_cache(tmp_path_factory):
    """The shared data dir is read-only, so PTB is extracted into a throwaway DIVEKIT_CACHE."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIVEKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def test_time_machine_char_corpus(shared_data):
    text = preprocess_time_machine(read_time_machine(shared_data))
    corpus, vocab = load_corpus("time-machine", data_dir=shared_data)
    assert corpus.dtype == torch.int64 and corpus.dim() == 1
    assert len(corpus) == len(text) == 173_428  # the whole book as one sequence, spaces included
    assert len(vocab) == 28 and set(vocab.idx_to_token) == {"<unk>", " ", *string.ascii_lowercase}
    assert vocab.idx_to_token[:4] == ["<unk>", " ", "e", "t"]  # space and e are the most frequent
    assert "".join(vocab.to_tokens(corpus[:23])) == "the time machine by h g"
    short, same_vocab = load_corpus("time-machine", data_dir=shared_data, max_tokens=100)
    assert torch.equal(short, corpus[:100]) and same_vocab == vocab


def test_time_machine_words_follow_zipfs_law(shared_data):
    words = tokenize(preprocess_time_machine(read_time_machine(shared_data)), "word")[0]
    assert len(words) == 32_775
    unigrams = ngram_freqs(words, 1)
    assert len(unigrams) == 4_579 and unigrams[0] == (("the",), 2261)
    assert -1.3 < zipf_exponent(unigrams) < -0.7  # measured -1.04
    # n-grams repeat less than words do: their frequencies fall off more slowly
    assert zipf_exponent(unigrams) < zipf_exponent(ngram_freqs(words, 2)) < zipf_exponent(ngram_freqs(words, 3))
    _, vocab = load_corpus("time-machine", token="word", data_dir=shared_data)
    assert len(vocab) == 4_580  # 4579 words and <unk>


def test_ptb_word_corpus(shared_data, ptb_cache):
    lines = read_ptb("train", shared_data)
    assert len(lines) == 42_068 and lines[0].startswith("aer banknote berlitz")
    corpus, vocab = load_corpus("ptb", data_dir=shared_data)
    # PTB's 10k vocabulary: 9999 distinct words in the file (<unk> among them, reused as index 0)
    # plus the reserved <eos> that ends every line
    assert len(vocab) == 10_000
    assert vocab.idx_to_token[:3] == ["<unk>", "<eos>", "the"]
    assert len(corpus) == 887_521 + 42_068  # words + one <eos> per line
    assert int((corpus == 1).sum()) == 42_068
    valid, _ = load_corpus("ptb", data_dir=shared_data, vocab=vocab, split="valid")
    assert len(valid) == 73_760
    with pytest.raises(ConfigError, match="train, valid, test"):
        read_ptb("dev", shared_data)
