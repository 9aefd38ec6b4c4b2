"""GAN runs end to end: resume restores both players' optimizer state, `divekit train dcgan --data
fashion-mnist` on a fixture in the real file layout (metrics of both players, a sample grid per
epoch, --resume, --json), `divekit generate` on the run, and the errors a GAN run gives."""

import json
import math

import numpy as np
import pytest
import torch
from helpers import last_json, write_idx
from PIL import Image

import divekit as dk
from divekit.cli import main
from divekit.core import plot
from divekit.core.checkpoint import Checkpoint
from divekit.train.api import load_run

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


@pytest.fixture
def fashion_fixture(tmp_path):
    """A tiny Fashion-MNIST in the real layout (FashionMNIST/raw/*-idx?-ubyte.gz): 32 + 8 images, dark
    like the real ones (pixels 0..63, mean 0.124), far from the mean pixel of an untrained DCGAN's (0.500)."""
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 32), ("t10k", 8)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 64, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return tmp_path / "data"


def test_dcgan_on_fashion_mnist_from_the_cli(fashion_fixture, tmp_path, capsys):
    """One epoch, then --resume to three: 24 steps of batches of 4, in which both players learn."""
    run_dir = tmp_path / "run"
    argv = ["train", "dcgan", "--data", "fashion-mnist", "--data-dir", str(fashion_fixture), "--model-arg", "width=4",
            "--batch-size", "4", "--epochs", "1", "--out", str(run_dir), "--no-plot", "--threads", "1", "--json"]
    assert main(argv) == 0
    summary = last_json(capsys.readouterr().out)
    assert {"train_loss_d", "train_loss_g", "train_d_real", "train_d_fake"} <= summary.keys()
    assert not any(k.startswith("test_") for k in summary)  # a GAN is not evaluated on held-out images
    grid = Image.open(run_dir / "samples" / "epoch_001.png")
    assert grid.size == (8 * 30 + 2, 8 * 30 + 2) and grid.mode == "L"  # 64 samples of 28 x 28, 2-pixel borders
    assert main(["train", "--resume", str(run_dir), "--epochs", "3", "--json"]) == 0
    assert last_json(capsys.readouterr().out)["epochs"] == 3
    assert (run_dir / "samples" / "epoch_003.png").is_file()
    assert len(Checkpoint(run_dir / "checkpoint.safetensors").meta["optimizer"]["param_groups"]) == 2

    # D learns to tell the data from G's images: an untrained D's loss is log 2 = 0.693 and it says 0.5 to
    # both; measured over seeds 0-5: loss_d 0.15-0.63 in every epoch, D(real) 0.64-0.87, D(fake) 0.14-0.50,
    # D(real) - D(fake) at least 0.19
    history = json.loads((run_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for h in history:
        assert math.isfinite(h["train_loss_g"]) and h["train_loss_d"] < math.log(2), h
        assert h["train_d_real"] - h["train_d_fake"] > 0.1, h
    assert sum(h["train_loss_d"] for h in history) / 3 < 0.6  # 0.33 (0.32-0.47 over seeds 0-5)
    # G moves towards the data: its images, the same 0.500 grey for every z untrained (per-pixel std
    # over the samples 0.0003), become darker (mean pixel 0.433; 0.426-0.461 over seeds 0-5) and
    # differ from one noise vector to the next (std 0.010; 0.009-0.017)
    assert main(["generate", str(run_dir), "--num", "64", "--out", str(tmp_path / "g.png"), "--json"]) == 0
    out = last_json(capsys.readouterr().out)
    assert out["shape"] == [1, 28, 28] and out["mean_pixel"] < 0.475, out
    model, _ = load_run(run_dir, "last")
    assert float(model.sample(64, torch.Generator().manual_seed(0)).std(0).mean()) > 0.004
    assert Image.open(tmp_path / "g.png").size == (8 * 30 + 2, 8 * 30 + 2)


@pytest.mark.parametrize("argv, message", [
    (["train", "dcgan", "--data", "gaussian-2d"], "dcgan generates square images"),
    (["train", "dcgan", "--data", "digits", "--optimizer", "sgd"], "--optimizer adam"),
    (["train", "gan-toy", "--grad-clip", "1"], "makes its own updates"),
])
def test_bad_gan_runs_exit_2_with_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_generate_samples_a_toy_gan_run_as_2d_points(tmp_path, capsys):
    toy_run(tmp_path, "toy", epochs=1)
    assert main(["generate", str(tmp_path / "toy"), "--num", "5", "--out", str(tmp_path / "p.csv"), "--json"]) == 0
    out = last_json(capsys.readouterr().out)
    points = np.loadtxt(tmp_path / "p.csv", delimiter=",")
    assert points.shape == (5, 2) and out["mean"] == pytest.approx(points.mean(0), abs=1e-4)
