"""The PyTorch course's MNIST network (784-512-256-128-64-10, ReLU, normalized inputs): its shape,
its normalization, its registered training settings, and one SGD step. Its >= 97% test accuracy
in 10 epochs is a measured figure (docs/RESULTS.md), not a test: it takes minutes."""

import pytest
import torch
import torch.nn as nn

import divekit as dk
from divekit.models.mlp import MNIST_MEAN, MNIST_STD
from divekit.train.api import resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mnist_mlp_layers_and_parameters():
    net = dk.create_model("mnist-mlp")
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 512), (512, 256), (256, 128), (128, 64),
                                                                   (64, 10)]
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 4
    assert sum(p.numel() for p in net.parameters()) == 575_050
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_mnist_mlp_normalizes_its_inputs():
    net = dk.create_model("mnist-mlp")
    x = torch.rand(4, 1, 28, 28)
    plain = nn.Sequential(*net)  # the same layers without the normalization
    torch.testing.assert_close(net(x), plain((x - 0.1307) / 0.3081))
    assert (MNIST_MEAN, MNIST_STD) == (0.1307, 0.3081)
    assert set(net.state_dict()) == set(plain.state_dict())  # constants, not weights: checkpoints stay plain


def test_mnist_mlp_has_the_course_settings():
    cfg = resolve_config(model="mnist-mlp")
    assert (cfg.data, cfg.optimizer, cfg.lr, cfg.momentum, cfg.batch_size, cfg.epochs) == ("mnist", "sgd", 0.01, 0.5,
                                                                                          64, 10)


def test_mnist_mlp_sgd_steps_lower_the_loss():
    torch.manual_seed(0)
    net = dk.create_model("mnist-mlp")
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < losses[0] - 0.01
