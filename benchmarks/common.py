"""Helpers the benchmark scripts share: the hardware line every result is printed with, mean +- std,
and the share of CPU time a virtual machine's host took away while a benchmark ran."""

from __future__ import annotations

import os
import platform
import statistics

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


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Fraction of CPU time between two `cpu_ticks()` readings that the hypervisor gave to other
    machines (the `st` column of vmstat). On a shared VM it explains most run-to-run variation in
    wall time: the same run is slower when the host is busy."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])
