"""LeNet-5 (book 7.6), its modern ReLU/max-pool variant, and LeNet with batch normalization (book 8.5)
or, with `norm`, layer, group or instance normalization in its place.

Layer by layer for a 1x28x28 Fashion-MNIST image (LeNet):

    Conv2d 6@5x5 pad 2 -> (6, 28, 28), sigmoid, 2x2 avg pool -> (6, 14, 14)
    Conv2d 16@5x5      -> (16, 10, 10), sigmoid, 2x2 avg pool -> (16, 5, 5)
    flatten -> 400, dense 120, sigmoid, dense 84, sigmoid, dense 10

The input size of the first dense layer is found from in_shape when the model is built, so a
LeNet built for 28x28 images fails in its forward pass on other sizes (the trainer's preflight
then asks for another --resize).

Every LeNet takes `--model-arg activation=NAME` (relu, sigmoid, tanh, leaky-relu, elu, selu,
prelu, gelu, silu); lenet-bn and lenet-bn-concise also take `norm=batch|layer|group|instance|none`
(and `num_groups` for group). The defaults are the book's networks, unchanged.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import torch.nn as nn

from .layers import BookNet, activation_layer, check_activation, init_cnn, norm_layers, num_flat_features
from .registry import register_model


class LeNet(BookNet):
    """LeNet-5: two conv/pool stages and three dense layers, with the book's Xavier init.

    `activation` and `pool` are layer classes: nn.Sigmoid and nn.AvgPool2d as in the 1998 network
    (the book's LeNet), nn.ReLU and nn.MaxPool2d for the modern variant.
    """

    def __init__(self, num_classes: int = 10, in_shape: Sequence[int] = (1, 28, 28),
                 activation: Callable[[], nn.Module] = nn.Sigmoid, pool: Callable[..., nn.Module] = nn.AvgPool2d,
                 name: str = "lenet"):
        features = [
            nn.Conv2d(in_shape[0], 6, kernel_size=5, padding=2), activation(), pool(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), activation(), pool(kernel_size=2, stride=2),
            nn.Flatten(),
        ]
        num_inputs = num_flat_features(nn.Sequential(*features), in_shape, name)  # 16 * 5 * 5 for 28x28
        super().__init__()
        self.net = nn.Sequential(
            *features,
            nn.Linear(num_inputs, 120), activation(),
            nn.Linear(120, 84), activation(),
            nn.Linear(84, num_classes),
        )
        self.net.apply(init_cnn)


class BNLeNet(BookNet):
    """LeNet with batch normalization after each conv and dense layer but the last (book 8.5).

    As in the book, the first conv has no padding (28x28 -> 24x24), so the first dense layer sees
    16 * 4 * 4 = 256 features. `scratch=True` uses the hand-written layers (BatchNorm ...,
    and the activation), otherwise torch's (nn.BatchNorm2d / nn.BatchNorm1d ...); both compute the
    same function. `norm` puts another normalization in batch norm's places (see
    layers.norm_layers: layer, group with num_groups groups, instance, or none); `activation`
    replaces the sigmoids.
    """

    def __init__(self, num_classes: int = 10, in_shape: Sequence[int] = (1, 28, 28), scratch: bool = True,
                 name: str = "lenet-bn", norm: str = "batch", activation: str = "sigmoid", num_groups: int = 2):
        check_activation(activation)

        def nrm(num_features: int, num_dims: int) -> list[nn.Module]:
            return norm_layers(norm, num_features, num_dims, scratch, num_groups)

        def f() -> nn.Module:
            return activation_layer(activation, scratch)

        features = [
            nn.Conv2d(in_shape[0], 6, kernel_size=5), *nrm(6, 4), f(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), *nrm(16, 4), f(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
        ]
        num_inputs = num_flat_features(nn.Sequential(*features), in_shape, name)  # 16 * 4 * 4 for 28x28
        super().__init__()
        self.net = nn.Sequential(
            *features,
            nn.Linear(num_inputs, 120), *nrm(120, 2), f(),
            nn.Linear(120, 84), *nrm(84, 2), f(),
            nn.Linear(84, num_classes),
        )
        self.net.apply(init_cnn)


_TAGS = ("image", "cnn")


# The book's current edition trains LeNet with lr 0.1 and batch size 128; these defaults are
# the previous edition's (lr 0.9, batch size 256, test accuracy about 0.78 after 10 epochs).
@register_model("lenet", defaults={"data": "fashion-mnist", "lr": 0.9, "batch_size": 256, "epochs": 10}, tags=_TAGS)
def lenet(num_classes: int = 10, in_shape=(1, 28, 28), activation: str = "sigmoid"):
    """LeNet-5 with sigmoid and average pooling (book 7.6)."""
    check_activation(activation)
    return LeNet(num_classes, tuple(in_shape), partial(activation_layer, activation))


# Not trained in the book (an exercise of 8.1); ReLU networks take the current edition's LeNet settings.
@register_model("lenet-modern", defaults={"data": "fashion-mnist", "lr": 0.1, "batch_size": 128, "epochs": 10}, tags=_TAGS)
def lenet_modern(num_classes: int = 10, in_shape=(1, 28, 28), activation: str = "relu"):
    """LeNet-5 with ReLU and max pooling, otherwise the same (book 8.1 exercise)."""
    check_activation(activation)
    return LeNet(num_classes, tuple(in_shape), partial(activation_layer, activation), nn.MaxPool2d, name="lenet-modern")


@register_model("lenet-bn", defaults={"data": "fashion-mnist", "lr": 0.1, "batch_size": 128, "epochs": 10}, tags=(*_TAGS, "scratch"))
def lenet_bn(num_classes: int = 10, in_shape=(1, 28, 28), norm: str = "batch", activation: str = "sigmoid",
             num_groups: int = 2):
    """LeNet with the hand-written batch normalization (book 8.5.4), or another hand-written `norm`."""
    return BNLeNet(num_classes, tuple(in_shape), scratch=True, norm=norm, activation=activation, num_groups=num_groups)


@register_model("lenet-bn-concise", defaults={"data": "fashion-mnist", "lr": 0.1, "batch_size": 128, "epochs": 10}, tags=_TAGS)
def lenet_bn_concise(num_classes: int = 10, in_shape=(1, 28, 28), norm: str = "batch", activation: str = "sigmoid",
                     num_groups: int = 2):
    """LeNet with nn.BatchNorm2d / nn.BatchNorm1d (book 8.5.5), or torch's layer for another `norm`."""
    return BNLeNet(num_classes, tuple(in_shape), scratch=False, name="lenet-bn-concise", norm=norm,
                   activation=activation, num_groups=num_groups)
