"""The fully convolutional network (book 14.11): every pixel gets a class.

    body: ResNet-18 without its global pooling and dense layer   (3, H, W) -> (512, H/32, W/32)
    final_conv: 1x1 convolution to num_classes channels          -> (num_classes, H/32, W/32)
    transpose_conv: kernel 64, stride 32, padding 16             -> (num_classes, H, W)

The transposed convolution undoes the body's 32x downsampling: (h - 1) * 32 - 2 * 16 + 64 = 32 h.
It starts as bilinear interpolation (`bilinear_kernel`), which training then adjusts. Any input
size works: when H or W is not a multiple of 32 the output is cut back to H x W.

The book starts from an ImageNet-pretrained ResNet-18; `body` here is divekit's resnet18 (the zoo's
`resnet18(...).net` minus its `last` block), randomly initialized, so a divekit resnet18
checkpoint's `net.b1 ... net.b5` weights load into it by name.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn

from .layers import BookNet
from .registry import register_model
from .resnet import resnet18


def bilinear_kernel(in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
    """The book's bilinear upsampling kernel (14.10): a (in_channels, out_channels, k, k) transposed-conv
    weight that maps channel c to channel c with the tent filter

        filt[a, b] = (1 - |a - center| / factor) * (1 - |b - center| / factor),

    factor = ceil(k / 2), center = factor - 1 for odd k and factor - 0.5 for even k. With stride s,
    k = 2 s and padding s / 2 it is bilinear interpolation by a factor s (F.interpolate's
    align_corners=False) away from the border.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor  # (k,)
    filt = filt1d.reshape(-1, 1) * filt1d.reshape(1, -1)  # (k, k)
    weight = torch.zeros(in_channels, out_channels, kernel_size, kernel_size)
    n = min(in_channels, out_channels)
    weight[range(n), range(n)] = filt
    return weight


class FCN(BookNet):
    """ResNet-18 body, 1x1 conv to classes, 32x transposed-conv upsampling initialized bilinear."""

    def __init__(self, num_classes: int = 21, in_shape: Sequence[int] = (3, 320, 480)):
        super().__init__()
        body = resnet18(num_classes=num_classes, in_shape=tuple(in_shape)).net
        layers = OrderedDict((name, block) for name, block in body.named_children() if name != "last")
        layers["final_conv"] = nn.Conv2d(512, num_classes, kernel_size=1)
        layers["transpose_conv"] = nn.ConvTranspose2d(num_classes, num_classes, kernel_size=64, padding=16, stride=32)
        self.net = nn.Sequential(layers)
        with torch.no_grad():
            self.net.transpose_conv.weight.copy_(bilinear_kernel(num_classes, num_classes, 64))
            self.net.transpose_conv.bias.zero_()

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        h, w = X.shape[-2:]
        return self.net(X)[..., :h, :w]  # (N, num_classes, 32 ceil(H/32), ...) -> (N, num_classes, H, W)


@register_model("fcn", defaults={"data": "voc2012", "lr": 0.001, "weight_decay": 1e-3, "optimizer": "sgd",
                                 "batch_size": 32, "epochs": 5}, tags=("segmentation",))
def fcn(num_classes: int = 21, in_shape=(3, 320, 480)):
    """FCN (book 14.11): ResNet-18 body, 1x1 conv, bilinear-initialized 64x64 stride-32 transposed convolution."""
    return FCN(num_classes, tuple(in_shape))
