"""Evaluation beyond the training metrics: per-class accuracy and the confusion matrix."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops.metrics import classification_confusion as confusion_matrix


@torch.no_grad()
def classification_report(model: torch.nn.Module, loader, num_classes: int) -> dict:
    """Loss, accuracy, per-class accuracy and confusion matrix of a classifier over `loader`."""
    model.eval()
    device = next(model.parameters()).device
    total_loss = torch.zeros((), device=device)
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    for X, y in loader:  # sums stay on the device: one host sync at the end, not two per batch
        logits = model(X.to(device))
        y = y.to(device)
        total_loss += F.cross_entropy(logits, y, reduction="sum")
        conf += confusion_matrix(logits.argmax(1), y, num_classes)
    conf = conf.cpu()
    n = int(conf.sum())
    per_class = conf.diag().double() / conf.sum(1).clamp(min=1)
    return {
        "loss": total_loss.item() / n,
        "acc": float(conf.diag().sum()) / n,
        "per_class_acc": per_class.tolist(),
        "confusion": conf.tolist(),
        "n": n,
    }
