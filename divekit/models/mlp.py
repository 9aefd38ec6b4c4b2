"""Chapter 5 (book 5.1-5.2, 5.6): multilayer perceptrons and dropout, from scratch and concise."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from ..ops import activations as act
from ..ops.activations import relu
from .layers import activation_layer, check_activation
from .linear import cross_entropy
from .registry import register_model


def dropout_layer(X: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each element with probability p and scale the survivors by 1/(1-p) (book 5.6).

    The expectation is unchanged: E[h'] = (1-p) * h/(1-p) = h. p=0 returns X, p=1 returns zeros.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if p == 1:
        return torch.zeros_like(X)
    if p == 0:
        return X
    mask = (torch.rand(X.shape, generator=generator, device=X.device) > p).to(X.dtype)
    return mask * X / (1.0 - p)


def _out(num_classes: int | None, num_outputs: int | None) -> int:
    return num_outputs if num_outputs is not None else (num_classes if num_classes is not None else 10)


class MLPScratch(nn.Module):
    """One hidden layer by hand: H = f(X W1 + b1), O = H W2 + b2, with the hand-written CE loss.

    f is the activation `activation`, the hand-written function of divekit.ops.activations (ReLU,
    the book's, by default). prelu learns its slope `a` (one for the layer, starting at 0.25 as
    nn.PReLU's).
    """

    def __init__(self, num_inputs: int, num_outputs: int, num_hiddens: int, sigma: float = 0.01,
                 activation: str = "relu"):
        check_activation(activation)
        super().__init__()
        self.W1 = nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma)
        self.b1 = nn.Parameter(torch.zeros(num_hiddens))
        self.W2 = nn.Parameter(torch.randn(num_hiddens, num_outputs) * sigma)
        self.b2 = nn.Parameter(torch.zeros(num_outputs))
        self.activation = activation
        self.a = nn.Parameter(torch.full((1,), 0.25)) if activation == "prelu" else None

    def forward(self, X):
        X = X.reshape(-1, self.W1.shape[0])  # (N, d)
        Z = X @ self.W1 + self.b1  # (N, h)
        H = act.prelu(Z, self.a) if self.a is not None else act.ACTIVATIONS[self.activation](Z)
        return H @ self.W2 + self.b2  # (N, q)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"

    def loss(self, logits, y):
        return cross_entropy(logits, y)


class DropoutMLPScratch(nn.Module):
    """Two hidden layers with the hand-written dropout after each ReLU (only while training)."""

    def __init__(self, num_inputs: int, num_outputs: int, num_hiddens: Sequence[int] = (256, 256),
                 dropouts: Sequence[float] = (0.2, 0.5)):
        super().__init__()
        self.num_inputs = num_inputs
        self.lin1 = nn.Linear(num_inputs, num_hiddens[0])
        self.lin2 = nn.Linear(num_hiddens[0], num_hiddens[1])
        self.lin3 = nn.Linear(num_hiddens[1], num_outputs)
        self.dropouts = tuple(dropouts)

    def forward(self, X):
        H1 = relu(self.lin1(X.reshape(-1, self.num_inputs)))
        if self.training:
            H1 = dropout_layer(H1, self.dropouts[0])
        H2 = relu(self.lin2(H1))
        if self.training:
            H2 = dropout_layer(H2, self.dropouts[1])
        return self.lin3(H2)


class MLP(nn.Sequential):
    """Flatten, then [Linear, activation, (Dropout)] per hidden layer, then a Linear output layer.

    activation names a torch activation layer: relu, sigmoid, tanh, leaky-relu, elu, selu,
    prelu (one learned slope per layer), gelu or silu.
    """

    def __init__(self, num_inputs: int, num_outputs: int, num_hiddens: Sequence[int] = (256,),
                 dropouts: Sequence[float] | float = 0.0, activation: str = "relu"):
        check_activation(activation)
        num_hiddens = [num_hiddens] if isinstance(num_hiddens, int) else list(num_hiddens)
        dropouts = [dropouts] * len(num_hiddens) if isinstance(dropouts, (int, float)) else list(dropouts)
        if len(dropouts) != len(num_hiddens):
            raise ValueError(f"give one dropout rate per hidden layer: {len(num_hiddens)} layers, {len(dropouts)} rates")
        layers: list[nn.Module] = [nn.Flatten()]
        width = num_inputs
        for h, p in zip(num_hiddens, dropouts):
            layers += [nn.Linear(width, h), activation_layer(activation)]
            if p:
                layers.append(nn.Dropout(p))
            width = h
        layers.append(nn.Linear(width, num_outputs))
        super().__init__(*layers)


@register_model("mlp", defaults={"lr": 0.1}, tags=("image", "tabular"))
def mlp(in_shape=(1, 28, 28), num_classes: int | None = None, num_outputs: int | None = None,
        num_hiddens: Sequence[int] = (256,), dropouts: Sequence[float] | float = 0.0, activation: str = "relu"):
    """Multilayer perceptron with nn.Linear layers (book 5.2.2); one hidden layer of 256 by default.

    activation: relu (default), sigmoid, tanh, leaky-relu, elu, selu, prelu, gelu or silu.
    """
    return MLP(math.prod(in_shape), _out(num_classes, num_outputs), num_hiddens, dropouts, activation)


@register_model("mlp-scratch", defaults={"lr": 0.1, "optimizer": "sgd-scratch"}, tags=("image", "scratch"))
def mlp_scratch(in_shape=(1, 28, 28), num_classes: int = 10, num_hiddens: int = 256, sigma: float = 0.01,
                activation: str = "relu"):
    """MLP from scratch: hand-made W1, b1, W2, b2, hand-written activation and cross-entropy (book 5.2.1).

    activation: relu (default), sigmoid, tanh, leaky-relu, elu, selu, prelu, gelu or silu, the
    functions of divekit.ops.activations (sigmoid and tanh are torch's, as in the book).
    """
    return MLPScratch(math.prod(in_shape), num_classes, num_hiddens, sigma, activation)


@register_model("dropout-mlp", defaults={"lr": 0.1}, tags=("image",))
def dropout_mlp(in_shape=(1, 28, 28), num_classes: int = 10, num_hiddens: Sequence[int] = (256, 256),
                dropouts: Sequence[float] = (0.2, 0.5)):
    """The book's dropout MLP: hidden layers 256, 256 with dropout 0.2 and 0.5 (nn.Dropout, book 5.6.3)."""
    return MLP(math.prod(in_shape), num_classes, num_hiddens, dropouts)


@register_model("dropout-mlp-scratch", defaults={"lr": 0.1}, tags=("image", "scratch"))
def dropout_mlp_scratch(in_shape=(1, 28, 28), num_classes: int = 10, num_hiddens: Sequence[int] = (256, 256),
                        dropouts: Sequence[float] = (0.2, 0.5)):
    """The book's dropout MLP with the hand-written dropout_layer (book 5.6.2)."""
    return DropoutMLPScratch(math.prod(in_shape), num_classes, num_hiddens, dropouts)


class NormalizedMLP(MLP):
    """An MLP whose inputs are first standardized with fixed constants, x <- (x - mean) / std.

    Keeping the normalization in the model means a trained run takes raw [0, 1] images wherever
    it is used (evaluation, `divekit predict`), with no data option to remember.
    """

    def __init__(self, num_inputs: int, num_outputs: int, num_hiddens: Sequence[int], mean: float, std: float,
                 activation: str = "relu"):
        super().__init__(num_inputs, num_outputs, num_hiddens, activation=activation)
        self.mean, self.std = float(mean), float(std)

    def forward(self, X):
        return super().forward((X - self.mean) / self.std)


MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # over MNIST's 60,000 training images, pixels in [0, 1]


@register_model("mnist-mlp", defaults={"data": "mnist", "lr": 0.01, "momentum": 0.5, "batch_size": 64, "epochs": 10,
                                       "optimizer": "sgd"}, tags=("image",))
def mnist_mlp(in_shape=(1, 28, 28), num_classes: int = 10, num_hiddens: Sequence[int] = (512, 256, 128, 64),
              mean: float = MNIST_MEAN, std: float = MNIST_STD):
    """The PyTorch course's MNIST network: 784-512-256-128-64-10 ReLU, normalized inputs, SGD lr 0.01 momentum 0.5."""
    return NormalizedMLP(math.prod(in_shape), num_classes, num_hiddens, mean, std)
