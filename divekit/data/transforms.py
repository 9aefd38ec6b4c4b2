"""Batched image transforms: plain functions on (N, C, H, W) tensors.

Each takes a whole batch at once (no per-image Python loop), so augmentation costs a few tensor
ops per batch. Random ones take a `torch.Generator` so an epoch's augmentation is reproducible.
`image_transform(...)` composes them into a loader transform that maps the batch's first tensor.
"""

from __future__ import annotations

import math
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


# ----------------------------------------------------------------------------------------------
# Image augmentation (book 14.1): flips, random resized crops, color jitter. They take float
# batches (apply `to_float` first); each random choice is drawn per image from the generator.


def _check_float(x: torch.Tensor, name: str) -> None:
    if not x.is_floating_point():
        raise TypeError(f"{name} takes float images in [0, 1]; convert uint8 batches with to_float first")


def random_vflip(p: float = 0.5) -> ImageFn:
    """Flip each image upside down with probability p."""

    def fn(x, g=None):
        flip = (_uniform(len(x), g, x.device) < p).view(-1, 1, 1, 1)
        return torch.where(flip, x.flip(-2), x)

    return fn


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Cut box i = (top, left, height, width), in pixels, out of image i and resize it to `size`
    with bilinear interpolation: one `grid_sample` for the whole batch.

    The output's pixel grid spans the box edge to edge (align_corners=False), so a box covering
    the whole image at its own size returns the image unchanged.
    """
    _check_float(x, "resized_crop")
    oh, ow = (size, size) if isinstance(size, int) else size
    n, _, h, w = x.shape
    top, left, bh, bw = boxes.to(x.device, x.dtype).unbind(1)
    # affine map from output coordinates in [-1, 1] to input coordinates in [-1, 1]
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = bw / w
    theta[:, 0, 2] = (2 * left + bw) / w - 1
    theta[:, 1, 1] = bh / h
    theta[:, 1, 2] = (2 * top + bh) / h - 1
    grid = F.affine_grid(theta, [n, x.shape[1], oh, ow], align_corners=False)  # (N, oh, ow, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop_boxes(n: int, h: int, w: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                              g: torch.Generator | None = None, attempts: int = 10) -> torch.Tensor:
    """Boxes (N, 4) of (top, left, height, width) drawn as torchvision's RandomResizedCrop does.

    Area fraction ~ U(scale), log aspect ratio (width / height) ~ U(log ratio); of `attempts` draws
    per image the first that fits inside the image is used, otherwise a center crop of the whole
    image clipped to the ratio range.
    """
    area = h * w * (scale[0] + (scale[1] - scale[0]) * torch.rand(attempts, n, generator=g))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(attempts, n, generator=g))
    bw = torch.sqrt(area * aspect).round()
    bh = torch.sqrt(area / aspect).round()
    fits = (bw > 0) & (bw <= w) & (bh > 0) & (bh <= h)  # (attempts, N)
    first = fits.float().argmax(0)  # index of the first fitting attempt (0 when none fits)
    cols = torch.arange(n)
    bw, bh, any_fits = bw[first, cols], bh[first, cols], fits.any(0)
    # fallback: the largest centered box with the aspect ratio clipped to `ratio`
    in_ratio = w / h
    if in_ratio < ratio[0]:
        fw, fh = w, round(w / ratio[0])
    elif in_ratio > ratio[1]:
        fw, fh = round(h * ratio[1]), h
    else:
        fw, fh = w, h
    bw = torch.where(any_fits, bw, torch.tensor(float(fw)))
    bh = torch.where(any_fits, bh, torch.tensor(float(fh)))
    top = torch.floor(torch.rand(n, generator=g) * (h - bh + 1))
    left = torch.floor(torch.rand(n, generator=g) * (w - bw + 1))
    top = torch.where(any_fits, top, torch.tensor(float((h - fh) // 2)))
    left = torch.where(any_fits, left, torch.tensor(float((w - fw) // 2)))
    return torch.stack([top, left, bh, bw], dim=1)


def random_resized_crop(size: int | tuple[int, int], scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> ImageFn:
    """Crop a random box of each image (area fraction in `scale`, aspect ratio in `ratio`) and
    resize it to `size`: torchvision's RandomResizedCrop, on a whole batch."""

    def fn(x, g=None):
        boxes = random_resized_crop_boxes(len(x), x.shape[-2], x.shape[-1], scale, ratio, g)
        return resized_crop(x, boxes, size)

    return fn


def _per_image(factor, x: torch.Tensor) -> torch.Tensor:
    """A float or (N,) tensor of factors as a (N or 1, 1, 1, 1) tensor that broadcasts over the batch."""
    return torch.as_tensor(factor, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601): 0.299 R + 0.587 G + 0.114 B, as (N, 1, H, W); one-channel input is returned."""
    if x.shape[-3] == 1:
        return x
    r, g, b = x.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(x: torch.Tensor, other: torch.Tensor, factor) -> torch.Tensor:
    """factor * x + (1 - factor) * other, clipped to [0, 1]."""
    f = _per_image(factor, x)
    return (f * x + (1 - f) * other).clamp(0, 1)


def adjust_brightness(x: torch.Tensor, factor) -> torch.Tensor:
    """Multiply every pixel by `factor` (per image: a float or an (N,) tensor), clipped to [0, 1]."""
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor) -> torch.Tensor:
    """Blend each image with its mean gray level: factor 0 gives a flat gray image, 1 the image."""
    mean = rgb_to_grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)  # (N, 1, 1, 1)
    return _blend(x, mean, factor)


def adjust_saturation(x: torch.Tensor, factor) -> torch.Tensor:
    """Blend each image with its grayscale version: factor 0 gives gray, 1 the image."""
    return _blend(x, rgb_to_grayscale(x), factor)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] to HSV, each in [0, 1] (hue as a fraction of the color wheel), shape kept."""
    r, g, b = x.unbind(-3)
    maxc, _ = x.max(dim=-3)
    minc, _ = x.min(dim=-3)
    delta = maxc - minc
    gray = delta == 0
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, 1), 0)
    safe = torch.where(gray, 1, delta)
    # hue in sixths of the wheel: which channel is largest decides the sector
    h = torch.where(maxc == r, ((g - b) / safe) % 6,
                    torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(gray, 0, h / 6)
    return torch.stack([h, s, maxc], dim=-3)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV (each in [0, 1]) back to RGB in [0, 1]."""
    h, s, v = x.unbind(-3)
    # each channel is v - v s clip(min(k, 4 - k), 0, 1) with k = (n + 6h) mod 6, n = 5, 3, 1 for R, G, B
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(3, 1, 1)
    k = (n + 6 * h.unsqueeze(-3)) % 6
    return v.unsqueeze(-3) - (v * s).unsqueeze(-3) * torch.minimum(k, 4 - k).clamp(0, 1)


def adjust_hue(x: torch.Tensor, shift) -> torch.Tensor:
    """Rotate the hue by `shift` turns of the color wheel (per image, in [-0.5, 0.5]); gray images
    and one-channel images are unchanged."""
    if x.shape[-3] == 1:
        return x
    hsv = rgb_to_hsv(x)
    h = (hsv[:, :1] + _per_image(shift, x)) % 1.0
    return hsv_to_rgb(torch.cat([h, hsv[:, 1:]], dim=1))


def _factors(amount: float, n: int, g, device, name: str, center: float = 1.0, low: float = 0.0) -> torch.Tensor:
    if amount < 0:
        raise ValueError(f"color_jitter {name} must be >= 0, got {amount}")
    lo, hi = max(low, center - amount), center + amount
    return (lo + (hi - lo) * torch.rand(n, generator=g)).to(device)


def color_jitter(brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0) -> ImageFn:
    """torchvision's ColorJitter on a batch: per image, brightness, contrast and saturation factors
    drawn from U[max(0, 1 - a), 1 + a] and a hue shift from U[-hue, hue] (hue <= 0.5).

    The four adjustments are applied in this fixed order (torchvision shuffles the order per
    call); an amount of 0 skips that adjustment.
    """
    if not 0 <= hue <= 0.5:
        raise ValueError(f"color_jitter hue must be in [0, 0.5], got {hue}")

    def fn(x, g=None):
        _check_float(x, "color_jitter")
        n = len(x)
        if brightness:
            x = adjust_brightness(x, _factors(brightness, n, g, x.device, "brightness"))
        if contrast:
            x = adjust_contrast(x, _factors(contrast, n, g, x.device, "contrast"))
        if saturation:
            x = adjust_saturation(x, _factors(saturation, n, g, x.device, "saturation"))
        if hue:
            x = adjust_hue(x, _factors(hue, n, g, x.device, "hue", center=0.0, low=-0.5))
        return x

    return fn
