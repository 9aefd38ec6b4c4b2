"""Chapter 6 blocks: shapes, hand-written Sequential vs torch's, constants, tied parameters, access by name."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from divekit.core.errors import DivekitError
from divekit.models.blocks import (
    MLP,
    CenteredLayer,
    FixedHiddenMLP,
    MyLinear,
    MySequential,
    NestMLP,
    chimera,
    named_parameter_table,
    tied_mlp,
)


@pytest.fixture
def X():
    return torch.randn(2, 20, generator=torch.Generator().manual_seed(0))


def test_output_shapes(X):
    torch.manual_seed(0)
    assert MLP()(X).shape == (2, 10)  # lazy input size, as in the book
    assert MLP(20)(X).shape == (2, 10)
    assert NestMLP(20)(X).shape == (2, 16)
    assert chimera(20)(X).shape == ()
    assert MyLinear(20, 3)(X).shape == (2, 3)
    assert CenteredLayer()(X).shape == (2, 20)
    assert tied_mlp()(X).shape == (2, 1)


def test_lazy_mlp_takes_its_input_size_from_the_first_call(X):
    net = MLP()
    net(X)
    assert net.hidden.weight.shape == (256, 20)


def test_my_sequential_matches_nn_sequential(X):
    torch.manual_seed(0)
    # 12 layers: enough that ordering children as strings ('10' < '2') would change the result
    layers = [m for _ in range(4) for m in (nn.Linear(20, 20), nn.Tanh(), nn.Linear(20, 20))]
    ours, theirs = MySequential(*layers), nn.Sequential(*layers)
    torch.testing.assert_close(ours(X), theirs(X), rtol=0, atol=0)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert len(list(ours.parameters())) == len(list(theirs.parameters())) == 16


def test_fixed_hidden_mlp_constant_weight_is_not_trained(X):
    torch.manual_seed(0)
    net = FixedHiddenMLP(generator=torch.Generator().manual_seed(1))
    out = net(X)
    out.backward()
    assert not net.rand_weight.requires_grad and net.rand_weight.grad is None
    assert all(p is not net.rand_weight for p in net.parameters())
    assert [name for name, _ in net.named_parameters()] == ["linear.weight", "linear.bias"]
    assert "rand_weight" in net.state_dict()  # a buffer: saved and moved with the block
    assert net.linear.weight.grad is not None and net.linear.weight.grad.abs().sum() > 0
    # the same function written out: the one layer used twice, then halving until sum |X| <= 1
    W, b = net.linear.weight, net.linear.bias
    H = F.linear(F.relu(F.linear(X, W, b) @ net.rand_weight + 1), W, b)
    while H.abs().sum() > 1:
        H = H / 2
    torch.testing.assert_close(out, H.sum())
    assert abs(out.item()) <= 1


def test_tied_parameters_are_one_tensor_and_sum_both_gradients(X):
    torch.manual_seed(0)
    net = tied_mlp()
    assert net[2] is net[4]
    assert net[2].weight is net[4].weight
    assert net[2].weight.data_ptr() == net[4].weight.data_ptr()
    # the same net with positions 2 and 4 as separate copies holding equal values
    untied = nn.Sequential(*[copy.deepcopy(m) for m in net])
    assert untied[2].weight is not untied[4].weight
    torch.testing.assert_close(net(X), untied(X), rtol=0, atol=0)
    net(X).sum().backward()
    untied(X).sum().backward()
    both = untied[2].weight.grad + untied[4].weight.grad
    torch.testing.assert_close(net[2].weight.grad, both)
    torch.testing.assert_close(net[2].bias.grad, untied[2].bias.grad + untied[4].bias.grad)
    assert not torch.allclose(net[2].weight.grad, untied[2].weight.grad)
    # changing one changes the other
    with torch.no_grad():
        net[2].weight[0, 0] = 100.0
    assert net[4].weight[0, 0] == 100.0


def test_centered_layer_has_zero_mean_and_no_parameters():
    X = torch.randn(4, 8, generator=torch.Generator().manual_seed(0)) + 5.0
    Y = CenteredLayer()(X)
    assert abs(Y.mean().item()) < 1e-6
    torch.testing.assert_close(Y, X - 5.0 - (X - 5.0).mean())
    assert list(CenteredLayer().parameters()) == []
    net = nn.Sequential(nn.Linear(8, 128), CenteredLayer())
    assert abs(net(X).mean().item()) < 1e-6


def test_my_linear_is_relu_of_affine_and_trains(X):
    layer = MyLinear(20, 3, generator=torch.Generator().manual_seed(0))
    assert layer.weight.shape == (20, 3) and layer.bias.shape == (3,)
    Y = layer(X)
    torch.testing.assert_close(Y, torch.clamp(X @ layer.weight.detach() + layer.bias.detach(), min=0))
    Y.sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_parameter_access_by_name():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    assert named_parameter_table(net) == [
        ("0.weight", (8, 4), 32),
        ("0.bias", (8,), 8),
        ("2.weight", (1, 8), 8),
        ("2.bias", (1,), 1),
    ]
    assert net.state_dict()["2.bias"] is not None
    torch.testing.assert_close(net.state_dict()["2.bias"], net[2].bias.data)


def test_parameter_table_lists_a_tied_parameter_once():
    net = tied_mlp(num_inputs=20, num_hiddens=8)
    names = [name for name, _, _ in named_parameter_table(net)]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias"]
    assert "4.weight" in net.state_dict()  # state_dict keeps both names for the one tensor
    assert sum(n for _, _, n in named_parameter_table(net)) == sum(p.numel() for p in net.parameters())


def test_parameter_table_of_a_lazy_block_asks_for_a_forward_pass(X):
    net = MLP()
    with pytest.raises(DivekitError, match="forward pass"):
        named_parameter_table(net)
    net(X)
    assert named_parameter_table(net)[0] == ("hidden.weight", (256, 20), 5120)
