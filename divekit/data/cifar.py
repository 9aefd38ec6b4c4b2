"""CIFAR-10 (book 14.1) from the official binary archive, and Kaggle's CIFAR-10 layout (book 14.13).

Registers the datasets `cifar10` and `kaggle-cifar10`.

The binary archive, cifar-10-binary.tar.gz (Krizhevsky's page; never the pickled Python version),
holds cifar-10-batches-bin/data_batch_1.bin ... data_batch_5.bin (10,000 training images each),
test_batch.bin (10,000) and batches.meta.txt (the class names, one a line). A batch file is a
run of fixed-size records of 3,073 bytes:

    1 label byte (0..9) | 1,024 red | 1,024 green | 1,024 blue   (each plane 32 x 32, row-major)

so the file is one (N, 3073) uint8 array: column 0 holds the labels and the rest reshapes to
(N, 3, 32, 32), channels first, as divekit keeps images. The batches are read straight from the
tar members (nothing is extracted); a hand-extracted cifar-10-batches-bin/ folder in the data
directory is read as well, if each of its batch files has the official size.

Kaggle's "CIFAR-10 - Object Recognition in Images" (book 14.13) is a folder of PNG files instead:

    ROOT/trainLabels.csv   id,label     (1,frog  2,truck ...: class names, not indices)
    ROOT/train/1.png ...   the labelled images
    ROOT/test/1.png ...    the images to predict (300,000 on Kaggle)

`--data kaggle-cifar10` reads ROOT (the `root` data option; default: d2l's 1,000-image sample
kaggle_cifar10_tiny, downloaded) and holds out a seeded `valid` fraction (the book's 0.1);
`divekit predict RUN ROOT/test --out submission.csv` writes the competition's submission.
"""

from __future__ import annotations

import csv
import io
import tarfile
import warnings
import zlib
from functools import lru_cache
from pathlib import Path, PureWindowsPath

import numpy as np
import torch

from ..core.errors import DataError
from . import hub
from .cache import decoded, stamp
from .folder import decode_files
from .loader import split, stratified_subset
from .registry import register_dataset
from .vision import SPLITS, image_classification

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SIDE = 32
RECORD_BYTES = 1 + 3 * SIDE * SIDE  # 3,073: the label byte, then the red, green and blue planes
FOLDER = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
META = "batches.meta.txt"
BATCH_RECORDS = 10_000  # a real batch file holds exactly 10,000 records
BATCH_BYTES = BATCH_RECORDS * RECORD_BYTES
# the optimizer and lr are the model's (resnet18 on cifar10, like resnet18-cifar, takes book 14.1's: Adam, lr 0.001)
DEFAULTS = {"batch_size": 256, "epochs": 10}
REFETCH = ("Delete cifar-10-binary.tar.gz (or the extracted cifar-10-batches-bin folder) from the data folder "
           "and run `divekit data download cifar10` to download it again")


def parse_batch(raw: bytes, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from the bytes of one binary batch file.

    A length that is not a whole number of 3,073-byte records, or a label above 9, raises
    DataError naming the file `name`.
    """
    if not raw or len(raw) % RECORD_BYTES:
        raise DataError(f"{name} holds {len(raw):,} bytes, not a whole number of {RECORD_BYTES:,}-byte CIFAR-10 "
                        f"records (1 label byte + 3x32x32 pixels): it is truncated or corrupt. {REFETCH}")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)  # (N, 3073)
    labels = records[:, 0]
    bad = np.flatnonzero(labels >= len(CLASSES))
    if len(bad):
        raise DataError(f"{name}: record {int(bad[0])} has label {int(labels[bad[0]])}, expected 0..9: it is not a "
                        f"CIFAR-10 batch file (CIFAR-100's records have two label bytes). {REFETCH}")
    x = torch.from_numpy(records[:, 1:].reshape(-1, 3, SIDE, SIDE).copy())  # (N, 3072) -> (N, C, H, W)
    return x, torch.from_numpy(labels.astype(np.int64))


def _read_members(archive: Path) -> dict[str, bytes]:
    """The bytes of the batch files in the binary archive, read from its members without extracting."""
    wanted = {f"{FOLDER}/{name}" for name in (*TRAIN_BATCHES, TEST_BATCH)}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tf:
            for member in tf:
                if member.name not in wanted:
                    continue
                if not member.isreg() or member.size > BATCH_BYTES:
                    raise DataError(f"{archive}: member {member.name} is not a regular file of at most "
                                    f"{BATCH_BYTES:,} bytes: it is not the CIFAR-10 binary archive. {REFETCH}")
                found[Path(member.name).name] = tf.extractfile(member).read()
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        raise DataError(f"cannot read {archive} ({e}): it is truncated or corrupt. {REFETCH}") from None
    missing = sorted({Path(w).name for w in wanted} - set(found))
    if missing:
        raise DataError(f"{archive} has no {FOLDER}/{missing[0]}: it is not cifar-10-binary.tar.gz (divekit reads the "
                        f"binary version, not cifar-10-python.tar.gz). {REFETCH}")
    return found


def _read_folder(folder: Path) -> dict[str, bytes]:
    """The bytes of the batch files in a hand-extracted cifar-10-batches-bin/ folder.

    Unlike the downloaded archive, whose MD5 is checked, a folder is not hash-checked (hashing
    180 MB on every load is slow), so each batch file must at least have the official size:
    exactly 10,000 records. A missing or cut file raises DataError naming it.
    """
    refetch = (f"Delete {folder} and run `divekit data download cifar10` to download cifar-10-binary.tar.gz "
               "(divekit reads it without extracting)")
    found = {}
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        path = folder / name
        if not path.is_file():
            raise DataError(f"{folder} has no {name}: the extracted CIFAR-10 folder is incomplete. {refetch}")
        size = path.stat().st_size
        if size != BATCH_BYTES:
            raise DataError(f"{path} holds {size:,} bytes, not the official {BATCH_BYTES:,} ({BATCH_RECORDS:,} "
                            f"records of {RECORD_BYTES:,} bytes): it is truncated or not a CIFAR-10 batch file. "
                            f"An extracted folder is not hash-checked, only its sizes. {refetch}")
        found[name] = path.read_bytes()
    return found


@lru_cache(maxsize=2)
def load_cifar10(path: Path) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test) from the binary archive or its extracted folder at `path`:
    50,000 and 10,000 images (N, 3, 32, 32) uint8 with labels (N,) int64. The archive's tensors are
    kept decoded in the cache (divekit.data.cache: no gunzip on later runs); also cached per process."""
    path = Path(path)

    def build():
        raw = _read_folder(path) if path.is_dir() else _read_members(path)
        where = path if path.is_dir() else path / FOLDER
        parts = [parse_batch(raw[name], str(where / name)) for name in TRAIN_BATCHES]
        x_test, y_test = parse_batch(raw[TEST_BATCH], str(where / TEST_BATCH))
        x_train, y_train = torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])
        return dict(zip(SPLITS, (x_train, y_train, x_test, y_test))), {"source": str(path)}

    def valid(t, header):
        return all(t[x].dtype == torch.uint8 and t[x].shape[1:] == (3, SIDE, SIDE) and t[y].dtype == torch.int64
                   and t[y].shape == t[x].shape[:1] for x, y in (SPLITS[:2], SPLITS[2:]))

    # a folder's files are read whole anyway (parsing them is a reshape), so only the archive is cached
    tensors, _ = decoded("decoded", "cifar-10", [stamp(path)], build, valid, cache=not path.is_dir())
    return tuple(tensors[k] for k in SPLITS)


def to_records(x: torch.Tensor, y: torch.Tensor) -> bytes:
    """Images (N, 3, 32, 32) uint8 and labels (N,) as the bytes of a binary batch file."""
    if x.dtype != torch.uint8 or tuple(x.shape[1:]) != (3, SIDE, SIDE) or len(x) != len(y):
        raise ValueError(f"expected uint8 images (N, 3, 32, 32) and N labels, got {tuple(x.shape)} {x.dtype} and "
                         f"{len(y)} labels")
    records = torch.cat([y.to(torch.uint8).reshape(-1, 1), x.reshape(len(x), -1)], dim=1)  # (N, 3073)
    return records.numpy().tobytes()


def write_binary_archive(path: str | Path, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                         y_test: torch.Tensor) -> Path:
    """Write images and labels as cifar-10-binary.tar.gz's layout: the training set in five batch
    files (as evenly as they divide), the test set in test_batch.bin, and batches.meta.txt."""
    members = {f"{FOLDER}/{name}": to_records(x_train[i], y_train[i])
               for name, i in zip(TRAIN_BATCHES, torch.arange(len(x_train)).tensor_split(len(TRAIN_BATCHES)))}
    members[f"{FOLDER}/{TEST_BATCH}"] = to_records(x_test, y_test)
    members[f"{FOLDER}/{META}"] = ("\n".join(CLASSES) + "\n\n").encode()
    return write_tar_gz(path, members)


def write_tar_gz(path: str | Path, members: dict[str, bytes]) -> Path:
    """Write a gzipped tar at `path` whose regular files are `members` (name -> bytes), in order."""
    path = Path(path)
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


# ten well-separated RGB colours, one per class, for synthetic_images
PALETTE = ((40, 40, 40), (216, 40, 40), (40, 216, 40), (40, 40, 216), (216, 216, 40), (216, 40, 216),
           (40, 216, 216), (216, 216, 216), (128, 128, 40), (40, 128, 128))


def synthetic_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` learnable 32x32 stand-ins for CIFAR-10, for tests and speed measurements: images
    (n, 3, 32, 32) uint8 whose mean colour depends on the class, plus noise, and labels (n,)
    cycling over the 10 classes. The class colours are fixed; `seed` draws the noise."""
    palette = torch.tensor(PALETTE, dtype=torch.float32).view(len(CLASSES), 3, 1, 1)  # (10, 3, 1, 1)
    y = torch.arange(n) % len(CLASSES)
    noise = torch.randn(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed)) * 24
    return (palette[y] + noise).clamp(0, 255).round().to(torch.uint8), y


def _subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if n is None:
        return x, y
    keep = stratified_subset(y, int(n), seed)
    return x[keep], y[keep]


@register_dataset("cifar10", defaults=DEFAULTS, tags=("image",))
def cifar10(*, batch_size, seed, device, data_dir=None, resize=None, augment=None, num_train=None, num_test=None,
            subset_seed=0):
    """CIFAR-10: 50,000 + 10,000 32x32 colour images of 10 classes, from the official binary archive (book 14.1)."""
    (path,) = hub.fetch("cifar10", data_dir)
    x_train, y_train, x_test, y_test = load_cifar10(path)
    x_train, y_train = _subset(x_train, y_train, num_train, subset_seed)
    x_test, y_test = _subset(x_test, y_test, num_test, subset_seed)
    return image_classification("cifar10", x_train, y_train, x_test, y_test, CLASSES, batch_size=batch_size,
                                seed=seed, device=device, resize=resize, augment=augment)


# -- Kaggle's layout (book 14.13) ------------------------------------------------------------------


def _is_plain_name(image_id: str) -> bool:
    """True when train/ID.png stays inside train/: no directory part, no '..', no Windows drive."""
    return not ("/" in image_id or "\\" in image_id or ".." in image_id or PureWindowsPath(image_id).drive)


def read_labels(path: Path) -> list[tuple[str, str]]:
    """(id, class name) rows of a trainLabels.csv (header `id,label`). An id that is not a plain
    file name ('../x', 'a/b', '/x', 'C:x') raises DataError naming its line: ids name files in train/."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror}): --data kaggle-cifar10 needs ROOT/trainLabels.csv "
                        "(--data-arg root=ROOT)") from None
    if not rows or [c.strip().lower() for c in rows[0]] != ["id", "label"]:
        raise DataError(f"{path} must start with the header `id,label`, got {rows[0] if rows else 'an empty file'}")
    bad = [i + 2 for i, r in enumerate(rows[1:]) if len(r) != 2 or not r[0].strip() or not r[1].strip()]
    if bad:
        raise DataError(f"{path}: line {bad[0]} is not `id,label`")
    labels = [(r[0].strip(), r[1].strip()) for r in rows[1:]]
    unsafe = [(i + 2, image_id) for i, (image_id, _) in enumerate(labels) if not _is_plain_name(image_id)]
    if unsafe:
        line, image_id = unsafe[0]
        raise DataError(f"{path}: line {line} has the id {image_id!r}, which is not a plain file name (it has a '/', "
                        "'\\', '..' or a drive): an id names the image train/ID.png beside trainLabels.csv, e.g. 17")
    return labels


def kaggle_root(root: str | Path | None, data_dir=None) -> Path:
    """The Kaggle folder `root`, or d2l's sample kaggle_cifar10_tiny (downloaded when missing)."""
    return Path(root).expanduser() if root else hub.fetch_extracted("cifar10-tiny", data_dir)


def read_kaggle_cifar10(root: Path, size: int = SIDE, cache: bool = True) -> tuple[torch.Tensor, torch.Tensor,
                                                                                    list[str], list[str]]:
    """Images (N, 3, size, size) uint8, labels (N,), class names (sorted, as the book's reorg
    does) and skipped files, from ROOT/trainLabels.csv and ROOT/train/ID.png. Decoded once, then
    read from the cache folder."""
    labels = read_labels(root / "trainLabels.csv")
    train = root / "train"
    if not train.is_dir():
        raise DataError(f"{root} has no train/ folder of ID.png images beside trainLabels.csv")
    classes = sorted({label for _, label in labels})
    index = {c: i for i, c in enumerate(classes)}
    files, missing = [], []
    for image_id, label in labels:
        file = train / f"{image_id}.png"
        if file.is_file():
            files.append((file, index[label]))
        else:
            missing.append(f"train/{image_id}.png: listed in trainLabels.csv but missing")
    if not files:
        raise DataError(f"{train} holds none of the images trainLabels.csv lists (ID.png): is {root} the Kaggle "
                        "folder?")
    return decode_files(root, classes, files, missing, size, 3, cache, f"--data kaggle-cifar10 (root {root})")


@register_dataset("kaggle-cifar10", defaults={"batch_size": 32, "epochs": 10}, tags=("image",))
def kaggle_cifar10(*, batch_size, seed, device, data_dir=None, resize=None, augment=None, root=None, valid=0.1,
                   split_seed=0):
    """Kaggle's CIFAR-10 layout (book 14.13): ROOT/trainLabels.csv + train/ID.png; default d2l's 1,000-image sample."""
    if not 0 < float(valid) < 1:
        raise DataError(f"--data-arg valid is the validation fraction and must be in (0, 1), got {valid}")
    x, y, classes, skipped = read_kaggle_cifar10(kaggle_root(root, data_dir))
    if skipped:
        warnings.warn(f"kaggle-cifar10: skipped {len(skipped)} file(s): {skipped[:5]}", stacklevel=2)
    n_valid = max(1, round(float(valid) * len(x)))
    if len(x) - n_valid < 1:
        raise DataError(f"--data kaggle-cifar10 has {len(x)} readable image(s): too few to split off validation")
    train_idx, valid_idx = split(len(x), [1 - n_valid / len(x), n_valid / len(x)], seed=split_seed)
    bundle = image_classification("kaggle-cifar10", x[train_idx], y[train_idx], x[valid_idx], y[valid_idx], classes,
                                  batch_size=batch_size, seed=seed, device=device, resize=resize, augment=augment)
    bundle.valid, bundle.test = bundle.test, None  # the held-out split is validation; test/ has no labels
    return bundle
