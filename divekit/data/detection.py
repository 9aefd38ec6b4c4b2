"""Object-detection data in the banana-detection layout (book 14.6 / first edition 13.6).

The layout, as d2l's banana-detection.zip has it::

    ROOT/bananas_train/label.csv      img_name,label,xmin,ymin,xmax,ymax   (one row per object)
    ROOT/bananas_train/images/0.png   ...
    ROOT/bananas_val/label.csv
    ROOT/bananas_val/images/...

Boxes in label.csv are pixel corners; the loader divides them by the image width and height, so
labels are (N, M, 5) float rows (class, x1, y1, x2, y2) in [0, 1], padded with class -1 rows up to
the most objects in one image (the real bananas have exactly one per image, so M = 1). Images
are decoded once into one uint8 tensor (N, 3, H, W).

`banana-detection` is the real set (downloaded from d2l's data hub). `bananas-synthetic` is the
same layout written by `write_synthetic_detection`: banana sprites pasted at random positions,
scales and angles on varied backgrounds, generated once (seeded) into the cache folder. The
sprite is drawn procedurally (a shaded crescent with brown tips), or, with `sprite=photo`, cut out
of the book's `img/banana.jpg` from the data folder at run time.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..core.errors import ConfigError, DataError
from . import hub
from .loader import TensorLoader
from .registry import DataBundle, register_dataset
from .transforms import image_transform, to_float
from .transforms import resize as resize_fn

COLUMNS = ("img_name", "label", "xmin", "ymin", "xmax", "ymax")
SPLIT_FOLDERS = {"train": "bananas_train", "valid": "bananas_val"}
BANANA_CLASSES = ["banana"]


# -- reading ----------------------------------------------------------------------------------------

def read_detection_split(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, H, W) uint8 and labels (N, M, 5) float of one split folder (label.csv + images/).

    Rows of label.csv that name the same image are objects of one image. Raises DataError naming
    the file for a missing label.csv or column, a non-numeric value, a missing or unreadable
    image, or images of different sizes.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    csv_path = folder / "label.csv"
    if not csv_path.is_file():
        raise DataError(f"{csv_path} is missing: a detection split folder holds label.csv "
                        f"({','.join(COLUMNS)}) and images/")
    objects: dict[str, list[list[float]]] = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{csv_path} lacks the column(s) {', '.join(missing)}: its header must be "
                            f"{','.join(COLUMNS)} (found {','.join(reader.fieldnames or []) or 'nothing'})")
        for line, row in enumerate(reader, start=2):
            try:
                values = [float(row[c]) for c in COLUMNS[1:]]
            except (TypeError, ValueError):
                raise DataError(f"{csv_path}, line {line}: label and box must be numbers, got "
                                f"{[row.get(c) for c in COLUMNS[1:]]}") from None
            if values[3] <= values[1] or values[4] <= values[2]:
                raise DataError(f"{csv_path}, line {line}: the box needs xmin < xmax and ymin < ymax, got {values[1:]}")
            objects.setdefault(row["img_name"], []).append(values)
    if not objects:
        raise DataError(f"{csv_path} lists no objects")
    images, size = [], None
    for name in objects:
        path = folder / "images" / name
        try:
            with Image.open(path) as img:
                arr = np.array(img.convert("RGB"), dtype=np.uint8)
        except FileNotFoundError:
            raise DataError(f"{path} is missing: {csv_path} lists it") from None
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{path} is not a readable image ({e})") from None
        if size is None:
            size = arr.shape
        elif arr.shape != size:
            raise DataError(f"{path} is {arr.shape[1]}x{arr.shape[0]} but the first image of {folder} is "
                            f"{size[1]}x{size[0]}: all images of a split must have one size")
        images.append(torch.from_numpy(arr).permute(2, 0, 1))  # (H, W, 3) -> (3, H, W)
    h, w = size[0], size[1]
    max_objects = max(len(v) for v in objects.values())
    labels = torch.full((len(objects), max_objects, 5), -1.0)
    labels[..., 1:] = 0.0
    scale = torch.tensor([1.0, w, h, w, h])
    for i, rows in enumerate(objects.values()):
        labels[i, : len(rows)] = torch.tensor(rows) / scale
    return torch.stack(images), labels


def detection_bundle(name: str, root: str | Path, *, batch_size: int, seed: int, device, resize: int | None = None,
                     classes=BANANA_CLASSES) -> DataBundle:
    """A DataBundle (task "detection") over ROOT/bananas_train and ROOT/bananas_val."""
    x_train, y_train = read_detection_split(Path(root) / SPLIT_FOLDERS["train"])
    x_val, y_val = read_detection_split(Path(root) / SPLIT_FOLDERS["valid"])
    num_classes = int(max(y_train[..., 0].max(), y_val[..., 0].max())) + 1
    if len(classes) < num_classes:
        classes = [f"class {i}" for i in range(num_classes)]
    fns = [to_float] + ([resize_fn(resize)] if resize else [])
    transform = image_transform(*fns)
    h, w = (resize, resize) if resize else tuple(x_train.shape[-2:])
    if x_val.shape[-2:] != x_train.shape[-2:]:
        raise DataError(f"the images of {root}/{SPLIT_FOLDERS['valid']} are {tuple(x_val.shape[-2:])} but those of "
                        f"{SPLIT_FOLDERS['train']} are {tuple(x_train.shape[-2:])}")
    train = TensorLoader(x_train, y_train, batch_size=batch_size, shuffle=True, transform=transform, device=device,
                         seed=seed)
    valid = TensorLoader(x_val, y_val, batch_size=batch_size, transform=transform, device=device)
    context = {"num_classes": len(classes), "in_shape": (3, h, w)}
    return DataBundle(name, "detection", train, valid=valid, classes=list(classes), context=context,
                      transform=transform)


# -- writing a synthetic set -------------------------------------------------------------------------

def procedural_banana(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """An RGBA banana sprite (size, size, 4) uint8: a crescent (inside one circle, outside another
    shifted up), shaded yellow with brown tips, anti-aliased by 3x supersampling."""
    ss = 3
    n = size * ss
    coords = (np.arange(n) + 0.5) / n * 2.4 - 1.2  # [-1.2, 1.2]
    x, y = np.meshgrid(coords, coords)
    shift = rng.uniform(0.35, 0.55)  # how far the cut-out circle sits above: the banana's thickness
    r_in = rng.uniform(0.95, 1.1)
    inside = x ** 2 + y ** 2 < 1.0
    outside = x ** 2 + (y + shift) ** 2 > r_in ** 2
    mask = inside & outside & (y > -0.55)  # trims the thin horns
    thickness = np.sqrt(x ** 2 + y ** 2)  # 1 on the outer rim
    shade = 0.72 + 0.28 * np.clip((1.0 - np.abs(thickness - 0.85) / 0.2), 0, 1)
    base = np.array([rng.uniform(215, 250), rng.uniform(175, 215), rng.uniform(25, 70)])
    rgb = shade[..., None] * base
    tips = np.abs(x) > 0.8 * np.abs(x[mask]).max() if mask.any() else np.zeros_like(mask)
    rgb[tips] = np.array([95.0, 70.0, 30.0])
    rgba = np.concatenate([rgb, 255.0 * mask[..., None]], axis=-1)
    rgba = rgba.reshape(size, ss, size, ss, 4).mean(axis=(1, 3))  # supersampled -> anti-aliased edges
    return np.clip(rgba, 0, 255).astype(np.uint8)


def photo_bananas(data_dir=None) -> list[np.ndarray]:
    """RGBA sprites of the bananas in the book's img/banana.jpg (from the data folder): its
    strongly yellow connected regions, each cut out with its mask as alpha."""
    from PIL import Image
    from scipy import ndimage

    path = hub.data_dir(data_dir) / "img" / "banana.jpg"
    if not path.is_file():
        raise DataError(f"sprite=photo cuts bananas out of {path}, which is missing; put the book's img/banana.jpg "
                        "there or use sprite=procedural")
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        hsv = np.asarray(img.convert("HSV"), dtype=np.int32)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    yellow = (hue > 18) & (hue < 52) & (sat > 80) & (val > 150)  # hue 42 is yellow on PIL's 0-255 scale
    yellow = ndimage.binary_opening(yellow, iterations=1)  # drops the speckles of sunlit fur
    regions, count = ndimage.label(yellow)
    sprites = []
    for k, sl in enumerate(ndimage.find_objects(regions), start=1):
        mask = regions[sl] == k
        if mask.sum() < 300:
            continue
        alpha = (ndimage.binary_closing(mask, iterations=2) * 255).astype(np.uint8)
        sprites.append(np.dstack([rgb[sl], alpha]))
    if not sprites:
        raise DataError(f"found no banana in {path}: is it the book's img/banana.jpg?")
    return sprites


def _background(rng: np.random.Generator, size: int, photos: list):
    """A varied background (a PIL image): a crop of a photo (if any are given) or a smooth random
    colour field with a gradient, fine noise and a few random shapes."""
    from PIL import Image, ImageDraw, ImageFilter

    if photos and rng.random() < 0.7:
        photo = photos[rng.integers(len(photos))]
        w, h = photo.size
        side = int(rng.uniform(0.3, 1.0) * min(w, h))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        return photo.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    cells = int(rng.integers(2, 7))
    field = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
    bg = np.asarray(Image.fromarray(field).resize((size, size), Image.BICUBIC), dtype=np.float32)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    grad = math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None]
    bg = bg + rng.uniform(0, 50) * grad[..., None] + rng.normal(0, rng.uniform(2, 12), (size, size, 3))
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 7))):  # distractors: ellipses, rectangles, triangles
        x0, y0 = rng.uniform(-0.1, 1.0, 2) * size
        w, h = rng.uniform(0.05, 0.4, 2) * size
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=color)
        elif kind == 1:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=color)
        else:
            draw.polygon([(x0, y0 + h), (x0 + w / 2, y0), (x0 + w, y0 + h)], fill=color)
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))


def _overlaps(box, boxes, limit: float = 0.1) -> bool:
    for b in boxes:
        iw = max(0, min(box[2], b[2]) - max(box[0], b[0]))
        ih = max(0, min(box[3], b[3]) - max(box[1], b[1]))
        inter = iw * ih
        union = (box[2] - box[0]) * (box[3] - box[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        if inter / union > limit:
            return True
    return False


def _paste(canvas, sprite_rgba: np.ndarray, rng: np.random.Generator, size: int, placed: list) -> list[int] | None:
    """Paste a randomly scaled, rotated, flipped sprite where it does not overlap `placed`;
    returns its box (xmin, ymin, xmax, ymax) in pixels from the pasted alpha, or None."""
    from PIL import Image

    sprite = Image.fromarray(sprite_rgba, "RGBA")
    if rng.random() < 0.5:
        sprite = sprite.transpose(Image.FLIP_LEFT_RIGHT)
    sprite = sprite.rotate(float(rng.uniform(-180, 180)), resample=Image.BILINEAR, expand=True)
    bbox = sprite.getchannel("A").point(lambda a: 255 if a > 127 else 0).getbbox()
    if bbox is None:
        return None
    sprite = sprite.crop(bbox)
    longest = rng.uniform(0.15, 0.45) * size  # the object's longer side, as a fraction of the image
    scale = longest / max(sprite.size)
    w, h = max(2, round(sprite.size[0] * scale)), max(2, round(sprite.size[1] * scale))
    sprite = sprite.resize((w, h), Image.BILINEAR)
    for _ in range(20):
        left, top = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
        if not _overlaps((left, top, left + w, top + h), placed):
            break
    else:
        return None
    canvas.paste(sprite, (left, top), sprite)
    inner = sprite.getchannel("A").point(lambda a: 255 if a > 127 else 0).getbbox()
    if inner is None:
        return None
    return [left + inner[0], top + inner[1], left + inner[2], top + inner[3]]


def write_synthetic_detection(root: str | Path, *, num_train: int = 1000, num_val: int = 100, image_size: int = 256,
                              max_objects: int = 1, sprite: str = "procedural", seed: int = 0,
                              data_dir=None) -> Path:
    """Write a detection set in the banana-detection layout under `root` (see the module doc).

    Every image gets 1 to `max_objects` bananas (exactly one with the default, as the real set),
    label 0, each on its own row of label.csv. `sprite`: "procedural" (no files needed) or "photo"
    (bananas cut from the data folder's img/banana.jpg, backgrounds partly cropped from the other
    img/*.jpg photos there). The same arguments always write the same files.
    """
    from PIL import Image

    if sprite not in ("procedural", "photo"):
        raise ConfigError(f"sprite must be procedural or photo, got {sprite!r}")
    if num_train < 1 or num_val < 1 or max_objects < 1:
        raise ConfigError(f"num_train, num_val and max_objects must be at least 1, got {num_train}, {num_val}, "
                          f"{max_objects}")
    if image_size < 32:
        raise ConfigError(f"image_size must be at least 32 pixels, got {image_size}")
    rng = np.random.default_rng(seed)
    photos, sprites = [], None
    if sprite == "photo":
        sprites = photo_bananas(data_dir)
        img_dir = hub.data_dir(data_dir) / "img"
        for p in sorted(img_dir.glob("*.jpg")):
            if p.name != "banana.jpg":
                with Image.open(p) as im:
                    photos.append(im.convert("RGB"))
    sprite_size = min(128, max(32, image_size // 2))  # drawn at about the largest size it is pasted at
    root = Path(root)
    for split, count in (("train", num_train), ("valid", num_val)):
        folder = root / SPLIT_FOLDERS[split]
        (folder / "images").mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(count):
            canvas = _background(rng, image_size, photos).convert("RGB")
            placed: list[list[int]] = []
            for _ in range(int(rng.integers(1, max_objects + 1))):
                art = sprites[rng.integers(len(sprites))] if sprites else procedural_banana(rng, sprite_size)
                box = _paste(canvas, art, rng, image_size, placed)
                if box is not None:
                    placed.append(box)
            if not placed:  # every image holds at least one object
                placed.append(_paste(canvas, procedural_banana(rng, sprite_size), rng, image_size, []))
            name = f"{i}.png"
            canvas.save(folder / "images" / name)
            rows += [[name, 0, *box] for box in placed]
        with open(folder / "label.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
    return root


def synthetic_root(*, num_train: int, num_val: int, image_size: int, max_objects: int, sprite: str, seed: int,
                   data_dir=None) -> Path:
    """The cached synthetic set for these arguments, written (atomically) on first use."""
    name = f"{sprite}-{num_train}-{num_val}-{image_size}px-{max_objects}obj-seed{seed}"
    root = hub.cache_dir() / "bananas-synthetic" / name
    if (root / SPLIT_FOLDERS["valid"] / "label.csv").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root.parent))
    tmp.chmod(0o755)  # mkdtemp's folders are private; the cache is not
    try:
        write_synthetic_detection(tmp, num_train=num_train, num_val=num_val, image_size=image_size,
                                  max_objects=max_objects, sprite=sprite, seed=seed, data_dir=data_dir)
        try:
            os.replace(tmp, root)
        except OSError:  # another process wrote it first
            if not (root / SPLIT_FOLDERS["valid"] / "label.csv").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


@register_dataset("banana-detection", defaults={"batch_size": 32, "epochs": 20}, tags=("image", "detection"))
def banana_detection(*, batch_size, seed, device, data_dir=None, resize=None):
    """d2l's banana detection set: 1,000 + 100 256x256 images, one banana each (downloaded on first use)."""
    root = hub.fetch_extracted("banana-detection", data_dir)
    return detection_bundle("banana-detection", root, batch_size=batch_size, seed=seed, device=device, resize=resize)


@register_dataset("bananas-synthetic", defaults={"batch_size": 32, "epochs": 20}, tags=("image", "detection"))
def bananas_synthetic(*, batch_size, seed, device, data_dir=None, resize=None, num_train=1000, num_val=100,
                      image_size=256, max_objects=1, sprite="procedural", data_seed=0):
    """Generated bananas in the banana-detection layout (no download): pasted at random places, sizes, angles."""
    root = synthetic_root(num_train=int(num_train), num_val=int(num_val), image_size=int(image_size),
                          max_objects=int(max_objects), sprite=str(sprite), seed=int(data_seed), data_dir=data_dir)
    return detection_bundle("bananas-synthetic", root, batch_size=batch_size, seed=seed, device=device, resize=resize)
