"""Chapter 3: the hand-written ops against torch, and the models recovering known parameters."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import divekit as dk
from divekit.models.linear import cross_entropy, log_softmax, softmax, squared_loss
from divekit.ops.optim import SGD
from divekit.train.api import resolve_config


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 16), k=st.integers(2, 12), scale=st.sampled_from([1.0, 30.0, 1e4]), seed=st.integers(0, 10_000))
def test_softmax_and_cross_entropy_match_torch(n, k, scale, seed):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, k, generator=g, dtype=torch.float64) * scale).requires_grad_()
    y = torch.randint(0, k, (n,), generator=g)
    torch.testing.assert_close(softmax(logits), torch.softmax(logits, 1))
    torch.testing.assert_close(log_softmax(logits), torch.log_softmax(logits, 1))
    ours = cross_entropy(logits, y)
    theirs = F.cross_entropy(logits, y)
    torch.testing.assert_close(ours, theirs)
    (g1,) = torch.autograd.grad(ours, logits)
    (g2,) = torch.autograd.grad(theirs, logits)
    torch.testing.assert_close(g1, g2)


def test_cross_entropy_is_finite_for_huge_logits():
    logits = torch.tensor([[1e4, -1e4, 0.0], [0.0, 5e3, -5e3]], requires_grad=True)
    y = torch.tensor([1, 2])  # both true classes have probability that underflows to 0
    loss = cross_entropy(logits, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    torch.testing.assert_close(loss, F.cross_entropy(logits, y))
    assert torch.isfinite(softmax(logits)).all()


def test_squared_loss_is_half_mse():
    y_hat, y = torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 1.0])
    assert squared_loss(y_hat, y).item() == pytest.approx((1 + 4) / 2 / 2)


def test_scratch_sgd_matches_torch_sgd():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(a.detach().clone())
    ours, theirs = SGD([a], lr=0.05), torch.optim.SGD([b], lr=0.05)
    for step in range(100):
        x = torch.randn(4, 5)
        for p, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            ((x @ p) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["linear-regression-scratch", "linear-regression"])
def test_linear_regression_recovers_true_parameters(name):
    result = dk.fit(name, "synthetic-linear", resolve_config(model=name), run_dir=False, progress=False)
    w, b = result.model.weights()
    torch.testing.assert_close(w, torch.tensor([2.0, -3.4]), atol=0.02, rtol=0)
    assert abs(b.item() - 4.2) < 0.02


@pytest.mark.parametrize("name", ["softmax-regression", "softmax-regression-scratch"])
def test_softmax_models_output_logits_of_right_shape(name):
    model = dk.create_model(name, num_classes=10, in_shape=(1, 28, 28))
    out = model(torch.rand(5, 1, 28, 28))
    assert out.shape == (5, 10)


def test_scratch_and_concise_softmax_regression_agree():
    """Same weights -> same logits, same loss, same gradients."""
    scratch = dk.create_model("softmax-regression-scratch", num_classes=10, in_shape=(1, 8, 8))
    concise = dk.create_model("softmax-regression", num_classes=10, in_shape=(1, 8, 8))
    with torch.no_grad():
        concise.net[1].weight.copy_(scratch.W.T)
        concise.net[1].bias.copy_(scratch.b)
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))
    torch.testing.assert_close(scratch(x), concise(x))
    scratch.loss(scratch(x), y).backward()
    F.cross_entropy(concise(x), y).backward()
    torch.testing.assert_close(scratch.W.grad, concise.net[1].weight.grad.T)
    torch.testing.assert_close(scratch.b.grad, concise.net[1].bias.grad)
