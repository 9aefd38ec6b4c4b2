"""TinySSD, its loss and task, the banana-detection data (real layout and generated), and
`divekit detect`: shapes from the book, hand-checked loss, error messages, a short real training."""

import csv
import json

import pytest
import torch
import torch.nn.functional as F

import divekit as dk
from divekit.core.errors import DataError
from divekit.data.detection import COLUMNS, read_detection_split, write_synthetic_detection
from divekit.models.ssd import ssd_loss
from divekit.ops.boxes import multibox_prior


def test_tiny_ssd_shapes_match_the_book(one_thread):
    """The book: a 256x256 batch gives anchors (1, 5444, 4), class preds (B, 5444, 2), bbox preds (B, 21776)."""
    torch.manual_seed(0)
    net = dk.create_model("tiny-ssd", num_classes=1)
    anchors, cls_preds, bbox_preds = net(torch.zeros(2, 3, 256, 256))
    assert anchors.shape == (1, 5444, 4) and cls_preds.shape == (2, 5444, 2) and bbox_preds.shape == (2, 21776)
    # the first scale's anchors are multibox_prior's on the 32x32 map with the book's sizes and ratios
    first = multibox_prior(torch.zeros(1, 64, 32, 32), sizes=[0.2, 0.272], ratios=[1, 2, 0.5])
    assert torch.equal(anchors[:, :4096], first)
    _, cls_small, _ = net(torch.zeros(1, 3, 64, 64))  # 8^2 + 4^2 + 2^2 + 1 + 1 pixels, 4 anchors each
    assert cls_small.shape == (1, 4 * 86, 2)


def test_ssd_loss_by_hand():
    g = torch.Generator().manual_seed(0)
    cls_preds = torch.randn(2, 3, 2, generator=g)
    cls_labels = torch.tensor([[0, 1, 0], [1, 1, 0]])
    bbox_preds, bbox_labels = torch.randn(2, 12, generator=g), torch.randn(2, 12, generator=g)
    bbox_masks = torch.zeros(2, 12)
    bbox_masks[0, 4:8] = 1
    bbox_masks[1, :8] = 1
    loss = ssd_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
    for i in range(2):
        ce = sum(F.cross_entropy(cls_preds[i, a:a + 1], cls_labels[i, a:a + 1]) for a in range(3)) / 3
        l1 = ((bbox_preds[i] - bbox_labels[i]).abs() * bbox_masks[i]).sum() / 12  # masked, mean over all offsets
        assert loss[i].item() == pytest.approx((ce + l1).item(), rel=1e-5)


# -- data -----------------------------------------------------------------------------------------

def write_split(folder, rows, size=(32, 24), header=COLUMNS, images=None):
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    with open(folder / "label.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    for name in images if images is not None else {r[0] for r in rows}:
        Image.new("RGB", size, (200, 180, 40)).save(folder / "images" / name)


def test_reads_the_real_layout_and_normalizes_boxes(tmp_path):
    # the real banana set: one row per image, pixel corners; a second object of 1.png is padded for 0.png
    write_split(tmp_path / "bananas_train", [["0.png", 0, 4, 6, 20, 18], ["1.png", 0, 0, 0, 32, 24],
                                             ["1.png", 0, 8, 12, 16, 24]])
    images, labels = read_detection_split(tmp_path / "bananas_train")
    assert images.shape == (2, 3, 24, 32) and images.dtype == torch.uint8
    assert torch.allclose(labels, torch.tensor([[[0, 4 / 32, 6 / 24, 20 / 32, 18 / 24], [-1, 0, 0, 0, 0]],
                                                [[0, 0, 0, 1, 1], [0, 8 / 32, 12 / 24, 16 / 32, 1]]]))


def test_bad_files_raise_data_errors_naming_them(tmp_path):
    write_split(tmp_path / "a", [["0.png", 0, 1, 1, 5, 5]], header=("img_name", "label", "xmin", "ymin", "xmax"))
    with pytest.raises(DataError, match=r"a/label.csv lacks the column\(s\) ymax"):
        read_detection_split(tmp_path / "a")
    write_split(tmp_path / "b", [["0.png", 0, 1, 1, 5, 5], ["1.png", 0, 1, 1, 5, 5]], images=["0.png"])
    with pytest.raises(DataError, match=r"b/images/1.png is missing"):
        read_detection_split(tmp_path / "b")
    write_split(tmp_path / "c", [["0.png", 0, "x", 1, 5, 5]])
    with pytest.raises(DataError, match=r"c/label.csv, line 2: label and box must be numbers"):
        read_detection_split(tmp_path / "c")
    with pytest.raises(DataError, match=r"d/label.csv is missing"):
        read_detection_split(tmp_path / "d")
    write_split(tmp_path / "e", [["0.png", 0, 9, 1, 5, 5]])
    with pytest.raises(DataError, match="xmin < xmax"):
        read_detection_split(tmp_path / "e")


def test_banana_detection_reads_an_extracted_archive_in_the_data_folder(tmp_path):
    root = tmp_path / "banana-detection"  # where hub.fetch_extracted finds d2l's banana-detection.zip extracted
    write_split(root / "bananas_train", [[f"{i}.png", 0, 2, 2, 20, 20] for i in range(4)], size=(64, 64))
    write_split(root / "bananas_val", [["0.png", 0, 0, 0, 32, 32]], size=(64, 64))
    data = dk.load_dataset("banana-detection", batch_size=2, data_dir=str(tmp_path))
    assert data.task == "detection" and data.classes == ["banana"] and data.context["in_shape"] == (3, 64, 64)
    X, Y = next(iter(data.valid))
    assert X.dtype == torch.float32 and float(X.max()) <= 1.0
    assert torch.allclose(Y, torch.tensor([[[0, 0, 0, 0.5, 0.5]]]))


def test_synthetic_set_is_written_in_the_banana_layout(tmp_path):
    write_synthetic_detection(tmp_path / "s1", num_train=6, num_val=2, image_size=64, max_objects=3, seed=3)
    write_synthetic_detection(tmp_path / "s2", num_train=6, num_val=2, image_size=64, max_objects=3, seed=3)
    text = (tmp_path / "s1" / "bananas_train" / "label.csv").read_text()
    assert text.splitlines()[0] == "img_name,label,xmin,ymin,xmax,ymax"
    assert text == (tmp_path / "s2" / "bananas_train" / "label.csv").read_text()  # seeded
    images, labels = read_detection_split(tmp_path / "s1" / "bananas_train")
    assert images.shape == (6, 3, 64, 64) and labels.shape[1] <= 3
    real = labels[..., 0] >= 0
    assert real[:, 0].all() and (labels[real][:, 1:] >= 0).all() and (labels[real][:, 1:] <= 1).all()
    boxes = labels[real][:, 1:]
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    # the banana is yellow: inside its box there are far more yellow pixels than in the image overall
    x = images.float()
    yellow = (x[:, 0] > 150) & (x[:, 1] > 110) & (x[:, 2] < 110) & (x[:, 0] - x[:, 2] > 100)
    inside = torch.zeros_like(yellow)
    for i, row in zip(*torch.nonzero(real, as_tuple=True)):
        x1, y1, x2, y2 = (labels[i, row, 1:] * 64).round().long().tolist()
        inside[i, y1:y2, x1:x2] = True
    assert yellow[inside].float().mean() > 0.15 and yellow[inside].float().mean() > 4 * yellow[~inside].float().mean()


def test_photo_sprites_come_from_the_books_banana_image(shared_data, tmp_path):
    from divekit.data.detection import photo_bananas

    if not (shared_data / "img" / "banana.jpg").is_file():
        pytest.skip("img/banana.jpg is missing from the data folder")
    sprites = photo_bananas(shared_data)
    assert len(sprites) == 4  # the four bananas pasted on the book's bear photo
    write_synthetic_detection(tmp_path, num_train=2, num_val=1, image_size=64, sprite="photo", data_dir=shared_data)
    assert read_detection_split(tmp_path / "bananas_val")[1].shape == (1, 1, 5)


def test_photo_sprites_need_the_image(tmp_path):
    with pytest.raises(DataError, match="img/banana.jpg, which is missing"):
        write_synthetic_detection(tmp_path / "out", num_train=1, num_val=1, sprite="photo", data_dir=tmp_path)


# -- a short real training, then detect ------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, one_thread):
    """TinySSD fitted to 32 generated 64x64 images with up to 3 bananas each: 60 steps of the
    book's SGD (lr 0.2, weight decay 5e-4) at batch size 8."""
    tmp = tmp_path_factory.mktemp("ssd")
    data_args = dict(num_train=32, num_val=8, image_size=64, max_objects=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIVEKIT_CACHE", str(tmp / "cache"))  # the generated set goes there, not in the user's cache
        data = dk.load_dataset("bananas-synthetic", batch_size=8, seed=0, **data_args)
        cfg = dk.TrainConfig(model="tiny-ssd", data="bananas-synthetic", lr=0.2, weight_decay=5e-4, batch_size=8,
                             epochs=15, eval_every=15, seed=0, data_args=data_args)
        result = dk.fit("tiny-ssd", data, cfg, run_dir=tmp / "run", progress=False)
        yield result, data, tmp


@pytest.mark.slow
def test_short_training_lowers_the_loss_and_finds_the_bananas(trained_run):
    from divekit.apps.detect import evaluate

    result, data, _ = trained_run
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.3 * losses[0]  # measured: 0.31 -> 0.048
    report = evaluate(result.model, data.train)
    untrained = evaluate(dk.create_model("tiny-ssd", num_classes=1), data.train)
    assert report["map50"] > 0.2 and untrained["map50"] < 0.05, (report, untrained)  # measured: 0.37


@pytest.mark.slow
def test_detect_cli_draws_boxes_and_reports_map(trained_run, tmp_path, capsys):
    from divekit.cli import main

    _, _, tmp = trained_run
    (image,) = (tmp / "cache" / "bananas-synthetic").glob("*/bananas_train/images/0.png")
    code = main(["detect", str(tmp / "run"), str(image), "--threshold", "0.0", "--out", str(tmp_path), "--evaluate",
                 "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (one,) = out["images"]
    assert (tmp_path / "0-detections.png").is_file() and one["output"] == str(tmp_path / "0-detections.png")
    assert one["detections"] and all(len(d["box"]) == 4 for d in one["detections"])
    assert set(out["valid"]) >= {"cls_err", "bbox_mae", "map50"} and out["valid"]["n"] == 8


def test_detect_cli_errors(tmp_path, capsys):
    from divekit.cli import main

    assert main(["detect", str(tmp_path)]) == 2
    assert "give image files" in capsys.readouterr().err
    assert main(["detect", str(tmp_path), "x.png"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
