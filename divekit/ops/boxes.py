"""Bounding boxes and anchor boxes (book 14.3-14.4 in the current edition, 13.3-13.4 in the first).

Boxes are (x1, y1, x2, y2) corners unless a name says `center` ((cx, cy, w, h)); detection code
works in coordinates normalized by the image width and height, so one box fits any resize.
Ground truth for a batch of images is `labels (B, M, 5)`: per image up to M objects, each
(class, x1, y1, x2, y2); rows with class < 0 are padding (images with fewer than M objects).

Everything is batched torch code on whole tensors:

* `multibox_prior`: n + m - 1 anchors per pixel for n sizes and m ratios;
* `box_iou`: the IoU (Jaccard) matrix;
* `assign_anchor_to_bbox`: the book's greedy assignment of ground truth to anchors;
* `offset_boxes` / `offset_inverse`: the book's offset encoding (scaled by 1/0.1 and 1/0.2);
* `multibox_target`: class labels, offsets and masks for every anchor of a batch;
* `nms` (from scratch) and `multibox_detection`: predicted boxes, non-maximum suppressed;
* `mean_average_precision`: VOC-style AP at an IoU threshold (all-point interpolation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

OFFSET_SCALE_XY, OFFSET_SCALE_WH = 0.1, 0.2  # the book's (and SSD's) "variances"


# -- boxes ----------------------------------------------------------------------------------------

def box_corner_to_center(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) corners (x1, y1, x2, y2) -> centers (cx, cy, w, h)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def box_center_to_corner(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) centers (cx, cy, w, h) -> corners (x1, y1, x2, y2)."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) corners -> (...) areas (zero for empty boxes)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU (Jaccard index) of every pair: boxes1 (..., N, 4), boxes2 (..., M, 4) -> (..., N, M).

    Leading dimensions broadcast (a batch of box sets against one set of anchors). A pair whose
    union is empty (two empty boxes) has IoU 0.
    """
    upper_left = torch.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])  # (..., N, M, 2)
    lower_right = torch.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    inter = (lower_right - upper_left).clamp(min=0).prod(dim=-1)  # (..., N, M)
    union = box_area(boxes1)[..., :, None] + box_area(boxes2)[..., None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


# -- anchors --------------------------------------------------------------------------------------

def multibox_prior(data: torch.Tensor, sizes: Sequence[float], ratios: Sequence[float]) -> torch.Tensor:
    """Anchor boxes centred on every pixel of `data` (..., H, W): (1, H * W * (n + m - 1), 4).

    For n sizes s and m ratios r the book takes the n + m - 1 pairs (s_1, r_j) and (s_i, r_1),
    not all n * m. An anchor of size s and ratio r is s * sqrt(r) wide and s / sqrt(r) high, as a
    fraction of the image height (so ratio 1 is square in pixels: the width, a fraction of the
    image width, is scaled by H / W). Anchors of one pixel are consecutive, pixels row by row,
    in normalized corner coordinates.
    """
    in_height, in_width = data.shape[-2:]
    device = data.device
    size_t = torch.tensor(sizes, dtype=torch.float32, device=device)
    ratio_t = torch.tensor(ratios, dtype=torch.float32, device=device)
    # pixel centres, normalized to [0, 1]
    center_h = (torch.arange(in_height, device=device) + 0.5) / in_height
    center_w = (torch.arange(in_width, device=device) + 0.5) / in_width
    shift_y, shift_x = torch.meshgrid(center_h, center_w, indexing="ij")
    shift_y, shift_x = shift_y.reshape(-1), shift_x.reshape(-1)  # (H*W,)
    # (n + m - 1,) widths and heights: (s_i, r_1) for all i, then (s_1, r_j) for j > 1
    w = torch.cat((size_t * torch.sqrt(ratio_t[0]), size_t[0] * torch.sqrt(ratio_t[1:]))) * in_height / in_width
    h = torch.cat((size_t / torch.sqrt(ratio_t[0]), size_t[0] / torch.sqrt(ratio_t[1:])))
    half = torch.stack((-w, -h, w, h), dim=1) / 2  # (k, 4) corner offsets from the centre
    centers = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)  # (H*W, 4)
    anchors = centers[:, None, :] + half[None, :, :]  # (H*W, k, 4)
    return anchors.reshape(1, -1, 4)


# -- assigning ground truth to anchors -------------------------------------------------------------

def assign_anchor_to_bbox(ground_truth: torch.Tensor, anchors: torch.Tensor, iou_threshold: float = 0.5,
                          valid: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the ground-truth box assigned to each anchor, or -1: (B, A) for ground_truth
    (B, M, 4) and anchors (A, 4) (unbatched: (M, 4) -> (A,)).

    The book's algorithm: repeatedly take the largest entry of the IoU matrix, assign that box to
    that anchor and discard both row and column, until every ground-truth box has an anchor;
    every other anchor gets the box it overlaps most if that IoU is at least `iou_threshold`.
    `valid` (B, M) marks real boxes (padding rows are never assigned).
    """
    unbatched = ground_truth.dim() == 2
    if unbatched:
        ground_truth = ground_truth[None]
        valid = None if valid is None else valid[None]
    B, M = ground_truth.shape[:2]
    A = anchors.shape[0]
    jaccard = box_iou(anchors, ground_truth)  # (B, A, M)
    if valid is not None:
        jaccard = jaccard.masked_fill(~valid[:, None, :], -1.0)
    # every anchor: the box it overlaps most, if the overlap reaches the threshold
    max_ious, indices = jaccard.max(dim=2)  # (B, A)
    anchors_bbox_map = torch.where(max_ious >= iou_threshold, indices, torch.full_like(indices, -1))
    # then the greedy pass, which overrides: one anchor for every box
    remaining = jaccard.clone()
    batch = torch.arange(B, device=anchors.device)
    for _ in range(min(M, A)):
        best, flat = remaining.reshape(B, -1).max(dim=1)  # (B,)
        live = best >= 0  # -1 marks discarded rows/columns and padding
        anc_idx, box_idx = flat // M, flat % M
        anchors_bbox_map[batch[live], anc_idx[live]] = box_idx[live]
        remaining[batch[live], anc_idx[live], :] = -1.0
        remaining[batch[live], :, box_idx[live]] = -1.0
    return anchors_bbox_map[0] if unbatched else anchors_bbox_map


def offset_boxes(anchors: torch.Tensor, assigned_bb: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The book's offsets of boxes relative to anchors (both (..., 4) corners):
    ((x_b - x_a) / w_a / 0.1, (y_b - y_a) / h_a / 0.1, log(w_b / w_a) / 0.2, log(h_b / h_a) / 0.2)
    of the centres and sizes."""
    c_anc = box_corner_to_center(anchors)
    c_bb = box_corner_to_center(assigned_bb)
    offset_xy = (c_bb[..., :2] - c_anc[..., :2]) / c_anc[..., 2:] / OFFSET_SCALE_XY
    offset_wh = torch.log(eps + c_bb[..., 2:] / c_anc[..., 2:]) / OFFSET_SCALE_WH
    return torch.cat((offset_xy, offset_wh), dim=-1)


def offset_inverse(anchors: torch.Tensor, offset_preds: torch.Tensor) -> torch.Tensor:
    """Boxes (corners) from anchors and predicted offsets: the inverse of `offset_boxes`."""
    anc = box_corner_to_center(anchors)
    pred_xy = offset_preds[..., :2] * OFFSET_SCALE_XY * anc[..., 2:] + anc[..., :2]
    pred_wh = torch.exp(offset_preds[..., 2:] * OFFSET_SCALE_WH) * anc[..., 2:]
    return box_center_to_corner(torch.cat((pred_xy, pred_wh), dim=-1))


def multibox_target(anchors: torch.Tensor, labels: torch.Tensor, iou_threshold: float = 0.5
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training targets for every anchor of a batch (the book's `multibox_target`).

    anchors (1, A, 4) or (A, 4); labels (B, M, 5) rows (class, x1, y1, x2, y2), class < 0 for
    padding. Returns (bbox_offset (B, A * 4), bbox_mask (B, A * 4), class_labels (B, A)): the
    offsets to each anchor's assigned box (zero where none), a mask that is 1 for anchors with a
    box, and the box's class + 1 (0 is background).
    """
    anchors = anchors.reshape(-1, 4)  # (A, 4)
    B, A = labels.shape[0], anchors.shape[0]
    valid = labels[..., 0] >= 0  # (B, M)
    assigned = assign_anchor_to_bbox(labels[..., 1:], anchors, iou_threshold, valid=valid)  # (B, A)
    has_box = assigned >= 0
    idx = assigned.clamp(min=0)
    assigned_bb = torch.gather(labels[..., 1:], 1, idx[..., None].expand(B, A, 4))  # (B, A, 4)
    # anchors without a box get themselves as target: offset 0, masked out anyway
    assigned_bb = torch.where(has_box[..., None], assigned_bb, anchors.expand(B, A, 4))
    class_labels = torch.where(has_box, torch.gather(labels[..., 0], 1, idx).long() + 1, torch.zeros_like(idx))
    bbox_mask = has_box[..., None].expand(B, A, 4).to(anchors.dtype)
    bbox_offset = offset_boxes(anchors.expand(B, A, 4), assigned_bb) * bbox_mask
    return bbox_offset.reshape(B, -1), bbox_mask.reshape(B, -1), class_labels


# -- prediction -----------------------------------------------------------------------------------

def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Non-maximum suppression, from scratch (the book's): indices of the kept boxes (N, 4), by
    decreasing score. The best remaining box is kept and every remaining box whose IoU with it
    exceeds `iou_threshold` is dropped, until none remain."""
    order = torch.argsort(scores, dim=-1, descending=True)
    keep = []
    while order.numel() > 0:
        i = order[0]
        keep.append(i)
        if order.numel() == 1:
            break
        iou = box_iou(boxes[i].reshape(1, 4), boxes[order[1:]]).reshape(-1)
        order = order[1:][iou <= iou_threshold]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long, device=boxes.device)


def multibox_detection(cls_probs: torch.Tensor, offset_preds: torch.Tensor, anchors: torch.Tensor,
                       nms_threshold: float = 0.5, pos_threshold: float = 0.009999999) -> torch.Tensor:
    """Predicted boxes of a batch (the book's `multibox_detection`): (B, A, 6) rows
    (class, confidence, x1, y1, x2, y2).

    cls_probs (B, 1 + C, A) with background first, offset_preds (B, A * 4), anchors (1, A, 4).
    Each anchor's box is its decoded offset with its most likely non-background class; NMS runs
    over all classes together, as in the book. Kept boxes come first by decreasing confidence;
    suppressed boxes, and boxes whose confidence is below `pos_threshold`, get class -1 (and those
    below it confidence 1 - p, the background probability, as in the book).

    Unlike the book, boxes below `pos_threshold` are left out of NMS: they could only suppress
    boxes scored lower still, so the boxes with a class are the same and NMS runs on far fewer
    boxes; only the order of class -1 rows differs.
    """
    anchors = anchors.reshape(-1, 4)
    B, A = cls_probs.shape[0], cls_probs.shape[2]
    out = []
    for i in range(B):
        conf, class_id = torch.max(cls_probs[i, 1:], dim=0)  # (A,) over non-background classes
        predicted_bb = offset_inverse(anchors, offset_preds[i].reshape(-1, 4))
        candidates = torch.nonzero(conf >= pos_threshold).reshape(-1)
        keep = candidates[nms(predicted_bb[candidates], conf[candidates], nms_threshold)]
        kept = torch.zeros(A, dtype=torch.bool, device=conf.device)
        kept[keep] = True
        order = torch.cat((keep, torch.nonzero(~kept).reshape(-1)))
        class_id = torch.where(kept, class_id, torch.full_like(class_id, -1))[order]
        conf, predicted_bb = conf[order], predicted_bb[order]
        below = conf < pos_threshold
        conf = torch.where(below, 1 - conf, conf)
        out.append(torch.cat((class_id[:, None].to(conf.dtype), conf[:, None], predicted_bb), dim=1))
    return torch.stack(out)  # (B, A, 6)


# -- evaluation -----------------------------------------------------------------------------------

def average_precision(recall: torch.Tensor, precision: torch.Tensor) -> float:
    """Area under the precision-recall curve with all-point interpolation (VOC 2010+): the
    precision at recall r is the best precision at any recall >= r."""
    r = torch.cat((torch.tensor([0.0]), recall.double(), torch.tensor([1.0])))
    p = torch.cat((torch.tensor([0.0]), precision.double(), torch.tensor([0.0])))
    p = torch.flip(torch.cummax(torch.flip(p, [0]), dim=0).values, [0])  # the monotone envelope
    steps = torch.nonzero(r[1:] != r[:-1]).reshape(-1)
    return float(((r[steps + 1] - r[steps]) * p[steps + 1]).sum())


def mean_average_precision(detections: Sequence[torch.Tensor], ground_truth: Sequence[torch.Tensor],
                           iou_threshold: float = 0.5) -> dict:
    """Mean average precision over classes (VOC style, all-point interpolation).

    detections: per image a (K, 6) tensor of (class, score, x1, y1, x2, y2) (rows with class < 0
    are ignored: multibox_detection's background); ground_truth: per image (M, 5) rows
    (class, x1, y1, x2, y2), class < 0 for padding. Detections of a class, over all images, are
    taken by decreasing score; one is a true positive if its IoU with a not yet matched
    ground-truth box of that class in the same image is >= `iou_threshold` (the best overlapping
    box is the one tried), else a false positive (duplicates count as false positives).
    Returns {"map": mean over the classes that have ground truth, "ap": {class: AP}}.
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} images of detections but {len(ground_truth)} of ground truth")
    dets = [d.detach().reshape(-1, 6).double().cpu() for d in detections]
    gts = [g.detach().reshape(-1, 5).double().cpu() for g in ground_truth]
    classes = sorted({int(c) for g in gts for c in g[:, 0].tolist() if c >= 0})
    ap = {}
    for c in classes:
        gt_c = [g[g[:, 0] == c, 1:] for g in gts]
        num_gt = sum(len(g) for g in gt_c)
        rows = [(float(row[1]), img, row[2:]) for img, d in enumerate(dets) for row in d[d[:, 0] == c]]
        rows.sort(key=lambda row: -row[0])  # stable: ties keep image order
        matched = [torch.zeros(len(g), dtype=torch.bool) for g in gt_c]
        tp = torch.zeros(len(rows), dtype=torch.float64)
        for k, (_, img, box) in enumerate(rows):
            if len(gt_c[img]) == 0:
                continue
            ious = box_iou(box[None], gt_c[img])[0]
            best = int(ious.argmax())
            if ious[best] >= iou_threshold and not matched[img][best]:
                matched[img][best] = True
                tp[k] = 1.0
        ctp, cfp = torch.cumsum(tp, 0), torch.cumsum(1 - tp, 0)
        recall = ctp / num_gt
        precision = ctp / (ctp + cfp).clamp(min=1)
        ap[c] = average_precision(recall, precision)
    mean = sum(ap.values()) / len(ap) if ap else float("nan")
    return {"map": mean, "ap": ap}


# -- drawing --------------------------------------------------------------------------------------

COLORS = ("b", "g", "r", "m", "c")


def show_bboxes(axes, bboxes, labels: Sequence[str] | None = None, colors: Sequence[str] | None = None) -> None:
    """Draw corner boxes (in pixels) on matplotlib `axes`, with optional text labels (the book's)."""
    import matplotlib.patches as patches

    colors = list(colors or COLORS)
    for i, bbox in enumerate(torch.as_tensor(bboxes).detach().cpu().reshape(-1, 4).tolist()):
        color = colors[i % len(colors)]
        rect = patches.Rectangle((bbox[0], bbox[1]), bbox[2] - bbox[0], bbox[3] - bbox[1], fill=False,
                                 edgecolor=color, linewidth=2)
        axes.add_patch(rect)
        if labels and i < len(labels):
            text_color = "k" if color == "w" else "w"
            axes.text(bbox[0], bbox[1], labels[i], va="center", ha="center", fontsize=9, color=text_color,
                      bbox=dict(facecolor=color, lw=0))


def draw_boxes(image: torch.Tensor, bboxes, path: str | Path, labels: Sequence[str] | None = None,
               colors: Sequence[str] | None = None, normalized: bool = False) -> Path:
    """Save `image` ((C, H, W) float in [0, 1] or uint8, or (H, W, C)) with boxes drawn on it as a PNG.

    `bboxes` (N, 4) are corners in pixels, or fractions of the image size if `normalized`.
    """
    import matplotlib.pyplot as plt  # deferred: matplotlib loads only when a plot is drawn; never forces a backend

    img = torch.as_tensor(image).detach().cpu()
    if img.dim() == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.permute(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if img.dtype != torch.uint8:
        img = img.float().clamp(0, 1)
    h, w = img.shape[:2]
    boxes = torch.as_tensor(bboxes, dtype=torch.float32).reshape(-1, 4)
    if normalized:
        boxes = boxes * torch.tensor([w, h, w, h], dtype=torch.float32)
    fig, ax = plt.subplots(figsize=(max(w / 100, 2.5), max(h / 100, 2.5)), dpi=100)
    ax.imshow(img.squeeze(-1).numpy(), cmap="gray" if img.shape[-1] == 1 else None)
    show_bboxes(ax, boxes, labels, colors)
    ax.set_axis_off()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.02)
    plt.close(fig)
    return path
