"""`divekit generate RUN_DIR --prefix TEXT`: continue a text with a run's language model."""

from __future__ import annotations

from .common import print_json


def add_parser(sub) -> None:
    """Register `divekit generate`."""
    ge = sub.add_parser("generate", help="continue a text prefix with a run's language model")
    ge.add_argument("run_dir", help="a language-model run folder")
    ge.add_argument("--prefix", required=True, help='text to start from, e.g. "time traveller"')
    ge.add_argument("--chars", "--tokens", dest="num_preds", type=int, default=50,
                    help="how many characters (words, for a word-level model) to generate")
    ge.add_argument("--temperature", type=float, default=0.0, help="0: greedy (most likely next token); > 0: sample")
    ge.add_argument("--seed", type=int, default=0, help="seeds sampling (temperature > 0)")
    ge.add_argument("--json", action="store_true", help="print the text as JSON on the last line")


def run(args) -> int:
    """Print the prefix and its continuation."""
    # deferred for start-up time: these import torch and the trainer
    from ..apps.predict import generate_text
    from ..train.api import load_run

    model, ckpt = load_run(args.run_dir, "best", "cpu")
    text = generate_text(model, ckpt.meta, args.prefix, args.num_preds, temperature=args.temperature, seed=args.seed)
    if args.json:
        print_json({"prefix": args.prefix, "text": text, "temperature": args.temperature})
    else:
        print(text)
    return 0
