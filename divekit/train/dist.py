"""What the trainer needs to know about torch.distributed, in one place.

Without an initialized process group every helper answers as a single process, so the same
code runs on one CPU, one GPU, or N processes under `torchrun`.
"""

from __future__ import annotations

import torch
import torch.distributed as td


def is_distributed() -> bool:
    return td.is_available() and td.is_initialized()


def rank() -> int:
    return td.get_rank() if is_distributed() else 0


def world_size() -> int:
    return td.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Only the main process prints progress and writes files."""
    return rank() == 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` over all processes (identity for a single process)."""
    if is_distributed():
        t = t.clone()
        td.all_reduce(t, op=td.ReduceOp.SUM)
    return t
