"""Image files as tensors, with pillow: read to uint8 (C, H, W), save as PNG, plot a grid of samples.

divekit keeps images as uint8 (C, H, W) tensors (channels first, as torch's convolutions want
them) and converts to float in [0, 1] per batch (`transforms.to_float`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..core.errors import DataError

MODES = {1: "L", 3: "RGB"}


class UnreadableImage(DataError):
    """A file that is missing or that pillow cannot decode; `reason` says why."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path} does not exist" if reason == NO_FILE else
                         f"{path} is not a readable image ({reason}); give a PNG, JPEG, BMP, GIF, TIFF or WebP file")
        self.path, self.reason = path, reason


NO_FILE = "no such file"


def open_image(path: str | Path) -> Image.Image:
    """The decoded pillow image of a file; a missing, unreadable or non-image file raises
    UnreadableImage (a DataError) naming it."""
    try:
        with Image.open(path) as img:
            img.load()
            return img
    except FileNotFoundError:
        raise UnreadableImage(path, NO_FILE) from None
    except UnidentifiedImageError:
        raise UnreadableImage(path, "not an image format pillow knows") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UnreadableImage(path, f"{type(e).__name__}: {e}") from None


def read_image(path: str | Path, mode: str = "RGB", size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Read an image file as a uint8 (C, H, W) tensor: C = 3 for mode "RGB", 1 for "L" (gray).

    `size` (an int for a square, or (H, W)) resizes with pillow's bilinear filter (antialiased).
    A missing, unreadable or non-image file raises UnreadableImage (a DataError) naming it.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    img = open_image(path).convert(mode)
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        img = img.resize((w, h), Image.BILINEAR)
    x = torch.from_numpy(np.array(img, dtype=np.uint8))  # (H, W) or (H, W, 3)
    return x.unsqueeze(0) if mode == "L" else x.permute(2, 0, 1).contiguous()  # (H, W, C) -> (C, H, W)


def _to_uint8_hwc(img: torch.Tensor) -> np.ndarray:
    """A (C, H, W) image, uint8 or float in [0, 1], as a (H, W[, 3]) uint8 array for pillow."""
    if img.dim() != 3 or img.shape[0] not in MODES:
        raise ValueError(f"expected a (C, H, W) image with 1 or 3 channels, got shape {tuple(img.shape)}")
    if img.is_floating_point():
        img = (img.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    arr = img.cpu().permute(1, 2, 0).numpy()  # (H, W, C)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def save_image(img: torch.Tensor, path: str | Path) -> Path:
    """Save a (C, H, W) image (uint8, or float in [0, 1]) as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_to_uint8_hwc(img)).save(path, format="PNG")
    return path


def show_images(imgs: torch.Tensor | Sequence[torch.Tensor], num_rows: int, num_cols: int,
                titles: Sequence[str] | None = None, scale: float = 1.5):
    """The book's show_images: a num_rows x num_cols matplotlib grid of (C, H, W) images
    (uint8, or float in [0, 1]); returns the figure (save it with core.plot.save_figure)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(num_rows, num_cols, figsize=(num_cols * scale, num_rows * scale), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(imgs):
            continue
        arr = _to_uint8_hwc(imgs[i])
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=255)
        if titles is not None and i < len(titles):
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig
