"""The "segmentation" training task (book 14.9-14.11).

A batch is (images (B, 3, H, W), labels (B, H, W) int64); the model returns class scores
(B, num_classes, H, W); the loss is the cross-entropy of every pixel, averaged over the pixels
whose label is not the ignore index (VOC's object borders). Metrics (divekit.ops.metrics), from
sums over the whole split (not averaged per batch, so they do not depend on the batch size):
loss, acc (pixel accuracy) and miou (mean IoU).
"""

from __future__ import annotations

import torch.nn.functional as F

from ..ops.metrics import IGNORE_INDEX
from ..ops.metrics import segmentation_confusion as confusion_matrix
from .base import Task, register_task


@register_task
class Segmentation(Task):
    """Images -> per-pixel class scores; per-pixel cross-entropy; metrics loss, acc (pixel accuracy), miou."""

    name = "segmentation"
    unit = "img"

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index

    @classmethod
    def from_config(cls, config, context=None) -> "Segmentation":
        if not context or "num_classes" not in context:
            raise ValueError("the segmentation task needs the number of classes (context['num_classes']) from the dataset")
        return cls(context["num_classes"], context.get("ignore_index", IGNORE_INDEX))

    def default_loss(self, logits, Y, training):
        return F.cross_entropy(logits, Y, ignore_index=self.ignore_index)  # mean over labelled pixels

    def step(self, model, batch):
        X, Y = batch[0], batch[1]
        logits = model(X)  # (B, num_classes, H, W)
        loss = self.loss(model, logits, Y)
        conf = confusion_matrix(logits.detach().argmax(dim=1), Y, self.num_classes, self.ignore_index)
        pixels = conf.sum()
        inter = conf.diagonal()
        union = conf.sum(0) + conf.sum(1) - inter
        sums = {"loss": loss.detach() * pixels, "acc": inter.sum(), "pixels": pixels}
        for c in range(self.num_classes):  # 0-dim sums, as the trainer accumulates them
            sums[f"inter_{c}"], sums[f"union_{c}"] = inter[c], union[c]
        return loss, sums, Y.shape[0]

    def summarize(self, totals, n):
        totals = dict(totals)
        pixels = max(totals.pop("pixels"), 1.0)
        inter = [totals.pop(f"inter_{c}") for c in range(self.num_classes)]
        union = [totals.pop(f"union_{c}") for c in range(self.num_classes)]
        out = {k: v / pixels for k, v in totals.items()}
        ious = [i / u for i, u in zip(inter, union) if u > 0]
        out["miou"] = sum(ious) / len(ious) if ious else 0.0
        return out
