"""Fine-tuning vs training from scratch with few labels (book 14.2's hotdog comparison, 0.94 vs 0.85).

The book fine-tunes an ImageNet ResNet-18 on 2,000 hot-dog photos. Here, in a form a 2-core CPU
runs in minutes: pretrain a CNN on Fashion-MNIST (60,000 labelled clothes), then fine-tune it on
MNIST digits with only 1,000 labelled training examples (100 per class), and compare with the same
network trained from scratch on the same 1,000. Both are scored on the full MNIST test set (10,000).
The fine-tuned network starts from the clothes features, gets a new output layer, and trains the
body at lr and the head at 10 x lr (the book's recipe); scratch trains everything at lr. Both rates
were picked on seed 0 with 1,000 labels (scratch: 0.03 / 0.1 / 0.3, fine-tuning: 0.003 / 0.01 / 0.03);
0.03 was best for both.

    DIVEKIT_DATA=/work/shared/data python benchmarks/finetune.py --seeds 0 1 2

The same comparison from the command line:

    divekit train lenet-modern --data fashion-mnist --epochs 5 --out runs/fashion
    divekit train lenet-modern --data mnist --data-arg num_train=1000 --init-from runs/fashion \\
        --lr 0.03 --momentum 0.9 --batch-size 64 --epochs 30 --eval-every 30
    divekit train lenet-modern --data mnist --data-arg num_train=1000 \\
        --lr 0.03 --momentum 0.9 --batch-size 64 --epochs 30 --eval-every 30
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from divekit.train.api import resolve_config, train


def run(model: str, seed: int, epochs: int, lr: float, init_from: str | None, num_train: int, out: Path,
        freeze_body: bool = False) -> dict:
    cfg = resolve_config(model=model, data="mnist", epochs=epochs, lr=lr, momentum=0.9, batch_size=64, seed=seed,
                         eval_every=epochs, init_from=init_from, freeze_body=freeze_body or None,
                         data_args={"num_train": num_train, "subset_seed": seed}, out=str(out))
    start = time.perf_counter()
    result = train(cfg, progress=False)
    return {"test_acc": result.metrics["test_acc"], "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lenet-modern")
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--pretrained", help="an existing Fashion-MNIST run folder (skips pretraining)")
    p.add_argument("--epochs", type=int, default=30, help="epochs on the 1,000 MNIST examples")
    p.add_argument("--lr", type=float, default=0.03, help="fine-tuning body lr (the head gets 10x)")
    p.add_argument("--scratch-lr", type=float, default=0.03, help="lr from scratch (and of the frozen-body head)")
    p.add_argument("--num-train", type=int, default=1000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/bench-finetune")
    args = p.parse_args()
    out = Path(args.out)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, python {platform.python_version()}")

    pretrained = args.pretrained
    if pretrained is None:
        pretrained = str(out / "pretrain-fashion-mnist")
        start = time.perf_counter()
        cfg = resolve_config(model=args.model, data="fashion-mnist", epochs=args.pretrain_epochs, seed=0, out=pretrained)
        result = train(cfg, progress=False)
        print(f"pretrained {args.model} on Fashion-MNIST: test_acc {result.metrics['test_acc']:.4f} "
              f"in {time.perf_counter() - start:.0f} s")

    rows: dict[str, list[dict]] = {"finetune": [], "finetune-frozen": [], "scratch": []}
    for seed in args.seeds:
        rows["finetune"].append(run(args.model, seed, args.epochs, args.lr, pretrained, args.num_train,
                                    out / f"finetune-{seed}"))
        rows["finetune-frozen"].append(run(args.model, seed, args.epochs, args.scratch_lr, pretrained,
                                           args.num_train, out / f"frozen-{seed}", freeze_body=True))
        rows["scratch"].append(run(args.model, seed, args.epochs, args.scratch_lr, None, args.num_train,
                                   out / f"scratch-{seed}"))
        print(f"seed {seed}: " + "  ".join(f"{k} {v[-1]['test_acc']:.4f} ({v[-1]['seconds']} s)"
                                           for k, v in rows.items()), flush=True)
    summary = {}
    for k, v in rows.items():
        accs = [r["test_acc"] for r in v]
        summary[k] = {"mean": round(statistics.mean(accs), 4),
                      "std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0, "runs": accs}
        print(f"{k:>16s}: MNIST test accuracy {summary[k]['mean']:.4f} ± {summary[k]['std']:.4f} "
              f"over seeds {args.seeds} ({args.num_train} labelled examples)")
    print(json.dumps({"model": args.model, "num_train": args.num_train, "epochs": args.epochs, **summary}))


if __name__ == "__main__":
    main()
