"""`divekit embed RUN_DIR TEXT... [--pair A B]`: contextual BERT vectors (see divekit.apps.embed)."""

from __future__ import annotations

from ..core.errors import ConfigError, DivekitError
from .common import print_json


def add_parser(sub) -> None:
    """Register `divekit embed`."""
    p = sub.add_parser("embed", help="contextual token and sentence (<cls>) vectors from a BERT run",
                       description="Encode texts with a BERT run; compare a word's vectors across contexts.")
    p.add_argument("run_dir", help="a `divekit train bert-small` run folder (or a fine-tuned BERT run)")
    p.add_argument("texts", nargs="*", metavar="TEXT", help='a single text, e.g. "a crane is flying"')
    p.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
                   help='a text pair, e.g. --pair "a crane driver came" "he just left" (repeatable)')
    p.add_argument("--which", choices=("best", "last"), default="best", help="which checkpoint of the run")
    p.add_argument("--vectors", action="store_true", help="include every token's full vector in the JSON")
    p.add_argument("--json", action="store_true", help="print the results as JSON on the last line")


def run(args) -> int:
    """Encode the texts and print their tokens, `<cls>` vectors and the shared words' cosines."""
    # deferred for start-up time: these import torch, BERT and the trainer
    from ..apps.embed import embed_texts
    from ..data.text import Vocab
    from ..models.bert import BERTEncoder
    from ..train.api import load_run  # deferred for start-up time: loaded when the verb runs

    inputs = [(t, None) for t in args.texts] + [(a, b) for a, b in args.pair]
    if not inputs:
        raise ConfigError('nothing to encode: give texts, e.g. divekit embed RUN_DIR "a crane is flying" '
                          '--pair "a crane driver came" "he just left"')
    model, ckpt = load_run(args.run_dir, args.which, "cpu")
    context = ckpt.meta.get("context", {})
    if "vocab" not in context or not isinstance(getattr(model, "encoder", None), BERTEncoder):
        raise DivekitError(f"{args.run_dir} is a {ckpt.meta.get('model')!r} run, not a BERT run: "
                           "train one with `divekit train bert-small --data ptb`")
    out = {"run_dir": args.run_dir, **embed_texts(model, Vocab.from_dict(context["vocab"]), inputs, args.vectors)}
    if args.json:
        print_json(out)
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
