"""The two-stage detector (book 14.8): output format, proposals, RoI targets by hand, the pooled
features against the op, detections, and short seeded trainings (in process, and through the CLI
with `divekit detect` on its checkpoint) whose mAP must beat an untrained model's."""

import json
import shutil

import pytest
import torch

import divekit as dk
from divekit.models.rcnn import FastRCNN, RCNNOutput, rcnn_detection, rcnn_loss, rcnn_targets, roi_targets
from divekit.ops.boxes import box_iou
from divekit.ops.roi import roi_align, roi_pool
from divekit.tasks.detection import Detection

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = torch.tensor([[[0, 0.1, 0.2, 0.5, 0.6], [-1, 0, 0, 0, 0]], [[0, 0.5, 0.5, 0.9, 0.8], [0, 0.1, 0.1, 0.3, 0.3]]])


def test_output_format_and_the_ground_truth_joins_the_proposals():
    torch.manual_seed(0)
    net = dk.create_model("fast-rcnn", num_classes=2)
    X = torch.rand(2, 3, 128, 128)
    out = net(X)
    assert isinstance(out, RCNNOutput)
    # an 8x8 map (1/16), 6 anchors a pixel; 16 RoIs an image; background + 2 classes
    assert out.anchors.shape == (1, 384, 4) and out.rpn_cls.shape == (2, 384, 2) and out.rpn_bbox.shape == (2, 1536)
    assert out.rois.shape == (2, 16, 4) and out.cls.shape == (2, 16, 3) and out.bbox.shape == (2, 16, 4)
    assert not out.rois.requires_grad and (out.rois >= 0).all() and (out.rois <= 1).all()
    trained = net(X, LABELS)  # training: + the M = 2 ground-truth rows, padding replaced by a proposal
    assert trained.rois.shape == (2, 18, 4)
    assert torch.equal(trained.rois[:, 16:][LABELS[..., 0] >= 0], LABELS[..., 1:][LABELS[..., 0] >= 0])
    assert torch.equal(trained.rois[0, 17], trained.rois[0, 0])


def test_a_bad_roi_op_is_a_config_error():
    from divekit.core.errors import ConfigError

    with pytest.raises(ConfigError, match="roi_op must be pool .* or align"):
        dk.create_model("fast-rcnn", roi_op="max")


def test_proposals_are_the_best_anchors_after_nms():
    net = FastRCNN(num_rois=5, pre_nms=20)
    anchors = torch.tensor([[[0.0, 0, 0.5, 0.5], [0.02, 0, 0.52, 0.5], [0.5, 0.5, 1, 1], [0, 0.5, 0.5, 1]]])
    logits = torch.tensor([[[0.0, 3.0], [0.0, 2.0], [0.0, 1.0], [0.0, -1.0]]])  # object scores in this order
    rois = net.propose(anchors, logits, torch.zeros(1, 16))
    # anchor 1 overlaps anchor 0 by IoU 0.92 > 0.7: suppressed, so it comes after the survivors 0, 2, 3
    assert rois.shape == (1, 4, 4) and torch.allclose(rois[0], anchors[0, [0, 2, 3, 1]], atol=1e-6)


def test_roi_targets_by_hand():
    rois = torch.tensor([[[0.1, 0.2, 0.5, 0.6], [0.1, 0.2, 0.5, 0.7], [0.6, 0.0, 0.7, 0.1], [0, 0, 0, 0]]])
    offsets, masks, classes = roi_targets(rois, LABELS[:1])
    assert classes.tolist() == [[1, 1, 0, 0]]  # IoU 1 and 0.8 with the banana; far away; empty
    assert masks.reshape(4, 4)[:, 0].tolist() == [1, 1, 0, 0]
    o = offsets.reshape(4, 4)
    assert torch.allclose(o[0], torch.zeros(4), atol=1e-5)
    # roi 1 is 0.4 x 0.5 centred at (0.3, 0.45); the box is 0.4 x 0.4 at (0.3, 0.4): the book's encoding
    assert torch.allclose(o[1], torch.tensor([0.0, -0.05 / 0.5 / 0.1, 0.0, torch.log(torch.tensor(0.8)) / 0.2]),
                          atol=1e-5)
    assert torch.isfinite(o).all() and (o[2:] == 0).all()


@pytest.mark.parametrize("op", ["pool", "align"])
def test_the_head_pools_each_roi_with_the_op(op):
    torch.manual_seed(0)
    net = FastRCNN(roi_op=op)
    features = torch.randn(2, 128, 8, 8)
    rois = torch.tensor([[[0.1, 0.2, 0.5, 0.6]], [[0.0, 0.5, 1.0, 1.0]]])
    pooled = net.pool(features, rois, (128, 128))
    boxes = torch.tensor([[0, 12.8, 25.6, 64, 76.8], [1, 0, 64, 128, 128]])  # image pixels, the book's rois
    expected = (roi_pool(features, boxes, 4, 1 / 16) if op == "pool"
                else roi_align(features, boxes, 4, 1 / 16, sampling_ratio=2))
    assert torch.equal(pooled, expected)


@pytest.mark.parametrize("op", ["pool", "align"])
def test_the_spatial_scale_is_per_axis(op):
    torch.manual_seed(0)
    net = FastRCNN(roi_op=op, roi_size=1)
    features = torch.randn(1, 128, 4, 8)
    whole = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]])  # the whole 64 x 256 image: the whole 4 x 8 map
    pooled = net.pool(features, whole, (64, 256))  # 1/16 down, 1/32 across
    box = torch.tensor([[0, 0, 0, 256, 64]])
    if op == "pool":
        assert torch.equal(pooled, features.amax(dim=(2, 3), keepdim=True))
    else:
        assert torch.equal(pooled, roi_align(features, box, 1, (1 / 16, 1 / 32), sampling_ratio=2))


@pytest.mark.parametrize("op", ["pool", "align"])
def test_bfloat16_features_are_pooled_at_float32_regions(op):
    torch.manual_seed(0)
    net = FastRCNN(roi_op=op)
    features = torch.randn(2, 128, 8, 8).bfloat16()
    # x1 = 87.8 pixels, 5.4875 cells: rounds to 5, but bfloat16 holds 87.8 as 88 (5.5 cells, rounds to 6)
    rois = torch.tensor([[[87.8 / 128, 0.1, 0.9, 0.7]], [[0.23, 0.31, 0.77, 0.93]]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = net.pool(features, rois, (128, 128))
    expected = net.pool(features.float(), rois, (128, 128)).bfloat16()
    assert pooled.dtype == torch.bfloat16 and torch.equal(pooled, expected)


def test_loss_and_detections():
    torch.manual_seed(0)
    net = FastRCNN()
    X = torch.rand(2, 3, 64, 64)
    out = net(X, LABELS)
    loss = rcnn_loss(out, rcnn_targets(out, LABELS))
    assert loss.shape == (2,) and torch.isfinite(loss).all()
    loss.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    rows = rcnn_detection(net.eval()(X))
    assert rows.shape == (2, 16, 6)
    kept = rows[0][rows[0, :, 0] >= 0]
    assert len(kept) >= 1 and (kept[:-1, 1] >= kept[1:, 1]).all()  # by decreasing confidence
    iou = box_iou(kept[:, 2:], kept[:, 2:])
    assert (iou[~torch.eye(len(kept), dtype=torch.bool)] <= 0.5).all()  # non-maximum suppressed


def test_detection_task_trains_the_head_on_the_ground_truth():
    torch.manual_seed(0)
    net = FastRCNN().train()
    loss, sums, n = Detection().step(net, (torch.rand(2, 3, 64, 64), LABELS))
    assert n == 2 and sums["anchors"] == 2 * 18  # the head's RoIs: 16 proposals + 2 ground-truth rows
    assert loss.requires_grad and set(sums) == {"loss", "cls_err", "bbox_mae", "anchors"}


def _two_bananas(root, same_val: bool = False):
    """Two generated 32x32 images in d2l's banana-detection layout (bananas_train/, bananas_val/);
    with `same_val` the validation split holds the same two images."""
    from divekit.data.detection import write_synthetic_detection

    write_synthetic_detection(root, num_train=2, num_val=2, image_size=32)
    if same_val:
        shutil.rmtree(root / "bananas_val")
        shutil.copytree(root / "bananas_train", root / "bananas_val")


def test_trains_and_evaluates_on_the_real_banana_detection_layout(tmp_path):
    """35 SGD steps on two images (on a shared CPU, about half a second) and the model finds a
    banana it could not find untrained: mAP on those images, seed 0, measured 0.0 untrained and
    0.5 trained (torch seeds 0-5; 0.5 to 1.0 on data seeds 1 and 2)."""
    from divekit.apps.detect import evaluate

    _two_bananas(tmp_path / "banana-detection")
    data = dk.load_dataset("banana-detection", batch_size=2, seed=0, data_dir=str(tmp_path))
    torch.manual_seed(0)
    model = dk.create_model("fast-rcnn", context=data.context)
    untrained = evaluate(model, data.train)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    batch = next(iter(data.train))
    for _ in range(35):
        loss, _, n = Detection().step(model.train(), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = evaluate(model, data.train)
    assert n == 2 and torch.isfinite(loss) and untrained["n"] == trained["n"] == 2
    assert trained["map50"] >= untrained["map50"] + 0.25, (untrained["map50"], trained["map50"])


def test_train_and_detect_cli(tmp_path, monkeypatch, capsys):
    """`divekit train fast-rcnn` on two generated 32x32 images, 30 epochs: the loss falls; then
    `divekit detect` draws and prints boxes from its checkpoint and reports mAP on the validation
    split, here the same two images: measured 0.5 (seeds 0-5), where an untrained model gets 0.0."""
    from divekit.apps.detect import evaluate
    from divekit.cli import main

    monkeypatch.setenv("DIVEKIT_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data" / "banana-detection"
    _two_bananas(root, same_val=True)
    run = tmp_path / "run"
    argv = ["train", "fast-rcnn", "--data", "banana-detection", "--data-dir", str(tmp_path / "data"), "--epochs", "30",
            "--eval-every", "30", "--batch-size", "2", "--momentum", "0.9", "--seed", "0", "--out", str(run),
            "--no-progress", "--no-plot", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    losses = [epoch["train_loss"] for epoch in json.loads((run / "metrics.json").read_text())]
    assert summary["epochs"] == 30 and losses[-1] < 0.7 * losses[0], losses
    image = root / "bananas_val" / "images" / "0.png"
    assert main(["detect", str(run), str(image), "--threshold", "0", "--out", str(tmp_path / "d"), "--evaluate",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (one,) = out["images"]
    assert (tmp_path / "d" / "0-detections.png").is_file() and one["detections"]
    assert all(len(d["box"]) == 4 and d["class"] == "banana" for d in one["detections"])
    data = dk.load_dataset("banana-detection", batch_size=2, seed=0, data_dir=str(tmp_path / "data"))
    torch.manual_seed(0)
    untrained = evaluate(dk.create_model("fast-rcnn", context=data.context), data.valid)["map50"]
    assert out["valid"]["n"] == 2 and out["valid"]["map50"] >= untrained + 0.25, (untrained, out["valid"])
