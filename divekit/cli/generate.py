"""`divekit generate RUN_DIR --prefix TEXT`: continue a text with a run's language model;
`divekit generate RUN_DIR --num N --out grid.png`: samples of a GAN run's generator."""

from __future__ import annotations

from .common import print_json


def add_parser(sub) -> None:
    """Register `divekit generate`."""
    ge = sub.add_parser("generate", help="continue a text prefix with a run's language model, or sample a GAN run")
    ge.add_argument("run_dir", help="a language-model or GAN run folder")
    ge.add_argument("--prefix", help='language model: text to start from, e.g. "time traveller"')
    ge.add_argument("--num", type=int, default=64, help="GAN: how many samples (default 64)")
    ge.add_argument("--out", help="GAN: the PNG grid of generated images (default samples.png), or a CSV of points")
    ge.add_argument("--chars", "--tokens", dest="num_preds", type=int, default=50,
                    help="how many characters (words, for a word-level model) to generate")
    ge.add_argument("--temperature", type=float, default=0.0, help="0: greedy (most likely next token); > 0: sample")
    ge.add_argument("--seed", type=int, default=0, help="seeds sampling (temperature > 0, or a GAN's noise)")
    ge.add_argument("--json", action="store_true", help="print the text (or the samples' summary) as JSON on the last line")


def run(args) -> int:
    """Print the prefix and its continuation, or save a GAN's samples."""
    # deferred for start-up time: these import torch and the trainer
    from ..apps.gan import generate_samples
    from ..apps.predict import generate_text
    from ..core.errors import ConfigError
    from ..train.api import load_run

    model, ckpt = load_run(args.run_dir, "best", "cpu")
    if ckpt.meta.get("task") == "gan":  # the last epoch's generator: a GAN's losses do not pick a best one
        model, _ = load_run(args.run_dir, "last", "cpu")
        result = generate_samples(model, args.num, args.seed, args.out)
        if args.json:
            print_json(result)
        else:
            print(result.get("image") or result.get("csv") or result["mean"])
        return 0
    if args.prefix is None:
        raise ConfigError(f"{args.run_dir} is a language-model run: give the text to continue with --prefix")
    text = generate_text(model, ckpt.meta, args.prefix, args.num_preds, temperature=args.temperature, seed=args.seed)
    if args.json:
        print_json({"prefix": args.prefix, "text": text, "temperature": args.temperature})
    else:
        print(text)
    return 0
