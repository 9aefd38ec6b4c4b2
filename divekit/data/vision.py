"""Image classification sets: Fashion-MNIST and MNIST from their idx files, scikit-learn's digits.

Registers the datasets `digits` (embedded: no network, no cache), `fashion-mnist` and `mnist`.

The idx format (LeCun's MNIST files): a 4-byte magic number (two zero bytes, a type code 0x08 for
uint8, the number of dimensions), one big-endian int32 per dimension, then the raw values.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..core.errors import DataError
from . import hub
from .cache import decoded, stamp
from .loader import TensorLoader, split, stratified_subset
from .registry import DataBundle, register_dataset
from .transforms import image_transform, random_crop, random_hflip, random_resized_crop, to_float
from .transforms import resize as resize_fn

FASHION_MNIST_CLASSES = [
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
]
MNIST_CLASSES = [str(i) for i in range(10)]


def read_idx(path: str | Path, ndim: int) -> torch.Tensor:
    """Parse a (gzipped) idx file of uint8 values with `ndim` dimensions into a tensor.

    Raises DataError naming the file when it is truncated, not gzip, or its header disagrees
    with its length.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"{path} is corrupt or truncated ({e}). Delete it and run `divekit data download` again."
        ) from None
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path} is too short ({len(raw)} bytes) to be an idx file. Delete it and download it again.")
    zero, dtype, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08 or dims != ndim:
        raise DataError(
            f"{path} has magic number {raw[:4].hex()}, expected 000008{ndim:02x} (uint8, {ndim} dimensions): "
            "it is not the idx file it should be. Delete it and download it again."
        )
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    expected = 4 + 4 * ndim + math.prod(shape)  # exact integers: np.prod could overflow and wrap
    if len(raw) != expected:
        raise DataError(
            f"{path} holds {len(raw)} bytes but its header {shape} promises {expected}: "
            "the file is truncated or corrupt. Delete it and download it again."
        )
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy())


def read_idx_pair(images: Path, labels: Path, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, H, W) uint8 and labels (N,) int64 from a pair of idx files, cross-checked."""
    x, y = read_idx(images, 3), read_idx(labels, 1)
    if len(y) == 0:
        raise DataError(f"{labels} holds no examples: it is not a real dataset file. Delete it and download it again.")
    if len(x) != len(y):
        raise DataError(f"{images.name} has {len(x)} images but {labels.name} has {len(y)} labels")
    if int(y.max()) >= num_classes:
        raise DataError(f"{labels} has label {int(y.max())}, expected 0..{num_classes - 1}")
    return x.unsqueeze(1), y.long()


SPLITS = ("x_train", "y_train", "x_test", "y_test")


@lru_cache(maxsize=4)
def load_idx_set(paths: tuple[Path, ...], cache: bool = True) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test) from the four idx files in the hub's order:
    train images, train labels, test images, test labels.

    Decoding the gzipped files takes 0.6-1 s; the tensors are then kept as one safetensors file in
    the cache (divekit.data.cache, ~55 MB for Fashion-MNIST) and read back in a few tens of ms by
    later runs. A changed source file gets a new cache entry; an unreadable one is rebuilt. Also
    cached per process."""

    def build():
        tr_x, tr_y, te_x, te_y = paths
        return dict(zip(SPLITS, (*read_idx_pair(tr_x, tr_y), *read_idx_pair(te_x, te_y)))), {
            "sources": [str(p) for p in paths]}

    def valid(t, header):
        return all(t[x].dtype == torch.uint8 and t[x].ndim == 4 and t[y].dtype == torch.int64
                   and t[y].shape == t[x].shape[:1] for x, y in (SPLITS[:2], SPLITS[2:]))

    key = [stamp(p) for p in paths] if cache else None
    tensors, _ = decoded("decoded", Path(paths[0]).parent.parent.name, key, build, valid, cache)
    return tuple(tensors[k] for k in SPLITS)


def _digits_file() -> Path:
    """scikit-learn's bundled digits.csv.gz, found without importing scikit-learn (3 s of imports)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded digits dataset comes with scikit-learn: `pip install scikit-learn`")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DataError(f"scikit-learn is installed but has no {path}: reinstall scikit-learn")
    return path


@lru_cache(maxsize=1)
def load_digits_tensors(test_fraction: float = 0.2) -> tuple[torch.Tensor, ...]:
    """scikit-learn's bundled 8x8 digits as uint8 (N, 1, 8, 8) images, with a fixed 80/20 split.

    The file is the one `sklearn.datasets.load_digits` reads: 1,797 rows of 64 pixel values in
    0..16 and the label. The split does not depend on the training seed, so test accuracy is
    comparable across runs.
    """
    table = np.loadtxt(_digits_file(), delimiter=",", dtype=np.float32)  # (1797, 65)
    pixels, labels = table[:, :64], table[:, 64]
    x = torch.from_numpy(np.rint(pixels * (255 / 16)).astype(np.uint8)).reshape(-1, 1, 8, 8)  # 0..16 -> 0..255
    y = torch.from_numpy(labels.astype(np.int64))
    train, test = split(len(x), [1 - test_fraction, test_fraction], seed=0)
    return x[train], y[train], x[test], y[test]


def image_classification(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    classes: list[str],
    *,
    batch_size: int,
    seed: int,
    device,
    resize: int | None = None,
    augment: str | None = None,
) -> DataBundle:
    """A bundle over uint8 images (N, C, H, W): converted to float in [0, 1] (and resized) per
    batch; the training split is augmented per batch when `augment` is given."""
    fns = [to_float] + ([resize_fn(resize)] if resize else [])
    transform = image_transform(*fns)
    h, w = (resize, resize) if resize else tuple(x_train.shape[-2:])
    train_fns = list(fns)
    if augment in ("crop", "flip-crop"):
        train_fns.append(random_crop((h, w), padding=max(1, h // 14)))
    if augment == "resized-crop-flip":
        # book 14.13: Resize(40) then RandomResizedCrop(32, scale=(0.64, 1), ratio=(1, 1)) on 32x32
        # images, i.e. a square of 64-100% of the image's area resized back to its side; cropped from
        # the original directly, which saves the first interpolation
        train_fns.append(random_resized_crop((h, w), scale=(0.64, 1.0), ratio=(1.0, 1.0)))
    if augment in ("flip", "flip-crop", "resized-crop-flip"):
        train_fns.append(random_hflip())
    train = TensorLoader(x_train, y_train, batch_size=batch_size, shuffle=True, transform=image_transform(*train_fns),
                         device=device, seed=seed)
    test = TensorLoader(x_test, y_test, batch_size=batch_size, transform=transform, device=device)
    context = {"num_classes": len(classes), "in_shape": (x_train.shape[1], h, w)}
    return DataBundle(name, "classification", train, test, classes=list(classes), context=context, transform=transform)


@register_dataset("digits", defaults={"batch_size": 64, "epochs": 20}, tags=("image", "embedded"))
def digits(*, batch_size, seed, device, resize=None, augment=None):
    """scikit-learn's 8x8 handwritten digits (1,797 images), bundled: works with no network or cache."""
    return image_classification(
        "digits", *load_digits_tensors(), MNIST_CLASSES, batch_size=batch_size, seed=seed, device=device, resize=resize,
        augment=augment,
    )


def _register_idx_dataset(name: str, classes: list[str], doc: str) -> None:
    """Register an idx-format dataset (MNIST's layout: 60,000 + 10,000 28x28 grayscale images).

    Its `num_train` data option keeps that many training examples, balanced over the classes and
    drawn with `subset_seed` (few-label runs)."""

    def factory(*, batch_size, seed, device, data_dir=None, resize=None, augment=None, num_train=None, subset_seed=0):
        x_train, y_train, x_test, y_test = load_idx_set(tuple(hub.fetch(name, data_dir)))
        if num_train is not None:
            keep = stratified_subset(y_train, int(num_train), subset_seed)
            x_train, y_train = x_train[keep], y_train[keep]
        return image_classification(name, x_train, y_train, x_test, y_test, classes, batch_size=batch_size, seed=seed,
                                    device=device, resize=resize, augment=augment)

    factory.__doc__ = doc
    register_dataset(name, defaults={"batch_size": 256, "epochs": 10}, tags=("image",))(factory)


_register_idx_dataset("fashion-mnist", FASHION_MNIST_CLASSES,
                      "Zalando's Fashion-MNIST: 60,000 + 10,000 28x28 grayscale images of 10 kinds of clothing.")
_register_idx_dataset("mnist", MNIST_CLASSES, "LeCun's MNIST handwritten digits: 60,000 + 10,000 28x28 grayscale images.")
