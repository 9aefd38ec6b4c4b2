"""The hand-written batch normalization against nn.BatchNorm1d / nn.BatchNorm2d, and BN-LeNet."""

import pytest
import torch
import torch.nn as nn
from helpers import assert_same_forward_backward

from divekit.models import create_model
from divekit.models.layers import BatchNorm, batch_norm

pytestmark = pytest.mark.usefixtures("one_thread")


def _pair(num_dims: int, num_features: int, seed: int = 0):
    torch.manual_seed(seed)
    ours = BatchNorm(num_features, num_dims)
    with torch.no_grad():  # non-trivial affine parameters, so a mix-up of gamma and beta shows
        ours.gamma.uniform_(0.5, 1.5)
        ours.beta.uniform_(-0.5, 0.5)
    return ours, ours.to_torch()


@pytest.mark.parametrize("num_dims,shape", [(2, (8, 5)), (4, (4, 3, 5, 6))])
def test_training_forward_backward_and_running_stats_match_torch(num_dims, shape):
    ours, theirs = _pair(num_dims, shape[1])
    for step in range(4):
        X = (torch.randn(shape) * (step + 1) + step).requires_grad_()
        X2 = X.detach().clone().requires_grad_()
        Y, Y2 = ours(X), theirs(X2)
        torch.testing.assert_close(Y, Y2, atol=1e-5, rtol=1e-5)
        w = torch.randn(shape)  # a random upstream gradient, so the sum is not trivially normalized away
        (Y * w).sum().backward()
        (Y2 * w).sum().backward()
        torch.testing.assert_close(X.grad, X2.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.gamma.grad.reshape(-1), theirs.weight.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.beta.grad.reshape(-1), theirs.bias.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.moving_mean.reshape(-1), theirs.running_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.moving_var.reshape(-1), theirs.running_var, atol=1e-5, rtol=1e-5)
    assert not torch.equal(theirs.running_var, torch.ones(shape[1]))  # the statistics did move

    ours.eval(), theirs.eval()
    X = torch.randn(shape) * 3 + 1
    torch.testing.assert_close(ours(X), theirs(X), atol=1e-5, rtol=1e-5)


def test_moving_variance_uses_the_unbiased_batch_variance():
    X = torch.tensor([[0.0], [2.0]])  # mean 1, biased variance 1, unbiased variance 2
    Y, moving_mean, moving_var = batch_norm(X, torch.ones(1, 1), torch.zeros(1, 1), torch.zeros(1, 1),
                                            torch.ones(1, 1), eps=0.0, momentum=0.1, training=True)
    torch.testing.assert_close(Y, torch.tensor([[-1.0], [1.0]]))  # normalized with the biased variance
    torch.testing.assert_close(moving_mean, torch.tensor([[0.1]]))  # 0.9 * 0 + 0.1 * 1
    torch.testing.assert_close(moving_var, torch.tensor([[1.1]]))  # 0.9 * 1 + 0.1 * 2


def test_eval_mode_and_no_grad_are_independent():
    bn = BatchNorm(3, 2)
    X = torch.randn(6, 3) * 5 + 2
    with torch.no_grad():  # training mode under no_grad still uses (and updates) batch statistics
        Y = bn(X)
    torch.testing.assert_close(Y.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    assert not torch.equal(bn.moving_mean, torch.zeros(1, 3))
    before = bn.moving_mean.clone()
    bn.eval()
    bn(X)  # eval mode with gradients enabled uses the moving statistics and leaves them alone
    assert torch.equal(bn.moving_mean, before)


def test_round_trip_through_torch():
    ours, _ = _pair(4, 3)
    ours(torch.randn(2, 3, 4, 4))
    back = BatchNorm.from_torch(ours.to_torch())
    for a, b in zip(ours.state_dict().values(), back.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("num_dims,shape", [(2, (8, 5)), (4, (4, 3, 5, 6))])
def test_momentum_none_is_torchs_cumulative_average(num_dims, shape):
    torch.manual_seed(0)
    ours = BatchNorm(shape[1], num_dims, momentum=None).double()
    theirs = ours.to_torch()
    assert theirs.momentum is None
    batches = [torch.randn(shape, dtype=torch.float64) * (step + 1) + step for step in range(3)]
    for X in batches:
        assert_same_forward_backward(ours, theirs, X)  # training: batch statistics; both update their averages
    assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 3
    dims = 0 if num_dims == 2 else (0, 2, 3)
    # the n-th batch weighs 1/n: the moving mean is the plain mean of the three batch means
    mean_of_means = torch.stack([X.mean(dim=dims) for X in batches]).mean(0)
    torch.testing.assert_close(ours.moving_mean.reshape(-1), mean_of_means)
    torch.testing.assert_close(theirs.running_mean, mean_of_means)
    torch.testing.assert_close(ours.moving_var.reshape(-1), theirs.running_var)
    ours.eval(), theirs.eval()
    assert_same_forward_backward(ours, theirs, batches[0] - 1)  # evaluation: the averages
    back = BatchNorm.from_torch(theirs)
    assert back.momentum is None and int(back.num_batches_tracked) == 3
    assert set(BatchNorm(3, 2).state_dict()) == {"gamma", "beta", "moving_mean", "moving_var"}  # no count


def test_one_value_per_feature_is_an_error_in_training():
    with pytest.raises(ValueError, match="more than 1 value"):
        BatchNorm(4, 2)(torch.randn(1, 4))


def _copy_scratch_to_concise(scratch: nn.Module, concise: nn.Module) -> None:
    for a, b in zip(scratch.net, concise.net):
        if isinstance(a, BatchNorm):
            b.load_state_dict(a.to_torch().state_dict())
        else:
            b.load_state_dict(a.state_dict())


def test_bn_lenet_scratch_and_concise_agree():
    torch.manual_seed(0)
    scratch = create_model("lenet-bn", in_shape=(1, 28, 28))
    concise = create_model("lenet-bn-concise", in_shape=(1, 28, 28))
    _copy_scratch_to_concise(scratch, concise)
    X = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(scratch(X), concise(X), atol=1e-5, rtol=1e-5)  # training mode: batch statistics
    scratch.eval(), concise.eval()
    torch.testing.assert_close(scratch(X), concise(X), atol=1e-5, rtol=1e-5)  # eval: the updated moving averages


def test_bn_lenet_learns():
    torch.manual_seed(0)
    model = create_model("lenet-bn", in_shape=(1, 28, 28))
    X, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses
