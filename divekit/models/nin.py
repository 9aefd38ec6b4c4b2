"""Network in Network (book 8.3): NiN blocks and global average pooling instead of dense layers.

Layer by layer for a 1x224x224 image:

    nin_block 96, 11x11 stride 4  -> (96, 54, 54),  3x3 max pool stride 2 -> (96, 26, 26)
    nin_block 256, 5x5 pad 2      -> (256, 26, 26), max pool -> (256, 12, 12)
    nin_block 384, 3x3 pad 1      -> (384, 12, 12), max pool -> (384, 5, 5), dropout 0.5
    nin_block num_classes, 3x3 pad 1 -> (10, 5, 5), global average pool -> (10, 1, 1), flatten -> 10

With no dense layer it takes any image of at least 67x67; smaller ones fail in the forward pass.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from .layers import BookNet, init_cnn, nin_block
from .registry import register_model


class NiN(BookNet):
    """Four NiN blocks with max pooling and dropout; the last block has one channel per class."""

    def __init__(self, num_classes: int = 10, in_shape: Sequence[int] = (1, 224, 224), dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(
            nin_block(in_shape[0], 96, kernel_size=11, strides=4, padding=0),
            nn.MaxPool2d(3, stride=2),
            nin_block(96, 256, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2d(3, stride=2),
            nin_block(256, 384, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout(dropout),
            nin_block(384, num_classes, kernel_size=3, strides=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
        )
        self.net.apply(init_cnn)


@register_model("nin", defaults={"data": "fashion-mnist", "lr": 0.05, "batch_size": 128, "epochs": 10, "resize": 224}, tags=("image", "cnn"))
def nin(num_classes: int = 10, in_shape=(1, 224, 224)):
    """Network in Network (book 8.3)."""
    return NiN(num_classes, tuple(in_shape))
