"""VGG (book 8.2): blocks of 3x3 convolutions, each block ending in a 2x2 max pool, then three dense layers.

An architecture `arch` lists (num_convs, out_channels) per block. VGG-11 is
((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)): 8 conv layers and 3 dense layers. Five
blocks halve H and W five times, 224x224 -> 7x7, so the first dense layer of VGG-11 sees
512 * 7 * 7 = 25088 features; the smallest image VGG takes is 32x32. The book trains the
narrow variant, every block's channels divided by 4, on Fashion-MNIST resized to 224x224.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from .layers import BookNet, check_activation, dense_head, init_cnn, num_flat_features, vgg_block
from .registry import register_model

VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


class VGG(BookNet):
    """VGG blocks for `arch`, then dense 4096, ReLU, dropout, dense 4096, ReLU, dropout, dense num_classes.

    `activation` replaces every ReLU: relu, sigmoid, tanh, leaky-relu, elu, selu, prelu, gelu or silu.
    """

    def __init__(self, arch: Sequence[tuple[int, int]], num_classes: int = 10, in_shape: Sequence[int] = (1, 224, 224),
                 dropout: float = 0.5, name: str = "vgg", activation: str = "relu"):
        check_activation(activation)
        conv_blks = []
        in_channels = in_shape[0]
        for num_convs, out_channels in arch:
            conv_blks.append(vgg_block(num_convs, in_channels, out_channels, activation))
            in_channels = out_channels
        features = [*conv_blks, nn.Flatten()]
        num_inputs = num_flat_features(nn.Sequential(*features), in_shape, name)
        super().__init__()
        self.net = nn.Sequential(*features, *dense_head(num_inputs, num_classes, dropout, activation))
        self.net.apply(init_cnn)


# The book trains only the narrow VGG-11; the full one takes the same settings.
_DEFAULTS = {"data": "fashion-mnist", "lr": 0.01, "batch_size": 128, "epochs": 10, "resize": 224}


@register_model("vgg11", defaults=_DEFAULTS, tags=("image", "cnn"))
def vgg11(num_classes: int = 10, in_shape=(1, 224, 224), activation: str = "relu"):
    """VGG-11: conv arch ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)) (book 8.2)."""
    return VGG(VGG11, num_classes, tuple(in_shape), name="vgg11", activation=activation)


@register_model("vgg11-small", defaults=_DEFAULTS, tags=("image", "cnn"))
def vgg11_small(num_classes: int = 10, in_shape=(1, 224, 224), ratio: int = 4, activation: str = "relu"):
    """VGG-11 with every block's channels divided by ratio (4: 16, 32, 64, 128, 128), as the book trains it (book 8.2)."""
    return VGG([(num_convs, channels // ratio) for num_convs, channels in VGG11], num_classes, tuple(in_shape),
               name="vgg11-small", activation=activation)
