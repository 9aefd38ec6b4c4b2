"""Activation functions and numerical stability (book 5.1 and 5.4).

Backpropagation multiplies one Jacobian per layer, so gradients behave like a product of many
matrices: unless each factor is close to norm 1 the product explodes or vanishes. Three demos:

- `matrix_product_demo`: 100 random N(0, 1) 4x4 matrices multiply to entries of 1e20 and more (explosion).
- `sigmoid_gradient_demo`: sigmoid'(x) = s(x)(1 - s(x)) is at most 1/4 and ~0 for |x| large, so
  every sigmoid layer shrinks the gradient (vanishing).
- `vanishing_gradient_demo`: the gradient norm per layer of a deep MLP, where the first layers of a
  sigmoid net receive a gradient orders of magnitude smaller than those of a ReLU net.

Gradients are taken with autograd rather than from the closed forms, as the book does. Plots are
drawn on matplotlib Figure objects (no pyplot, no display needed) and written to PNG files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn as nn
from matplotlib.figure import Figure

from ..core.errors import ConfigError, did_you_mean
from ..models.layers import activation_layer
from ..ops.activations import ACTIVATIONS  # the book's three, then the others (PReLU at its initial slope 0.25)
from ..ops.init import apply_init


def _check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation {name!r} is not one of {sorted(ACTIVATIONS)}.{did_you_mean(name, ACTIVATIONS)}")


def activation_and_gradient(name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(x), f'(x)) for the activation `name` ('relu', 'sigmoid', 'tanh', 'gelu', ...), f' by autograd.

    For ReLU at exactly 0 autograd uses the derivative 0, as the book notes.
    """
    _check_activation(name)
    x = x.detach().clone().requires_grad_()
    y = ACTIVATIONS[name](x)
    (dy_dx,) = torch.autograd.grad(y.sum(), x)  # y_i depends only on x_i, so d(sum y)/dx_i = f'(x_i)
    return y.detach(), dy_dx


def sigmoid_gradient_demo(x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, sigmoid(x), sigmoid'(x)) on x = -8, -7.9, ..., 8 unless given (book 5.4.1).

    The gradient peaks at 1/4 for x = 0 and is below 1e-3 once |x| > 7: a saturated sigmoid passes
    almost no gradient back.
    """
    x = torch.arange(-80, 81) / 10 if x is None else x  # exact 0 at the centre
    y, dy_dx = activation_and_gradient("sigmoid", x)
    return x, y, dy_dx


def plot_sigmoid_gradient(path: str | Path) -> Path:
    """The book's figure of sigmoid(x) and its gradient, written as a PNG to `path`."""
    x, y, dy_dx = sigmoid_gradient_demo()
    fig = Figure(figsize=(4.5, 3))
    ax = fig.add_subplot()
    ax.plot(x, y, label="sigmoid")
    ax.plot(x, dy_dx, linestyle="--", label="gradient")
    ax.set_xlabel("x")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def activation_plots(path: str | Path, names: Sequence[str] | None = None) -> Path:
    """Each activation (default: all of ACTIVATIONS) and its gradient, as one PNG (book 5.1).

    Three activations per pair of rows: the functions above, their gradients below. The first
    pair is the book's ReLU, sigmoid and tanh; then leaky ReLU, ELU, SELU, PReLU (slope 0.25),
    GELU and SiLU.
    """
    names = list(ACTIVATIONS if names is None else names)
    for name in names:
        _check_activation(name)
    x = torch.arange(-80, 81) / 10
    cols = min(3, len(names))
    pairs = math.ceil(len(names) / cols)
    fig = Figure(figsize=(10, 5.5 * pairs))
    axes = fig.subplots(2 * pairs, cols, sharex=True, squeeze=False)
    for i, name in enumerate(names):
        row, col = 2 * (i // cols), i % cols
        y, dy_dx = activation_and_gradient(name, x)
        for ax, values, label in ((axes[row, col], y, f"{name}(x)"), (axes[row + 1, col], dy_dx, f"grad of {name}")):
            ax.plot(x, values)
            ax.set_title(label)
            ax.grid(alpha=0.3)
        axes[row + 1, col].set_xlabel("x")
    for i in range(len(names), pairs * cols):  # empty cells of the last pair of rows
        axes[2 * (i // cols), i % cols].set_visible(False)
        axes[2 * (i // cols) + 1, i % cols].set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def matrix_product_demo(n: int = 100, size: int = 4, seed: int = 0) -> torch.Tensor:
    """The product M_1 M_2 ... M_n of n random (size, size) matrices with N(0, 1) entries.

    Each factor stretches a typical vector by a factor above 1, so the entries grow
    exponentially in n: for n = 100 and size 4 they reach 1e20 to 1e28, depending on the seed
    (book 5.4.1).
    """
    g = torch.Generator().manual_seed(seed)
    M = torch.normal(0.0, 1.0, size=(size, size), generator=g)
    for _ in range(n - 1):
        M = M @ torch.normal(0.0, 1.0, size=(size, size), generator=g)
    return M


def deep_mlp(depth: int, activation: str = "sigmoid", width: int = 64) -> nn.Sequential:
    """`depth` Linear(width, width) layers with the activation between them (none after the last)."""
    _check_activation(activation)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(width, width))
        if i < depth - 1:
            layers.append(activation_layer(activation))
    return nn.Sequential(*layers)


def vanishing_gradient_demo(
    depth: int = 20,
    activation: str = "sigmoid",
    *,
    width: int = 64,
    batch_size: int = 32,
    init: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """||dL/dW_l|| for each Linear layer l = 1..depth of a deep MLP, first layer first; shape (depth,).

    The net is `deep_mlp(depth, activation, width)` with torch's default init (or the weight init
    `init`, e.g. divekit.ops.init.kaiming_normal_, with zero biases), fed a batch of N(0, 1) inputs,
    with loss L = sum of the outputs. Backprop multiplies by W_l^T and by f'(z) at every layer;
    sigmoid's f' <= 1/4 makes the first layers' gradients of a 20-layer net orders of magnitude
    smaller than a ReLU net's. Seeded without touching the global random state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = deep_mlp(depth, activation, width)
        if init is not None:
            apply_init(net, {nn.Linear: init})
        X = torch.randn(batch_size, width)
    net(X).sum().backward()
    return torch.stack([layer.weight.grad.norm() for layer in net if isinstance(layer, nn.Linear)])
