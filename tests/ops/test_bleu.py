"""divekit.ops.bleu: the book's sentence BLEU on its worked example and outputs, and corpus BLEU-4
checked against sacrebleu bit for bit."""

from __future__ import annotations

import math
import random
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from divekit.core.errors import ConfigError
from divekit.ops.bleu import bleu, corpus_bleu, corpus_bleu_scratch, ngram_precisions

# book 10.5 / 10.7: the four test sentences and their references
ENGS = ["go .", "i lost .", "he's calm .", "i'm home ."]
FRAS = ["va !", "j'ai perdu .", "il est calme .", "je suis chez moi ."]


def test_the_books_worked_example_precisions():
    # label A B C D E F, prediction A B B C D: p1 = 4/5, p2 = 3/4, p3 = 1/3, p4 = 0/2 (book 10.7.4)
    assert ngram_precisions("a b b c d", "a b c d e f", k=4) == [(4, 5), (3, 4), (1, 3), (0, 2)]
    assert bleu("a b b c d", "a b c d e f", k=4) == 0.0  # no 4-gram matches
    expected = math.exp(1 - 6 / 5) * (4 / 5) ** (1 / 2) * (3 / 4) ** (1 / 4) * (1 / 3) ** (1 / 8)
    assert bleu("a b b c d", "a b c d e f", k=3) == pytest.approx(expected, rel=1e-15)


def test_clipped_counts():
    # "the the the" against "the cat": "the" matches once only
    assert ngram_precisions("the the the", "the cat", k=2) == [(1, 3), (0, 2)]


@pytest.mark.parametrize("k", [2, 4])
def test_identical_translations_score_one(k):
    assert [bleu(f, f, k=k) for f in FRAS] == [1.0, 1.0, 1.0, 1.0]


def test_the_books_reported_scores():
    # the book's seq2seq outputs (book 10.7.6, k=2)
    assert bleu("nous <unk> .", "il est calme .", k=2) == 0.0  # p1 = 1/3, no bigram
    score = bleu("je suis chez moi <unk> .", "je suis chez moi .", k=2)  # p1 = 5/6, p2 = 3/5, no penalty
    assert score == pytest.approx(math.sqrt(5 / 6) * (3 / 5) ** 0.25, rel=1e-15) and round(score, 3) == 0.803


def test_brevity_penalty_only_for_short_predictions():
    assert bleu("a b", "a b c d", k=2) == pytest.approx(math.exp(1 - 4 / 2), rel=1e-15)
    assert bleu("a b c d", "a b", k=1) == pytest.approx((2 / 4) ** 0.5, rel=1e-15)  # long: precision only
    assert bleu("a", "a b c", k=4) == pytest.approx(math.exp(1 - 3), rel=1e-15)  # only orders <= len_pred
    assert bleu("", "a b") == 0.0
    with pytest.raises(ConfigError, match="k must be at least 1"):
        bleu("a", "a", k=0)


# --------------------------------------------------------------------------------------------
# corpus BLEU
# --------------------------------------------------------------------------------------------


def test_corpus_bleu_by_hand():
    assert corpus_bleu_scratch(FRAS, FRAS) == pytest.approx(100.0, rel=1e-15)
    # one sentence one token short: every precision 1, BP = exp(1 - 6/5)
    assert corpus_bleu_scratch(["a b c d e"], ["a b c d e f"]) == pytest.approx(100 * math.exp(-0.2), rel=1e-15)
    # clipped matches summed over the corpus: p = 6/7, 4/5, 1/3, 0/2 -> 0 without smoothing
    assert corpus_bleu_scratch(["a b b c d", "x y"], ["a b c d e f", "x y z"]) == 0.0
    # two sentences: p = 8/8, 6/6, 4/4, 2/2 over both, lengths 8 vs 9
    score = corpus_bleu_scratch(["a b c d", "e f g h"], ["a b c d", "e f g h i"])
    assert score == pytest.approx(100 * math.exp(1 - 9 / 8), rel=1e-15)
    # short sentences: no 4-grams at all is a zero precision, not a skipped order
    assert corpus_bleu_scratch(["a b c"], ["a b c"]) == 0.0
    assert corpus_bleu_scratch([""], ["a"]) == 0.0


def test_corpus_bleu_rejects_mismatched_inputs():
    with pytest.raises(ConfigError, match="2 hypotheses but 1 references"):
        corpus_bleu_scratch(["a", "b"], ["a"])
    with pytest.raises(ConfigError, match="lists of sentences"):
        corpus_bleu("a b", "a b")


def random_corpus(rng: random.Random, size: int) -> tuple[list[str], list[str]]:
    """References of 0..12 tokens over 4 words, hypotheses edited from them (so n-grams match)."""
    words = "abcd"
    refs = [[rng.choice(words) for _ in range(rng.randint(0, 12))] for _ in range(size)]
    hyps = []
    for ref in refs:
        hyp = [w if rng.random() < 0.8 else rng.choice(words) for w in ref]
        hyp = hyp[: rng.randint(0, len(hyp))] if rng.random() < 0.3 else hyp + list(rng.choices(words, k=2))
        hyps.append(hyp)
    return [" ".join(h) for h in hyps], [" ".join(r) for r in refs]


def test_scratch_equals_sacrebleu_on_random_corpora():
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = random.Random(0)
    scores = []
    for _ in range(50):
        hyps, refs = random_corpus(rng, rng.randint(1, 30))
        want = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", smooth_method="none").score
        assert corpus_bleu_scratch(hyps, refs) == want  # bit for bit
        assert corpus_bleu(hyps, refs) == want
        scores.append(want)
    assert sum(0 < s < 100 for s in scores) >= 40  # the comparison covers real, non-trivial scores


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from("abc"), max_size=8), st.lists(st.sampled_from("abc"), max_size=8)),
                min_size=1, max_size=6))
def test_scratch_equals_sacrebleu_property(pairs):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps, refs = [" ".join(h) for h, _ in pairs], [" ".join(r) for _, r in pairs]
    want = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", smooth_method="none").score
    assert corpus_bleu_scratch(hyps, refs) == want


def test_corpus_bleu_without_sacrebleu_uses_the_scratch_version(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # makes `import sacrebleu` raise ImportError
    hyps, refs = random_corpus(random.Random(1), 20)
    assert corpus_bleu(hyps, refs) == corpus_bleu_scratch(hyps, refs) > 0
