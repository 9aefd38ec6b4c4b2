"""Object detection (book chapter 14 / first edition 13): boxes and anchors, SSD, the detect verb."""

from .boxes import (
    assign_anchor_to_bbox,
    box_area,
    box_center_to_corner,
    box_corner_to_center,
    box_iou,
    draw_boxes,
    mean_average_precision,
    multibox_detection,
    multibox_prior,
    multibox_target,
    nms,
    offset_boxes,
    offset_inverse,
    show_bboxes,
)

__all__ = [
    "assign_anchor_to_bbox", "box_area", "box_center_to_corner", "box_corner_to_center", "box_iou", "draw_boxes",
    "mean_average_precision", "multibox_detection", "multibox_prior", "multibox_target", "nms", "offset_boxes",
    "offset_inverse", "show_bboxes",
]
