"""Regions of interest (book 14.8 / first edition 13.8): RoI pooling (Fast R-CNN), RoI Align
(Mask R-CNN), and the batched NMS a region proposal network uses to pick its proposals.

Regions are `rois (K, 5)` rows (batch index, x1, y1, x2, y2) in input-image coordinates, as in the
book and `torchvision.ops`; `spatial_scale` maps them onto the feature map `X (N, C, H, W)`
(0.1 for a map a tenth of the image size; a pair (scale_h, scale_w) where the two axes shrink
differently). Both ops return `(K, C, h2, w2)`.

**RoI pooling** (`roi_pool`) rounds a region's corners to feature-map cells (C's round: halves
away from zero), so a region covers `w = x2 - x1 + 1` columns and `h = y2 - y1 + 1` rows (at
least 1), and splits it into an h2 x w2 grid of cells, each about (h / h2) x (w / w2) cells: the
output is the maximum of each. The sizes are whole numbers, so the split is uneven:

* `bins="book"`, the book's partition: cell i spans [ceil(i h / h2), ceil((i + 1) h / h2)), the
  first cells rounded up; a 3x3 region pooled to 2x2 gives cells of 2x2, 2x1, 1x2 and 1x1 (rows
  x columns: X[0:2, 0:2], X[0:2, 2:3], X[2:3, 0:2], X[2:3, 2:3]), as in the book's figure.
* `bins="torchvision"` (the default; what `torchvision.ops.roi_pool`, which the book calls,
  computes): cell i spans [floor(i h / h2), ceil((i + 1) h / h2)), so neighbouring cells may share
  a row; a 3x3 region pooled to 2x2 gives four 2x2 cells overlapping on the middle row and column.

Cells are clipped to the map; an empty cell outputs 0. On the book's example both give
[[5, 6], [9, 10]] and [[9, 11], [13, 15]]. The gradient of each output goes to the first maximal
element of its cell in row-major order (torchvision's argmax).

**RoI Align** (`roi_align`) does not round: the region (x1, y1, x2, y2) * spatial_scale (less 0.5
if `aligned`) is split into h2 x w2 equal bins, each bin is sampled on a g_h x g_w grid of points
(`sampling_ratio`, or adaptively ceil(roi height / h2) x ceil(roi width / w2)), each point is read
by bilinear interpolation of its four neighbouring cells, and a bin outputs the mean of its
points; torchvision's roi_align with the same arguments. Points more than one cell outside the
map read 0; others are clamped onto it.

Each op is written twice: `*_scratch` loops over regions and cells as the book explains (the
readable reference), `roi_pool` / `roi_align` do the same arithmetic on whole tensors, in memory
that grows with the output (K x C x h2 x w2), never with K copies of the map. `roi_pool` visits
each cell's elements in row-major order, all cells of all regions at once, and keeps a running
maximum and where it is (ties to the first, as torchvision), then reads the maxima off the map so
that each gradient goes to its one element; `roi_align` writes bilinear interpolation as a "tent"
weight max(0, 1 - |y - h|) per row and column, averages the weights of a bin's sample points, and
contracts them with the feature map of each image in one einsum. The tests check both against
brute-force references and each other, values and gradients.
"""

from __future__ import annotations

import torch

from .boxes import box_iou

IntPair = int | tuple[int, int]
Scale = float | tuple[float, float]
BINS = ("torchvision", "book")


def _size(output_size: IntPair) -> tuple[int, int]:
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
        raise ValueError(f"output_size must be a positive int or a pair (h2, w2), got {output_size!r}")
    return size


def _scaled(corners: torch.Tensor, spatial_scale: Scale) -> torch.Tensor:
    """Corners (..., 4) (x1, y1, x2, y2) times `spatial_scale`: one number, or (scale_h, scale_w)."""
    if not isinstance(spatial_scale, (tuple, list)):
        return corners * spatial_scale
    if len(spatial_scale) != 2:
        raise ValueError(f"spatial_scale must be a number or a pair (scale_h, scale_w), got {spatial_scale!r}")
    s_h, s_w = spatial_scale  # each axis by a Python number, as one scale is: the same rounding
    x1, y1, x2, y2 = corners.unbind(-1)
    return torch.stack((x1 * s_w, y1 * s_h, x2 * s_w, y2 * s_h), dim=-1)


def _check(X: torch.Tensor, rois: torch.Tensor, bins: str | None = None) -> None:
    if X.dim() != 4:
        raise ValueError(f"X must be a feature map (N, C, H, W), got shape {tuple(X.shape)}")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must be (K, 5) rows (batch index, x1, y1, x2, y2), got shape {tuple(rois.shape)}")
    if bins is not None and bins not in BINS:
        raise ValueError(f"bins must be one of {', '.join(BINS)}, got {bins!r}")
    batch = rois[:, 0]
    bad = (batch != batch.floor()) | (batch < 0) | (batch >= X.shape[0])  # NaN too
    if bad.any():
        row = int(bad.nonzero()[0, 0])
        raise ValueError(f"rois[:, 0] must be batch indices, whole numbers in [0, {X.shape[0]}) for a feature map X of "
                         f"{X.shape[0]} image(s); row {row} has {float(batch[row]):g}")


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's round(): halves away from zero (torch.round rounds them to even: 2.5 -> 2, not 3)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


# -- RoI pooling ----------------------------------------------------------------------------------

def pool_cells(start: int, length: int, n: int, size: int, bins: str = "torchvision",
               dtype: torch.dtype = torch.float32) -> list[tuple[int, int]]:
    """The n cells [lo, hi) of a region of `length` cells starting at `start`, along an axis of
    `size` cells (clipped to it). The bin size length / n is computed in `dtype`, as the op does."""
    bin_size = torch.tensor(length, dtype=dtype) / n
    cells = []
    for i in range(n):
        lo = torch.floor(i * bin_size) if bins == "torchvision" else torch.ceil(i * bin_size)
        hi = torch.ceil((i + 1) * bin_size)
        cells.append((min(max(int(lo) + start, 0), size), min(max(int(hi) + start, 0), size)))
    return cells


def _rounded_region(roi: torch.Tensor, spatial_scale: Scale) -> tuple[int, int, int, int]:
    """(x1, y1, w, h) of a region (x1, y1, x2, y2) in feature-map cells: corners rounded, sizes >= 1."""
    x1, y1, x2, y2 = (int(v) for v in round_half_away(_scaled(roi, spatial_scale)))
    return x1, y1, max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)


def roi_pool_scratch(X: torch.Tensor, rois: torch.Tensor, output_size: IntPair, spatial_scale: Scale = 1.0,
                     bins: str = "torchvision") -> torch.Tensor:
    """RoI pooling by loops over regions and cells (the book's explanation): (K, C, h2, w2)."""
    _check(X, rois, bins)
    h2, w2 = _size(output_size)
    H, W = X.shape[-2:]
    out = []
    for roi in rois:
        b = int(roi[0])
        x1, y1, w, h = _rounded_region(roi[1:].to(X.dtype), spatial_scale)
        rows = pool_cells(y1, h, h2, H, bins, X.dtype)
        cols = pool_cells(x1, w, w2, W, bins, X.dtype)
        cells = []
        for r0, r1 in rows:
            for c0, c1 in cols:
                if r1 <= r0 or c1 <= c0:  # empty after clipping: 0, and no gradient
                    cells.append(X.new_zeros(X.shape[1]))
                else:  # (C, rows, cols) -> (C, rows * cols): max picks the first maximum, row-major
                    cells.append(X[b, :, r0:r1, c0:c1].flatten(1).max(dim=1).values)
        out.append(torch.stack(cells, dim=1).reshape(-1, h2, w2))  # (C, h2 * w2) -> (C, h2, w2)
    return torch.stack(out) if out else X.new_zeros(0, X.shape[1], h2, w2)


def _cell_bounds(start: torch.Tensor, length: torch.Tensor, n: int, size: int, bins: str):
    """(K, n) lower and upper bounds [lo, hi) of every region's cells along one axis, clipped."""
    bin_size = length.to(start.dtype) / n  # (K,)
    i = torch.arange(n, dtype=start.dtype, device=start.device)
    lo = torch.floor(i * bin_size[:, None]) if bins == "torchvision" else torch.ceil(i * bin_size[:, None])
    hi = torch.ceil((i + 1) * bin_size[:, None])
    lo = (lo.long() + start.long()[:, None]).clamp(0, size)
    hi = (hi.long() + start.long()[:, None]).clamp(0, size)
    return lo, hi


def _first_argmax(pixels: torch.Tensor, first: torch.Tensor, row_lo: torch.Tensor, row_hi: torch.Tensor,
                  col_lo: torch.Tensor, col_hi: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(K, h2, w2, C): the row of `pixels` (N H W, C) holding the first maximum of each cell, row-major.

    `first` (K,) is the row of each region's image's pixel (0, 0); a cell's rows are [row_lo, row_hi)
    (K, h2), its columns [col_lo, col_hi) (K, w2). Element (i, j) of every cell is read at once, in
    row-major order; past a cell's end it reads the cell's first element again, which cannot beat
    the maximum so far (only a larger value replaces it, so ties keep the first)."""

    def at(i: int, j: int) -> torch.Tensor:  # (K, h2, w2): the pixel of element (i, j) of each cell
        r, c = (row_lo + i).clamp(max=H - 1), (col_lo + j).clamp(max=W - 1)
        return first[:, None, None] + (r * W)[:, :, None] + c[:, None, :]

    top_left = at(0, 0)  # inside every cell that is not empty
    best = pixels[top_left]  # (K, h2, w2, C)
    arg = top_left[..., None].expand_as(best).clone()
    rows, cols = int((row_hi - row_lo).max().clamp(min=1)), int((col_hi - col_lo).max().clamp(min=1))
    for i in range(rows):
        for j in range(cols):
            if i == j == 0:
                continue
            inside = (row_lo + i < row_hi)[:, :, None] & (col_lo + j < col_hi)[:, None, :]  # (K, h2, w2)
            index = torch.where(inside, at(i, j), top_left)
            values = pixels[index]  # (K, h2, w2, C)
            better = values > best
            torch.where(better, values, best, out=best)  # in place: memory stays a few times the output's
            torch.where(better, index[..., None], arg, out=arg)
    return arg


def roi_pool(X: torch.Tensor, rois: torch.Tensor, output_size: IntPair, spatial_scale: Scale = 1.0,
             bins: str = "torchvision") -> torch.Tensor:
    """RoI pooling on whole tensors (see the module doc): (K, C, h2, w2), as roi_pool_scratch."""
    _check(X, rois, bins)
    h2, w2 = _size(output_size)
    N, C, H, W = X.shape
    K = rois.shape[0]
    if K == 0:
        return X.new_zeros(0, C, h2, w2)
    corners = round_half_away(_scaled(rois[:, 1:].to(X.dtype), spatial_scale))  # (K, 4) cells
    x1, y1, x2, y2 = corners.unbind(1)
    w, h = (x2 - x1 + 1).clamp(min=1), (y2 - y1 + 1).clamp(min=1)
    row_lo, row_hi = _cell_bounds(y1, h, h2, H, bins)  # (K, h2)
    col_lo, col_hi = _cell_bounds(x1, w, w2, W, bins)  # (K, w2)
    pixels = X.permute(0, 2, 3, 1).reshape(N * H * W, C)  # (N H W, C): a pixel's channels in a row
    with torch.no_grad():  # where the maxima are; reading them below is what the gradient flows through
        arg = _first_argmax(pixels, rois[:, 0].long() * (H * W), row_lo, row_hi, col_lo, col_hi, H, W)
    out = pixels.gather(0, arg.reshape(-1, C)).reshape(K, h2, w2, C)
    empty = (row_hi <= row_lo)[:, :, None] | (col_hi <= col_lo)[:, None, :]  # (K, h2, w2)
    return out.masked_fill(empty[..., None], 0.0).permute(0, 3, 1, 2).contiguous()  # (K, C, h2, w2)


# -- RoI Align ------------------------------------------------------------------------------------

def _align_region(roi: torch.Tensor, spatial_scale: Scale, aligned: bool):
    """(x1, y1, w, h) of a region on the feature map, unrounded (at least 1 x 1 unless aligned)."""
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (_scaled(roi, spatial_scale) - offset).unbind(-1)
    w, h = x2 - x1, y2 - y1
    if not aligned:  # torchvision forces malformed regions to 1 x 1
        w, h = w.clamp(min=1.0), h.clamp(min=1.0)
    return x1, y1, w, h


def _grid(length: torch.Tensor, n: int, sampling_ratio: int) -> torch.Tensor:
    """Sample points per bin along one axis: sampling_ratio, or ceil(length / n) (adaptive)."""
    if sampling_ratio > 0:
        return torch.full_like(length, sampling_ratio, dtype=torch.long)
    return torch.ceil(length / n).long()


def bilinear(X: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """X (C, H, W) read at the point (y, x) by bilinear interpolation of its four neighbours
    (torchvision's rule at the border: 0 beyond one cell outside the map, else clamped onto it)."""
    H, W = X.shape[-2:]
    if y < -1.0 or y > H or x < -1.0 or x > W:
        return X.new_zeros(X.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= H - 1:
        y_low = y_high = H - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= W - 1:
        x_low = x_high = W - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (hy * hx * X[:, y_low, x_low] + hy * lx * X[:, y_low, x_high]
            + ly * hx * X[:, y_high, x_low] + ly * lx * X[:, y_high, x_high])


def roi_align_scratch(X: torch.Tensor, rois: torch.Tensor, output_size: IntPair, spatial_scale: Scale = 1.0,
                      sampling_ratio: int = -1, aligned: bool = False) -> torch.Tensor:
    """RoI Align by loops over regions, bins and sample points: (K, C, h2, w2)."""
    _check(X, rois)
    h2, w2 = _size(output_size)
    out = []
    for roi in rois:
        b = int(roi[0])
        x1, y1, w, h = _align_region(roi[1:].to(X.dtype), spatial_scale, aligned)
        g_h, g_w = int(_grid(h, h2, sampling_ratio)), int(_grid(w, w2, sampling_ratio))
        bin_h, bin_w = h / h2, w / w2
        bins = []
        for ph in range(h2):
            for pw in range(w2):
                total = X.new_zeros(X.shape[1])
                for iy in range(g_h):
                    y = float(y1 + ph * bin_h + (iy + 0.5) * bin_h / g_h)
                    for ix in range(g_w):
                        x = float(x1 + pw * bin_w + (ix + 0.5) * bin_w / g_w)
                        total = total + bilinear(X[b], y, x)
                bins.append(total / max(g_h * g_w, 1))
        out.append(torch.stack(bins, dim=1).reshape(-1, h2, w2))  # (C, h2 * w2) -> (C, h2, w2)
    return torch.stack(out) if out else X.new_zeros(0, X.shape[1], h2, w2)


def _bin_weights(start: torch.Tensor, length: torch.Tensor, n: int, size: int, sampling_ratio: int) -> torch.Tensor:
    """(K, n, size): the weight of every row (or column) of the map in each bin of each region,
    the tent weight max(0, 1 - |p - h|) of its sample points p, averaged over the bin's points."""
    grid = _grid(length, n, sampling_ratio)  # (K,)
    most = max(int(grid.max()), 1) if grid.numel() else 1
    g = grid.clamp(min=1).to(start.dtype)[:, None, None]  # (K, 1, 1)
    bin_size = (length / n)[:, None, None]
    i = torch.arange(n, dtype=start.dtype, device=start.device)[None, :, None]  # (1, n, 1)
    k = torch.arange(most, dtype=start.dtype, device=start.device)[None, None, :]  # (1, 1, most)
    points = start[:, None, None] + i * bin_size + (k + 0.5) * bin_size / g  # (K, n, most)
    used = (k < grid[:, None, None]) & (points >= -1.0) & (points <= size)  # other points read 0
    points = points.clamp(0, size - 1)
    cells = torch.arange(size, dtype=start.dtype, device=start.device)
    tent = (1 - (points[..., None] - cells).abs()).clamp(min=0)  # (K, n, most, size)
    return (tent * used[..., None]).sum(dim=2) / g  # (K, n, size): the bin's mean


def roi_align(X: torch.Tensor, rois: torch.Tensor, output_size: IntPair, spatial_scale: Scale = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> torch.Tensor:
    """RoI Align on whole tensors (see the module doc): (K, C, h2, w2), as roi_align_scratch."""
    _check(X, rois)
    h2, w2 = _size(output_size)
    H, W = X.shape[-2:]
    if rois.shape[0] == 0:
        return X.new_zeros(0, X.shape[1], h2, w2)
    x1, y1, w, h = _align_region(rois[:, 1:].to(X.dtype), spatial_scale, aligned)
    A_y = _bin_weights(y1, h, h2, H, sampling_ratio)  # (K, h2, H)
    A_x = _bin_weights(x1, w, w2, W, sampling_ratio)  # (K, w2, W)
    # a bin's points are a grid, and bilinear weights are a product of a row and a column weight;
    # the regions of one image share its map, so each image's map is contracted once with all of them
    batch = rois[:, 0].long()
    order = batch.argsort(stable=True)  # (K,): the regions image by image
    images, counts = batch[order].unique_consecutive(return_counts=True)
    pieces = [torch.einsum("kph,chw,kqw->kcpq", A_y[k], X[n], A_x[k])
              for n, k in zip(images.tolist(), order.split(counts.tolist()))]
    return torch.cat(pieces)[order.argsort()]  # (K, C, h2, w2), back in the order of rois


# -- proposals ------------------------------------------------------------------------------------

def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS on a batch at once: boxes (B, K, 4), scores (B, K) -> keep (B, K) bool.

    The book's greedy rule (divekit.ops.boxes.nms) on every image together: in decreasing score
    order, a box is kept unless a kept box of higher score overlaps it by IoU > `iou_threshold`.
    K steps over (B, K) tensors instead of a Python loop per image.
    """
    order = scores.argsort(dim=1, descending=True)  # (B, K)
    sorted_boxes = boxes.gather(1, order[..., None].expand_as(boxes))
    overlaps = box_iou(sorted_boxes, sorted_boxes) > iou_threshold  # (B, K, K)
    B, K = scores.shape
    keep_sorted = torch.ones(B, K, dtype=torch.bool, device=boxes.device)
    for i in range(K):
        # box i is suppressed by any kept box before it that overlaps it
        keep_sorted[:, i] = ~(keep_sorted[:, :i] & overlaps[:, i, :i]).any(dim=1)
    keep = torch.zeros_like(keep_sorted)
    return keep.scatter(1, order, keep_sorted)
