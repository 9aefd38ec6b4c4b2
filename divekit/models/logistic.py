"""Binary classification: logistic regression from scratch and concise, and a small sigmoid network.

Logistic regression models the probability of the positive class as
P(y = 1 | x) = sigmoid(x^T w + b), sigmoid(z) = 1 / (1 + exp(-z)), and is trained by minimizing
the binary cross-entropy -[y log p + (1 - y) log(1 - p)], the negative log-likelihood of the
labels. Every model here returns the *logit* z (N, 1), not p: the loss is computed from z as
max(z, 0) - z y + log(1 + exp(-|z|)), which equals the cross-entropy of sigmoid(z) but never takes
the log of a probability that rounded to 0 or 1. `torch.sigmoid(model(X))` gives probabilities.

The PyTorch course ends its networks with nn.Sigmoid and trains them with nn.BCELoss; folding the
sigmoid into the loss (nn.BCEWithLogitsLoss) is the same model, numerically safer. The hand-written
functions are tested against torch.sigmoid, F.binary_cross_entropy and
F.binary_cross_entropy_with_logits, forward and backward.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from .linear import LinearRegressionScratch
from .mlp import MLP
from .registry import register_model


def _neg_abs(z: torch.Tensor) -> torch.Tensor:
    """-|z|, with the derivative -1 at z = 0 (autograd's abs has 0 there, which would zero the
    gradient of sigmoid and of the loss at a logit of exactly 0: every logit, at zero init)."""
    return torch.where(z >= 0, -z, z)


def sigmoid(z: torch.Tensor) -> torch.Tensor:
    """sigmoid(z) = 1 / (1 + exp(-z)), element-wise.

    For z < 0 it is computed as exp(z) / (1 + exp(z)), so exp never overflows: both forms only
    exponentiate -|z|.
    """
    e = torch.exp(_neg_abs(z))  # in (0, 1]
    return torch.where(z >= 0, 1 / (1 + e), e / (1 + e))


def binary_cross_entropy(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-[y log p + (1 - y) log(1 - p)] from probabilities p, averaged over the minibatch.

    As in torch, each log is clamped at -100 so a probability of exactly 0 or 1 gives a large
    finite loss instead of inf.
    """
    y = y.to(p.dtype).reshape(p.shape)
    log_p, log_1mp = torch.log(p).clamp(min=-100), torch.log(1 - p).clamp(min=-100)
    return -(y * log_p + (1 - y) * log_1mp).mean()


def binary_cross_entropy_with_logits(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The binary cross-entropy of sigmoid(z), computed from the logits z, averaged.

    -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))] = max(z, 0) - z y + log(1 + exp(-|z|)),
    which never evaluates log(0) or exp of a large number.
    """
    y = y.to(z.dtype).reshape(z.shape)
    relu = torch.where(z >= 0, z, torch.zeros_like(z))  # max(z, 0), with the derivative 1 at 0
    return (relu - z * y + torch.log1p(torch.exp(_neg_abs(z)))).mean()


class LogisticRegressionScratch(LinearRegressionScratch):
    """z = Xw + b with hand-made parameters; the hand-written sigmoid cross-entropy as the loss.

    The scratch linear model (its parameters w, b, their initialisation and `weights()`) with the
    inputs flattened and another loss.
    """

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X (N, ...) with num_inputs features per example -> logits (N, 1)."""
        return super().forward(X.reshape(-1, self.w.shape[0]))  # (N, ...) -> (N, num_inputs)

    def loss(self, logits, y):
        """The hand-written binary cross-entropy from logits."""
        return binary_cross_entropy_with_logits(logits, y)


class LogisticRegression(nn.Module):
    """nn.Linear with one output, trained with nn.BCEWithLogitsLoss (the concise version)."""

    def __init__(self, num_inputs: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(num_inputs, 1))
        self.net[1].weight.data.normal_(0, 0.01)
        self.net[1].bias.data.zero_()
        self.criterion = nn.BCEWithLogitsLoss()

    def forward(self, X):
        return self.net(X)  # (N, 1) logits

    def loss(self, logits, y):
        return self.criterion(logits, y.to(logits.dtype).reshape(logits.shape))

    def weights(self):
        return self.net[1].weight.detach().reshape(-1), self.net[1].bias.detach().reshape(())


# the training settings (full-batch gradient descent, lr 1, 500 epochs) are the hours-to-pass data's
@register_model("logistic-regression", defaults={"data": "hours-to-pass"}, tags=("binary", "tabular"))
def logistic_regression(in_shape=(1,)):
    """Logistic regression with nn.Linear and nn.BCEWithLogitsLoss: P(y=1|x) = sigmoid(x^T w + b)."""
    return LogisticRegression(math.prod(in_shape))


@register_model("logistic-regression-scratch", defaults={"data": "hours-to-pass", "optimizer": "sgd-scratch"},
                tags=("binary", "tabular", "scratch"))
def logistic_regression_scratch(in_shape=(1,), sigma: float = 0.01):
    """Logistic regression from scratch: hand-made w, b, hand-written sigmoid cross-entropy, minibatch SGD."""
    return LogisticRegressionScratch(math.prod(in_shape), sigma)


# sigmoid hidden units pass on at most 1/4 of the gradient each: plain SGD needs a large step
@register_model("binary-mlp", defaults={"data": "breast-cancer", "lr": 0.5, "optimizer": "sgd"},
                tags=("binary", "tabular"))
def binary_mlp(in_shape=(8,), num_hiddens: Sequence[int] = (6, 4), activation: str = "sigmoid"):
    """The PyTorch course's sigmoid network for binary labels: 8-6-4-1 on 8 features (hidden 6, 4; one logit)."""
    return MLP(math.prod(in_shape), 1, num_hiddens, activation=activation)
