"""Data for BERT (book 15.9 and 16.6-16.7): pretraining pairs and fine-tuning sets (their training
tasks are in divekit.tasks.bert).

Pretraining data, exactly as the book builds it from WikiText-2 (`_WikiTextDataset`):

1. paragraphs: lists of sentences (WikiText-2: lines of wiki.train.tokens with at least two
   ' . '-separated sentences, lowercased; PTB: every `sentences_per_paragraph` consecutive lines
   of ptb.train.txt, which keeps the Wall Street Journal articles' sentence order), shuffled;
2. next-sentence prediction: each pair of consecutive sentences (A, B) of a paragraph becomes
   `<cls> A <sep> B <sep>` with B kept (label 1) or, with probability 1/2, replaced by a random
   sentence of a random paragraph (label 0); pairs longer than max_len are dropped;
3. masked language modeling: 15% of the tokens (at least one; never `<cls>` or `<sep>`) become
   prediction positions; of these 80% are replaced by `<mask>`, 10% by a random token of the
   vocabulary and 10% kept;
4. padding: tokens to max_len with `<pad>` (valid lengths kept), prediction positions, labels and
   weights to round(0.15 * max_len), the weights 0 on the padded prediction slots.

The vocabulary keeps words seen at least 5 times, with `<pad> <mask> <cls> <sep>` reserved
(indices 1-4 after `<unk>`). All randomness comes from one `random.Random(seed)` consumed in the
book's order, never from global state, so a seed gives the same data every time.

A pretraining batch is (tokens, segments, valid_lens, pred_positions, mlm_weights, mlm_labels,
nsp_labels), trained by the task "bert-pretrain" (loss MLM + NSP, reported separately).

Fine-tuning: `read_snli` (the SNLI files, with the book's preprocessing) and the `ptb-bshift`
task built from PTB: is one pair of adjacent words swapped in this sentence? (the "bigram shift"
probing task of Conneau et al., 2018). A bag of words cannot solve it: it takes word order, which
masked language modeling has to learn. Both give batches (tokens, segments, valid_lens, labels)
for the task "classification" (the model takes every tensor of the batch but the last).
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Any, Sequence

import torch

from ..core.errors import ConfigError, DataError
from ..models.bert import CLS, MASK, PAD, RESERVED, SEP, bert_config_of, get_tokens_and_segments, load_pretrained_run
from . import hub
from .loader import TensorLoader
from .registry import DataBundle, register_dataset
from .text import Vocab, read_ptb, tokenize

MIN_FREQ = 5  # the book's vocabulary threshold for WikiText-2
MLM_FRACTION = 0.15
Paragraph = list[list[str]]  # sentences of word tokens


# --------------------------------------------------------------------------------------------
# Paragraphs
# --------------------------------------------------------------------------------------------


def wiki_paragraphs(text: str) -> list[list[str]]:
    """The book's `_read_wiki` on the text of wiki.train.tokens (without its shuffle): every line
    with at least two ' . '-separated sentences, stripped, lowercased and split into sentences."""
    return [line.strip().lower().split(" . ") for line in text.split("\n") if len(line.split(" . ")) >= 2]


def read_wiki(data_dir=None, split: str = "train") -> list[list[str]]:
    """Paragraphs (lists of sentence strings) of WikiText-2's wiki.{split}.tokens (book 15.9.1),
    downloaded from the official URL on first use (hub entry "wikitext-2")."""
    if split not in ("train", "valid", "test"):
        raise ConfigError(f"WikiText-2 split {split!r} is not one of train, valid, test")
    path = hub.fetch_extracted("wikitext-2", data_dir) / f"wiki.{split}.tokens"
    if not path.is_file():
        raise DataError(f"{path} is missing from the extracted WikiText-2 folder; delete {path.parent} to extract it again")
    return wiki_paragraphs(path.read_text(encoding="utf-8"))


def ptb_paragraphs(lines: Sequence[str], sentences_per_paragraph: int = 5) -> list[list[str]]:
    """PTB lines (one sentence each, in the articles' order) grouped into paragraphs of
    `sentences_per_paragraph` consecutive sentences; a last, shorter group is kept if it holds
    two sentences or more."""
    k = sentences_per_paragraph
    if k < 2:
        raise ConfigError(f"sentences_per_paragraph must be at least 2 (a pair needs two sentences), got {k}")
    groups = [list(lines[i : i + k]) for i in range(0, len(lines), k)]
    return [g for g in groups if len(g) >= 2]


# --------------------------------------------------------------------------------------------
# The book's pretraining pipeline (15.9.2-15.9.4)
# --------------------------------------------------------------------------------------------


def _get_next_sentence(sentence: list[str], next_sentence: list[str], paragraphs: list[Paragraph],
                       rng: random.Random) -> tuple[list[str], list[str], bool]:
    """(A, B, is_next): B is the real next sentence with probability 1/2, else a random sentence
    of a random paragraph."""
    if rng.random() < 0.5:
        is_next = True
    else:
        next_sentence = rng.choice(rng.choice(paragraphs))
        is_next = False
    return sentence, next_sentence, is_next


def _get_nsp_data_from_paragraph(paragraph: Paragraph, paragraphs: list[Paragraph], max_len: int,
                                 rng: random.Random) -> list[tuple[list[str], list[int], bool]]:
    """(tokens, segments, is_next) for each consecutive sentence pair of `paragraph` that fits
    max_len with one `<cls>` and two `<sep>`."""
    out = []
    for i in range(len(paragraph) - 1):
        tokens_a, tokens_b, is_next = _get_next_sentence(paragraph[i], paragraph[i + 1], paragraphs, rng)
        if len(tokens_a) + len(tokens_b) + 3 > max_len:
            continue
        tokens, segments = get_tokens_and_segments(tokens_a, tokens_b)
        out.append((tokens, segments, is_next))
    return out


def _replace_mlm_tokens(tokens: list[str], candidate_pred_positions: list[int], num_mlm_preds: int, vocab: Vocab,
                        rng: random.Random) -> tuple[list[str], list[tuple[int, str]]]:
    """The input with num_mlm_preds random candidate positions replaced, 80% by `<mask>`, 10% by
    a random vocabulary token, 10% unchanged; and the (position, original token) pairs.
    Shuffles `candidate_pred_positions` in place, as the book does."""
    mlm_input_tokens = list(tokens)
    pred_positions_and_labels = []
    rng.shuffle(candidate_pred_positions)
    for mlm_pred_position in candidate_pred_positions:
        if len(pred_positions_and_labels) >= num_mlm_preds:
            break
        if rng.random() < 0.8:
            masked_token = MASK
        elif rng.random() < 0.5:
            masked_token = tokens[mlm_pred_position]
        else:
            masked_token = rng.choice(vocab.idx_to_token)
        mlm_input_tokens[mlm_pred_position] = masked_token
        pred_positions_and_labels.append((mlm_pred_position, tokens[mlm_pred_position]))
    return mlm_input_tokens, pred_positions_and_labels


def _get_mlm_data_from_tokens(tokens: list[str], vocab: Vocab, rng: random.Random
                              ) -> tuple[list[int], list[int], list[int]]:
    """(input token ids, prediction positions in increasing order, label ids) for one sequence:
    max(1, round(0.15 * len(tokens))) predictions among the positions that are not `<cls>`/`<sep>`."""
    candidate_pred_positions = [i for i, token in enumerate(tokens) if token not in (CLS, SEP)]
    num_mlm_preds = max(1, round(len(tokens) * MLM_FRACTION))
    mlm_input_tokens, pred_positions_and_labels = _replace_mlm_tokens(
        tokens, candidate_pred_positions, num_mlm_preds, vocab, rng)
    pred_positions_and_labels.sort(key=lambda x: x[0])
    pred_positions = [p for p, _ in pred_positions_and_labels]
    mlm_pred_labels = [label for _, label in pred_positions_and_labels]
    return vocab[mlm_input_tokens], pred_positions, vocab[mlm_pred_labels]


def _pad_bert_inputs(examples, max_len: int, vocab: Vocab) -> tuple[torch.Tensor, ...]:
    """Padded tensors (tokens, segments, valid_lens, pred_positions, mlm_weights, mlm_labels,
    nsp_labels) of examples (token ids, pred positions, label ids, segments, is_next).

    Tokens (N, max_len) are padded with `<pad>` and segments with 0; prediction positions,
    labels (N, P) with 0 and weights (N, P) with 0.0, for P = round(0.15 * max_len); valid_lens
    (N,) count the real tokens (int64 here; the book keeps them as float32).
    """
    max_num_mlm_preds = round(max_len * MLM_FRACTION)
    pad = vocab[PAD]
    tokens, segments, valid_lens, positions, weights, labels, nsp = [], [], [], [], [], [], []
    for token_ids, pred_positions, mlm_pred_label_ids, segs, is_next in examples:
        n_pad, p_pad = max_len - len(token_ids), max_num_mlm_preds - len(pred_positions)
        tokens.append(token_ids + [pad] * n_pad)
        segments.append(segs + [0] * n_pad)
        valid_lens.append(len(token_ids))
        positions.append(pred_positions + [0] * p_pad)
        weights.append([1.0] * len(mlm_pred_label_ids) + [0.0] * p_pad)
        labels.append(mlm_pred_label_ids + [0] * p_pad)
        nsp.append(int(is_next))
    long = torch.int64
    return (torch.tensor(tokens, dtype=long).reshape(-1, max_len), torch.tensor(segments, dtype=long).reshape(-1, max_len),
            torch.tensor(valid_lens, dtype=long), torch.tensor(positions, dtype=long).reshape(-1, max_num_mlm_preds),
            torch.tensor(weights, dtype=torch.float32).reshape(-1, max_num_mlm_preds),
            torch.tensor(labels, dtype=long).reshape(-1, max_num_mlm_preds), torch.tensor(nsp, dtype=long))


def bert_vocab(paragraphs: list[Paragraph], min_freq: int = MIN_FREQ) -> Vocab:
    """The book's BERT vocabulary: words of all sentences seen at least min_freq times, plus
    `<pad> <mask> <cls> <sep>`."""
    return Vocab([s for p in paragraphs for s in p], min_freq=min_freq, reserved_tokens=RESERVED)


def pretraining_examples(paragraphs: list[list[str]], max_len: int = 64, vocab: Vocab | None = None,
                         seed: int = 0) -> tuple[tuple[torch.Tensor, ...], Vocab]:
    """The book's `_WikiTextDataset`: paragraphs of sentence strings -> the seven padded tensors
    of `_pad_bert_inputs`, and the vocabulary (built here unless given, e.g. the training
    vocabulary for a validation split). The paragraphs are shuffled first, as `_read_wiki` does."""
    if max_len < 5:
        raise ConfigError(f"max_len must be at least 5 (<cls>, <sep>, <sep> and a word per sentence), got {max_len}")
    rng = random.Random(seed)
    paragraphs = list(paragraphs)
    rng.shuffle(paragraphs)
    tokenized: list[Paragraph] = [tokenize(p, "word") for p in paragraphs]
    if vocab is None:
        vocab = bert_vocab(tokenized)
    examples = []
    for paragraph in tokenized:
        examples.extend(_get_nsp_data_from_paragraph(paragraph, tokenized, max_len, rng))
    if not examples:
        raise DataError(f"no sentence pair of {len(paragraphs)} paragraphs fits max_len={max_len}: give paragraphs "
                        "of two sentences or more, or a larger max_len")
    examples = [_get_mlm_data_from_tokens(tokens, vocab, rng) + (segments, is_next)
                for tokens, segments, is_next in examples]
    return _pad_bert_inputs(examples, max_len, vocab), vocab


class StepsPerEpoch:
    """A loader whose epochs are windows of `steps` batches over an endless sequence of epochs of
    `loader` (a TensorLoader): epoch e covers batches e * steps ... (e + 1) * steps - 1, so short
    epochs still walk through all the data, each epoch is reproducible from e alone (resumes see
    the same batches) and the trainer logs and checkpoints every `steps` updates."""

    def __init__(self, loader: TensorLoader, steps: int):
        if steps < 1:
            raise ConfigError(f"steps_per_epoch must be at least 1, got {steps}")
        self.loader, self.steps, self.epoch = loader, steps, 0

    def __getattr__(self, name):  # device, batch_size, tensors ... of the wrapped loader
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        per_pass = len(self.loader)
        if per_pass == 0:
            return
        inner, skip = divmod(self.epoch * self.steps, per_pass)
        left = self.steps
        while left:
            self.loader.set_epoch(inner)
            for batch in itertools.islice(iter(self.loader), skip, skip + left):
                yield batch
                left -= 1
            inner, skip = inner + 1, 0


def pretraining_bundle(name: str, train_paragraphs: list[list[str]], valid_paragraphs: list[list[str]] | None, *,
                       batch_size: int, seed: int = 0, device=None, max_len: int = 64,
                       steps_per_epoch: int | None = None, max_examples: int | None = None) -> DataBundle:
    """A DataBundle (task "bert-pretrain") of BERT pretraining tensors.

    The vocabulary comes from the training paragraphs; the valid split (if given) is encoded with
    it. `max_examples` keeps the first examples of the (shuffled) training set; `steps_per_epoch`
    makes an epoch that many batches (see StepsPerEpoch). The context carries vocab_size, the
    vocab (`Vocab.to_dict`, for `divekit embed` and fine-tuning) and max_len.
    """
    train_tensors, vocab = pretraining_examples(train_paragraphs, max_len, seed=seed)
    if max_examples is not None:
        if max_examples < 1:
            raise ConfigError(f"max_examples must be at least 1, got {max_examples}")
        train_tensors = tuple(t[:max_examples] for t in train_tensors)
    train = TensorLoader(*train_tensors, batch_size=batch_size, shuffle=True, device=device, seed=seed)
    if steps_per_epoch is not None:
        train = StepsPerEpoch(train, steps_per_epoch)
    valid = None
    if valid_paragraphs:
        valid_tensors, _ = pretraining_examples(valid_paragraphs, max_len, vocab=vocab, seed=seed)
        valid = TensorLoader(*valid_tensors, batch_size=max(batch_size, 256), device=device)
    context = {"vocab_size": len(vocab), "vocab": vocab.to_dict(), "max_len": max_len}
    return DataBundle(name=name, task="bert-pretrain", train=train, valid=valid, context=context)


def ptb_pretraining_bundle(*, batch_size: int, seed: int = 0, device=None, data_dir=None, max_len: int = 64,
                           sentences_per_paragraph: int = 5, steps_per_epoch: int | None = None,
                           max_examples: int | None = None, max_sentences: int | None = None) -> DataBundle:
    """BERT pretraining pairs from the Penn Treebank: paragraphs of `sentences_per_paragraph`
    consecutive sentences of ptb.train.txt (valid: of ptb.valid.txt); `max_sentences` reads only
    the first lines of each file (for quick runs)."""
    lines = {split: read_ptb(split, data_dir)[:max_sentences] for split in ("train", "valid")}
    return pretraining_bundle(
        "ptb", ptb_paragraphs(lines["train"], sentences_per_paragraph),
        ptb_paragraphs(lines["valid"], sentences_per_paragraph), batch_size=batch_size, seed=seed, device=device,
        max_len=max_len, steps_per_epoch=steps_per_epoch, max_examples=max_examples)


@register_dataset("wikitext-2", defaults={"batch_size": 128, "epochs": 10}, tags=("text", "bert"))
def wikitext2(*, batch_size, seed, device, data_dir=None, objective="bert", max_len=64, steps_per_epoch=None,
              max_examples=None):
    """WikiText-2 as BERT pretraining pairs, the book's data (book 15.9); valid from wiki.valid.tokens."""
    if objective != "bert":
        raise ConfigError(f"wikitext-2 provides BERT pretraining data only (objective='bert'), not {objective!r}")
    return pretraining_bundle("wikitext-2", read_wiki(data_dir, "train"), read_wiki(data_dir, "valid"),
                              batch_size=batch_size, seed=seed, device=device, max_len=max_len,
                              steps_per_epoch=steps_per_epoch, max_examples=max_examples)


# --------------------------------------------------------------------------------------------
# Fine-tuning data
# --------------------------------------------------------------------------------------------


def encode_texts(texts: Sequence[Sequence[str] | tuple[Sequence[str], Sequence[str]]], vocab: Vocab, max_len: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Single texts (token lists) or text pairs ((A, B) tuples) -> (tokens (N, max_len),
    segments (N, max_len), valid_lens (N,)), padded with `<pad>`. Too long inputs are truncated
    as the book does for SNLI: a single text keeps its first max_len - 2 tokens; a pair drops the
    last token of its longer part until both fit with `<cls>` and two `<sep>`."""
    pad = vocab[PAD]
    tokens, segments, valid_lens = [], [], []
    for text in texts:
        if isinstance(text, tuple):
            a, b = list(text[0]), list(text[1])
            while len(a) + len(b) > max_len - 3:
                (a if len(a) > len(b) else b).pop()
            toks, segs = get_tokens_and_segments(a, b)
        else:
            toks, segs = get_tokens_and_segments(list(text)[: max_len - 2])
        tokens.append(vocab[toks] + [pad] * (max_len - len(toks)))
        segments.append(segs + [0] * (max_len - len(segs)))
        valid_lens.append(len(toks))
    return (torch.tensor(tokens, dtype=torch.int64).reshape(-1, max_len),
            torch.tensor(segments, dtype=torch.int64).reshape(-1, max_len), torch.tensor(valid_lens, dtype=torch.int64))


SNLI_LABELS = {"entailment": 0, "contradiction": 1, "neutral": 2}
SNLI_SPLITS = ("train", "dev", "test")


def _snli_text(s: str) -> str:
    """The book's extract_text: the binary parse without parentheses and repeated spaces."""
    s = re.sub("\\(", "", s)
    s = re.sub("\\)", "", s)
    s = re.sub("\\s{2,}", " ", s)
    return s.strip()


def parse_snli(text: str, source: str = "snli") -> tuple[list[str], list[str], list[int]]:
    """(premises, hypotheses, labels) of an SNLI .txt file's text (book 16.4.1.1): the columns
    gold_label, sentence1_binary_parse and sentence2_binary_parse (the book's; sentence1 and
    sentence2 when there is no parse), preprocessed like the book's read_snli; rows whose gold
    label is '-' (no consensus) are dropped. Labels: entailment 0, contradiction 1, neutral 2."""
    lines = text.rstrip("\n").split("\n")
    header = lines[0].rstrip("\r").split("\t")
    cols = {}
    for key, names in (("label", ("gold_label",)), ("p", ("sentence1_binary_parse", "sentence1")),
                       ("h", ("sentence2_binary_parse", "sentence2"))):
        found = next((header.index(n) for n in names if n in header), None)
        if found is None:
            raise DataError(f"{source} has no column {' or '.join(names)} in its header; is it an SNLI 1.0 .txt file?")
        cols[key] = found
    rows = [line.rstrip("\r").split("\t") for line in lines[1:] if line.strip()]
    rows = [r for r in rows if len(r) > max(cols.values()) and r[cols["label"]] in SNLI_LABELS]
    return ([_snli_text(r[cols["p"]]) for r in rows], [_snli_text(r[cols["h"]]) for r in rows],
            [SNLI_LABELS[r[cols["label"]]] for r in rows])


def read_snli(data_dir=None, split: str = "train") -> tuple[list[str], list[str], list[int]]:
    """(premises, hypotheses, labels) of snli_1.0/snli_1.0_{split}.txt, downloaded from the
    official URL on first use (hub entry "snli")."""
    if split not in SNLI_SPLITS:
        raise ConfigError(f"SNLI split {split!r} is not one of {', '.join(SNLI_SPLITS)}")
    path = hub.fetch_extracted("snli", data_dir) / f"snli_1.0_{split}.txt"
    if not path.is_file():
        raise DataError(f"{path} is missing from the extracted SNLI folder; delete {path.parent} to extract it again")
    return parse_snli(path.read_text(encoding="utf-8"), str(path))


def snli_pairs(premises: list[str], hypotheses: list[str]) -> list[tuple[list[str], list[str]]]:
    """Lowercased word tokens of each (premise, hypothesis), as the book's SNLIBERTDataset."""
    p_tokens = tokenize([s.lower() for s in premises], "word")
    h_tokens = tokenize([s.lower() for s in hypotheses], "word")
    return list(zip(p_tokens, h_tokens))


PERTURBATIONS = ("swap", "shuffle")


def bigram_shift(sentences: list[list[str]], rng: random.Random, perturb: str = "swap"
                 ) -> tuple[list[list[str]], list[int]]:
    """The bigram-shift task: a random half of the sentences are perturbed (label 1), the others
    stay as they are (label 0). `perturb="swap"`: two adjacent, different words are swapped (every
    sentence needs two different adjacent words); "shuffle": the words are put in a random order
    other than the original."""
    if perturb not in PERTURBATIONS:
        raise ConfigError(f"perturb must be one of {', '.join(PERTURBATIONS)}, got {perturb!r}")
    order = list(range(len(sentences)))
    rng.shuffle(order)
    shifted = set(order[: len(sentences) // 2])
    out, labels = [], []
    for i, s in enumerate(sentences):
        s = list(s)
        if i in shifted and perturb == "swap":
            j = rng.choice([k for k in range(len(s) - 1) if s[k] != s[k + 1]])
            s[j], s[j + 1] = s[j + 1], s[j]
        elif i in shifted:
            original = list(s)
            while s == original:  # terminates: every sentence has two different adjacent words
                rng.shuffle(s)
        out.append(s)
        labels.append(int(i in shifted))
    return out, labels


def _pretrained_context(pretrained: str | None, build_vocab) -> tuple[Vocab, dict[str, Any]]:
    """The vocabulary and model context of a fine-tuning set: a pretraining run's vocab, sizes
    and weights (`pretrained`: its folder), else a new vocabulary from `build_vocab()` and none."""
    if pretrained is None:
        return build_vocab(), {}

    state, meta = load_pretrained_run(pretrained)
    return Vocab.from_dict(meta["context"]["vocab"]), {"bert_config": bert_config_of(meta), "bert_state": state,
                                                      "pretrained": str(pretrained)}


def classification_bundle(name: str, train: tuple[torch.Tensor, ...], test: tuple[torch.Tensor, ...],
                          classes: list[str], vocab: Vocab, extra: dict[str, Any], *, batch_size: int, seed: int,
                          device, valid: tuple[torch.Tensor, ...] | None = None) -> DataBundle:
    """A DataBundle (task "classification") over (tokens, segments, valid_lens, labels)."""
    held = {"batch_size": max(batch_size, 256), "device": device}
    context = {"vocab_size": len(vocab), "vocab": vocab.to_dict(), "num_classes": len(classes),
               "max_len": int(train[0].shape[1]), **extra}
    return DataBundle(name=name, task="classification",
                      train=TensorLoader(*train, batch_size=batch_size, shuffle=True, device=device, seed=seed),
                      valid=TensorLoader(*valid, **held) if valid is not None else None,
                      test=TensorLoader(*test, **held), classes=classes, context=context)


@register_dataset("ptb-bshift", defaults={"batch_size": 32, "epochs": 10}, tags=("text", "bert"))
def ptb_bshift(*, batch_size, seed, device, data_dir=None, pretrained=None, num_train=2000, num_test=2000, max_len=None,
               perturb="swap"):
    """Bigram shift on PTB sentences (single-text classification): were two adjacent words swapped?

    With `perturb="shuffle"`: was the sentence's word order shuffled?

    `num_train` labelled sentences from ptb.train.txt, `num_test` from ptb.test.txt (drawn with
    the seed), half of each perturbed. `pretrained=RUN_DIR` (a `bert-small` run) gives the
    vocabulary, sizes and weights for fine-tuning `bert-classifier`; without it the vocabulary is
    built from ptb.train.txt as for pretraining (min_freq 5) and the model starts from scratch.
    """
    train_lines = read_ptb("train", data_dir)
    vocab, extra = _pretrained_context(
        pretrained, lambda: bert_vocab([tokenize(train_lines, "word")]))
    longest = extra.get("bert_config", {}).get("max_len", 64)
    if max_len is not None and max_len > longest and extra:
        raise ConfigError(f"max_len={max_len} exceeds the pretrained run's {longest} positional embeddings")
    max_len = max_len or longest
    rng = random.Random(seed)

    def sample(lines: list[str], n: int, what: str) -> tuple[torch.Tensor, ...]:
        sentences = [s for s in tokenize(lines, "word")
                     if 2 <= len(s) <= max_len - 2 and any(a != b for a, b in zip(s, s[1:]))]
        if n > len(sentences):
            raise ConfigError(f"{what}: asked for {n} sentences, PTB has {len(sentences)} that fit max_len={max_len}")
        texts, labels = bigram_shift(rng.sample(sentences, n), rng, perturb)
        return (*encode_texts(texts, vocab, max_len), torch.tensor(labels, dtype=torch.int64))

    train = sample(train_lines, num_train, "num_train")
    test = sample(read_ptb("test", data_dir), num_test, "num_test")
    return classification_bundle("ptb-bshift", train, test, ["original", "shifted"], vocab, extra,
                                 batch_size=batch_size, seed=seed, device=device)


@register_dataset("snli-bert", defaults={"batch_size": 512, "epochs": 5}, tags=("text", "bert"))
def snli_bert(*, batch_size, seed, device, data_dir=None, pretrained=None, max_len=128, num_train=None):
    """SNLI for BERT fine-tuning (book 16.7): premise-hypothesis pairs, 3 classes, max_len 128.

    `pretrained=RUN_DIR` gives the vocabulary and weights (use a run pretrained with at least
    this max_len); without it the vocabulary is built from the training pairs (min_freq 5).
    `num_train` keeps the first training pairs. Valid: snli_1.0_dev; test: snli_1.0_test.
    """
    splits = {s: read_snli(data_dir, s) for s in SNLI_SPLITS}
    if num_train is not None:
        splits["train"] = tuple(part[:num_train] for part in splits["train"])
    pairs = {s: snli_pairs(p, h) for s, (p, h, _) in splits.items()}
    vocab, extra = _pretrained_context(pretrained, lambda: bert_vocab([[t for pair in pairs["train"] for t in pair]]))
    if extra and max_len > extra["bert_config"]["max_len"]:
        max_len = extra["bert_config"]["max_len"]  # the pretrained positional embeddings end there

    def arrays(split: str) -> tuple[torch.Tensor, ...]:
        return (*encode_texts(pairs[split], vocab, max_len), torch.tensor(splits[split][2], dtype=torch.int64))

    return classification_bundle("snli-bert", arrays("train"), arrays("test"), list(SNLI_LABELS), vocab, extra,
                                 batch_size=batch_size, seed=seed, device=device, valid=arrays("dev"))
