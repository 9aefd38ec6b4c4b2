"""divekit's CLI against a plain PyTorch script of the same model, as whole processes.

    python benchmarks/peers.py [--rounds 5] [--epochs-scale 1.0] [--only lenet mlp]

Each pair runs `python -m divekit train ...` and `python benchmarks/plain/...` as fresh processes,
interleaved A B B A over `--rounds` (each from an environment without thread settings), so start-up, data loading and the test evaluation are in both.
Prints, per pair, both runs' test accuracy (they must do the same work) and the wall-time ratio
divekit / plain, then the median ratio, the hardware, torch version and the host's steal share.
Data from $DIVEKIT_DATA (or --data-dir). Pairs: LeNet 2 epochs, softmax regression and the MLP 10
epochs on Fashion-MNIST, the char-level GRU 1 epoch on The Time Machine (benchmarks/plain/).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from common import hardware, run_process  # benchmarks/common.py

HERE = Path(__file__).parent
# name -> (divekit train arguments, plain script arguments, epochs, the figure both print); the book's settings
PAIRS = {
    "lenet": (["lenet", "--data", "fashion-mnist", "--lr", "0.9", "--batch-size", "256"],
              ["fashion_mnist.py", "lenet", "--lr", "0.9", "--batch-size", "256"], 2, "test_acc"),
    "softmax-regression": (["softmax-regression", "--data", "fashion-mnist", "--lr", "0.1", "--batch-size", "256"],
                           ["fashion_mnist.py", "softmax-regression", "--lr", "0.1", "--batch-size", "256"], 10,
                           "test_acc"),
    "mlp": (["mlp", "--data", "fashion-mnist", "--lr", "0.1", "--batch-size", "256"],
            ["fashion_mnist.py", "mlp", "--lr", "0.1", "--batch-size", "256"], 10, "test_acc"),
    "gru": (["gru", "--data", "time-machine", "--lr", "4", "--batch-size", "32"],
            ["time_machine.py", "--lr", "4", "--batch-size", "32"], 1, "valid_ppl"),
}


def timed(cmd: list[str]) -> tuple[float, dict, float | None]:
    """Wall seconds, the last JSON line of stdout, and the host's steal share, of one process."""
    run = run_process(cmd)
    return run.wall, json.loads(run.stdout.strip().splitlines()[-1]), run.steal


def fmt(walls: list[float]) -> str:
    return " ".join(f"{w:.1f}" for w in walls)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    p.add_argument("--epochs-scale", type=float, default=1.0, help="scale every pair's epochs (a quick check: 0.1)")
    p.add_argument("--data-dir", default=os.environ.get("DIVEKIT_DATA"))
    args = p.parse_args()
    if not args.data_dir:
        raise SystemExit("set DIVEKIT_DATA or pass --data-dir")
    print(hardware())
    ratios, steals = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            dk_args, plain_args, epochs, figure = PAIRS[name]
            epochs = max(1, round(epochs * args.epochs_scale))
            dk_cmd = [sys.executable, "-m", "divekit", "train", *dk_args, "--epochs", str(epochs), "--json",
                      "--no-progress", "--data-dir", args.data_dir]
            plain_cmd = [sys.executable, str(HERE / "plain" / plain_args[0]), *plain_args[1:], "--epochs", str(epochs),
                         "--data-dir", args.data_dir]
            walls: dict[str, list[float]] = {"divekit": [], "plain": []}
            accs: dict[str, list[float]] = {"divekit": [], "plain": []}
            choices = set()  # what each divekit run chose from the machine (threads, wait policy), from its config.json
            for r in range(args.rounds):
                pair = [("divekit", [*dk_cmd, "--out", f"{tmp}/{name}-{r}"]), ("plain", plain_cmd)]
                for who, cmd in pair[::-1] if r % 2 else pair:  # A B, B A, ...: neither always runs first
                    wall, summary, steal = timed(cmd)
                    walls[who].append(wall)
                    accs[who].append(summary[figure])
                    if steal is not None:
                        steals.append(steal)
                machine = json.loads(Path(f"{tmp}/{name}-{r}/config.json").read_text())["machine"]
                choices.add(f"{machine['threads']} threads, {machine['omp_wait_policy']}")
            ratio = statistics.median(walls["divekit"]) / statistics.median(walls["plain"])
            ratios.append(ratio)
            print(f"{name} ({epochs} epochs): divekit {statistics.median(walls['divekit']):.1f} s, {figure} "
                  f"{statistics.mean(accs['divekit']):.4f} | plain {statistics.median(walls['plain']):.1f} s, {figure} "
                  f"{statistics.mean(accs['plain']):.4f} | divekit / plain {ratio:.2f} (walls: divekit "
                  f"{fmt(walls['divekit'])}, plain {fmt(walls['plain'])}; divekit chose {' | '.join(sorted(choices))})",
                  flush=True)
    print(f"median ratio divekit / plain: {statistics.median(ratios):.2f} over {len(ratios)} pairs, "
          f"{args.rounds} rounds each")
    if steals:
        print(f"host steal: median {100 * statistics.median(steals):.0f}%, max {100 * max(steals):.0f}% of CPU time")


if __name__ == "__main__":
    main()
