"""A user's CSV end to end (`divekit train MODEL --data csv:PATH --target COL`, then
`divekit predict RUN new.csv --out predictions.csv`), the task chosen from the target, K-fold
splits, errors for bad files, and the best checkpoint / plateau schedule on --monitor valid_acc."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import last_json

import divekit as dk
from divekit.apps.tabular import k_fold_csv
from divekit.cli import main
from divekit.core.checkpoint import Checkpoint
from divekit.data.binary import HOURS, HOURS_MLE, PASSED
from divekit.data.csv_data import choose_task, load_csv
from divekit.data.tabular import TabularPreprocessor
from divekit.ops.schedules import Plateau
from divekit.train.api import fit, load_run, resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")


def titanic_like(n: int, seed: int) -> pd.DataFrame:
    """Passengers whose survival depends on sex, class and age; categorical and missing values."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["male", "female"], n)
    pclass = rng.choice([1, 2, 3], n)
    age = rng.uniform(1, 80, n).round(1)
    logit = -1.0 + 3.0 * (sex == "female") - 1.0 * (pclass - 2) - 0.03 * (age - 30)
    survived = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    age = np.where(rng.uniform(size=n) < 0.1, np.nan, age)  # 10% missing
    embarked = rng.choice(["S", "C", "Q", None], n)
    return pd.DataFrame({"PassengerId": np.arange(1, n + 1) + 1000 * seed, "Survived": survived, "Pclass": pclass,
                         "Sex": sex, "Age": age, "Embarked": embarked})


def houses(n: int, seed: int) -> pd.DataFrame:
    """price = 50 * area + 20,000 * rooms + a neighbourhood premium + noise."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(40, 200, n)
    rooms = rng.integers(1, 6, n)
    hood = rng.choice(["north", "south", "east"], n)
    premium = np.select([hood == "north", hood == "south"], [30_000, -10_000], 0)
    price = 50 * area + 20_000 * rooms + premium + rng.normal(0, 2_000, n)
    return pd.DataFrame({"Id": np.arange(n), "area": area.round(1), "rooms": rooms, "hood": hood,
                         "price": price.round()})


@pytest.fixture(scope="module")
def titanic(tmp_path_factory):
    """A trained CSV classifier run (and its files), shared by the tests that predict with it."""
    root = tmp_path_factory.mktemp("titanic")
    titanic_like(400, seed=0).to_csv(root / "train.csv", index=False)
    titanic_like(50, seed=1).drop(columns="Survived").to_csv(root / "test.csv", index=False)
    run = root / "run"
    argv = ["train", "mlp", "--data", f"csv:{root / 'train.csv'}", "--target", "Survived", "--epochs", "12",
            "--monitor", "valid_acc", "--scheduler", "plateau", "--scheduler-arg", "patience=0",
            "--scheduler-arg", "factor=0.5", "--out", str(run), "--no-progress", "--json"]
    assert main(argv) == 0
    return root, run


def test_csv_classification_train_then_predict(titanic, capsys):
    root, run = titanic
    assert json.loads((run / "config.json").read_text())["data"] == f"csv:{root / 'train.csv'}"
    # 80 held-out passengers (12 epochs reach 0.85 with seed 0)
    assert json.loads((run / "metrics.json").read_text())[-1]["valid_acc"] >= 0.72
    ckpt = Checkpoint(run / "best.safetensors")
    assert ckpt.meta["task"] == "binary-classification" and ckpt.meta["classes"] == ["0", "1"]
    prep = ckpt.meta["context"]["preprocessor"]  # the fitted preprocessor travels with the weights
    assert prep["id_column"] == "PassengerId" and prep["features"] == ["Pclass", "Sex", "Age", "Embarked"]
    assert set(prep["categories"]) == {"Sex", "Embarked"} and set(prep["numeric"]) == {"Pclass", "Age"}

    out = root / "predictions.csv"
    assert main(["predict", str(run), str(root / "test.csv"), "--out", str(out), "--proba", "--json"]) == 0
    assert last_json(capsys.readouterr().out) == {"out": str(out), "rows": 50,
                                                 "columns": ["PassengerId", "Survived", "prob_0", "prob_1"]}
    pred = pd.read_csv(out)
    test = pd.read_csv(root / "test.csv")
    assert len(pred) == len(test) and pred["PassengerId"].tolist() == test["PassengerId"].tolist()
    assert set(pred["Survived"]) <= {0, 1}
    assert np.allclose(pred["prob_0"] + pred["prob_1"], 1, atol=1e-5)
    assert (pred["Survived"] == (pred["prob_1"] > 0.5)).all()
    # the same as the model on the features prepared by hand: women survive more often
    model, _ = load_run(run)
    X = TabularPreprocessor.from_state(prep).transform(test)
    with torch.no_grad():
        p1 = torch.sigmoid(model(X)).reshape(-1).numpy()
    assert np.allclose(pred["prob_1"], p1, atol=1e-5)
    assert p1[test["Sex"] == "female"].mean() > p1[test["Sex"] == "male"].mean() + 0.2


def test_best_checkpoint_and_plateau_follow_valid_acc(titanic):
    """best.safetensors holds the epoch with the highest valid_acc (--monitor valid_acc), and the
    plateau schedule halves the lr exactly after the epochs where valid_acc did not rise."""
    _, run = titanic
    history = json.loads((run / "metrics.json").read_text())
    accs = [h["valid_acc"] for h in history]
    best = Checkpoint(run / "best.safetensors")
    assert best.meta["monitor"] == "valid_acc"
    epoch = best.meta["trainer"]["epoch"]
    assert accs[epoch - 1] == max(accs) and max(accs) not in accs[: epoch - 1]  # the first epoch reaching the max
    # its weights are that epoch's: evaluated again, they give that epoch's valid_acc (not the last epoch's)
    model, _ = load_run(run, "best")
    cfg = resolve_config(str(run / "config.json"))
    data = dk.load_dataset(cfg.data, batch_size=cfg.batch_size, **cfg.data_args)
    X, y = data.valid.tensors
    with torch.no_grad():
        acc = float(((model(X).reshape(-1) > 0) == (y > 0)).float().mean())
    assert acc == pytest.approx(accs[epoch - 1], abs=1e-6)
    # plateau, mode max: the lr of epoch e+1 is halved iff valid_acc of epoch e was no new best
    expected, rule = [], Plateau(factor=0.5, patience=0, mode="max")
    for acc in accs:
        expected.append(0.1 * rule.factor(0, 0, 1))
        rule.on_epoch_end(acc)
    assert [h["lr"] for h in history] == pytest.approx(expected)
    assert history[-1]["lr"] < 0.1  # it did decay


def test_plateau_in_max_mode_matches_torch():
    metrics = [0.5, 0.6, 0.6, 0.58, 0.7, 0.7, 0.69, 0.71, 0.71, 0.5]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=1)
    mine = Plateau(factor=0.5, patience=1, mode="max")
    for m in metrics:
        ref.step(m)
        mine.on_epoch_end(m)
        assert mine.factor(0, 0, 1) == pytest.approx(opt.param_groups[0]["lr"])
    assert mine.factor(0, 0, 1) == 0.125  # three halvings


def test_csv_regression_train_then_predict(tmp_path, capsys):
    houses(300, seed=0).to_csv(tmp_path / "train.csv", index=False)
    new = houses(40, seed=1)
    new.drop(columns="price").to_csv(tmp_path / "new.csv", index=False)
    run = tmp_path / "run"
    assert main(["train", "linear-regression", "--data", f"csv:{tmp_path / 'train.csv'}", "--target", "price",
                 "--features", "area,rooms,hood", "--epochs", "30", "--lr", "0.05", "--out", str(run),
                 "--no-progress", "--json"]) == 0
    summary = last_json(capsys.readouterr().out)
    # the MSE of the standardized price: a linear model explains all but the noise (about 0.1% of the variance)
    assert summary["valid_loss"] < 0.01
    meta = Checkpoint(run / "best.safetensors").meta
    assert meta["task"] == "regression" and meta["context"]["preprocessor"]["id_column"] == "Id"
    assert main(["predict", str(run), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns) == ["Id", "price"] and pred["Id"].tolist() == new["Id"].tolist()
    rmse = float(np.sqrt(((pred["price"] - new["price"]) ** 2).mean()))
    assert rmse < 5_000 < new["price"].std()  # in dollars: the predictions are back in the target's units


def test_csv_multiclass_predicts_string_labels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    centers = {"setosa": (0, 0), "versicolor": (4, 0), "virginica": (0, 4)}
    labels = rng.choice(list(centers), 150)
    xy = np.array([centers[c] for c in labels]) + rng.normal(0, 0.7, (150, 2))
    frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "species": labels})
    frame.to_csv(tmp_path / "flowers.csv", index=False)
    run = tmp_path / "run"
    assert main(["train", "mlp", "--data", f"csv:{tmp_path / 'flowers.csv'}", "--target", "species", "--epochs", "10",
                 "--out", str(run), "--no-progress", "--json"]) == 0
    assert last_json(capsys.readouterr().out)["valid_acc"] >= 0.9
    assert Checkpoint(run / "best.safetensors").meta["task"] == "classification"
    assert main(["predict", str(run), str(tmp_path / "flowers.csv")]) == 0  # no --out: the CSV on stdout
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "species" and len(printed) == 151  # no id column in this file
    assert np.mean(np.array(printed[1:]) == labels) >= 0.9


def test_course_8_6_4_1_network_on_an_8_feature_csv(tmp_path):
    """binary-mlp on 8 numeric features is the course's 8-6-4-1 sigmoid network."""
    rng = np.random.default_rng(0)
    X, w = rng.normal(size=(500, 8)), rng.normal(size=8)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])
    frame["Outcome"] = (X @ w + rng.normal(0, 0.5, 500) > 0).astype(int)
    frame.to_csv(tmp_path / "diabetes.csv", index=False)
    cfg = resolve_config(model="binary-mlp", data=f"csv:{tmp_path / 'diabetes.csv'}", device="cpu",
                         data_args={"target": "Outcome"})
    result = fit(cfg.model, cfg.data, cfg, run_dir=False, progress=False)
    shapes = [(m.in_features, m.out_features) for m in result.model if isinstance(m, torch.nn.Linear)]
    assert shapes == [(8, 6), (6, 4), (4, 1)]
    assert result.metrics["valid_acc"] >= 0.85  # 100 held-out rows; 0.92 with seed 0


def test_csv_logistic_regression_recovers_the_hours_fit(tmp_path):
    """logistic-regression on a CSV of the 20 students: its weights act on standardized hours;
    mapped back to hours they are the known MLE, so the preprocessing is the one the model saw."""
    pd.DataFrame({"hours": HOURS, "passed": PASSED}).to_csv(tmp_path / "hours.csv", index=False)
    cfg = resolve_config(model="logistic-regression", data=f"csv:{tmp_path / 'hours.csv'}", device="cpu",
                         epochs=300, batch_size=20, lr=1.0, data_args={"target": "passed", "valid": 0})
    result = fit(cfg.model, cfg.data, cfg, run_dir=False, progress=False)
    w_std, b_std = (float(v) for v in (result.model.weights()[0][0], result.model.weights()[1]))
    mean, std = np.mean(HOURS), np.std(HOURS, ddof=1)
    assert w_std / std == pytest.approx(HOURS_MLE[0], abs=0.005)
    assert b_std - w_std * mean / std == pytest.approx(HOURS_MLE[1], abs=0.01)


@pytest.mark.parametrize("values, task", [
    ([0.5, 1.25, 3.0, 2.0], "regression"),
    ([0, 1, 1, 0], "binary-classification"),
    ([1, 2, 3, 4, 5, 3], "classification"),  # ratings: few distinct integers
    (list(range(20)), "regression"),  # many distinct integers: a count or a price
    (["cat", "dog", "bird"], "classification"),
    ([True, False, True], "binary-classification"),
    (["yes", "no", None], "binary-classification"),
])
def test_task_is_chosen_from_the_target(values, task):
    assert choose_task(pd.Series(values)) == task


def test_task_can_be_forced(tmp_path):
    pd.DataFrame({"x": range(30), "y": [0, 1, 2] * 10}).to_csv(tmp_path / "t.csv", index=False)
    assert load_csv(str(tmp_path / "t.csv"), batch_size=8, target="y").task == "classification"
    bundle = load_csv(str(tmp_path / "t.csv"), batch_size=8, target="y", task="regression")
    assert bundle.task == "regression" and bundle.context["num_outputs"] == 1
    two = load_csv(str(tmp_path / "t.csv"), batch_size=8, target="x", task="classification", valid=0)
    assert two.task == "classification" and two.context["num_classes"] == 30


def test_k_fold_splits_partition_the_rows(tmp_path):
    titanic_like(60, seed=2).to_csv(tmp_path / "t.csv", index=False)
    sizes = []
    for fold in range(3):
        bundle = load_csv(str(tmp_path / "t.csv"), batch_size=8, target="Survived", folds=3, fold=fold)
        assert bundle.train.num_examples + bundle.valid.num_examples == 60
        sizes.append(bundle.valid.num_examples)
    assert sizes == [20, 20, 20]
    result = k_fold_csv(tmp_path / "t.csv", "Survived", "mlp", k=3, epochs=2, device="cpu")
    assert [r["fold"] for r in result.folds] == [1, 2, 3] and 0 <= result.means["valid_acc"] <= 1


CSV_ERRORS = [
    ("", ["--target", "y"], "is empty"),
    ("a,b,y\n", ["--target", "y"], "no rows of data"),
    ("a,b,y\n1,2,3\n4,5,6,7\n", ["--target", "y"], "line 3: 4 fields, but the header has 3"),
    ("a,b,y\n1,2,3\n4,5\n", ["--target", "y"], "line 3: 2 fields, but the header has 3"),
    ("a,b,y\n1,2,3\n4,5,6\n", ["--target", "z"], "--target 'z' is not a column"),
    ("a,b,y\n1,2,3\n4,5,\n7,8,9\n", ["--target", "y"], "(line 3); drop those rows"),
    ("a,b,y\n1,2,3\n4,5,6\n", ["--target", "yy"], "Did you mean 'y'"),
    ("a,b,y\n1,2,3\n4,5,6\n", [], "--target COLUMN"),
    ("a,b,y\n1,2,x\n4,5,w\n", ["--target", "y", "--data-arg", "task=regression"], "cannot be a regression target"),
    ("a,b,y\n1,2,3\n4,5,6\n", ["--target", "y", "--features", "a,c"], "--features: 'c' is not a column"),
    ("a,b,y\n1,2,3\n4,5,6\n", ["--target", "y", "--data-arg", "task=ranking"], "task must be regression"),
    ("a,b,y\n1,2,3\n4,5,3\n", ["--target", "y", "--data-arg", "task=classification"], "only one value"),
]


@pytest.mark.parametrize("text, args, message", CSV_ERRORS)
def test_bad_csv_files_get_a_clear_error(tmp_path, capsys, text, args, message):
    path = tmp_path / "data.csv"
    path.write_text(text)
    assert main(["train", "mlp", "--data", f"csv:{path}", *args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_file_and_predict_errors(titanic, tmp_path, capsys):
    assert main(["train", "mlp", "--data", f"csv:{tmp_path / 'nope.csv'}", "--target", "y"]) == 2
    assert "does not exist" in capsys.readouterr().err
    _, run = titanic
    titanic_like(5, seed=3).drop(columns="Sex").to_csv(tmp_path / "no_sex.csv", index=False)
    assert main(["predict", str(run), str(tmp_path / "no_sex.csv")]) == 2
    err = capsys.readouterr().err
    assert "no_sex.csv" in err and "'Sex'" in err
    cfg = dk.TrainConfig(model="logistic-regression", data="hours-to-pass", epochs=1, batch_size=20, device="cpu")
    fit(cfg.model, cfg.data, cfg, run_dir=tmp_path / "hours", progress=False)  # a run on a registered dataset
    assert main(["predict", str(tmp_path / "hours"), str(tmp_path / "no_sex.csv")]) == 2
    assert "not trained on a CSV file" in capsys.readouterr().err
