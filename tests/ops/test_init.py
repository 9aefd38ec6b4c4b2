"""Initializations: statistics against their formulas, draws against torch.nn.init, apply_init's reach."""

import math
from functools import partial

import pytest
import torch
import torch.nn as nn

from divekit.core.errors import DivekitError
from divekit.models.blocks import NestMLP, tied_mlp
from divekit.ops.init import (
    apply_init,
    book_custom_,
    constant_,
    fan_in_and_fan_out,
    kaiming_normal_,
    kaiming_uniform_,
    normal_,
    xavier_normal_,
    xavier_uniform_,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# (n_out, n_in) = (600, 1400): not square, so swapping fan-in and fan-out changes Kaiming's numbers
N_OUT, N_IN = 600, 1400


def test_fans_of_linear_and_conv_weights():
    assert fan_in_and_fan_out(torch.empty(N_OUT, N_IN)) == (N_IN, N_OUT)
    assert fan_in_and_fan_out(torch.empty(16, 8, 3, 3)) == (8 * 9, 16 * 9)
    with pytest.raises(DivekitError, match="at least 2"):
        fan_in_and_fan_out(torch.empty(5))


def test_normal_std():
    W = normal_(torch.empty(1000, 1000), std=0.01, generator=gen())
    assert W.std().item() == pytest.approx(0.01, rel=0.02)
    assert abs(W.mean().item()) < 1e-4


def test_xavier_uniform_bounds_and_variance():
    W = xavier_uniform_(torch.empty(N_OUT, N_IN), generator=gen())
    a = math.sqrt(6 / (N_IN + N_OUT))
    assert W.abs().max().item() <= a
    assert W.abs().max().item() > 0.999 * a
    assert W.var().item() == pytest.approx(2 / (N_IN + N_OUT), rel=0.03)


def test_xavier_normal_std():
    W = xavier_normal_(torch.empty(N_OUT, N_IN), generator=gen())
    assert W.std().item() == pytest.approx(math.sqrt(2 / (N_IN + N_OUT)), rel=0.02)


def test_kaiming_uses_fan_in():
    W = kaiming_normal_(torch.empty(N_OUT, N_IN), generator=gen())
    assert W.std().item() == pytest.approx(math.sqrt(2 / N_IN), rel=0.02)
    U = kaiming_uniform_(torch.empty(N_OUT, N_IN), generator=gen())
    assert U.abs().max().item() <= math.sqrt(6 / N_IN)
    assert U.abs().max().item() > 0.999 * math.sqrt(6 / N_IN)
    assert U.var().item() == pytest.approx(2 / N_IN, rel=0.03)


@pytest.mark.parametrize("shape", [(N_OUT, N_IN), (16, 8, 3, 3)])
def test_same_draws_as_torch_nn_init(shape):
    pairs = [
        (xavier_uniform_, nn.init.xavier_uniform_),
        (xavier_normal_, nn.init.xavier_normal_),
        (kaiming_normal_, partial(nn.init.kaiming_normal_, nonlinearity="relu")),
        (kaiming_uniform_, partial(nn.init.kaiming_uniform_, nonlinearity="relu")),
        (partial(normal_, std=0.01), partial(nn.init.normal_, std=0.01)),
    ]
    for ours, theirs in pairs:
        expected = theirs(torch.empty(shape), generator=gen(3))
        torch.testing.assert_close(ours(torch.empty(shape), generator=gen(3)), expected)


def test_xavier_gain_scales_the_bound():
    W = xavier_uniform_(torch.empty(N_OUT, N_IN), gain=2.0, generator=gen())
    assert W.abs().max().item() > 0.999 * 2 * math.sqrt(6 / (N_IN + N_OUT))


def test_constant_is_exact():
    W = constant_(torch.empty(300, 400), 42.0)
    assert torch.equal(W, torch.full((300, 400), 42.0))


def test_book_custom_init_zeroes_small_entries():
    W = book_custom_(torch.empty(1000, 1000), generator=gen())
    nonzero = W[W != 0].abs()
    assert nonzero.min().item() >= 5 and nonzero.max().item() <= 10
    assert (W == 0).float().mean().item() == pytest.approx(0.5, abs=0.005)
    assert (W > 0).float().mean().item() == pytest.approx(0.25, abs=0.005)


def test_init_works_on_parameters_that_require_grad():
    layer = nn.Linear(3, 2)
    xavier_uniform_(layer.weight)  # in place on a leaf that requires grad: needs no_grad inside
    assert layer.weight.requires_grad and layer.weight.grad_fn is None


def conv_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 10)
    )


def test_apply_init_touches_only_the_given_layer_types():
    net = conv_net()
    conv_before = {k: v.clone() for k, v in net[0].state_dict().items()}
    done = apply_init(net, {nn.Linear: partial(constant_, value=1.0)})
    assert done == ["3", "5"]
    for i in (3, 5):
        assert torch.equal(net[i].weight, torch.ones_like(net[i].weight))
        assert torch.equal(net[i].bias, torch.zeros_like(net[i].bias))
    for k, v in net[0].state_dict().items():
        assert torch.equal(v, conv_before[k])


def test_apply_init_per_type_rules():
    net = conv_net()
    g = gen(1)
    rules = {nn.Conv2d: partial(kaiming_normal_, generator=g), nn.Linear: partial(constant_, value=42.0)}
    done = apply_init(net, rules, bias=None)
    assert done == ["0", "3", "5"]
    expected_conv = kaiming_normal_(torch.empty(4, 1, 3, 3), generator=gen(1))
    assert torch.equal(net[0].weight, expected_conv)
    assert (net[3].weight == 42).all() and not (net[3].bias == 0).all()  # bias=None leaves biases alone


def test_apply_init_only_by_name():
    net = conv_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert apply_init(net, {nn.Linear: partial(constant_, value=1.0)}, only="5") == ["5"]
    assert (net[5].weight == 1).all()
    assert torch.equal(net[3].weight, before["3.weight"])


def test_apply_init_only_reaches_into_a_named_block():
    net = NestMLP(20)
    before = net.linear.weight.clone()
    assert apply_init(net, {nn.Linear: partial(constant_, value=1.0)}, only="net") == ["net.0", "net.2"]
    assert (net.net[0].weight == 1).all() and (net.net[2].weight == 1).all()
    assert torch.equal(net.linear.weight, before)


def test_apply_init_unknown_name_is_an_error():
    with pytest.raises(DivekitError, match="no layer is named like"):
        apply_init(conv_net(), {nn.Linear: xavier_uniform_}, only="7")


def test_apply_init_uses_the_rule_of_a_subclass_base_and_inits_a_shared_layer_once():
    class MyLinear(nn.Linear):
        """A subclass: the rule for nn.Linear applies to it."""

    net = nn.Sequential(MyLinear(3, 3), nn.ReLU(), nn.Linear(3, 3))
    assert apply_init(net, {nn.Linear: partial(constant_, value=2.0)}) == ["0", "2"]
    assert (net[0].weight == 2).all()
    assert apply_init(tied_mlp(), {nn.Linear: xavier_uniform_}) == ["0", "2", "6"]


def test_apply_init_is_repeatable_with_a_generator():
    a, b = conv_net(), conv_net()
    with torch.no_grad():
        b[3].weight.add_(1.0)  # start from different values
    for net in (a, b):
        apply_init(net, {nn.Linear: partial(xavier_uniform_, generator=gen(7))})
    assert torch.equal(a[3].weight, b[3].weight) and torch.equal(a[5].weight, b[5].weight)
    assert not torch.equal(a[3].weight[:10, 0], a[5].weight[:10, 0])


def test_apply_init_on_an_unrun_lazy_layer_asks_for_a_forward_pass():
    with pytest.raises(DivekitError, match="forward pass"):
        apply_init(nn.Sequential(nn.LazyLinear(4)), {nn.Linear: xavier_uniform_})
