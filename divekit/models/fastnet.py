"""A small CNN designed for fast training on a CPU (the `fast` recipe).

Measured on a 2-core CPU (docs/RESULTS.md), a conv-BN-ReLU-pool network of this size spends more
than half its step in memory-bound passes (batch norm, the ReLU backward, max pooling) rather than in
convolutions; pooling first cuts that to ~42% of the step. So each block pools *before* batch norm
and ReLU (conv -> max-pool -> BN -> ReLU, as airbench does): max pooling
commutes with the monotone ReLU, and BN then touches a quarter of the activations. In eval mode
the model can average the logits of each image and its mirror image (test-time augmentation).

Where to spend the multiply-adds was measured too: a fourth block at 3x3 (128 channels) costs
little (its activations are tiny) and lifts accuracy more than widening the early blocks, which
carry most of the memory traffic. Widths (16, 32, 64, 128) train in about 60% of the time of the
earlier (24, 48, 96) and reach higher accuracy in the same number of epochs (docs/RESULTS.md).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .registry import register_model


def conv_pool_bn(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class FastNet(nn.Module):
    """conv-pool-BN-ReLU blocks (pooling after all but the last), global max pool, linear head.

    Each pooling halves the resolution, so inputs need at least 2 ** (len(widths) - 1) pixels a side.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64, 128),
                 tta: bool = True):
        super().__init__()
        blocks, c = [], in_channels
        for i, w in enumerate(widths):
            blocks.append(conv_pool_bn(c, w, pool=i < len(widths) - 1))
            c = w
        self.body = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
        self.tta = tta

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.body(X))  # (N, num_classes)
        if self.tta and not self.training:
            logits = (logits + self.head(self.body(X.flip(-1)))) / 2
        return logits


# The fast recipe: 0.923 Fashion-MNIST test accuracy (mean of 3 seeds) in 4 epochs, 25-45 s end to
# end on a 2-core AMD EPYC, 83 s at best on the Intel host of earlier sessions (docs/RESULTS.md). Evaluating only after the last epoch saves ~10% of the time.
@register_model("fastnet", defaults={"data": "fashion-mnist", "lr": 0.2, "batch_size": 256, "epochs": 4, "eval_every": 4,
                                     "momentum": 0.9, "weight_decay": 5e-4, "scheduler": "onecycle",
                                     "label_smoothing": 0.1, "augment": "flip", "channels_last": True},
                tags=("image", "cnn"))
def fastnet(num_classes: int = 10, in_shape=(1, 28, 28), widths: Sequence[int] = (16, 32, 64, 128), tta: bool = True):
    """A 4-block CNN built for CPU speed: conv-pool-BN-ReLU blocks, flip test-time augmentation."""
    return FastNet(in_shape[0], num_classes, widths, tta)
