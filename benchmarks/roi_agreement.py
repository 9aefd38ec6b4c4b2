"""Max abs differences of divekit.ops.roi (vectorized and scratch) against the brute-force references
of tests/ops/test_roi.py, values and gradients, in float64 and float32, over 5 random cases:

    python benchmarks/roi_agreement.py      # prints a markdown table
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "ops"))

from test_roi import _grads, brute_roi_align, brute_roi_pool, random_case  # noqa: E402

from divekit.ops.roi import roi_align, roi_align_scratch, roi_pool, roi_pool_scratch  # noqa: E402


def variants(scale: float) -> list[tuple[str, tuple[int, int], list]]:
    """(name, output size, [vectorized, scratch, brute force]) of each op setting."""
    def pool(bins):
        return [lambda x, r, f=f: f(x, r, (3, 2), scale, bins=bins) for f in (roi_pool, roi_pool_scratch)] + [
            lambda x, r: brute_roi_pool(x, r, (3, 2), scale, bins)]

    def align(ratio, aligned):
        return [lambda x, r, f=f: f(x, r, (2, 3), scale, ratio, aligned) for f in (roi_align, roi_align_scratch)] + [
            lambda x, r: brute_roi_align(x, r, (2, 3), scale, ratio, aligned)]

    return [("roi_pool, torchvision cells", (3, 2), pool("torchvision")),
            ("roi_pool, the book's cells", (3, 2), pool("book")),
            ("roi_align, adaptive sampling", (2, 3), align(-1, False)),
            ("roi_align, sampling 2, aligned", (2, 3), align(2, True))]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def main() -> None:
    torch.set_num_threads(1)
    worst: dict[tuple[str, str], list[float]] = {}
    for seed in range(5):
        X, rois, scale = random_case(seed, N=2, C=4, H=9, W=11, K=12)
        for name, size, fns in variants(scale):
            G = torch.randn(rois.shape[0], X.shape[1], *size, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(seed))
            for dtype in (torch.float64, torch.float32):
                (vo, vg), (so, sg), (bo, bg) = [_grads(fn, X.to(dtype), rois.to(dtype), G.to(dtype)) for fn in fns]
                diffs = [max_diff(vo, so), max_diff(vo, bo), max_diff(so, bo),
                         max_diff(vg, sg), max_diff(vg, bg), max_diff(sg, bg)]
                key = (name, str(dtype).removeprefix("torch."))
                worst[key] = [max(a, b) for a, b in zip(worst.get(key, [0.0] * 6), diffs)]
    print("| op | dtype | fwd vec-scratch | fwd vec-brute | fwd scratch-brute | grad vec-scratch | grad vec-brute "
          "| grad scratch-brute |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, dtype), values in worst.items():
        print(f"| {name} | {dtype} | " + " | ".join(f"{v:.1e}" for v in values) + " |")


if __name__ == "__main__":
    main()
