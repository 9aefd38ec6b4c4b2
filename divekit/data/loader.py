"""Minibatches sliced from tensors held in memory (or on the accelerator).

Datasets that fit in memory are decoded once into tensors; a batch is an index into them.
Shuffling uses a permutation seeded by (seed, epoch), so every epoch is reproducible, a resumed
run sees the same batches as an uninterrupted one, and under `torch.distributed` all ranks share
the permutation and each takes its own slice of it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..core import dist
from ..core.errors import ConfigError

# transform(batch, generator) -> batch, applied to each minibatch on its device
BatchTransform = Callable[[tuple[torch.Tensor, ...], torch.Generator], tuple[torch.Tensor, ...]]


class Sharded:
    """The process a loader serves: `rank` of `world_size`, given or read from torch.distributed."""

    _rank: int | None = None
    _world_size: int | None = None

    @property
    def rank(self) -> int:
        return dist.rank() if self._rank is None else self._rank

    @property
    def world_size(self) -> int:
        return dist.world_size() if self._world_size is None else self._world_size


class TensorLoader(Sharded):
    """Iterate over minibatches of equally long tensors.

    Args:
        tensors: tensors sharing their first dimension (examples), e.g. images and labels.
        batch_size: examples per batch (per process under torch.distributed).
        shuffle: draw a new seeded permutation every epoch (call `set_epoch`).
        drop_last: drop the last, smaller batch.
        transform: a batched transform applied to every batch, e.g. uint8 -> float and augment.
        device: move the tensors there once, so batches need no host-to-device copy.
        seed: seeds the permutation and the transform's random generator.
        rank, world_size: shard examples across processes; default: read from torch.distributed.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        transform: BatchTransform | None = None,
        device: torch.device | str | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        if not tensors:
            raise ValueError("TensorLoader needs at least one tensor")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"tensors differ in length: {[len(t) for t in tensors]}")
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        self.tensors = tuple(t.to(device) for t in tensors) if device is not None else tensors
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.transform, self.seed = transform, seed
        self._rank, self._world_size = rank, world_size
        self.epoch = 0

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation (and augmentation randomness) of this epoch."""
        self.epoch = epoch

    @property
    def num_examples(self) -> int:
        """Examples this process sees per epoch (before drop_last)."""
        return len(self.tensors[0]) // self.world_size

    def __len__(self) -> int:
        n, b = self.num_examples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _indices(self) -> torch.Tensor | None:
        n, world = len(self.tensors[0]), self.world_size
        if not self.shuffle and world == 1:
            return None  # plain slices: views, no copy
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        per_rank = n // world  # every rank gets the same number of examples
        return order[self.rank * per_rank : (self.rank + 1) * per_rank].to(self.device)

    def __iter__(self):
        idx = self._indices()
        gen = None
        if self.transform is not None:
            # per-rank stream, so ranks augment differently yet reproducibly
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1009 + self.rank + 1)
        n, b = self.num_examples, self.batch_size
        stop = n - n % b if self.drop_last else n
        for start in range(0, stop, b):
            if idx is None:
                batch = tuple(t[start : start + b] for t in self.tensors)
            else:
                sel = idx[start : start + b]
                batch = tuple(t.index_select(0, sel) for t in self.tensors)
            if self.transform is not None:
                batch = self.transform(batch, gen)
            yield batch


def split(n: int, fractions: Sequence[float], seed: int = 0) -> list[torch.Tensor]:
    """Split range(n) into disjoint random index sets of the given fractions (last takes the rest)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out, start = [], 0
    for i, f in enumerate(fractions):
        stop = n if i == len(fractions) - 1 else start + round(f * n)
        out.append(order[start:stop])
        start = stop
    return out


def stratified_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of `n` examples drawn at random, as evenly over the classes as they allow (sorted).

    Classes take turns in a seeded random order, each giving its next randomly chosen example,
    so every class gets n // num_classes or one more (fewer only if it runs out).
    """
    if not 0 < n <= len(labels):
        raise ConfigError(f"a subset needs between 1 and {len(labels)} examples, got {n}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    shuffled = labels[order]
    # rank of each example within its class in the shuffled order: 0 for the first of its class, ...
    by_class = torch.argsort(shuffled, stable=True)
    counts = torch.bincount(shuffled)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(by_class)
    rank[by_class] = torch.arange(len(labels)) - starts.repeat_interleave(counts)
    # take all rank-0 examples (one per class), then rank 1, ...; ties broken by the class's random turn
    class_turn = torch.randperm(len(counts), generator=g)[shuffled]
    key = rank * len(counts) + class_turn
    return order[torch.argsort(key)[:n]].sort().values
