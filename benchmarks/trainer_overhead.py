"""Trainer overhead: divekit's Trainer vs a plain PyTorch loop, same model, same batches.

Each run trains a freshly seeded model for `--epochs-per-repeat` epochs on Fashion-MNIST (batch
size 256, SGD lr 0.1) and evaluates the test set after every epoch (loss + accuracy, no_grad,
eval mode), with train loss and accuracy accumulated as tensors and read once per epoch. Three
variants do exactly that work:

  plain        a hand-written loop over the same `data.train` TensorLoader (so data preparation is
               identical), same optimizer class, same loss (the scratch model's own `loss`);
  divekit      `divekit.Trainer(model, data, cfg).fit()` with no callbacks;
  divekit+bar  the same with the ProgressBar callback that users see (tqdm writes to stderr).

Only the loop / `fit()` is timed (time.perf_counter); building the model, optimizer and Trainer is
not. After one warm-up run of each, every repeat runs all variants back to back, rotating which
goes first. Reported: median and mean +- std seconds, examples/s, and divekit/plain as the median
of per-repeat ratios and as the ratio of medians (goal: <= 1.05), plus process CPU time, which a
busy machine disturbs less than wall time (most so with `--threads 1`). Also checks that the
variants end with the same weights.

    DIVEKIT_DATA=/work/shared/data python benchmarks/trainer_overhead.py --model softmax-regression-scratch
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
from common import hardware  # benchmarks/common.py

import divekit
from divekit.core.device import resolve_device
from divekit.ops.optim import SGD as ScratchSGD
from divekit.train.callbacks import ProgressBar

SEED, LR, BATCH = 0, 0.1, 256


def is_scratch(name: str) -> bool:
    return name.endswith("-scratch")


def fresh_model(name, data, device):
    torch.manual_seed(SEED)
    return divekit.create_model(name, context=data.context).to(device)


def plain_fit(model, opt, loss_fn, data, epochs):
    """The loop an expert would write: metric sums stay tensors, read once per epoch."""
    for epoch in range(epochs):
        model.train()
        data.train.set_epoch(epoch)
        loss_sum, correct, n = 0.0, 0, 0
        for X, y in data.train:
            logits = model(X)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum = loss_sum + loss.detach() * y.shape[0]
            correct = correct + (logits.detach().argmax(dim=1) == y).sum()
            n += y.shape[0]
        metrics = {"train_loss": float(loss_sum) / n, "train_acc": int(correct) / n}
        model.eval()
        with torch.no_grad():
            loss_sum, correct, n = 0.0, 0, 0
            for X, y in data.test:
                logits = model(X)
                loss_sum = loss_sum + loss_fn(logits, y) * y.shape[0]
                correct = correct + (logits.argmax(dim=1) == y).sum()
                n += y.shape[0]
        metrics.update(test_loss=float(loss_sum) / n, test_acc=int(correct) / n)
    return metrics


def run(variant, args, data, device, epochs):
    """Build a freshly seeded model (untimed), then time the training; returns (wall s, cpu s, model, metrics)."""
    model = fresh_model(args.model, data, device)
    if variant == "plain":
        params = model.parameters()
        opt = ScratchSGD(params, lr=LR) if is_scratch(args.model) else torch.optim.SGD(params, lr=LR)
        loss_fn = model.loss if is_scratch(args.model) else F.cross_entropy
        go = lambda: plain_fit(model, opt, loss_fn, data, epochs)  # noqa: E731
    else:
        cfg = divekit.TrainConfig(model=args.model, data="fashion-mnist", epochs=epochs, lr=LR, batch_size=BATCH,
                                  optimizer="sgd-scratch" if is_scratch(args.model) else "sgd", device=str(device))
        trainer = divekit.Trainer(model, data, cfg, callbacks=[ProgressBar()] if variant == "divekit+bar" else [])
        go = trainer.fit
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    metrics = go()
    return time.perf_counter() - start, time.process_time() - cpu, model, metrics



def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="softmax-regression",
                   choices=["softmax-regression", "softmax-regression-scratch"])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--epochs-per-repeat", type=int, default=1)
    p.add_argument("--data-dir", default=os.environ.get("DIVEKIT_DATA"))
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto ...")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    data = divekit.load_dataset("fashion-mnist", batch_size=BATCH, data_dir=args.data_dir, device=device)
    examples = data.train.num_examples * args.epochs_per_repeat
    steps = (len(data.train) + len(data.test)) * args.epochs_per_repeat  # train steps + test batches
    variants = ["plain", "divekit", "divekit+bar"]
    print(hardware())
    print(f"model {args.model}, fashion-mnist, batch {BATCH}, lr {LR}, {args.epochs_per_repeat} epoch(s) per run "
          f"({len(data.train)} steps/epoch + test eval), {args.repeats} repeats, device {device}", flush=True)

    load_before = os.getloadavg()[0]
    for v in variants:  # warm-up
        run(v, args, data, device, 1)
    times, cpus = {v: [] for v in variants}, {v: [] for v in variants}
    last = {}
    for r in range(args.repeats):
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:  # rotate which variant goes first
            seconds, cpu, model, metrics = run(v, args, data, device, args.epochs_per_repeat)
            times[v].append(seconds)
            cpus[v].append(cpu)
            last[v] = (model, metrics)

    load = (load_before, os.getloadavg()[0])
    busy = max(load) > 0.75 * os.cpu_count()
    print(f"1-min load average before/after: {load[0]:.2f}/{load[1]:.2f} on {os.cpu_count()} cores"
          + ("  (WARNING: busy machine, timings are noisy; trust the per-repeat ratios most)" if busy else ""))
    out = {"model": args.model, "load_avg": load, "repeats": args.repeats, "epochs_per_repeat": args.epochs_per_repeat,
           "hardware": hardware(), "variants": {}, "ratios": {}}
    print(f"\n{'variant':<12} {'median s':>9} {'mean s':>8} {'std s':>7} {'min s':>7} {'examples/s':>11} {'cpu s':>7}")
    for v, ts in times.items():
        med, mean, std = statistics.median(ts), statistics.fmean(ts), statistics.stdev(ts) if len(ts) > 1 else 0.0
        cpu = statistics.median(cpus[v])
        out["variants"][v] = {"median_s": med, "mean_s": mean, "std_s": std, "examples_per_s": examples / med,
                              "cpu_median_s": cpu, "times_s": ts}
        print(f"{v:<12} {med:9.4f} {mean:8.4f} {std:7.4f} {min(ts):7.4f} {examples / med:11.0f} {cpu:7.4f}")
    print()
    for v in variants[1:]:
        per_repeat = statistics.median(d / p for d, p in zip(times[v], times["plain"]))
        of_medians = statistics.median(times[v]) / statistics.median(times["plain"])
        ok = "OK" if max(per_repeat, of_medians) <= 1.05 else "ABOVE 1.05"  # both must meet the goal
        cpu_ratio = statistics.median(d / p for d, p in zip(cpus[v], cpus["plain"]))
        extra_us = (statistics.median(times[v]) - statistics.median(times["plain"])) / steps * 1e6
        out["ratios"][v] = {"median_of_ratios": per_repeat, "ratio_of_medians": of_medians,
                            "cpu_median_of_ratios": cpu_ratio, "extra_us_per_step": extra_us}
        print(f"{v}/plain: median of per-repeat ratios {per_repeat:.4f}, ratio of medians {of_medians:.4f}  [{ok}]"
              f"  (CPU time {cpu_ratio:.4f}; {extra_us:+.0f} us/step)")

    ref = dict(last["plain"][0].named_parameters())
    for v in variants[1:]:
        model, metrics = last[v]
        diff = max((p - ref[k]).abs().max().item() for k, p in model.named_parameters())
        same = all(torch.allclose(p, ref[k]) for k, p in model.named_parameters())
        out["variants"][v]["same_weights"] = same
        why = ("" if same else "  (differ: the loops did not make the same updates: other batches, optimizer settings,"
               " loss or precision, or nondeterministic kernels)")
        print(f"weights {v} vs plain: allclose={same}, bitwise equal={diff == 0}, max |diff|={diff:.3g}{why}")
    keys = ("train_loss", "train_acc", "test_loss", "test_acc")
    for v in variants:
        print(f"metrics {v:<12}", {k: round(last[v][1][k], 6) for k in keys})
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
