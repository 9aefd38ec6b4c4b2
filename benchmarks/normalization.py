"""LeNet with batch, layer, group, instance or no normalization, at a large and a small batch size.

    python benchmarks/normalization.py                       # 5 norms x batch 256 and 8 x seeds 0 1 2
    python benchmarks/normalization.py --norms batch group --batch-sizes 8 --seeds 0 --epochs 1

The model is the book's BN-LeNet (`lenet-bn`, book 8.5: sigmoid, average pooling, the
normalization after each conv and hidden dense layer) with `--model-arg norm=NORM`, the
hand-written layers (see divekit.models.layers.norm_layers: layer norm is GroupNorm(1, C) on the
conv layers, group norm uses 2 groups, instance norm leaves the dense layers unnormalized). Every
run trains on all 60,000 Fashion-MNIST training images for the same number of epochs with plain
SGD at the same learning rate, so the two batch sizes see the same examples and batch 8 takes 32
times as many steps. Reported: the test accuracy on the 10,000 test images (evaluated in eval
mode, so batch norm uses its running statistics) as mean +- std over seeds, and the training
seconds per run. Each run uses one thread. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from common import hardware, mean_std  # benchmarks/common.py

from divekit.train.api import fit, resolve_config

NORMS = ["batch", "layer", "group", "instance", "none"]


def run(norm: str, batch_size: int, seed: int, epochs: int, lr: float, data_dir: str | None) -> dict:
    cfg = resolve_config(model="lenet-bn", data="fashion-mnist", epochs=epochs, batch_size=batch_size, lr=lr,
                         seed=seed, threads=1, device="cpu", plot=False, model_args={"norm": norm},
                         data_dir=data_dir, log_every=10_000)
    result = fit(cfg.model, cfg.data, cfg, run_dir=False, progress=False)
    return {"test_acc": result.metrics["test_acc"], "seconds": result.metrics["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--norms", nargs="+", default=NORMS, choices=NORMS)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 8])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--data-dir", default=os.environ.get("DIVEKIT_DATA"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # as every run does
    print(hardware())
    print(f"lenet-bn on fashion-mnist, {args.epochs} epochs of 60,000 images, SGD lr {args.lr}, seeds {args.seeds}")
    results: dict[str, dict] = {}
    for batch_size in args.batch_sizes:
        for norm in args.norms:
            runs = [run(norm, batch_size, seed, args.epochs, args.lr, args.data_dir) for seed in args.seeds]
            acc, acc_std = mean_std([r["test_acc"] for r in runs])
            secs, _ = mean_std([r["seconds"] for r in runs])
            results[f"{norm}@{batch_size}"] = {"norm": norm, "batch_size": batch_size, "test_acc_mean": acc,
                                               "test_acc_std": acc_std, "seconds_mean": secs, "runs": runs}
            print(f"  batch {batch_size:>4}  {norm:<8}  test acc {acc:.4f} +- {acc_std:.4f}  {secs:6.1f} s/run",
                  flush=True)
    print()
    print("| norm | " + " | ".join(f"test acc, batch {b}" for b in args.batch_sizes) + " |")
    print("| --- |" + " --- |" * len(args.batch_sizes))
    for norm in args.norms:
        cells = [results[f"{norm}@{b}"] for b in args.batch_sizes]
        print(f"| {norm} | " + " | ".join(f"{c['test_acc_mean']:.3f} ± {c['test_acc_std']:.3f}" for c in cells) + " |")
    print(json.dumps({"hardware": hardware(), "epochs": args.epochs, "lr": args.lr, "seeds": args.seeds,
                      "results": results}))


if __name__ == "__main__":
    main()
