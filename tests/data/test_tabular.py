"""TabularPreprocessor on small hand-made frames: training statistics only, one-hot, state, errors."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from divekit.core.errors import DataError
from divekit.data.registry import tensor_bundle
from divekit.data.tabular import TabularPreprocessor, infer_task


@pytest.fixture
def train():
    return pd.DataFrame({
        "Id": [1, 2, 3, 4],
        "area": [1.0, 2.0, 3.0, np.nan],
        "rooms": [2, 4, 6, 8],
        "zone": ["A", "B", None, "A"],
        "price": [100.0, 200.0, 300.0, 400.0],
    })


@pytest.fixture
def holdout():
    return pd.DataFrame({
        "Id": [10, 11, 12],
        "area": [5.0, np.nan, 2.0],
        "rooms": [4, 4, 100],
        "zone": ["C", "B", None],  # "C" was never seen in training
    })


def fitted(frame):
    return TabularPreprocessor("price", id_column="Id").fit(frame)


def test_columns_are_numeric_then_one_hot_with_a_missing_column(train):
    p = fitted(train)
    assert p.feature_names == ["area", "rooms", "zone_A", "zone_B", "zone_nan"]
    assert p.num_features == 5 and p.task == "regression"


def test_standardizes_with_training_statistics_only(train, holdout):
    p = fitted(train)
    X = p.transform(holdout)
    # training area: 1, 2, 3 (NaN skipped): mean 2, std (ddof=1) 1; rooms 2..8: mean 5, std sqrt(20/3)
    rooms_std = math.sqrt(20 / 3)
    assert X[:, 0].tolist() == pytest.approx([3.0, 0.0, 0.0])
    assert X[:, 1].tolist() == pytest.approx([-1 / rooms_std, -1 / rooms_std, 95 / rooms_std], rel=1e-6)
    # the test frame's own statistics would give a different first column
    own = (holdout["area"] - holdout["area"].mean()) / holdout["area"].std()
    assert X[0, 0].item() != pytest.approx(own.iloc[0])


def test_missing_numbers_become_zero_after_standardizing(train):
    X = fitted(train).transform(train)
    assert X[3, 0].item() == 0.0  # area NaN -> the training mean -> 0
    assert X[:3, 0].tolist() == pytest.approx([-1.0, 0.0, 1.0])
    assert not torch.isnan(X).any()


def test_one_hot_with_missing_and_unseen_categories(train, holdout):
    p = fitted(train)
    assert p.transform(train)[:, 2:].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]
    # unseen "C" -> all zeros; "B" -> its column; missing -> the nan column
    assert p.transform(holdout)[:, 2:].tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_column_order_is_fixed_by_the_training_frame(train, holdout):
    p = fitted(train)
    shuffled = holdout[["zone", "rooms", "Id", "area"]].assign(extra=["x", "y", "z"])
    assert torch.equal(p.transform(shuffled), p.transform(holdout))
    assert p.transform(holdout).shape == (3, 5)


def test_state_round_trip_through_json_gives_identical_transform(train, holdout):
    p = fitted(train)
    q = TabularPreprocessor.from_state(json.loads(json.dumps(p.state_dict())))
    assert q.feature_names == p.feature_names
    assert torch.equal(q.transform(holdout), p.transform(holdout))
    assert torch.equal(q.transform_target(train), p.transform_target(train))
    assert q.ids(holdout) == [10, 11, 12]


def test_explicit_features_and_drop(train):
    p = TabularPreprocessor("price", features=["zone", "area"]).fit(train)
    assert p.feature_names == ["area", "zone_A", "zone_B", "zone_nan"]
    q = TabularPreprocessor("price", id_column="Id", drop=["rooms"]).fit(train)
    assert q.feature_names == ["area", "zone_A", "zone_B", "zone_nan"]
    r = fitted(train)
    r.fit(train.drop(columns="zone"))  # refitting forgets the first frame's columns
    assert r.feature_names == ["area", "rooms"]


def test_target_values_and_classification():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["cat", "dog", "cat"]})
    p = TabularPreprocessor("label").fit(frame)
    assert p.task == "classification" and p.classes == ["cat", "dog"]
    assert p.transform_target(frame).tolist() == [0, 1, 0]
    with pytest.raises(DataError, match="not seen in training"):
        p.transform_target(frame.assign(label=["cat", "cow", "dog"]))
    assert infer_task(pd.Series([1.5, 2.5])) == "regression"
    assert infer_task(pd.Series([True, False])) == "classification"


def test_tensor_bundle_tells_the_model_its_shape(train):
    labelled = train.dropna(subset=["zone"])  # 3 rows: A, B, A
    p = TabularPreprocessor("zone", id_column="Id").fit(labelled)
    X, y = p.transform(labelled), p.transform_target(labelled)
    bundle = tensor_bundle("toy", "classification", X, y, X, y, batch_size=2, classes=p.classes)
    assert bundle.context == {"in_shape": (p.num_features,), "num_classes": 2} and bundle.classes == ["A", "B"]
    assert [len(b[0]) for b in bundle.train] == [2, 1] and bundle.valid is not None
    reg = tensor_bundle("toy", "regression", X, torch.zeros(3), batch_size=8)
    assert reg.context["num_outputs"] == 1 and reg.valid is None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda f: TabularPreprocessor("SalePrice").fit(f), "target column 'SalePrice' not in the frame"),
        (lambda f: TabularPreprocessor("price").fit(f.iloc[:0]), "is empty"),
        (lambda f: TabularPreprocessor("zone", task="regression").fit(f.assign(zone=f["zone"].fillna("A"))),
         "non-numeric"),
        (lambda f: TabularPreprocessor("price", features=["aera"]).fit(f), "Did you mean 'area'"),
        (lambda f: TabularPreprocessor("price", features=["price"]).fit(f), "cannot be both a feature"),
        (lambda f: TabularPreprocessor("price").transform(f), "not fitted"),
        (lambda f: fitted(f).transform(f.drop(columns="rooms")), "'rooms' not in the frame"),
        (lambda f: fitted(f).transform(f.iloc[:0]), "is empty"),
        (lambda f: fitted(f.assign(price=[1.0, None, 2.0, 3.0])), "missing in 1 row"),
    ],
)
def test_bad_input_raises_data_error(train, make, message):
    with pytest.raises(DataError, match=message):
        make(train)
