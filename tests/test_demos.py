"""The book's small experiments, run through `divekit demo`."""

import json

import pytest

from divekit.cli import main
from divekit.demos import AIRFOIL_OPTIMIZERS, run_demo


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
    if name == "stability":
        assert result["product_of_100_matrices_max_abs"] > 1e10
        assert result["first_layer_grad_norm_sigmoid_depth20"] < 1e-4 * result["first_layer_grad_norm_relu_depth20"]
