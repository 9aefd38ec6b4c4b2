"""Choosing and using devices: cuda, mps or cpu."""

from __future__ import annotations

import os

import torch
import torch.distributed

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
