"""The machine around this process, looked at once when divekit is imported, before torch loads.

GNU OpenMP reads its wait policy once, when torch loads it. Spinning idle threads (its default)
keep small ops fast on a quiet machine (a GRU step ran 3.8x slower with PASSIVE), but when another
program holds a core they wait on it: a 2-thread LeNet step ran 4x slower. So, unless the user chose
(OMP_WAIT_POLICY or OMP_NUM_THREADS set), `import divekit` watches the CPUs this process may use for
50 ms: if other programs keep half a core or more busy, threads sleep while they wait (PASSIVE) and a
run uses the cores left free (`core.device.resolve_threads`); otherwise torch's defaults stay
(benchmarks/busy_core.py, docs/RESULTS.md). Pure Python: no torch.
"""

from __future__ import annotations

import os
import time

BUSY_CORES = 0.0  # cores' worth of CPU other programs used when divekit was imported (0.0: not measured)
WAIT_POLICY: str | None = os.environ.get("OMP_WAIT_POLICY")  # what this process runs with (None: torch's)


def _allowed_cpus() -> set[int] | None:
    """The CPUs this process may run on, or None where the system does not say."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def busy_elsewhere(interval: float = 0.05, stat: str = "/proc/stat") -> float:
    """How many cores' worth of CPU other processes use, over the next `interval` seconds (this one
    sleeps meanwhile), on the CPUs this process may run on, from the kernel's per-CPU counters; 0.0
    where they cannot be read (not Linux).

    Only those CPUs count: in a container or under `taskset`, the load of the rest of a large host
    takes no core from this process."""
    allowed = _allowed_cpus()

    def busy_total() -> dict[int, tuple[int, int]]:
        ticks = {}
        with open(stat) as f:
            for line in f:
                name, *fields = line.split()
                if not (name.startswith("cpu") and name[3:].isdigit()):
                    continue  # not a cpuN line (the first, "cpu", sums every CPU of the host)
                cpu = int(name[3:])
                if allowed is None or cpu in allowed:
                    user, nice, system, idle, iowait, irq, softirq, steal = map(int, fields[:8])
                    busy = user + nice + system + irq + softirq
                    ticks[cpu] = busy, busy + idle + iowait + steal
        return ticks

    try:
        before = busy_total()
        time.sleep(interval)
        after = busy_total()
    except (OSError, ValueError):
        return 0.0
    return sum((after[c][0] - b0) / max(after[c][1] - t0, 1) for c, (b0, t0) in before.items() if c in after)


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

    if "torch" in sys.modules or WAIT_POLICY is not None or "OMP_NUM_THREADS" in os.environ:
        return  # too late, or chosen already (torchrun sets OMP_NUM_THREADS: its ranks start together and
        # would count each other as the busy programs)
    BUSY_CORES = busy_elsewhere()
    WAIT_POLICY = choose_wait_policy(BUSY_CORES)
    if WAIT_POLICY is not None:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
