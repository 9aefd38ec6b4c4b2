"""divekit.data.translation: the book's preprocessing and tokenization, the batch layout, the split
by English sentence, and the real fra-eng dataset (via the `shared_data` fixture; skipped when absent).
"""

from __future__ import annotations

import urllib.request

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divekit.core.errors import ConfigError, DataError
from divekit.data.loader import TensorLoader
from divekit.data.registry import DataBundle, load_dataset
from divekit.data.text import Vocab
from divekit.data.translation import (
    build_array_nmt,
    load_translation,
    make_translation_data,
    preprocess_nmt,
    read_fra_eng,
    split_by_source,
    tokenize_nmt,
    translation_sentences,
)

# the first lines of fra.txt as the book prints them (book 10.5.1), with their narrow no-break spaces
RAW = "Go.\tVa !\nHi.\tSalut !\nRun!\tCours\u202f!\nRun!\tCourez\u202f!\nWho?\tQui ?\nWow!\tÇa alors\u202f!\n"
BOOK_PREPROCESSED = "go .\tva !\nhi .\tsalut !\nrun !\tcours !\nrun !\tcourez !\nwho ?\tqui ?\nwow !\tça alors !\n"
PAD, BOS, EOS = 1, 2, 3  # after <unk>, the reserved tokens in order


def book_preprocess_nmt(text: str) -> str:
    """The book's code, character by character: the oracle for preprocess_nmt."""

    def no_space(char, prev_char):
        return char in set(",.!?") and prev_char != " "

    text = text.replace("\u202f", " ").replace("\xa0", " ").lower()
    out = [" " + char if i > 0 and no_space(char, text[i - 1]) else char for i, char in enumerate(text)]
    return "".join(out)


# --------------------------------------------------------------------------------------------
# preprocessing and tokenization
# --------------------------------------------------------------------------------------------


def test_preprocess_the_books_lines():
    assert preprocess_nmt(RAW) == BOOK_PREPROCESSED


def test_preprocess_edge_cases():
    assert preprocess_nmt("Wait...") == "wait . . ."  # every mark gets its space
    assert preprocess_nmt("!Oh, no") == "!oh , no"  # not at the very start; only before the mark
    assert preprocess_nmt("Non\xa0!") == "non !"  # no-break space -> space, no second space


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="aZé ,.!?\t\n\u202f\xa0", max_size=40))
def test_preprocess_equals_the_books_code(text):
    assert preprocess_nmt(text) == book_preprocess_nmt(text)


def test_tokenize_the_books_lines():
    source, target = tokenize_nmt(BOOK_PREPROCESSED)
    assert source == [["go", "."], ["hi", "."], ["run", "!"], ["run", "!"], ["who", "?"], ["wow", "!"]]
    assert target == [["va", "!"], ["salut", "!"], ["cours", "!"], ["courez", "!"], ["qui", "?"], ["ça", "alors", "!"]]


def test_tokenize_max_examples_blank_lines_and_extra_columns():
    text = "a .\tb .\tCC-BY 2.0 (France) Attribution\n\n  \nc  d\te\n" + BOOK_PREPROCESSED
    source, target = tokenize_nmt(text, max_examples=3)
    assert source == [["a", "."], ["c", "d"], ["go", "."]]  # double spaces give no empty token
    assert target == [["b", "."], ["e"], ["va", "!"]]  # the attribution column is dropped
    assert tokenize_nmt(text, max_examples=0) == ([], [])


def test_tokenize_a_line_without_a_tab_names_its_number():
    with pytest.raises(DataError, match=r"line 3 is not 'english<TAB>french': 'run ! cours !'.*download it again"):
        tokenize_nmt("go .\tva !\n\nrun ! cours !\n")


# --------------------------------------------------------------------------------------------
# arrays, split and vocabularies on small corpora
# --------------------------------------------------------------------------------------------


def test_build_array_pads_and_truncates_with_bos_and_eos():
    vocab = Vocab(["x", "y", "z"], reserved_tokens=("<pad>", "<bos>", "<eos>"))
    x, y, z = vocab[["x", "y", "z"]]
    src = build_array_nmt([["x", "y"], ["x", "y", "z", "z"]], vocab, num_steps=4)
    assert src.tolist() == [[x, y, EOS, PAD], [x, y, z, z]]  # the long one loses its <eos>
    tgt = build_array_nmt([["x"], ["x", "y", "z", "z"]], vocab, num_steps=4, target=True)
    assert tgt.tolist() == [[BOS, x, EOS, PAD, PAD], [BOS, x, y, z, z]]
    assert src.dtype == tgt.dtype == torch.int64
    assert build_array_nmt([], vocab, num_steps=4).shape == (0, 4)


def small_corpus():
    source = [["go", "."], ["hi", "."], ["go", "."], ["run", "!"]] * 10 + [[f"w{i}", "."] for i in range(60)]
    target = [["va", "!"], ["salut", "!"], ["allez", "!"], ["cours", "!"]] * 10 + [[f"m{i}", "."] for i in range(60)]
    return source, target


def test_split_keeps_every_translation_of_a_sentence_together():
    source, _ = small_corpus()
    index = split_by_source(source)
    assert sorted(i for idx in index.values() for i in idx) == list(range(len(source)))
    where = {i: name for name, idx in index.items() for i in idx}
    for i, s in enumerate(source):
        assert all(where[j] == where[i] for j, t in enumerate(source) if t == s)
    assert all(idx == sorted(idx) for idx in index.values())  # corpus order within a split
    assert {k: len(v) for k, v in index.items()} != {"train": len(source), "valid": 0, "test": 0}
    assert split_by_source(source) == index  # fixed seed


def test_make_translation_data_layout_and_training_vocab():
    source, target = small_corpus()
    data = make_translation_data(source, target, num_steps=3)
    train_words = {t for s in data.sentences["train"][0] for t in s}
    test_words = {t for s in data.sentences["test"][0] for t in s}
    assert data.src_vocab.idx_to_token[:4] == ["<unk>", "<pad>", "<bos>", "<eos>"]
    # a held-out-only word (seen once, in one split) is unknown: the vocab knows the training split only
    assert all(data.src_vocab[w] == 0 for w in test_words - train_words)
    assert len(data.src_vocab) == 4 + 5  # go hi run . ! (each w<i> occurs once: below min_freq=2)
    X, dec_X, X_valid_len, Y = data.arrays["train"]
    assert X.shape == dec_X.shape == Y.shape == (len(data.sentences["train"][0]), 3)
    assert X_valid_len.tolist() == [3] * len(X)  # two tokens + <eos> fill num_steps=3
    assert (dec_X[:, 0] == BOS).all() and torch.equal(dec_X[:, 1:], Y[:, :-1])


def test_bad_sizes_are_refused():
    source, target = small_corpus()
    with pytest.raises(ConfigError, match="num_steps must be at least 1"):
        make_translation_data(source, target, num_steps=0)
    with pytest.raises(DataError, match="0 sentence pairs leave none for training"):
        make_translation_data([], [])
    one = make_translation_data(source[:1], target[:1])  # one sentence: training only
    assert [len(a[0]) for a in one.arrays.values()] == [1, 0, 0]
    with pytest.raises(ConfigError, match="num_examples must be at least 1"):
        load_translation(num_examples=0)


# --------------------------------------------------------------------------------------------
# the real fra-eng data
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fra(shared_data):
    return load_translation(shared_data)


def test_fra_eng_default_split_and_vocab_sizes(fra):
    assert {k: len(v[0]) for k, v in fra.arrays.items()} == {"train": 18007, "valid": 980, "test": 1013}
    assert (len(fra.src_vocab), len(fra.tgt_vocab)) == (2333, 3599)
    assert fra.src_vocab.idx_to_token[:8] == ["<unk>", "<pad>", "<bos>", "<eos>", ".", "i", "?", "you"]
    assert fra.tgt_vocab.idx_to_token[:8] == ["<unk>", "<pad>", "<bos>", "<eos>", ".", "je", "?", "!"]
    splits = {k: {tuple(s) for s in src} for k, (src, _) in fra.sentences.items()}
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    assert not (train & valid or train & test or valid & test)  # no English sentence in two splits


def test_fra_eng_batch_layout(fra):
    src_vocab, tgt_vocab = fra.src_vocab, fra.tgt_vocab
    X, dec_X, X_valid_len, Y = fra.arrays["train"]
    assert X.shape == dec_X.shape == Y.shape == (18007, 9) and X_valid_len.shape == (18007,)
    assert X.dtype == dec_X.dtype == X_valid_len.dtype == Y.dtype == torch.int64
    # the first pair, "go ." -> "va !"
    assert src_vocab.to_tokens(X[0]) == ["go", ".", "<eos>"] + ["<pad>"] * 6
    assert tgt_vocab.to_tokens(dec_X[0]) == ["<bos>", "va", "!", "<eos>"] + ["<pad>"] * 5
    assert tgt_vocab.to_tokens(Y[0]) == ["va", "!", "<eos>"] + ["<pad>"] * 6
    assert X_valid_len[0] == 3
    source, target = fra.sentences["train"]
    assert X_valid_len.tolist() == [min(len(s) + 1, 9) for s in source]
    assert torch.equal(X_valid_len, (X != PAD).sum(1))
    positions = torch.arange(9)
    assert torch.equal(X != PAD, positions < X_valid_len[:, None])  # padding only at the end
    short = X_valid_len < 9
    assert (X[short, X_valid_len[short] - 1] == EOS).all()
    assert (dec_X[:, 0] == BOS).all() and torch.equal(dec_X[:, 1:], Y[:, :-1])
    tgt_len = torch.tensor([len(t) for t in target])
    ends = tgt_len < 9  # <eos> fits into Y
    assert (Y[ends, tgt_len[ends]] == EOS).all()
    assert ((Y == EOS).sum(1) == ends.long()).all()  # exactly one <eos>, none in truncated rows
    assert ((Y != PAD).sum(1) == torch.clamp(tgt_len + 1, max=9)).all()
    for name in ("valid", "test"):  # the held-out arrays follow their sentences
        held_src, _ = fra.sentences[name]
        assert fra.arrays[name][2].tolist() == [min(len(s) + 1, 9) for s in held_src]


def test_fra_eng_bundle_and_split_independent_of_the_seed(shared_data, fra):
    bundle = load_dataset("fra-eng", batch_size=128, seed=1, data_dir=shared_data)
    assert isinstance(bundle, DataBundle) and (bundle.name, bundle.task) == ("fra-eng", "seq2seq")
    for name in ("train", "valid", "test"):  # the seed-free arrays: the split does not move with the seed
        assert all(torch.equal(a, b) for a, b in zip(getattr(bundle, name).tensors, fra.arrays[name]))
    seed0 = TensorLoader(*fra.arrays["train"], batch_size=128, shuffle=True, seed=0)
    first0, first1 = next(iter(seed0)), next(iter(bundle.train))
    assert [t.shape for t in first1] == [(128, 9), (128, 9), (128,), (128, 9)]
    assert not torch.equal(first0[0], first1[0])  # the training seed shuffles the batches, nothing else
    assert bundle.train.shuffle and bundle.valid.batch_size == 1024 and not bundle.valid.shuffle
    assert len(bundle.test) == 1
    ctx = bundle.context
    assert (ctx["src_vocab_size"], ctx["tgt_vocab_size"], ctx["num_steps"]) == (2333, 3599, 9)
    assert (ctx["tgt_pad"], ctx["tgt_bos"], ctx["tgt_eos"]) == (PAD, BOS, EOS)
    assert Vocab.from_dict(ctx["src_vocab"]) == fra.src_vocab and Vocab.from_dict(ctx["tgt_vocab"]) == fra.tgt_vocab


def test_translation_sentences_are_the_test_references(shared_data, fra):
    source, target = translation_sentences("test", data_dir=shared_data)
    assert (source, target) == fra.sentences["test"]
    assert len(source) == 1013 and all(s and t and "<eos>" not in t for s, t in zip(source, target))
    with pytest.raises(ConfigError, match="split 'dev' is not one of train, valid, test"):
        translation_sentences("dev", data_dir=shared_data)


def test_fra_eng_options_and_the_corpus_size(shared_data):
    small = load_translation(shared_data, num_steps=5, num_examples=1000)
    assert sum(len(a[0]) for a in small.arrays.values()) == 1000
    assert small.arrays["train"][0].shape[1] == 5 and small.arrays["train"][1].shape[1] == 5
    assert small.sentences["train"][0][0] == ["go", "."]
    raw = read_fra_eng(shared_data)
    assert raw.count("\n") == raw.count("\t") == 167130  # num_examples=None: 167,130 pairs, one per line


def test_preprocess_equals_the_books_code_on_real_lines(shared_data):
    raw = read_fra_eng(shared_data)[:400_000]
    assert preprocess_nmt(raw) == book_preprocess_nmt(raw)


def test_missing_file_gives_the_hubs_error(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.delenv("DIVEKIT_MIRROR", raising=False)
    monkeypatch.setenv("DIVEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(DataError, match=r"(?s)could not download fra-eng.zip.*network disabled.*put it at"):
        load_translation(tmp_path / "data")


def test_the_books_demo_split_is_in_file_order_with_vocab_over_both(shared_data):
    book = load_translation(shared_data, num_train=512, num_val=128)
    assert {k: len(v[0]) for k, v in book.arrays.items()} == {"train": 512, "valid": 128, "test": 0}
    assert book.sentences["train"][0][0] == ["go", "."] and book.sentences["train"][1][0] == ["va", "!"]
    # as in the book, the vocabularies count the validation pairs too: "don't" occurs there only
    train_words = {t for s in book.sentences["train"][0] for t in s}
    assert "don't" not in train_words and book.src_vocab["don't"] != 0
    with pytest.raises(ConfigError, match="num_train must be at least 1"):
        load_translation(shared_data, num_train=0)
