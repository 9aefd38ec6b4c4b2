"""The book's underfitting/overfitting and weight-decay results, asserted rather than only plotted."""

import pytest
import torch

from divekit.book.generalization import (
    TRUE_POLY_W,
    fit_polynomial,
    l2_penalty,
    polynomial_experiment,
    polynomial_features,
    train_weight_decay,
    weight_decay_experiment,
)


def test_polynomial_features_are_scaled_monomials():
    f = polynomial_features(torch.tensor([2.0]), 5)
    torch.testing.assert_close(f, torch.tensor([[1.0, 2.0, 4 / 2, 8 / 6, 16 / 24]]))


def test_l2_penalty():
    assert l2_penalty(torch.tensor([3.0, 4.0])).item() == 12.5


@pytest.mark.slow
def test_polynomial_fit_under_and_overfitting(tmp_path):
    result = polynomial_experiment(tmp_path, epochs=400, overfit_epochs=1500)
    normal, under, over = (result["runs"][f"features_{k}"] for k in (4, 2, 20))
    # the right model recovers the true coefficients and reaches the noise level (0.1^2 = 0.01)
    assert normal["weights"] == pytest.approx(TRUE_POLY_W, abs=0.1)
    assert normal["test_loss"] < 0.02
    # too few features: both losses stay high (underfitting)
    assert under["train_loss"] > 50 * normal["train_loss"] and under["test_loss"] > 1
    # too many features: it generalizes worse than the right model, with a train/test gap
    assert over["test_loss"] > normal["test_loss"]
    assert over["test_loss"] > 1.2 * over["train_loss"]
    assert (tmp_path / "polynomial.png").stat().st_size > 5000


def test_weight_decay_shrinks_weights_and_closes_the_gap(tmp_path):
    result = weight_decay_experiment(tmp_path)
    for kind in ("scratch", "concise"):
        free, decayed = result["runs"][f"{kind}_lambda_0"], result["runs"][f"{kind}_lambda_3"]
        # lambda = 0: large weights, fits the 20 training examples, fails on the test set
        assert free["w_norm"] > 10 and free["train_loss"] < 1e-3 and free["test_loss"] > 1000 * free["train_loss"]
        assert free["test_loss"] > 10
        # lambda = 3: small weights, and the test loss comes close to the training loss
        assert decayed["w_norm"] < 0.5 and decayed["test_loss"] < 0.5
        assert decayed["test_loss"] < free["test_loss"] / 100
    assert (tmp_path / "weight_decay.png").stat().st_size > 5000


def test_scratch_and_concise_weight_decay_agree_from_the_same_start():
    """The L2 penalty in the loss and the optimizer's weight_decay are the same update."""
    torch.manual_seed(0)
    x, y = torch.randn(20, 10), torch.randn(20, 1)
    w1 = torch.randn(10, 1, requires_grad=True)
    w2 = torch.nn.Parameter(w1.detach().clone())
    opt = torch.optim.SGD([w2], lr=0.01, weight_decay=3.0)
    for _ in range(50):
        loss = ((x @ w1 - y) ** 2 / 2).mean() + 3.0 * l2_penalty(w1)
        (g,) = torch.autograd.grad(loss, w1)
        with torch.no_grad():
            w1 -= 0.01 * g
        opt.zero_grad()
        ((x @ w2 - y) ** 2 / 2).mean().backward()
        opt.step()
    torch.testing.assert_close(w1, w2.detach())


def test_weight_decay_result_is_reproducible():
    a, b = train_weight_decay(3.0, epochs=5), train_weight_decay(3.0, epochs=5)
    assert a["w_norm"] == b["w_norm"] and fit_polynomial(4, epochs=3)["test_loss"] == fit_polynomial(4, epochs=3)["test_loss"]
