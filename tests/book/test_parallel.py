"""Data parallelism from scratch (divekit.book.parallel, book 13.5): k replicas on k devices train
exactly like one device on the whole minibatch."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from divekit.book.parallel import allreduce, devices, replicate, split_batch, train_batch
from divekit.core.errors import ConfigError


def small_cnn() -> nn.Module:
    """A LeNet-like network without batch norm, in float64."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 3),
    ).double()


def batches(num, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g))
            for _ in range(num)]


def test_split_batch_covers_the_batch_in_order():
    X, y = torch.arange(14.0).reshape(7, 2), torch.arange(7)
    X_shards, y_shards = split_batch(X, y, [torch.device("cpu")] * 3)
    assert [len(s) for s in y_shards] == [3, 2, 2]
    assert torch.equal(torch.cat(X_shards), X) and torch.equal(torch.cat(y_shards), y)
    with pytest.raises(ConfigError, match="cannot be split"):
        split_batch(X[:2], y[:2], [torch.device("cpu")] * 3)
    with pytest.raises(ConfigError, match="same number"):
        split_batch(X, y[:3], [torch.device("cpu")] * 2)


def test_allreduce_sums_in_place_on_every_device():
    data = [torch.tensor([1.0, 2.0]), torch.tensor([10.0, 20.0]), torch.tensor([100.0, 200.0])]
    allreduce(data)
    for t in data:
        assert torch.equal(t, torch.tensor([111.0, 222.0]))


def test_devices_falls_back_to_cpu_replicas():
    if torch.cuda.is_available():
        assert all(d.type == "cuda" for d in devices())
    else:
        assert devices(3) == [torch.device("cpu")] * 3 and devices() == [torch.device("cpu")]


@pytest.mark.parametrize("k, n", [(2, 8), (3, 7)])  # 7 over 3 devices: unequal shards (3, 2, 2)
def test_replicas_train_like_one_device_on_the_full_batch(k, n):
    model = small_cnn()
    single = small_cnn()
    replicas = replicate(model, devices(k) if torch.cuda.device_count() >= k else [torch.device("cpu")] * k)
    opt = torch.optim.SGD(single.parameters(), lr=0.5)
    for X, y in batches(4, n):
        loss = train_batch(replicas, X, y, F.cross_entropy, lr=0.5)
        opt.zero_grad()
        full = F.cross_entropy(single(X), y)
        full.backward()
        opt.step()
        assert loss == pytest.approx(full.item(), rel=1e-12)
    reference, start = single.state_dict(), model.state_dict()
    moved = 0.0
    for replica in replicas:
        for name, p in replica.state_dict().items():
            torch.testing.assert_close(p.cpu(), reference[name], rtol=1e-12, atol=1e-12)
            moved += float((p.cpu() - start[name]).abs().sum())
    assert moved > 1e-3  # the replicas did train


def test_without_allreduce_replicas_drift_apart():
    """The all-reduce is what keeps replicas equal: stepping on shard gradients alone diverges."""
    replicas = replicate(small_cnn(), [torch.device("cpu")] * 2)
    (X, y), = batches(1, 8)
    for replica, Xs, ys in zip(replicas, X.chunk(2), y.chunk(2)):
        F.cross_entropy(replica(Xs), ys).backward()
        with torch.no_grad():
            for p in replica.parameters():
                p -= 0.5 * p.grad
    a, b = (torch.cat([p.flatten() for p in r.parameters()]) for r in replicas)
    assert (a - b).abs().max() > 1e-4
