"""AlexNet (book 8.1), for one-channel images: the book trains it on Fashion-MNIST resized to 224x224.

Layer by layer for a 1x224x224 image:

    Conv2d 96@11x11 stride 4 pad 1 -> (96, 54, 54), ReLU, 3x3 max pool stride 2 -> (96, 26, 26)
    Conv2d 256@5x5 pad 2 -> (256, 26, 26), ReLU, max pool -> (256, 12, 12)
    Conv2d 384@3x3, Conv2d 384@3x3, Conv2d 256@3x3 (pad 1, ReLU each) -> (256, 12, 12), max pool -> (256, 5, 5)
    flatten -> 6400, dense 4096, ReLU, dropout 0.5, dense 4096, ReLU, dropout 0.5, dense 10

The smallest image it takes is 65x65 (the last pool then sees 3x3).
"""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from .layers import BookNet, dense_head, init_cnn, num_flat_features
from .registry import register_model


class AlexNet(BookNet):
    """Five conv layers (ReLU, three max pools) and three dense layers with dropout, with the book's Xavier init."""

    def __init__(self, num_classes: int = 10, in_shape: Sequence[int] = (1, 224, 224), dropout: float = 0.5):
        features = [
            nn.Conv2d(in_shape[0], 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Flatten(),
        ]
        num_inputs = num_flat_features(nn.Sequential(*features), in_shape, "alexnet")  # 256 * 5 * 5 for 224x224
        super().__init__()
        self.net = nn.Sequential(*features, *dense_head(num_inputs, num_classes, dropout))
        self.net.apply(init_cnn)


@register_model("alexnet", defaults={"data": "fashion-mnist", "lr": 0.01, "batch_size": 128, "epochs": 10, "resize": 224}, tags=("image", "cnn"))
def alexnet(num_classes: int = 10, in_shape=(1, 224, 224)):
    """AlexNet with dropout 0.5, adapted to one input channel (book 8.1)."""
    return AlexNet(num_classes, tuple(in_shape))
