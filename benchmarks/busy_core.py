"""How much one busy core slows LeNet training, per thread count and OpenMP wait policy.

    python benchmarks/busy_core.py [--steps 40] [--rounds 3]

Each measurement is a fresh process that trains the book's LeNet (divekit's registered model, batch
256, SGD lr 0.9) for `--steps` steps on Fashion-MNIST-shaped random tensors, with the OpenMP
environment set before torch is imported. It runs once on the machine as it is and once while a
second process spins on one core (`while True: pass`, started and killed here, bounded by
`--max-busy-s`), interleaved over `--rounds`. The slowdown is busy / quiet median time: with torch's
default (threads = cores, threads spin-waiting) a busy core slows a 2-core machine several times
over; `divekit` (when `import divekit` sees another program busy: OMP_WAIT_POLICY=PASSIVE and threads =
the physical cores left free; else torch's defaults) should slow down
about in proportion to the core taken away, and run like torch's default on the quiet machine. Prints the host's steal share, as fast_recipe.py does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from common import clean_env, cpu_ticks, hardware, steal_share  # benchmarks/common.py

# name -> (threads, extra environment, import divekit before torch); None threads: torch's default.
# divekit, imported first, sets OMP_WAIT_POLICY=PASSIVE and leaves the busy core alone if another program is
# busy at that moment (the spinner here); imported after torch it cannot change the policy.
CONFIGS = {
    "torch default (spin-wait)": (None, {}, False),
    "1 thread": (1, {}, False),
    "divekit (policy chosen at import)": (None, {}, True),
}
CHILD = """
import sys, time
if sys.argv[3] == "divekit-first":
    import divekit as dk
import torch
import divekit as dk
threads, steps = int(sys.argv[1]), int(sys.argv[2])
if threads:
    torch.set_num_threads(threads)
elif sys.argv[3] == "divekit-first":  # as `divekit train` does: the cores other programs left free
    from divekit.core.device import resolve_threads
    torch.set_num_threads(resolve_threads())
torch.manual_seed(0)
model = dk.create_model("lenet", context={"num_classes": 10, "in_shape": (1, 28, 28)})
opt = torch.optim.SGD(model.parameters(), lr=0.9)
x, y = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
loss_fn = torch.nn.CrossEntropyLoss()
for i in range(steps + 3):
    if i == 3:  # after the warm-up steps
        start = time.perf_counter()
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    loss.item()
import os
print(time.perf_counter() - start, torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY", "unset"))
"""
SPINNER = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end: pass"


def measure(threads: int | None, env: dict[str, str], divekit_first: bool, steps: int) -> tuple[float, int, str]:
    """Seconds for `steps` training steps in a fresh process, its torch thread count and wait policy."""
    order = "divekit-first" if divekit_first else "torch-first"
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads or 0), str(steps), order], env=clean_env(**env),
                         capture_output=True, text=True, check=True, timeout=600).stdout.split()
    return float(out[0]), int(out[1]), out[2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-busy-s", type=float, default=300, help="the spinning process ends itself after this long")
    args = p.parse_args()
    print(hardware())
    times: dict[tuple[str, bool], list[float]] = {(n, b): [] for n in CONFIGS for b in (False, True)}
    used: dict[str, int] = {}
    policy: dict[str, str] = {}
    steal: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for busy in (False, True):
            # the spinner ends itself after --max-busy-s even if this script is killed
            spinner = subprocess.Popen([sys.executable, "-c", SPINNER, str(args.max_busy_s)]) if busy else None
            try:
                time.sleep(0.5 if busy else 0)  # let the spinner take its core
                for name, (threads, env, divekit_first) in CONFIGS.items():
                    ticks = cpu_ticks()
                    seconds, used[name], policy[name] = measure(threads, env, divekit_first, args.steps)
                    times[name, busy].append(seconds)
                    share = steal_share(ticks, cpu_ticks())
                    if share is not None:
                        steal[busy].append(share)
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    result = {}
    for name in CONFIGS:
        quiet, busy = statistics.median(times[name, False]), statistics.median(times[name, True])
        result[name] = {"threads": used[name], "wait_policy": policy[name], "quiet_s": round(quiet, 3),
                        "busy_s": round(busy, 3), "slowdown": round(busy / quiet, 2)}
        print(f"{name:<28} {used[name]} threads, OMP_WAIT_POLICY {policy[name]}: quiet {quiet:6.2f} s, one core busy "
              f"{busy:6.2f} s -> {busy / quiet:4.2f}x slower (runs: {times[name, False]} / {times[name, True]})",
              flush=True)
    for busy, shares in steal.items():
        if shares:
            print(f"host steal while {'busy' if busy else 'quiet'}: {100 * statistics.median(shares):.0f}% of CPU time")
    print(json.dumps({"hardware": hardware(), "steps": args.steps, "rounds": args.rounds, "results": result}))


if __name__ == "__main__":
    main()
