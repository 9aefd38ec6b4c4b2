"""Chapter 3: linear regression and softmax regression, each from scratch and concise.

The scratch versions hold their parameters as plain tensors wrapped in nn.Parameter and use the
hand-written losses below; the concise versions use nn.Linear and torch's losses. Both kinds
train with the same trainer, and tests check that the hand-written functions agree with torch.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register_model


def squared_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The book's squared loss (y_hat - y)^2 / 2, averaged over the minibatch."""
    return ((y_hat - y.reshape(y_hat.shape)) ** 2 / 2).mean()


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """softmax(o)_j = exp(o_j) / sum_k exp(o_k), row-wise.

    Subtracting the row maximum first leaves the result unchanged and keeps exp() from
    overflowing for large logits.
    """
    shifted = logits - logits.max(dim=1, keepdim=True).values
    e = shifted.exp()
    return e / e.sum(dim=1, keepdim=True)


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log softmax(o)_j = o_j - logsumexp(o), with the max-shift trick (no log of 0)."""
    m = logits.max(dim=1, keepdim=True).values
    return logits - m - (logits - m).exp().sum(dim=1, keepdim=True).log()


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-log softmax(o)_y averaged over the minibatch; y holds class indices.

    Computed from logits via log_softmax rather than as log(softmax(o)), which would give
    -inf (and NaN gradients) when a probability underflows to 0.
    """
    return -log_softmax(logits)[torch.arange(len(y), device=y.device), y].mean()


class LinearRegressionScratch(nn.Module):
    """y_hat = Xw + b with hand-made parameters, trained on the squared loss.

    The scratch linear model of the book: w (num_inputs, 1) ~ N(0, sigma^2), b (1,) = 0. Logistic
    regression from scratch (models.logistic) is this model with another loss.
    """

    def __init__(self, num_inputs: int, sigma: float = 0.01):
        super().__init__()
        self.w = nn.Parameter(torch.randn(num_inputs, 1) * sigma)
        self.b = nn.Parameter(torch.zeros(1))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X (N, num_inputs) -> Xw + b (N, 1)."""
        return X @ self.w + self.b  # (N, 1)

    def loss(self, y_hat, y):
        """The hand-written squared loss."""
        return squared_loss(y_hat, y)

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, b) as a flat vector and a scalar, to compare with the data's true values."""
        return self.w.detach().reshape(-1), self.b.detach().reshape(())


class LinearRegression(nn.Module):
    """y_hat = Xw + b as nn.Linear, trained on nn.MSELoss (the book's concise version)."""

    def __init__(self, num_inputs: int, num_outputs: int = 1):
        super().__init__()
        self.net = nn.Linear(num_inputs, num_outputs)
        self.net.weight.data.normal_(0, 0.01)
        self.net.bias.data.zero_()

    def forward(self, X):
        return self.net(X)

    def loss(self, y_hat, y):
        return F.mse_loss(y_hat, y.reshape(y_hat.shape))

    def weights(self):
        return self.net.weight.detach().reshape(-1), self.net.bias.detach().reshape(())


class SoftmaxRegressionScratch(nn.Module):
    """o = XW + b on flattened images, trained with the hand-written cross-entropy.

    forward returns the logits o; `softmax(o)` turns them into class probabilities.
    """

    def __init__(self, num_inputs: int, num_outputs: int, sigma: float = 0.01):
        super().__init__()
        self.W = nn.Parameter(torch.randn(num_inputs, num_outputs) * sigma)
        self.b = nn.Parameter(torch.zeros(num_outputs))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return X.reshape(-1, self.W.shape[0]) @ self.W + self.b  # (N, num_outputs)

    def loss(self, logits, y):
        return cross_entropy(logits, y)


class SoftmaxRegression(nn.Module):
    """Flatten + nn.Linear, trained with torch's cross-entropy (the book's concise version)."""

    def __init__(self, num_inputs: int, num_outputs: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(num_inputs, num_outputs))
        self.net[1].weight.data.normal_(0, 0.01)
        self.net[1].bias.data.zero_()

    def forward(self, X):
        return self.net(X)


_SCRATCH = {"optimizer": "sgd-scratch"}


@register_model("linear-regression", defaults={"data": "synthetic-linear", "lr": 0.03}, tags=("regression",))
def linear_regression(in_shape=(2,), num_outputs: int = 1):
    """Linear regression with nn.Linear and MSE (book 3.5)."""
    return LinearRegression(math.prod(in_shape), num_outputs)


@register_model("linear-regression-scratch", defaults={"data": "synthetic-linear", "lr": 0.03, **_SCRATCH},
                tags=("regression", "scratch"))
def linear_regression_scratch(in_shape=(2,), sigma: float = 0.01):
    """Linear regression from scratch: hand-made w and b, squared loss, minibatch SGD (book 3.4)."""
    return LinearRegressionScratch(math.prod(in_shape), sigma)


@register_model("softmax-regression", defaults={"lr": 0.1}, tags=("image",))
def softmax_regression(num_classes: int = 10, in_shape=(1, 28, 28)):
    """Softmax regression with nn.Linear and torch's cross-entropy (book 4.5)."""
    return SoftmaxRegression(math.prod(in_shape), num_classes)


@register_model("softmax-regression-scratch", defaults={"lr": 0.1, **_SCRATCH}, tags=("image", "scratch"))
def softmax_regression_scratch(num_classes: int = 10, in_shape=(1, 28, 28), sigma: float = 0.01):
    """Softmax regression from scratch: hand-written softmax, cross-entropy and SGD (book 4.4)."""
    return SoftmaxRegressionScratch(math.prod(in_shape), num_classes, sigma)
