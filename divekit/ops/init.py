"""Parameter initialization (book 5.4 and 6.3), written from the formulas.

Each `*_` function fills a weight tensor in place, returns it, and takes an optional
torch.Generator so that a draw can be repeated. They draw exactly as torch.nn.init does, so with
the same generator state they give the same numbers; the tests check that.

For a weight W of a layer with n_in inputs and n_out outputs:

    Xavier (Glorot):  Var[w] = 2 / (n_in + n_out)
                      uniform on [-a, a] with a = sqrt(6 / (n_in + n_out)), or normal with that variance
    Kaiming (He):     Var[w] = 2 / n_in, which keeps the variance of ReLU activations constant
                      across layers; normal, or uniform on [-sqrt(6 / n_in), sqrt(6 / n_in)]

`apply_init(net, {nn.Linear: xavier_uniform_, nn.Conv2d: kaiming_normal_})` applies such a function
to the weight of each layer of a given type (and sets the biases), optionally only in layers
picked by name.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn as nn

from ..core.errors import DivekitError


def fan_in_and_fan_out(W: torch.Tensor) -> tuple[int, int]:
    """(n_in, n_out) of a weight shaped (out, in, *kernel), as nn.Linear and nn.ConvNd store it.

    For a convolution each output sees in * prod(kernel) inputs, and each input reaches
    out * prod(kernel) outputs.
    """
    if W.dim() < 2:
        raise DivekitError(
            f"fan-in/fan-out need a weight with at least 2 dimensions (out, in, ...); got shape {tuple(W.shape)}. "
            "Biases are set with constant_ or zeros_."
        )
    receptive_field = math.prod(W.shape[2:])
    return W.shape[1] * receptive_field, W.shape[0] * receptive_field


def normal_(W: torch.Tensor, mean: float = 0.0, std: float = 0.01, generator: torch.Generator | None = None):
    """w ~ N(mean, std^2), the book's init_normal (std 0.01)."""
    with torch.no_grad():
        return W.normal_(mean, std, generator=generator)


def uniform_(W: torch.Tensor, a: float, b: float, generator: torch.Generator | None = None):
    """w ~ U(a, b)."""
    with torch.no_grad():
        return W.uniform_(a, b, generator=generator)


def constant_(W: torch.Tensor, value: float):
    """Every entry set to `value` (the book's init_constant with 1, and init_42)."""
    with torch.no_grad():
        return W.fill_(value)


def zeros_(W: torch.Tensor):
    """Every entry set to 0."""
    return constant_(W, 0.0)


def xavier_uniform_(W: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    """w ~ U(-a, a) with a = gain * sqrt(6 / (n_in + n_out)), so Var[w] = gain^2 * 2 / (n_in + n_out)."""
    n_in, n_out = fan_in_and_fan_out(W)
    a = gain * math.sqrt(6.0 / (n_in + n_out))
    return uniform_(W, -a, a, generator)


def xavier_normal_(W: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    """w ~ N(0, sigma^2) with sigma = gain * sqrt(2 / (n_in + n_out))."""
    n_in, n_out = fan_in_and_fan_out(W)
    return normal_(W, 0.0, gain * math.sqrt(2.0 / (n_in + n_out)), generator)


def kaiming_normal_(W: torch.Tensor, generator: torch.Generator | None = None):
    """He init for ReLU layers: w ~ N(0, sigma^2) with sigma = sqrt(2 / n_in).

    A ReLU zeroes half of its inputs on average, halving the variance that Xavier's argument
    preserves; the factor 2 makes up for it.
    """
    n_in, _ = fan_in_and_fan_out(W)
    return normal_(W, 0.0, math.sqrt(2.0 / n_in), generator)


def kaiming_uniform_(W: torch.Tensor, generator: torch.Generator | None = None):
    """He init for ReLU layers: w ~ U(-a, a) with a = sqrt(3) * sqrt(2 / n_in), so Var[w] = 2 / n_in."""
    n_in, _ = fan_in_and_fan_out(W)
    a = math.sqrt(3.0) * math.sqrt(2.0 / n_in)
    return uniform_(W, -a, a, generator)


def book_custom_(W: torch.Tensor, generator: torch.Generator | None = None):
    """The book's my_init (6.3): w ~ U(-10, 10), then entries with |w| < 5 are set to 0.

    Each entry is 0 with probability 1/2 and otherwise uniform on [-10, -5] or [5, 10].
    """
    uniform_(W, -10.0, 10.0, generator)
    with torch.no_grad():
        return W.mul_(W.abs() >= 5)


def _picked(name: str, patterns: list[str]) -> bool:
    # a layer is picked when its own name or that of a block it sits in ('net' for 'net.0') matches
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(".".join(parts[:i]), p) for i in range(1, len(parts) + 1) for p in patterns)


def apply_init(
    module: nn.Module,
    rules: Mapping[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]],
    *,
    bias: float | None = 0.0,
    only: str | Iterable[str] | None = None,
) -> list[str]:
    """Initialize the weight of each layer whose type has a rule; return the layers' names.

    rules:  layer type -> a function filling a weight in place, e.g. {nn.Linear: xavier_uniform_}.
            A layer uses the rule of its most specific type (a subclass of nn.Linear uses the
            nn.Linear rule unless it has its own); other layers are left alone. Bind arguments
            with functools.partial, e.g. partial(normal_, std=0.01, generator=g).
    bias:   the value every initialized layer's bias is set to; None leaves biases as they are.
    only:   glob patterns on the names of named_modules() ('0', 'net.*'); when given, only layers
            whose name, or the name of a block they sit in, matches one of them are initialized.
            The book's `net[0].apply(init_xavier)` is `apply_init(net, {nn.Linear: xavier_uniform_}, only='0')`.

    A layer shared by two places is initialized once. With a generator bound in the rules, the
    draws happen in named_modules() order, so the result is repeatable.
    """
    layers = list(module.named_modules())
    if only is not None:
        patterns = [only] if isinstance(only, str) else list(only)
        names = [name for name, _ in layers]
        unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
        if unmatched:
            raise DivekitError(
                f"apply_init(only={patterns}): no layer is named like {unmatched}; "
                f"the layers are {[n for n in names if n][:20]}"
            )
        layers = [(name, layer) for name, layer in layers if _picked(name, patterns)]
    done = []
    for name, layer in layers:
        rule = next((rules[t] for t in type(layer).__mro__ if t in rules), None)
        if rule is None:
            continue
        W = getattr(layer, "weight", None)
        if not isinstance(W, torch.Tensor):
            raise DivekitError(f"apply_init: layer {name!r} ({type(layer).__name__}) has no weight to initialize")
        if isinstance(W, nn.parameter.UninitializedParameter):
            raise DivekitError(
                f"apply_init: layer {name!r} is a lazy layer whose weight does not exist yet; "
                "run one forward pass, e.g. net(X), before initializing it"
            )
        rule(W)
        if bias is not None and getattr(layer, "bias", None) is not None:
            constant_(layer.bias, bias)
        done.append(name)
    return done
