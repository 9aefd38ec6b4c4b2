"""The book's small experiments, run through `divekit demo`."""

import json

import pytest

from divekit.book.demos import AIRFOIL_OPTIMIZERS, run_demo
from divekit.cli import main


def test_demo_list_and_unknown(capsys):
    assert main(["demo", "--json"]) == 0
    names = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["demos"]
    assert {"optimizers", "schedules", "weight-decay", "polynomial", "activations", "stability"} <= set(names)
    assert main(["demo", "optimiser"]) == 2
    assert "Did you mean 'optimizers'" in capsys.readouterr().err


def test_every_optimizer_reaches_the_book_loss_on_airfoil(shared_data, monkeypatch, tmp_path, capsys):
    """Book chapter 12: each optimizer brings the linear model to a training loss of about 0.245."""
    monkeypatch.setenv("DIVEKIT_DATA", str(shared_data))
    assert main(["demo", "optimizers", "--out", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["optimizers"]) == set(AIRFOIL_OPTIMIZERS)
    for name, r in result["optimizers"].items():
        assert 0.2 < r["final_loss"] < 0.26, name
    assert (tmp_path / "optimizers" / "optimizers.png").stat().st_size > 5000


@pytest.mark.parametrize("name", ["schedules", "activations", "stability"])
def test_plot_demos_write_their_figures(tmp_path, name):
    result = run_demo(name, tmp_path)
    assert result["demo"] == name
    assert (tmp_path / result["plot"].split("/")[-1]).stat().st_size > 5000
    if name == "schedules":
        assert set(result["settings"]) == {"step", "multistep", "exponential", "cosine", "onecycle", "plateau"}
    if name == "activations":
        assert result["activations"] == ["relu", "sigmoid", "tanh", "leaky-relu", "elu", "selu", "prelu", "gelu", "silu"]
    if name == "stability":
        assert result["product_of_100_matrices_max_abs"] > 1e10
        assert result["first_layer_grad_norm_sigmoid_depth20"] < 1e-4 * result["first_layer_grad_norm_relu_depth20"]


def test_zipf_demo_finds_the_power_law_of_words(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("DIVEKIT_DATA", str(shared_data))
    result = run_demo("zipf", tmp_path)
    assert result["top_words"][0] == ["the", 2261]
    assert -1.3 < result["zipf_exponent_1gram"] < -0.8  # Zipf: frequency ~ 1 / rank
    # longer n-grams fall off more slowly (the book's point: many n-grams are rare)
    assert result["zipf_exponent_1gram"] < result["zipf_exponent_2gram"] < result["zipf_exponent_3gram"]
    assert (tmp_path / "zipf.png").stat().st_size > 0
