"""Chapter 6 (Builders' Guide): layers and blocks written by hand.

A block is an nn.Module: it owns parameters and sub-blocks and turns inputs into outputs in
`forward`. The classes here are the book's examples of what a block can do: hold its own layers
(`MLP`), chain children in order (`MySequential`), run arbitrary Python in `forward` with a constant
weight (`FixedHiddenMLP`), nest (`NestMLP`, `chimera`), have no parameters (`CenteredLayer`), declare
its own parameters (`MyLinear`), and share one layer between two places (`tied_mlp`).

Where the book uses LazyLinear (input size inferred on the first call), `num_inputs=None` does the
same; passing a size builds ordinary nn.Linear layers whose parameters exist right away.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import DivekitError


def _linear(num_inputs: int | None, num_outputs: int) -> nn.Module:
    # LazyLinear turns itself into nn.Linear on the first forward pass
    return nn.LazyLinear(num_outputs) if num_inputs is None else nn.Linear(num_inputs, num_outputs)


class MLP(nn.Module):
    """A hidden layer of 256 ReLU units and an output layer of 10, as a custom block (book 6.1).

    `num_inputs=None` infers the input size on the first call, as the book's LazyLinear does.
    """

    def __init__(self, num_inputs: int | None = None, num_hiddens: int = 256, num_outputs: int = 10):
        super().__init__()
        self.hidden = _linear(num_inputs, num_hiddens)
        self.out = nn.Linear(num_hiddens, num_outputs)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(X)))  # (N, num_outputs)


class MySequential(nn.Module):
    """nn.Sequential written by hand: children are stored with add_module under '0', '1', ...

    Registering them with add_module (rather than keeping a Python list) is what makes their
    parameters visible to parameters(), state_dict() and .to(device). They run in the order given.
    """

    def __init__(self, *modules: nn.Module):
        super().__init__()
        for idx, module in enumerate(modules):
            self.add_module(str(idx), module)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            X = module(X)
        return X


class FixedHiddenMLP(nn.Module):
    """A block whose forward pass mixes a constant weight, control flow and a reused layer (book 6.1).

    f(X) = sum(halve(L(relu(L(X) W_c + 1)))) where L is one 20 -> 20 linear layer used twice (so
    its parameters get the gradient from both uses), W_c is a random (20, 20) weight that is never
    trained, and halve divides by 2 until sum |X| <= 1. The result is a scalar.

    W_c is created with requires_grad=False and registered as a buffer rather than a parameter:
    optimizers never see it, yet it moves with .to(device) and is saved in state_dict(), so a
    saved and reloaded block computes the same function.
    """

    def __init__(self, num_features: int = 20, generator: torch.Generator | None = None):
        super().__init__()
        self.register_buffer("rand_weight", torch.rand(num_features, num_features, generator=generator))
        self.linear = nn.Linear(num_features, num_features)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        X = self.linear(X)
        X = F.relu(X @ self.rand_weight + 1)
        X = self.linear(X)  # the same layer again: its parameters are shared by both calls
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()


class NestMLP(nn.Module):
    """Blocks inside blocks: an nn.Sequential of two ReLU layers (64, 32) followed by a linear 16."""

    def __init__(self, num_inputs: int | None = None):
        super().__init__()
        self.net = nn.Sequential(_linear(num_inputs, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.linear = nn.Linear(32, 16)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.linear(self.net(X))  # (N, 16)


def chimera(num_inputs: int | None = None) -> nn.Sequential:
    """The book's mix of all of the above: NestMLP -> Linear(16, 20) -> FixedHiddenMLP (a scalar)."""
    return nn.Sequential(NestMLP(num_inputs), nn.Linear(16, 20), FixedHiddenMLP())


class CenteredLayer(nn.Module):
    """A layer without parameters: X - mean(X) over all entries (book 6.5)."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return X - X.mean()


class MyLinear(nn.Module):
    """relu(XW + b) with its own parameters W (in_units, units) and b (units,), drawn from N(0, 1).

    The book's version multiplies by `self.weight.data`, which hides the operation from autograd;
    here the parameters themselves are used, so the layer trains.
    """

    def __init__(self, in_units: int, units: int, generator: torch.Generator | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_units, units, generator=generator))
        self.bias = nn.Parameter(torch.randn(units, generator=generator))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return F.relu(X @ self.weight + self.bias)  # (N, units)


def tied_mlp(num_inputs: int = 20, num_hiddens: int = 8, num_outputs: int = 1) -> nn.Sequential:
    """The book's net with tied parameters (book 6.2): one `shared` Linear at positions 2 and 4.

    `net[2] is net[4]`, so both uses read and update the same weight; its .grad after backward is
    the sum of the gradients from the two uses. parameters() lists the shared tensors once,
    while state_dict() has both '2.weight' and '4.weight' (pointing at the same tensor).
    """
    shared = nn.Linear(num_hiddens, num_hiddens)
    return nn.Sequential(
        nn.Linear(num_inputs, num_hiddens), nn.ReLU(),
        shared, nn.ReLU(),
        shared, nn.ReLU(),
        nn.Linear(num_hiddens, num_outputs),
    )


def named_parameter_table(module: nn.Module) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, shape, number of entries) for every parameter, by the name state_dict() uses.

    A parameter shared between layers appears once, under the first name it is reached by.
    Lazy layers have no shapes until the first forward pass, which is reported as an error.
    """
    table = []
    for name, p in module.named_parameters():
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise DivekitError(
                f"parameter {name!r} of {type(module).__name__} is not created yet (a lazy layer): "
                "run one forward pass, e.g. module(X), before asking for its shape"
            )
        table.append((name, tuple(p.shape), p.numel()))
    return table
