"""Semantic segmentation data (book 14.9): Pascal VOC2012 and a procedural set of shapes.

A segmentation example is an image and a label map of the same size holding one class index per
pixel. Pascal VOC2012 stores the label maps as palette PNGs (SegmentationClass/*.png) whose
palette index *is* the class: 0 background, 1-20 the object classes, and 255 on the thin border
drawn around every object (and on regions the annotators left undecided). The border is not a
class: it is the ignore index, left out of the loss and of every metric. The book reads the PNGs
as RGB and maps each color back to its class through the VOC colormap (`voc_label_indices`);
divekit reads the palette index directly when the file is a palette PNG (the same numbers,
checked in the tests) and uses the colormap for RGB label files.

Images differ in size, so a split is held as one uint8 canvas per tensor: every image in the
top-left corner of an (N, 3, H_max, W_max) tensor, its label map in (N, H_max, W_max) filled with
the ignore index, and the true sizes in (N, 2). A batch is cut from them by `random_crop_pairs`:
one random crop_h x crop_w window per image, inside that image, the same window for the image
and its labels (the book's `voc_rand_crop`, on a whole batch at once). Images smaller than the
crop are dropped when loading, as the book does (1,114 of 1,464 training and 1,078 of 1,449
validation images at 320 x 480). The held-out split is cropped too, with a generator that is
reseeded for every evaluation, so it sees the same windows each time.

`shapes-segmentation` generates its examples in memory in a fraction of a second: circles,
squares and triangles of random colors and sizes on a textured, noisy background, each pixel
labelled with the shape covering it (later shapes occlude earlier ones). The class of a pixel
depends on the shape of the region it belongs to, not on its color, so a model has to look at a
neighborhood to label it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..core.errors import ConfigError, DataError
from ..ops.metrics import IGNORE_INDEX
from . import hub
from .images import UnreadableImage, read_image
from .loader import TensorLoader
from .registry import DataBundle, register_dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the book's normalize_image: torchvision's ImageNet statistics
IMAGENET_STD = (0.229, 0.224, 0.225)

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train", "tv/monitor",
]
VOC_COLORMAP = [
    [0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128], [0, 128, 128],
    [128, 128, 128], [64, 0, 0], [192, 0, 0], [64, 128, 0], [192, 128, 0], [64, 0, 128], [192, 0, 128],
    [64, 128, 128], [192, 128, 128], [0, 64, 0], [128, 64, 0], [0, 192, 0], [128, 192, 0], [0, 64, 128],
]
VOC_BORDER_COLOR = [224, 224, 192]  # palette entry 255 of the VOC label PNGs

SHAPE_CLASSES = ["background", "circle", "square", "triangle"]


def voc_palette() -> list[int]:
    """The 768-entry PIL palette of VOC's label PNGs: the 21 class colors, black, the border color at 255."""
    palette = [0] * 768
    for i, rgb in enumerate(VOC_COLORMAP):
        palette[3 * i:3 * i + 3] = rgb
    palette[3 * IGNORE_INDEX:3 * IGNORE_INDEX + 3] = VOC_BORDER_COLOR
    return palette


def voc_colormap2label() -> torch.Tensor:
    """The book's lookup table from an RGB color to its VOC class index, indexed by (R * 256 + G) * 256 + B.

    Colors that are not one of the 21 class colors (the border, anything else) map to the ignore
    index; the book's table maps them to 0, background.
    """
    colormap2label = torch.full((256 ** 3,), IGNORE_INDEX, dtype=torch.uint8)
    for i, (r, g, b) in enumerate(VOC_COLORMAP):
        colormap2label[(r * 256 + g) * 256 + b] = i
    return colormap2label


def voc_label_indices(colormap: torch.Tensor, colormap2label: torch.Tensor) -> torch.Tensor:
    """Class indices (H, W) of an RGB label image (3, H, W), through `voc_colormap2label()` (book 14.9.2)."""
    colormap = colormap.long()
    idx = (colormap[0] * 256 + colormap[1]) * 256 + colormap[2]  # (H, W)
    return colormap2label[idx]


def read_label_png(path: Path, colormap2label: torch.Tensor | None = None) -> torch.Tensor:
    """A label map (H, W) uint8 from a PNG: a palette PNG's indices as they are, an RGB one through the colormap."""
    with Image.open(path) as img:
        if img.mode == "P":
            return torch.from_numpy(np.array(img, dtype=np.uint8))
        rgb = torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)  # (3, H, W)
    return voc_label_indices(rgb, voc_colormap2label() if colormap2label is None else colormap2label)


def read_voc_images(voc_dir: str | Path, is_train: bool = True) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
    """The images (3, H, W) and label maps (H, W), both uint8, of VOC's train or val segmentation split
    (book 14.9.1), with their names, in the order of ImageSets/Segmentation/{train,val}.txt."""
    voc_dir = Path(voc_dir)
    listing = voc_dir / "ImageSets" / "Segmentation" / ("train.txt" if is_train else "val.txt")
    if not listing.is_file():
        raise DataError(f"{listing} is missing: {voc_dir} is not a VOC2012 folder (it needs JPEGImages, "
                        "SegmentationClass and ImageSets/Segmentation); delete it and download the dataset again")
    names = [n.strip() for n in listing.read_text().split() if n.strip()]
    colormap2label = voc_colormap2label()
    features, labels = [], []
    for name in names:
        image_path = voc_dir / "JPEGImages" / f"{name}.jpg"
        label_path = voc_dir / "SegmentationClass" / f"{name}.png"
        try:
            image, label = read_image(image_path), read_label_png(label_path, colormap2label)
        except FileNotFoundError as e:
            raise DataError(f"{listing} names {name!r} but {e.filename} is missing; the VOC folder is incomplete, "
                            "delete it and download the dataset again") from None
        except (UnreadableImage, UnidentifiedImageError, OSError) as e:
            raise DataError(f"cannot read {name!r} of {listing} ({e}); the VOC folder is incomplete or corrupt, "
                            "delete it and download the dataset again") from None
        if image.shape[1:] != label.shape:
            raise DataError(f"{image_path} is {tuple(image.shape[1:])} but its labels {label_path} are "
                            f"{tuple(label.shape)}; they must be the same size")
        features.append(image)
        labels.append(label)
    return features, labels, names


def to_canvas(images: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Stack images of different sizes: (N, 3, H_max, W_max) uint8 images in the top-left corner,
    (N, H_max, W_max) uint8 labels padded with the ignore index, and their (N, 2) int64 sizes (H, W)."""
    sizes = torch.tensor([tuple(x.shape[1:]) for x in images], dtype=torch.int64).reshape(-1, 2)
    h, w = (int(sizes[:, 0].max()), int(sizes[:, 1].max())) if len(images) else (1, 1)
    X = torch.zeros(len(images), 3, h, w, dtype=torch.uint8)
    Y = torch.full((len(images), h, w), IGNORE_INDEX, dtype=torch.uint8)
    for i, (x, y) in enumerate(zip(images, labels)):
        X[i, :, :x.shape[1], :x.shape[2]] = x
        Y[i, :y.shape[0], :y.shape[1]] = y
    return X, Y, sizes


def random_crop_pairs(X: torch.Tensor, Y: torch.Tensor, sizes: torch.Tensor, crop: tuple[int, int],
                      g: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One random crop_h x crop_w window per example, the same for the image X (N, C, H, W) and its
    labels Y (N, H, W), placed inside the example's own size (N, 2) (book: voc_rand_crop)."""
    n, ch, cw = X.shape[0], crop[0], crop[1]
    if bool((sizes[:, 0] < ch).any() or (sizes[:, 1] < cw).any()):
        raise ValueError(f"an image is smaller than the {ch}x{cw} crop")
    span = (sizes - torch.tensor([ch, cw], device=sizes.device) + 1).cpu()  # (N, 2): the possible corners
    corner = (torch.rand(n, 2, generator=g) * span).long().clamp_max_(span - 1).to(X.device)  # (N, 2)
    rows = (corner[:, :1] + torch.arange(ch, device=X.device)).view(n, ch, 1)  # (N, ch, 1)
    cols = (corner[:, 1:] + torch.arange(cw, device=X.device)).view(n, 1, cw)  # (N, 1, cw)
    batch = torch.arange(n, device=X.device).view(n, 1, 1)
    labels = Y[batch, rows, cols]  # (N, ch, cw)
    images = X.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (N, ch, cw, C) -> (N, C, ch, cw)
    return images, labels


def segmentation_transform(crop: tuple[int, int] | None, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """A loader transform: (images uint8, labels uint8, sizes) -> (normalized float images, int64 labels),
    cropped to `crop` (None: the examples are all one size and used whole)."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def fn(batch, g):
        X, Y, sizes = batch
        if crop is not None:
            X, Y = random_crop_pairs(X, Y, sizes, crop, g)
        X = (X.float().div_(255) - mean_t.to(X.device)) / std_t.to(X.device)
        return X, Y.long()

    return fn


def normalize_image(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 (3, H, W) or (N, 3, H, W) -> float normalized by the per-channel mean and std."""
    shape = (3, 1, 1) if x.dim() == 3 else (1, 3, 1, 1)
    return (x.float() / 255 - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)


def segmentation_bundle(name: str, train: tuple[torch.Tensor, ...], valid: tuple[torch.Tensor, ...],
                        classes: list[str], palette: list[list[int]], *, crop: tuple[int, int] | None,
                        batch_size: int, seed: int, device) -> DataBundle:
    """A DataBundle for the "segmentation" task over (images, labels, sizes) canvases per split."""
    transform = segmentation_transform(crop)
    h, w = crop if crop is not None else tuple(train[0].shape[-2:])
    train_loader = TensorLoader(*train, batch_size=batch_size, shuffle=True, transform=transform, device=device,
                                seed=seed)
    valid_loader = TensorLoader(*valid, batch_size=batch_size, transform=transform, device=device, seed=seed)
    context = {"num_classes": len(classes), "in_shape": (3, h, w), "ignore_index": IGNORE_INDEX,
               "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "palette": [list(c) for c in palette]}
    return DataBundle(name, "segmentation", train_loader, valid=valid_loader, classes=list(classes), context=context)


def _crop_pair(crop_size) -> tuple[int, int]:
    pair = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ConfigError(f"crop_size must be a positive int or a pair (height, width), e.g. --data-arg "
                          f"crop_size=320,480; got {crop_size!r}")
    return pair


def filter_by_size(images, labels, crop: tuple[int, int]):
    """Keep the examples at least as large as the crop (the book's VOCSegDataset.filter)."""
    keep = [i for i, x in enumerate(images) if x.shape[1] >= crop[0] and x.shape[2] >= crop[1]]
    return [images[i] for i in keep], [labels[i] for i in keep]


@register_dataset("voc2012", defaults={"batch_size": 32, "epochs": 5}, tags=("image", "segmentation"))
def voc2012(*, batch_size, seed, device, data_dir=None, crop_size=(320, 480), max_examples=None):
    """Pascal VOC2012 semantic segmentation: 1,464 train and 1,449 val images, 21 classes (book 14.9).

    Random crop_size crops (default the book's 320 x 480) of image and labels together; images
    smaller than the crop are dropped. `max_examples` keeps the first images of each split."""
    crop = _crop_pair(crop_size)
    voc_dir = hub.fetch_extracted("voc2012", data_dir) / "VOC2012"
    splits = []
    for is_train in (True, False):
        images, labels, _ = read_voc_images(voc_dir, is_train)
        if max_examples is not None:
            images, labels = images[:max_examples], labels[:max_examples]
        images, labels = filter_by_size(images, labels, crop)
        if not images:
            raise DataError(f"no {'train' if is_train else 'val'} image of {voc_dir} is at least {crop[0]}x{crop[1]}; "
                            "use a smaller --data-arg crop_size")
        splits.append(to_canvas(images, labels))
    return segmentation_bundle("voc2012", splits[0], splits[1], VOC_CLASSES, VOC_COLORMAP, crop=crop,
                               batch_size=batch_size, seed=seed, device=device)


def _shape_masks(kind: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, r: torch.Tensor, size: int) -> torch.Tensor:
    """(N, H, W) masks: per example a circle (kind 1), square (2) or triangle (3) of radius r centered at (cy, cx)."""
    yy = torch.arange(size, dtype=torch.float32).view(1, -1, 1)
    xx = torch.arange(size, dtype=torch.float32).view(1, 1, -1)
    cy, cx, r = cy.view(-1, 1, 1), cx.view(-1, 1, 1), r.view(-1, 1, 1)
    dy, dx = yy - cy, xx - cx  # (N, H, W) after broadcasting
    circle = dy ** 2 + dx ** 2 <= r ** 2
    half = 0.85 * r  # the square of about the circle's area
    square = (dy.abs() <= half) & (dx.abs() <= half)
    t = (dy + r) / (1.8 * r)  # 0 at the apex, 1 at the base
    triangle = (t >= 0) & (t <= 1) & (dx.abs() <= 1.1 * r * t)
    kind = kind.view(-1, 1, 1)
    return torch.where(kind == 1, circle, torch.where(kind == 2, square, triangle))


# base colors of the shapes with class_colors: red circles, green squares, blue triangles
SHAPE_COLORS = torch.tensor([[0.5, 0.5, 0.5], [0.85, 0.2, 0.2], [0.2, 0.75, 0.2], [0.2, 0.3, 0.9]])


def make_shapes(n: int, size: int = 96, max_shapes: int = 3, noise: float = 0.08, class_colors: bool = True,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` procedural segmentation examples: uint8 images (n, 3, size, size) and labels (n, size, size).

    The background is a smooth random color plaid (the sum of a row and a column profile, each
    random noise at 1/8 resolution upsampled); on it 1 to `max_shapes` circles, squares and triangles (classes 1, 2, 3) of random
    colors, radii between 10% and 25% of the side, and centers anywhere in the image (shapes may be
    cut by the border). Every pixel gets gray Gaussian noise of std `noise`.

    With `class_colors` each class has a base color (red circles, green squares, blue triangles)
    jittered by up to 0.15 per channel, so color tells a lot but the textured background holds the
    same colors: a model learns this in minutes. Without, colors are uniformly random and only the
    shape tells the class, which a network trained from scratch needs far longer to learn.
    """
    g = generator
    count = torch.randint(1, max_shapes + 1, (n,), generator=g)
    kinds = torch.randint(1, len(SHAPE_CLASSES), (n, max_shapes), generator=g)
    radii = size * (0.10 + 0.15 * torch.rand(n, max_shapes, generator=g))
    centers = size * torch.rand(n, max_shapes, 2, generator=g)
    colors = torch.rand(n, max_shapes + 1, 3, generator=g)  # entry 0 unused: the background is texture
    if class_colors:
        base = SHAPE_COLORS[torch.cat([torch.zeros(n, 1, dtype=torch.int64), kinds], 1)]  # (n, max_shapes + 1, 3)
        colors = (base + 0.3 * (colors - 0.5)).clamp(0, 1)
    slots = torch.zeros(n, size, size, dtype=torch.int64)  # 0 background, k + 1 shape k (later ones on top)
    for k in range(max_shapes):
        mask = _shape_masks(kinds[:, k], centers[:, k, 0], centers[:, k, 1], radii[:, k], size)
        slots.masked_fill_(mask & (k < count).view(-1, 1, 1), k + 1)
    labels = torch.cat([torch.zeros(n, 1, dtype=torch.int64), kinds], 1).gather(1, slots.view(n, -1))
    fill = colors.gather(1, slots.view(n, -1, 1).expand(-1, -1, 3))  # (n, size * size, 3): each pixel's shape color
    fill = fill.view(n, size, size, 3).permute(0, 3, 1, 2)  # (n, 3, size, size)
    low = max(2, size // 8)
    rows, cols = (F.interpolate(torch.rand(n, 3, low, generator=g), size=size, mode="linear", align_corners=False)
                  for _ in range(2))  # (n, 3, size): smooth random color profiles down and across
    texture = 0.2 + 0.3 * (rows.unsqueeze(-1) + cols.unsqueeze(-2))  # (n, 3, size, size), a random plaid
    images = torch.where((slots > 0).unsqueeze(1), fill, texture)
    grain = torch.randn(n, 1, size, size, generator=g)  # the same noise in every channel
    images.add_(grain, alpha=noise).clamp_(0, 1).mul_(255).round_()
    return images.to(torch.uint8), labels.view(n, size, size).to(torch.uint8)


@register_dataset("shapes-segmentation", defaults={"batch_size": 32, "epochs": 10}, tags=("image", "segmentation"))
def shapes_segmentation(*, batch_size, seed, device, size=96, num_train=2000, num_valid=500, max_shapes=3,
                        noise=0.08, class_colors=True):
    """Procedural shapes (circle, square, triangle) on textured backgrounds, a label per pixel; made in memory.

    The examples depend only on the options (a fixed generator seed), not on the training seed;
    class_colors=false draws every shape in a random color, so only its shape tells its class."""
    for option, value, least in (("size", size, 32), ("num_train", num_train, 1), ("num_valid", num_valid, 1),
                                 ("max_shapes", max_shapes, 1)):
        if not isinstance(value, int) or value < least:
            raise ConfigError(f"--data-arg {option} must be an integer >= {least}, got {value!r}")
    g = torch.Generator().manual_seed(20240)
    X, Y = make_shapes(num_train + num_valid, size, max_shapes, noise, bool(class_colors), generator=g)
    sizes = torch.tensor([size, size]).expand(len(X), 2)
    train = (X[:num_train], Y[:num_train], sizes[:num_train])
    valid = (X[num_train:], Y[num_train:], sizes[num_train:])
    return segmentation_bundle("shapes-segmentation", train, valid, SHAPE_CLASSES, VOC_COLORMAP[:len(SHAPE_CLASSES)],
                               crop=None, batch_size=batch_size, seed=seed, device=device)
