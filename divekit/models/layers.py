"""Layers shared by the chapter 7-8 CNNs: batch normalization from scratch and the book's blocks.

Each model keeps its layers in an nn.Sequential `net`, as the book does (`model.net[0]`, `for layer
in model.net`, and a slice such as `model.net[:3]` is a working sub-network).

Every layer here is built with its input size given (no Lazy modules), so a model's parameters
exist as soon as it is constructed and a checkpoint loads into a freshly built model. Where a
model needs the size of its flattened features, `num_flat_features` finds it with one dummy
forward pass in the constructor.

Contents, in book order: the activation layers and `activation_layer` (5.1), `init_cnn` (7.6),
`vgg_block` (8.2), `nin_block` (8.3), `Inception` (8.4), `batch_norm` / `BatchNorm` (8.5) and the
other normalizations `LayerNorm`, `GroupNorm`, `InstanceNorm` with `norm_layer`, `stem`, `Residual`
and `Bottleneck` (8.6), `conv_block`, `DenseBlock` and `transition_block` (8.7).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import ConfigError, did_you_mean
from ..ops import activations as act
from ..ops.init import xavier_uniform_

# ----------------------------------------------------------------------------------------------
# 5.1 Activation functions: the from-scratch ones of divekit.ops.activations as layers


class ReLU(nn.Module):
    """max(x, 0), by hand (nn.ReLU)."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return act.relu(X)


class LeakyReLU(nn.Module):
    """x for x > 0, negative_slope * x otherwise, by hand (nn.LeakyReLU)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return act.leaky_relu(X, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(nn.Module):
    """x for x > 0, alpha (exp(x) - 1) otherwise, by hand (nn.ELU)."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return act.elu(X, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SELU(nn.Module):
    """Scaled ELU with the self-normalizing constants, by hand (nn.SELU)."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return act.selu(X)


class PReLU(nn.Module):
    """Leaky ReLU with a learned slope, by hand (nn.PReLU): one slope, or one per channel.

    The slope is the parameter `weight`, initialized to `init` (0.25), as nn.PReLU's, so their
    state dicts are interchangeable.
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), init))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return act.prelu(X, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.weight.numel()}"


class GELU(nn.Module):
    """x * Phi(x), Phi the standard normal CDF (or its tanh approximation), by hand (nn.GELU)."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        act.gelu(torch.zeros(1), approximate)  # a clear error for an unknown approximation, now
        self.approximate = approximate

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return act.gelu(X, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(nn.Module):
    """x * sigmoid(x), by hand (nn.SiLU)."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return act.silu(X)


# name -> layer class, built-in and from scratch, for the names of ops.activations.ACTIVATIONS (the one list of
# names; tests/models/test_activation_layers.py checks these tables against it). Sigmoid and tanh are torch's in both.
ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "leaky-relu": nn.LeakyReLU, "elu": nn.ELU,
    "selu": nn.SELU, "prelu": nn.PReLU, "gelu": nn.GELU, "silu": nn.SiLU,
}
SCRATCH_ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {
    "relu": ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "leaky-relu": LeakyReLU, "elu": ELU,
    "selu": SELU, "prelu": PReLU, "gelu": GELU, "silu": SiLU,
}


def check_activation(name: str) -> None:
    """ConfigError naming the valid activations (and the closest) unless `name` is one of them."""
    if name not in act.ACTIVATIONS:
        raise ConfigError(f"activation must be one of {', '.join(act.ACTIVATIONS)}, got {name!r}."
                          f"{did_you_mean(name, act.ACTIVATIONS)} Pass one as --model-arg activation=NAME")


def activation_layer(name: str, scratch: bool = False) -> nn.Module:
    """A new activation layer by name ('relu', 'elu', ...): torch's, or with scratch=True the hand-written one.

    PReLU gets one learned slope shared by all channels, nn.PReLU's default.
    """
    check_activation(name)
    return (SCRATCH_ACTIVATION_LAYERS if scratch else ACTIVATION_LAYERS)[name]()


# ----------------------------------------------------------------------------------------------
# 7.6 LeNet and the CNNs of chapter 8


class BookNet(nn.Module):
    """Base of the chapter 7-8 CNNs: the layers live in `self.net`, an nn.Sequential, as in the book."""

    net: nn.Sequential

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.net(X)


def init_cnn(module: nn.Module) -> None:
    """The book's init_cnn: Xavier-uniform weights for Conv2d and Linear layers (biases keep torch's).

    Use as `net.apply(init_cnn)`. Like the book it matches the exact types, so subclasses are left alone.
    """
    if type(module) in (nn.Conv2d, nn.Linear):
        xavier_uniform_(module.weight)


def num_flat_features(features: nn.Module, in_shape: Sequence[int], model: str) -> int:
    """The number of features `features` outputs per example for inputs of shape in_shape = (C, H, W).

    Runs one zero example through `features` in eval mode (so batch-norm statistics are neither
    used from a batch of one nor updated) and without gradients. The book's Lazy layers infer this
    size on the first forward pass instead; knowing it up front means the parameters exist as soon
    as the model is built. An in_shape the layers cannot take raises ConfigError naming the model.
    """
    was_training = features.training
    features.eval()
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, *in_shape))  # (1, ...)
    except RuntimeError as e:
        raise ConfigError(
            f"model {model!r} cannot be built for inputs of shape {tuple(in_shape)}: {str(e).splitlines()[0]}. "
            "Choose another input size (--resize when training)."
        ) from None
    finally:
        features.train(was_training)
    return out[0].numel()


def dense_head(num_inputs: int, num_classes: int, dropout: float, activation: str = "relu") -> list[nn.Module]:
    """AlexNet's and VGG's classifier: two 4096-unit ReLU (or `activation`) layers with dropout, then the output layer."""
    return [
        nn.Linear(num_inputs, 4096), activation_layer(activation), nn.Dropout(dropout),
        nn.Linear(4096, 4096), activation_layer(activation), nn.Dropout(dropout),
        nn.Linear(4096, num_classes),
    ]


# ----------------------------------------------------------------------------------------------
# 8.2 VGG and 8.3 NiN


def vgg_block(num_convs: int, in_channels: int, out_channels: int, activation: str = "relu") -> nn.Sequential:
    """num_convs 3x3 convolutions (padding 1) each followed by ReLU (or `activation`), then a 2x2 max pool
    that halves H and W."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), activation_layer(activation)]
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def nin_block(in_channels: int, out_channels: int, kernel_size: int, strides: int, padding: int) -> nn.Sequential:
    """A convolution followed by two 1x1 convolutions, each with ReLU: a per-pixel MLP over channels (book 8.3)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
    )


# ----------------------------------------------------------------------------------------------
# 8.4 GoogLeNet


class Inception(nn.Module):
    """The Inception block (book 8.4): four parallel branches concatenated along channels.

    Branch 1: 1x1 conv (c1). Branch 2: 1x1 conv (c2[0]) then 3x3 conv (c2[1]). Branch 3: 1x1 conv
    (c3[0]) then 5x5 conv (c3[1]). Branch 4: 3x3 max pool then 1x1 conv (c4). Every conv is
    followed by ReLU; padding keeps H and W, so the output has c1 + c2[1] + c3[1] + c4 channels.
    """

    def __init__(self, in_channels: int, c1: int, c2: Sequence[int], c3: Sequence[int], c4: int):
        super().__init__()
        self.b1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.b2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.b2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.b3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.b3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.b4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.b4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        b1 = F.relu(self.b1_1(X))
        b2 = F.relu(self.b2_2(F.relu(self.b2_1(X))))
        b3 = F.relu(self.b3_2(F.relu(self.b3_1(X))))
        b4 = F.relu(self.b4_2(self.b4_1(X)))
        return torch.cat((b1, b2, b3, b4), dim=1)  # (N, c1 + c2[1] + c3[1] + c4, H, W)


# ----------------------------------------------------------------------------------------------
# 8.5 Batch normalization from scratch


def batch_norm(X: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, moving_mean: torch.Tensor,
               moving_var: torch.Tensor, eps: float, momentum: float | torch.Tensor, *, training: bool):
    """BN(x) = gamma * (x - mu_B) / sqrt(sigma_B^2 + eps) + beta; returns (Y, moving_mean, moving_var).

    Training: mu_B and sigma_B^2 are the minibatch mean and (biased) variance per feature, over
    dim 0 for a fully connected layer's (N, C) output and over (0, 2, 3) for a convolution's
    (N, C, H, W) output. The moving averages are updated as

        moving = (1 - momentum) * moving + momentum * batch statistic,

    so momentum is the weight of the newest batch, torch's convention (0.1 by default). (The
    BatchNorm module turns momentum=None into 1/n for the n-th batch.) Like
    nn.BatchNorm, the moving variance averages the *unbiased* batch variance sigma_B^2 * n/(n-1),
    n the number of values per feature, while the normalization uses the biased one.
    Inference: X is normalized with moving_mean and moving_var, which are returned unchanged.

    Differences from the book's function, both to agree with nn.BatchNorm1d/2d: the mode comes
    from `training` (the module's .training flag) rather than torch.is_grad_enabled(), which would
    treat a no_grad pass in training mode as inference and a gradient-enabled pass in eval mode as
    training; and the moving variance uses the unbiased batch variance.
    """
    if not training:
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
        return gamma * X_hat + beta, moving_mean, moving_var
    if X.dim() == 2:
        mean = X.mean(dim=0)  # (C,)
        var = ((X - mean) ** 2).mean(dim=0)
    elif X.dim() == 4:
        mean = X.mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1), broadcasts against X
        var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    else:
        raise ValueError(f"batch_norm takes (N, C) or (N, C, H, W) inputs, got shape {tuple(X.shape)}")
    n = X.numel() // X.shape[1]  # values per feature: N, or N * H * W
    if n < 2:
        raise ValueError(
            f"batch_norm needs more than 1 value per feature in training mode, got input shape {tuple(X.shape)}"
        )
    X_hat = (X - mean) / torch.sqrt(var + eps)
    with torch.no_grad():  # the moving averages are statistics, not part of the graph
        moving_mean = (1.0 - momentum) * moving_mean + momentum * mean
        moving_var = (1.0 - momentum) * moving_var + momentum * var * (n / (n - 1))
    return gamma * X_hat + beta, moving_mean, moving_var


class BatchNorm(nn.Module):
    """Batch normalization by hand (book 8.5), computing what nn.BatchNorm1d (num_dims=2) or
    nn.BatchNorm2d (num_dims=4) computes.

    gamma and beta are parameters shaped (1, C) or (1, C, 1, 1) so they broadcast against the
    input; moving_mean and moving_var are registered buffers, so they move with .to(device) and are
    saved in state_dict() and checkpoints. Training mode normalizes with batch statistics and
    updates the moving averages; eval mode uses the moving averages.

    momentum: the book's class passes momentum=0.9 into a formula that weights the newest batch by
    momentum, so its averages keep only 10% of their history each step (the book's previous
    edition wrote moving = momentum * moving + (1 - momentum) * batch with 0.9, which is torch's
    0.1). We use 0.1 with the weight-on-the-newest-batch formula: the same as nn.BatchNorm.
    momentum=None is nn.BatchNorm's cumulative moving average, the plain mean of every batch's
    statistics so far: the n-th training batch gets weight 1/n, counted in the buffer
    `num_batches_tracked` (which only this setting keeps, so other state dicts are unchanged).
    `to_torch` and `from_torch` convert to and from the built-in layer with the same values.
    """

    def __init__(self, num_features: int, num_dims: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        if num_dims not in (2, 4):
            raise ValueError(f"num_dims is 2 for a fully connected layer or 4 for a convolution, got {num_dims}")
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.num_features, self.num_dims, self.eps, self.momentum = num_features, num_dims, eps, momentum
        # scale and shift start at 1 and 0, so the layer first just standardizes
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.register_buffer("moving_mean", torch.zeros(shape))
        self.register_buffer("moving_var", torch.ones(shape))
        self.register_buffer("num_batches_tracked", torch.tensor(0) if momentum is None else None)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        momentum = self.momentum
        if momentum is None and self.training:
            self.num_batches_tracked += 1
            # 1/n as a tensor: no host sync; in the moving averages' dtype, so float64 layers get torch's 1/n exactly
            momentum = 1.0 / self.num_batches_tracked.to(self.moving_mean.dtype)
        Y, self.moving_mean, self.moving_var = batch_norm(
            X, self.gamma, self.beta, self.moving_mean, self.moving_var, self.eps, momentum, training=self.training
        )
        return Y

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_dims={self.num_dims}, eps={self.eps}, momentum={self.momentum}"

    def to_torch(self) -> nn.BatchNorm1d | nn.BatchNorm2d:
        """An nn.BatchNorm1d (num_dims=2) or nn.BatchNorm2d (num_dims=4) holding the same values (and dtype)."""
        cls = nn.BatchNorm1d if self.num_dims == 2 else nn.BatchNorm2d
        bn = cls(self.num_features, eps=self.eps, momentum=self.momentum).to(self.gamma.device, self.gamma.dtype)
        with torch.no_grad():
            bn.weight.copy_(self.gamma.reshape(-1))
            bn.bias.copy_(self.beta.reshape(-1))
            bn.running_mean.copy_(self.moving_mean.reshape(-1))
            bn.running_var.copy_(self.moving_var.reshape(-1))
            if self.num_batches_tracked is not None:
                bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn.train(self.training)

    @classmethod
    def from_torch(cls, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> "BatchNorm":
        """A BatchNorm holding the values (and dtype) of an nn.BatchNorm1d or nn.BatchNorm2d."""
        if not isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
            raise TypeError(f"from_torch takes nn.BatchNorm1d or nn.BatchNorm2d, got {type(bn).__name__}")
        if not (bn.affine and bn.track_running_stats):
            raise ValueError("from_torch needs a batch norm with affine=True and track_running_stats=True")
        num_dims = 2 if isinstance(bn, nn.BatchNorm1d) else 4
        new = cls(bn.num_features, num_dims, bn.eps, bn.momentum).to(bn.weight.device, bn.weight.dtype)
        with torch.no_grad():
            new.gamma.copy_(bn.weight.reshape(new.gamma.shape))
            new.beta.copy_(bn.bias.reshape(new.beta.shape))
            new.moving_mean.copy_(bn.running_mean.reshape(new.moving_mean.shape))
            new.moving_var.copy_(bn.running_var.reshape(new.moving_var.shape))
            if new.num_batches_tracked is not None:
                new.num_batches_tracked.copy_(bn.num_batches_tracked)
        return new.train(bn.training)


# ----------------------------------------------------------------------------------------------
# Layer, group and instance normalization from scratch: batch norm's formula over other axes


def _standardize(X: torch.Tensor, dims: tuple[int, ...], eps: float) -> torch.Tensor:
    """(X - mean) / sqrt(var + eps) with the mean and biased variance over `dims`."""
    mean = X.mean(dim=dims, keepdim=True)
    var = ((X - mean) ** 2).mean(dim=dims, keepdim=True)
    return (X - mean) / torch.sqrt(var + eps)


def _per_channel(p: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    return p.reshape(1, -1, *([1] * (X.dim() - 2)))  # (C,) -> (1, C, 1, ...), broadcasts against X


def layer_norm(X: torch.Tensor, normalized_shape: Sequence[int], weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """LN(x) = weight * (x - mu) / sqrt(sigma^2 + eps) + bias, mu and sigma^2 over the last dims (Ba et al. 2016).

    The statistics are those of each example alone (over its last len(normalized_shape) dims,
    which must equal normalized_shape), so the layer does the same in training and evaluation and
    does not depend on the batch. weight and bias have shape normalized_shape.
    """
    normalized_shape = tuple(normalized_shape)
    if tuple(X.shape[X.dim() - len(normalized_shape):]) != normalized_shape:
        raise ValueError(f"layer_norm normalizes the last dims {normalized_shape}, got input of shape {tuple(X.shape)}")
    Y = _standardize(X, tuple(range(-len(normalized_shape), 0)), eps)
    if weight is not None:
        Y = Y * weight
    return Y if bias is None else Y + bias


def group_norm(X: torch.Tensor, num_groups: int, weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """GN(x): the C channels of each example split into num_groups groups, each standardized over
    its channels and positions, then one scale and shift per channel (Wu & He 2018).

    X is (N, C, ...). num_groups = 1 normalizes each example over all of (C, H, W), layer norm with
    per-channel affine; num_groups = C normalizes each channel of each example alone, instance norm.
    """
    N, C = X.shape[:2]
    if C % num_groups:
        raise ValueError(f"group_norm needs the {C} channels to split evenly into {num_groups} groups")
    Y = _standardize(X.reshape(N, num_groups, -1), (2,), eps).reshape(X.shape)  # (N, G, C/G * H * W) -> X's shape
    if weight is not None:
        Y = Y * _per_channel(weight, X)
    return Y if bias is None else Y + _per_channel(bias, X)


def instance_norm(X: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                  running_mean: torch.Tensor | None = None, running_var: torch.Tensor | None = None,
                  eps: float = 1e-5, momentum: float = 0.1, *, training: bool = True):
    """IN(x): each channel of each example standardized over its positions (Ulyanov et al. 2016);
    returns (Y, running_mean, running_var).

    X is (N, C, H, W) (or any (N, C, ...)). Without running statistics (None, torch's default)
    training and evaluation both use each instance's own mean and variance. With them, training
    also updates running = (1 - momentum) running + momentum * (the batch average of the
    instances' means, and of their unbiased variances), and evaluation normalizes with the running
    values, as nn.InstanceNorm2d(track_running_stats=True).
    """
    if X.dim() < 3:
        raise ValueError(f"instance_norm takes (N, C, H, W) or (N, C, ...) inputs, got shape {tuple(X.shape)}")
    dims = tuple(range(2, X.dim()))
    tracking = running_mean is not None and running_var is not None
    if tracking and not training:
        Y = (X - _per_channel(running_mean, X)) / torch.sqrt(_per_channel(running_var, X) + eps)
    else:
        Y = _standardize(X, dims, eps)
        if tracking:
            n = math.prod(X.shape[2:])  # values per instance
            with torch.no_grad():  # the running averages are statistics, not part of the graph
                mean = X.mean(dim=dims).mean(dim=0)  # (C,)
                var = X.var(dim=dims, correction=1).mean(dim=0) if n > 1 else torch.zeros_like(mean)
                running_mean = (1.0 - momentum) * running_mean + momentum * mean
                running_var = (1.0 - momentum) * running_var + momentum * var
    if weight is not None:
        Y = Y * _per_channel(weight, X)
    if bias is not None:
        Y = Y + _per_channel(bias, X)
    return Y, running_mean, running_var


class LayerNorm(nn.Module):
    """Layer normalization by hand, computing what nn.LayerNorm computes.

    `weight` and `bias` (torch's names, so a state dict loads into either) have shape
    normalized_shape and start at 1 and 0.
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = nn.Parameter(torch.ones(shape)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(shape)) if elementwise_affine else None

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return layer_norm(X, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"


class GroupNorm(nn.Module):
    """Group normalization by hand, computing what nn.GroupNorm computes; per-channel `weight` and `bias`."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must split evenly into num_groups ({num_groups}) groups")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = nn.Parameter(torch.ones(num_channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels)) if affine else None

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return group_norm(X, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.weight is not None}"


class InstanceNorm(nn.Module):
    """Instance normalization by hand, computing what nn.InstanceNorm2d computes, with its defaults:
    no affine parameters and no running statistics unless asked for (affine, track_running_stats).

    momentum=None is accepted, as nn.InstanceNorm2d accepts it, and does what that layer does:
    unlike nn.BatchNorm2d it takes None as momentum 0 rather than a cumulative average, so the running
    statistics keep their initial values (0 and 1) through training and evaluation normalizes with those.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.track_running_stats = track_running_stats
        self.register_buffer("running_mean", torch.zeros(num_features) if track_running_stats else None)
        self.register_buffer("running_var", torch.ones(num_features) if track_running_stats else None)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y, running_mean, running_var = instance_norm(
            X, self.weight, self.bias, self.running_mean, self.running_var, self.eps,
            0.0 if self.momentum is None else self.momentum, training=self.training,
        )
        if self.track_running_stats:
            self.running_mean, self.running_var = running_mean, running_var
        return Y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.weight is not None}, "
                f"track_running_stats={self.track_running_stats}")


NORMS = ("batch", "layer", "group", "instance", "none")


def norm_layers(norm: str, num_features: int, num_dims: int, scratch: bool = True, num_groups: int = 2) -> list[nn.Module]:
    """The normalization `norm` for a layer's (N, C) (num_dims=2) or (N, C, H, W) (num_dims=4) output, as a list
    of zero or one layer, hand-written (scratch) or torch's.

        batch     BatchNorm                  nn.BatchNorm1d / 2d
        layer     LayerNorm(C) on (N, C); GroupNorm(1, C) on (N, C, H, W): each example over all of (C, H, W),
                  one scale and shift per channel
        group     GroupNorm(num_groups, C)
        instance  InstanceNorm(C, affine=True) on (N, C, H, W); nothing on (N, C), which has no positions
                  to normalize over (each value alone would become 0)
        none      nothing
    """
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}.{did_you_mean(norm, NORMS)} "
                          "Pass one as --model-arg norm=NAME")
    conv = num_dims == 4
    if norm == "batch":
        if scratch:
            return [BatchNorm(num_features, num_dims)]
        return [nn.BatchNorm2d(num_features) if conv else nn.BatchNorm1d(num_features)]
    if norm == "layer" and not conv:
        return [LayerNorm(num_features) if scratch else nn.LayerNorm(num_features)]
    if norm in ("layer", "group"):
        groups = 1 if norm == "layer" else num_groups
        if num_features % groups:
            raise ConfigError(f"norm=group needs num_groups ({groups}) to divide every layer's width; "
                              f"{num_features} is not a multiple. Choose another num_groups")
        return [GroupNorm(groups, num_features) if scratch else nn.GroupNorm(groups, num_features)]
    if norm == "instance" and conv:
        return [InstanceNorm(num_features, affine=True) if scratch else nn.InstanceNorm2d(num_features, affine=True)]
    return []


# ----------------------------------------------------------------------------------------------
# 8.6 ResNet (the stem is shared with DenseNet, and without batch norm with GoogLeNet)


def stem(in_channels: int, num_channels: int = 64, with_bn: bool = True) -> nn.Sequential:
    """The first block b1 of GoogLeNet, ResNet and DenseNet: 7x7 conv (stride 2), [BN], ReLU, 3x3 max pool (stride 2).

    Together the stride-2 conv and pool divide H and W by 4.
    """
    conv = nn.Conv2d(in_channels, num_channels, kernel_size=7, stride=2, padding=3)
    norm = [nn.BatchNorm2d(num_channels)] if with_bn else []
    return nn.Sequential(conv, *norm, nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


class Residual(nn.Module):
    """The ResNet residual block (book 8.6): Y = ReLU(BN(conv2(ReLU(BN(conv1(X))))) + shortcut(X)).

    Both convs are 3x3; conv1 has stride `strides`. The shortcut is X itself, or with
    use_1x1conv a 1x1 conv (conv3) with the same stride, needed when the block changes the number
    of channels or the height and width. As in the book, the convs keep their biases and the
    1x1 shortcut has no batch norm.
    """

    expansion = 1  # output channels = expansion * num_channels

    def __init__(self, in_channels: int, num_channels: int, use_1x1conv: bool = False, strides: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(in_channels, num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3 is not None:
            X = self.conv3(X)
        return F.relu(Y + X)


class Bottleneck(nn.Module):
    """The bottleneck residual block of ResNet-50 and deeper (He et al. 2016; an exercise of book 8.6).

    1x1 conv down to num_channels, 3x3 conv with stride `strides`, 1x1 conv up to 4 * num_channels,
    each followed by BN (and ReLU but the last); then Y + shortcut(X) and ReLU. The 3x3 conv
    carries the stride (as torchvision's "ResNet v1.5" does). Written in the style of the book's
    Residual: convs keep their biases and the 1x1 shortcut conv (conv4) has no batch norm.
    """

    expansion = 4

    def __init__(self, in_channels: int, num_channels: int, use_1x1conv: bool = False, strides: int = 1):
        super().__init__()
        out_channels = self.expansion * num_channels
        self.conv1 = nn.Conv2d(in_channels, num_channels, kernel_size=1)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv3 = nn.Conv2d(num_channels, out_channels, kernel_size=1)
        self.conv4 = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = F.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        if self.conv4 is not None:
            X = self.conv4(X)
        return F.relu(Y + X)


# ----------------------------------------------------------------------------------------------
# 8.7 DenseNet


def conv_block(in_channels: int, num_channels: int) -> nn.Sequential:
    """DenseNet's BN, ReLU, 3x3 conv (the 'pre-activation' order of the later ResNet)."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels), nn.ReLU(),
        nn.Conv2d(in_channels, num_channels, kernel_size=3, padding=1),
    )


class DenseBlock(nn.Module):
    """num_convs conv_blocks, each fed the concatenation of the block's input and all earlier outputs (book 8.7).

    Each conv_block adds num_channels (the growth rate) channels, so the output has
    in_channels + num_convs * num_channels channels and the same H and W.
    """

    def __init__(self, num_convs: int, in_channels: int, num_channels: int):
        super().__init__()
        self.net = nn.Sequential(*(conv_block(in_channels + i * num_channels, num_channels) for i in range(num_convs)))
        self.out_channels = in_channels + num_convs * num_channels

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)  # (N, C + num_channels, H, W)
        return X


def transition_block(in_channels: int, num_channels: int) -> nn.Sequential:
    """DenseNet's transition layer: BN, ReLU, 1x1 conv to num_channels, 2x2 average pool halving H and W."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels), nn.ReLU(),
        nn.Conv2d(in_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2),
    )
