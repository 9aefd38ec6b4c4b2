"""The hand-written layer, group and instance normalization against nn.LayerNorm, nn.GroupNorm and
nn.InstanceNorm2d, in training and evaluation, forward and backward; LeNet with each norm."""

import math

import pytest
import torch
import torch.nn as nn
from helpers import assert_same_modules
from hypothesis import given, settings
from hypothesis import strategies as st

import divekit as dk
from divekit.models.layers import GroupNorm, InstanceNorm, LayerNorm, group_norm, layer_norm, norm_layers

FEW = settings(max_examples=15, deadline=None)


def _randomize_affine(ours: nn.Module, theirs: nn.Module, g: torch.Generator) -> None:
    """Random scale and shift in both, so a mix-up of weight and bias or of their shapes shows."""
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) + 0.5)
    theirs.load_state_dict(ours.state_dict())


def assert_same_in_train_and_eval(ours: nn.Module, theirs: nn.Module, shape, g: torch.Generator, steps: int = 2):
    """Forward, input gradient and parameter gradients agree for `steps` training batches, then in eval;
    and so do the running statistics, where there are any."""
    for mode in ["train"] * steps + ["eval"]:
        ours.train(mode == "train"), theirs.train(mode == "train")
        assert_same_modules(ours, theirs, torch.randn(shape, generator=g, dtype=torch.float64) * 2 + 1)
    for (name, buf), theirs_buf in zip(ours.named_buffers(), theirs.buffers()):
        torch.testing.assert_close(buf, theirs_buf.to(buf.dtype), msg=name)


@FEW
@given(n=st.integers(1, 4), shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       num_normalized=st.integers(1, 3), affine=st.booleans(), seed=st.integers(0, 9999))
def test_layer_norm_matches_torch(n, shape, num_normalized, affine, seed):
    normalized = shape[len(shape) - min(num_normalized, len(shape)):]
    ours = LayerNorm(normalized, elementwise_affine=affine).double()
    theirs = nn.LayerNorm(normalized, elementwise_affine=affine).double()
    g = torch.Generator().manual_seed(seed)
    _randomize_affine(ours, theirs, g)
    assert_same_in_train_and_eval(ours, theirs, (n, *shape), g)


@FEW
@given(n=st.integers(1, 4), groups=st.integers(1, 4), per_group=st.integers(1, 3),
       spatial=st.lists(st.integers(1, 4), min_size=0, max_size=2), affine=st.booleans(), seed=st.integers(0, 9999))
def test_group_norm_matches_torch(n, groups, per_group, spatial, affine, seed):
    c = groups * per_group
    ours, theirs = GroupNorm(groups, c, affine=affine).double(), nn.GroupNorm(groups, c, affine=affine).double()
    g = torch.Generator().manual_seed(seed)
    _randomize_affine(ours, theirs, g)
    if n * per_group * math.prod(spatial) == 1:
        return  # torch refuses a batch of one value per group (which normalizes to 0)
    assert_same_in_train_and_eval(ours, theirs, (n, c, *spatial), g)


@FEW
@given(n=st.integers(1, 4), c=st.integers(1, 4), h=st.integers(2, 5), w=st.integers(1, 5),
       affine=st.booleans(), track=st.booleans(), seed=st.integers(0, 9999))
def test_instance_norm_matches_torch(n, c, h, w, affine, track, seed):
    ours = InstanceNorm(c, affine=affine, track_running_stats=track).double()
    theirs = nn.InstanceNorm2d(c, affine=affine, track_running_stats=track).double()
    g = torch.Generator().manual_seed(seed)
    _randomize_affine(ours, theirs, g)
    assert_same_in_train_and_eval(ours, theirs, (n, c, h, w), g, steps=3)


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_with_momentum_none_matches_torch(affine):
    ours = InstanceNorm(3, momentum=None, affine=affine, track_running_stats=True).double()
    theirs = nn.InstanceNorm2d(3, momentum=None, affine=affine, track_running_stats=True).double()
    g = torch.Generator().manual_seed(0)
    _randomize_affine(ours, theirs, g)
    assert_same_in_train_and_eval(ours, theirs, (4, 3, 5, 5), g, steps=3)
    # what torch does with None here: momentum 0, not nn.BatchNorm2d's cumulative average
    assert torch.equal(ours.running_mean, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(ours.running_var, torch.ones(3, dtype=torch.float64))
    assert "momentum=None" in repr(ours)


def test_instance_norm_defaults_are_torchs():
    ours, theirs = InstanceNorm(3), nn.InstanceNorm2d(3)
    assert ours.track_running_stats is theirs.track_running_stats is False
    assert list(ours.parameters()) == [] and ours.running_mean is None
    tracked = InstanceNorm(3, track_running_stats=True)
    assert set(tracked.state_dict()) == {"running_mean", "running_var"}


def test_group_norm_with_one_group_is_layer_norm_and_with_c_groups_instance_norm():
    X = torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(group_norm(X, 1), layer_norm(X, X.shape[1:]))
    torch.testing.assert_close(group_norm(X, 4), InstanceNorm(4)(X))
    with pytest.raises(ValueError, match="split evenly"):
        GroupNorm(3, 4)


@pytest.mark.parametrize("norm", ["batch", "layer", "group", "instance"])  # none: the same network twice
def test_lenet_with_each_norm_scratch_equals_concise(norm):
    torch.manual_seed(0)
    ours = dk.create_model("lenet-bn", norm=norm)
    torch.manual_seed(0)
    theirs = dk.create_model("lenet-bn-concise", norm=norm)
    ours_sd = {k: v.reshape(-1) for k, v in ours.state_dict().items() if "num_batches" not in k}
    theirs_sd = {k: v.reshape(-1) for k, v in theirs.state_dict().items() if "num_batches" not in k}
    assert [v.shape for v in ours_sd.values()] == [v.shape for v in theirs_sd.values()]
    theirs.load_state_dict({k: v.reshape(theirs.state_dict()[k].shape) for k, v in zip(theirs_sd, ours_sd.values())},
                           strict=False)
    X = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    for mode in (True, False):
        ours.train(mode), theirs.train(mode)
        torch.testing.assert_close(ours(X), theirs(X), atol=1e-5, rtol=1e-5)
    kinds = {type(m).__name__ for m in ours.modules()}
    expected = {"batch": {"BatchNorm"}, "layer": {"GroupNorm", "LayerNorm"}, "group": {"GroupNorm"},
                "instance": {"InstanceNorm"}}
    assert kinds & {"BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm"} == expected[norm]


@pytest.mark.parametrize("model", ["lenet-bn", "lenet-bn-concise"])
def test_lenet_with_norm_none_is_lenet_bn_without_its_norm_layers(model):
    plain, with_bn = dk.create_model(model, norm="none"), dk.create_model(model)
    assert [type(m).__name__ for m in plain.net] == [
        "Conv2d", "Sigmoid", "AvgPool2d", "Conv2d", "Sigmoid", "AvgPool2d", "Flatten",
        "Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]
    norm_params = sum(p.numel() for m in with_bn.net if "Norm" in type(m).__name__ for p in m.parameters())
    assert norm_params == 2 * (6 + 16 + 120 + 84)  # a scale and a shift per feature
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in with_bn.parameters()) - norm_params


def test_norm_errors_name_the_choices():
    with pytest.raises(dk.ConfigError, match="norm must be one of batch, layer, group, instance, none"):
        dk.create_model("lenet-bn", norm="weight")
    with pytest.raises(dk.ConfigError, match="num_groups"):
        dk.create_model("lenet-bn", norm="group", num_groups=4)  # 6 channels
    assert norm_layers("instance", 84, num_dims=2) == []
