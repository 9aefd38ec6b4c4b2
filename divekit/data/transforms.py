"""Batched image transforms: plain functions on (N, C, H, W) tensors.

Each takes a whole batch at once (no per-image Python loop), so augmentation costs a few tensor
ops per batch. Random ones take a `torch.Generator` so an epoch's augmentation is reproducible.
`image_transform(...)` composes them into a loader transform that maps the batch's first tensor.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

ImageFn = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def to_float(x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float input is returned unchanged."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def resize(size: int | tuple[int, int]) -> ImageFn:
    """Resize to `size` (square if an int) with bilinear interpolation (antialiased when shrinking)."""
    hw = (size, size) if isinstance(size, int) else tuple(size)

    def fn(x, g=None):
        if tuple(x.shape[-2:]) == hw:
            return x
        shrink = x.shape[-2] > hw[0] or x.shape[-1] > hw[1]
        return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=shrink)

    return fn


def normalize(mean, std) -> ImageFn:
    """(x - mean) / std per channel."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def fn(x, g=None):
        return (x - mean_t.to(x.device)) / std_t.to(x.device)

    return fn


def _uniform(n: int, g: torch.Generator | None, device) -> torch.Tensor:
    return torch.rand(n, generator=g).to(device)


def random_hflip(p: float = 0.5) -> ImageFn:
    """Flip each image left-right with probability p."""

    def fn(x, g=None):
        flip = (_uniform(len(x), g, x.device) < p).view(-1, 1, 1, 1)
        return torch.where(flip, x.flip(-1), x)

    return fn


def random_crop(size: int | tuple[int, int], padding: int = 0) -> ImageFn:
    """Pad by `padding` (zeros) and cut a random window of `size` (square if an int) from each image."""
    sh, sw = (size, size) if isinstance(size, int) else size

    def fn(x, g=None):
        if padding:
            x = F.pad(x, (padding,) * 4)
        n, c, h, w = x.shape
        if sh > h or sw > w:
            raise ValueError(f"random_crop({sh}x{sw}) is larger than the padded image {h}x{w}")
        top = torch.randint(0, h - sh + 1, (n,), generator=g).to(x.device)
        left = torch.randint(0, w - sw + 1, (n,), generator=g).to(x.device)
        rows = (top.view(n, 1) + torch.arange(sh, device=x.device)).view(n, 1, sh, 1)
        cols = (left.view(n, 1) + torch.arange(sw, device=x.device)).view(n, 1, 1, sw)
        batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
        return x[batch, chan, rows, cols]  # (N, C, sh, sw)

    return fn


def compose(*fns: ImageFn) -> ImageFn:
    """Apply image functions in order."""

    def fn(x, g=None):
        for f in fns:
            x = f(x, g)
        return x

    return fn


def image_transform(*fns: ImageFn):
    """A TensorLoader transform that applies `fns` to the batch's images (its first tensor)."""
    pipeline = compose(*fns)

    def fn(batch, g):
        return (pipeline(batch[0], g), *batch[1:])

    return fn
