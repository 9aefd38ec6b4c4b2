"""The book's autoregressive model of a noisy sine (book 9.1)."""

import json

import pytest
import torch

from divekit.book.autoregression import autoregression_demo, k_step_predictions, multistep_predictions, sine_series
from divekit.cli import main
from divekit.core.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

KEYS = {"one_step_test_mse", "multistep_mse", "mse_1_step", "mse_4_step", "mse_16_step", "mse_64_step"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sequence")
    return out, autoregression_demo(out, seed=0)


def test_data_has_the_books_shape_and_noise():
    s = sine_series(T=1000, tau=4, seed=0)
    assert s.x.shape == (1000,) and s.time[0] == 1 and s.time[-1] == 1000
    assert s.features.shape == (996, 4) and s.labels.shape == (996, 1)
    # row i: x_i .. x_{i+3} as features, x_{i+4} as label
    assert torch.equal(s.features[10], s.x[10:14]) and s.labels[10, 0] == s.x[14]
    assert torch.equal(s.features[1:, :3], s.features[:-1, 1:])  # consecutive windows shift by one
    residual = s.x - torch.sin(0.01 * s.time)
    assert 0.18 < residual.std() < 0.22  # the book's N(0, 0.2) noise
    assert torch.equal(s.x, sine_series(seed=0).x) and not torch.equal(s.x, sine_series(seed=1).x)
    with pytest.raises(ConfigError, match="tau"):
        sine_series(T=4, tau=4)


def test_k_step_predictions_follow_the_books_table():
    """With a model that returns the last input, every k-step prediction is the last observation."""
    def last(window):  # (n, tau) -> (n, 1)
        return window[:, -1:]

    x = torch.arange(20.0)
    preds = k_step_predictions(last, x, tau=3, ks=(1, 2, 5))
    for k, (index, x_hat) in preds.items():
        assert len(index) == 20 - 3 - 5 + 1
        assert torch.equal(index, torch.arange(3 + k - 1, 3 + k - 1 + len(index)))
        assert torch.equal(x_hat, x[2 : 2 + len(index)])  # x[r + tau - 1], k steps before index[r]
    assert torch.equal(multistep_predictions(last, x, tau=3, start=10)[10:], torch.full((10,), 9.0))
    with pytest.raises(ConfigError, match="T >= tau"):
        k_step_predictions(last, x, tau=3, ks=(1, 64))


def test_one_step_error_is_near_the_noise_and_k_step_errors_grow(demo_run):
    _, r = demo_run
    assert 0.03 < r["one_step_test_mse"] < 0.1  # noise variance 0.04 plus a little model error (0.061 at seed 0)
    assert r["mse_1_step"] < r["mse_4_step"] < r["mse_16_step"] < r["mse_64_step"]
    assert r["mse_64_step"] > 5 * r["mse_1_step"]
    assert r["multistep_mse"] > 5 * r["one_step_test_mse"]  # the model running on its own outputs goes flat


def test_demo_writes_its_plots(demo_run):
    out, r = demo_run
    assert set(r["plots"]) == {"predictions", "k_step"}
    for path in r["plots"].values():
        assert path.startswith(str(out)) and (out / path.split("/")[-1]).stat().st_size > 5000


def test_cli_demo_prints_the_same_figures_as_json(demo_run, tmp_path, capsys):
    assert main(["demo", "sequence", "--out", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["demo"] == "sequence"
    assert KEYS <= set(result)
    assert {k: result[k] for k in KEYS} == {k: demo_run[1][k] for k in KEYS}  # deterministic for a fixed seed
    assert (tmp_path / "sequence" / "k_step_predictions.png").is_file()
