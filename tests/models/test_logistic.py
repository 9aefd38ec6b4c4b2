"""Binary logistic regression: the hand-written sigmoid and cross-entropies against torch, scratch
and concise models against each other, the hours-to-pass MLE, the binary task and the 8-6-4-1 net."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import divekit as dk
from divekit.book.demos import run_demo
from divekit.data.binary import HOURS_MLE
from divekit.models.linear import LinearRegressionScratch, squared_loss
from divekit.models.logistic import binary_cross_entropy, binary_cross_entropy_with_logits, sigmoid
from divekit.tasks.base import make_task
from divekit.tasks.binary import BinaryClassification
from divekit.train.api import resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")

# logits from ordinary to extreme: exp(-z) overflows float32 for z < -89
LOGITS = torch.tensor([-1000.0, -100.0, -20.0, -3.0, -0.5, 0.0, 0.5, 3.0, 20.0, 100.0, 1000.0], dtype=torch.float64)


def _grad(fn, x, *args):
    x = x.clone().requires_grad_(True)
    out = fn(x, *args)
    out.sum().backward()
    return out.detach(), x.grad


def test_sigmoid_matches_torch_forward_and_backward():
    for z in (LOGITS, torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 5):
        ours, g_ours = _grad(sigmoid, z)
        ref, g_ref = _grad(torch.sigmoid, z)
        assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-300)
        # atol: at z = 100 torch's s * (1 - s) rounds to 0, ours keeps the true 3.7e-44
        assert torch.allclose(g_ours, g_ref, rtol=1e-9, atol=1e-15)
    assert torch.isfinite(sigmoid(LOGITS.float())).all()


def test_binary_cross_entropy_matches_torch():
    g = torch.Generator().manual_seed(1)
    p = torch.rand(40, dtype=torch.float64, generator=g).clamp(1e-6, 1 - 1e-6)
    y = (torch.rand(40, dtype=torch.float64, generator=g) > 0.5).double()
    ours, g_ours = _grad(binary_cross_entropy, p, y)
    ref, g_ref = _grad(F.binary_cross_entropy, p, y)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    assert torch.allclose(g_ours, g_ref, rtol=1e-9)
    # probabilities of exactly 0 and 1: each log is clamped at -100 as in torch
    edge, labels = torch.tensor([0.0, 1.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0, 1.0])
    assert binary_cross_entropy(edge, labels).item() == pytest.approx(F.binary_cross_entropy(edge, labels).item())
    assert binary_cross_entropy(edge, labels).item() == pytest.approx(50.0)


def test_binary_cross_entropy_with_logits_matches_torch():
    y = (torch.arange(len(LOGITS)) % 2).double()
    ours, g_ours = _grad(binary_cross_entropy_with_logits, LOGITS, y)
    ref, g_ref = _grad(F.binary_cross_entropy_with_logits, LOGITS, y)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    assert torch.allclose(g_ours, g_ref, rtol=1e-9, atol=1e-300)
    assert torch.isfinite(ours)  # where log(sigmoid(z)) would be log(0) = -inf
    # the same as the cross-entropy of the probabilities where those are not rounded to 0 or 1
    z = LOGITS[3:8]
    assert binary_cross_entropy_with_logits(z, y[3:8]).item() == pytest.approx(
        binary_cross_entropy(sigmoid(z), y[3:8]).item(), rel=1e-9)


def test_scratch_and_concise_logistic_regression_agree():
    scratch = dk.create_model("logistic-regression-scratch", in_shape=(3,))
    concise = dk.create_model("logistic-regression", in_shape=(3,))
    with torch.no_grad():  # the same (non-trivial) weights in both
        scratch.w.normal_()
        scratch.b.fill_(0.3)
        concise.net[1].weight.copy_(scratch.w.T)
        concise.net[1].bias.copy_(scratch.b)
    X = torch.randn(16, 3, generator=torch.Generator().manual_seed(2))
    y = (X[:, 0] > 0).long()
    out_s, out_c = scratch(X), concise(X)
    assert out_s.shape == out_c.shape == (16, 1)
    torch.testing.assert_close(out_s, out_c)
    loss_s, loss_c = scratch.loss(out_s, y), concise.loss(out_c, y)
    torch.testing.assert_close(loss_s, loss_c)
    loss_s.backward()
    loss_c.backward()
    torch.testing.assert_close(scratch.w.grad.T, concise.net[1].weight.grad)
    torch.testing.assert_close(scratch.b.grad, concise.net[1].bias.grad)


def test_scratch_logistic_regression_is_the_scratch_linear_model_with_its_own_loss():
    torch.manual_seed(0)
    linear = dk.create_model("linear-regression-scratch", in_shape=(3,), sigma=0.5)
    torch.manual_seed(0)
    logistic = dk.create_model("logistic-regression-scratch", in_shape=(3,), sigma=0.5)
    assert isinstance(logistic, LinearRegressionScratch)
    # the same parameter names and draws, so either checkpoint loads into the other
    assert list(logistic.state_dict()) == list(linear.state_dict()) == ["w", "b"]
    torch.testing.assert_close(logistic.state_dict(), linear.state_dict())
    X = torch.randn(4, 3)
    torch.testing.assert_close(logistic(X), linear(X))
    assert logistic(X.reshape(4, 1, 3)).shape == (4, 1)  # logistic regression flattens its inputs
    y = torch.tensor([0, 1, 1, 0])
    assert logistic.loss(logistic(X), y) == binary_cross_entropy_with_logits(logistic(X), y)
    assert linear.loss(linear(X), y) == squared_loss(linear(X), y)


def test_binary_task_accuracy_at_one_half_and_its_error():
    task = make_task("binary-classification")
    assert isinstance(task, BinaryClassification)
    logits = torch.tensor([[2.0], [-1.0], [0.3], [-0.2]])
    y = torch.tensor([1, 1, 0, 0])
    model = nn.Identity()
    loss, sums, n = task.step(model, (logits, y))
    assert n == 4 and int(sums["acc"]) == 2  # right on rows 0 and 3
    assert loss.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits.reshape(-1), y.float()).item())
    with pytest.raises(ValueError, match="one logit per example"):
        task.step(model, (torch.zeros(4, 2), y))


def test_hours_to_pass_recovers_the_maximum_likelihood_fit(tmp_path):
    """Gradient descent on the 20 students reaches the known MLE (intercept -4.1, slope 1.5), from
    scratch and with nn.Linear, and the demo draws the sigmoid with the 0.5 line."""
    result = run_demo("logistic", tmp_path)
    for name, fit in result["fits"].items():
        assert fit["slope"] == pytest.approx(HOURS_MLE[0], abs=0.005), name
        assert fit["intercept"] == pytest.approx(HOURS_MLE[1], abs=0.01), name
        assert fit["slope"] == pytest.approx(1.5, abs=0.05) and fit["intercept"] == pytest.approx(-4.1, abs=0.05)
    assert result["boundary_hours"] == pytest.approx(4.0777 / 1.5046, abs=0.01)  # where P(pass) = 0.5
    assert result["p_pass_2h"] == pytest.approx(0.26, abs=0.01)  # Wikipedia's table: 2 hours -> 0.26
    assert result["p_pass_4h"] == pytest.approx(0.87, abs=0.01)  # 4 hours -> 0.87
    assert (tmp_path / "logistic.png").stat().st_size > 10_000


def test_binary_mlp_is_8_6_4_1_with_sigmoids():
    net = dk.create_model("binary-mlp")
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 6), (6, 4), (4, 1)]
    assert sum(isinstance(m, nn.Sigmoid) for m in net) == 2
    assert net(torch.randn(5, 8)).shape == (5, 1)


def test_binary_mlp_learns_breast_cancer():
    """The 8-6-4-1 network's shape (30-6-4-1 here) on scikit-learn's bundled breast cancer table,
    with its registered defaults (SGD, lr 0.5, batch 32, 30 epochs)."""
    data = dk.load_dataset("breast-cancer", batch_size=32)
    assert data.task == "binary-classification" and data.classes == ["malignant", "benign"]
    assert data.context["in_shape"] == (30,)
    cfg = resolve_config(model="binary-mlp", device="cpu")
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs) == ("sgd", 0.5, 32, 30)
    result = dk.fit("binary-mlp", data, cfg, run_dir=False, progress=False)
    assert result.metrics["test_acc"] >= 0.93
    assert result.metrics["test_loss"] < 0.2
