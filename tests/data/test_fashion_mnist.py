"""Chapter 3 on real Fashion-MNIST with the book's settings (batch 256, lr 0.1, 10 epochs)."""

import pytest

import divekit as dk


@pytest.mark.slow
@pytest.mark.parametrize("model", ["softmax-regression", "softmax-regression-scratch"])
def test_softmax_regression_reaches_the_book_accuracy(shared_data, tmp_path, model):
    result = dk.train(model=model, data="fashion-mnist", data_dir=str(shared_data), out=str(tmp_path / "r"),
                      progress=False)
    assert (result.config.batch_size, result.config.lr, result.config.epochs) == (256, 0.1, 10)
    assert result.metrics["test_acc"] >= 0.82
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", "dropout-mlp"])
def test_mlps_reach_084(shared_data, tmp_path, model):
    """Book 5.2 and 5.6: MLP 784-256-10 and the dropout MLP, lr 0.1, 10 epochs."""
    result = dk.train(model=model, data="fashion-mnist", data_dir=str(shared_data), out=str(tmp_path / "r"),
                      progress=False)
    assert (result.config.lr, result.config.epochs) == (0.1, 10)
    assert result.metrics["test_acc"] >= 0.84
