"""Semantic segmentation (book 14.9-14.11): colored predictions, held-out evaluation and the
`divekit segment` verb, divekit.cli.segment (the training task is divekit.tasks.segmentation, the metrics
divekit.ops.metrics).

The task: a batch is (images (B, 3, H, W), labels (B, H, W) int64); the model returns class scores
(B, num_classes, H, W); the loss is the cross-entropy of every pixel, averaged over the pixels
whose label is not the ignore index (VOC's object borders). Metrics, over all labelled pixels of
a split:

* pixel accuracy = correct pixels / labelled pixels;
* mean IoU = the mean over classes of |prediction ∩ truth| / |prediction ∪ truth|, from the
  confusion matrix C (rows: true class, columns: predicted class) as
  IoU_c = C[c, c] / (sum_j C[c, j] + sum_i C[i, c] - C[c, c]); classes that neither occur nor
  are predicted in the split are left out of the mean.

Both are computed from sums over the whole split (not averaged per batch), so they do not depend
on the batch size.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image

from ..data.images import read_image
from ..data.registry import load_dataset
from ..data.segmentation import normalize_image
from ..ops.metrics import IGNORE_INDEX, iou_per_class, mean_iou, pixel_accuracy
from ..ops.metrics import segmentation_confusion as confusion_matrix

# ----------------------------------------------------------------------------------------------
# predictions


def label2image(pred: torch.Tensor, palette) -> torch.Tensor:
    """Class indices (..., H, W) -> uint8 colors (..., H, W, 3) through the palette (book 14.11.4);
    the ignore index and other out-of-palette indices become white."""
    colormap = torch.tensor(palette, dtype=torch.uint8, device=pred.device)  # (num_classes, 3)
    colormap = torch.cat([colormap, torch.full((1, 3), 255, dtype=torch.uint8, device=pred.device)])
    pred = pred.long()
    return colormap[torch.where((pred >= 0) & (pred < len(palette)), pred, len(palette))]


def save_label_png(pred: torch.Tensor, palette, path: str | Path) -> Path:
    """Save class indices (H, W) as a palette PNG, VOC's label format: each pixel's value is its class
    and the file's palette colors it (unused entries black, the ignore index white)."""
    flat = [0] * 768
    for i, rgb in enumerate(palette):
        flat[3 * i:3 * i + 3] = list(rgb)
    flat[3 * IGNORE_INDEX:3 * IGNORE_INDEX + 3] = [255, 255, 255]
    img = Image.fromarray(pred.to(torch.uint8).cpu().numpy(), mode="P")
    img.putpalette(flat)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


@torch.no_grad()
def predict(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Class indices (N, H, W) for normalized images (N, 3, H, W) (book 14.11.4)."""
    model.eval()
    return model(X.to(next(model.parameters()).device)).argmax(dim=1).cpu()


def segment_images(model: torch.nn.Module, meta: dict, paths, out_dir: str | Path) -> list[dict]:
    """Segment image files with a run's model; save each prediction as a colored palette PNG in
    `out_dir` (NAME_seg.png) and return, per image, where it went and the share of each class."""
    ctx, classes = meta["context"], meta["classes"]
    rows = []
    for path in paths:
        x = normalize_image(read_image(path), ctx["mean"], ctx["std"])  # (3, H, W)
        pred = predict(model, x.unsqueeze(0))[0]  # (H, W)
        out = save_label_png(pred, ctx["palette"], Path(out_dir) / f"{Path(path).stem}_seg.png")
        counts = torch.bincount(pred.flatten(), minlength=len(classes)).double() / pred.numel()
        rows.append({"input": str(path), "output": str(out), "size": list(pred.shape),
                     "class_share": {c: round(float(s), 4) for c, s in zip(classes, counts) if s > 0}})
    return rows


@torch.no_grad()
def evaluate_heldout(model: torch.nn.Module, loader, num_classes: int) -> tuple[torch.Tensor, list]:
    """The confusion matrix of the model over a held-out loader, and its first batch (images, labels, predictions)."""
    model.eval()
    device = next(model.parameters()).device
    conf = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    first = None
    for X, Y in loader:
        pred = model(X.to(device)).argmax(dim=1).cpu()
        conf += confusion_matrix(pred, Y.cpu(), num_classes)
        if first is None:
            first = (X.cpu(), Y.cpu(), pred)
    return conf, first


def heldout_figure(X: torch.Tensor, Y: torch.Tensor, pred: torch.Tensor, meta: dict, n: int = 4):
    """Rows of image | truth | prediction for the first `n` held-out examples (book 14.11.4)."""
    import matplotlib.pyplot as plt  # deferred: matplotlib loads only when a plot is drawn; never forces a backend

    ctx = meta["context"]
    mean, std = torch.tensor(ctx["mean"]).view(3, 1, 1), torch.tensor(ctx["std"]).view(3, 1, 1)
    n = min(n, len(X))
    fig, axes = plt.subplots(n, 3, figsize=(7, 2.3 * n), squeeze=False)
    for i in range(n):
        panels = ((X[i] * std + mean).clamp(0, 1).permute(1, 2, 0), label2image(Y[i], ctx["palette"]),
                  label2image(pred[i], ctx["palette"]))
        for ax, img, title in zip(axes[i], panels, ("image", "truth", "prediction")):
            ax.imshow(img.numpy())
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title)
    fig.tight_layout()
    return fig


def evaluate_run(model: torch.nn.Module, meta: dict, out_dir: str | Path, data_dir: str | None = None) -> dict:
    """Pixel accuracy, mean IoU and per-class IoU of a run's model on its dataset's held-out split;
    saves heldout.png (image | truth | prediction) in `out_dir`."""
    from ..core.plot import save_figure  # deferred: core.plot loads matplotlib, only when a plot is drawn

    cfg = meta["config"]
    data = load_dataset(cfg["data"], batch_size=cfg["batch_size"], seed=cfg["seed"], device="cpu",
                        data_dir=data_dir or cfg["data_dir"], **cfg["data_args"])
    split, loader = ("valid", data.valid) if data.valid is not None else ("test", data.test)
    classes = meta["classes"]
    conf, first = evaluate_heldout(model, loader, len(classes))
    iou = iou_per_class(conf)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    plot = save_figure(heldout_figure(*first, meta), Path(out_dir) / "heldout.png")
    return {"split": split, "pixels": int(conf.sum()), "pixel_acc": round(pixel_accuracy(conf), 6),
            "miou": round(mean_iou(conf), 6),
            "per_class_iou": {c: (None if math.isnan(v) else round(float(v), 4)) for c, v in zip(classes, iou)},
            "plot": str(plot)}


__all__ = ["evaluate_run", "label2image", "predict", "save_label_png", "segment_images"]
