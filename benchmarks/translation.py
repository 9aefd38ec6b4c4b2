"""English -> French translation on fra-eng (book chapters 10-11): seq2seq, seq2seq with Bahdanau
attention and the Transformer, over several seeds.

    python benchmarks/translation.py --data-dir ../shared/data [--seeds 0 1 2] [--epochs 30]
    python benchmarks/translation.py --book     # the book's demo setting: first 512 pairs, 30 epochs

Each model trains with its registered settings (the book's sizes and learning rates) on the training
split, then translates the book's four sentences (with the book's BLEU, k=2, against the book's
references) and the whole held-out test split greedily, scored with corpus BLEU (sacrebleu's
BLEU-4 on our tokens). Prints mean +- std, wall time, hardware and torch version; the last line is
one JSON object with every figure.

`--book` trains as the book's demo does (d2l 2.0 `MTFraEng(num_train=512, num_val=128)`, the
registered 30 epochs): on the first 512 pairs of fra.txt, which hold three of the four sentences,
so it measures fitting more than translating; it reports the four sentences only.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from common import hardware, mean_std  # benchmarks/common.py

import divekit as dk
from divekit.apps.predict import translate_sentences
from divekit.data.text import Vocab
from divekit.data.translation import translation_sentences
from divekit.models.decoding import greedy_decode
from divekit.ops.bleu import bleu, corpus_bleu
from divekit.train.api import resolve_config

MODELS = ["seq2seq", "seq2seq-attention", "transformer"]
BOOK_SENTENCES = {"go .": "va !", "i lost .": "j'ai perdu .", "he's calm .": "il est calme .", "i'm home .": "je suis chez moi ."}


@torch.no_grad()
def test_bleu(model, context: dict, data_dir: str | None, batch_size: int = 512) -> float:
    """Corpus BLEU of greedy translations of the test split (all references of a source sentence
    count as separate pairs, as in the data)."""
    src_vocab, tgt_vocab = Vocab.from_dict(context["src_vocab"]), Vocab.from_dict(context["tgt_vocab"])
    sources, targets = translation_sentences("test", data_dir=data_dir)
    T = context["num_steps"]
    hyps = []
    for i in range(0, len(sources), batch_size):
        rows = [(s + ["<eos>"])[:T] for s in sources[i:i + batch_size]]
        X = torch.tensor([src_vocab[r + ["<pad>"] * (T - len(r))] for r in rows])  # (B, T)
        valid = torch.tensor([len(r) for r in rows])
        out, _ = greedy_decode(model, X, valid, tgt_vocab["<bos>"], tgt_vocab["<eos>"], T)
        hyps += [" ".join(tgt_vocab.to_tokens(o)) for o in out]
    return corpus_bleu(hyps, [" ".join(t) for t in targets])


def run(model_name: str, seed: int, data_dir: str | None, epochs: int | None, book: bool = False) -> dict:
    data_args = {"num_train": 512, "num_val": 128} if book else {}
    cfg = resolve_config(model=model_name, data="fra-eng", seed=seed, data_dir=data_dir, epochs=epochs,
                         data_args=data_args)
    start = time.perf_counter()
    r = dk.fit(cfg.model, cfg.data, cfg, run_dir=False, progress=False)
    wall = time.perf_counter() - start
    model = r.model.cpu().eval()
    data = dk.load_dataset("fra-eng", batch_size=cfg.batch_size, data_dir=data_dir, **data_args)
    meta = {"task": "seq2seq", "data": "fra-eng", "context": data.context}
    rows = translate_sentences(model, meta, list(BOOK_SENTENCES))
    sentences = {row["source"]: {"translation": row["translation"],
                                 "bleu": round(bleu(row["translation"], BOOK_SENTENCES[row["source"]], k=2), 3)}
                 for row in rows}
    out = {"seed": seed, "train_wall_s": round(wall, 1), "valid_loss": round(r.metrics.get("valid_loss", float("nan")), 4),
           "book_sentences": sentences}
    if not book:
        out["test_bleu"] = round(test_bleu(model, data.context, data_dir), 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("DIVEKIT_DATA"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="+", default=MODELS)
    p.add_argument("--epochs", type=int, help="override the registered epochs")
    p.add_argument("--book", action="store_true", help="the book's demo setting: train on the first 512 pairs")
    args = p.parse_args()
    print(hardware(), flush=True)
    out: dict = {"hardware": hardware(), "book_setting": args.book, "models": {}}
    for name in args.only:
        runs = [run(name, seed, args.data_dir, args.epochs, args.book) for seed in args.seeds]
        w, w_sd = mean_std([r["train_wall_s"] for r in runs])
        entry = {"train_wall_mean": w, "train_wall_std": w_sd, "runs": runs}
        if args.book:
            print(f"{name:<18s} training {w:.1f} +- {w_sd:.1f} s", flush=True)
        else:
            b, b_sd = mean_std([r["test_bleu"] for r in runs])
            entry.update(test_bleu_mean=b, test_bleu_std=b_sd)
            print(f"{name:<18s} test corpus BLEU {b:.2f} +- {b_sd:.2f}   training {w:.0f} +- {w_sd:.0f} s", flush=True)
        for src in BOOK_SENTENCES:
            scores = [r["book_sentences"][src]["bleu"] for r in runs]
            m, sd = mean_std(scores)
            entry.setdefault("book_bleu", {})[src] = {"mean": m, "std": sd}
            first = runs[0]["book_sentences"][src]
            print(f"    {src:<12s} BLEU {m:.3f} +- {sd:.3f} over seeds; seed {runs[0]['seed']}: {first['translation']}")
        out["models"][name] = entry
    print(json.dumps(out))


if __name__ == "__main__":
    main()
