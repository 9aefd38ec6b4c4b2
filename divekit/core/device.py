"""Choosing and using devices: cuda, mps or cpu."""

from __future__ import annotations

import os

import torch
import torch.distributed

from . import host
from .errors import ConfigError


def num_gpus() -> int:
    return torch.cuda.device_count()


def best_device() -> torch.device:
    """cuda if present, else Apple's mps, else the cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' -> best_device(); otherwise check the named device exists. Under torchrun, 'cuda'
    (or 'auto' on a GPU machine) is the process's own GPU, cuda:LOCAL_RANK."""
    if isinstance(name, torch.device):
        return name
    dev = best_device() if name == "auto" else torch.device(name)
    if dev.type == "cuda" and dev.index is None and torch.distributed.is_available() and torch.distributed.is_initialized():
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))  # under torchrun: process i on GPU i
    if name == "auto":
        return dev
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= num_gpus()):
        raise ConfigError(f"--device {name}: this machine has {num_gpus()} CUDA GPU(s); use --device cpu or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {name}: MPS is not available here; use --device cpu or auto")
    return dev


def to_device(batch, device: torch.device):
    """Move a tensor, or a tuple/list/dict of them, to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def physical_cores() -> int:
    """The physical CPU cores this process may run on: its affinity set (os.sched_getaffinity, which
    honours taskset and cgroup cpusets) with hyperthread siblings counted once (/proc/cpuinfo's
    physical id and core id); the logical count where /proc/cpuinfo says nothing."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)
    cores, cpu, package = set(), None, "0"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key == "processor":
                    cpu = int(value)
                elif key == "physical id":
                    package = value
                elif key == "core id" and cpu in allowed:
                    cores.add((package, value))
    except (OSError, ValueError):
        cores = set()
    return max(1, len(cores) or len(allowed))


def resolve_threads(threads: int | None = None) -> int:
    """The CPU threads a run uses: `threads` if given, else $DIVEKIT_THREADS, else $OMP_NUM_THREADS
    (what torchrun sets per process), else `physical_cores()` less the cores other programs kept busy
    when divekit was imported (core.host; at least one)."""
    if threads is not None:
        return threads
    for name in ("DIVEKIT_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ConfigError(f"${name} must be a positive whole number of threads, got {value!r}")
            return int(value)
    return max(1, physical_cores() - host.busy_whole_cores(host.BUSY_CORES))
