"""BERT data (book 15.9, 16.4, 16.7): the pretraining pipeline's properties, the WikiText-2 and
SNLI loaders on fixtures written in the real layouts, the PTB variants and the fine-tuning sets."""

import random

import pytest
import torch

from divekit.core.errors import ConfigError, DataError
from divekit.data import load_dataset
from divekit.data.bert import (
    MIN_FREQ,
    StepsPerEpoch,
    _get_mlm_data_from_tokens,
    _get_nsp_data_from_paragraph,
    _replace_mlm_tokens,
    bert_vocab,
    bigram_shift,
    encode_texts,
    parse_snli,
    pretraining_examples,
    ptb_paragraphs,
    read_snli,
    read_wiki,
    wiki_paragraphs,
)
from divekit.data.loader import TensorLoader
from divekit.data.text import Vocab
from divekit.models.bert import CLS, MASK, PAD, SEP, get_tokens_and_segments


def test_tokens_and_segments_as_in_the_book():
    tokens, segments = get_tokens_and_segments(["a", "crane", "driver", "came"], ["he", "just", "left"])
    assert tokens == ["<cls>", "a", "crane", "driver", "came", "<sep>", "he", "just", "left", "<sep>"]
    assert segments == [0] * 6 + [1] * 4
    assert get_tokens_and_segments(["hi"]) == (["<cls>", "hi", "<sep>"], [0, 0, 0])


def _paragraphs(num_paragraphs=60, sentences=5, seed=0):
    """Synthetic paragraphs whose sentences name their place: 'pP sS w w w ...'. Word 'w' + digit
    tokens repeat often enough for the min_freq-5 vocabulary."""
    rng = random.Random(seed)
    return [[" ".join([f"p{p}", f"s{s}"] + [f"w{rng.randrange(20)}" for _ in range(rng.randrange(3, 12))])
             for s in range(sentences)] for p in range(num_paragraphs)]


def test_vocab_min_freq_and_reserved_tokens():
    paragraphs = [[["a"] * 5 + ["b"] * 4, ["a"]]]
    vocab = bert_vocab(paragraphs)
    assert vocab.idx_to_token == ["<unk>", PAD, MASK, CLS, SEP, "a"]  # 'b' seen 4 < 5 times
    assert MIN_FREQ == 5


def test_replace_mlm_tokens_80_10_10_on_a_large_sample():
    vocab = Vocab([f"t{i}" for i in range(1000)] * 5, min_freq=5, reserved_tokens=(PAD, MASK, CLS, SEP))
    rng = random.Random(1)
    tokens = [f"t{i}" for i in range(100)]
    counts = {"mask": 0, "same": 0, "other": 0}
    n = 0
    for _ in range(2000):
        out, pairs = _replace_mlm_tokens(tokens, list(range(100)), 15, vocab, rng)
        assert len(pairs) == 15 and len({p for p, _ in pairs}) == 15
        for pos, label in pairs:
            assert label == tokens[pos]
            counts["mask" if out[pos] == MASK else "same" if out[pos] == label else "other"] += 1
            n += 1
        untouched = set(range(100)) - {p for p, _ in pairs}
        assert all(out[i] == tokens[i] for i in untouched)
    # 30,000 draws: the standard error of a 10% share is 0.17%
    assert counts["mask"] / n == pytest.approx(0.8, abs=0.01)
    assert counts["same"] / n == pytest.approx(0.1 + 0.1 / len(vocab), abs=0.01)
    assert counts["other"] / n == pytest.approx(0.1, abs=0.01)


def test_mlm_positions_are_15_percent_never_cls_or_sep_and_sorted():
    vocab = Vocab([f"t{i}" for i in range(30)] * 5, min_freq=5, reserved_tokens=(PAD, MASK, CLS, SEP))
    rng = random.Random(0)
    for length in (1, 3, 7, 20, 40):
        tokens, _ = get_tokens_and_segments([f"t{i}" for i in range(length)], [f"t{i}" for i in range(length)])
        ids, positions, labels = _get_mlm_data_from_tokens(tokens, vocab, rng)
        assert len(positions) == max(1, round(0.15 * len(tokens)))
        assert positions == sorted(positions)
        assert all(tokens[p] not in (CLS, SEP) for p in positions)
        assert labels == vocab[[tokens[p] for p in positions]]
        assert len(ids) == len(tokens)


def test_nsp_pairs_drop_too_long_and_keep_next_half_the_time():
    paragraphs = [[["a"] * 3, ["b"] * 3, ["c"] * 40]]
    rng = random.Random(0)
    out = _get_nsp_data_from_paragraph(paragraphs[0], paragraphs, 12, rng)
    assert len(out) == 1  # (b, c) does not fit 12 tokens
    tokens, segments, is_next = out[0]
    assert tokens[:5] == [CLS, "a", "a", "a", SEP] and len(tokens) == len(segments)


def test_pretraining_examples_have_the_books_structure():
    paragraphs = _paragraphs()
    (tokens, segments, valid_lens, positions, weights, labels, nsp), vocab = pretraining_examples(
        paragraphs, max_len=32, seed=0)
    N = len(tokens)
    assert N == 60 * 4  # every consecutive pair fits 32 tokens
    assert tokens.shape == segments.shape == (N, 32)
    P = round(0.15 * 32)
    assert positions.shape == weights.shape == labels.shape == (N, P) and nsp.shape == valid_lens.shape == (N,)
    pad, cls, sep = vocab[PAD], vocab[CLS], vocab[SEP]
    ar = torch.arange(32)
    real = ar < valid_lens[:, None]
    assert bool((tokens[~real] == pad).all()) and bool((tokens[real] != pad).all())
    assert bool((segments[~real] == 0).all())
    assert bool((tokens[:, 0] == cls).all())
    assert bool((tokens[torch.arange(N), valid_lens - 1] == sep).all())
    num_preds = weights.sum(1)
    assert torch.equal(num_preds, torch.clamp(torch.round(valid_lens * 0.15), min=1).float())
    assert bool((positions[weights == 0] == 0).all()) and bool((labels[weights == 0] == 0).all())
    # restore the original tokens and check NSP labels: the B of an is-next pair is sentence s+1 of A's paragraph
    original = tokens.clone()
    rows = torch.arange(N)[:, None].expand(N, P)
    original[rows[weights == 1], positions[weights == 1]] = labels[weights == 1]
    for i in range(N):
        toks = vocab.to_tokens(original[i, : valid_lens[i]])
        first_sep = toks.index(SEP)
        a, b = toks[1:first_sep], toks[first_sep + 1 : -1]
        seg = segments[i, : valid_lens[i]].tolist()
        assert seg == [0] * (first_sep + 1) + [1] * (len(b) + 1)
        is_next = (a[0] == b[0] and int(b[1][1:]) == int(a[1][1:]) + 1)
        if nsp[i] == 1:
            assert is_next
    assert 0.40 < nsp.float().mean() < 0.60  # 240 coin flips


def test_nsp_and_mask_rates_over_many_examples():
    (tokens, _, valid_lens, positions, weights, labels, nsp), vocab = pretraining_examples(
        _paragraphs(400, 6, seed=3), max_len=32, seed=5)
    assert nsp.float().mean() == pytest.approx(0.5, abs=0.03)  # 2,000 pairs: std 1.1%
    picked = tokens[torch.arange(len(tokens))[:, None].expand_as(positions)[weights == 1], positions[weights == 1]]
    assert (picked == vocab[MASK]).float().mean() == pytest.approx(0.8, abs=0.02)
    assert (weights.sum() / valid_lens.sum()).item() == pytest.approx(0.15, abs=0.01)


def test_pretraining_examples_are_seeded():
    a, _ = pretraining_examples(_paragraphs(), max_len=32, seed=7)
    b, _ = pretraining_examples(_paragraphs(), max_len=32, seed=7)
    c, _ = pretraining_examples(_paragraphs(), max_len=32, seed=8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    state = random.getstate()
    pretraining_examples(_paragraphs(), max_len=32, seed=7)
    assert random.getstate() == state  # no global randomness used


WIKI_FIXTURE = """ 
 = Valkyria Chronicles III = 
 
 Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing video game . It was released in January 2011 in Japan . The game began development in 2010 . 
 
 = = Gameplay = = 
 
 As with previous games , the player controls a squad . Battles are turn @-@ based . 
 A single sentence line without a second one . 
"""


def test_wiki_paragraphs_follow_read_wiki():
    paragraphs = wiki_paragraphs(WIKI_FIXTURE)
    # headings are dropped; as in the book, the filter counts ' . ' on the raw line, whose trailing
    # ' . ' makes a one-sentence line pass (it yields no sentence pair)
    assert len(paragraphs) == 3 and paragraphs[2] == ["a single sentence line without a second one ."]
    assert paragraphs[0][0].startswith("senjō no valkyria 3")
    assert paragraphs[0][1] == "it was released in january 2011 in japan"
    assert paragraphs[1] == ["as with previous games , the player controls a squad", "battles are turn @-@ based ."]


def test_read_wiki_from_the_wikitext2_layout(tmp_path):
    folder = tmp_path / "wikitext-2"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"wiki.{split}.tokens").write_text(WIKI_FIXTURE, encoding="utf-8")
    assert read_wiki(tmp_path, "train") == wiki_paragraphs(WIKI_FIXTURE)
    with pytest.raises(ConfigError):
        read_wiki(tmp_path, "dev")
    bundle = load_dataset("wikitext-2", batch_size=4, data_dir=str(tmp_path), max_len=64)
    assert bundle.task == "bert-pretrain" and len(bundle.train.tensors) == 7
    assert bundle.context["vocab_size"] == len(bundle.context["vocab"]["idx_to_token"])


def test_ptb_paragraphs_group_consecutive_lines():
    lines = [f"s{i}" for i in range(11)]
    assert ptb_paragraphs(lines, 5) == [lines[:5], lines[5:10]]  # the lone last line cannot form a pair
    assert ptb_paragraphs(lines[:12], 3)[-1] == ["s9", "s10"]
    with pytest.raises(ConfigError):
        ptb_paragraphs(lines, 1)


def test_steps_per_epoch_walks_through_all_batches():
    x = torch.arange(10)
    inner = TensorLoader(x, batch_size=2, shuffle=True, seed=3)
    loader = StepsPerEpoch(inner, 3)
    assert len(loader) == 3
    seen = []
    for epoch in range(5):  # 15 batches = 3 passes of 5
        loader.set_epoch(epoch)
        seen += [b[0] for b in loader]
    for k in range(3):
        assert sorted(torch.cat(seen[5 * k : 5 * k + 5]).tolist()) == list(range(10))
    loader.set_epoch(2)
    again = [b[0] for b in loader]
    assert all(torch.equal(a, b) for a, b in zip(again, seen[6:9]))  # reproducible from the epoch alone
    assert loader.device == inner.device


SNLI_HEADER = ("gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
               "sentence1\tsentence2\tcaptionID\tpairID\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5")
SNLI_ROWS = [
    ("neutral", "( ( A person ) ( on ( a horse ) ) )", "( A person ) ( is ( training ( his horse ) ) )",
     "A person on a horse.", "A person is training his horse."),
    ("contradiction", "( ( A person ) ( on ( a horse ) ) )", "( ( A person ) ( is ( at ( a diner ) ) ) )",
     "A person on a horse.", "A person is at a diner."),
    ("-", "( Two dogs )", "( Dogs ( are running ) )", "Two dogs", "Dogs are running"),
    ("entailment", "( ( Children smiling ) ( and ( waving ( at camera ) ) ) )", "( There ( are children ) )",
     "Children smiling and waving at camera", "There are children"),
]


def _snli_text(rows):
    lines = [SNLI_HEADER] + ["\t".join([g, p1, p2, "(ROOT x)", "(ROOT y)", s1, s2, "cap", f"id{i}", g, g, g, g, g])
                             for i, (g, p1, p2, s1, s2) in enumerate(rows)]
    return "\n".join(lines) + "\n"


def test_parse_snli_as_the_book():
    premises, hypotheses, labels = parse_snli(_snli_text(SNLI_ROWS))
    assert labels == [2, 1, 0]  # neutral, contradiction, entailment; the '-' row is dropped
    assert premises[0] == "A person on a horse"
    assert hypotheses[2] == "There are children"
    with pytest.raises(DataError, match="gold_label"):
        parse_snli("label\tsentence1\n")


def test_snli_bert_from_the_snli_layout(tmp_path):
    folder = tmp_path / "snli_1.0"
    folder.mkdir()
    for split in ("train", "dev", "test"):
        (folder / f"snli_1.0_{split}.txt").write_text(_snli_text(SNLI_ROWS * 3), encoding="utf-8")
    assert read_snli(tmp_path, "dev")[2] == [2, 1, 0] * 3
    bundle = load_dataset("snli-bert", batch_size=4, data_dir=str(tmp_path), max_len=10)
    tokens, segments, valid_lens, y = bundle.train.tensors
    assert tokens.shape == (9, 10) and bundle.classes == ["entailment", "contradiction", "neutral"]
    assert bundle.task == "classification" and bundle.valid is not None
    vocab = Vocab.from_dict(bundle.context["vocab"])
    # row 0: "a person on a horse" / "a person is training his horse" truncated to 7 words, longer part first
    assert vocab.to_tokens(tokens[0, : valid_lens[0]])[0] == CLS
    assert int(valid_lens[0]) == 10 and segments[0].tolist() == [0] * 6 + [1] * 4


def test_encode_texts_truncates_as_the_book():
    vocab = Vocab(["a", "b", "c"], reserved_tokens=(PAD, MASK, CLS, SEP))
    tokens, segments, valid_lens = encode_texts([["a"] * 9, (["a"] * 5, ["b"] * 2), ["c"]], vocab, 6)
    assert valid_lens.tolist() == [6, 6, 3]
    assert vocab.to_tokens(tokens[1]) == [CLS, "a", "a", SEP, "b", SEP]  # the longer part loses tokens first
    assert segments[1].tolist() == [0, 0, 0, 0, 1, 1]
    assert vocab.to_tokens(tokens[2]) == [CLS, "c", SEP, PAD, PAD, PAD]


def test_bigram_shift_swaps_one_adjacent_pair_in_half():
    rng = random.Random(0)
    sentences = [[f"w{i}{j}" for j in range(8)] for i in range(100)]
    out, labels = bigram_shift(sentences, rng)
    assert sum(labels) == 50
    for s, o, y in zip(sentences, out, labels):
        diff = [k for k in range(8) if s[k] != o[k]]
        assert sorted(s) == sorted(o)
        assert diff == ([] if y == 0 else [diff[0], diff[0] + 1])


def test_shuffle_perturbation_reorders_half_and_unknown_ones_are_refused():
    rng = random.Random(0)
    sentences = [["a", "b"], ["x", "y", "z"]] * 50
    out, labels = bigram_shift(sentences, rng, "shuffle")
    assert sum(labels) == 50
    for s, o, y in zip(sentences, out, labels):
        assert sorted(s) == sorted(o) and (s != o) == bool(y)
    with pytest.raises(ConfigError, match="perturb must be one of swap, shuffle"):
        bigram_shift(sentences, rng, "reverse")


def test_ptb_bert_objective(shared_data):
    bundle = load_dataset("ptb", batch_size=16, data_dir=str(shared_data), objective="bert", max_sentences=400,
                          steps_per_epoch=4)
    assert bundle.task == "bert-pretrain" and len(bundle.train) == 4
    assert bundle.valid is not None and bundle.context["max_len"] == 64
    with pytest.raises(ConfigError, match="objective"):
        load_dataset("ptb", data_dir=str(shared_data), objective="mlm")
    with pytest.raises(ConfigError, match="max_len"):
        load_dataset("ptb", data_dir=str(shared_data), max_len=32)  # a BERT option for the language model


def test_ptb_bshift(shared_data):
    bundle = load_dataset("ptb-bshift", batch_size=8, data_dir=str(shared_data), num_train=100, num_test=60)
    tokens, segments, valid_lens, y = bundle.train.tensors
    assert tokens.shape == (100, 64) and int(y.sum()) == 50 and int(segments.sum()) == 0
    assert bundle.test.tensors[0].shape == (60, 64)
    assert bundle.context["num_classes"] == 2 and "bert_state" not in bundle.context
