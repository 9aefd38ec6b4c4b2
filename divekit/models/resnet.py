"""ResNet (book 8.6): a stem, four stages of residual blocks, global average pooling, one dense layer.

ResNet-18 layer by layer for a 1x96x96 image (the size the book trains at):

    b1: 7x7 conv 64 stride 2, BN, ReLU, 3x3 max pool stride 2   -> (64, 24, 24)
    b2: 2 Residual blocks, 64 channels                           -> (64, 24, 24)
    b3: 2 Residual blocks, 128 channels, the first with stride 2 -> (128, 12, 12)
    b4: 2 Residual blocks, 256 channels                          -> (256, 6, 6)
    b5: 2 Residual blocks, 512 channels                          -> (512, 3, 3)
    last: global average pool, flatten, dense num_classes

4 conv layers per stage * 4 stages + the stem conv + the dense layer = 18 layers. ResNet-34 has
(3, 4, 6, 3) blocks per stage; ResNet-50 has (3, 4, 6, 3) bottleneck blocks whose outputs are 4x
wider (256 ... 2048 channels). Any image size works.

`resnet18-cifar` is the book's d2l.resnet18 (13.6, trained on CIFAR-10 in 14.1): the same stages
after a small stem, a 3x3 stride-1 conv without max pooling, so a 3x32x32 image keeps its 32x32
in b2 and ends at 512x4x4 before the pooling.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch.nn as nn

from .layers import BookNet, Bottleneck, Residual, init_cnn, stem
from .registry import register_model


def resnet_stage(block: type[Residual] | type[Bottleneck], num_residuals: int, in_channels: int, num_channels: int,
                 first_block: bool = False) -> tuple[nn.Sequential, int]:
    """The book's ResNet.block: num_residuals blocks; returns the stage and its output channels.

    The first block of every stage but the first (which follows the stem's pooling) halves H and
    W with stride 2; a first block that changes the shape gets the 1x1 conv shortcut.
    """
    blks = []
    for i in range(num_residuals):
        strides = 2 if i == 0 and not first_block else 1
        out_channels = block.expansion * num_channels
        blks.append(block(in_channels, num_channels, use_1x1conv=strides != 1 or in_channels != out_channels,
                          strides=strides))
        in_channels = out_channels
    return nn.Sequential(*blks), in_channels


def small_stem(in_channels: int, num_channels: int = 64) -> nn.Sequential:
    """d2l.resnet18's b1 for small images (book 13.6): 3x3 conv (stride 1, padding 1), BN, ReLU; H and W are kept."""
    return nn.Sequential(nn.Conv2d(in_channels, num_channels, kernel_size=3, stride=1, padding=1),
                         nn.BatchNorm2d(num_channels), nn.ReLU())


class ResNet(BookNet):
    """Stem b1, one stage per (num_residuals, num_channels) in `arch` (b2, b3, ...), then `last`: pool, flatten, dense.

    `small_input` swaps the 7x7 stride-2 stem and its max pool for `small_stem` (32x32 images)."""

    def __init__(self, arch: Sequence[tuple[int, int]], num_classes: int = 10, in_shape: Sequence[int] = (1, 96, 96),
                 block: type[Residual] | type[Bottleneck] = Residual, small_input: bool = False):
        layers = OrderedDict(b1=(small_stem if small_input else stem)(in_shape[0], 64))
        channels = 64
        for i, (num_residuals, num_channels) in enumerate(arch):
            layers[f"b{i + 2}"], channels = resnet_stage(block, num_residuals, channels, num_channels, first_block=i == 0)
        layers["last"] = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(channels, num_classes))
        super().__init__()
        self.net = nn.Sequential(layers)
        self.net.apply(init_cnn)


# The book trains ResNet-18 only; the deeper variants take the same settings.
_DEFAULTS = {"data": "fashion-mnist", "lr": 0.01, "batch_size": 128, "epochs": 10, "resize": 96}
_TAGS = ("image", "cnn")
# book 14.1 on CIFAR-10: d2l.resnet18 (the 32x32 stem) on the images as they are, Adam, lr 0.001, batch 256
_BOOK_14_1 = {"optimizer": "adam", "lr": 0.001, "batch_size": 256, "epochs": 10}


@register_model("resnet18", defaults=_DEFAULTS, tags=_TAGS,
                per_data={"cifar10": {**_BOOK_14_1, "resize": None, "model_args": {"small_input": True}}})
def resnet18(num_classes: int = 10, in_shape=(1, 96, 96), small_input: bool = False):
    """ResNet-18: (2, 2, 2, 2) residual blocks of 64, 128, 256, 512 channels (book 8.6); on cifar10 it is
    book 14.1's (small_input: a 3x3 stride-1 stem, no max pool; `--model-arg small_input=false` for 8.6's)."""
    return ResNet(((2, 64), (2, 128), (2, 256), (2, 512)), num_classes, tuple(in_shape), small_input=small_input)


@register_model("resnet18-cifar", defaults={"data": "cifar10", **_BOOK_14_1}, tags=_TAGS)
def resnet18_cifar(num_classes: int = 10, in_shape=(3, 32, 32)):
    """ResNet-18 for 32x32 images, the book's d2l.resnet18: a 3x3 stride-1 stem, no max pool (book 13.6, 14.1)."""
    return ResNet(((2, 64), (2, 128), (2, 256), (2, 512)), num_classes, tuple(in_shape), small_input=True)


@register_model("resnet34", defaults=_DEFAULTS, tags=_TAGS)
def resnet34(num_classes: int = 10, in_shape=(1, 96, 96)):
    """ResNet-34: (3, 4, 6, 3) residual blocks of 64, 128, 256, 512 channels (He et al. 2016; book 8.6 exercise)."""
    return ResNet(((3, 64), (4, 128), (6, 256), (3, 512)), num_classes, tuple(in_shape))


@register_model("resnet50", defaults=_DEFAULTS, tags=_TAGS)
def resnet50(num_classes: int = 10, in_shape=(1, 96, 96)):
    """ResNet-50: (3, 4, 6, 3) bottleneck blocks with 256 ... 2048 output channels (He et al. 2016; book 8.6 exercise)."""
    return ResNet(((3, 64), (4, 128), (6, 256), (3, 512)), num_classes, tuple(in_shape), block=Bottleneck)
