"""Helpers the benchmark scripts share: the hardware line every result is printed with, mean +- std,
the share of CPU time a virtual machine's host took away while a benchmark ran, and whole processes
timed in an environment without inherited thread settings."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass

import torch

from divekit.apps.bench import cpu_name


def hardware() -> str:
    """CPU model, core count, torch version and threads, Python version."""
    return (f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"python {platform.python_version()}")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) clock ticks of all CPUs since boot from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    steal = fields[7] if len(fields) > 7 else 0
    return steal, sum(fields[:8])  # guest time is already counted in user time


# variables that set threads or the OpenMP wait policy: a benchmark sets those it measures itself
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "MKL_NUM_THREADS",
                    "DIVEKIT_THREADS")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without THREAD_VARIABLES, plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}, **extra}


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user + system CPU seconds of the process (time the host stole is not in it)
    steal: float | None  # the host's steal share meanwhile (steal_share)
    stdout: str


def run_process(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run `cmd` to the end as a fresh process (in `env`, else clean_env()); raises if it fails."""
    ticks, start = cpu_ticks(), time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env if env is not None else clean_env())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    return Run(wall, cpu, steal_share(ticks, cpu_ticks()), proc.stdout)


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Fraction of CPU time between two `cpu_ticks()` readings that the hypervisor gave to other
    machines (the `st` column of vmstat). On a shared VM it explains most run-to-run variation in
    wall time: the same run is slower when the host is busy."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])
