"""fast-rcnn against tiny-ssd at the same training budget on bananas-synthetic: mAP@0.5 on the
validation split, training images per second and inference images per second.

    python benchmarks/detectors.py --num-train 256 --num-val 64 --image-size 128 --epochs 10 --seeds 0

Each model is trained with `divekit train MODEL --data bananas-synthetic ...` (its registered
optimizer, learning rate and weight decay; the same data, image size, batch size, epochs and seed
for both), then `divekit detect RUN --evaluate` gives its validation mAP@0.5. Training images/s is
the images of all epochs over the trainer's training seconds (evaluation excluded); inference
images/s times `predict_boxes` (forward, decoding and NMS) over the validation split in eval mode,
after one warm-up pass. The last line is one JSON object.

    python benchmarks/detectors.py --speed --image-size 128 --batch-size 16 --rounds 3

`--speed` trains nothing to the end: it times training steps (forward, loss, backward, SGD step)
and inference batches (predict_boxes) of the models on one generated batch, interleaved
A B A B for `--rounds` rounds, and reports the medians, so that a busy machine slows both alike.
The models are the seed-0 runs under `--out` when they exist (trained: inference then costs what
it costs in use), else freshly initialized ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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


def speed(models: list[str], args) -> dict:
    """Median images/s of training steps and inference batches, the models interleaved."""
    from divekit.models import create_model
    from divekit.tasks.detection import Detection

    data = load_dataset("bananas-synthetic", batch_size=args.batch_size, seed=0, device="cpu",
                        num_train=args.batch_size, num_val=args.batch_size, image_size=args.image_size)
    X, Y = next(iter(data.train))
    task = Detection()
    nets = {}
    for name in models:
        torch.manual_seed(0)
        trained = Path(args.out) / f"{name}-seed0"
        # a trained detector keeps few boxes above multibox_detection's 0.01 floor; an untrained
        # TinySSD keeps thousands, and its NMS then dominates inference
        net = load_detector(trained, "last")[0] if trained.is_dir() else create_model(name, context=data.context)
        nets[name] = (net, torch.optim.SGD(net.parameters(), lr=0.01))
    rates: dict[str, dict[str, list[float]]] = {m: {"train": [], "infer": []} for m in models}

    def train_steps(name, steps):
        net, opt = nets[name]
        net.train()
        start = time.perf_counter()
        for _ in range(steps):
            loss, _, _ = task.step(net, (X, Y))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return steps * X.shape[0] / (time.perf_counter() - start)

    def infer_batches(name, steps):
        net = nets[name][0]
        start = time.perf_counter()
        for _ in range(steps):
            predict_boxes(net, X)
        return steps * X.shape[0] / (time.perf_counter() - start)

    for name in models:  # warm-up
        train_steps(name, 1)
        infer_batches(name, 1)
    for _ in range(args.rounds):
        for name in models:
            rates[name]["train"].append(train_steps(name, args.steps))
            rates[name]["infer"].append(infer_batches(name, args.steps))
    return {name: {k: statistics.median(v) for k, v in r.items()} | {"runs": r} for name, r in rates.items()}


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
    p.add_argument("--speed", action="store_true", help="only time interleaved training steps and inference")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3, help="with --speed: steps (batches) per timing")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse()
    out = Path(args.out)
    print(hardware(), f"load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.speed:
        result = speed(args.models.split(","), args)
        for name, r in result.items():
            print(f"{name}: train {r['train']:.1f} images/s, inference {r['infer']:.1f} images/s")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        print(json.dumps({"args": vars(args), "speed": result, "threads": torch.get_num_threads()}))
        raise SystemExit(0)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for model in args.models.split(","):
            row = run(model, seed, args, out)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(json.dumps({"args": vars(args), "rows": rows, "threads": torch.get_num_threads()}))
