"""`divekit segment RUN_DIR [IMAGE...]`: colored predictions; pixel accuracy and mean IoU on the held-out split."""

from __future__ import annotations

from ..core.errors import DivekitError
from .common import print_json


def add_parser(sub) -> None:
    """Register `divekit segment`."""
    p = sub.add_parser("segment", help="segment images with a segmentation run's model (colored PNGs); "
                       "pixel accuracy and mean IoU on its held-out split",
                       description="Segment IMAGE files with the model of RUN_DIR and save colored predictions "
                       "(palette PNGs) in --out. With --eval (the default when no IMAGE is given) also report "
                       "pixel accuracy and mean IoU on the run dataset's held-out split.")
    p.add_argument("run_dir", help="a segmentation run folder (e.g. `divekit train fcn`)")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (png, jpg, ...)")
    p.add_argument("--out", default="segmentations", help="folder for the predictions (default: segmentations/)")
    p.add_argument("--eval", action="store_true", help="evaluate on the held-out split too")
    p.add_argument("--which", choices=("best", "last"), default="best", help="which checkpoint of the run")
    p.add_argument("--data-dir", help="dataset cache folder (default: the run's)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on the last line")


def run(args) -> int:
    """Segment the images and/or evaluate, then print the results."""
    # deferred for start-up time: these import torch and the trainer
    from ..apps.segment import evaluate_run, segment_images
    from ..train.api import load_run

    model, ckpt = load_run(args.run_dir, args.which, "cpu")
    meta = ckpt.meta
    if meta["task"] != "segmentation":
        raise DivekitError(f"`divekit segment` needs a segmentation run; {args.run_dir} is a {meta['task']} model "
                           f"on {meta['data']!r}")
    out: dict = {"run_dir": args.run_dir, "checkpoint": ckpt.path.name, "out": args.out}
    if args.images:
        out["predictions"] = segment_images(model, meta, args.images, args.out)
    if args.eval or not args.images:
        out["heldout"] = evaluate_run(model, meta, args.out, args.data_dir)
    if args.json:
        print_json(out)
        return 0
    for row in out.get("predictions", []):
        shares = ", ".join(f"{c} {s:.0%}" for c, s in sorted(row["class_share"].items(), key=lambda kv: -kv[1]))
        print(f"{row['input']} -> {row['output']}  ({shares})")
    if "heldout" in out:
        h = out["heldout"]
        print(f"{meta['data']} {h['split']} split ({h['pixels']} labelled pixels): "
              f"pixel accuracy {h['pixel_acc']:.4f}  mean IoU {h['miou']:.4f}")
        for c, v in h["per_class_iou"].items():
            print(f"  {c:>14s}  {'-' if v is None else f'{v:.4f}'}")
        print(f"examples: {h['plot']}")
    return 0
