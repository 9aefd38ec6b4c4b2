"""GAN runs end to end: resume restores both players' optimizer state, `divekit train dcgan --data
fashion-mnist` on a fixture in the real file layout (metrics of both players, a sample grid per
epoch, --resume, --json), `divekit generate` on the run, and the errors a GAN run gives."""

import gzip
import struct

import numpy as np
import pytest
import torch
from helpers import last_json
from PIL import Image

import divekit as dk
from divekit.cli import main
from divekit.core import plot
from divekit.core.checkpoint import Checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def toy_run(tmp_path, name, **overrides):
    return dk.train(model="gan-toy", out=str(tmp_path / name), device="cpu", progress=False, threads=1,
                    data_args={"num_examples": 200}, **{"plot": False, **overrides})


def test_resume_restores_both_optimizers_and_gives_the_uninterrupted_run(tmp_path, monkeypatch):
    full = toy_run(tmp_path, "full", epochs=4)
    toy_run(tmp_path, "half", epochs=2, plot=True)
    panels = []  # the panel titles of each samples.png drawn
    points_figure = plot.points_figure

    def recording_points_figure(real, generated):
        panels.append(list(generated))
        return points_figure(real, generated)

    monkeypatch.setattr(plot, "points_figure", recording_points_figure)
    resumed = dk.train(resume=tmp_path / "half", epochs=4, progress=False)
    assert panels == [["epoch 1", "epoch 2", "epoch 3", "epoch 4"]]  # the epochs before the resume too
    a, b = (Checkpoint(tmp_path / run / "checkpoint.safetensors") for run in ("full", "half"))
    assert a.tensors.keys() == b.tensors.keys()
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)  # weights, both Adams' moments, RNG
    points = [c.meta["trainer"]["callbacks"]["SampleGrid"]["points"] for c in (a, b)]
    assert points[0].keys() >= {"1", "2"} and points[0] == points[1]  # the samples kept for samples.png
    groups = b.meta["optimizer"]["param_groups"]
    assert [g["name"] for g in groups] == ["generator", "discriminator"] and groups[1]["lr"] == pytest.approx(0.05)
    n_params = len(list(full.model.parameters()))
    assert {k.split(".")[1] for k in b.tensors if k.startswith("optim.")} == {str(i) for i in range(n_params)}
    assert [h["train_loss_d"] for h in resumed.history] == [h["train_loss_d"] for h in full.history]
    assert b.meta["task"] == "gan" and (tmp_path / "half" / "samples.png").is_file()


def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


@pytest.fixture
def fashion_fixture(tmp_path):
    """A tiny Fashion-MNIST in the real layout (FashionMNIST/raw/*-idx?-ubyte.gz): 32 + 8 images."""
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 32), ("t10k", 8)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return tmp_path / "data"


def test_dcgan_on_fashion_mnist_from_the_cli(fashion_fixture, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "dcgan", "--data", "fashion-mnist", "--data-dir", str(fashion_fixture), "--model-arg", "width=4",
            "--batch-size", "16", "--epochs", "1", "--out", str(run_dir), "--no-plot", "--threads", "1", "--json"]
    assert main(argv) == 0
    summary = last_json(capsys.readouterr().out)
    assert {"train_loss_d", "train_loss_g", "train_d_real", "train_d_fake"} <= summary.keys()
    assert not any(k.startswith("test_") for k in summary)  # a GAN is not evaluated on held-out images
    grid = Image.open(run_dir / "samples" / "epoch_001.png")
    assert grid.size == (8 * 30 + 2, 8 * 30 + 2) and grid.mode == "L"  # 64 samples of 28 x 28, 2-pixel borders
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--json"]) == 0
    assert last_json(capsys.readouterr().out)["epochs"] == 2
    assert (run_dir / "samples" / "epoch_002.png").is_file()
    assert len(Checkpoint(run_dir / "checkpoint.safetensors").meta["optimizer"]["param_groups"]) == 2

    assert main(["generate", str(run_dir), "--num", "9", "--out", str(tmp_path / "g.png"), "--json"]) == 0
    out = last_json(capsys.readouterr().out)
    assert out["shape"] == [1, 28, 28] and 0 <= out["mean_pixel"] <= 1
    assert Image.open(tmp_path / "g.png").size == (3 * 30 + 2, 3 * 30 + 2)


@pytest.mark.parametrize("argv, message", [
    (["train", "dcgan", "--data", "gaussian-2d"], "dcgan generates square images"),
    (["train", "dcgan", "--data", "digits", "--optimizer", "sgd"], "--optimizer adam"),
    (["train", "gan-toy", "--grad-clip", "1"], "makes its own updates"),
])
def test_bad_gan_runs_exit_2_with_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_generate_asks_a_language_model_run_for_its_prefix(tmp_path, capsys):
    toy_run(tmp_path, "toy", epochs=1)
    assert main(["generate", str(tmp_path / "toy"), "--num", "5", "--json"]) == 0
    assert len(last_json(capsys.readouterr().out)["mean"]) == 2  # 2-D points
