"""Does BERT pretraining help? Fine-tuning from a pretrained checkpoint against the same model
trained from scratch, on the same small labelled set, over several seeds.

    divekit train bert-small --data ptb --data-arg steps_per_epoch=25 --epochs 7 --out runs/bert-ptb
    python benchmarks/bert.py --pretrained runs/bert-ptb --data-dir ../shared/data --seeds 0 1 2

The task is bigram shift on PTB sentences (`ptb-bshift`, single-text classification): is one pair
of adjacent words swapped? Half of the sentences are perturbed, so chance is 50%, and a bag of
words cannot do better than chance: the model has to know word order, which masked language
modeling learns from unlabelled text. Training sentences come from ptb.train.txt (the
pretraining text, unlabelled there), test sentences from ptb.test.txt, never seen in pretraining.

Both arms use the pretrained run's vocabulary and sizes (`bert-classifier`: the encoder, the
<cls> hidden layer, a new linear output); only the initial weights differ. Prints test accuracy
mean +- std per arm, wall time, hardware; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import time

from common import hardware, mean_std  # benchmarks/common.py

import divekit as dk


def run_arm(pretrained: bool, seed: int, args) -> dict:
    data = dk.load_dataset("ptb-bshift", batch_size=args.batch_size, seed=seed, data_dir=args.data_dir,
                           pretrained=args.pretrained, num_train=args.num_train, num_test=args.num_test,
                           max_len=args.max_len, perturb=args.perturb)
    context = data.context if pretrained else {k: v for k, v in data.context.items() if k != "bert_state"}
    model = dk.create_model("bert-classifier", context=context)
    cfg = dk.TrainConfig(model="bert-classifier", data="ptb-bshift", optimizer="adam", lr=args.lr,
                         epochs=args.epochs, batch_size=args.batch_size, seed=seed, eval_every=args.epochs)
    start = time.perf_counter()
    result = dk.fit(model, data, cfg, run_dir=False, progress=False)
    return {"pretrained": pretrained, "seed": seed, "test_acc": result.metrics["test_acc"],
            "train_acc": result.metrics["train_acc"], "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrained", required=True, help="folder of a `divekit train bert-small` run")
    p.add_argument("--data-dir")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--num-train", type=int, default=1000)
    p.add_argument("--num-test", type=int, default=1000)
    p.add_argument("--max-len", type=int, default=40, help="sentences up to max_len - 2 words")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--perturb", choices=("swap", "shuffle"), default="swap",
                   help="swap: two adjacent words (bigram shift); shuffle: the whole word order")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()

    rows = []
    for seed in args.seeds:
        for pretrained in (True, False):
            row = run_arm(pretrained, seed, args)
            rows.append(row)
            print(f"seed {seed} {'fine-tuned' if pretrained else 'scratch   '}: test acc {row['test_acc']:.4f} "
                  f"(train {row['train_acc']:.4f}), {row['seconds']:.0f} s", flush=True)
    summary = {}
    for arm, pretrained in (("fine_tuned", True), ("scratch", False)):
        accs = [r["test_acc"] for r in rows if r["pretrained"] == pretrained]
        m, s = mean_std(accs)
        summary[arm] = {"test_acc_mean": round(m, 4), "test_acc_std": round(s, 4)}
        print(f"{arm:>10s}: test accuracy {m:.4f} +- {s:.4f} over seeds {args.seeds}")
    print(hardware())
    print(json.dumps({"task": "ptb-bshift", "perturb": args.perturb, "num_train": args.num_train, "num_test": args.num_test,
                      "epochs": args.epochs, "lr": args.lr, "pretrained": args.pretrained, "runs": rows, **summary}))


if __name__ == "__main__":
    main()
