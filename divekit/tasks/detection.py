"""The "detection" training task: batches (images (B, 3, H, W), labels (B, M, 5)).

Single-shot models return (anchors, cls_preds, bbox_preds), as TinySSD does; `multibox_target`
labels every anchor, the loss is the book's (class cross-entropy + L1 on masked offsets, see
divekit.models.ssd.ssd_loss) averaged over images, and the metrics are the book's:
class error, the fraction of anchors whose predicted class (background included) is wrong, and
bbox MAE, the mean absolute error of the masked offsets over all anchors' offsets.

Two-stage models (divekit.models.rcnn.FastRCNN) are given the labels in training, so that the
ground-truth boxes join their proposals, and return an RCNNOutput; the loss is `rcnn_loss` (the
RPN's over its anchors + the head's over its RoIs), and class error and bbox MAE are the head's,
over its RoIs.
"""

from __future__ import annotations

from ..core.dist import unwrap
from ..models.rcnn import FastRCNN, RCNNOutput, rcnn_loss, rcnn_targets
from ..models.ssd import ssd_loss
from ..ops.boxes import multibox_target
from .base import Task, register_task


@register_task
class Detection(Task):
    name = "detection"

    def default_loss(self, outputs, targets, training):
        if isinstance(outputs, RCNNOutput):
            return rcnn_loss(outputs, targets).mean()
        _, cls_preds, bbox_preds = outputs
        bbox_labels, bbox_masks, cls_labels = targets
        return ssd_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks).mean()

    def step(self, model, batch):
        X, Y = batch[0], batch[1]
        if isinstance(unwrap(model), FastRCNN):
            outputs = model(X, Y) if model.training else model(X)
            targets = rcnn_targets(outputs, Y)
            cls_preds, bbox_preds = outputs.cls, outputs.bbox.reshape(X.shape[0], -1)
            bbox_labels, bbox_masks, cls_labels = targets[1]  # the metrics are the head's
        else:
            outputs = model(X)
            _, cls_preds, bbox_preds = outputs
            targets = multibox_target(outputs[0], Y)  # (bbox_labels, bbox_masks, cls_labels)
            bbox_labels, bbox_masks, cls_labels = targets
        loss = self.loss(model, outputs, targets)
        n = X.shape[0]
        wrong = (cls_preds.detach().argmax(dim=-1) != cls_labels).sum()
        abs_err = ((bbox_labels - bbox_preds.detach()) * bbox_masks).abs().sum()
        sums = {"loss": loss.detach() * n, "cls_err": wrong, "bbox_mae": abs_err,
                "anchors": cls_labels.new_tensor(cls_labels.numel())}
        return loss, sums, n

    def summarize(self, totals, n):
        anchors = max(totals.pop("anchors"), 1.0)
        return {"loss": totals["loss"] / n, "cls_err": totals["cls_err"] / anchors,
                "bbox_mae": totals["bbox_mae"] / (4 * anchors)}
