"""What the trainer needs to know about torch.distributed, in one place.

Without an initialized process group every helper answers as a single process, so the same
code runs on one CPU, one GPU, or N processes under `torchrun`:

    torchrun --nproc_per_node=2 -m divekit train lenet --data fashion-mnist

`divekit train` joins the process group that torchrun describes in the environment (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): NCCL on GPUs (process i on cuda:i), gloo on
the CPU, with a timeout ($DIVEKIT_DIST_TIMEOUT seconds) so that a dead process ends the job with
an error rather than a hang. The trainer then wraps the model in DistributedDataParallel.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os

import torch
import torch.distributed as td

from .errors import ConfigError, DivekitError


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


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every rank if `flag` is true on any rank (one all_reduce; `device`: cuda for NCCL)."""
    if not is_distributed():
        return flag
    return bool(all_reduce_sum(torch.tensor(float(flag), device=device)) > 0)


def broadcast_object(obj):
    """Rank 0's `obj` on every process (e.g. a run folder name that contains the time)."""
    if not is_distributed():
        return obj
    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if is_distributed():
        td.barrier()


@contextlib.contextmanager
def main_first():
    """Run the body on rank 0 first, then on the others: rank 0 downloads or caches a dataset
    once and the other ranks read what it wrote."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def sync_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank, so all ranks
    evaluate, and checkpoint, the same model."""
    if is_distributed():
        for b in model.buffers():
            td.broadcast(b, src=0)


def seed_ranks() -> None:
    """Give every rank its own random stream (dropout masks ...), derived from the stream they all
    share at this point (same seed, or the same restored checkpoint), so runs stay reproducible."""
    if world_size() > 1:
        base = int(torch.randint(0, 2**62, ()))
        torch.manual_seed(base + rank())


def data_parallel(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` wrapped in DistributedDataParallel when distributed (else `model` itself).

    DDP copies rank 0's weights to every rank, then averages the gradients over the ranks during
    backward, in buckets that overlap with the rest of the backward pass.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The user's module inside DistributedDataParallel and torch.compile wrappers."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and "_orig_mod" in model._modules:  # torch.compile
            model = model._modules["_orig_mod"]
        else:
            return model


# -- launching ---------------------------------------------------------------------------------

TIMEOUT_ENV = "DIVEKIT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0


def launched_by_torchrun() -> bool:
    """True in a process started by `torchrun` (or any launcher that sets its environment)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def local_rank() -> int:
    """This process's index on its machine: the GPU it uses."""
    return int(os.environ.get("LOCAL_RANK", 0))


def timeout_s() -> float:
    """Seconds a collective (or the start-up rendezvous) may wait for the other processes before
    failing: $DIVEKIT_DIST_TIMEOUT, default 600. A crashed rank then ends the job with an error
    instead of a hang."""
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"${TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return value


def backend_for(device: str = "auto") -> str:
    """nccl when the processes train on CUDA GPUs, else gloo (CPU)."""
    wants_cpu = device in ("cpu", "mps")
    return "nccl" if torch.cuda.is_available() and not wants_cpu and td.is_nccl_available() else "gloo"


def init(device: str = "auto", timeout: float | None = None) -> bool:
    """Join the process group that the launcher (torchrun) described in the environment.

    Returns False (and does nothing) outside such a launch, or when a group already exists.
    On CUDA each process takes GPU LOCAL_RANK.
    """
    if not launched_by_torchrun() or is_distributed():
        return False
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    seconds = timeout if timeout is not None else timeout_s()
    td.init_process_group(backend, timeout=datetime.timedelta(seconds=seconds))
    return True


# what gloo and NCCL say (as a plain RuntimeError) when a peer died or a collective timed out
_COLLECTIVE_FAILURES = ("gloo", "nccl", "connection closed", "connection reset", "timed out", "timeout")


def is_collective_failure(e: BaseException) -> bool:
    """True for errors of torch.distributed itself (not of the training code that called it)."""
    text = str(e).lower()
    return isinstance(e, td.DistError) or any(k in text for k in _COLLECTIVE_FAILURES)


def join_if_launched(device: str = "auto") -> None:
    """Join torchrun's process group if this process was launched by it and has not joined yet
    (a user's script that calls `fit` under torchrun); it is left when the process exits."""
    if init(device):
        atexit.register(destroy)


def destroy() -> None:
    if is_distributed():
        td.destroy_process_group()


@contextlib.contextmanager
def process_group(device: str = "auto", timeout: float | None = None):
    """`with process_group(): ...` joins torchrun's process group for the body (if launched by
    torchrun) and always leaves it. A collective that fails because another process died, or that
    waited past the timeout, becomes a DivekitError naming this rank."""
    started = init(device, timeout)
    try:
        yield
    except (td.DistError, RuntimeError) as e:
        if not (started and is_collective_failure(e)):
            raise
        what = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DivekitError(
            f"distributed training failed on rank {rank()} of {world_size()}: {what}. "
            f"Another process probably crashed (see its error above) or stalled longer than the timeout "
            f"(${TIMEOUT_ENV}, now {timeout if timeout is not None else timeout_s():g} s)."
        ) from e
    finally:
        if started:
            destroy()
