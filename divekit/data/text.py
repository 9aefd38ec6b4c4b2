"""Text for language models (book 9.2-9.4): tokens, vocabularies, corpora and sequence minibatches.

The pipeline reads raw text (The Time Machine, Penn Treebank), splits it into tokens
(`tokenize`), maps tokens to indices (`Vocab`) and keeps the whole corpus as one 1-D int64 tensor
(`load_corpus`). Minibatches of (X, Y) with Y = X shifted by one token are cut from that tensor
by the book's two partitionings, random sampling and sequential partitioning
(`seq_data_iter_random`, `seq_data_iter_sequential`); `SeqLoader` wraps them in the loader
protocol the trainer iterates, seeded by (seed, epoch) so every epoch is reproducible.
`ngram_freqs`, `zipf_exponent` and `zipf_plot` show the book's point that word frequencies fall
off as a power law of their rank (Zipf's law).
"""

from __future__ import annotations

import collections
import itertools
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from ..core.errors import ConfigError, DataError, did_you_mean
from . import hub
from .loader import Sharded
from .registry import DataBundle, register_dataset

TOKEN_KINDS = ("char", "word")
SAMPLINGS = ("random", "sequential")
PTB_SPLITS = ("train", "valid", "test")
CORPORA = ("time-machine", "ptb")
UNK = "<unk>"
EOS = "<eos>"


def tokenize(lines: list[str] | str, token: str = "char") -> list[list[str]]:
    """Split each line into tokens: characters ("char") or whitespace-separated words ("word").

    A single string counts as one line.
    """
    if token not in TOKEN_KINDS:
        raise ConfigError(f"token {token!r} is not one of {', '.join(repr(t) for t in TOKEN_KINDS)}."
                          f"{did_you_mean(token, TOKEN_KINDS)}")
    if isinstance(lines, str):
        lines = [lines]
    return [list(line) if token == "char" else line.split() for line in lines]


class Vocab:
    """Token <-> index tables built from token counts (book 9.2.2).

    Index 0 is `<unk>`, which every unknown token maps to; then `reserved_tokens` in the given
    order (e.g. `<pad>`, `<bos>`, `<eos>`); then the tokens seen at least `min_freq` times, most
    frequent first, ties in order of first appearance.

    Args:
        tokens: a flat list of tokens or a list of token lists (lines), which is flattened.
        min_freq: tokens seen fewer times are left out (they map to `<unk>`).
        reserved_tokens: tokens given indices 1, 2, ... whether or not they occur.

    Two vocabularies are equal when they map the same tokens to the same indices.
    """

    def __init__(self, tokens: Sequence = (), min_freq: int = 0, reserved_tokens: Sequence[str] = ()):
        tokens = list(tokens)
        if tokens and isinstance(tokens[0], (list, tuple)):
            tokens = [tok for line in tokens for tok in line]
        counter = collections.Counter(tokens)  # keeps the order of first appearance
        # sorted() is stable (reverse=True included), so equal counts stay in first-appearance order
        self.token_freqs: list[tuple[str, int]] = sorted(counter.items(), key=lambda kv: kv[1], reverse=True)
        self.min_freq = min_freq
        idx_to_token = [UNK] + [t for t in dict.fromkeys(reserved_tokens) if t != UNK]
        present = set(idx_to_token)
        idx_to_token += [t for t, freq in self.token_freqs if freq >= min_freq and t not in present]
        self._set_tokens(idx_to_token)

    def _set_tokens(self, idx_to_token: list[str]) -> None:
        self.idx_to_token = idx_to_token
        self.token_to_idx = {t: i for i, t in enumerate(idx_to_token)}

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.idx_to_token == other.idx_to_token

    __hash__ = None  # mutable lists inside; equality is by content

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, first={self.idx_to_token[:6]})"

    def __getitem__(self, tokens):
        """The index of a token (0 for unknown ones), or a list of indices for a list or tuple."""
        get, unk = self.token_to_idx.get, self.unk
        if not isinstance(tokens, (list, tuple)):
            return get(tokens, unk)
        return [self[t] if isinstance(t, (list, tuple)) else get(t, unk) for t in tokens]  # no call per token

    def to_tokens(self, indices):
        """The token at an index, or a list of tokens for a list, tuple or tensor of indices."""
        if isinstance(indices, torch.Tensor):
            indices = indices.tolist()  # an int for a 0-dim tensor
        if isinstance(indices, (list, tuple)):
            return [self.to_tokens(i) for i in indices]
        i = int(indices)
        if not 0 <= i < len(self):
            raise IndexError(f"token index {i} is outside the vocabulary of {len(self)} tokens (0..{len(self) - 1})")
        return self.idx_to_token[i]

    @property
    def unk(self) -> int:
        """The index of the unknown token, 0."""
        return 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description (the token list and min_freq) that `from_dict` restores."""
        return {"idx_to_token": list(self.idx_to_token), "min_freq": self.min_freq}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocab:
        """The vocabulary `to_dict` described; DataError if `d` is not such a description.

        Token counts are not stored, so the restored `token_freqs` is empty.
        """
        tokens = d.get("idx_to_token") if isinstance(d, dict) else None
        problem = None
        if not isinstance(tokens, list) or not tokens:
            problem = "'idx_to_token' must be a non-empty list of tokens"
        elif not all(isinstance(t, str) for t in tokens):
            problem = "'idx_to_token' holds a token that is not a string"
        elif tokens[0] != UNK:
            problem = f"its first token is {tokens[0]!r}, not {UNK!r}"
        elif len(set(tokens)) != len(tokens):
            dup = next(t for t, c in collections.Counter(tokens).items() if c > 1)
            problem = f"the token {dup!r} occurs more than once"
        elif not isinstance(d.get("min_freq", 0), int) or d.get("min_freq", 0) < 0:
            problem = f"'min_freq' is {d['min_freq']!r}, not a count >= 0"
        if problem:
            raise DataError(f"the vocab is corrupt: {problem}. Rebuild it from the corpus "
                            "(or re-save the checkpoint that holds it).")
        vocab = cls.__new__(cls)
        vocab.token_freqs, vocab.min_freq = [], d.get("min_freq", 0)
        vocab._set_tokens(list(tokens))
        return vocab


# --------------------------------------------------------------------------------------------
# Corpora
# --------------------------------------------------------------------------------------------


def preprocess_time_machine(text: str) -> str:
    """Every run of non-letters becomes one space and letters become lower case (book 9.2.1)."""
    return re.sub("[^A-Za-z]+", " ", text).lower()


def read_time_machine(data_dir=None) -> str:
    """The raw text of H. G. Wells' The Time Machine (downloaded on first use)."""
    (path,) = hub.fetch("time-machine", data_dir)
    return Path(path).read_text(encoding="utf-8")


def read_ptb(split: str = "train", data_dir=None) -> list[str]:
    """The lines of a Penn Treebank split ("train", "valid" or "test"), stripped of surrounding
    spaces, blank lines left out. Rare words are already replaced by `<unk>` in the files."""
    if split not in PTB_SPLITS:
        raise ConfigError(f"PTB split {split!r} is not one of {', '.join(PTB_SPLITS)}."
                          f"{did_you_mean(split, PTB_SPLITS)}")
    path = hub.fetch_extracted("ptb", data_dir) / f"ptb.{split}.txt"
    if not path.is_file():
        raise DataError(f"{path} is missing from the extracted PTB folder; delete {path.parent} to extract it again")
    lines = path.read_text(encoding="utf-8").split("\n")
    return [line.strip() for line in lines if line.strip()]


def load_corpus(
    name: str = "time-machine",
    token: str | None = None,
    data_dir=None,
    max_tokens: int | None = None,
    vocab: Vocab | None = None,
    *,
    split: str = "train",
) -> tuple[torch.Tensor, Vocab]:
    """A text as one 1-D int64 tensor of token indices, and its vocabulary (book 9.2.4).

    - "time-machine": the preprocessed book; by default characters, so the corpus is the whole
      text as one sequence of letters and spaces. It has one split, "train"; hold text out with
      `split_corpus`.
    - "ptb": Penn Treebank, by default words; every line's tokens are followed by `<eos>` (a
      reserved token, index 1). `split` picks "train", "valid" or "test".

    The vocabulary is built from the tokens read unless `vocab` is given (pass the training
    vocabulary when loading PTB's "valid" or "test" split). `max_tokens` keeps only the first
    tokens of the corpus; the vocabulary is still built from all of them.
    """
    if name not in CORPORA:
        raise ConfigError(f"no corpus {name!r}; known: {', '.join(CORPORA)}.{did_you_mean(name, CORPORA)}")
    if max_tokens is not None and max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1 (or None for the whole corpus), got {max_tokens}")
    if name == "time-machine":
        if split != "train":
            raise ConfigError(f"the time-machine corpus has only the 'train' split, not {split!r}; "
                              "use split_corpus to hold out its last part")
        lines = tokenize(preprocess_time_machine(read_time_machine(data_dir)), token or "char")
        reserved: tuple[str, ...] = ()
    else:
        lines = [line + [EOS] for line in tokenize(read_ptb(split, data_dir), token or "word")]
        reserved = (EOS,)
    tokens = [tok for line in lines for tok in line]
    if vocab is None:
        vocab = Vocab(tokens, reserved_tokens=reserved)
    if max_tokens is not None:
        tokens = tokens[:max_tokens]
    return torch.tensor(vocab[tokens], dtype=torch.int64), vocab


def split_corpus(corpus: torch.Tensor, heldout: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, heldout): the last `heldout` fraction of the sequence is cut off as held-out text.

    Cutting at the end, not at random positions, keeps both parts continuous text.
    """
    if not 0 <= heldout <= 0.5:
        raise ConfigError(f"heldout must be a fraction in [0, 0.5], got {heldout}")
    cut = len(corpus) - round(len(corpus) * heldout)
    return corpus[:cut], corpus[cut:]


# --------------------------------------------------------------------------------------------
# Zipf's law
# --------------------------------------------------------------------------------------------


def ngram_freqs(tokens: list[str], n: int) -> list[tuple[tuple[str, ...], int]]:
    """Counts of the n-grams (tuples of n consecutive tokens), most frequent first, ties in
    order of first appearance."""
    if n < 1:
        raise ConfigError(f"n-gram length must be at least 1, got {n}")
    counter = collections.Counter(zip(*(tokens[i:] for i in range(n))))
    return sorted(counter.items(), key=lambda kv: kv[1], reverse=True)


def zipf_exponent(freqs: Sequence, ranks: tuple[int, int] = (10, 1000)) -> float:
    """The slope of log(frequency) against log(rank) by least squares: Zipf's exponent.

    `freqs` are counts or (item, count) pairs, e.g. from `ngram_freqs`. The fit covers ranks
    `ranks[0]..ranks[1]` (1-based, as far as there are items), skipping the few most frequent
    tokens that bend away from the line; with fewer than two items there, it covers all ranks.
    English word unigrams give about -1: the k-th most frequent word is about k times rarer
    than the most frequent one.
    """
    counts = sorted((f[1] if isinstance(f, (tuple, list)) else f for f in freqs), reverse=True)
    if len(counts) < 2:
        raise ConfigError(f"a slope needs at least two frequencies, got {len(counts)}")
    first, last = ranks
    window = counts[first - 1 : last]
    if len(window) < 2:
        first, window = 1, counts
    log_rank = torch.log(torch.arange(first, first + len(window), dtype=torch.float64))
    log_freq = torch.log(torch.tensor(window, dtype=torch.float64))
    x, y = log_rank - log_rank.mean(), log_freq - log_freq.mean()
    return float((x * y).sum() / (x * x).sum())


def zipf_plot(tokens: list[str], path: str | Path, ns: Sequence[int] = (1, 2, 3)) -> Path:
    """Frequency against rank on log-log axes, one line per n-gram length in `ns` (book 9.3.2),
    written as a PNG to `path`; the legend gives each line's fitted Zipf exponent."""
    from matplotlib.figure import Figure  # draws with Agg, no pyplot or display needed

    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for n in ns:
        counts = [c for _, c in ngram_freqs(tokens, n)]
        if len(counts) < 2:
            raise ConfigError(f"{len(tokens)} tokens give fewer than two distinct {n}-grams: too few to plot")
        ax.plot(range(1, len(counts) + 1), counts, label=f"{n}-gram (slope {zipf_exponent(counts):.2f})")
    ax.set(xscale="log", yscale="log", xlabel="rank", ylabel="frequency")
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


# --------------------------------------------------------------------------------------------
# Minibatches over one long sequence
# --------------------------------------------------------------------------------------------


def _as_sequence(corpus) -> torch.Tensor:
    corpus = torch.as_tensor(corpus, dtype=torch.int64)
    if corpus.dim() != 1:
        raise ConfigError(f"a corpus must be a 1-D sequence of token indices, got shape {tuple(corpus.shape)}")
    return corpus


def _offset(high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in [0, high] from `generator`; 0 without one."""
    if generator is None:
        return 0
    return int(torch.randint(0, high + 1, (1,), generator=generator))


def seq_data_iter_random(
    corpus, batch_size: int, num_steps: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Random sampling (book 9.3.4.1): minibatches of random, non-overlapping subsequences.

    The corpus is started at a random offset in [0, num_steps - 1], cut into consecutive
    subsequences of num_steps tokens, and the subsequences are drawn in shuffled order,
    batch_size at a time. Yields (X, Y) int64 tensors of shape (batch_size, num_steps) with Y
    the token after each of X's. Subsequences of one batch are not adjacent in the text, so no
    hidden state should be carried between batches. Without a generator the offset is 0 and the
    subsequences come in text order.
    """
    corpus = _as_sequence(corpus)
    corpus = corpus[_offset(num_steps - 1, generator) :]
    num_subseqs = max(0, (len(corpus) - 1) // num_steps)  # -1: Y needs the token after the last X
    initial_indices = torch.arange(0, num_subseqs * num_steps, num_steps)
    if generator is not None:
        initial_indices = initial_indices[torch.randperm(num_subseqs, generator=generator)]
    initial_indices = initial_indices.to(corpus.device)
    steps = torch.arange(num_steps, device=corpus.device)
    num_batches = num_subseqs // batch_size
    for i in range(0, batch_size * num_batches, batch_size):
        positions = initial_indices[i : i + batch_size, None] + steps  # (batch_size, num_steps)
        yield corpus[positions], corpus[positions + 1]


def seq_data_iter_sequential(
    corpus, batch_size: int, num_steps: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Sequential partitioning (book 9.3.4.2): row i of each batch continues row i of the last.

    The corpus, started at a random offset in [0, num_steps] (the book's `randint(0, num_steps)`),
    is split into batch_size equally long rows, and consecutive column blocks of num_steps are
    the batches. Yields (X, Y) int64 tensors of shape (batch_size, num_steps) with Y the token
    after each of X's. Without a generator the offset is 0: a deterministic pass.
    """
    corpus = _as_sequence(corpus)
    offset = _offset(num_steps, generator)
    num_tokens = max(0, (len(corpus) - offset - 1) // batch_size) * batch_size
    Xs = corpus[offset : offset + num_tokens].reshape(batch_size, -1)  # (batch_size, num_tokens / batch_size)
    Ys = corpus[offset + 1 : offset + 1 + num_tokens].reshape(batch_size, -1)  # (batch_size, num_tokens / batch_size)
    num_batches = Xs.shape[1] // num_steps
    for i in range(0, num_steps * num_batches, num_steps):
        yield Xs[:, i : i + num_steps], Ys[:, i : i + num_steps]


SEQ_ITERATORS = {"random": seq_data_iter_random, "sequential": seq_data_iter_sequential}


class SeqLoader(Sharded):
    """Minibatches (X, Y) of shape (batch_size, num_steps) cut from one long token sequence.

    The loader the trainer iterates for a language model, with TensorLoader's protocol
    (`set_epoch`, `len`, iteration, `device`).

    Args:
        corpus: 1-D tensor of token indices; moved to `device` once.
        batch_size, num_steps: the shape of every batch.
        sampling: "random" (random sampling) or "sequential" (sequential partitioning).
        shuffle: draw the offset (and, for random sampling, the order) from a generator seeded by
            (seed, epoch). False: offset 0, no randomness, the same batches every epoch, as an
            evaluation pass over held-out text wants.
        seed: seeds the per-epoch generator.
        device: where the batches are.
        rank, world_size: shard across processes; default: read from torch.distributed.

    `len(loader)` is the number of batches of every epoch: the count for the largest offset the
    sampler can draw, so the same for every epoch; iteration stops after that many.

    Under torch.distributed, batch_size is per process: all ranks draw the same batches of
    world_size * batch_size rows from the shared (seed, epoch) generator and rank r keeps rows
    r * batch_size ... (r + 1) * batch_size - 1. Sequential partitioning stays sequential: row i of
    a rank's batch continues row i of its previous batch.
    """

    def __init__(
        self,
        corpus: torch.Tensor,
        batch_size: int,
        num_steps: int,
        sampling: str = "random",
        shuffle: bool = True,
        seed: int = 0,
        device: torch.device | str | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        if sampling not in SAMPLINGS:
            raise ConfigError(f"sampling {sampling!r} is not one of {', '.join(repr(s) for s in SAMPLINGS)}."
                              f"{did_you_mean(sampling, SAMPLINGS)}")
        if batch_size < 1 or num_steps < 1:
            raise ConfigError(f"batch_size and num_steps must be at least 1, got {batch_size} and {num_steps}")
        corpus = _as_sequence(corpus)
        self.corpus = corpus.to(device) if device is not None else corpus
        self._batch_size, self._num_steps = batch_size, num_steps
        self.sampling, self.shuffle, self.seed = sampling, shuffle, seed
        self._rank, self._world_size = rank, world_size
        self.sequential = sampling == "sequential"  # batches continue each other's rows: state may carry over
        self.epoch = 0
        # the largest offset the sampler draws: [0, num_steps - 1] random, [0, num_steps] sequential
        self._max_offset = 0 if not shuffle else num_steps if self.sequential else num_steps - 1
        if len(self) == 0:
            need = self._rows * num_steps + 1 + self._max_offset
            raise DataError(
                f"a corpus of {len(self.corpus)} tokens is too short for one batch of batch_size={self._rows} "
                f"x num_steps={num_steps} ({sampling} sampling{', shuffled' if shuffle else ''} needs at least "
                f"{need} tokens); lower batch_size or num_steps, or use a longer text"
            )

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def num_steps(self) -> int:
        return self._num_steps

    @property
    def _rows(self) -> int:
        """Rows of the batches drawn for all ranks together."""
        return self.batch_size * self.world_size

    @property
    def device(self) -> torch.device:
        return self.corpus.device

    def set_epoch(self, epoch: int) -> None:
        """Select the offset and order of this epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        usable = len(self.corpus) - self._max_offset - 1  # Y needs one token past X
        if usable < 0:
            return 0
        if self.sequential:
            return (usable // self._rows) // self.num_steps  # columns per row // num_steps
        return (usable // self.num_steps) // self._rows  # subsequences // rows per batch

    @property
    def num_tokens(self) -> int:
        """Target tokens per epoch."""
        return self.batch_size * self.num_steps * len(self)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch) if self.shuffle else None
        batches = SEQ_ITERATORS[self.sampling](self.corpus, self._rows, self.num_steps, generator)
        if self.world_size > 1:  # this rank's rows of every batch
            rows = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
            batches = ((X[rows], Y[rows]) for X, Y in batches)
        # a smaller offset may give one batch more; every epoch yields len(self)
        return itertools.islice(batches, len(self))


def language_model_bundle(
    name: str,
    corpus: torch.Tensor,
    vocab: Vocab,
    *,
    batch_size: int,
    num_steps: int,
    sampling: str = "random",
    heldout: float = 0.1,
    seed: int = 0,
    device: torch.device | str | None = None,
    valid_corpus: torch.Tensor | None = None,
    test_corpus: torch.Tensor | None = None,
    level: str = "char",
):
    """A DataBundle (task "language-model") of SeqLoaders over a token corpus.

    train samples `corpus` (its first 1 - heldout when `valid_corpus` is None) with `sampling`;
    valid (the held-out last part, or `valid_corpus`) and test (`test_corpus`, if given) are
    deterministic sequential passes. heldout=0 without a valid_corpus gives no valid split.
    `context` carries vocab_size, the vocab itself (`Vocab.to_dict`) and the token level.
    """
    if level not in TOKEN_KINDS:
        raise ConfigError(f"level {level!r} is not one of {', '.join(repr(t) for t in TOKEN_KINDS)}")
    if valid_corpus is None:
        corpus, valid_corpus = split_corpus(corpus, heldout)
        if heldout == 0:
            valid_corpus = None

    def loader(part: torch.Tensor | None, what: str, **sampler) -> SeqLoader | None:
        if part is None:
            return None
        try:
            return SeqLoader(part, batch_size, num_steps, seed=seed, device=device, **sampler)
        except DataError as e:
            raise DataError(f"{name} {what} text: {e}") from e

    held = {"sampling": "sequential", "shuffle": False}  # evaluation: one fixed pass
    return DataBundle(
        name=name,
        task="language-model",
        train=loader(corpus, "training", sampling=sampling, shuffle=True),
        valid=loader(valid_corpus, "held-out (valid)", **held),
        test=loader(test_corpus, "test", **held),
        classes=None,
        context={"vocab_size": len(vocab), "vocab": vocab.to_dict(), "level": level},
    )


@register_dataset("time-machine", defaults={"batch_size": 32, "epochs": 50}, tags=("text",))
def time_machine(*, batch_size, seed, device, data_dir=None, num_steps=32, sampling="random", token="char",
                 heldout=0.1, max_tokens=None):
    """H. G. Wells' The Time Machine for language models, by character (default) or word.

    The book's preprocessing (lowercase letters and spaces); the last `heldout` of the text is held
    out for perplexity."""
    corpus, vocab = load_corpus("time-machine", token=token, data_dir=data_dir, max_tokens=max_tokens)
    return language_model_bundle("time-machine", corpus, vocab, batch_size=batch_size, num_steps=num_steps,
                                 sampling=sampling, heldout=heldout, seed=seed, device=device, level=token)
