"""`divekit translate RUN_DIR SENTENCE...`: translate with a run's seq2seq model."""

from __future__ import annotations

from .common import print_json


def add_parser(sub) -> None:
    """Register `divekit translate`."""
    tr = sub.add_parser("translate", help="translate sentences with a run's seq2seq model")
    tr.add_argument("run_dir", help="a seq2seq run folder")
    tr.add_argument("sentences", nargs="+", metavar="SENTENCE", help='e.g. "he\'s calm ."')
    tr.add_argument("--beam", type=int, default=1, help="beam size (1: greedy decoding)")
    tr.add_argument("--alpha", type=float, default=0.75, help="beam search length penalty: score / length^alpha")
    tr.add_argument("--heatmap", metavar="DIR", help="save each sentence's attention weights as a PNG in DIR")
    tr.add_argument("--json", action="store_true", help="print the translations as JSON on the last line")


def run(args) -> int:
    """Print each sentence and its translation."""
    # deferred for start-up time: these import torch and the trainer
    from ..apps.predict import translate_sentences
    from ..train.api import load_run

    model, ckpt = load_run(args.run_dir, "best", "cpu")
    rows = translate_sentences(model, ckpt.meta, args.sentences, args.beam, args.alpha, args.heatmap)
    if args.json:
        print_json({"translations": rows, "beam": args.beam})
    else:
        for row in rows:
            print(f"{row['source']} => {row['translation']}" + (f"  ({row['heatmap']})" if "heatmap" in row else ""))
    return 0
