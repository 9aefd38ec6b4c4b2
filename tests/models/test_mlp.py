"""MLPs and dropout (book 5.1-5.2, 5.6): hand-written pieces against torch, models on real data."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import assert_same_forward_backward

import divekit as dk
from divekit.cli import main
from divekit.models.mlp import MLP, MLPScratch, dropout_layer, relu
from divekit.ops.activations import ACTIVATIONS
from divekit.train.api import load_run


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


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_mlp_scratch_equals_mlp_with_each_activation_forward_and_backward(activation):
    torch.manual_seed(0)
    # sigma 1, so the hidden layer's inputs reach well into both sides of the activation
    scratch = dk.create_model("mlp-scratch", in_shape=(1, 6, 6), num_hiddens=16, sigma=1.0, activation=activation)
    concise = dk.create_model("mlp", in_shape=(1, 6, 6), num_hiddens=[16], activation=activation)
    assert not [m for m in scratch.modules() if m is not scratch]  # the activation is a function, not a layer
    # the weights as inputs, so their gradients are compared too; nn.Linear holds W transposed
    names = {"W1": "1.weight", "b1": "1.bias", "W2": "3.weight", "b2": "3.bias", "a": "2.weight"}  # a: PReLU's slope
    params = dict(scratch.named_parameters())
    if activation == "prelu":
        params["a"] = torch.tensor([0.3])  # not the initial slope, so that a slope left unused shows

    def ours(X, *values):
        return torch.func.functional_call(scratch, dict(zip(params, values)), (X,))

    def theirs(X, *values):
        return torch.func.functional_call(
            concise, {names[k]: v.T if k.startswith("W") else v for k, v in zip(params, values)}, (X,))

    assert_same_forward_backward(ours, theirs, torch.randn(8, 1, 6, 6), *(p.detach() for p in params.values()))


def test_train_mlp_scratch_with_another_activation(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "mlp-scratch", "--data", "digits", "--model-arg", "activation=elu", "--model-arg",
                 "num_hiddens=32", "--epochs", "1", "--out", str(run_dir), "--no-progress"]) == 0
    model, _ = load_run(run_dir)
    assert isinstance(model, MLPScratch) and model.activation == "elu"
    with pytest.raises(dk.ConfigError, match="activation must be one of relu, sigmoid"):
        dk.create_model("mlp-scratch", activation="swish")


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
