"""Your own images: `--data folder:PATH`, one sub-folder per class (the layout of torchvision's
ImageFolder and of the book's hotdog set):

    PATH/cat/001.jpg, PATH/cat/002.png, ...
    PATH/dog/xyz.jpeg, ...

PATH can also be a zip archive of such a folder (`folder:photos.zip`, holding cat/, dog/, ... or a
single photos/ folder of them). It is extracted once, with hub.extract's checks (no member outside
the folder, no links out) and size limits ($DIVEKIT_MAX_EXTRACT_BYTES, default 4 GiB, and
$DIVEKIT_MAX_EXTRACT_RATIO, default 200:1 past 16 MiB, so a zip bomb is refused before anything is
written), into the cache folder, keyed by the archive's SHA-1; macOS's __MACOSX/ folder is dropped.

Every image is decoded once with pillow, resized to size x size (the `size` data option, default
the run's --resize, else 64) and converted to RGB (or gray with `channels=1`); the uint8 tensor
(N, C, size, size) is cached as a safetensors file in the cache folder ($DIVEKIT_CACHE), keyed by
the folder's path, its file list with sizes and modification times, the size and the channels, so
a changed folder is decoded again. Files pillow cannot read (text files, corrupt images) and files
outside the class folders are skipped and reported in a warning, with their count; they are never
counted as examples.

A seeded random `valid` fraction (default 0.2; the `split_seed` data option, default 0, fixes it
across training seeds) becomes the validation split. Data options: `size`, `channels`, `valid`,
`split_seed`, e.g. `--data-arg size=96 --data-arg valid=0.1`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch

from ..core.errors import DataError
from . import hub
from .cache import decoded
from .images import UnreadableImage, read_image
from .loader import split
from .registry import register_source
from .vision import image_classification

PREFIX = "folder:"
DEFAULTS = {"batch_size": 32, "epochs": 10}  # the config defaults of folder datasets (few images, small batches)


def unpack_zip(archive: Path) -> Path:
    """The folder of class folders in the zip `archive`, extracted once (safely, within hub.extract's
    limits) into cache_dir()/folders/, keyed by the archive's SHA-1."""
    folders = hub.cache_dir() / "folders"
    dest = folders / f"zip-{archive.stem}-{hub.file_hash(archive, 'sha1')[:16]}"
    if not dest.is_dir():
        folders.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=folders))
        try:
            hub.extract(archive, staging)
            shutil.rmtree(staging / "__MACOSX", ignore_errors=True)  # macOS Finder's resource forks
            os.replace(staging, dest)  # the whole folder at once: dest exists only when complete
        except OSError as e:
            if not dest.is_dir():  # else another run extracted the same archive meanwhile
                raise DataError(f"--data folder:{archive}: cannot extract it into {dest} ({e}); set "
                                "DIVEKIT_CACHE to a writable folder") from e
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    entries = list(dest.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def image_root(path: str | Path) -> Path:
    """The folder of class folders that `folder:PATH` names: PATH itself, or the extracted zip archive PATH."""
    path = Path(path).expanduser()
    if not path.is_file():
        return path
    if not zipfile.is_zipfile(path):
        raise DataError(f"--data folder:{path} is a file but not a zip archive. Give a folder with one sub-folder of "
                        "images per class, or a zip archive of one")
    return unpack_zip(path)


def scan(root: Path) -> tuple[list[str], list[tuple[Path, int]], list[Path]]:
    """(class names, [(file, class index)], files outside any class folder), all sorted."""
    if not root.is_dir():
        raise DataError(f"--data folder:{root}: no such folder. Give a folder with one sub-folder of images per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if len(class_dirs) < 2:
        raise DataError(f"--data folder:{root} has {len(class_dirs)} sub-folder(s); image classification needs one "
                        "sub-folder per class and at least 2 classes (e.g. PATH/cats/*.jpg, PATH/dogs/*.jpg)")
    files = [(f, i) for i, d in enumerate(class_dirs) for f in sorted(d.rglob("*")) if f.is_file()]
    stray = sorted(p for p in root.iterdir() if p.is_file())
    return [d.name for d in class_dirs], files, stray


def cache_key(root: Path, files: list[tuple[Path, int]], size: int, channels: int,
              classes: list[str] | None = None) -> list:
    """What the decoded tensors of this folder depend on: its listing in its present state, the size
    and channels, and the class names (a label file, Kaggle's trainLabels.csv, can rename them)."""
    listing = [(str(f.relative_to(root)), label, f.stat().st_size, f.stat().st_mtime_ns) for f, label in files]
    return [str(root.resolve()), size, channels, listing] + ([classes] if classes else [])


def decode_folder(root: str | Path, size: int = 64, channels: int = 3,
                  cache: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """Images (N, C, size, size) uint8, labels (N,), class names, and the skipped files as
    "relative/path: reason" strings, from a folder of class folders or a zip archive of one.
    Decoded once, then read from the cache."""
    if channels not in (1, 3):
        raise DataError(f"--data-arg channels must be 1 (gray) or 3 (RGB), got {channels}")
    if size < 1:
        raise DataError(f"--data-arg size must be a positive image size, got {size}")
    root = image_root(root)
    classes, files, stray = scan(root)
    return decode_files(root, classes, files, [f"{p.name}: outside the class folders" for p in stray], size, channels,
                        cache, f"--data folder:{root}")


def decode_files(root: Path, classes: list[str], files: list[tuple[Path, int]], skipped: list[str], size: int,
                 channels: int, cache: bool, source: str) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """decode_folder's work on a listing of (file under `root`, class index): the images (N, C, size,
    size) uint8, labels (N,), `classes` and the skipped files, read from the cache when it holds this
    listing. `skipped` starts the list of skipped files; `source` names the data in errors."""

    def build():
        images, labels, skipped_all = [], [], list(skipped)
        for f, label in files:
            try:
                images.append(read_image(f, mode, size))
                labels.append(label)
            except UnreadableImage as e:
                skipped_all.append(f"{f.relative_to(root)}: {e.reason}")
        counts = torch.bincount(torch.tensor(labels, dtype=torch.long), minlength=len(classes))
        empty = [c for c, n in zip(classes, counts.tolist()) if n == 0]
        if empty:
            raise DataError(f"{source}: class(es) {empty} hold no readable image"
                            + (f" ({len(skipped_all)} files skipped: {skipped_all[:3]})" if skipped_all else ""))
        x = torch.stack(images)  # (N, C, size, size)
        return {"x": x, "y": torch.tensor(labels, dtype=torch.long)}, {"classes": classes, "skipped": skipped_all}

    mode = "RGB" if channels == 3 else "L"
    key = cache_key(root, files, size, channels, classes)
    tensors, header = decoded("folders", f"{root.resolve().name}-{size}px-{channels}ch", key, build,
                              lambda t, h: isinstance(h.get("classes"), list) and isinstance(h.get("skipped"), list),
                              cache)
    return tensors["x"], tensors["y"], header["classes"], header["skipped"]


def load_folder_dataset(name: str, *, batch_size: int, seed: int = 0, device=None, resize: int | None = None,
                        augment: str | None = None, data_dir=None, size: int | None = None, channels: int = 3,
                        valid: float = 0.2, split_seed: int = 0, **unknown):
    """The DataBundle of `folder:PATH`: training and validation splits of the folder's images."""
    if unknown:
        raise DataError(f"unknown data option(s) {sorted(unknown)} for {name}; folder datasets take size, channels, "
                        "valid and split_seed")
    if not 0 <= valid < 1:
        raise DataError(f"--data-arg valid is the validation fraction and must be in [0, 1), got {valid}")
    root = Path(name[len(PREFIX):]).expanduser()
    size = int(size or resize or 64)
    x, y, classes, skipped = decode_folder(root, size, int(channels))
    if skipped:
        shown = "\n  ".join(skipped[:20]) + (f"\n  ... and {len(skipped) - 20} more" if len(skipped) > 20 else "")
        warnings.warn(f"{root}: skipped {len(skipped)} file(s) that are not readable images (used {len(x)}):"
                      f"\n  {shown}", stacklevel=2)
    n_valid = max(1, round(valid * len(x))) if valid > 0 else 0
    if len(x) - n_valid < 1:
        raise DataError(f"--data folder:{root} has only {len(x)} readable image(s): too few to split off validation")
    train_idx, valid_idx = split(len(x), [1 - n_valid / len(x), n_valid / len(x)], seed=split_seed)
    bundle = image_classification(
        name, x[train_idx], y[train_idx], x[valid_idx], y[valid_idx], classes, batch_size=batch_size, seed=seed,
        device=device, resize=resize if resize and resize != size else None, augment=augment,
    )
    bundle.valid, bundle.test = (bundle.test if n_valid else None), None  # the held-out split is validation
    bundle.context["skipped_files"] = len(skipped)
    return bundle


@register_source("folder", defaults=DEFAULTS, tags=("image",), example="photos/")
def folder_dataset(path: str, **options):
    """Your own images, one sub-folder per class (`--data folder:PATH`)."""
    return load_folder_dataset(PREFIX + path, **options)
