"""Bounding boxes, anchors, NMS and mAP (book 14.3-14.4 / first edition 13.3-13.4): the book's
worked examples with their printed numbers, hand-computed cases, and brute-force references."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from divekit.ops.boxes import (
    assign_anchor_to_bbox,
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
)

# the book's dog and cat boxes on catdog.jpg (pixels), 13.3 / 14.3
DOG, CAT = [60.0, 45.0, 378.0, 516.0], [400.0, 112.0, 655.0, 493.0]

# the book's 13.4.3 / 14.4.3 example: two ground-truth boxes (dog, cat) and five anchors
GROUND_TRUTH = torch.tensor([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]])
ANCHORS = torch.tensor([[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                        [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]])


def test_corner_center_round_trip_on_the_books_boxes():
    boxes = torch.tensor([DOG, CAT])
    center = box_corner_to_center(boxes)
    assert torch.allclose(center[0], torch.tensor([219.0, 280.5, 318.0, 471.0]))  # by hand: midpoints, sizes
    assert torch.equal(box_center_to_corner(center), boxes)  # the book prints tensor([[True, ...]])


def test_multibox_prior_on_the_catdog_image_size():
    """The book: a 561x728 image, sizes [0.75, 0.5, 0.25], ratios [1, 2, 0.5] -> Y.shape
    (1, 2042040, 4); boxes[250, 250, 0, :] = [0.06, 0.07, 0.63, 0.82] (printed to 2 decimals)."""
    h, w = 561, 728
    Y = multibox_prior(torch.zeros(1, 3, h, w), sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5])
    assert Y.shape == (1, 2042040, 4)  # 561 * 728 pixels * (3 + 3 - 1) anchors
    boxes = Y.reshape(h, w, 5, 4)
    assert torch.equal(torch.round(boxes[250, 250, 0, :] * 100) / 100, torch.tensor([0.06, 0.07, 0.63, 0.82]))
    # by hand: centre (250.5 / 728, 250.5 / 561); size 0.75, ratio 1: a 0.75 * 561 = 420.75 pixel square
    px = boxes[250, 250] * torch.tensor([w, h, w, h])
    assert torch.allclose((px[:, 0] + px[:, 2]) / 2, torch.full((5,), 250.5), atol=1e-3)
    assert torch.allclose((px[:, 1] + px[:, 3]) / 2, torch.full((5,), 250.5), atol=1e-3)
    widths, heights = px[:, 2] - px[:, 0], px[:, 3] - px[:, 1]
    sizes, ratios = torch.tensor([0.75, 0.5, 0.25, 0.75, 0.75]), torch.tensor([1, 1, 1, 2, 0.5])
    assert torch.allclose(widths, sizes * ratios.sqrt() * h, rtol=1e-4)  # w = s sqrt(r), in units of the height
    assert torch.allclose(heights, sizes / ratios.sqrt() * h, rtol=1e-4)


def test_box_iou_by_hand_and_batched():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    expected = torch.tensor([[1 / 7, 1.0, 0.0], [0.0, 0.25, 0.0]])
    assert torch.allclose(box_iou(a, b), expected)
    batched = box_iou(torch.stack([a, a.flip(0)]), b)  # (2, 2, 3)
    assert torch.allclose(batched[0], expected) and torch.allclose(batched[1], expected.flip(0))
    empty = torch.zeros(1, 4)
    assert box_iou(empty, empty).item() == 0.0  # no union: IoU 0, not NaN


def test_multibox_target_reproduces_the_books_labels_masks_and_offsets():
    bbox_offset, bbox_mask, class_labels = multibox_target(ANCHORS.unsqueeze(0), GROUND_TRUTH.unsqueeze(0))
    # the book's labels[2]: anchor 1 gets the dog although its IoU is only 0.14 (the greedy pass),
    # anchors 2 and 4 the cat (IoU >= 0.5), anchors 0 and 3 are background
    assert torch.equal(class_labels, torch.tensor([[0, 1, 2, 0, 2]]))
    assert torch.equal(bbox_mask, torch.tensor([[0.0] * 4 + [1.0] * 8 + [0.0] * 4 + [1.0] * 4]))
    book = torch.tensor([[0, 0, 0, 0, 1.40e+00, 1.00e+01, 2.59e+00, 7.18e+00, -1.20e+00, 2.69e-01, 1.68e+00,
                          -1.57e+00, 0, 0, 0, 0, -5.71e-01, -1.00e+00, 4.17e-06, 6.26e-01]])
    assert torch.allclose(bbox_offset, book, rtol=5e-3, atol=1e-5)  # printed to 3 significant digits
    # anchor 1 by hand: centres (0.275, 0.3) -> (0.31, 0.5), sizes (0.25, 0.2) -> (0.42, 0.84)
    by_hand = [10 * 0.035 / 0.25, 10 * 0.2 / 0.2, 5 * math.log(0.42 / 0.25), 5 * math.log(0.84 / 0.2)]
    assert torch.allclose(bbox_offset[0, 4:8], torch.tensor(by_hand), rtol=1e-4)


def test_assignment_threshold_and_padding():
    gt = GROUND_TRUTH[:, 1:]
    assert assign_anchor_to_bbox(gt, ANCHORS).tolist() == [-1, 0, 1, -1, 1]
    # anchor 3 overlaps the cat with IoU 0.2: assigned only once the threshold is that low
    assert assign_anchor_to_bbox(gt, ANCHORS, iou_threshold=0.15).tolist() == [-1, 0, 1, 1, 1]
    # a padding row (class -1) changes nothing, and a batch equals its images one by one
    padded = torch.cat([GROUND_TRUTH, torch.tensor([[-1.0, 0, 0, 0, 0]])])
    single = torch.tensor([[0, 0.6, 0.3, 0.9, 0.9], [-1, 0, 0, 0, 0], [-1, 0, 0, 0, 0]])
    batch = multibox_target(ANCHORS.unsqueeze(0), torch.stack([padded, single]))
    alone = [multibox_target(ANCHORS, GROUND_TRUTH.unsqueeze(0)), multibox_target(ANCHORS, single[:1].unsqueeze(0))]
    for i, one in enumerate(alone):
        for got, want in zip(batch, one):
            assert torch.allclose(got[i], want[0])


def test_offsets_decode_what_they_encode():
    g = torch.Generator().manual_seed(0)

    def random_boxes():  # centres in [0, 1], sizes in [0.05, 1.05]
        centers, sizes = torch.rand(50, 2, generator=g), 0.05 + torch.rand(50, 2, generator=g)
        return box_center_to_corner(torch.cat([centers, sizes], 1))

    anchors, boxes = random_boxes(), random_boxes()
    assert torch.allclose(offset_inverse(anchors, offset_boxes(anchors, boxes)), boxes, atol=1e-5)


def test_multibox_detection_reproduces_the_books_nms_example():
    """The book's four anchors (three on the dog, one on the cat), zero offsets, NMS at 0.5."""
    anchors = torch.tensor([[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95],
                            [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]])
    offset_preds = torch.zeros(anchors.numel())
    cls_probs = torch.tensor([[0.0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]])  # background, dog, cat
    output = multibox_detection(cls_probs.unsqueeze(0), offset_preds.unsqueeze(0), anchors.unsqueeze(0),
                                nms_threshold=0.5)
    book = torch.tensor([[[0.0, 0.9, 0.1, 0.08, 0.52, 0.92],
                          [1.0, 0.9, 0.55, 0.2, 0.9, 0.88],
                          [-1.0, 0.8, 0.08, 0.2, 0.56, 0.95],
                          [-1.0, 0.7, 0.15, 0.3, 0.62, 0.91]]])
    assert torch.allclose(output, book, atol=1e-6)
    assert nms(anchors, torch.tensor([0.9, 0.8, 0.7, 0.9]), 0.5).tolist() in ([0, 3], [3, 0])


def brute_force_nms(boxes, scores, threshold):
    """Keep each box, best first, unless it overlaps an already kept box by more than `threshold`."""
    keep = []
    for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
        if all(box_iou(boxes[i:i + 1], boxes[k:k + 1]).item() <= threshold for k in keep):
            keep.append(i)
    return keep


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 25), st.floats(0.1, 0.9), st.integers(0, 2**31 - 1))
def test_nms_matches_brute_force(n, threshold, seed):
    g = torch.Generator().manual_seed(seed)
    centers, sizes = torch.rand(n, 2, generator=g), 0.05 + 0.4 * torch.rand(n, 2, generator=g)
    boxes = box_center_to_corner(torch.cat([centers, sizes], 1))
    scores = torch.randperm(n, generator=g).float() / n  # distinct: the order is well defined
    assert nms(boxes, scores, threshold).tolist() == brute_force_nms(boxes, scores.tolist(), threshold)


# -- mAP on hand-made cases ---------------------------------------------------------------------

BOX_A, BOX_B = [0.1, 0.1, 0.4, 0.4], [0.6, 0.6, 0.9, 0.9]
ELSEWHERE = [0.0, 0.6, 0.2, 0.8]  # IoU 0 with both


def det(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)


def gt(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)


def test_map_perfect_detections_is_one():
    truths = [gt([0, *BOX_A], [0, *BOX_B]), gt([0, *BOX_B])]
    dets = [det([0, 0.9, *BOX_A], [0, 0.8, *BOX_B]), det([0, 0.7, *BOX_B])]
    assert mean_average_precision(dets, truths)["map"] == pytest.approx(1.0)


def test_map_false_positive_ranked_first():
    # precision 0/1 then 1/2 at recall 1: AP = 0.5
    truths = [gt([0, *BOX_A])]
    dets = [det([0, 0.9, *ELSEWHERE], [0, 0.8, *BOX_A])]
    assert mean_average_precision(dets, truths)["map"] == pytest.approx(0.5)
    # ranked last instead, it costs nothing: precision 1 is reached at recall 1 first
    dets = [det([0, 0.7, *ELSEWHERE], [0, 0.8, *BOX_A])]
    assert mean_average_precision(dets, truths)["map"] == pytest.approx(1.0)


def test_map_missed_object_and_duplicates():
    truths = [gt([0, *BOX_A]), gt([0, *BOX_B])]
    assert mean_average_precision([det([0, 0.9, *BOX_A]), det()], truths)["map"] == pytest.approx(0.5)  # recall 1/2
    # a second detection of an already matched box is a false positive, ranked after the true one
    dets = [det([0, 0.9, *BOX_A], [0, 0.85, *BOX_A]), det([0, 0.8, *BOX_B])]
    # precisions 1, 1/2, 2/3 at recalls 1/2, 1/2, 1: the envelope gives 1/2 * 1 + 1/2 * 2/3
    assert mean_average_precision(dets, truths)["map"] == pytest.approx(0.5 + 1 / 3)


def test_map_all_point_interpolation_by_hand():
    # three objects; ranked TP, FP, TP, FP, TP: precision 1, 1/2, 2/3, 1/2, 3/5 at recall 1/3, 1/3, 2/3, 2/3, 1
    # envelope: 1 on (0, 1/3], 2/3 on (1/3, 2/3], 3/5 on (2/3, 1] -> AP = (1 + 2/3 + 3/5) / 3
    truths = [gt([0, *BOX_A]), gt([0, *BOX_A]), gt([0, *BOX_A])]
    dets = [det([0, 0.9, *BOX_A], [0, 0.8, *BOX_B]), det([0, 0.7, *BOX_A], [0, 0.6, *BOX_B]), det([0, 0.5, *BOX_A])]
    assert mean_average_precision(dets, truths)["map"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


def test_map_two_classes_and_iou_threshold():
    truths = [gt([0, *BOX_A], [1, *BOX_B], [-1, 0, 0, 0, 0])]  # the padding row is ignored
    shifted = [0.6, 0.6, 0.9, 1.0]  # IoU 0.75 with BOX_B
    dets = [det([0, 0.9, *BOX_A], [1, 0.95, *ELSEWHERE], [1, 0.5, *shifted], [-1, 0.99, *BOX_B])]
    result = mean_average_precision(dets, truths)
    assert result["ap"] == {0: pytest.approx(1.0), 1: pytest.approx(0.5)}  # class 1: FP first, then TP
    assert result["map"] == pytest.approx(0.75)
    # a class-0 detection on the class-1 box does not count for either
    assert mean_average_precision([det([0, 0.9, *BOX_B])], [gt([0, *BOX_A])])["map"] == 0.0
    # at IoU 0.8 the shifted box misses: class 1 gets no true positive
    assert mean_average_precision(dets, truths, iou_threshold=0.8)["ap"][1] == 0.0


# -- drawing ---------------------------------------------------------------------------------------

def test_draw_boxes_saves_a_png_with_the_boxes(tmp_path):
    from PIL import Image

    image = torch.full((3, 80, 120), 0.5)
    plain = draw_boxes(image, torch.zeros(0, 4), tmp_path / "plain.png")
    boxed = draw_boxes(image, [[10, 10, 60, 50]], tmp_path / "boxed.png", labels=["dog"], colors=["r"])
    a = torch.from_numpy(__import__("numpy").asarray(Image.open(plain).convert("RGB"), dtype="float32"))
    b = torch.from_numpy(__import__("numpy").asarray(Image.open(boxed).convert("RGB"), dtype="float32"))
    assert a.shape == b.shape
    red = (b[..., 0] > 200) & (b[..., 1] < 60) & (b[..., 2] < 60)
    assert red.sum() > 50 and not ((a[..., 0] > 200) & (a[..., 1] < 60)).any()


def test_draw_the_books_boxes_on_catdog(shared_data, tmp_path):
    from PIL import Image

    path = shared_data / "img" / "catdog.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    img = torch.from_numpy(__import__("numpy").array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    assert tuple(img.shape[1:]) == (561, 728)  # the size the book's anchor example uses
    out = draw_boxes(img, [DOG, CAT], tmp_path / "catdog.png", labels=["dog", "cat"], colors=["b", "r"])
    assert Image.open(out).size[0] > 100


def test_drawing_boxes_keeps_the_notebooks_backend(tmp_path):
    """In Jupyter the inline backend must survive a plot helper (it used to be forced to Agg)."""
    matplotlib = pytest.importorskip("matplotlib")
    pytest.importorskip("matplotlib_inline")
    before = matplotlib.get_backend()
    matplotlib.use("module://matplotlib_inline.backend_inline")
    try:
        draw_boxes(torch.rand(3, 20, 20), [[1, 1, 5, 5]], tmp_path / "boxes.png")
        assert matplotlib.get_backend() == "module://matplotlib_inline.backend_inline"
    finally:
        matplotlib.use(before)
