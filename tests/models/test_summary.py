"""divekit.models.summary: the book's layer-by-layer walk with parameter and multiply-add counts."""

import json
import re

import pytest
import torch.nn as nn

from divekit.core.errors import ConfigError
from divekit.models import create_model
from divekit.models.summary import format_summary, summary, summary_main

pytestmark = pytest.mark.usefixtures("one_thread")

# the book's printout for LeNet on a 1x28x28 image (7.6.1)
LENET_WALK = [
    ("Conv2d", (1, 6, 28, 28)), ("Sigmoid", (1, 6, 28, 28)), ("AvgPool2d", (1, 6, 14, 14)),
    ("Conv2d", (1, 16, 10, 10)), ("Sigmoid", (1, 16, 10, 10)), ("AvgPool2d", (1, 16, 5, 5)),
    ("Flatten", (1, 400)), ("Linear", (1, 120)), ("Sigmoid", (1, 120)),
    ("Linear", (1, 84)), ("Sigmoid", (1, 84)), ("Linear", (1, 10)),
]


def test_lenet_summary_matches_the_book():
    s = summary(create_model("lenet"), (1, 28, 28))
    assert [(r.type, r.output_shape) for r in s.rows] == LENET_WALK
    assert s.total_params == 61_706 == sum(r.params for r in s.rows)
    assert s.rows[0].macs == 6 * 28 * 28 * 25 == 117_600
    assert s.rows[3].macs == 16 * 10 * 10 * 6 * 25  # each output sees 6 channels of 5x5
    assert [r.macs for r in s.rows if r.type == "Linear"] == [400 * 120, 120 * 84, 84 * 10]
    assert s.total_macs == sum(r.macs for r in s.rows) == 416_520
    text = format_summary(s)
    assert "Conv2d output shape: (1, 6, 28, 28)" in text and "61,706" in text


def test_nested_blocks_grouped_convs_and_batch_norm():
    model = create_model("resnet18", in_shape=(1, 32, 32))
    model.train()
    s = summary(model, (1, 32, 32))
    assert model.training  # mode restored
    assert s.total_params == sum(r.params for r in s.rows) == sum(p.numel() for p in model.parameters())
    names = [r.name for r in s.rows]
    assert "net.b3.0.conv3" in names and names[-1] == "net.last.2"
    bn = next(r for r in s.rows if r.name == "net.b1.1")
    assert bn.macs == 64 * 16 * 16  # one multiply-add per element

    grouped = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.ReLU())
    row = summary(grouped, (4, 5, 5)).rows[0]
    assert row.macs == 8 * 3 * 3 * (4 // 2) * 3 * 3


def test_shared_layer_counts_its_parameters_once():
    layer = nn.Linear(4, 4)
    s = summary(nn.Sequential(layer, nn.ReLU(), layer), (4,))
    assert [r.params for r in s.rows] == [20, 0, 0]
    assert s.total_params == 20 and s.total_macs == 2 * 16


def test_summary_main_json(capsys):
    assert summary_main("lenet", "1,28,28", json=True) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["model"] == "lenet" and out["input_shape"] == [1, 28, 28]
    assert out["total_params"] == 61_706 and out["total_macs"] == 416_520
    assert out["layers"][0] == {"name": "net.0", "type": "Conv2d", "output_shape": [1, 6, 28, 28], "params": 156,
                                "macs": 117_600, "window": {"kernel": [5, 5], "stride": [1, 1], "padding": [2, 2],
                                                            "dilation": [1, 1], "groups": 1}}
    assert out["layers"][1]["window"] is None  # the sigmoid has no window


def test_summary_main_table_and_errors(capsys):
    assert summary_main("nin", "1,67,67") == 0
    assert "Conv2d output shape: (1, 96, 15, 15)" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="input-shape"):
        summary_main("lenet", "1,a,28")
    with pytest.raises(ConfigError, match="cannot take inputs"):
        summary_main("nin", "1,28,28")
    with pytest.raises(ConfigError, match="unknown model"):
        summary_main("lenett", "1,28,28")


def test_table_shows_each_window_with_dilation_and_groups(capsys):
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=4), nn.ReLU(),
                          nn.Conv2d(8, 8, (1, 3), stride=(1, 2)), nn.MaxPool2d(2), nn.AvgPool2d(3, 1, 1))
    s = summary(model, (4, 9, 9))
    assert [r.config for r in s.rows] == ["k3x3 s1 p2 d2 g4", "", "k1x3 s1x2 p0 d1 g1", "k2x2 s2 p0 d1", "k3x3 s1 p1"]
    assert s.rows[0].output_shape == (1, 8, 9, 9) and s.rows[0].macs == 8 * 9 * 9 * 1 * 9  # 1 input channel per group
    assert re.search(r"Conv2d output shape: \(1, 8, 9, 9\) +k3x3 s1 p2 d2 g4 +80 +5,832", format_summary(s))
    rows = s.to_dict()["layers"]
    assert "config" not in rows[0]  # JSON carries the window as numbers, not the table's text
    assert [r["window"] for r in rows] == [
        {"kernel": [3, 3], "stride": [1, 1], "padding": [2, 2], "dilation": [2, 2], "groups": 4}, None,
        {"kernel": [1, 3], "stride": [1, 2], "padding": [0, 0], "dilation": [1, 1], "groups": 1},
        {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1]},
        {"kernel": [3, 3], "stride": [1, 1], "padding": [1, 1]}]
    assert json.loads(json.dumps(s.to_dict())) == s.to_dict()  # plain JSON types only
    assert summary_main("lenet", "1,28,28") == 0
    assert "k5x5 s1 p2 d1 g1" in capsys.readouterr().out
