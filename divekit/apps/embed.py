"""`divekit embed RUN_DIR TEXT... [--pair A B] [--json]`: contextual BERT representations.

Each TEXT (and each `--pair A B` text pair) goes through a BERT run's encoder as the book's
get_bert_encoding does; the `<cls>` vector represents the whole input, every other row a token in
its context. For a word occurring in several inputs (the book's "crane" in "a crane is flying"
and "a crane driver came") the cosine similarity between its vectors is printed: below 1
because BERT gives a word a different vector in each context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.errors import DivekitError
from ..models.bert import CLS, SEP, bert_encoding

SHOWN_DIMS = 4


def embed_texts(model: torch.nn.Module, vocab, inputs: list[tuple[str, str | None]], vectors: bool = False) -> dict:
    """Encode each (A, B or None) input; returns the per-input tokens and `<cls>` vectors and, for
    every word found in two or more inputs, the cosine similarities of its vectors."""
    encoded, rows = [], []
    lowercase = not any(t != t.lower() for t in vocab.idx_to_token)  # PTB and WikiText-2 are lowercased
    for a, b in inputs:
        tokens_a = (a.lower() if lowercase else a).split()
        tokens_b = None if b is None else (b.lower() if lowercase else b).split()
        if not tokens_a or (tokens_b is not None and not tokens_b):
            raise DivekitError(f"empty text in input {a!r}{'' if b is None else f' / {b!r}'}: give words to encode")
        X, tokens, segments = bert_encoding(model, vocab, tokens_a, tokens_b)  # (T, num_hiddens)
        encoded.append((X, tokens))
        row = {"text": a if b is None else [a, b], "tokens": tokens, "segments": segments,
               "unknown": sorted({t for t in tokens if vocab[t] == vocab.unk}),
               "cls_norm": round(float(X[0].norm()), 4), "cls": [round(float(v), 4) for v in X[0, :SHOWN_DIMS]]}
        if vectors:
            row["vectors"] = [[round(float(v), 5) for v in x] for x in X]
        rows.append(row)
    # where each word occurs: (input, position)
    where: dict[str, list[tuple[int, int]]] = {}
    for i, (_, tokens) in enumerate(encoded):
        for pos, t in enumerate(tokens):
            if t not in (CLS, SEP):
                where.setdefault(t, []).append((i, pos))
    shared = []
    for word, places in where.items():
        if len({i for i, _ in places}) < 2:
            continue
        V = torch.stack([encoded[i][0][pos] for i, pos in places])  # (k, num_hiddens)
        cos = F.cosine_similarity(V[:, None, :], V[None, :, :], dim=-1)  # (k, k)
        shared.append({"word": word, "occurrences": [list(p) for p in places],
                       "cosine": [[round(float(c), 4) for c in r] for r in cos]})
    cls = torch.stack([X[0] for X, _ in encoded])  # (n, num_hiddens)
    cls_cos = F.cosine_similarity(cls[:, None, :], cls[None, :, :], dim=-1)
    return {"inputs": rows, "shared_words": shared,
            "cls_cosine": [[round(float(c), 4) for c in r] for r in cls_cos]}
