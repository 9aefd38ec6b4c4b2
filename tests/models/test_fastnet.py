"""The `fast` recipe and its model."""

import pytest
import torch

import divekit as dk
from divekit.models.fastnet import FastNet
from divekit.train.api import resolve_config


def test_recipe_sets_everything_and_flags_still_win():
    cfg = resolve_config(recipe="fast")
    assert (cfg.model, cfg.data, cfg.scheduler, cfg.channels_last) == ("fastnet", "fashion-mnist", "onecycle", True)
    assert resolve_config(recipe="fast", epochs=2, lr=0.05).epochs == 2
    with pytest.raises(dk.ConfigError, match="Did you mean 'fast'"):
        resolve_config(recipe="fats")


def test_test_time_augmentation_is_mirror_symmetric_in_eval_only():
    torch.manual_seed(0)
    model = FastNet(widths=(4, 8, 8))
    x = torch.randn(3, 1, 28, 28)
    model.eval()
    torch.testing.assert_close(model(x), model(x.flip(-1)))  # logits averaged over the image and its mirror
    model.train()
    assert not torch.allclose(model(x), model(x.flip(-1)))


def test_pooling_before_batch_norm_keeps_shapes():
    model = dk.create_model("fastnet", in_shape=(1, 28, 28), num_classes=10)
    shapes = []
    x = torch.randn(2, 1, 28, 28)
    for block in model.body:
        x = block(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(16, 14, 14), (32, 7, 7), (64, 3, 3), (128, 3, 3)]
    assert isinstance(model.body[0][1], torch.nn.MaxPool2d) and isinstance(model.body[0][2], torch.nn.BatchNorm2d)


def test_fastnet_learns_digits(tmp_path):
    result = dk.train(model="fastnet", data="digits", epochs=6, batch_size=64, lr=0.1, augment=None,
                      out=str(tmp_path / "r"), progress=False)
    assert result.metrics["test_acc"] >= 0.9
