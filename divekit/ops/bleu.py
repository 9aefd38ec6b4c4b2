"""BLEU, the n-gram overlap score of machine translation (book 10.7.4; Papineni et al., 2002).

Sentences are strings of tokens separated by spaces: the data's own tokenization (divekit.data.
translation), so no further tokenizing happens here.

* `bleu(pred, label, k)`: the book's sentence score,
  exp(min(0, 1 - len_label / len_pred)) * prod_{n=1..k} p_n^(1/2^n), in [0, 1].
* `corpus_bleu(hypotheses, references)`: the standard corpus BLEU-4 in [0, 100], as papers
  report it: clipped n-gram matches and hypothesis n-grams summed over the whole corpus, the
  brevity penalty on the total lengths, the geometric mean of p_1..p_4, no smoothing. It is
  sacrebleu's score (`tokenize="none"`, `smooth_method="none"`) when sacrebleu is installed;
  `corpus_bleu_scratch` computes the same number by hand, and stands in without sacrebleu.
"""

from __future__ import annotations

import collections
import math
from typing import Sequence

from ..core.errors import ConfigError

MAX_ORDER = 4  # corpus BLEU-4


def _ngrams(tokens: list[str], n: int) -> collections.Counter:
    return collections.Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _clipped_matches(pred: list[str], label: list[str], n: int) -> tuple[int, int]:
    """(matches, pred n-grams): each pred n-gram counts at most as often as the label has it."""
    pred_counts, label_counts = _ngrams(pred, n), _ngrams(label, n)
    matches = sum(min(c, label_counts[g]) for g, c in pred_counts.items())
    return matches, max(len(pred) - n + 1, 0)


def ngram_precisions(pred_seq: str, label_seq: str, k: int = 4) -> list[tuple[int, int]]:
    """The book's p_1 .. p_k as exact fractions (matches, n-grams in the prediction).

    A prediction n-gram matches as often as it occurs in the label at most (clipped counts).
    Orders longer than the prediction are left out, as the book's loop stops there: the list has
    min(k, len_pred) entries.
    """
    if k < 1:
        raise ConfigError(f"the n-gram order k must be at least 1, got {k}")
    pred, label = pred_seq.split(), label_seq.split()
    return [_clipped_matches(pred, label, n) for n in range(1, min(k, len(pred)) + 1)]


def bleu(pred_seq: str, label_seq: str, k: int = 4) -> float:
    """The book's BLEU of one predicted sentence against its label, in [0, 1].

    exp(min(0, 1 - len_label / len_pred)) penalizes short predictions; each n-gram precision p_n
    is weighted by the exponent 1/2^n, so longer matches count more. An empty prediction scores 0.
    """
    len_pred, len_label = len(pred_seq.split()), len(label_seq.split())
    if len_pred == 0:
        return 0.0
    score = math.exp(min(0.0, 1 - len_label / len_pred))
    for n, (matches, total) in enumerate(ngram_precisions(pred_seq, label_seq, k), start=1):
        score *= math.pow(matches / total, math.pow(0.5, n))
    return score


def _check_corpus(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise ConfigError("corpus BLEU takes lists of sentences, one reference per hypothesis, not a single string")
    if len(hypotheses) != len(references):
        raise ConfigError(f"{len(hypotheses)} hypotheses but {len(references)} references: "
                          "give exactly one reference per hypothesis")


def corpus_bleu_scratch(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 in [0, 100] by hand: clipped matches and hypothesis n-grams summed over all
    sentences, p_n = matches_n / ngrams_n, BP = exp(1 - ref_len / hyp_len) when the hypotheses are
    shorter in total (else 1), score = BP * (p_1 p_2 p_3 p_4)^(1/4), no smoothing: 0 when some
    order has no match. The arithmetic follows sacrebleu's, so the two agree to the last bit."""
    _check_corpus(hypotheses, references)
    matches, totals = [0] * MAX_ORDER, [0] * MAX_ORDER
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references):
        hyp_tokens, ref_tokens = hyp.split(), ref.split()
        hyp_len, ref_len = hyp_len + len(hyp_tokens), ref_len + len(ref_tokens)
        for n in range(1, MAX_ORDER + 1):
            m, t = _clipped_matches(hyp_tokens, ref_tokens, n)
            matches[n - 1] += m
            totals[n - 1] += t
    if 0 in matches:  # also covers orders with no hypothesis n-grams at all
        return 0.0
    bp = math.exp(1 - ref_len / hyp_len) if hyp_len < ref_len else 1.0
    return bp * math.exp(sum(math.log(100.0 * m / t) for m, t in zip(matches, totals)) / MAX_ORDER)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 in [0, 100] of tokenized hypotheses against one reference each.

    sacrebleu's `corpus_bleu(hypotheses, [references], tokenize="none", smooth_method="none")` when
    sacrebleu is installed, else `corpus_bleu_scratch`, which gives the same number.
    """
    _check_corpus(hypotheses, references)
    try:
        import sacrebleu
    except ImportError:
        return corpus_bleu_scratch(hypotheses, references)
    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize="none", smooth_method="none",
                                force=True).score  # our text is tokenized on purpose
