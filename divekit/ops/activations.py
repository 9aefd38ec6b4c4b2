"""Activation functions (book 5.1 and its exercises), from scratch.

Each is written from its formula with elementwise tensor math; autograd differentiates the
formula, and the tests check values and gradients against the torch built-ins (F.relu,
F.leaky_relu, F.elu, F.selu, F.prelu, F.gelu, F.silu):

    relu(x)       = x if x > 0 else 0 = max(x, 0)
    leaky_relu(x) = x if x > 0 else slope * x                     (Maas et al. 2013; slope 0.01)
    elu(x)        = x if x > 0 else alpha * (exp(x) - 1)          (Clevert et al. 2015; alpha 1)
    selu(x)       = scale * elu(x, alpha), alpha ~ 1.6733, scale ~ 1.0507   (Klambauer et al. 2017)
    prelu(x, a)   = x if x > 0 else a * x, a learned (one per channel or one in all)  (He et al. 2015)
    gelu(x)       = x * Phi(x) = x/2 (1 + erf(x / sqrt 2)), Phi the standard normal CDF  (Hendrycks & Gimpel 2016)
                    ~ x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  with approximate="tanh"
    silu(x)       = x * sigmoid(x)   (also called swish; Elfwing et al. 2017, Ramachandran et al. 2017)

Where a formula has two branches, torch.where evaluates both on every element; the exponential
is taken of x where x <= 0 and of 0 elsewhere, so the branch that is not chosen cannot overflow to inf (whose zero
gradient, 0 * inf, would be nan).

`ACTIVATIONS` maps each name (as `--model-arg activation=NAME` spells it) to its function: the
book's ReLU, sigmoid and tanh, then the ones above. It is the one list of activation names: the
layer tables of divekit.models.layers and the book's plots (divekit.book.stability) name the same
set, which tests/models/test_activation_layers.py checks. Sigmoid and tanh are torch's functions,
as in the book (written out, 1 / (1 + exp(-x)) overflows for large -x).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

# SELU's constants (Klambauer et al. 2017, eq. 14), the values torch uses
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def relu(X: torch.Tensor) -> torch.Tensor:
    """max(x, 0), by hand. Written with torch.where, as the other two-branch functions here, the
    gradient at exactly 0 is 0, as torch.relu's (the book's torch.max(X, zeros) splits it, 1/2 each way)."""
    return torch.where(X > 0, X, torch.zeros_like(X))


def leaky_relu(X: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """x for x > 0, negative_slope * x otherwise: a ReLU whose negative side still passes a gradient."""
    return torch.where(X > 0, X, negative_slope * X)


def elu(X: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """x for x > 0, alpha (exp(x) - 1) otherwise: smooth at 0 for alpha = 1, saturating at -alpha."""
    negative = torch.where(X > 0, torch.zeros_like(X), X)  # exp of the chosen branch only: no overflow
    return torch.where(X > 0, X, alpha * torch.expm1(negative))  # expm1(x) = exp(x) - 1, exact near 0


def selu(X: torch.Tensor) -> torch.Tensor:
    """scale * elu(x, alpha) with the constants for which activations keep mean 0 and variance 1."""
    return SELU_SCALE * elu(X, SELU_ALPHA)


def prelu(X: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x for x > 0, a * x otherwise, with `weight` a learned slope: one value, or one per channel (dim 1)."""
    if weight.dim() != 1 or (weight.numel() != 1 and (X.dim() < 2 or weight.numel() != X.shape[1])):
        channels = X.shape[1] if X.dim() >= 2 else 1
        raise ValueError(f"prelu takes one slope or one per channel ({channels}) as a 1-D weight, "
                         f"got weight of shape {tuple(weight.shape)} for input of shape {tuple(X.shape)}")
    a = weight if weight.numel() == 1 else weight.reshape(1, -1, *([1] * (X.dim() - 2)))  # (1, C, 1, ...)
    return torch.where(X > 0, X, a * X)


def gelu(X: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """x * Phi(x), the input weighted by the probability that a standard normal is below it.

    approximate="tanh" uses the tanh approximation of Phi, as F.gelu(approximate="tanh").
    """
    if approximate == "none":
        return 0.5 * X * (1.0 + torch.erf(X / math.sqrt(2.0)))
    if approximate == "tanh":
        return 0.5 * X * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (X + 0.044715 * X ** 3)))
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(X: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(x): like ReLU for large |x|, smooth, and slightly negative for x < 0 (minimum ~ -0.28)."""
    return X * torch.sigmoid(X)


def _prelu_default(X: torch.Tensor) -> torch.Tensor:
    return prelu(X, torch.full((1,), 0.25, dtype=X.dtype, device=X.device))  # nn.PReLU's initial slope


# the functions by name, with their default constants (PReLU at its initial slope 0.25)
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "leaky-relu": leaky_relu,
    "elu": elu,
    "selu": selu,
    "prelu": _prelu_default,
    "gelu": gelu,
    "silu": silu,
}
