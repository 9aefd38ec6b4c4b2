"""The book's single-shot multibox detector, TinySSD (book 14.7 / first edition 13.7).

A base network (three down-sampling blocks: 3 -> 16 -> 32 -> 64 channels, 1/8 of the input size)
is followed by three more down-sampling blocks (128 channels) and a global max pool: five feature
maps, from fine to coarse. On each, every pixel gets anchors (`multibox_prior`, the book's sizes
growing from 0.2 to 0.961 and ratios 1, 2, 0.5: 4 anchors per pixel) and two 3x3 convolutions
predict, per anchor, class scores (background + classes) and four box offsets. At 256x256 that
is 32^2 + 16^2 + 8^2 + 4^2 + 1 = 1,361 pixels, 5,444 anchors.

The loss (the book's) is, per image, the cross-entropy of every anchor's class averaged over the
anchors, plus the L1 distance of the predicted offsets to the target offsets of the anchors that
have an object (`bbox_mask`), averaged over all offsets; the batch loss is the mean over images.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.boxes import multibox_prior
from .registry import register_model

SIZES = ((0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961))
RATIOS = ((1, 2, 0.5),) * 5


def cls_predictor(num_inputs: int, num_anchors: int, num_classes: int) -> nn.Conv2d:
    """Scores of background + `num_classes` classes for each of `num_anchors` anchors per pixel."""
    return nn.Conv2d(num_inputs, num_anchors * (num_classes + 1), kernel_size=3, padding=1)


def bbox_predictor(num_inputs: int, num_anchors: int) -> nn.Conv2d:
    """Four offsets for each of `num_anchors` anchors per pixel."""
    return nn.Conv2d(num_inputs, num_anchors * 4, kernel_size=3, padding=1)


def flatten_pred(pred: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H * W * C), channels last so one pixel's predictions are consecutive
    (the order of multibox_prior's anchors)."""
    return torch.flatten(pred.permute(0, 2, 3, 1), start_dim=1)


def concat_preds(preds: list[torch.Tensor]) -> torch.Tensor:
    """Predictions of several scales, each flattened, in one (B, sum of H * W * C) tensor."""
    return torch.cat([flatten_pred(p) for p in preds], dim=1)


def down_sample_blk(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv + batch norm + ReLU, then 2x2 max pooling: half the height and width."""
    layers: list[nn.Module] = []
    for _ in range(2):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.BatchNorm2d(out_channels),
                   nn.ReLU()]
        in_channels = out_channels
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def base_net() -> nn.Sequential:
    """Three down-sampling blocks, 3 -> 16 -> 32 -> 64 channels: 1/8 of the input size."""
    filters = [3, 16, 32, 64]
    return nn.Sequential(*[down_sample_blk(filters[i], filters[i + 1]) for i in range(len(filters) - 1)])


def get_blk(i: int) -> nn.Module:
    if i == 0:
        return base_net()
    if i == 1:
        return down_sample_blk(64, 128)
    if i == 4:
        return nn.AdaptiveMaxPool2d((1, 1))
    return down_sample_blk(128, 128)


class TinySSD(nn.Module):
    """The book's TinySSD. forward(X (B, 3, H, W)) -> (anchors (1, A, 4), cls_preds (B, A, 1 + C),
    bbox_preds (B, A * 4)); H and W of at least 64 pixels (five halvings)."""

    def __init__(self, num_classes: int = 1, sizes=SIZES, ratios=RATIOS):
        super().__init__()
        if len(sizes) != 5 or len(ratios) != 5:
            raise ValueError(f"TinySSD has 5 scales: give 5 lists of sizes and of ratios, got {len(sizes)} and "
                             f"{len(ratios)}")
        self.num_classes = num_classes
        self.sizes = [list(s) for s in sizes]
        self.ratios = [list(r) for r in ratios]
        num_anchors = [len(s) + len(r) - 1 for s, r in zip(self.sizes, self.ratios)]
        in_channels = [64, 128, 128, 128, 128]
        self.blks = nn.ModuleList(get_blk(i) for i in range(5))
        self.cls = nn.ModuleList(cls_predictor(c, a, num_classes) for c, a in zip(in_channels, num_anchors))
        self.bbox = nn.ModuleList(bbox_predictor(c, a) for c, a in zip(in_channels, num_anchors))
        self._anchors: dict[tuple, torch.Tensor] = {}  # anchors depend only on the feature map sizes

    def forward(self, X: torch.Tensor):
        anchors, cls_preds, bbox_preds = [], [], []
        for i in range(5):
            X = self.blks[i](X)
            anchors.append(self._anchors_for(i, X))
            cls_preds.append(self.cls[i](X))
            bbox_preds.append(self.bbox[i](X))
        anchors = torch.cat(anchors, dim=1)  # (1, A, 4)
        cls_preds = concat_preds(cls_preds)
        cls_preds = cls_preds.reshape(cls_preds.shape[0], -1, self.num_classes + 1)  # (B, A, 1 + C)
        bbox_preds = concat_preds(bbox_preds)  # (B, A * 4)
        return anchors, cls_preds, bbox_preds

    def _anchors_for(self, i: int, Y: torch.Tensor) -> torch.Tensor:
        key = (i, *Y.shape[-2:], Y.device)
        if key not in self._anchors:
            self._anchors[key] = multibox_prior(Y.detach(), sizes=self.sizes[i], ratios=self.ratios[i])
        return self._anchors[key]


def ssd_loss(cls_preds: torch.Tensor, cls_labels: torch.Tensor, bbox_preds: torch.Tensor, bbox_labels: torch.Tensor,
             bbox_masks: torch.Tensor) -> torch.Tensor:
    """The book's `calc_loss`, per image (B,): mean class cross-entropy over anchors + mean L1 of
    the masked offsets."""
    batch_size, num_classes = cls_preds.shape[0], cls_preds.shape[2]
    cls = F.cross_entropy(cls_preds.reshape(-1, num_classes), cls_labels.reshape(-1), reduction="none")
    cls = cls.reshape(batch_size, -1).mean(dim=1)
    bbox = F.l1_loss(bbox_preds * bbox_masks, bbox_labels * bbox_masks, reduction="none").mean(dim=1)
    return cls + bbox


@register_model("tiny-ssd", defaults={"data": "bananas-synthetic", "lr": 0.2, "weight_decay": 5e-4, "batch_size": 32,
                                      "epochs": 20, "optimizer": "sgd"}, tags=("detection",))
def tiny_ssd(num_classes: int = 1):
    """The book's TinySSD single-shot detector: 5 scales, 4 anchors per pixel (5,444 at 256x256)."""
    return TinySSD(num_classes=num_classes)
