"""English-French machine translation data (book 10.5, `MTFraEng`): the Tatoeba pairs of fra.txt.

The pipeline follows the book: `preprocess_nmt` puts a space before punctuation and lowercases,
`tokenize_nmt` splits each "english<TAB>french" line into word tokens, `build_array_nmt` maps
token lists to padded index arrays of a fixed length `num_steps`. A batch is
`(X, dec_X, X_valid_len, Y)` (see divekit.models.encoder_decoder):

* X (T,): source tokens + `<eos>`, truncated or padded with `<pad>` to T = num_steps;
* dec_X (T,) and Y (T,): the target `<bos>` + tokens + `<eos>`, truncated or padded to T + 1,
  without its last position (dec_X, what the decoder is fed) and without its first (Y, what it
  predicts): the book's `tgt_array[:, :-1]` and `tgt_array[:, 1:]`;
* X_valid_len (): the number of non-pad source tokens, int64.

Unlike the book's demo, which trains on the first 600 pairs and holds nothing out, the data are
split for real, so held-out loss and BLEU mean something. fra.txt (167,130 pairs) is ordered
roughly by length, shortest first; `num_examples` (default 20,000) keeps its first pairs, short
sentences that a 2-core CPU trains on in minutes. Many English sentences occur several times
with different French translations (the first 20,000 pairs hold 12,280 distinct English
sentences); a split of the pairs would put 62% of the test sentences' English sides into the
training split as well. So the split is by English sentence: the distinct sentences are shuffled
once with `SPLIT_SEED` (fixed, independent of the training seed) and 90% / 5% / 5% of them go to
train / valid / test with all their translations. Vocabularies are built from the training split
only (min_freq=2), so held-out words the training split lacks map to `<unk>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..core.errors import ConfigError, DataError
from . import hub
from .loader import TensorLoader
from .loader import split as split_indices
from .registry import DataBundle, register_dataset
from .text import EOS, Vocab

PAD, BOS = "<pad>", "<bos>"
RESERVED = (PAD, BOS, EOS)  # indices 1, 2, 3 after <unk>
SPLITS = ("train", "valid", "test")
SPLIT_FRACTIONS = (0.9, 0.05, 0.05)
SPLIT_SEED = 0  # the split never changes with the training seed
MIN_FREQ = 2

Sentences = list[list[str]]


def preprocess_nmt(text: str) -> str:
    """The book's preprocessing: non-breaking spaces (U+202F, U+00A0) become spaces, letters
    become lower case, and a space goes before every , . ! ? not already preceded by one (not at
    the very start of the text)."""
    text = text.replace("\u202f", " ").replace("\xa0", " ").lower()
    return re.sub(r"(?<=[^ ])(?=[,.!?])", " ", text)  # a space between a non-space and punctuation


def tokenize_nmt(text: str, max_examples: int | None = None) -> tuple[Sentences, Sentences]:
    """(source, target): the word tokens of the first `max_examples` pairs (all when None;
    exactly that many, where the book's loop keeps one line more).

    Each line of `text` is "english<TAB>french", optionally followed by more tab-separated columns
    (newer Tatoeba exports add an attribution), which are ignored. Tokens are split on spaces,
    empty ones dropped, as in the book. Unlike the book, no `<eos>` is appended here: the token
    lists are the plain sentences, which BLEU compares; `build_array_nmt` adds `<bos>` and
    `<eos>`. Blank lines are skipped; a line without a tab raises DataError naming its number.
    """
    source, target = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if max_examples is not None and len(source) >= max_examples:
            break
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataError(f"line {number} is not 'english<TAB>french': {line[:80]!r}; "
                            "the file is corrupt or not fra.txt, delete it and download it again")
        source.append([t for t in parts[0].split(" ") if t])
        target.append([t for t in parts[1].split(" ") if t])
    return source, target


def truncate_pad(seq: list[int], length: int, pad: int) -> list[int]:
    """`seq` cut to `length` items, or padded with `pad` up to it (the book's truncate_pad)."""
    return seq[:length] + [pad] * (length - len(seq))


def build_array_nmt(sentences: Sentences, vocab: Vocab, num_steps: int, *, target: bool = False) -> torch.Tensor:
    """Token lists -> an int64 array of indices: each sentence + `<eos>`, truncated or padded to
    num_steps, (N, num_steps); for `target`, `<bos>` + sentence + `<eos>` to num_steps + 1,
    (N, num_steps + 1), which gives the decoder input and the labels."""
    pad, eos, bos = vocab[PAD], vocab[EOS], vocab[BOS]
    length = num_steps + 1 if target else num_steps
    start = [bos] if target else []
    rows = [truncate_pad(start + vocab[s] + [eos], length, pad) for s in sentences]
    return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), length)  # (N, length), also for N = 0


def read_fra_eng(data_dir=None) -> str:
    """The raw text of fra.txt, from the data directory (downloaded and extracted on first use)."""
    path = hub.fetch_extracted("fra-eng", data_dir) / "fra.txt"
    if not path.is_file():
        raise DataError(f"{path} is missing from the extracted fra-eng folder; delete {path.parent} "
                        "to extract it again")
    return path.read_text(encoding="utf-8")


def split_by_source(source: Sentences, seed: int = SPLIT_SEED) -> dict[str, list[int]]:
    """Example indices of each split (train, valid, test), in corpus order.

    The distinct source sentences are shuffled with `seed` and divided 90/5/5; an example goes
    where its source sentence went, so every translation of a sentence is in the same split.
    """
    group_of: dict[tuple[str, ...], int] = {}
    groups = [group_of.setdefault(tuple(s), len(group_of)) for s in source]
    split_of = torch.empty(len(group_of), dtype=torch.int64)
    for k, members in enumerate(split_indices(len(group_of), SPLIT_FRACTIONS, seed=seed)):
        split_of[members] = k
    which = split_of[torch.tensor(groups, dtype=torch.int64)].tolist() if groups else []
    return {name: [i for i, w in enumerate(which) if w == k] for k, name in enumerate(SPLITS)}


@dataclass
class TranslationData:
    """The arrays, vocabularies and sentences of every split of a translation corpus.

    arrays[split] = (X, dec_X, X_valid_len, Y) with shapes (N, T), (N, T), (N,), (N, T);
    sentences[split] = (source, target) token lists without special tokens, in the same order:
    the references for BLEU.
    """

    src_vocab: Vocab
    tgt_vocab: Vocab
    num_steps: int
    arrays: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
    sentences: dict[str, tuple[Sentences, Sentences]]


def split_in_order(n: int, num_train: int) -> dict[str, list[int]]:
    """The book's split (`MTFraEng(num_train=512, num_val=128)`): the first `num_train` pairs
    train, the rest validate, no test split."""
    return {"train": list(range(min(num_train, n))), "valid": list(range(num_train, n)), "test": []}


def make_translation_data(source: Sentences, target: Sentences, num_steps: int = 9,
                          index: dict[str, list[int]] | None = None, vocab_splits: tuple[str, ...] = ("train",)
                          ) -> TranslationData:
    """Split token lists (by source sentence, unless `index` gives each split's example indices),
    build the vocabularies on the `vocab_splits` (the training split) and the arrays of every split."""
    if num_steps < 1:
        raise ConfigError(f"num_steps must be at least 1, got {num_steps}")
    if len(source) != len(target):
        raise DataError(f"{len(source)} source sentences but {len(target)} target sentences")
    index = index if index is not None else split_by_source(source)
    sentences = {k: ([source[i] for i in idx], [target[i] for i in idx]) for k, idx in index.items()}
    train_src, train_tgt = sentences["train"]
    if not train_src:
        raise DataError(f"{len(source)} sentence pairs leave none for training; use more examples")
    src_vocab = Vocab([s for k in vocab_splits for s in sentences[k][0]], min_freq=MIN_FREQ, reserved_tokens=RESERVED)
    tgt_vocab = Vocab([s for k in vocab_splits for s in sentences[k][1]], min_freq=MIN_FREQ, reserved_tokens=RESERVED)
    arrays = {}
    for name, (src, tgt) in sentences.items():
        X = build_array_nmt(src, src_vocab, num_steps)  # (N, T)
        tgt_array = build_array_nmt(tgt, tgt_vocab, num_steps, target=True)  # (N, T + 1)
        X_valid_len = (X != src_vocab[PAD]).sum(dim=1)  # (N,)
        arrays[name] = (X, tgt_array[:, :-1], X_valid_len, tgt_array[:, 1:])
    return TranslationData(src_vocab, tgt_vocab, num_steps, arrays, sentences)


def _first_lines(text: str, n: int) -> str:
    """`text` up to the end of its n-th non-blank line (all of it when it has fewer)."""
    end = -1
    while n > 0:
        start = end + 1
        end = text.find("\n", start)
        if end < 0:
            return text
        n -= bool(text[start:end].strip())
    return text[:end]


def load_translation(data_dir=None, num_steps: int = 9, num_examples: int | None = 20000,
                     num_train: int | None = None, num_val: int = 128) -> TranslationData:
    """The English -> French data of fra.txt: its first `num_examples` pairs (all when None),
    split by English sentence into train / valid / test (90/5/5, fixed), as arrays of num_steps
    tokens with vocabularies from the training split.

    With `num_train`, the book's demo setting instead: the first `num_train` pairs train and the
    next `num_val` validate (`num_examples` is then ignored; there is no test split), with the
    vocabularies built, as the book builds them, on both."""
    if num_train is not None:
        if num_train < 1 or num_val < 0:
            raise ConfigError(f"num_train must be at least 1 and num_val at least 0, got {num_train} and {num_val}")
        num_examples = num_train + num_val
    if num_examples is not None and num_examples < 1:
        raise ConfigError(f"num_examples must be at least 1 (or None for all of fra.txt), got {num_examples}")
    raw = read_fra_eng(data_dir)
    if num_examples is not None:
        raw = _first_lines(raw, num_examples)  # preprocess only what is kept: a fraction of a second
    source, target = tokenize_nmt(preprocess_nmt(raw), num_examples)
    if num_train is None:
        return make_translation_data(source, target, num_steps)
    return make_translation_data(source, target, num_steps, split_in_order(len(source), num_train), ("train", "valid"))


def translation_sentences(split: str = "test", *, data_dir=None, num_examples: int | None = 20000
                          ) -> tuple[Sentences, Sentences]:
    """(source, target) token lists of one split of the fra-eng data, as the `fra-eng` dataset
    with the same `num_examples` splits it: the sentences to translate and their references."""
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    return load_translation(data_dir, num_examples=num_examples).sentences[split]


@register_dataset("fra-eng", defaults={"batch_size": 128, "epochs": 30}, tags=("text", "translation"))
def fra_eng(*, batch_size, seed, device, data_dir=None, num_steps=9, num_examples=20000, num_train=None, num_val=128):
    """English -> French sentence pairs from Tatoeba (book 10.5), for machine translation.

    The first `num_examples` pairs of fra.txt (shortest first), split 90/5/5 by English sentence
    with a fixed seed; batches (X, dec_X, X_valid_len, Y) of num_steps tokens. `num_train=512`
    gives the book's demo setting: the first 512 pairs train, the next `num_val` (128) validate."""
    data = load_translation(data_dir, num_steps=num_steps, num_examples=num_examples, num_train=num_train,
                            num_val=num_val)

    def loader(name: str, **options) -> TensorLoader | None:
        arrays = data.arrays[name]
        return TensorLoader(*arrays, device=device, **options) if len(arrays[0]) else None

    tgt = data.tgt_vocab
    context = {
        "src_vocab_size": len(data.src_vocab),
        "tgt_vocab_size": len(tgt),
        "src_vocab": data.src_vocab.to_dict(),
        "tgt_vocab": tgt.to_dict(),
        "num_steps": num_steps,
        "tgt_pad": tgt[PAD],
        "tgt_bos": tgt[BOS],
        "tgt_eos": tgt[EOS],
    }
    held = max(batch_size, 1024)
    return DataBundle(
        name="fra-eng",
        task="seq2seq",
        train=loader("train", batch_size=batch_size, shuffle=True, seed=seed),
        valid=loader("valid", batch_size=held),
        test=loader("test", batch_size=held),
        context=context,
    )
