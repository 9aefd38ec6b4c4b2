"""Where a whole `divekit` process spends its time outside training.

    python benchmarks/process_profile.py [--repeats 3] [--cprofile] [--torch-profiler] [--py-spy]
                                         [--commands train-softmax train-lenet train-fast help list]

For each command, a fresh child process runs the verb with divekit's own functions wrapped by timers
(perf_counter, one process), so the breakdown is: interpreter start, import divekit (torch included),
argument parsing and config, data loading, model build and preflight, trainer build (the optimizer),
training epochs, evaluation, checkpoint writes, metrics files, the curves plot, and the exit
(interpreter teardown, measured from the parent). It also says during which phase the heavy optional
packages (torch._dynamo, matplotlib, pandas, PIL) were first imported, and prints `-X importtime`
self time summed per top-level package for the same command. `--torch-profiler` adds the top ops of
torch.profiler in each run; `--py-spy` samples one more run of each command from outside (py-spy, if
installed) and splits its samples over the same phases, a check on the timers. Run it before and
after a change on a quiet machine (`--teardown` for code from before divekit.cli.entry); the data come
from $DIVEKIT_DATA (or --data-dir). Prints the host's steal share (benchmarks/common.py) for each run:
a busy VM host, not the code, makes timings vary.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {  # the default set is the first four
    "train-softmax": ["train", "softmax-regression", "--data", "digits", "--epochs", "1"],
    "train-lenet": ["train", "lenet", "--data", "fashion-mnist", "--epochs", "1"],
    "train-softmax-fashion": ["train", "softmax-regression", "--data", "fashion-mnist", "--epochs", "10"],
    "train-fast": ["train", "--recipe", "fast"],
    "help": ["--help"],
    "list": ["list", "models"],
}
WATCHED = ("torch._dynamo", "matplotlib", "pandas", "PIL", "safetensors", "tqdm")


def child(argv: list[str], cprofile: bool, teardown: bool = False, torch_profiler: bool = False) -> None:
    """Run `divekit ARGV` in this process with phase timers; print one JSON line of the phases."""
    started = time.time()
    phases: dict[str, float] = collections.defaultdict(float)
    current = ["start"]
    first_import: dict[str, str] = {}

    class Watch:  # notes the phase in which a watched package is first imported
        def find_spec(self, name, path=None, target=None):
            if name in WATCHED and name not in first_import:
                first_import[name] = current[0]
            return None

    sys.meta_path.insert(0, Watch())

    def timed(name: str, fn):
        def wrapper(*args, **kwargs):
            outer, current[0] = current[0], name
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] += time.perf_counter() - t
                current[0] = outer
                if outer in phases:  # nested: the outer phase does not count the inner one
                    phases[outer] -= time.perf_counter() - t
        return wrapper

    t = time.perf_counter()
    current[0] = "import divekit"
    import divekit  # noqa: F401  (first, as the CLI does: it sets the OpenMP wait policy before torch loads)
    from divekit import cli

    phases["import divekit + its CLI"] = time.perf_counter() - t
    if argv[0] == "train":  # the timers need the training modules loaded: their import is a phase of its own
        t = time.perf_counter()
        current[0] = "import of the training modules (torch)"
        from divekit.train import api, callbacks, trainer

        phases["import of the training modules (torch)"] = time.perf_counter() - t
        current[0] = "other"
        api.prepare_data = timed("data load", api.prepare_data)
        api.create_model = timed("model build + preflight", api.create_model)
        api.preflight = timed("model build + preflight", api.preflight)
        api.prepare_run_dir = timed("run folder + config.json", api.prepare_run_dir)
        trainer.Trainer.__init__ = timed("trainer build (optimizer)", trainer.Trainer.__init__)
        trainer.Trainer.train_epoch = timed("training", trainer.Trainer.train_epoch)
        trainer.Trainer.evaluate = timed("evaluation", trainer.Trainer.evaluate)
        for hook in ("on_epoch_end", "on_fit_end", "teardown"):  # the snapshot, then the waits for the writer
            if hook in vars(callbacks.CheckpointSaver):  # (older code wrote in on_epoch_end alone)
                setattr(callbacks.CheckpointSaver, hook,
                        timed("checkpoint writes", getattr(callbacks.CheckpointSaver, hook)))
        callbacks.MetricsLogger.on_epoch_end = timed("metrics files", callbacks.MetricsLogger.on_epoch_end)
        callbacks.PlotCurves._draw = timed("curves plot", callbacks.PlotCurves._draw)
    current[0] = "other"
    t = time.perf_counter()
    profiler = None
    if cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.suppress(SystemExit))  # --help exits through argparse
        if torch_profiler:
            import torch.profiler

            ops = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            stack.callback(lambda: print(ops.key_averages().table(sort_by="self_cpu_time_total", row_limit=15),
                                         file=sys.stderr))  # runs after the profiler stopped (last in, first out)
            stack.enter_context(ops)
        cli.main(argv)
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    main_s = time.perf_counter() - t
    phases["other (parse, config, callbacks, report)"] = main_s - sum(
        v for k, v in phases.items() if not k.startswith("import"))
    sys.stdout.flush()
    print("\nPHASES " + json.dumps({"started": started, "ended": time.time(), "phases": phases,
                                    "first_import": first_import}), flush=True)
    if not teardown:
        sys.stderr.flush()
        os._exit(0)  # as divekit.cli.entry leaves: no interpreter teardown


def run_once(argv: list[str], out_dir: str, cprofile: bool, teardown: bool = False,
             torch_profiler: bool = False) -> dict:
    """One child process; returns its phases with the interpreter start and exit added."""
    from common import cpu_ticks, steal_share  # benchmarks/common.py

    if argv[0] == "train":
        argv = [*argv, "--out", out_dir, "--no-progress"]
    ticks, spawned = cpu_ticks(), time.time()
    flags = [*(["--cprofile"] if cprofile else []), *(["--teardown"] if teardown else []),
             *(["--torch-profiler"] if torch_profiler else [])]
    proc = subprocess.run([sys.executable, __file__, "--child", *flags, "--", *argv],
                          capture_output=True, text=True)
    exited = time.time()
    line = next((x for x in proc.stdout.splitlines() if x.startswith("PHASES ")), None)
    if line is None:
        raise SystemExit(f"`divekit {' '.join(argv)}` failed:\n{proc.stderr[-3000:]}")
    if cprofile or torch_profiler:
        print(proc.stderr)
    rec = json.loads(line.removeprefix("PHASES "))
    phases = {"interpreter start": rec["started"] - spawned, **rec["phases"], "exit": exited - rec["ended"]}
    return {"phases": phases, "wall": exited - spawned, "first_import": rec["first_import"],
            "steal": steal_share(ticks, cpu_ticks())}


def importtime(argv: list[str], out_dir: str, top: int = 8) -> list[tuple[str, float]]:
    """`-X importtime` self time of the command summed per top-level package, largest first (ms)."""
    if argv[0] == "train":
        argv = [*argv, "--out", out_dir, "--no-progress"]
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "divekit", *argv], capture_output=True, text=True)
    total: collections.Counter = collections.Counter()
    for m in re.finditer(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", proc.stderr):
        total[m[2].split(".")[0]] += int(m[1]) / 1000
    return total.most_common(top)


# py-spy's stacks -> phases: the first of these functions found from the outermost frame in
SPY_PHASES = (("train_epoch", "training"), ("Trainer.evaluate", "evaluation"), ("prepare_data", "data load"),
              ("CheckpointSaver", "checkpoint writes"), ("write_checkpoint", "checkpoint writes"),
              ("PlotCurves", "curves plot"), ("_find_and_load", "imports"))


def py_spy(argv: list[str], out_dir: str, rate: int = 200) -> dict[str, float] | None:
    """Seconds per phase of one run of `divekit ARGV` sampled by py-spy (None if it is not installed)."""
    import shutil

    if shutil.which("py-spy") is None:
        return None
    if argv[0] == "train":
        argv = [*argv, "--out", out_dir, "--no-progress"]
    raw = os.path.join(tempfile.mkdtemp(), "stacks.txt")
    subprocess.run(["py-spy", "record", "--format", "raw", "-r", str(rate), "-o", raw, "--", sys.executable, "-m",
                    "divekit", *argv], capture_output=True, check=True)
    counts: collections.Counter = collections.Counter()
    with open(raw) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            phase = next((name for key, name in SPY_PHASES if key in stack), "other")
            counts[phase] += int(n)
    return {phase: n / rate for phase, n in counts.most_common()}


def whole_process(cmd: list[str], repeats: int) -> float:
    """Median wall seconds of `cmd` as a fresh process, output discarded."""
    from common import run_process  # benchmarks/common.py

    return statistics.median(run_process(cmd).wall for _ in range(repeats))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--commands", nargs="+", choices=list(COMMANDS), default=list(COMMANDS)[:4])
    p.add_argument("--repeats", type=int, default=3, help="runs per command; the median of each phase is shown")
    p.add_argument("--data-dir", default=os.environ.get("DIVEKIT_DATA"))
    p.add_argument("--cprofile", action="store_true", help="also print each run's top 25 functions (cumulative)")
    p.add_argument("--torch-profiler", action="store_true", help="also print each run's top 15 torch ops (self CPU)")
    p.add_argument("--py-spy", action="store_true", help="also sample one run of each command with py-spy")
    p.add_argument("--teardown", action="store_true",
                   help="exit through the interpreter's teardown, as `divekit` did before divekit.cli.entry")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = p.parse_known_args()
    if args.child:
        child(rest[1:] if rest[:1] == ["--"] else rest, args.cprofile, args.teardown, args.torch_profiler)
        return
    if args.data_dir:
        os.environ["DIVEKIT_DATA"] = args.data_dir
    from common import hardware

    print(hardware())
    torch_s = whole_process([sys.executable, "-c", "import torch"], args.repeats)
    print(f"`python -c 'import torch'`: {torch_s:.2f} s wall (median of {args.repeats})")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.commands:
            argv = COMMANDS[name]
            runs = [run_once(argv, os.path.join(tmp, f"{name}-{i}"), args.cprofile, args.teardown,
                             args.torch_profiler) for i in range(args.repeats)]
            wall = statistics.median(r["wall"] for r in runs)
            steal = [r["steal"] for r in runs if r["steal"] is not None]
            stolen = f", host steal {100 * statistics.median(steal):.0f}%" if steal else ""
            print(f"\n`divekit {' '.join(argv)}`: {wall:.2f} s wall (median of {len(runs)}{stolen})")
            for phase in runs[0]["phases"]:
                s = statistics.median(r["phases"].get(phase, 0.0) for r in runs)
                if s >= 0.005:
                    print(f"  {phase:<42} {s:7.3f} s  {100 * s / wall:5.1f}%")
            print("  first imported during: " + (", ".join(f"{k} ({v})" for k, v in runs[0]["first_import"].items())
                                                or "-"))
            plain = [*argv, "--out", os.path.join(tmp, f"{name}-plain"), "--no-progress"] if argv[0] == "train" else argv
            direct = whole_process([sys.executable, "-m", "divekit", *plain], args.repeats)
            print(f"  `python -m divekit {' '.join(argv)}` itself (no timers): {direct:.2f} s wall, "
                  f"import torch + {direct - torch_s:.2f} s")
            top = importtime(argv, os.path.join(tmp, f"{name}-importtime"))
            print("  -X importtime, self ms per package: " + ", ".join(f"{k} {v:.0f}" for k, v in top))
            if args.py_spy:
                spy = py_spy(argv, os.path.join(tmp, f"{name}-spy"))
                print("  py-spy, seconds sampled per phase: " + (", ".join(f"{k} {v:.2f}" for k, v in spy.items())
                                                                if spy is not None else "py-spy is not installed"))


if __name__ == "__main__":
    main()
