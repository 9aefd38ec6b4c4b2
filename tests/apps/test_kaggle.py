"""K-fold splitting, the log-RMSE metric, and the Kaggle house-price workflow on the real files."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from divekit.apps.kaggle import log_rmse, run_kaggle_house
from divekit.cli import main
from divekit.core.errors import ConfigError
from divekit.data.tabular import TabularPreprocessor
from divekit.ops.kfold import k_fold, k_fold_indices
from divekit.train.api import load_run


@pytest.mark.parametrize("n, k", [(10, 5), (11, 3), (1460, 5), (7, 7)])
def test_k_fold_indices_cover_every_example_once(n, k):
    folds = k_fold_indices(n, k, seed=3)
    assert len(folds) == k
    valid = torch.cat([v for _, v in folds])
    assert sorted(valid.tolist()) == list(range(n))  # each example validates exactly once
    sizes = [len(v) for _, v in folds]
    assert max(sizes) - min(sizes) <= 1
    for train, v in folds:
        assert set(train.tolist()).isdisjoint(v.tolist())
        assert len(train) + len(v) == n


def test_k_fold_indices_are_deterministic_and_shuffled():
    a, b = k_fold_indices(20, 4, seed=0), k_fold_indices(20, 4, seed=0)
    assert all(torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert a[0][1].tolist() != list(range(5))  # not the book's cut in file order
    assert any(not torch.equal(x[1], y[1]) for x, y in zip(a, k_fold_indices(20, 4, seed=1)))


@pytest.mark.parametrize("n, k", [(10, 1), (3, 5)])
def test_k_fold_indices_refuses_bad_k(n, k):
    with pytest.raises(ConfigError, match="fold"):
        k_fold_indices(n, k)


def test_k_fold_calls_train_fn_per_fold_and_averages():
    X = torch.arange(12.0).reshape(6, 2)
    y = torch.arange(6.0)
    seen = []

    def train_fn(X_train, y_train, X_valid, y_valid):
        seen.append(y_valid.tolist())
        assert torch.equal(X_train[:, 0], 2 * y_train) and torch.equal(X_valid[:, 0], 2 * y_valid)
        return {"n_valid": len(y_valid), "valid_mean": float(y_valid.mean())}

    result = k_fold(train_fn, X, y, k=3, seed=0)
    assert sorted(sum(seen, [])) == [0, 1, 2, 3, 4, 5]
    assert [r["fold"] for r in result.folds] == [1, 2, 3]
    assert result.means["n_valid"] == 2 and result.means["valid_mean"] == pytest.approx(2.5)
    assert "mean" in result.table()


def test_log_rmse_hand_computed():
    preds = torch.tensor([100.0, 1000.0, 0.5], dtype=torch.float64)  # 0.5 is clamped to 1
    labels = torch.tensor([100.0, 100.0, math.e], dtype=torch.float64)
    # squared log errors: 0, ln(10)^2, (0 - 1)^2
    expected = math.sqrt((math.log(10) ** 2 + 1) / 3)
    assert log_rmse(preds, labels) == pytest.approx(expected, rel=1e-12)
    assert log_rmse(torch.tensor([5.0, 7.0]), torch.tensor([5.0, 7.0])) == 0.0


@pytest.fixture(scope="module")
def linear_run(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("kaggle") / "linear"
    return run_kaggle_house(shared_data, k=3, model="linear", epochs=10, device="cpu", out_dir=out, progress=False)


def test_real_run_learns_and_writes_a_submission(linear_run, shared_data):
    r = linear_run
    assert [f["fold"] for f in r["folds"]] == [1, 2, 3]
    # predicting every house at the mean log price gives 0.40; broken features or training stay near it
    # (measured: valid 0.144, train 0.106)
    assert r["valid_log_rmse"] < 0.17 and r["train_log_rmse"] < 0.13
    submission = pd.read_csv(r["submission"])
    assert list(submission.columns) == ["Id", "SalePrice"] and len(submission) == 1459
    assert (submission["SalePrice"] > 0).all()
    test_ids = pd.read_csv(shared_data / "kaggle_house_pred_test.csv")["Id"]
    assert submission["Id"].tolist() == test_ids.tolist()
    # the typical sale is around $160k: predictions must be house prices, not log prices
    assert 100_000 < submission["SalePrice"].median() < 250_000
    assert json.loads((Path(r["out_dir"]) / "results.json").read_text()) == r



def test_saved_run_predicts_new_rows_like_the_submission(linear_run, shared_data):
    model, ckpt = load_run(linear_run["out_dir"], "last", "cpu")
    prep = TabularPreprocessor.from_state(ckpt.meta["preprocessor"])
    rows = pd.read_csv(shared_data / "kaggle_house_pred_test.csv").iloc[:50]
    with torch.no_grad():
        prices = (model(prep.transform(rows)).reshape(-1) + ckpt.meta["offset"]).exp()
    expected = pd.read_csv(linear_run["submission"])["SalePrice"].iloc[:50]
    assert prices.tolist() == pytest.approx(expected.tolist(), rel=1e-5)


def test_cli_main_json(shared_data, tmp_path, capsys):
    assert main(["kaggle-house", "--k", "2", "--model", "mlp", "--epochs", "3", "--num-hiddens", "32",
                 "--data-dir", str(shared_data), "--device", "cpu", "--out", str(tmp_path / "mlp"),
                 "--no-progress", "--json"]) == 0
    out = capsys.readouterr().out
    assert "valid log-rmse" in out and "mean" in out
    summary = json.loads(out.strip().splitlines()[-1])
    keys = {"k", "model", "folds", "train_log_rmse", "valid_log_rmse", "seconds", "submission", "out_dir"}
    assert keys <= summary.keys()
    assert summary["k"] == 2 and summary["model"] == "mlp" and len(summary["folds"]) == 2
    assert 0 < summary["valid_log_rmse"] < 0.25  # measured 0.175
    assert (tmp_path / "mlp" / "curves.png").stat().st_size > 0


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="--dropout applies only to --model mlp"):
        run_kaggle_house(model="linear", dropout=0.5)
    with pytest.raises(ConfigError, match="--model must be one of"):
        run_kaggle_house(model="cnn")
