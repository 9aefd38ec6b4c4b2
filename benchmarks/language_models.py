"""Character-level language models on The Time Machine (book chapter 9), over several seeds.

    python benchmarks/language_models.py --data-dir ../shared/data                  # everything
    python benchmarks/language_models.py --only book --seeds 0 1 2                  # the book's setting
    python benchmarks/language_models.py --only best bidirectional --seeds 0

`book`: the book's sizes (32 hidden units, 32 time steps) for RNN, GRU and LSTM from scratch and a
2-layer GRU, trained with minibatch SGD and gradient clipping; `best`: the configuration of the
`char-lstm` recipe; `bidirectional`: a bidirectional GRU, whose perplexity with the future in view
is excellent and whose generated text is useless (the book's point, 10.4).

Held-out perplexity is measured on the last 10% of the text (a sequential pass carrying the state).
Prints mean +- std, wall time and tokens/s, hardware and torch version; the last line is one JSON
object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os

from common import hardware, mean_std  # benchmarks/common.py

import divekit as dk
from divekit.data.text import Vocab
from divekit.models.rnn import generate
from divekit.train.api import resolve_config
from divekit.train.recipes import recipe

# the book's sizes, with the registered training settings (divekit/models/rnn.py)
BOOK_EPOCHS = 20
BOOK_PPL = {"rnn-scratch": 7.2, "gru-scratch": 6.6, "lstm-scratch": 6.7, "deep-gru": 6.1}  # book 1.0, held out
PREFIX = "time traveller"


def run(data_dir: str | None, seed: int, **settings) -> tuple[dk.Result, dict]:
    """One training run in this process; returns the result and its figures."""
    cfg = resolve_config(data_dir=data_dir, seed=seed, **settings)
    data = dk.load_dataset(cfg.data, batch_size=cfg.batch_size, seed=cfg.seed, data_dir=cfg.data_dir, **cfg.data_args)
    r = dk.fit(cfg.model, data, cfg, run_dir=False, progress=False)
    m = r.metrics
    # training tokens per second of the trainer's time (which includes the held-out pass each epoch)
    per_s = data.train.num_tokens * m["epoch"] / m["seconds"]
    return r, {"seed": seed, "valid_ppl": round(m["valid_ppl"], 4), "train_ppl": round(m["train_ppl"], 4),
               "seconds": m["seconds"], "tokens_per_s": round(per_s)}


def summarize(name: str, runs: list[dict], book: float | None = None) -> dict:
    (ppl, ppl_sd), (sec, sec_sd) = mean_std([r["valid_ppl"] for r in runs]), mean_std([r["seconds"] for r in runs])
    line = f"{name:<14s} held-out ppl {ppl:.3f} +- {ppl_sd:.3f}  train ppl {mean_std([r['train_ppl'] for r in runs])[0]:.3f}"
    line += f"  {sec:.1f} +- {sec_sd:.1f} s  {mean_std([r['tokens_per_s'] for r in runs])[0]:.0f} tokens/s"
    if book is not None:
        line += f"  (book: {book})"
    print(line, flush=True)
    return {"valid_ppl_mean": ppl, "valid_ppl_std": ppl_sd, "seconds_mean": sec, "seconds_std": sec_sd, "runs": runs,
            **({"book_ppl": book} if book is not None else {})}


def sample(result: dk.Result, data: str = "time-machine", data_dir: str | None = None, chars: int = 200) -> str:
    bundle = dk.load_dataset(data, batch_size=1, data_dir=data_dir)
    vocab = Vocab.from_dict(bundle.context["vocab"])
    return generate(result.model.cpu(), vocab, PREFIX, chars)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("DIVEKIT_DATA"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="+", default=["book", "best", "bidirectional"])
    p.add_argument("--epochs", type=int, default=BOOK_EPOCHS, help="epochs of the book's setting")
    args = p.parse_args()
    print(hardware(), flush=True)
    out: dict = {"hardware": hardware()}

    if "book" in args.only:
        out["book"] = {}
        for model in BOOK_PPL:
            runs = [run(args.data_dir, seed, model=model, epochs=args.epochs)[1] for seed in args.seeds]
            out["book"][model] = summarize(model, runs, BOOK_PPL[model])

    if "best" in args.only:
        runs, texts = [], []
        for seed in args.seeds:
            r, fig = run(args.data_dir, seed, recipe="char-lstm")
            runs.append(fig)
            texts.append(sample(r, data_dir=args.data_dir))
        out["best"] = {**summarize("char-lstm", runs), "settings": recipe("char-lstm"), "generated": texts}
        print(f"generated (seed {args.seeds[0]}, greedy): {texts[0]!r}")

    if "bidirectional" in args.only:
        r, fig = run(args.data_dir, args.seeds[0], model="bigru", epochs=args.epochs)
        text = sample(r, data_dir=args.data_dir, chars=50)
        out["bidirectional"] = {**fig, "generated": text}
        print(f"bigru: train ppl {r.metrics['train_ppl']:.3f}, held-out ppl {r.metrics['valid_ppl']:.3f} "
              f"(it sees the next character); generated: {text!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
