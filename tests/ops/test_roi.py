"""RoI pooling, RoI Align and batched NMS (book 14.8): the book's example with its printed output,
the book's uneven cells, and the loop and vectorized versions against brute-force references
(written per output element over every cell of the map) on random inputs, values and gradients."""

import math

import pytest
import torch

from divekit.ops.boxes import nms
from divekit.ops.roi import (
    batched_nms,
    pool_cells,
    roi_align,
    roi_align_scratch,
    roi_pool,
    roi_pool_scratch,
    round_half_away,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# -- brute-force references: one output element at a time, scanning the whole map ----------------

def brute_roi_pool(X, rois, size, scale, bins):
    """Python floats (the tests use float64, so the same arithmetic as the op), C rounding."""
    h2, w2 = size
    _, C, H, W = X.shape
    out = []
    for roi in rois.tolist():
        b = int(roi[0])
        x1, y1, x2, y2 = (math.floor(abs(v * scale) + 0.5) * (1 if v >= 0 else -1) for v in roi[1:])
        w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        start = math.floor if bins == "torchvision" else math.ceil
        per_channel = []
        for c in range(C):
            cells = []
            for ph in range(h2):
                for pw in range(w2):
                    r0, r1 = y1 + start(ph * h / h2), y1 + math.ceil((ph + 1) * h / h2)
                    c0, c1 = x1 + start(pw * w / w2), x1 + math.ceil((pw + 1) * w / w2)
                    inside = [X[b, c, i, j] for i in range(H) for j in range(W) if r0 <= i < r1 and c0 <= j < c1]
                    cells.append(max(inside, key=lambda t: float(t.detach())) if inside else X.new_zeros(()))  # first max, row-major
            per_channel.append(torch.stack(cells).reshape(h2, w2))
        out.append(torch.stack(per_channel))
    return torch.stack(out)


def brute_roi_align(X, rois, size, scale, sampling_ratio, aligned):
    """Bilinear interpolation as the sum over every cell of the map of its tent weights."""
    h2, w2 = size
    _, C, H, W = X.shape
    rows, cols = torch.arange(H, dtype=X.dtype), torch.arange(W, dtype=X.dtype)
    out = []
    for roi in rois.tolist():
        b = int(roi[0])
        off = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = (v * scale - off for v in roi[1:])
        w, h = x2 - x1, y2 - y1
        if not aligned:
            w, h = max(w, 1.0), max(h, 1.0)
        g_h = sampling_ratio if sampling_ratio > 0 else math.ceil(h / h2)
        g_w = sampling_ratio if sampling_ratio > 0 else math.ceil(w / w2)
        bins = []
        for ph in range(h2):
            for pw in range(w2):
                total = X.new_zeros(C)
                for iy in range(g_h):
                    y = y1 + ph * h / h2 + (iy + 0.5) * (h / h2) / g_h
                    for ix in range(g_w):
                        x = x1 + pw * w / w2 + (ix + 0.5) * (w / w2) / g_w
                        if -1 <= y <= H and -1 <= x <= W:
                            wy = (1 - (min(max(y, 0), H - 1) - rows).abs()).clamp(min=0)
                            wx = (1 - (min(max(x, 0), W - 1) - cols).abs()).clamp(min=0)
                            total = total + (X[b] * wy[:, None] * wx[None, :]).sum(dim=(1, 2))
                bins.append(total / max(g_h * g_w, 1))
        out.append(torch.stack(bins, dim=1).reshape(C, h2, w2))
    return torch.stack(out)


def random_case(seed, N=2, C=3, H=7, W=9, K=7, scale=0.5):
    """A feature map and regions in image coordinates (scale 0.5: a map half the image size) that
    reach outside the map, are degenerate (x2 < x1) or land on a half cell (C rounding matters)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    xy1 = torch.randint(-3, 2 * W, (K, 2), generator=g).double()
    wh = torch.randint(0, 2 * W, (K, 2), generator=g).double()
    rois = torch.cat([torch.randint(0, N, (K, 1), generator=g).double(), xy1, xy1 + wh], dim=1)
    rois[0, 1:] = torch.tensor([1.0, 3.0, 9.0, 11.0])  # halves: 0.5 -> 1, 1.5 -> 2, 4.5 -> 5, 5.5 -> 6
    rois[1, 1:] = torch.tensor([6.0, 6.0, 2.0, 2.0])  # degenerate: forced to one cell
    return X, rois, scale


def _grads(fn, X, rois, G):
    X = X.clone().requires_grad_(True)
    out = fn(X, rois)
    (out * G).sum().backward()
    return out.detach(), X.grad


# -- the book ------------------------------------------------------------------------------------

BOOK_X = torch.arange(16.0).reshape(1, 1, 4, 4)
BOOK_ROIS = torch.tensor([[0, 0, 0, 20, 20], [0, 0, 10, 30, 30]], dtype=torch.float32)
BOOK_OUT = torch.tensor([[[[5.0, 6.0], [9.0, 10.0]]], [[[9.0, 11.0], [13.0, 15.0]]]])  # printed in book 14.8


@pytest.mark.parametrize("fn", [roi_pool, roi_pool_scratch])
@pytest.mark.parametrize("bins", ["torchvision", "book"])
def test_the_books_example_exactly(fn, bins):
    out = fn(BOOK_X, BOOK_ROIS, output_size=(2, 2), spatial_scale=0.1, bins=bins)
    assert out.dtype == torch.float32 and torch.equal(out, BOOK_OUT)


def test_the_books_uneven_cells():
    # a 3x3 region pooled to 2x2: rows and columns [0, 2) and [2, 3), cells of 2x2, 2x1, 1x2, 1x1
    assert pool_cells(0, 3, 2, size=4, bins="book") == [(0, 2), (2, 3)]
    # torchvision's cells overlap: [0, 2) and [1, 3)
    assert pool_cells(0, 3, 2, size=4, bins="torchvision") == [(0, 2), (1, 3)]
    # "rounded up": 5 cells in 3 -> 2, 2, 1; clipped to the map
    assert pool_cells(1, 5, 3, size=4, bins="book") == [(1, 3), (3, 4), (4, 4)]
    # the book's figure: the cells of the first region hold 0 1 4 5 | 2 6 | 8 9 | 10
    X = BOOK_X.clone().requires_grad_(True)
    roi_pool(X, BOOK_ROIS[:1], 2, 0.1, bins="book").sum().backward()
    assert X.grad.reshape(4, 4).nonzero().tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]  # 5, 6, 9, 10


def test_rounding_is_cs_halves_away_from_zero():
    assert round_half_away(torch.tensor([0.5, 1.5, 2.5, -0.5, -2.5, 2.4])).tolist() == [1, 2, 3, -1, -3, 2]


# -- random inputs against the references ----------------------------------------------------------

@pytest.mark.parametrize("bins", ["torchvision", "book"])
@pytest.mark.parametrize("seed", [0, 1])
def test_roi_pool_matches_brute_force_values_and_gradients(bins, seed):
    X, rois, scale = random_case(seed)
    G = torch.randn(rois.shape[0], X.shape[1], 3, 2, dtype=torch.float64)
    results = [_grads(lambda x, r, f=f: f(x, r, (3, 2), scale, bins=bins), X, rois, G)
               for f in (roi_pool, roi_pool_scratch)]
    results.append(_grads(lambda x, r: brute_roi_pool(x, r, (3, 2), scale, bins), X, rois, G))
    (out, grad), rest = results[0], results[1:]
    for other_out, other_grad in rest:
        assert torch.equal(out, other_out)  # a max picks an element: exact
        assert torch.allclose(grad, other_grad, rtol=0, atol=1e-12)
    assert (out == 0).any() and grad.abs().sum() > 0  # the case has empty (clipped) cells, and gradients


@pytest.mark.parametrize("sampling_ratio,aligned", [(-1, False), (2, False), (-1, True)])
def test_roi_align_matches_brute_force_values_and_gradients(sampling_ratio, aligned):
    X, rois, scale = random_case(2)
    G = torch.randn(rois.shape[0], X.shape[1], 2, 3, dtype=torch.float64)
    fns = [lambda x, r, f=f: f(x, r, (2, 3), scale, sampling_ratio, aligned) for f in (roi_align, roi_align_scratch)]
    fns.append(lambda x, r: brute_roi_align(x, r, (2, 3), scale, sampling_ratio, aligned))
    (out, grad), *rest = [_grads(fn, X, rois, G) for fn in fns]
    for other_out, other_grad in rest:
        assert torch.allclose(out, other_out, rtol=0, atol=1e-12)
        assert torch.allclose(grad, other_grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fn", [roi_align, roi_align_scratch])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_on_a_ramp_is_the_ramp_at_each_bin_centre(fn, sampling_ratio, aligned):
    """Bilinear interpolation is exact on X[n, c, h, w] = a h + b w + c0, so a bin's mean over its
    grid of points (torchvision: bin start + (i + 0.5) bin size / g, which average to the middle)
    is the ramp at the bin's centre; the region is (x1, y1, x2, y2) * scale, less 0.5 if aligned."""
    N, C, H, W, scale = 2, 3, 7, 9, 0.5
    g = torch.Generator().manual_seed(7)
    a, b, c0 = (torch.rand(N, C, 1, 1, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(3))
    h = torch.arange(H, dtype=torch.float64)[:, None]
    w = torch.arange(W, dtype=torch.float64)[None, :]
    X = a * h + b * w + c0  # (N, C, H, W)
    # every sample point inside the map ([0, H - 1] x [0, W - 1]), so nothing is clamped
    rois = [(0, 1.0, 2.0, 15.0, 11.0), (1, 4.2, 1.4, 13.8, 10.6), (1, 3.0, 3.0, 9.0, 7.0), (0, 2.6, 5.0, 16.0, 12.0)]
    h2, w2 = 2, 3
    off = 0.5 if aligned else 0.0
    expected = torch.empty(len(rois), C, h2, w2, dtype=torch.float64)
    for k, (n, x1, y1, x2, y2) in enumerate(rois):
        for p in range(h2):
            y = y1 * scale - off + (p + 0.5) * (y2 - y1) * scale / h2
            for q in range(w2):
                x = x1 * scale - off + (q + 0.5) * (x2 - x1) * scale / w2
                expected[k, :, p, q] = (a[n] * y + b[n] * x + c0[n]).flatten()
    out = fn(X, torch.tensor(rois, dtype=torch.float64), (h2, w2), scale, sampling_ratio, aligned)
    assert torch.allclose(out, expected, rtol=0, atol=1e-9)


def test_gradcheck_float64():
    X, rois, scale = random_case(3, N=1, C=1, H=5, W=6, K=3)
    X.requires_grad_(True)
    for fn in (lambda x: roi_pool(x, rois, 2, scale), lambda x: roi_pool_scratch(x, rois, 2, scale),
               lambda x: roi_align(x, rois, 2, scale), lambda x: roi_align_scratch(x, rois, 2, scale)):
        assert torch.autograd.gradcheck(fn, (X,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("fn", [roi_pool, roi_pool_scratch, roi_align, roi_align_scratch])
def test_a_scale_per_axis_is_the_regions_scaled_by_hand(fn):
    X, rois, _ = random_case(6)
    by_hand = rois.clone()
    by_hand[:, [1, 3]] *= 0.25  # x by scale_w (powers of two: exact, so the two must agree exactly)
    by_hand[:, [2, 4]] *= 0.5  # y by scale_h
    assert torch.equal(fn(X, rois, (2, 3), (0.5, 0.25)), fn(X, by_hand, (2, 3), 1.0))
    assert torch.equal(fn(X, rois, (2, 3), (0.5, 0.5)), fn(X, rois, (2, 3), 0.5))
    with pytest.raises(ValueError, match=r"spatial_scale must be a number or a pair \(scale_h, scale_w\)"):
        fn(X, rois, 2, (0.5, 0.5, 0.5))


def test_roi_pool_tie_goes_to_the_first_maximum_row_major():
    X = torch.zeros(1, 1, 3, 3, requires_grad=True)  # all equal: every cell's first element wins
    for fn in (roi_pool, roi_pool_scratch):
        X.grad = None
        fn(X, torch.tensor([[0.0, 0, 0, 2, 2]]), 1).sum().backward()
        assert X.grad[0, 0].nonzero().tolist() == [[0, 0]]


def test_float32_matches_float64_and_bad_inputs():
    X, rois, scale = random_case(4)
    for fn in (roi_pool, roi_align):
        assert torch.allclose(fn(X.float(), rois.float(), 2, scale).double(), fn(X, rois, 2, scale), atol=1e-5)
        assert fn(X, rois[:0], 2, scale).shape == (0, 3, 2, 2)
    with pytest.raises(ValueError, match=r"rois must be \(K, 5\)"):
        roi_pool(X, rois[:, 1:], 2)
    with pytest.raises(ValueError, match="bins must be one of"):
        roi_pool(X, rois, 2, bins="nearest")
    with pytest.raises(ValueError, match="output_size must be"):
        roi_align(X, rois, 0)


@pytest.mark.parametrize("fn", [roi_pool, roi_pool_scratch, roi_align, roi_align_scratch])
@pytest.mark.parametrize("index", [2.0, -1.0, 0.5, float("nan")])
def test_a_batch_index_outside_the_feature_map_is_named(fn, index):
    X, rois, scale = random_case(5)  # N = 2 images
    rois[3, 0] = index
    with pytest.raises(ValueError, match=rf"whole numbers in \[0, 2\) .* row 3 has {index:g}"):
        fn(X, rois, 2, scale)
    rois[3, 0] = 1.0
    assert fn(X, rois, 2, scale).shape == (7, 3, 2, 2)


def test_batched_nms_matches_the_books_nms():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(3, 40, 2, generator=g) * 0.7
    boxes = torch.cat([xy, xy + 0.05 + torch.rand(3, 40, 2, generator=g) * 0.3], dim=-1)
    scores = torch.rand(3, 40, generator=g)
    keep = batched_nms(boxes, scores, 0.5)
    for i in range(3):
        expected = torch.zeros(40, dtype=torch.bool)
        expected[nms(boxes[i], scores[i], 0.5)] = True
        assert torch.equal(keep[i], expected)
    assert 3 < keep.sum() < 120
