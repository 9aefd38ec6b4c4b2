"""MLPs and dropout (book 5.1-5.2, 5.6): hand-written pieces against torch, models on real data."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import divekit as dk
from divekit.models.mlp import MLP, MLPScratch, dropout_layer, relu


def test_relu_matches_torch_forward_and_backward():
    x = torch.randn(100, requires_grad=True)
    relu(x).sum().backward()
    x2 = x.detach().clone().requires_grad_()
    F.relu(x2).sum().backward()
    torch.testing.assert_close(relu(x), F.relu(x))
    torch.testing.assert_close(x.grad, x2.grad)


def test_dropout_layer_edge_cases_and_expectation():
    X = torch.arange(16, dtype=torch.float32).reshape(2, 8)
    assert torch.equal(dropout_layer(X, 0.0), X)
    assert torch.equal(dropout_layer(X, 1.0), torch.zeros_like(X))
    with pytest.raises(ValueError):
        dropout_layer(X, 1.5)
    g = torch.Generator().manual_seed(0)
    big = torch.ones(1000, 1000)
    out = dropout_layer(big, 0.3, generator=g)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # each unit kept with probability 1 - p
    assert torch.allclose(out[kept], torch.tensor(1 / 0.7))  # survivors scaled by 1/(1-p)
    assert abs(out.mean().item() - 1.0) < 0.01  # expectation preserved


def test_dropout_layer_statistics_match_nn_dropout():
    torch.manual_seed(0)
    x = torch.rand(500, 400) + 0.5
    ours = dropout_layer(x, 0.5)
    theirs = nn.Dropout(0.5).train()(x)
    assert abs((ours == 0).float().mean() - (theirs == 0).float().mean()) < 0.01
    assert abs(ours.mean() - theirs.mean()) < 0.01 and abs(ours.std() - theirs.std()) < 0.01


def test_scratch_and_concise_mlp_agree_with_the_same_weights():
    scratch = MLPScratch(64, 10, 32)
    concise = MLP(64, 10, (32,))
    with torch.no_grad():
        concise[1].weight.copy_(scratch.W1.T)
        concise[1].bias.copy_(scratch.b1)
        concise[3].weight.copy_(scratch.W2.T)
        concise[3].bias.copy_(scratch.b2)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    torch.testing.assert_close(scratch(x), concise(x))
    scratch.loss(scratch(x), y).backward()
    F.cross_entropy(concise(x), y).backward()
    torch.testing.assert_close(scratch.W1.grad, concise[1].weight.grad.T)
    torch.testing.assert_close(scratch.b2.grad, concise[3].bias.grad)


def test_dropout_models_are_deterministic_in_eval_mode():
    for name in ("dropout-mlp", "dropout-mlp-scratch"):
        model = dk.create_model(name, in_shape=(1, 8, 8), num_classes=10)
        x = torch.randn(4, 1, 8, 8)
        model.train()
        assert not torch.equal(model(x), model(x))  # dropout active
        model.eval()
        assert torch.equal(model(x), model(x))


def test_mlp_options():
    m = dk.create_model("mlp", in_shape=(5,), num_outputs=1, num_hiddens=[8, 4], dropouts=[0.1, 0.0], activation="tanh")
    assert m(torch.randn(3, 5)).shape == (3, 1)
    assert [type(l).__name__ for l in m] == ["Flatten", "Linear", "Tanh", "Dropout", "Linear", "Tanh", "Linear"]
    with pytest.raises(ValueError, match="one dropout rate per hidden layer"):
        dk.create_model("mlp", num_hiddens=[8, 4], dropouts=[0.1])
    with pytest.raises(dk.ConfigError, match="does not take 'hidden'"):
        dk.create_model("mlp", hidden=3)


@pytest.mark.parametrize("name", ["mlp", "mlp-scratch", "dropout-mlp", "dropout-mlp-scratch"])
def test_mlps_learn_digits(tmp_path, name):
    result = dk.train(model=name, data="digits", epochs=15, out=str(tmp_path / "r"), progress=False)
    assert result.metrics["test_acc"] >= 0.9
