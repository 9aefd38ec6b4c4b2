"""LeNet with batch, layer, group, instance or no normalization, at a large and a small batch size.

    python benchmarks/normalization.py                       # 5 norms x batch 256 and 8 x seeds 0 1 2
    python benchmarks/normalization.py --batch-sizes 8 --epochs 1 --num-train 24000   # only the batch-8 half
    python benchmarks/normalization.py --norms batch group --batch-sizes 8 --seeds 0 --epochs 1 --num-train 2000

The model is the book's BN-LeNet (`lenet-bn`, book 8.5: sigmoid, average pooling, the
normalization after each conv and hidden dense layer) with `--model-arg norm=NORM`, the
hand-written layers (see divekit.models.layers.norm_layers: layer norm is GroupNorm(1, C) on the
conv layers, group norm uses 2 groups, instance norm leaves the dense layers unnormalized). All
runs use plain SGD at the same learning rate. The budget is given per batch size (--epochs and
--num-train list one value per --batch-sizes entry): by default batch 256 trains 2 epochs on all
60,000 Fashion-MNIST training images (470 steps) and batch 8 one epoch on a class-balanced subset
of 24,000 of them (the `num_train` data option, drawn with subset seed 0; 3,000 steps), which fits
a shared 2-core CPU. Reported: the test accuracy on the 10,000 test images (evaluated in eval mode,
so batch norm uses its running statistics) as mean +- std over seeds, and the training seconds per
run. Each run uses one thread. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from common import hardware, mean_std  # benchmarks/common.py

from divekit.train.api import fit, resolve_config

NORMS = ["batch", "layer", "group", "instance", "none"]


def run(norm: str, batch_size: int, seed: int, epochs: int, num_train: int, lr: float, data_dir: str | None) -> dict:
    data_args = {} if num_train >= 60_000 else {"num_train": num_train}
    cfg = resolve_config(model="lenet-bn", data="fashion-mnist", epochs=epochs, batch_size=batch_size, lr=lr,
                         seed=seed, threads=1, device="cpu", plot=False, model_args={"norm": norm},
                         data_args=data_args, data_dir=data_dir, log_every=10_000)
    result = fit(cfg.model, cfg.data, cfg, run_dir=False, progress=False)
    return {"test_acc": result.metrics["test_acc"], "seconds": result.metrics["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--norms", nargs="+", default=NORMS, choices=NORMS)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 8])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", nargs="+", type=int, default=[2, 1], help="one per batch size")
    parser.add_argument("--num-train", nargs="+", type=int, default=[60_000, 24_000],
                        help="training images per batch size (60000: all)")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--data-dir", default=os.environ.get("DIVEKIT_DATA"))
    args = parser.parse_args()
    if not len(args.batch_sizes) == len(args.epochs) == len(args.num_train):
        parser.error("give one --epochs and one --num-train value per --batch-sizes entry")
    torch.set_num_threads(1)  # as every run does
    print(hardware())
    print(f"lenet-bn on fashion-mnist, SGD lr {args.lr}, seeds {args.seeds}")
    results: dict[str, dict] = {}
    for batch_size, epochs, num_train in zip(args.batch_sizes, args.epochs, args.num_train):
        steps = epochs * -(-num_train // batch_size)
        print(f"batch {batch_size}: {epochs} epoch(s) of {num_train:,} training images, {steps:,} steps", flush=True)
        for norm in args.norms:
            runs = [run(norm, batch_size, seed, epochs, num_train, args.lr, args.data_dir) for seed in args.seeds]
            acc, acc_std = mean_std([r["test_acc"] for r in runs])
            secs, _ = mean_std([r["seconds"] for r in runs])
            results[f"{norm}@{batch_size}"] = {"norm": norm, "batch_size": batch_size, "epochs": epochs,
                                               "num_train": num_train, "steps": steps, "test_acc_mean": acc,
                                               "test_acc_std": acc_std, "seconds_mean": secs, "runs": runs}
            print(f"  batch {batch_size:>4}  {norm:<8}  test acc {acc:.4f} +- {acc_std:.4f}  {secs:6.1f} s/run",
                  flush=True)
    print()
    print("| norm | " + " | ".join(f"test acc, batch {b}" for b in args.batch_sizes) + " |")
    print("| --- |" + " --- |" * len(args.batch_sizes))
    for norm in args.norms:
        cells = [results[f"{norm}@{b}"] for b in args.batch_sizes]
        print(f"| {norm} | " + " | ".join(f"{c['test_acc_mean']:.3f} ± {c['test_acc_std']:.3f}" for c in cells) + " |")
    print(json.dumps({"hardware": hardware(), "lr": args.lr, "seeds": args.seeds, "results": results}))


if __name__ == "__main__":
    main()
