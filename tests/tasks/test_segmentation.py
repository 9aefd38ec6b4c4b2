"""Semantic segmentation (book 14.9-14.11): VOC layout loader, procedural shapes, the FCN with its
bilinear transposed convolution, pixel accuracy and mean IoU, and `divekit segment`."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from divekit.apps.segment import label2image
from divekit.cli import main
from divekit.core.errors import ConfigError
from divekit.data import load_dataset
from divekit.data.segmentation import (
    IGNORE_INDEX,
    VOC_COLORMAP,
    make_shapes,
    random_crop_pairs,
    read_label_png,
    read_voc_images,
    to_canvas,
    voc_colormap2label,
    voc_label_indices,
    voc_palette,
)
from divekit.models import create_model
from divekit.models.fcn import bilinear_kernel
from divekit.ops.conv import conv_transpose2d
from divekit.ops.metrics import iou_per_class, mean_iou, pixel_accuracy
from divekit.ops.metrics import segmentation_confusion as confusion_matrix
from divekit.tasks.segmentation import Segmentation

pytestmark = pytest.mark.usefixtures("one_thread")


# -- the bilinear kernel and the transposed convolution ---------------------------------------------------------


def test_bilinear_kernel_values_match_the_books_construction():
    w = bilinear_kernel(3, 3, 4)
    tent = torch.tensor([0.25, 0.75, 0.75, 0.25])  # factor 2, center 1.5: 1 - |a - 1.5| / 2
    assert w.shape == (3, 3, 4, 4)
    for c in range(3):
        torch.testing.assert_close(w[c, c], tent[:, None] * tent[None, :])
    off_diagonal = w.clone()
    off_diagonal[range(3), range(3)] = 0
    assert off_diagonal.abs().sum() == 0
    odd = bilinear_kernel(1, 1, 3)[0, 0]  # factor 2, center 1
    torch.testing.assert_close(odd, torch.tensor([0.5, 1.0, 0.5])[:, None] * torch.tensor([0.5, 1.0, 0.5])[None, :])
    big = bilinear_kernel(1, 1, 64)[0, 0]  # the FCN's: factor 32, center 31.5, so f(0) = 1/64 and f(31) = 63/64
    torch.testing.assert_close(big[[0, 0, 31, 32, 63], [0, 31, 31, 32, 0]],
                               torch.tensor([1 / 64 ** 2, 63 / 64 ** 2, (63 / 64) ** 2, (63 / 64) ** 2, 1 / 64 ** 2]))


def test_transposed_conv_with_bilinear_kernel_upsamples_like_bilinear_interpolation():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(1, 3, 6, 7, generator=g)
    conv_trans = nn.ConvTranspose2d(3, 3, kernel_size=4, padding=1, stride=2, bias=False)  # the book's 2x example
    conv_trans.weight.data.copy_(bilinear_kernel(3, 3, 4))
    Y = conv_trans(X).detach()
    ref = F.interpolate(X, scale_factor=2, mode="bilinear", align_corners=False)
    assert Y.shape == ref.shape == (1, 3, 12, 14)
    torch.testing.assert_close(Y[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])  # borders differ: zero padding vs clamping
    # divekit's from-scratch transposed convolution gives the same
    torch.testing.assert_close(conv_transpose2d(X, bilinear_kernel(3, 3, 4), stride=2, padding=1), Y)


def test_fcn_transpose_conv_starts_as_32x_bilinear_upsampling():
    model = create_model("fcn", num_classes=3, in_shape=(3, 64, 96))
    layer = model.net.transpose_conv
    assert (layer.kernel_size, layer.stride, layer.padding) == ((64, 64), (32, 32), (16, 16))
    X = torch.rand(1, 3, 3, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        Y = layer(X)
    ref = F.interpolate(X, scale_factor=32, mode="bilinear", align_corners=False)
    assert Y.shape == ref.shape == (1, 3, 96, 128)
    torch.testing.assert_close(Y[..., 16:-16, 16:-16], ref[..., 16:-16, 16:-16])
    with torch.no_grad():  # divekit's from-scratch transposed convolution agrees with the layer
        torch.testing.assert_close(conv_transpose2d(X[:, :, :2, :2], layer.weight, layer.bias, stride=32, padding=16),
                                   layer(X[:, :, :2, :2]))


def test_fcn_shapes_and_registry():
    model = create_model("fcn", context={"num_classes": 4, "in_shape": (3, 64, 64), "palette": [[0, 0, 0]]})
    assert [n for n, _ in model.net.named_children()] == ["b1", "b2", "b3", "b4", "b5", "final_conv",
                                                          "transpose_conv"]
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 96)).shape == (2, 4, 64, 96)
        assert model(torch.rand(1, 3, 50, 70)).shape == (1, 4, 50, 70)  # not multiples of 32: cut back


# -- metrics and the task ---------------------------------------------------------------------------------------


def test_confusion_pixel_accuracy_and_mean_iou_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    conf = confusion_matrix(pred, target, 4)
    # rows true class, columns predicted; the 255 pixel is left out
    expected = torch.tensor([[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert torch.equal(conf, expected)
    assert pixel_accuracy(conf) == pytest.approx(5 / 7)
    # IoU: class 0: 2 / (3 + 3 - 2) = 1/2; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 1 / (2 + 1 - 1) = 1/2; class 3 absent
    iou = iou_per_class(conf)
    torch.testing.assert_close(iou[:3], torch.tensor([0.5, 2 / 3, 0.5], dtype=torch.float64))
    assert math.isnan(iou[3])
    assert mean_iou(conf) == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)


class _Fixed(nn.Module):
    """A 'model' whose scores are given: logits for the batch it is called with."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, X):
        return self.logits[X[:, 0, 0, 0].long()]


def test_segmentation_task_sums_over_batches_and_ignores_the_border():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 5, 6, generator=g)
    Y = torch.randint(0, 3, (4, 5, 6), generator=g)
    Y[:, 0, :] = IGNORE_INDEX
    X = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 5, 6)  # example index, read by _Fixed
    task = Segmentation.from_config(None, {"num_classes": 3, "ignore_index": IGNORE_INDEX})
    model = _Fixed(logits)
    totals, n = {}, 0
    for sl in (slice(0, 1), slice(1, 4)):  # two batches of different sizes
        loss, sums, k = task.step(model, (X[sl], Y[sl]))
        ref = F.cross_entropy(logits[sl], Y[sl], ignore_index=IGNORE_INDEX)
        torch.testing.assert_close(loss, ref)
        for key, v in sums.items():
            assert v.dim() == 0
            totals[key] = totals.get(key, 0) + float(v)
        n += k
    out = task.summarize(totals, n)
    conf = confusion_matrix(logits.argmax(1), Y, 3)
    valid = Y != IGNORE_INDEX
    per_pixel = F.cross_entropy(logits, Y, ignore_index=IGNORE_INDEX, reduction="none")[valid]
    assert out["loss"] == pytest.approx(float(per_pixel.mean()), rel=1e-5)
    assert out["acc"] == pytest.approx(pixel_accuracy(conf))
    assert out["miou"] == pytest.approx(mean_iou(conf))


def test_label2image_colors_with_the_palette():
    pred = torch.tensor([[0, 1], [2, 255]])
    img = label2image(pred, VOC_COLORMAP)
    assert img.shape == (2, 2, 3) and img.dtype == torch.uint8
    assert img[0, 1].tolist() == VOC_COLORMAP[1] and img[1, 0].tolist() == VOC_COLORMAP[2]
    assert img[1, 1].tolist() == [255, 255, 255]


# -- data: VOC layout and crops ---------------------------------------------------------------------------------


def test_random_crop_pairs_cuts_the_same_window_inside_each_image():
    n, H, W = 5, 12, 15
    sizes = torch.tensor([[12, 15], [8, 10], [6, 6], [10, 7], [6, 15]])
    r = torch.arange(H).view(1, H, 1).expand(n, H, W)
    c = torch.arange(W).view(1, 1, W).expand(n, H, W)
    inside = (r < sizes[:, :1, None]) & (c < sizes[:, 1:, None])
    X = torch.stack([r, c, torch.arange(n).view(n, 1, 1).expand(n, H, W)], 1).to(torch.uint8)  # (n, 3, H, W)
    Y = torch.where(inside, (r * 3 + c) % 11, IGNORE_INDEX).to(torch.uint8)
    for seed in range(5):
        images, labels = random_crop_pairs(X, Y, sizes, (6, 6), torch.Generator().manual_seed(seed))
        assert images.shape == (n, 3, 6, 6) and labels.shape == (n, 6, 6)
        assert (labels != IGNORE_INDEX).all()  # never outside an image
        assert torch.equal(labels.long(), (images[:, 0].long() * 3 + images[:, 1].long()) % 11)  # same window
        assert torch.equal(images[:, 2, 0, 0], torch.arange(n, dtype=torch.uint8))
    with pytest.raises(ValueError, match="smaller than"):
        random_crop_pairs(X, Y, sizes, (7, 6))


def _write_voc(root, sizes_by_split):
    """A tiny VOC2012 in its exact layout: JPEGImages/*.jpg, SegmentationClass/*.png (palette), ImageSets lists."""
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = {}
    for split, sizes in sizes_by_split.items():
        names = []
        for i, (h, w) in enumerate(sizes):
            name = f"2007_{split}{i:03d}"
            label = np.zeros((h, w), dtype=np.uint8)
            label[h // 4:3 * h // 4, w // 4:w // 2] = 1 + i % 20
            label[h // 4:3 * h // 4, w // 2:3 * w // 4] = 15
            label[h // 4 - 1, w // 4:3 * w // 4] = IGNORE_INDEX  # the object border
            png = Image.fromarray(label, mode="P")
            png.putpalette(voc_palette())
            png.save(voc / "SegmentationClass" / f"{name}.png")
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{name}.jpg")
            names.append(name)
            labels[name] = label
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return voc, labels


def test_voc_colormap_maps_colors_to_classes_and_the_border_to_ignore():
    table = voc_colormap2label()
    colors = torch.tensor(VOC_COLORMAP + [[224, 224, 192], [1, 2, 3]], dtype=torch.uint8).T.reshape(3, 1, -1)
    assert voc_label_indices(colors, table).flatten().tolist() == list(range(21)) + [IGNORE_INDEX, IGNORE_INDEX]


def test_voc_loader_on_a_fixture_in_the_real_layout(tmp_path):
    voc, labels = _write_voc(tmp_path, {"train": [(40, 60), (48, 64), (20, 30)], "val": [(44, 50), (36, 48)]})
    images, read_labels, names = read_voc_images(voc, is_train=True)
    assert names == ["2007_train000", "2007_train001", "2007_train002"]
    assert [tuple(x.shape) for x in images] == [(3, 40, 60), (3, 48, 64), (3, 20, 30)]
    for name, y in zip(names, read_labels):
        assert np.array_equal(y.numpy(), labels[name])
        # the palette indices are what the book's RGB -> colormap mapping gives
        rgb = Image.open(voc / "SegmentationClass" / f"{name}.png").convert("RGB")
        rgb.save(tmp_path / "rgb.png")
        assert torch.equal(read_label_png(tmp_path / "rgb.png"), y)

    data = load_dataset("voc2012", batch_size=2, data_dir=str(tmp_path), crop_size=(32, 48))
    assert data.task == "segmentation" and data.classes[15] == "person"
    assert data.context["num_classes"] == 21 and data.context["in_shape"] == (3, 32, 48)
    assert len(data.train.tensors[0]) == 2  # the 20x30 image is smaller than the crop: dropped as in the book
    assert len(data.valid.tensors[0]) == 2
    X, Y = next(iter(data.train))
    assert X.shape == (2, 3, 32, 48) and X.dtype == torch.float32 and Y.shape == (2, 32, 48) and Y.dtype == torch.int64
    assert set(Y.unique().tolist()) <= set(range(21)) | {IGNORE_INDEX}
    V1, W1 = next(iter(data.valid))
    V2, W2 = next(iter(data.valid))
    assert torch.equal(V1, V2) and torch.equal(W1, W2)  # the held-out crops are the same at every evaluation
    with pytest.raises(ConfigError, match="crop_size"):
        load_dataset("voc2012", data_dir=str(tmp_path), crop_size=(0, 3))


def test_to_canvas_pads_labels_with_ignore():
    X, Y, sizes = to_canvas([torch.ones(3, 2, 3, dtype=torch.uint8), torch.ones(3, 4, 1, dtype=torch.uint8)],
                            [torch.zeros(2, 3, dtype=torch.uint8), torch.zeros(4, 1, dtype=torch.uint8)])
    assert X.shape == (2, 3, 4, 3) and sizes.tolist() == [[2, 3], [4, 1]]
    assert (Y[0, 2:] == IGNORE_INDEX).all() and (Y[1, :, 1:] == IGNORE_INDEX).all() and (Y[0, :2] == 0).all()


def test_shapes_are_seeded_and_labelled_per_pixel():
    X1, Y1 = make_shapes(16, 48, generator=torch.Generator().manual_seed(3))
    X2, Y2 = make_shapes(16, 48, generator=torch.Generator().manual_seed(3))
    assert torch.equal(X1, X2) and torch.equal(Y1, Y2)
    assert X1.shape == (16, 3, 48, 48) and X1.dtype == torch.uint8 and Y1.shape == (16, 48, 48)
    assert set(Y1.unique().tolist()) == {0, 1, 2, 3}
    circle = X1.permute(0, 2, 3, 1)[Y1 == 1].float().mean(0)  # class colors: circles are red, squares green
    square = X1.permute(0, 2, 3, 1)[Y1 == 2].float().mean(0)
    assert circle[0] > circle[1] + 60 and square[1] > square[0] + 60
    X3, Y3 = make_shapes(16, 48, class_colors=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(Y3, Y1) and not torch.equal(X3, X1)  # the same shapes in random colors
    assert ((Y1 > 0).flatten(1).any(1)).all()  # shapes are centered inside the image: one at least shows
    data = load_dataset("shapes-segmentation", batch_size=8, size=32, num_train=24, num_valid=8)
    assert data.context["num_classes"] == 4 and data.classes == ["background", "circle", "square", "triangle"]
    X, Y = next(iter(data.train))
    assert X.shape == (8, 3, 32, 32) and Y.shape == (8, 32, 32) and Y.dtype == torch.int64
    with pytest.raises(ConfigError, match="size"):
        load_dataset("shapes-segmentation", size=8)


# -- a short real training run and `divekit segment` ------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("fcn") / "run"
    code = main(["train", "fcn", "--data", "shapes-segmentation", "--data-arg", "size=64", "--data-arg", "num_train=128",
                 "--data-arg", "num_valid=32", "--optimizer", "adam", "--lr", "0.003", "--weight-decay", "0",
                 "--epochs", "3", "--batch-size", "16", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def _history(run):
    history = json.loads((run / "metrics.json").read_text())
    return history if isinstance(history, list) else history["history"]


@pytest.mark.slow
def test_fcn_learns_the_shapes(trained_run):
    history = _history(trained_run)
    first, last = history[0], history[-1]
    assert last["train_loss"] < 0.6 * first["train_loss"]
    # predicting background everywhere scores IoU = background share for it and 0 for the 3 shapes
    data = load_dataset("shapes-segmentation", size=64, num_train=128, num_valid=32)
    background = float((data.valid.tensors[1] == 0).float().mean())
    assert last["valid_miou"] > background / 4 + 0.04
    assert 0 < last["valid_acc"] <= 1


@pytest.mark.slow
def test_segment_verb_saves_colored_predictions_and_reports_heldout_metrics(trained_run, tmp_path, capsys):
    X, _ = make_shapes(1, 64, generator=torch.Generator().manual_seed(9))
    image = tmp_path / "shapes.png"
    Image.fromarray(X[0].permute(1, 2, 0).numpy()).resize((80, 70)).save(image)
    code = main(["segment", str(trained_run), str(image), "--eval", "--which", "last", "--out", str(tmp_path / "seg"),
                 "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    png = Image.open(out["predictions"][0]["output"])
    assert png.mode == "P" and png.size == (80, 70)
    assert np.asarray(png).max() <= 3
    held = out["heldout"]
    assert held["split"] == "valid" and held["pixels"] == 32 * 64 * 64
    last = _history(trained_run)[-1]  # the trainer's held-out figures for the same weights
    assert held["pixel_acc"] == pytest.approx(last["valid_acc"], abs=1e-5)
    assert held["miou"] == pytest.approx(last["valid_miou"], abs=1e-5)
    assert set(held["per_class_iou"]) == {"background", "circle", "square", "triangle"}
    assert (tmp_path / "seg" / "heldout.png").is_file()


def test_segment_verb_refuses_a_missing_image(trained_run, tmp_path, capsys):
    assert main(["segment", str(trained_run), str(tmp_path / "nope.png"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
