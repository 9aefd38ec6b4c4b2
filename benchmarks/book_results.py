"""Reproduce the book's figures that the issues ask for, over several seeds, and print a table.

    python benchmarks/book_results.py --data-dir ../shared/data            # chapters 3-5
    python benchmarks/book_results.py --only softmax-regression mlp --seeds 0 1 2
    python benchmarks/book_results.py --only lenet lenet-bn                 # chapter 7, book settings
    # chapter 8 with the book's full settings (resize 224/96, 10 epochs): meant for a GPU machine
    python benchmarks/book_results.py --only alexnet vgg11-small nin googlenet resnet18 densenet --device cuda
    # the same on a CPU, reduced: a smaller resize and a time budget per run (the epoch is cut short)
    python benchmarks/book_results.py --only alexnet vgg11-small nin googlenet resnet18 densenet \
        --resize 96 --time-limit 60 --seeds 0

For each model: test accuracy on Fashion-MNIST with the book's settings (the model's registered
defaults), mean +- std over seeds, the training wall time (the trainer's `seconds`: training and
per-epoch evaluation, not process start-up) and examples/s (the 60,000 training plus 10,000 test
examples of every epoch, per second of that time). Also times the README's main command
(`divekit train softmax-regression --data digits`) end to end as a subprocess. Prints hardware and
torch version; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from common import hardware, mean_std  # benchmarks/common.py

import divekit as dk

MODELS = ["softmax-regression", "softmax-regression-scratch", "mlp", "mlp-scratch", "dropout-mlp", "dropout-mlp-scratch"]




def main_command_seconds() -> dict:
    """Wall time of the README's main command, process start-up included."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "divekit", "train", "softmax-regression", "--data", "digits",
                          "--json", "--no-progress", "--out", "/tmp/divekit-main-command"],
                         capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - start
    summary = json.loads(out.strip().splitlines()[-1])
    return {"wall_s": round(wall, 2), "test_acc": summary["test_acc"], "train_s": summary["seconds"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("DIVEKIT_DATA"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="+", default=MODELS)
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, help="override the book's epochs (reduced schedule)")
    p.add_argument("--resize", type=int, help="override the book's resize (reduced schedule)")
    p.add_argument("--time-limit", type=float, help="seconds of training per run (reduced schedule)")
    p.add_argument("--optimizer", help="override the book's optimizer (reduced schedule), e.g. adam")
    p.add_argument("--lr", type=float, help="override the book's learning rate")
    p.add_argument("--skip-main-command", action="store_true")
    args = p.parse_args()
    overrides = {k: v for k, v in (("epochs", args.epochs), ("resize", args.resize), ("time_limit", args.time_limit),
                                   ("optimizer", args.optimizer), ("lr", args.lr)) if v is not None}
    print(hardware())
    rows = {}
    for model in args.only:
        accs, secs = [], []
        for seed in args.seeds:
            r = dk.train(model=model, data="fashion-mnist", seed=seed, data_dir=args.data_dir, progress=False,
                         device=args.device, out=f"/tmp/divekit-book-results/{model}-{seed}", **overrides)
            accs.append(r.metrics["test_acc"])
            secs.append(r.metrics["seconds"])
        (acc, acc_sd), (sec, sec_sd) = mean_std(accs), mean_std(secs)
        cfg = r.config
        epochs = len(r.history)  # fewer than cfg.epochs when a time limit cut training short
        rows[model] = {"test_acc_mean": round(acc, 4), "test_acc_std": round(acc_sd, 4), "seconds_mean": round(sec, 1),
                       "seconds_std": round(sec_sd, 1),
                       "examples_per_s": None if cfg.time_limit else round(epochs * 70000 / sec),  # partial epochs
                       "settings": f"lr {cfg.lr}, batch {cfg.batch_size}, {epochs} of {cfg.epochs} epochs, "
                                   f"resize {cfg.resize}, {cfg.optimizer}"
                                   + (f", time limit {cfg.time_limit:g} s" if cfg.time_limit else ""),
                       "per_seed": accs}
        print(f"{model:<28s} test acc {acc:.4f} +- {acc_sd:.4f}   {sec:6.1f} +- {sec_sd:.1f} s   ({rows[model]['settings']})",
              flush=True)
    result = {"hardware": hardware(), "seeds": args.seeds, "fashion_mnist": rows}
    if not args.skip_main_command:
        result["main_command"] = main_command_seconds()
        print(f"README main command (digits): {result['main_command']['wall_s']} s wall, "
              f"test acc {result['main_command']['test_acc']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
