"""The hand-written activation layers against torch's, and `activation=NAME` in the MLP, LeNet and VGG."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import assert_same_modules

import divekit as dk
from divekit.book import stability
from divekit.models import layers
from divekit.ops import activations as act

NAMES = list(layers.ACTIVATION_LAYERS)


@pytest.mark.parametrize("name", NAMES)
def test_scratch_layer_matches_torch_layer_forward_and_backward(name):
    ours, theirs = layers.activation_layer(name, scratch=True), layers.activation_layer(name)
    theirs.load_state_dict(ours.state_dict())  # PReLU: the same slope, under the same name
    assert_same_modules(ours, theirs, 3 * torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(0)))


def test_every_activation_table_names_the_same_activations_in_the_same_order():
    names = list(act.ACTIVATIONS)  # the one list; the others must follow it
    assert list(layers.ACTIVATION_LAYERS) == list(layers.SCRATCH_ACTIVATION_LAYERS) == names
    assert stability.ACTIVATIONS is act.ACTIVATIONS  # the book's plots draw every one
    for name in names:  # each hand-written layer computes its function (PReLU at its initial slope)
        X = torch.linspace(-3, 3, 13)
        torch.testing.assert_close(layers.activation_layer(name, scratch=True)(X), act.ACTIVATIONS[name](X))


def test_prelu_layer_has_a_slope_per_channel():
    ours, theirs = layers.PReLU(3, init=0.1), nn.PReLU(3, init=0.1)
    X = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours(X), theirs(X))
    assert [n for n, _ in ours.named_parameters()] == ["weight"]


# torch's functions, the reference the models' activations must compute (PReLU at its initial slope)
REFERENCE = {"elu": F.elu, "gelu": F.gelu, "prelu": lambda X: F.prelu(X, torch.tensor([0.25]))}
ACTIVATION_TYPES = (*layers.ACTIVATION_LAYERS.values(), *layers.SCRATCH_ACTIVATION_LAYERS.values())


def first_activation_io(model: nn.Module, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(the output of the layer before the model's first activation, that activation's output, the model's output)."""
    leaves = [m for m in model.modules() if not list(m.children())]
    i = next(i for i, m in enumerate(leaves) if isinstance(m, ACTIVATION_TYPES))
    seen: dict[str, torch.Tensor] = {}
    handles = [leaves[i - 1].register_forward_hook(lambda m, inputs, out: seen.setdefault("before", out)),
               leaves[i].register_forward_hook(lambda m, inputs, out: seen.setdefault("after", out))]
    try:
        with torch.no_grad():
            out = model(X)
    finally:
        for h in handles:
            h.remove()
    return seen["before"], seen["after"], out


@pytest.mark.parametrize("model, in_shape", [("mlp", (1, 28, 28)), ("lenet", (1, 28, 28)),
                                             ("lenet-modern", (1, 28, 28)), ("lenet-bn", (1, 28, 28)),
                                             ("vgg11-small", (1, 32, 32))])
def test_models_take_every_activation(model, in_shape):
    for name in ("prelu",) if model == "vgg11-small" else ("elu", "gelu", "prelu"):  # vgg: 43M parameters
        m = dk.create_model(model, activation=name, in_shape=in_shape)
        kinds = {type(x).__name__ for x in m.modules()}
        expected = type(layers.activation_layer(name, scratch=model == "lenet-bn")).__name__
        assert expected in kinds and "Sigmoid" not in kinds and "ReLU" not in kinds
        X = torch.randn(2, *in_shape, generator=torch.Generator().manual_seed(0))
        before, after, out = first_activation_io(m, X)
        assert out.shape == (2, 10)
        torch.testing.assert_close(after, REFERENCE[name](before))  # the named function, on the layer before
        assert (before < 0).any() and (before > 0).any()  # both sides of the activation were tried
    prelus = sum(isinstance(x, (nn.PReLU, layers.PReLU)) for x in m.modules())
    assert sum(p.numel() for p in m.parameters()) == sum(
        p.numel() for p in dk.create_model(model, in_shape=in_shape).parameters()) + prelus  # one slope each


def test_default_activations_are_the_books():
    assert isinstance(dk.create_model("lenet").net[1], nn.Sigmoid)
    assert isinstance(dk.create_model("lenet-modern").net[1], nn.ReLU)
    assert isinstance(dk.create_model("mlp")[2], nn.ReLU)


@pytest.mark.parametrize("model", ["mlp", "lenet", "lenet-bn-concise", "vgg11-small"])
def test_unknown_activation_is_a_config_error_listing_the_names(model):
    with pytest.raises(dk.ConfigError, match="activation must be one of relu, sigmoid, tanh, leaky-relu, elu, selu, "
                                             "prelu, gelu, silu, got 'swish'"):
        dk.create_model(model, activation="swish")
