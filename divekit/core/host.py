"""The machine around this process, looked at once when divekit is imported, before torch loads.

GNU OpenMP reads its wait policy once, when torch loads it. Spinning idle threads (its default)
keep small ops fast on a quiet machine (a GRU step ran 3.8x slower with PASSIVE), but when another
program holds a core they wait on it: a 2-thread LeNet step ran 4x slower. So, unless the user chose,
`import divekit` watches the CPU for 50 ms: if other programs keep half a core or more busy, threads
sleep while they wait (PASSIVE) and a run uses the cores left free (`core.device.resolve_threads`);
otherwise torch's defaults stay (benchmarks/busy_core.py, docs/RESULTS.md). Pure Python: no torch.
"""

from __future__ import annotations

import os
import time

BUSY_CORES = 0.0  # cores' worth of CPU other programs used when divekit was imported (0.0: not measured)
WAIT_POLICY: str | None = os.environ.get("OMP_WAIT_POLICY")  # what this process runs with (None: torch's)


def busy_elsewhere(interval: float = 0.05, stat: str = "/proc/stat") -> float:
    """How many cores' worth of CPU other processes use over the next `interval` seconds (this one
    sleeps meanwhile), from the kernel's counters; 0.0 where they cannot be read (not Linux)."""

    def busy_total() -> tuple[int, int]:
        with open(stat) as f:
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
        busy = user + nice + system + irq + softirq
        return busy, busy + idle + iowait + steal

    try:
        busy0, total0 = busy_total()
        time.sleep(interval)
        busy1, total1 = busy_total()
    except (OSError, ValueError):
        return 0.0
    return (busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1)


def busy_whole_cores(busy: float) -> int:
    """Cores counted as taken: half a core's use or more counts as one."""
    return int(busy + 0.5)


def choose_wait_policy(busy: float) -> str | None:
    """PASSIVE when another program keeps half a core or more busy, else None (torch's default)."""
    return "PASSIVE" if busy_whole_cores(busy) >= 1 else None


def look_before_torch() -> None:
    """Measure the machine and set OMP_WAIT_POLICY, once, if torch is not loaded and the user set none."""
    global BUSY_CORES, WAIT_POLICY
    import sys

    if "torch" in sys.modules or WAIT_POLICY is not None:
        return
    BUSY_CORES = busy_elsewhere()
    WAIT_POLICY = choose_wait_policy(BUSY_CORES)
    if WAIT_POLICY is not None:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
