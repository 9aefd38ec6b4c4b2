"""`divekit predict RUN_DIR INPUT...`: classify image files (or folders of them; `--out` writes a Kaggle
submission, `id,label`), or predict the rows of CSV files."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import ConfigError
from .common import print_json


def add_parser(sub) -> None:
    """Register `divekit predict`."""
    pr = sub.add_parser("predict", help="classify image files, or predict the rows of CSV files, with a run's model")
    pr.add_argument("run_dir", help="a `divekit train` run folder")
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="image files (png, jpg, ...) or folders of them, or "
                    "CSV files for a run trained with --data csv:PATH")
    pr.add_argument("--out", metavar="FILE", help="write the predictions there (default: print them); for images a "
                    "Kaggle submission: id (the file name without extension, a folder's files in numeric order),label")
    pr.add_argument("--proba", action="store_true", help="CSV inputs: add a probability column per class")
    pr.add_argument("--top", type=int, default=3, help="show the TOP most likely classes")
    pr.add_argument("--invert", action="store_true", help="invert gray levels (dark ink on white paper -> MNIST style)")
    pr.add_argument("--json", action="store_true", help="print the predictions as JSON on the last line")


def run(args) -> int:
    """Print each input's most likely classes (or the CSV predictions)."""
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    # deferred for start-up time: these import torch and the trainer
    if any(str(p).lower().endswith(".csv") for p in args.inputs):
        from ..apps.tabular import run_predict

        return run_predict(args)
    from ..apps.predict import image_files, predict_images, write_submission  # deferred: loaded when the verb runs
    from ..train.api import load_run

    model, ckpt = load_run(args.run_dir, "best", "cpu")
    if args.out is not None:
        result = write_submission(model, ckpt.meta, args.inputs, args.out, invert=args.invert)
        print(f"wrote {result['rows']} predictions to {args.out}")
        if args.json:
            print_json(result)
        return 0
    paths = [f for p in args.inputs for f in (image_files(p) if Path(p).is_dir() else [p])]
    rows = predict_images(model, ckpt.meta, paths, top=args.top, invert=args.invert)
    if args.json:
        print_json({"predictions": rows})
    else:
        for row in rows:
            guesses = ", ".join(f"{g['class']} {g['prob']:.3f}" for g in row["top"])
            print(f"{row['input']}: {guesses}")
    return 0
