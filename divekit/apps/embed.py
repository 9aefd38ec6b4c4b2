"""`divekit embed RUN_DIR TEXT... [--pair A B] [--json]`: contextual BERT representations.

Each TEXT (and each `--pair A B` text pair) goes through a BERT run's encoder as the book's
get_bert_encoding does; the `<cls>` vector represents the whole input, every other row a token in
its context. For a word occurring in several inputs (the book's "crane" in "a crane is flying"
and "a crane driver came") the cosine similarity between its vectors is printed: below 1
because BERT gives a word a different vector in each context.
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from ..core.errors import DivekitError
from ..models.bert import CLS, SEP, BERTEncoder, bert_encoding

SHOWN_DIMS = 4


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help="contextual token and sentence (<cls>) vectors from a BERT run",
                       description="Encode texts with a BERT run; compare a word's vectors across contexts.")
    p.add_argument("run_dir", help="a `divekit train bert-small` run folder (or a fine-tuned BERT run)")
    p.add_argument("texts", nargs="*", metavar="TEXT", help='a single text, e.g. "a crane is flying"')
    p.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
                   help='a text pair, e.g. --pair "a crane driver came" "he just left" (repeatable)')
    p.add_argument("--which", choices=("best", "last"), default="best", help="which checkpoint of the run")
    p.add_argument("--vectors", action="store_true", help="include every token's full vector in the JSON")
    p.add_argument("--json", action="store_true")


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


def run(args) -> int:
    from ..data.text import Vocab
    from ..train.api import load_run

    inputs = [(t, None) for t in args.texts] + [(a, b) for a, b in args.pair]
    if not inputs:
        raise DivekitError('nothing to encode: give texts, e.g. divekit embed RUN_DIR "a crane is flying" '
                           '--pair "a crane driver came" "he just left"')
    model, ckpt = load_run(args.run_dir, args.which, "cpu")
    context = ckpt.meta.get("context", {})
    if "vocab" not in context or not isinstance(getattr(model, "encoder", None), BERTEncoder):
        raise DivekitError(f"{args.run_dir} is a {ckpt.meta.get('model')!r} run, not a BERT run: "
                           "train one with `divekit train bert-small --data ptb`")
    out = {"run_dir": args.run_dir, **embed_texts(model, Vocab.from_dict(context["vocab"]), inputs, args.vectors)}
    if args.json:
        print(json.dumps(out))
        return 0
    for i, row in enumerate(out["inputs"]):
        unk = f"  (not in the vocabulary: {', '.join(row['unknown'])})" if row["unknown"] else ""
        print(f"[{i}] {' '.join(row['tokens'])}{unk}")
        print(f"    <cls> vector: |x| = {row['cls_norm']:.3f}, first dims {row['cls']}")
    for s in out["shared_words"]:
        places = s["occurrences"]
        for a in range(len(places)):
            for b in range(a + 1, len(places)):
                if places[a][0] != places[b][0]:
                    print(f"'{s['word']}' in [{places[a][0]}] vs [{places[b][0]}]: cosine {s['cosine'][a][b]:.4f}")
    return 0
