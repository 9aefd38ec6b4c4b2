"""The "gan" task (book 20.1): its alternating updates are the book's two-optimizer loop, one step
changes both networks, and a short seeded run of the toy GAN learns the data's mean and covariance."""

from pathlib import Path

import pytest
import torch

import divekit as dk
from divekit.book.demos import run_demo
from divekit.book.gan import moment_errors, update_D, update_G
from divekit.data.synthetic import gaussian_2d
from divekit.models import create_model
from divekit.ops.optim import build_optimizer
from divekit.tasks import make_task, task_name
from divekit.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def toy(seed=0):
    torch.manual_seed(seed)
    return create_model("gan-toy", context={"in_shape": (2,)})


def test_the_model_names_its_task_whatever_the_dataset():
    data = dk.load_dataset("digits", batch_size=8)
    assert task_name(toy(), data) == "gan"
    assert task_name(torch.nn.Linear(2, 2), data) == "classification"


def test_task_updates_equal_the_books_two_optimizers():
    """One optimizer over two parameter groups, each step skipping the network without gradients,
    makes the updates of the book's update_D / update_G with an Adam for each network."""
    X = gaussian_2d(64)
    cfg = TrainConfig(model="gan-toy", optimizer="adam", lr=0.005)
    ours, book = toy(), toy()
    task = make_task("gan", cfg)
    optimizer = build_optimizer("adam", task.param_groups(ours, cfg), lr=cfg.lr)
    trainer_D = torch.optim.Adam(book.discriminator.parameters(), lr=0.05)
    trainer_G = torch.optim.Adam(book.generator.parameters(), lr=0.005)
    for step, batch in enumerate(X.split(8)):
        torch.manual_seed(100 + step)
        sums, n = task.train_step(ours, (batch,), optimizer)
        torch.manual_seed(100 + step)
        Z = torch.randn(n, 2)  # the same noise the task draws
        loss_D = update_D(batch, Z, book.discriminator, book.generator, trainer_D)
        loss_G = update_G(Z, book.discriminator, book.generator, trainer_G)
        assert float(sums["loss_d"]) / n == pytest.approx(loss_D, abs=1e-6)
        assert float(sums["loss_g"]) / n == pytest.approx(loss_G, abs=1e-6)
    for (name, a), b in zip(ours.named_parameters(), book.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert not torch.allclose(ours.generator.weight, toy().generator.weight)  # they did move


def test_one_dcgan_step_changes_both_networks_and_reports_both_losses():
    torch.manual_seed(0)
    model = create_model("dcgan", context={"in_shape": (1, 28, 28)}, width=4)
    cfg = TrainConfig(model="dcgan", optimizer="adam", lr=0.005)
    task = make_task("gan", cfg)
    optimizer = build_optimizer("adam", task.param_groups(model, cfg), lr=cfg.lr)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sums, n = task.train_step(model, (torch.rand(6, 1, 28, 28), torch.zeros(6, dtype=torch.long)), optimizer)
    assert n == 6 and set(sums) == {"loss", "loss_d", "loss_g", "d_real", "d_fake"}
    assert float(sums["loss"]) == pytest.approx(float(sums["loss_d"] + sums["loss_g"]), rel=1e-6)
    assert 0 < float(sums["d_real"]) / n < 1 and 0 < float(sums["d_fake"]) / n < 1
    for net in ("generator", "discriminator"):
        changed = [k for k in before if k.startswith(net) and k.endswith("weight")
                   and not torch.equal(before[k], model.state_dict()[k])]
        assert changed, f"{net} did not change"
    with pytest.raises(dk.ConfigError, match="--optimizer adam"):
        task.param_groups(model, cfg.replace(optimizer="sgd"))


def test_toy_gan_learns_the_datas_mean_and_covariance(tmp_path):
    """`divekit demo gan`: the book's settings, seeded: 20 epochs of batches of 8 over the 1,000 points (~3 s)."""
    result = run_demo("gan", tmp_path, threads=1)
    real = dk.load_dataset("gaussian-2d", batch_size=8).train.tensors[0]
    untrained = moment_errors(toy(), real)
    assert untrained["mean_error"] > 1.5 and untrained["cov_rel_error"] > 0.9  # it starts far away
    assert result["mean_error"] < 0.2, result
    assert result["cov_rel_error"] < 0.1, result
    assert abs(result["d_real"] - 0.5) < 0.1  # D can no longer tell real from generated
    assert Path(result["plot"]).is_file()
