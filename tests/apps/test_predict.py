"""Predictions for image files (divekit.apps.predict) from a classifier whose run has no class
names: the class index is the label, and the model is left in the mode it was in."""

import csv

import pytest
import torch

from divekit.apps.predict import predict_images, predict_labels, write_submission
from divekit.data.images import save_image

pytestmark = pytest.mark.usefixtures("one_thread")

META = {"task": "classification", "data": "unnamed", "context": {"in_shape": [3, 4, 4], "num_classes": 3}}


def brightest_channel_classifier() -> torch.nn.Module:
    """Class c for a 3 x 4 x 4 image whose channel c is the brightest; with dropout and batch norm
    (what eval mode changes). The batch norm is in eval mode, the rest in training mode."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(48, 3, bias=False),
                                torch.nn.BatchNorm1d(3))
    with torch.no_grad():
        model[2].weight.copy_(torch.eye(3).repeat_interleave(16, dim=1) / 16)  # (3, 48): each channel's mean
    model[3].eval()
    return model


@pytest.mark.parametrize("classes", [None, []])
def test_without_class_names_the_label_is_the_class_index(tmp_path, classes):
    for i in range(5):  # image i is bright in channel i % 3
        x = torch.full((3, 4, 4), 20, dtype=torch.uint8)
        x[i % 3] = 230
        save_image(x, tmp_path / f"{i + 1}.png")
    paths = [tmp_path / f"{i + 1}.png" for i in range(5)]
    model, meta = brightest_channel_classifier(), {**META, "classes": classes}
    modes = [m.training for m in model]
    assert modes == [True, True, True, False]

    assert predict_labels(model, meta, paths, batch_size=2) == ["0", "1", "2", "0", "1"]
    assert [m.training for m in model] == modes  # every submodule back in its own mode
    assert [r["top"][0]["class"] for r in predict_images(model, meta, paths)] == ["0", "1", "2", "0", "1"]
    assert [m.training for m in model] == modes
    assert write_submission(model, meta, [tmp_path], tmp_path / "submission.csv")["rows"] == 5
    rows = list(csv.reader((tmp_path / "submission.csv").open()))
    assert rows == [["id", "label"], ["1", "0"], ["2", "1"], ["3", "2"], ["4", "0"], ["5", "1"]]
