"""The CPU thread count of a run: the flag, then $DIVEKIT_THREADS, then $OMP_NUM_THREADS, then physical cores."""

import os

import pytest

from divekit.core import host
from divekit.core.device import physical_cores, resolve_threads
from divekit.core.errors import ConfigError


def test_physical_cores_are_within_the_affinity_set():
    assert 1 <= physical_cores() <= len(os.sched_getaffinity(0))


def test_threads_resolve_flag_then_environment_then_cores(monkeypatch):
    monkeypatch.delenv("DIVEKIT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(host, "BUSY_CORES", 0.0)  # nothing else was busy when divekit was imported
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


def test_a_run_leaves_the_cores_other_programs_kept_busy(monkeypatch):
    from divekit.core import device

    for name in ("DIVEKIT_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(device, "physical_cores", lambda: 2)
    for busy, threads in ((0.0, 2), (0.4, 2), (0.6, 1), (1.0, 1), (3.0, 1)):
        monkeypatch.setattr(host, "BUSY_CORES", busy)
        assert resolve_threads(None) == threads
    assert resolve_threads(2) == 2  # the flag wins
    monkeypatch.setenv("DIVEKIT_THREADS", "2")
    assert resolve_threads(None) == 2
