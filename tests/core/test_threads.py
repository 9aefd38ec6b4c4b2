"""The CPU thread count of a run: the flag, then $DIVEKIT_THREADS, then $OMP_NUM_THREADS, then physical cores."""

import os

import pytest

from divekit.core.device import physical_cores, resolve_threads
from divekit.core.errors import ConfigError


def test_physical_cores_are_within_the_affinity_set():
    assert 1 <= physical_cores() <= len(os.sched_getaffinity(0))


def test_threads_resolve_flag_then_environment_then_cores(monkeypatch):
    monkeypatch.delenv("DIVEKIT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads(None) == physical_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads(None) == 3
    monkeypatch.setenv("DIVEKIT_THREADS", "2")
    assert resolve_threads(None) == 2 and resolve_threads(5) == 5
    monkeypatch.setenv("DIVEKIT_THREADS", "two")
    with pytest.raises(ConfigError, match="DIVEKIT_THREADS"):
        resolve_threads(None)


def test_hyperthread_siblings_count_once(monkeypatch):
    """4 logical CPUs on 2 cores (2 siblings each) are 2 physical cores; a CPU outside the affinity
    set does not count."""
    import io

    from divekit.core import device

    cpuinfo = "".join(f"processor\t: {cpu}\nphysical id\t: 0\ncore id\t\t: {cpu // 2}\n\n" for cpu in range(4))
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(device, "open", lambda path: io.StringIO(cpuinfo), raising=False)
    assert device.physical_cores() == 2
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1})
    assert device.physical_cores() == 1
