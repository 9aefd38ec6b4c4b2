"""The from-scratch activations against torch.nn.functional, forward and backward, on random inputs,
at exactly 0, and far out on both sides (where a careless exp overflows to a nan gradient)."""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_same_forward_backward

from divekit.ops.activations import ACTIVATIONS, elu, gelu, leaky_relu, prelu, relu, selu, silu


def _inputs(shape=(4, 3, 5, 5), seed=0):
    X = 3 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    X.view(-1)[:5] = torch.tensor([0.0, -100.0, 100.0, -1e-3, 1e-3], dtype=torch.float64)
    return X


CASES = {
    "relu": (relu, F.relu),  # at exactly 0 too: gradient 0, as torch's
    "leaky-relu": (lambda x: leaky_relu(x), lambda x: F.leaky_relu(x)),
    "leaky-relu 0.2": (lambda x: leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2)),
    "elu": (lambda x: elu(x), lambda x: F.elu(x)),
    "elu alpha 0.5": (lambda x: elu(x, 0.5), lambda x: F.elu(x, 0.5)),
    "selu": (selu, F.selu),
    "gelu": (gelu, F.gelu),
    "gelu tanh": (lambda x: gelu(x, "tanh"), lambda x: F.gelu(x, approximate="tanh")),
    "silu": (silu, F.silu),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_activation_matches_torch_forward_and_backward(name, dtype):
    ours, theirs = CASES[name]
    # absolute tolerances only, at 0 and far out too, where a careless exp gives a nan or inf gradient
    assert_same_forward_backward(ours, theirs, _inputs().to(dtype), atol=1e-12 if dtype == torch.float64 else 1e-5,
                                 rtol=0)


@pytest.mark.parametrize("slopes", [1, 3])
def test_prelu_matches_torch_in_the_input_and_the_learned_slope(slopes):
    X = _inputs()
    a = torch.tensor([0.25, -0.1, 0.7][:slopes], dtype=torch.float64)
    assert_same_forward_backward(prelu, F.prelu, X, a, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="one per channel"):
        prelu(X, torch.ones(2, dtype=torch.float64))


def test_known_values():
    x = torch.tensor([-1.0, 0.0, 2.0])
    assert torch.equal(leaky_relu(x), torch.tensor([-0.01, 0.0, 2.0]))
    torch.testing.assert_close(elu(x), torch.tensor([torch.e ** -1 - 1, 0.0, 2.0]))
    torch.testing.assert_close(gelu(torch.tensor([0.0, 10.0])), torch.tensor([0.0, 10.0]))  # Phi(10) = 1
    torch.testing.assert_close(silu(torch.tensor([0.0, 1.0])), torch.tensor([0.0, 1 / (1 + torch.e ** -1)]))
    with pytest.raises(ValueError, match="approximate"):
        gelu(x, "erf")


def test_selu_keeps_standard_normal_activations_standard():
    y = selu(torch.randn(1_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert abs(y.mean().item()) < 0.01 and abs(y.var().item() - 1) < 0.01


def test_registry_names_every_function():
    assert list(ACTIVATIONS) == ["relu", "sigmoid", "tanh", "leaky-relu", "elu", "selu", "prelu", "gelu", "silu"]
    torch.testing.assert_close(ACTIVATIONS["prelu"](torch.tensor([-4.0, 4.0])), torch.tensor([-1.0, 4.0]))
