"""Helpers the benchmark scripts share: the hardware line every result is printed with, mean +- std."""

from __future__ import annotations

import os
import platform
import statistics

import torch

from divekit.bench import cpu_name


def hardware() -> str:
    """CPU model, core count, torch version and threads, Python version."""
    return (f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"python {platform.python_version()}")


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
