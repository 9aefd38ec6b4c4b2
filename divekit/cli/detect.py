"""`divekit detect RUN_DIR IMAGE...`: draw a detection run's boxes; --evaluate: mAP on its validation split."""

from __future__ import annotations

from ..core.errors import ConfigError
from .common import device, print_json


def add_parser(sub) -> None:
    """Register `divekit detect`."""
    p = sub.add_parser("detect", help="draw a detection run's boxes on images; --evaluate: mAP on its validation split",
                       description="Detect objects in images with a trained detector (e.g. tiny-ssd, fast-rcnn) and save them "
                                   "with the boxes drawn.")
    p.add_argument("run_dir", help="a detection run folder (e.g. `divekit train tiny-ssd` or `fast-rcnn`)")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (png, jpg, ...)")
    p.add_argument("--threshold", type=float, default=0.9, help="draw boxes scored at least this (default 0.9)")
    p.add_argument("--nms-threshold", type=float, default=0.5, help="IoU above which NMS drops a box (default 0.5)")
    p.add_argument("--out", default="detections", help="folder for the drawn images (default: detections/)")
    p.add_argument("--evaluate", action="store_true",
                   help="also report class error, bbox MAE and mAP@0.5 on the run's validation split")
    p.add_argument("--which", choices=("best", "last"), default="best", help="which checkpoint of the run")
    p.add_argument("--data-dir", help="dataset cache folder (default: the run's)")
    p.add_argument("--device", type=device, default="cpu", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--json", action="store_true", help="print the results as JSON on the last line")


def run(args) -> int:
    """Detect, print each image's boxes (and the validation metrics with --evaluate)."""
    # deferred for start-up time: the detector needs torch and the trainer
    from ..apps.detect import detect_images, evaluate_run, load_detector

    if not args.images and not args.evaluate:
        raise ConfigError("give image files to detect objects in, or --evaluate for the validation metrics")
    if not 0 <= args.threshold <= 1 or not 0 <= args.nms_threshold <= 1:
        raise ConfigError(f"--threshold and --nms-threshold are in [0, 1], got {args.threshold}, {args.nms_threshold}")
    model, ckpt = load_detector(args.run_dir, args.which, args.device)
    out: dict = {"run_dir": str(args.run_dir), "checkpoint": ckpt.path.name}
    if args.images:
        out["images"] = detect_images(model, ckpt.meta, args.images, args.threshold, args.out, args.nms_threshold)
        if not args.json:
            for r in out["images"]:
                print(f"{r['input']}: {len(r['detections'])} object(s) scored >= {args.threshold} -> {r['output']}")
                for d in r["detections"]:
                    print(f"  {d['class']:>10s}  {d['score']:.3f}  box {d['box']}")
    if args.evaluate:
        report = evaluate_run(args.run_dir, args.which, args.device, args.data_dir)
        out["valid"] = {"cls_err": report["cls_err"], "bbox_mae": report["bbox_mae"], "map50": report["map50"],
                        "loss": report["loss"], "n": report["n"]}
        if not args.json:
            print(f"validation split ({report['n']} images): class err {report['cls_err']:.2e}  "
                  f"bbox mae {report['bbox_mae']:.2e}  mAP@0.5 {report['map50']:.4f}")
    if args.json:
        print_json(out)
    return 0
