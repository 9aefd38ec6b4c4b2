"""Metrics over confusion matrices: classification (book 4.x) and semantic segmentation (book 14.9).

* pixel accuracy = correct pixels / labelled pixels;
* mean IoU = the mean over classes of |prediction ∩ truth| / |prediction ∪ truth|, from the
  confusion matrix C (rows: true class, columns: predicted class) as
  IoU_c = C[c, c] / (sum_j C[c, j] + sum_i C[i, c] - C[c, c]); classes that neither occur nor
  are predicted are left out of the mean.
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def classification_confusion(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C[i, j] = number of examples of true class i predicted as class j."""
    return torch.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)



IGNORE_INDEX = 255


def segmentation_confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """(num_classes, num_classes) int64 counts: [true class, predicted class] over the labelled pixels."""
    valid = target != ignore_index
    return classification_confusion(pred[valid].long(), target[valid].long(), num_classes)


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """IoU of every class (float64), NaN for classes absent from both truth and prediction."""
    confusion = confusion.double()
    inter = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(inter, math.nan))


def mean_iou(confusion: torch.Tensor) -> float:
    """The mean IoU over the classes present in truth or prediction (0 when there are none)."""
    iou = iou_per_class(confusion)
    present = ~iou.isnan()
    return float(iou[present].mean()) if bool(present.any()) else 0.0


def pixel_accuracy(confusion: torch.Tensor) -> float:
    """Correct pixels / labelled pixels."""
    total = int(confusion.sum())
    return float(confusion.diagonal().sum()) / total if total else 0.0


