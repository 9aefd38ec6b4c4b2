"""GoogLeNet (book 8.4): a stem, nine Inception blocks in three groups, global average pooling, one dense layer.

Layer by layer for a 1x96x96 image (the size the book trains at):

    b1: 7x7 conv 64 stride 2, ReLU, 3x3 max pool stride 2             -> (64, 24, 24)
    b2: 1x1 conv 64, ReLU, 3x3 conv 192, ReLU, max pool                -> (192, 12, 12)
    b3: Inception -> 256, Inception -> 480, max pool                   -> (480, 6, 6)
    b4: five Inceptions -> 512, 512, 512, 528, 832, max pool           -> (832, 3, 3)
    b5: Inception -> 832, Inception -> 1024, global average pool, flatten -> 1024
    dense num_classes

Every pool is padded, so any image size works; H and W are halved five times.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch.nn as nn

from .layers import BookNet, Inception, init_cnn, stem
from .registry import register_model


class GoogLeNet(BookNet):
    """GoogLeNet blocks b1-b5 and a dense layer (named `last`), with the book's Xavier init."""

    def __init__(self, num_classes: int = 10, in_shape: Sequence[int] = (1, 96, 96)):
        b3 = [Inception(192, 64, (96, 128), (16, 32), 32), Inception(256, 128, (128, 192), (32, 96), 64)]
        b4 = [Inception(480, 192, (96, 208), (16, 48), 64), Inception(512, 160, (112, 224), (24, 64), 64),
              Inception(512, 128, (128, 256), (24, 64), 64), Inception(512, 112, (144, 288), (32, 64), 64),
              Inception(528, 256, (160, 320), (32, 128), 128)]
        b5 = [Inception(832, 256, (160, 320), (32, 128), 128), Inception(832, 384, (192, 384), (48, 128), 128)]
        super().__init__()
        self.net = nn.Sequential(OrderedDict(
            b1=stem(in_shape[0], 64, with_bn=False),
            b2=nn.Sequential(nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
                             nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
                             nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            b3=nn.Sequential(*b3, nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            b4=nn.Sequential(*b4, nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            b5=nn.Sequential(*b5, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()),
            last=nn.Linear(b5[-1].out_channels, num_classes),
        ))
        self.net.apply(init_cnn)


@register_model("googlenet", defaults={"data": "fashion-mnist", "lr": 0.01, "batch_size": 128, "epochs": 10, "resize": 96}, tags=("image", "cnn"))
def googlenet(num_classes: int = 10, in_shape=(1, 96, 96)):
    """GoogLeNet with Inception blocks (book 8.4)."""
    return GoogLeNet(num_classes, tuple(in_shape))
