"""Using a trained detector: `divekit detect RUN_DIR IMAGE [IMAGE ...]` and the validation report.

    divekit detect runs/tiny-ssd-bananas-synthetic-... banana.jpg --threshold 0.9 --out detections
    divekit detect runs/tiny-ssd-bananas-synthetic-... --evaluate --json     # class err, bbox MAE, mAP@0.5
    divekit detect runs/fast-rcnn-bananas-synthetic-... banana.jpg              # a two-stage detector: the same

Each image is resized to the size the model was trained at (as the book feeds its 256x256
banana.jpg), its boxes are predicted with `multibox_detection` (NMS threshold 0.5) and those
scored at least `--threshold` are drawn on the original image, saved as OUT/NAME-detections.png.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.errors import DivekitError
from ..data.registry import load_dataset
from ..models.rcnn import RCNNOutput, rcnn_detection
from ..ops.boxes import draw_boxes, mean_average_precision, multibox_detection
from ..tasks.detection import Detection
from ..train.api import load_run
from .predict import load_image


@torch.no_grad()
def predict_boxes(model: torch.nn.Module, X: torch.Tensor, nms_threshold: float = 0.5) -> torch.Tensor:
    """(B, A, 6) rows (class, confidence, x1, y1, x2, y2) in normalized coordinates for images
    X (B, 3, H, W) in [0, 1]; class -1: background or suppressed. A is the anchors of a
    single-shot model (TinySSD), or the RoIs of a two-stage one (fast-rcnn)."""
    was_training = model.training
    model.eval()
    try:
        outputs = model(X)
    finally:
        model.train(was_training)
    if isinstance(outputs, RCNNOutput):  # a two-stage model: its RoIs' boxes and classes
        return rcnn_detection(outputs, nms_threshold)
    anchors, cls_preds, bbox_preds = outputs
    cls_probs = torch.softmax(cls_preds.float(), dim=2).permute(0, 2, 1)  # (B, 1 + C, A)
    return multibox_detection(cls_probs, bbox_preds.float(), anchors, nms_threshold=nms_threshold)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, nms_threshold: float = 0.5, iou_threshold: float = 0.5) -> dict:
    """The book's metrics and mAP over a split: {"loss", "cls_err", "bbox_mae", "map50", "ap", "n"}.

    cls_err and bbox_mae are the training task's (over all anchors); mAP is VOC-style at IoU
    `iou_threshold` over every kept box (confidence >= 0.01, after NMS at `nms_threshold`).
    """
    task = Detection()
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    n = 0
    detections, truths = [], []
    try:
        for batch in loader:
            X, Y = batch[0], batch[1]
            _, sums, k = task.step(model, batch)
            for name, v in sums.items():
                totals[name] = totals.get(name, 0.0) + float(v)
            n += k
            out = predict_boxes(model, X, nms_threshold)
            detections += [rows[rows[:, 0] >= 0].cpu() for rows in out]
            truths += [y.cpu() for y in Y]
    finally:
        model.train(was_training)
    if n == 0:
        raise DivekitError("the split to evaluate has no images")
    metrics = task.summarize(totals, n)
    mAP = mean_average_precision(detections, truths, iou_threshold=iou_threshold)
    return {**metrics, "map50": mAP["map"], "ap": mAP["ap"], "n": n}


def load_detector(run_dir: str | Path, which: str = "best", device: str = "cpu"):
    """A detection run's model and checkpoint (DivekitError for another kind of run)."""
    model, ckpt = load_run(run_dir, which, device)
    if ckpt.meta["task"] != "detection":
        raise DivekitError(f"`divekit detect` needs a detection run (e.g. `divekit train tiny-ssd`); {run_dir} is a "
                           f"{ckpt.meta['task']} run on {ckpt.meta['data']!r}")
    return model, ckpt


def evaluate_run(run_dir: str | Path, which: str = "best", device: str = "cpu", data_dir: str | None = None) -> dict:
    """`evaluate` on the validation split of the run's own dataset (same data arguments)."""
    model, ckpt = load_detector(run_dir, which, device)
    cfg = ckpt.meta["config"]
    data = load_dataset(cfg["data"], batch_size=cfg["batch_size"], resize=cfg["resize"], seed=cfg["seed"],
                        device=next(model.parameters()).device, data_dir=data_dir or cfg["data_dir"],
                        **cfg.get("data_args", {}))
    loader = data.valid or data.test
    if loader is None:
        raise DivekitError(f"dataset {cfg['data']!r} has no validation split to evaluate on")
    return evaluate(model, loader)


def detect_images(model: torch.nn.Module, meta: dict, paths, threshold: float = 0.9, out_dir: str | Path = "detections",
                  nms_threshold: float = 0.5) -> list[dict]:
    """Detect objects in image files; saves each with its boxes drawn as OUT/NAME-detections.png.

    Returns per image {"input", "output", "detections": [{"class", "score", "box" (pixels of the
    original image)}]} for the boxes scored at least `threshold`."""
    _, h, w = meta["context"]["in_shape"]
    classes = meta.get("classes") or []
    device = next(model.parameters()).device
    results = []
    for path in paths:
        original = load_image(path)  # (3, H0, W0), for drawing
        x = load_image(path, (3, h, w)).unsqueeze(0).to(device)
        rows = predict_boxes(model, x, nms_threshold)[0].cpu()
        rows = rows[(rows[:, 0] >= 0) & (rows[:, 1] >= threshold)]
        H0, W0 = original.shape[-2:]
        boxes = rows[:, 2:] * torch.tensor([W0, H0, W0, H0], dtype=torch.float32)
        names = [classes[int(c)] if int(c) < len(classes) else str(int(c)) for c in rows[:, 0]]
        target = Path(out_dir) / f"{Path(path).stem}-detections.png"
        draw_boxes(original, boxes, target, labels=[f"{n} {s:.2f}" for n, s in zip(names, rows[:, 1].tolist())],
                   colors=["w"])
        results.append({
            "input": str(path), "output": str(target),
            "detections": [{"class": n, "score": round(float(s), 4), "box": [round(v, 1) for v in b.tolist()]}
                           for n, s, b in zip(names, rows[:, 1], boxes)],
        })
    return results
