"""`divekit eval RUN_DIR`: a classification run's loss, accuracy and confusion matrix on its test split."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import DivekitError
from .common import device, print_json


def add_parser(sub) -> None:
    """Register `divekit eval`."""
    e = sub.add_parser("eval", help="evaluate a run's model on its test split")
    e.add_argument("run_dir", help="a `divekit train` run folder")
    e.add_argument("--which", choices=("best", "last"), default="best", help="which checkpoint of the run")
    e.add_argument("--data-dir", help="dataset cache folder (default: the run's)")
    e.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N, mps")
    e.add_argument("--json", action="store_true", help="print the report as JSON on the last line")


def run(args) -> int:
    """Evaluate the run, save confusion.png in it and print the report."""
    # deferred for start-up time: these import torch, the datasets and the trainer
    from ..core.plot import confusion_figure, save_figure
    from ..data.registry import load_dataset
    from ..train.api import load_run
    from ..train.evaluate import classification_report  # deferred for start-up time: loaded when the verb runs

    model, ckpt = load_run(args.run_dir, args.which, args.device)
    meta, cfg = ckpt.meta, ckpt.meta["config"]
    if meta["task"] != "classification":
        raise DivekitError(f"`divekit eval` reports classification metrics; {args.run_dir} is a {meta['task']} run "
                           "(its metrics.json has the test loss per epoch)")
    if cfg["data"].startswith("csv:"):
        raise DivekitError(f"`divekit eval` reports on a test split; {args.run_dir} was trained on a CSV file, whose "
                           "held-out rows are its validation split (metrics.json has valid_acc per epoch); "
                           "use `divekit predict RUN_DIR new.csv` for new rows")
    device = next(model.parameters()).device
    data = load_dataset(cfg["data"], batch_size=cfg["batch_size"], resize=cfg["resize"], seed=cfg["seed"],
                        device=device, data_dir=args.data_dir or cfg["data_dir"], **cfg.get("data_args", {}))
    split = "test" if data.test is not None else "valid"  # an image folder has a validation split only
    classes = meta["classes"]
    report = classification_report(model, data.loaders()[split], len(classes))
    plot = save_figure(confusion_figure(report["confusion"], classes), Path(args.run_dir) / "confusion.png")
    out = {"run_dir": args.run_dir, "checkpoint": ckpt.path.name, "split": split,
           f"{split}_loss": round(report["loss"], 6), f"{split}_acc": round(report["acc"], 6), "n": report["n"],
           "per_class_acc": {c: round(a, 4) for c, a in zip(classes, report["per_class_acc"])},
           "confusion_plot": str(plot)}
    if args.json:
        print_json(out)
    else:
        print(f"{args.run_dir} ({ckpt.path.name}) on {cfg['data']} {split} split, {report['n']} examples")
        print(f"{split} loss {report['loss']:.4f}   {split} accuracy {report['acc']:.4f}")
        for c, a in out["per_class_acc"].items():
            print(f"  {c:>12s}  {a:.4f}")
        print(f"confusion matrix: {plot}")
    return 0
