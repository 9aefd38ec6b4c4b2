"""divekit.models.summary: the book's layer-by-layer walk with parameter and multiply-add counts."""

import json
import re

import pytest
import torch.nn as nn
from helpers import input_patch

from divekit.core.errors import ConfigError
from divekit.models import create_model
from divekit.models.summary import format_summary, summary, summary_main
from divekit.ops.conv import receptive_field

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


def test_lenet_receptive_fields_by_hand_by_formula_and_by_gradient():
    model = create_model("lenet")
    s = summary(model, (1, 28, 28))
    windowed = [r for r in s.rows if r.window]
    # by hand, r_l = r_{l-1} + (k_l - 1) j_{l-1} and j_l = j_{l-1} s_l: conv 5 (r 5, j 1), pool 2 stride 2
    # (5 + 1 = 6, j 2), conv 5 (6 + 4 * 2 = 14), pool 2 stride 2 (14 + 1 * 2 = 16, j 4)
    assert [(r.type, r.receptive_field, r.jump) for r in windowed] == [
        ("Conv2d", [5, 5], [1, 1]), ("AvgPool2d", [6, 6], [2, 2]), ("Conv2d", [14, 14], [2, 2]),
        ("AvgPool2d", [16, 16], [4, 4])]
    layers = [(5, 1, 1), (2, 2, 1), (5, 1, 1), (2, 2, 1)]  # (kernel, stride, dilation)
    assert [(r.receptive_field, r.jump) for r in windowed] == [
        tuple(list(v) for v in receptive_field(layers[:n])) for n in range(1, 5)]
    assert all(r.receptive_field is None for r in s.rows if not r.window) and s.chain_ends_at is None
    # the gradient of one output pixel of the conv/pool stack, net.0 to net.5, is non-zero on a 16 x 16
    # patch, and the next pixel's patch is 4 rows and columns further: the last pooling row's values
    features = model.net[:6]
    for conv in (model.net[0], model.net[3]):
        nn.init.constant_(conv.weight, 0.01)  # positive and small: no cancelling, no saturated sigmoid
    (r, _), (j, _) = windowed[-1].receptive_field, windowed[-1].jump
    top = 2 * j - 2  # output row 2 starts 2 jumps down, less conv 1's padding of 2: a patch clear of the border
    assert input_patch(features, 28, 2, 2) == (top, r, top, r)
    assert input_patch(features, 28, 3, 3) == (top + j, r, top + j, r)
    assert "r16 j4" in format_summary(s)


@pytest.mark.parametrize("model, in_shape, last_followed, chain_ends_at", [
    ("resnet18", (1, 32, 32), ("net.b2.0.conv1", [19, 19], [4, 4]), "net.b2.0.conv2"),  # F.relu between the convs
    ("googlenet", (1, 64, 64), ("net.b3.0.b1_1", [27, 27], [8, 8]), "net.b3.0.b2_1"),  # the second branch
])
def test_branchy_nets_get_a_receptive_field_only_while_the_layers_form_a_chain(model, in_shape, last_followed,
                                                                                chain_ends_at):
    s = summary(create_model(model, in_shape=in_shape), in_shape)
    followed = [r for r in s.rows if r.receptive_field is not None]
    assert (followed[-1].name, followed[-1].receptive_field, followed[-1].jump) == last_followed
    assert s.chain_ends_at == chain_ends_at
    after = s.rows[[r.name for r in s.rows].index(chain_ends_at):]
    assert any(r.window for r in after) and all(r.receptive_field is None for r in after)
    assert f"not followed from {chain_ends_at} on" in format_summary(s)


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
                                                            "dilation": [1, 1], "groups": 1},
                                "receptive_field": [5, 5], "jump": [1, 1]}
    assert out["layers"][1]["window"] is out["layers"][1]["receptive_field"] is None  # the sigmoid has no window
    assert [(r["receptive_field"], r["jump"]) for r in out["layers"] if r["window"]][-1] == ([16, 16], [4, 4])
    assert out["chain_ends_at"] is None


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
    assert re.search(r"Conv2d output shape: \(1, 8, 9, 9\) +k3x3 s1 p2 d2 g4 +r5 j1 +80 +5,832", format_summary(s))
    # dilation 2 spans 5; (1, 3) with stride (1, 2); pool 2; pool 3 stride 1: rectangular fields and jumps
    assert [(r.receptive_field, r.jump) for r in s.rows] == [
        ([5, 5], [1, 1]), (None, None), ([5, 7], [1, 2]), ([6, 9], [2, 4]), ([10, 17], [2, 4])]
    assert re.search(r"k3x3 s1 p1 +r10x17 j2x4", format_summary(s))
    windows = [(r.window["kernel"], r.window["stride"], r.window.get("dilation", 1)) for r in s.rows if r.window]
    assert [(r.receptive_field, r.jump) for r in s.rows if r.window] == [
        tuple(list(v) for v in receptive_field(windows[:n])) for n in range(1, len(windows) + 1)]
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
