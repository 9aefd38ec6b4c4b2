"""The book's image-augmentation figures (book 14.1): one image, eight augmented samples per method.

`divekit demo augment` reads img/cat1.jpg from the data folder and saves one 2 x 4 grid per
augmentation, made with the batched transforms of `divekit.data.transforms` (the book uses
torchvision's; these draw the same random quantities, per image of a batch).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.errors import DataError
from ..data import hub
from ..data import transforms as T
from ..data.images import read_image, show_images


def book_augmentations() -> dict[str, T.ImageFn]:
    """The augmentations book 14.1 shows, by name, with the book's settings."""
    shape_aug = T.random_resized_crop((200, 200), scale=(0.1, 1), ratio=(0.5, 2))
    color_aug = T.color_jitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5)
    return {
        "hflip": T.random_hflip(),
        "vflip": T.random_vflip(),
        "resized-crop": shape_aug,
        "brightness": T.color_jitter(brightness=0.5),
        "hue": T.color_jitter(hue=0.5),
        "color": color_aug,
        "combined": T.compose(T.random_hflip(), color_aug, shape_aug),
    }


def augmentation_grids(image: str | Path, out: str | Path, seed: int = 0, num_rows: int = 2,
                       num_cols: int = 4) -> dict[str, str]:
    """Apply each book augmentation to num_rows * num_cols copies of `image` (one batch) and save
    each grid as `out/augment-NAME.png`; returns {name: path}."""
    from ..core.plot import save_figure  # deferred: core.plot loads matplotlib, only when a plot is drawn

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x = T.to_float(read_image(image)).unsqueeze(0).expand(num_rows * num_cols, -1, -1, -1)  # (N, 3, H, W)
    g = torch.Generator().manual_seed(seed)
    paths = {}
    for name, aug in book_augmentations().items():
        fig = show_images(aug(x, g), num_rows, num_cols)
        paths[name] = str(save_figure(fig, out / f"augment-{name}.png"))
    return paths


def book_image(name: str = "cat1.jpg", data_dir: str | None = None) -> Path:
    """The path of one of the book's pictures in the data folder's img/ (DataError if absent)."""
    path = hub.data_dir(data_dir) / "img" / name
    if not path.is_file():
        raise DataError(f"the book's picture {path} is missing: put the d2l img/ folder (cat1.jpg ...) in the data "
                        "folder, or set DIVEKIT_DATA to a data folder that has it")
    return path
