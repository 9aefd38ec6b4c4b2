"""DenseNet (book 8.7): dense blocks that concatenate rather than add, joined by transition layers.

For a 1x96x96 image (the size the book trains at), with 64 starting channels and growth rate 32:

    b1: 7x7 conv 64 stride 2, BN, ReLU, 3x3 max pool stride 2  -> (64, 24, 24)
    dense_blk1: 4 convs, +4*32 channels -> 192; tran_blk1: 1x1 conv to 96, avg pool -> (96, 12, 12)
    dense_blk2: -> 224; tran_blk2 -> (112, 6, 6)
    dense_blk3: -> 240; tran_blk3 -> (120, 3, 3)
    dense_blk4: -> (248, 3, 3)
    last: BN, ReLU, global average pool, flatten, dense num_classes

The smallest image it takes is 29x29 (each transition's 2x2 pool needs at least 2x2).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch.nn as nn

from .layers import BookNet, DenseBlock, init_cnn, stem, transition_block
from .registry import register_model


class DenseNet(BookNet):
    """Stem b1, dense_blk1..n with tran_blk1..n-1 (each halving channels and H, W), then `last`."""

    def __init__(self, num_classes: int = 10, in_shape: Sequence[int] = (1, 96, 96), num_channels: int = 64,
                 growth_rate: int = 32, arch: Sequence[int] = (4, 4, 4, 4)):
        layers = OrderedDict(b1=stem(in_shape[0], num_channels))
        for i, num_convs in enumerate(arch):
            layers[f"dense_blk{i + 1}"] = DenseBlock(num_convs, num_channels, growth_rate)
            num_channels += num_convs * growth_rate  # the dense block's output channels
            if i != len(arch) - 1:
                layers[f"tran_blk{i + 1}"] = transition_block(num_channels, num_channels // 2)
                num_channels //= 2
        layers["last"] = nn.Sequential(
            nn.BatchNorm2d(num_channels), nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.Linear(num_channels, num_classes),
        )
        super().__init__()
        self.net = nn.Sequential(layers)
        self.net.apply(init_cnn)


@register_model("densenet", defaults={"data": "fashion-mnist", "lr": 0.01, "batch_size": 128, "epochs": 10, "resize": 96}, tags=("image", "cnn"))
def densenet(num_classes: int = 10, in_shape=(1, 96, 96), growth_rate: int = 32, arch: Sequence[int] = (4, 4, 4, 4)):
    """DenseNet: 4 dense blocks of 4 convs, growth rate 32, transition layers halving channels (book 8.7)."""
    return DenseNet(num_classes, tuple(in_shape), growth_rate=growth_rate, arch=tuple(arch))
