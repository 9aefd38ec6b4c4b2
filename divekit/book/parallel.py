"""Data parallelism from scratch (book 13.5 and 13.6).

A minibatch of n examples is cut into one shard per device; every device holds a replica of the
parameters and computes the gradient on its shard; the gradients are summed over the devices
(all-reduce) and every replica takes the same step, so the replicas stay identical. If each
shard's loss is its sum of per-example losses divided by n, the summed gradient is exactly the
gradient of the mean loss over the whole minibatch, so k devices train like one device on the
full batch, whatever the shard sizes.

Two versions, as the book builds up to torch's own:

- one process driving a list of devices (`split_batch`, `allreduce`, `replicate`, `train_batch`):
  the book's 13.5 code; on a machine without GPUs the "devices" are several CPU replicas;
- one process per device with torch.distributed (`allreduce_gradients`, `train_batch_distributed`,
  and `launch` to start the processes locally): what DistributedDataParallel does for the trainer
  (in buckets, overlapped with backward, and averaging rather than summing).
"""

from __future__ import annotations

import copy
import os
import socket
from typing import Callable, Sequence

import torch
import torch.distributed as td

from ..core import dist
from ..core.errors import ConfigError

# loss_fn(outputs, targets) -> the mean loss over the examples it is given (torch's default reduction)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def devices(k: int = 0) -> list[torch.device]:
    """The devices to split batches over: every GPU (the book's try_all_gpus), or the first k;
    without GPUs, k CPU "devices" (at least one), so the code runs on a laptop."""
    gpus = [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())]
    if gpus:
        return gpus[:k] if k else gpus
    return [torch.device("cpu")] * max(k, 1)


def split_batch(X: torch.Tensor, y: torch.Tensor, devices: Sequence[torch.device]):
    """Cut a minibatch into len(devices) shards along the examples and move shard i to devices[i].

    Shards differ in size by at most one example (torch.tensor_split); returns (X_shards, y_shards).
    """
    if len(X) != len(y):
        raise ConfigError(f"X and y must hold the same number of examples, got {len(X)} and {len(y)}")
    if len(X) < len(devices):
        raise ConfigError(f"a minibatch of {len(X)} examples cannot be split over {len(devices)} devices")
    X_shards = [x.to(d) for x, d in zip(torch.tensor_split(X, len(devices)), devices)]
    y_shards = [t.to(d) for t, d in zip(torch.tensor_split(y, len(devices)), devices)]
    return X_shards, y_shards


def allreduce(data: list[torch.Tensor]) -> None:
    """Sum the tensors of `data` (one per device) in place: each ends up holding the sum.

    The book's version: add everything into the first device's tensor, then copy the sum back.
    """
    for i in range(1, len(data)):
        data[0][:] += data[i].to(data[0].device)
    for i in range(1, len(data)):
        data[i][:] = data[0].to(data[i].device)


def replicate(model: torch.nn.Module, devices: Sequence[torch.device]) -> list[torch.nn.Module]:
    """An independent copy of `model` on every device (the book's get_params for each GPU)."""
    return [copy.deepcopy(model).to(d) for d in devices]


def _sgd(model: torch.nn.Module, lr: float) -> None:
    """w <- w - lr * grad for every parameter (the gradient is already that of the mean loss)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= lr * p.grad


def _shard_loss(model, X, y, loss_fn: LossFn, n: int) -> torch.Tensor:
    """The shard's share of the minibatch's mean loss: its mean loss times len(shard) / n."""
    return loss_fn(model(X), y) * (len(y) / n)


def train_batch(replicas: Sequence[torch.nn.Module], X: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                lr: float) -> float:
    """One minibatch SGD step on replicas[i] living on device i (book 13.5's train_batch).

    Each replica computes the gradient on its shard, the gradients are all-reduced parameter by
    parameter, and every replica takes the same step. Returns the minibatch's mean loss.
    """
    devs = [next(r.parameters()).device for r in replicas]
    X_shards, y_shards = split_batch(X, y, devs)
    n = len(X)
    losses = []
    for replica, X_shard, y_shard in zip(replicas, X_shards, y_shards):
        replica.zero_grad(set_to_none=True)
        loss = _shard_loss(replica, X_shard, y_shard, loss_fn, n)
        loss.backward()  # on its device; kernels of different GPUs run concurrently
        losses.append(loss.detach())
    params = [list(r.parameters()) for r in replicas]
    with torch.no_grad():
        for i in range(len(params[0])):
            allreduce([p[i].grad for p in params])
    for replica in replicas:
        _sgd(replica, lr)
    return float(sum(loss.to(devs[0]) for loss in losses))


# -- one process per device: torch.distributed ------------------------------------------------


def allreduce_gradients(model: torch.nn.Module) -> None:
    """Sum every parameter's gradient over all processes, by hand, one all_reduce per parameter."""
    for p in model.parameters():
        if p.grad is not None:
            td.all_reduce(p.grad, op=td.ReduceOp.SUM)


def train_batch_distributed(model: torch.nn.Module, X_shard: torch.Tensor, y_shard: torch.Tensor, loss_fn: LossFn,
                            lr: float, batch_size: int | None = None) -> float:
    """One minibatch SGD step where every process holds one shard of the minibatch.

    `batch_size` is the whole minibatch (all shards); None sums the shard sizes with one more
    all_reduce. Returns the minibatch's mean loss (the same on every process).
    """
    if batch_size is None:
        count = torch.tensor(float(len(y_shard)), device=y_shard.device)
        td.all_reduce(count)
        batch_size = int(count.item())
    model.zero_grad(set_to_none=True)
    loss = _shard_loss(model, X_shard, y_shard, loss_fn, batch_size)
    loss.backward()
    allreduce_gradients(model)
    _sgd(model, lr)
    total = loss.detach().clone()
    td.all_reduce(total)
    return float(total)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for the processes' rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, fn, world_size: int, port: int, timeout: float, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    with dist.process_group(device="cpu", timeout=timeout):
        fn(rank, world_size, *args)


def launch(fn: Callable, world_size: int, *args, timeout: float = 60.0) -> None:
    """Run fn(rank, world_size, *args) in `world_size` new CPU processes joined by gloo on 127.0.0.1
    (torchrun's job, for tests and notebooks). `fn` must be importable (defined at module level).

    If one process raises, the others are stopped and the error is raised here
    (torch.multiprocessing.ProcessRaisedException); a collective waits at most `timeout` seconds.
    """
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(fn, world_size, free_port(), timeout, args), nprocs=world_size, join=True)
