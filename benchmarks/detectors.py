"""fast-rcnn against tiny-ssd at the same training budget on bananas-synthetic: mAP@0.5 on the
validation split, training images per second and inference images per second.

    python benchmarks/detectors.py --num-train 256 --num-val 64 --image-size 128 --epochs 10 --seeds 0

Each model is trained with `divekit train MODEL --data bananas-synthetic ...` (its registered
optimizer, learning rate and weight decay; the same data, image size, batch size, epochs and seed
for both), then `divekit detect RUN --evaluate` gives its validation mAP@0.5. Training images/s is
the images of all epochs over the trainer's training seconds (evaluation excluded); inference
images/s times `predict_boxes` (forward, decoding and NMS) over the validation split in eval mode,
after one warm-up pass. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import hardware  # noqa: E402

from divekit.apps.detect import evaluate_run, load_detector, predict_boxes  # noqa: E402
from divekit.cli import main  # noqa: E402
from divekit.data.registry import load_dataset  # noqa: E402


def inference_rate(run_dir: Path, data_args: dict, batch_size: int) -> float:
    model, ckpt = load_detector(run_dir)
    cfg = ckpt.meta["config"]
    data = load_dataset("bananas-synthetic", batch_size=batch_size, seed=cfg["seed"], device="cpu", **data_args)
    batches = [X for X, _ in data.valid]
    predict_boxes(model, batches[0])  # warm-up
    start = time.perf_counter()
    images = 0
    for X in batches:
        predict_boxes(model, X)
        images += X.shape[0]
    return images / (time.perf_counter() - start)


def run(model: str, seed: int, args, out: Path) -> dict:
    data_args = {"num_train": args.num_train, "num_val": args.num_val, "image_size": args.image_size}
    run_dir = out / f"{model}-seed{seed}"
    argv = ["train", model, "--data", "bananas-synthetic", "--epochs", str(args.epochs), "--batch-size",
            str(args.batch_size), "--seed", str(seed), "--out", str(run_dir), "--no-progress", "--no-plot",
            "--eval-every", str(args.epochs)]
    for k, v in data_args.items():
        argv += ["--data-arg", f"{k}={v}"]
    if main(argv) != 0:
        raise SystemExit(f"training {model} failed")
    history = json.loads((run_dir / "metrics.json").read_text())
    train_seconds = history[-1]["seconds"]
    report = evaluate_run(run_dir, which="last")
    return {"model": model, "seed": seed, "map50": report["map50"], "valid_loss": report["loss"],
            "train_images_per_s": args.epochs * args.num_train / train_seconds, "train_seconds": train_seconds,
            "infer_images_per_s": inference_rate(run_dir, data_args, args.batch_size),
            "params": sum(p.numel() for p in load_detector(run_dir)[0].parameters())}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="fast-rcnn,tiny-ssd")
    p.add_argument("--num-train", type=int, default=256)
    p.add_argument("--num-val", type=int, default=64)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", default="runs/detectors")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse()
    out = Path(args.out)
    print(hardware(), f"load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for model in args.models.split(","):
            row = run(model, seed, args, out)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(json.dumps({"args": vars(args), "rows": rows, "threads": torch.get_num_threads()}))
