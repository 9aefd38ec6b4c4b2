"""Training on several processes (gloo on 127.0.0.1, 2 CPU processes): DDP in the trainer equals a
single process on the concatenated batches, resume works under DDP, a crashed rank ends the job
with an error, and `torchrun -m divekit train` writes one run folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file as load
from safetensors.torch import save_file
from torch import nn

from divekit.book.parallel import free_port, launch, train_batch_distributed
from divekit.core import dist
from divekit.core.errors import ConfigError
from divekit.data.loader import TensorLoader
from divekit.data.registry import DataBundle
from divekit.data.text import SeqLoader
from divekit.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
WORLD = 2
PER_RANK_BATCH = 4
EPOCHS = 2


def _env(**extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _tensors():
    g = torch.Generator().manual_seed(7)
    X = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()
    return X[:24], y[:24], X[24:], y[24:]  # 24 training examples: 3 steps of 2 x 4 per epoch; 16 test


def _bundle(**shard) -> DataBundle:
    X, y, Xt, yt = _tensors()
    train = TensorLoader(X, y, batch_size=PER_RANK_BATCH, shuffle=True, seed=0, **shard)
    test = TensorLoader(Xt, yt, batch_size=PER_RANK_BATCH, **shard)
    return DataBundle("toy", "classification", train, test, classes=["a", "b", "c"])


def _config(**kw) -> TrainConfig:
    return TrainConfig(epochs=EPOCHS, lr=0.5, momentum=0.9, batch_size=PER_RANK_BATCH, device="cpu", **kw)


def _ddp_worker(rank: int, world: int, out: str) -> None:
    """Runs in each of the 2 processes."""
    from torch.nn.parallel import DistributedDataParallel

    from divekit.train.api import train
    from divekit.train.trainer import Trainer

    torch.set_num_threads(1)
    out = Path(out)
    # 1. the trainer under DDP, on this rank's shard of every batch
    trainer = Trainer(_mlp(), _bundle(), _config())
    assert isinstance(trainer.train_model, DistributedDataParallel) and not isinstance(trainer.model, DistributedDataParallel)
    trainer.fit()
    save_file(trainer.model.state_dict(), out / f"trainer{rank}.safetensors")
    (out / f"history{rank}.json").write_text(json.dumps(trainer.history))
    # --time-limit runs out on rank 0 only: both ranks must still stop after the same step
    limited = Trainer(_mlp(), _bundle(), _config(time_limit=1e-9 if rank == 0 else 1e3, log_every=1))
    limited.fit()
    save_file(limited.model.state_dict(), out / f"limited{rank}.safetensors")
    (out / f"limited{rank}.json").write_text(json.dumps(limited.history))
    # 2. the book's by-hand version: gradients summed with all_reduce
    model = _mlp()
    X, y, _, _ = _tensors()
    shard = slice(rank * PER_RANK_BATCH, (rank + 1) * PER_RANK_BATCH)
    for step in range(3):
        batch = slice(step * WORLD * PER_RANK_BATCH, (step + 1) * WORLD * PER_RANK_BATCH)
        train_batch_distributed(model, X[batch][shard], y[batch][shard], F.cross_entropy, lr=0.5)
    save_file(model.state_dict(), out / f"scratch{rank}.safetensors")
    # 3. a registered run, straight and interrupted + resumed; rank 0 writes the run folders
    common = dict(model="softmax-regression", data="digits", device="cpu", batch_size=32, progress=False)
    straight = train(epochs=2, out=str(out / "straight"), **common)
    train(epochs=1, out=str(out / "resumed"), **common)
    dist.barrier()  # a resume is normally a new launch; here rank 0 must have written the checkpoint
    resumed = train(resume=out / "resumed", epochs=2, progress=False)
    save_file(straight.model.state_dict(), out / f"straight{rank}.safetensors")
    save_file(resumed.model.state_dict(), out / f"resumed{rank}.safetensors")


def _single_process_replay():
    """One process on the concatenation of the ranks' batches: the same global minibatches."""
    shards = [_bundle(rank=r, world_size=WORLD) for r in range(WORLD)]
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for epoch in range(EPOCHS):
        for b in shards:
            b.train.set_epoch(epoch)
        total, n = 0.0, 0
        for parts in zip(*(b.train for b in shards)):
            X, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            loss = F.cross_entropy(model(X), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(y), n + len(y)
        losses.append(total / n)
    _, _, Xt, yt = _tensors()
    with torch.no_grad():
        test_loss = F.cross_entropy(model(Xt), yt).item()
    return model.state_dict(), losses, test_loss


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    launch(_ddp_worker, WORLD, str(out), timeout=120)
    return out


@pytest.mark.slow  # starts Python processes: each imports torch
def test_ddp_ranks_agree_and_equal_one_process_on_the_concatenated_batch(ddp_run):
    ranks = [load(ddp_run / f"trainer{r}.safetensors") for r in range(WORLD)]
    for k in ranks[0]:
        assert torch.equal(ranks[0][k], ranks[1][k]), k  # bit-identical on every rank
    reference, losses, test_loss = _single_process_replay()
    start = _mlp().state_dict()
    for k, v in reference.items():
        torch.testing.assert_close(ranks[0][k], v, rtol=1e-10, atol=1e-12)
        assert (v - start[k]).abs().max() > 1e-3  # it trained
    history = json.loads((ddp_run / "history0.json").read_text())
    # metric sums are reduced over the ranks in float32
    assert [h["train_loss"] for h in history] == pytest.approx(losses, rel=1e-6)
    assert history[-1]["test_loss"] == pytest.approx(test_loss, rel=1e-6)  # each rank evaluated half the test set


@pytest.mark.slow  # starts Python processes: each imports torch
def test_time_limit_stops_all_ranks_at_the_same_step(ddp_run):
    histories = [json.loads((ddp_run / f"limited{r}.json").read_text()) for r in range(WORLD)]
    assert [len(h) for h in histories] == [1, 1]
    assert {k: v for k, v in histories[0][0].items() if k != "seconds"} == {
        k: v for k, v in histories[1][0].items() if k != "seconds"}  # same metrics, reduced over both ranks
    a, b = (load(ddp_run / f"limited{r}.safetensors") for r in range(WORLD))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # starts Python processes: each imports torch
def test_allreduce_by_hand_equals_one_process(ddp_run):
    ranks = [load(ddp_run / f"scratch{r}.safetensors") for r in range(WORLD)]
    model = _mlp()
    X, y, _, _ = _tensors()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(3):
        batch = slice(step * WORLD * PER_RANK_BATCH, (step + 1) * WORLD * PER_RANK_BATCH)
        opt.zero_grad()
        F.cross_entropy(model(X[batch]), y[batch]).backward()
        opt.step()
    for k, v in model.state_dict().items():
        assert torch.equal(ranks[0][k], ranks[1][k])
        torch.testing.assert_close(ranks[0][k], v, rtol=1e-12, atol=1e-12)


@pytest.mark.slow  # starts Python processes: each imports torch
def test_ddp_resume_continues_like_an_uninterrupted_run(ddp_run):
    for r in range(WORLD):
        straight, resumed = load(ddp_run / f"straight{r}.safetensors"), load(ddp_run / f"resumed{r}.safetensors")
        for k in straight:
            torch.testing.assert_close(resumed[k], straight[k], rtol=1e-6, atol=1e-7)
    metrics = json.loads((ddp_run / "resumed" / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert sorted(p.name for p in ddp_run.iterdir() if p.is_dir()) == ["resumed", "straight"]  # no stray folders


@pytest.mark.slow  # starts Python processes: each imports torch
def test_crashed_rank_ends_the_job_with_an_error(tmp_path):
    """Rank 1 fails on bad input while rank 0 trains: rank 0 stops with a clear error, no hang."""
    port = free_port()
    procs = []
    for rank, data in enumerate(("digits", "no-such-dataset")):
        env = _env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                   LOCAL_RANK=str(rank), DIVEKIT_DIST_TIMEOUT="60")
        cmd = [sys.executable, "-m", "divekit", "train", "softmax-regression", "--data", data, "--epochs", "50",
               "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run")]
        procs.append(subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    (_, err0), (_, err1) = results
    assert procs[1].returncode == 2 and "no-such-dataset" in err1
    assert procs[0].returncode == 2, err0
    assert "distributed training failed on rank 0 of 2" in err0 and "Traceback" not in err0


@pytest.mark.slow  # starts Python processes: each imports torch
def test_torchrun_end_to_end_writes_one_run_folder(tmp_path):
    out = tmp_path / "runs"
    args = ["softmax-regression", "--data", "digits", "--epochs", "2", "--device", "cpu", "--no-progress", "--json"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "divekit", "train",
           *args, "--out", str(out / "ddp")]
    proc = subprocess.run(cmd, env=_env(DIVEKIT_DIST_TIMEOUT="120"), cwd=tmp_path, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # only rank 0 reports
    summary = json.loads(lines[0])
    assert summary["epochs"] == 2 and summary["test_acc"] > 0.7
    assert [p.name for p in out.iterdir()] == ["ddp"]
    files = {p.name for p in (out / "ddp").iterdir()}
    assert {"config.json", "metrics.json", "checkpoint.safetensors", "best.safetensors"} <= files
    assert not any(name.startswith(".") for name in files)  # no temporary files left behind

    from divekit.cli import main

    assert main(["train", *args, "--out", str(out / "single")]) == 0
    single = json.loads((out / "single" / "metrics.json").read_text())
    ddp = json.loads((out / "ddp" / "metrics.json").read_text())
    assert len(ddp) == len(single) == 2 and [set(m) for m in ddp] == [set(m) for m in single]


# -- pieces that need no second process ---------------------------------------------------------


@pytest.mark.parametrize("sampling", ["random", "sequential"])
def test_seq_loader_ranks_take_their_rows_of_the_shared_batches(sampling):
    corpus = torch.arange(600)
    single = SeqLoader(corpus, 6, 5, sampling=sampling, seed=3, rank=0, world_size=1)
    ranks = [SeqLoader(corpus, 3, 5, sampling=sampling, seed=3, rank=r, world_size=2) for r in range(2)]
    for loader in (single, *ranks):
        loader.set_epoch(4)
    assert len(ranks[0]) == len(ranks[1]) == len(single) > 3
    assert ranks[0].batch_size == 3 and ranks[0].num_tokens == single.num_tokens // 2
    previous = None
    for (X, Y), (X0, Y0), (X1, Y1) in zip(single, *ranks):
        assert X0.shape == X1.shape == (3, 5)
        assert torch.equal(torch.cat([X0, X1]), X) and torch.equal(torch.cat([Y0, Y1]), Y)
        assert not set(X0.flatten().tolist()) & set(X1.flatten().tolist())  # disjoint text
        if sampling == "sequential" and previous is not None:
            assert torch.equal(X0[:, 0], previous[:, -1] + 1)  # row i continues row i of the last batch
        previous = X0


def test_seq_loader_too_short_for_all_ranks_names_the_total():
    with pytest.raises(Exception, match="batch_size=8"):
        SeqLoader(torch.arange(30), 4, 5, rank=0, world_size=2)


def test_single_process_helpers(monkeypatch):
    assert not dist.is_distributed() and dist.rank() == 0 and dist.world_size() == 1
    assert dist.broadcast_object("x") == "x"
    model = nn.Linear(2, 2)
    assert dist.data_parallel(model, torch.device("cpu")) is model and dist.unwrap(model) is model
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert not dist.launched_by_torchrun() and dist.init() is False
    monkeypatch.setenv(dist.TIMEOUT_ENV, "2.5")
    assert dist.timeout_s() == 2.5
    monkeypatch.setenv(dist.TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match="DIVEKIT_DIST_TIMEOUT"):
        dist.timeout_s()
    assert dist.backend_for("cpu") == "gloo"
    assert dist.is_collective_failure(RuntimeError("[gloo/transport/tcp/pair.cc:537] Connection reset by peer"))
    assert not dist.is_collective_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
