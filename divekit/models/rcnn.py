"""A small two-stage detector of the R-CNN family (book 14.8 / first edition 13.8).

Fast R-CNN runs the CNN once on the whole image and pools every proposed region of its feature
map to one fixed size (RoI pooling); Faster R-CNN proposes the regions with a small network on
the same feature map (a region proposal network, RPN) instead of selective search. `FastRCNN` is
that model, at the size of the book's TinySSD:

1. **backbone**: TinySSD's first two stages (four down-sampling blocks, 3 -> 16 -> 32 -> 64 -> 128
   channels): a (128, H/16, W/16) feature map, 16x16 at 256x256;
2. **RPN**, as the book lists it: a 3x3 convolution (padding 1, 128 channels) + ReLU; on every
   pixel anchors of 4 sizes and 3 ratios (`multibox_prior`, 6 per pixel); per anchor two 1x1
   convolutions predict object vs background scores and four offsets. The decoded boxes of the
   `pre_nms` best anchors go through NMS (IoU 0.7) and the `num_rois` best survivors are the
   proposals (constants to the head: no gradient reaches the RPN through them, Faster R-CNN's
   approximate joint training);
3. **RoI head**: the proposals (in training, with the ground-truth boxes added, so the head sees
   positives from the first step) are RoI-pooled (`divekit.ops.roi.roi_pool`, or RoI Align with
   `roi_op="align"`) to 4x4 cells of the feature map, flattened, two fully connected layers of
   256 + ReLU, then class scores (background + classes) and four class-agnostic offsets of the
   object's box relative to its RoI (the book's offset encoding).

forward(X (B, 3, H, W), labels (B, M, 5) or None) -> RCNNOutput. The loss (`rcnn_loss`) is the
book's SSD loss twice: for the RPN over its anchors (object or not: `multibox_target` with every
object one class), and for the head over its RoIs (each RoI labelled with the class of the
ground-truth box it overlaps by IoU >= 0.5, else background). Detections (`rcnn_detection`) are
the RoIs' decoded boxes with their most likely class, non-maximum suppressed by multibox_detection.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from ..ops.boxes import box_iou, multibox_detection, multibox_prior, multibox_target, offset_boxes, offset_inverse
from ..ops.roi import batched_nms, roi_align, roi_pool
from .registry import register_model
from .ssd import base_net, down_sample_blk, ssd_loss

SIZES = (0.15, 0.25, 0.35, 0.5)  # fractions of the image: the bananas' longer side is 0.15-0.45 of it
RATIOS = (1, 2, 0.5)
STRIDE = 16  # the backbone's four halvings


class RCNNOutput(NamedTuple):
    """What FastRCNN returns: the RPN's anchors (1, A, 4), objectness scores (B, A, 2) and offsets
    (B, A * 4); the RoIs (B, R, 4) in normalized corners, and the head's class scores (B, R, 1 + C)
    and box offsets relative to each RoI (B, R, 4)."""

    anchors: torch.Tensor
    rpn_cls: torch.Tensor
    rpn_bbox: torch.Tensor
    rois: torch.Tensor
    cls: torch.Tensor
    bbox: torch.Tensor


class FastRCNN(nn.Module):
    """The two-stage detector of the module doc: backbone, RPN, RoI pooling, class and box heads."""

    def __init__(self, num_classes: int = 1, sizes=SIZES, ratios=RATIOS, roi_size: int = 4, roi_op: str = "pool",
                 num_rois: int = 16, pre_nms: int = 100, rpn_nms: float = 0.7, hidden: int = 256):
        super().__init__()
        if roi_op not in ("pool", "align"):
            raise ValueError(f"roi_op must be pool (RoI pooling) or align (RoI Align), got {roi_op!r}")
        if min(num_rois, pre_nms, roi_size, hidden) < 1:
            raise ValueError(f"num_rois, pre_nms, roi_size and hidden must be at least 1, got {num_rois}, {pre_nms}, "
                             f"{roi_size}, {hidden}")
        self.num_classes, self.roi_size, self.roi_op = num_classes, roi_size, roi_op
        self.num_rois, self.pre_nms, self.rpn_nms = num_rois, pre_nms, rpn_nms
        self.sizes, self.ratios = list(sizes), list(ratios)
        k = len(self.sizes) + len(self.ratios) - 1  # anchors per pixel
        self.backbone = nn.Sequential(base_net(), down_sample_blk(64, 128))  # (B, 128, H/16, W/16)
        self.rpn_conv = nn.Sequential(nn.Conv2d(128, 128, kernel_size=3, padding=1), nn.ReLU())
        self.rpn_cls = nn.Conv2d(128, k * 2, kernel_size=1)
        self.rpn_bbox = nn.Conv2d(128, k * 4, kernel_size=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128 * roi_size ** 2, hidden), nn.ReLU(),
                                  nn.Linear(hidden, hidden), nn.ReLU())
        self.cls = nn.Linear(hidden, num_classes + 1)
        self.bbox = nn.Linear(hidden, 4)
        self._anchors: dict[tuple, torch.Tensor] = {}

    def forward(self, X: torch.Tensor, labels: torch.Tensor | None = None) -> RCNNOutput:
        B = X.shape[0]
        features = self.backbone(X)  # (B, 128, h, w)
        anchors = self._anchors_for(features)  # (1, A, 4)
        Y = self.rpn_conv(features)
        rpn_cls = self.rpn_cls(Y).permute(0, 2, 3, 1).reshape(B, -1, 2)  # (B, A, 2), a pixel's anchors in a row
        rpn_bbox = self.rpn_bbox(Y).permute(0, 2, 3, 1).reshape(B, -1)  # (B, A * 4)
        rois = self.propose(anchors, rpn_cls.detach(), rpn_bbox.detach())  # (B, R, 4)
        if labels is not None:  # training: the ground truth joins the proposals (padding rows copy a proposal)
            valid = labels[..., :1] >= 0
            rois = torch.cat((rois, torch.where(valid, labels[..., 1:].to(rois.dtype), rois[:, :1])), dim=1)
        R = rois.shape[1]
        pooled = self.pool(features, rois, X.shape[-2:])  # (B * R, 128, s, s)
        hidden = self.head(pooled)
        cls = self.cls(hidden).reshape(B, R, -1)  # (B, R, 1 + C)
        bbox = self.bbox(hidden).reshape(B, R, 4)
        return RCNNOutput(anchors, rpn_cls, rpn_bbox, rois, cls, bbox)

    @torch.no_grad()
    def propose(self, anchors: torch.Tensor, rpn_cls: torch.Tensor, rpn_bbox: torch.Tensor) -> torch.Tensor:
        """The RPN's proposals (B, R, 4): the decoded boxes of the `pre_nms` anchors most likely to
        hold an object, NMS at `rpn_nms`, the best `num_rois` kept (topped up with suppressed ones
        when fewer survive), in decreasing score."""
        B, A = rpn_cls.shape[:2]
        scores = torch.softmax(rpn_cls.float(), dim=-1)[..., 1]  # (B, A): P(object)
        boxes = offset_inverse(anchors.expand(B, A, 4), rpn_bbox.float().reshape(B, A, 4)).clamp(0, 1)
        top = scores.topk(min(self.pre_nms, A), dim=1)  # (B, P)
        top_boxes = boxes.gather(1, top.indices[..., None].expand(-1, -1, 4))
        keep = batched_nms(top_boxes, top.values, self.rpn_nms)
        rank = top.values + 2.0 * keep  # survivors first, each group by score (scores are in [0, 1])
        best = rank.topk(min(self.num_rois, rank.shape[1]), dim=1).indices  # (B, R)
        return top_boxes.gather(1, best[..., None].expand(-1, -1, 4))

    def pool(self, features: torch.Tensor, rois: torch.Tensor, image_hw) -> torch.Tensor:
        """RoI pooling (or Align) of normalized rois (B, R, 4) on features: (B * R, C, s, s).

        Computed in float32 (at least) and returned in the features' dtype: the ops cast the
        regions to the map's dtype, and bfloat16 keeps 8 bits, so pixel 87.8 would become 88."""
        B, R = rois.shape[:2]
        H, W = image_hw
        dtype = torch.promote_types(features.dtype, torch.float32)
        pixels = rois.to(dtype) * rois.new_tensor([W, H, W, H], dtype=dtype)  # the book's rois are image pixels ...
        index = torch.arange(B, device=rois.device, dtype=dtype).repeat_interleave(R)
        boxes = torch.cat((index[:, None], pixels.reshape(-1, 4)), dim=1)  # (B * R, 5)
        scale = (features.shape[-2] / H, features.shape[-1] / W)  # ... and spatial_scale maps them onto the map
        with torch.autocast(features.device.type, enabled=False):  # autocast would run roi_align's einsum in bf16
            if self.roi_op == "align":
                pooled = roi_align(features.to(dtype), boxes, self.roi_size, scale, sampling_ratio=2)
            else:
                pooled = roi_pool(features.to(dtype), boxes, self.roi_size, scale)
        return pooled.to(features.dtype)

    def _anchors_for(self, features: torch.Tensor) -> torch.Tensor:
        key = (*features.shape[-2:], features.device)
        if key not in self._anchors:
            self._anchors[key] = multibox_prior(features.detach(), sizes=self.sizes, ratios=self.ratios)
        return self._anchors[key]


def roi_targets(rois: torch.Tensor, labels: torch.Tensor, iou_threshold: float = 0.5):
    """Targets of the head for rois (B, R, 4) and ground truth (B, M, 5): (offsets (B, R * 4),
    masks (B, R * 4), classes (B, R)). A RoI takes the box it overlaps most if the IoU is at least
    `iou_threshold` (class + 1, offsets to it, mask 1), else it is background (0)."""
    B, R = rois.shape[:2]
    valid = labels[..., 0] >= 0  # (B, M)
    iou = box_iou(rois, labels[..., 1:]).masked_fill(~valid[:, None, :], -1.0)  # (B, R, M)
    best, idx = iou.max(dim=2)  # (B, R)
    positive = best >= iou_threshold
    boxes = labels[..., 1:].gather(1, idx[..., None].expand(B, R, 4))  # (B, R, 4)
    classes = torch.where(positive, labels[..., 0].gather(1, idx).long() + 1, torch.zeros_like(idx))
    mask = positive[..., None].expand(B, R, 4).to(rois.dtype)
    # background RoIs get offset 0 (where, not a product: an empty RoI's offsets to itself are 0 / 0)
    offsets = torch.where(positive[..., None], offset_boxes(rois, boxes), torch.zeros_like(rois))
    return offsets.reshape(B, -1), mask.reshape(B, -1), classes


def rcnn_targets(out: RCNNOutput, labels: torch.Tensor):
    """(RPN targets, head targets): the RPN's are multibox_target's with every object of class 0."""
    objects = torch.cat((torch.where(labels[..., :1] >= 0, 0.0, -1.0).to(labels.dtype), labels[..., 1:]), dim=-1)
    return multibox_target(out.anchors, objects), roi_targets(out.rois, labels)


def rcnn_loss(out: RCNNOutput, targets) -> torch.Tensor:
    """Per image (B,): the SSD loss of the RPN over its anchors + that of the head over its RoIs."""
    (rpn_offsets, rpn_masks, rpn_classes), (offsets, masks, classes) = targets
    B = out.cls.shape[0]
    rpn = ssd_loss(out.rpn_cls, rpn_classes, out.rpn_bbox, rpn_offsets, rpn_masks)
    head = ssd_loss(out.cls, classes, out.bbox.reshape(B, -1), offsets, masks)
    return rpn + head


@torch.no_grad()
def rcnn_detection(out: RCNNOutput, nms_threshold: float = 0.5) -> torch.Tensor:
    """(B, R, 6) rows (class, confidence, x1, y1, x2, y2), as multibox_detection's: each RoI's
    decoded box with its most likely class, NMS over an image's RoIs, class -1 for the rest."""
    probs = torch.softmax(out.cls.float(), dim=-1).permute(0, 2, 1)  # (B, 1 + C, R)
    B = probs.shape[0]
    rows = [multibox_detection(probs[i:i + 1], out.bbox[i:i + 1].float().reshape(1, -1), out.rois[i:i + 1],
                               nms_threshold=nms_threshold) for i in range(B)]
    return torch.cat(rows) if rows else probs.new_zeros(0, out.rois.shape[1], 6)


@register_model("fast-rcnn", defaults={"data": "bananas-synthetic", "lr": 0.05, "weight_decay": 5e-4, "batch_size": 32,
                                       "epochs": 20, "optimizer": "sgd"}, tags=("detection",))
def fast_rcnn(num_classes: int = 1, roi_op: str = "pool", num_rois: int = 16):
    """A small Fast/Faster R-CNN: TinySSD's backbone at 1/16, an RPN (6 anchors a pixel), 4x4 RoI pooling, FC heads."""
    return FastRCNN(num_classes=num_classes, roi_op=roi_op, num_rois=num_rois)
