"""Dataset downloads: one declarative table of files, verified downloads and safe extraction.

Every dataset file is a :class:`RemoteFile` in :data:`DATA_HUB`: its path inside the data
directory, the URLs it can be downloaded from (official first, then public mirrors) and its hash.
A file already in the data directory is used as it is, with no network access and no re-hashing;
``verify()`` checks the hashes of everything present.

Environment variables:

* ``DIVEKIT_DATA``: the data directory (default ``$XDG_CACHE_HOME/divekit/data``, which is
  ``~/.cache/divekit/data`` when ``XDG_CACHE_HOME`` is unset).
* ``DIVEKIT_CACHE``: the cache for derived files (default ``$XDG_CACHE_HOME/divekit``).
* ``DIVEKIT_MIRROR``: a base URL tried before the table's URLs, as ``<mirror>/<path>``; any
  server (or ``file://`` folder) holding a copy of a data directory works as a mirror.
* ``DIVEKIT_MAX_EXTRACT_BYTES``: the most an archive may expand to, in bytes or with a binary unit
  (``8G``, ``500M``; default 4 GiB, twice the largest official archive, VOC2012's 2.0 GB tar).
* ``DIVEKIT_MAX_EXTRACT_RATIO``: the most an archive, or a zip member, larger than 16 MiB once
  extracted may expand, as uncompressed / compressed size (default 200; the text archives ptb.zip and
  fra-eng.zip expand about 3:1, image and tar archives about 1:1, a zip of zeros 1000:1). Smaller
  ones are exempt: small text files compress very well.

Both limits are checked from the archive's headers before anything is written, and again on the
bytes actually written, since headers can lie; the ``max_bytes`` / ``max_ratio`` arguments of
:func:`extract` override them. Official archives are extracted only after their hash was checked.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..core.errors import ChecksumError, ConfigError, DataError, did_you_mean

HASH_LENGTHS = {"sha1": 40, "md5": 32}
CHUNK_BYTES = 1 << 20
MAX_EXTRACT_BYTES = 4 << 30  # the largest official archive, VOC2012's tar, holds 2.0 GB
MAX_EXTRACT_RATIO = 200.0  # text archives expand ~3:1 (ptb.zip: 3.0:1), images ~1:1; zip bombs ~1000:1
RATIO_MIN_BYTES = 16 << 20  # the ratio limit applies to what expands past this size only
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset; the hash and URLs are checked when the entry is created."""

    path: str  # relative to the data directory
    urls: tuple[str, ...]  # official URL first, then known public mirrors
    hash: str  # "sha1:<40 hex>" or "md5:<32 hex>"
    extract_to: str | None = None  # for archives: the folder (relative to the data dir) extraction produces
    provides: str | None = None  # a path inside that folder; when it exists the archive is not needed

    def __post_init__(self):
        parse_hash(self.hash)
        bad = [u for u in self.urls if not u.startswith(("http://", "https://"))]
        if not self.urls or bad:
            raise ConfigError(f"{self.path}: every URL must be http(s), got {list(self.urls)}")


def parse_hash(spec: str) -> tuple[str, str]:
    """Split "sha1:<hex>" / "md5:<hex>" into (algorithm, lowercase hex digest)."""
    algo, _, digest = spec.partition(":")
    if HASH_LENGTHS.get(algo) != len(digest) or not re.fullmatch(r"[0-9a-fA-F]+", digest):
        raise ConfigError(f"hash {spec!r} is not 'sha1:<40 hex digits>' or 'md5:<32 hex digits>'")
    return algo, digest.lower()


D2L_URL = "http://d2l-data.s3-accelerate.amazonaws.com/"  # d2l's DATA_URL
FASHION_MNIST_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
    "https://raw.githubusercontent.com/fgnt/mnist/master/",
)


def _d2l(file_name: str, sha1: str, **archive) -> RemoteFile:
    """A file of d2l's DATA_HUB: DATA_URL + file name, stored flat in the data dir as d2l does."""
    return RemoteFile(file_name, (D2L_URL + file_name,), f"sha1:{sha1}", **archive)


def _idx_files(folder: str, bases: tuple[str, ...], sha1s: dict[str, str]) -> tuple[RemoteFile, ...]:
    """torchvision's <folder>/raw/ layout, in the order train images, train labels, test images, test labels."""
    return tuple(RemoteFile(f"{folder}/raw/{f}", tuple(b + f for b in bases), f"sha1:{h}") for f, h in sha1s.items())


DATA_HUB: dict[str, tuple[RemoteFile, ...]] = {
    "fashion-mnist": _idx_files("FashionMNIST", FASHION_MNIST_URLS, {
        "train-images-idx3-ubyte.gz": "95978b76b6897f6ca69a25145d01716efb615989",
        "train-labels-idx1-ubyte.gz": "09814cfef5a041118ceace42f8dae995319d331a",
        "t10k-images-idx3-ubyte.gz": "5edda96c6d8c36ff915115a0e8136d370a021576",
        "t10k-labels-idx1-ubyte.gz": "9caad14e1aff9adac77d3744963212d36af15bee",
    }),
    "mnist": _idx_files("MNIST", MNIST_URLS, {
        "train-images-idx3-ubyte.gz": "6c95f4b05d2bf285e1bfb0e7960c31bd3b3f8a7d",
        "train-labels-idx1-ubyte.gz": "2a80914081dc54586dbdf242f9805a6b8d2a15fc",
        "t10k-images-idx3-ubyte.gz": "c3a25af1f52dad7f726cce8cacb138654b760d48",
        "t10k-labels-idx1-ubyte.gz": "763e7fa3757d93b0cdec073cef058b2004252c17",
    }),
    "time-machine": (_d2l("timemachine.txt", "090b5e7e70c295757f55df93cb0a180b9691891a"),),
    "fra-eng": (_d2l("fra-eng.zip", "94646ad1522d915e7b0f9296181140edcf86a4f5",
                     extract_to="fra-eng", provides="fra-eng/fra.txt"),),
    "kaggle-house": (
        _d2l("kaggle_house_pred_train.csv", "585e9cc93e70b39160e7921475f9bcd7d31219ce"),
        _d2l("kaggle_house_pred_test.csv", "fa19780a7b011d9b009e8bff8e99922a8ee2eb90"),
    ),
    "ptb": (_d2l("ptb.zip", "319d85e578af0cdc590547f26231e4e31cdf1e42",
                 extract_to="ptb", provides="ptb/ptb.train.txt"),),
    "airfoil": (_d2l("airfoil_self_noise.dat", "76e5be1548fd8222e5074cf0faae75edff8cf93f"),),
    "banana-detection": (_d2l("banana-detection.zip", "5de26c8fce5ccdea9f91267273464dc968d20d72",
                              extract_to="banana-detection", provides="banana-detection/bananas_train/label.csv"),),
    "voc2012": (_d2l("VOCtrainval_11-May-2012.tar", "4e443f8a2eca6b1dac8a6c57641b67dd40621a49",
                     extract_to="VOCdevkit", provides="VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt"),),
    # the binary version, read straight from the tar (divekit.data.cifar); its MD5 is the one the
    # CIFAR page publishes. Never the pickled cifar-10-python.tar.gz.
    "cifar10": (RemoteFile(
        "cifar-10-binary.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
        "md5:c32a1d4ab5d03f1284b67883e8d87530",
        extract_to="cifar-10-batches-bin", provides="cifar-10-batches-bin/test_batch.bin"),),
    "cifar10-tiny": (_d2l("kaggle_cifar10_tiny.zip", "2068874e4b9a9f0fb07ebe0ad2b29754449ccacd",
                          extract_to="kaggle_cifar10_tiny", provides="kaggle_cifar10_tiny/trainLabels.csv"),),
    "hotdog": (_d2l("hotdog.zip", "fba480ffa8aa7e0febbb511d181409f899b9baa5",
                    extract_to="hotdog", provides="hotdog/train"),),
    "wikitext-2": (RemoteFile(
        "wikitext-2-v1.zip",
        ("https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
         "https://wikitext.smerity.com/wikitext-2-v1.zip"),
        "sha1:3c914d17d80b1459be871a5039ac23e752a53cbe",
        extract_to="wikitext-2", provides="wikitext-2/wiki.train.tokens"),),
    "snli": (RemoteFile(
        "snli_1.0.zip", ("https://nlp.stanford.edu/projects/snli/snli_1.0.zip",),
        "sha1:9fcde07509c7e87ec61c640c1b2753d9041758e4",
        extract_to="snli_1.0", provides="snli_1.0/snli_1.0_train.txt"),),
}


def _dataset(name: str) -> tuple[RemoteFile, ...]:
    if name not in DATA_HUB:
        raise DataError(f"unknown dataset {name!r}.{did_you_mean(name, DATA_HUB)} Known: {', '.join(sorted(DATA_HUB))}")
    return DATA_HUB[name]


def _xdg_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data directory: `override`, else $DIVEKIT_DATA, else $XDG_CACHE_HOME/divekit/data."""
    return _data_root(override)


def _data_root(override) -> Path:
    # The functions below take a `data_dir` argument that shadows data_dir(), so they call this.
    chosen = override if override is not None else os.environ.get("DIVEKIT_DATA")
    return Path(chosen).expanduser() if chosen else _xdg_cache() / "divekit" / "data"


def _cache_root() -> Path:
    chosen = os.environ.get("DIVEKIT_CACHE")
    return Path(chosen).expanduser() if chosen else _xdg_cache() / "divekit"


def cache_dir() -> Path:
    """The cache for derived files ($DIVEKIT_CACHE, else $XDG_CACHE_HOME/divekit), created if needed."""
    root = _cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the cache folder {root} ({e}); set DIVEKIT_CACHE to a writable folder") from e
    return root


def _writable(folder: Path) -> bool:
    """Whether files can be created in `folder` (or in its nearest existing parent).

    A folder whose permission bits forbid writing counts as read-only even for root, so a shared
    read-only copy of the data is never modified.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return os.access(existing, os.W_OK) and bool(existing.stat().st_mode & 0o222)


def _require_writable(folder: Path, purpose: str) -> None:
    hint = "Set DIVEKIT_DATA (or pass --data-dir) to a writable folder."
    if not _writable(folder):
        raise DataError(f"cannot {purpose}: {folder} is not writable. {hint}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot {purpose}: cannot create {folder} ({e}). {hint}") from e


def file_hash(path: str | os.PathLike, algo: str) -> str:
    """The hex digest of a file with hashlib algorithm `algo` ("sha1", "md5")."""
    digest = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _candidate_urls(rf: RemoteFile) -> list[str]:
    mirror = os.environ.get("DIVEKIT_MIRROR")
    first = [f"{mirror.rstrip('/')}/{urllib.parse.quote(rf.path)}"] if mirror else []
    return first + list(rf.urls)


def _stream(url: str, into: Path, algo: str, timeout: float, progress: bool, label: str) -> str:
    """Download `url` into the file `into`, returning its digest; a short transfer raises."""
    digest, received = hashlib.new(algo), 0
    request = urllib.request.Request(url, headers={"User-Agent": "divekit"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(into, "wb") as out:
        length = response.headers.get("Content-Length")
        expected = int(length) if length else None
        with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=label, disable=not progress, leave=False) as bar:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received != expected:
        raise ConnectionError(f"connection closed after {received} of {expected} bytes")
    return digest.hexdigest()


def download(urls, dest: Path, expected_hash: str, *, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download the first of `urls` that works to `dest`, checking its size and hash.

    The data streams into a temporary file next to `dest`, is hashed on the way, and is moved
    into place only when its length and hash are right; on any failure the temporary file is
    removed. Raises ChecksumError when a download had the wrong hash, DataError when every URL
    failed; the message lists each URL with its error and where to put a hand-downloaded copy.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    dest = Path(dest).absolute()
    algo, want = parse_hash(expected_hash)
    _require_writable(dest.parent, f"download {dest.name}")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp, failures, bad_hash = Path(tmp_name), [], False
    try:
        for url in urls:
            try:
                got = _stream(url, tmp, algo, timeout, progress, dest.name)
            except (OSError, http.client.HTTPException, ValueError) as e:
                failures.append(f"  {url}: {e}")
                continue
            if got == want:
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
                return dest
            bad_hash = True
            failures.append(f"  {url}: wrong hash {algo}:{got}, expected {expected_hash}; the bad file was not kept")
    finally:
        tmp.unlink(missing_ok=True)
    error, problem = (ChecksumError, "wrong hash for") if bad_hash else (DataError, "could not download")
    raise error(
        f"{problem} {dest.name} (expected {expected_hash}). Tried:\n" + "\n".join(failures)
        + f"\nTo install it by hand, download it, check its hash and put it at:\n  {dest}\n"
        "or set DIVEKIT_MIRROR to a server holding a copy of the data directory."
    )


def fetch_file(rf: RemoteFile, data_dir=None, *, progress: bool = True) -> Path:
    """The local path of one dataset file, downloaded (and verified) first if it is not there."""
    dest = _data_root(data_dir) / rf.path
    if dest.is_file():
        return dest
    return download(_candidate_urls(rf), dest, rf.hash, progress=progress)


def _extracted_roots(base: Path) -> tuple[Path, Path]:
    """Where extracted archives live: the data dir, then the cache (for read-only data dirs)."""
    return base, _cache_root() / "extracted"


def _find_extracted(rf: RemoteFile, base: Path) -> Path | None:
    for root in _extracted_roots(base):
        if (root / (rf.provides or rf.extract_to)).exists():
            return root / rf.extract_to
    return None


def fetch(name: str, data_dir=None, *, progress: bool = True) -> list[Path]:
    """Local paths of every file of dataset `name`, in table order, downloading what is missing.

    For an archive whose extracted folder is already present (its `provides` path exists), that
    folder is returned instead and the archive is not downloaded.
    """
    base = _data_root(data_dir)
    paths = []
    for rf in _dataset(name):
        extracted = _find_extracted(rf, base) if rf.extract_to else None
        paths.append(extracted or fetch_file(rf, base, progress=progress))
    return paths


def fetch_extracted(name: str, data_dir=None, *, progress: bool = True) -> Path:
    """The extracted folder of an archive dataset, downloading and extracting it if needed.

    An existing extraction is used, first in the data dir, then in cache_dir()/"extracted".
    Otherwise the archive is fetched and extracted into the data dir, or into
    cache_dir()/"extracted" when the data dir is read-only (a shared copy, for example).
    """
    archives = [rf for rf in _dataset(name) if rf.extract_to]
    if len(archives) != 1:
        raise DataError(f"{name!r} is not an archive dataset; use fetch({name!r}) for its files")
    rf, base = archives[0], _data_root(data_dir)
    if found := _find_extracted(rf, base):
        return found
    archive = fetch_file(rf, base, progress=progress)
    root = base if _writable(base) else _extracted_roots(base)[1]
    extract(archive, root)
    marker = rf.provides or rf.extract_to
    if not (root / marker).exists():
        raise DataError(f"{archive} was extracted into {root} but has no {marker}: it is not the expected "
                        "archive; delete it and run again")
    return root / rf.extract_to


OUTSIDE = "has an absolute path or '..' and would be written outside the target"


def _refuse(archive: Path, member: str, why: str) -> DataError:
    return DataError(f"refusing to extract {archive}: member {member!r} {why}; nothing was extracted")


def _human(n: float) -> str:
    """A byte count with a binary unit: 4.0 GiB, 300.0 MiB, 12 B."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _parse_size(text: str) -> int:
    """Bytes from "8589934592", "8G", "8GiB", "500M" (binary units)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", text.strip(), re.IGNORECASE)
    if not match:
        raise ValueError(text)
    return int(float(match[1]) * SIZE_UNITS[match[2].lower()])


def _limit(value, name: str, var: str, default, parse, expected: str):
    """`value`, else the environment variable `var` read with `parse`, else `default`; must be positive."""
    source = name
    if value is None:
        raw = os.environ.get(var)
        if not raw:
            return default
        source = f"{var}={raw!r}"
        try:
            value = parse(raw)
        except ValueError:
            raise ConfigError(f"{source} is not a positive {expected}") from None
    if not value > 0:
        raise ConfigError(f"{source} must be a positive {expected}, got {value!r}")
    return value


class _Limits:
    """The size and ratio limits of one extraction: declare() checks the headers' sizes before
    anything is written, wrote() counts the bytes as they are written."""

    def __init__(self, archive: Path, max_bytes=None, max_ratio=None):
        self.archive = archive
        self.max_bytes = _limit(max_bytes, "max_bytes", "DIVEKIT_MAX_EXTRACT_BYTES", MAX_EXTRACT_BYTES,
                                _parse_size, "size in bytes (e.g. 8G or 8589934592)")
        self.max_ratio = _limit(max_ratio, "max_ratio", "DIVEKIT_MAX_EXTRACT_RATIO", MAX_EXTRACT_RATIO,
                                float, "compression ratio (e.g. 500)")
        self.packed = archive.stat().st_size
        # the ratio limit, as bytes: more than RATIO_MIN_BYTES must stay within max_ratio x the archive
        self.cap = min(self.max_bytes, max(RATIO_MIN_BYTES, int(self.max_ratio * self.packed)))
        self.declared = self.written = 0

    def _raise_hint(self) -> str:
        return (f"If you trust this archive, raise the limits: the size limit is {_human(self.max_bytes)} "
                f"(DIVEKIT_MAX_EXTRACT_BYTES, e.g. 16G, or extract(..., max_bytes=...)), the ratio limit "
                f"{self.max_ratio:g}:1 (DIVEKIT_MAX_EXTRACT_RATIO or extract(..., max_ratio=...))")

    def _refuse(self, why: str) -> DataError:
        return DataError(f"refusing to extract {self.archive}: {why}; nothing was extracted. {self._raise_hint()}")

    def declare(self, member: str, size: int, packed: int | None = None) -> None:
        """Count a member's uncompressed `size` from the headers (`packed`: its compressed size, if known)."""
        self.declared += size
        if self.declared > self.max_bytes:
            raise self._refuse(f"its members up to {member!r} expand to {_human(self.declared)}, more than the "
                               f"size limit of {_human(self.max_bytes)}")
        if packed is not None and size > RATIO_MIN_BYTES and size > self.max_ratio * max(packed, 1):
            raise self._refuse(f"member {member!r} expands {size / max(packed, 1):.0f}:1 ({_human(size)} from "
                               f"{_human(packed)}), more than the ratio limit of {self.max_ratio:g}:1 for "
                               f"members over {_human(RATIO_MIN_BYTES)} (a zip bomb?)")
        if self.declared > self.cap:
            raise self._refuse(f"its members up to {member!r} expand to {_human(self.declared)} from "
                               f"{_human(self.packed)}, more than the ratio limit of {self.max_ratio:g}:1 for "
                               f"archives over {_human(RATIO_MIN_BYTES)} (a zip bomb?)")

    def wrote(self, member: str, n: int) -> None:
        """Count `n` bytes about to be written for `member`; past the limits, stop (DataError)."""
        self.written += n
        if self.written > self.cap:
            raise DataError(f"stopped extracting {self.archive} at member {member!r}: its data goes past "
                            f"{_human(self.cap)}, the limit, although its headers declared less (a corrupt or "
                            f"malicious archive); nothing was kept. {self._raise_hint()}")


def _inside(path: str) -> bool:
    """Whether a relative archive path stays inside the extraction folder."""
    path = path.replace("\\", "/")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return False
    return ".." not in posixpath.normpath(path).split("/")


def _check_zip_members(archive: Path, infos: list[zipfile.ZipInfo], limits: _Limits) -> None:
    for info in infos:
        if not _inside(info.filename):
            raise _refuse(archive, info.filename, OUTSIDE)
        limits.declare(info.filename, info.file_size, info.compress_size)


def _write_zip(zf: zipfile.ZipFile, into: Path, limits: _Limits) -> None:
    """Write the (checked) members of `zf` under `into`, counting every chunk against `limits`."""
    for info in zf.infolist():
        parts = [p for p in info.filename.split("/") if p not in ("", ".")]
        if not parts:
            continue
        target = into.joinpath(*parts)
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as source, open(target, "wb") as out:
            while chunk := source.read(CHUNK_BYTES):
                limits.wrote(info.filename, len(chunk))
                out.write(chunk)


def _check_tar_members(archive: Path, tf: tarfile.TarFile, limits: _Limits) -> list[tarfile.TarInfo]:
    """The members of `tf`, read one header at a time (a size bomb stops at its first header past the
    limits), once their paths, links and sizes are checked."""
    members = []
    for m in tf:
        if m.isreg():
            limits.declare(m.name, m.size)
        members.append(m)
    links = {posixpath.normpath(m.name) for m in members if m.issym()}
    for m in members:
        if not _inside(m.name):
            raise _refuse(archive, m.name, OUTSIDE)
        if m.isdev():
            raise _refuse(archive, m.name, "is a device or FIFO")
        if m.issym() and not _inside(posixpath.join(posixpath.dirname(m.name), m.linkname)):
            raise _refuse(archive, m.name, f"is a symbolic link to {m.linkname!r}, outside the target")
        if m.islnk() and not _inside(m.linkname):
            raise _refuse(archive, m.name, f"is a hard link to {m.linkname!r}, outside the target")
        parents = posixpath.normpath(m.name).split("/")[:-1]
        for i in range(1, len(parents) + 1):
            if "/".join(parents[:i]) in links:
                raise _refuse(archive, m.name, f"lies under the symbolic link {'/'.join(parents[:i])!r}")
    return members


class _LimitedTarFile(tarfile.TarFile):
    """A TarFile that counts each regular file against `limits` before writing it: tarfile writes
    exactly the member's size (a short member raises ReadError), hard links that fall back to a
    copy included."""

    limits: _Limits

    def makefile(self, tarinfo, targetpath):
        self.limits.wrote(tarinfo.name, tarinfo.size)
        super().makefile(tarinfo, targetpath)


def _install(dest: Path, write) -> None:
    """Run `write(staging)` on a new temporary folder inside `dest`, then rename each top-level entry
    into place (replacing an older copy); the temporary folder is always removed."""
    staging = Path(tempfile.mkdtemp(prefix=".extracting-", dir=dest))
    try:
        write(staging)
        for entry in sorted(staging.iterdir()):
            target = dest / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(archive: Path, dest: Path, limits: _Limits) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _check_zip_members(archive, zf.infolist(), limits)
            _install(dest, lambda staging: _write_zip(zf, staging, limits))
    elif tarfile.is_tarfile(archive):
        with _LimitedTarFile.open(archive, "r:*") as tf:
            members = _check_tar_members(archive, tf, limits)
            tf.limits = limits
            safety = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            _install(dest, lambda staging: tf.extractall(staging, members=members, **safety))
    else:
        raise DataError(f"{archive} is not a zip or tar archive")


def extract(archive: Path, dest: Path, *, max_bytes: int | None = None, max_ratio: float | None = None) -> Path:
    """Unpack a zip or tar (.tar, .tar.gz, .tgz) archive into the folder `dest`; returns `dest`.

    Members with absolute paths or '..', links pointing outside `dest`, members under a link, and
    device files are refused (DataError) before anything is written, and so is an archive whose
    headers declare more than `max_bytes` in all (default $DIVEKIT_MAX_EXTRACT_BYTES, else 4 GiB) or
    that expands more than `max_ratio`:1 (default $DIVEKIT_MAX_EXTRACT_RATIO, else 200), as a whole
    or, in a zip, member by member, once past 16 MiB. The bytes written are counted too, and the
    extraction stops at the same limits if the headers lied. The archive is unpacked into a temporary
    folder inside `dest`, then each top-level entry is renamed into place (replacing an older copy),
    so a refused or interrupted extraction leaves no half-written entry behind.
    """
    archive, dest = Path(archive), Path(dest)
    _require_writable(dest, f"extract {archive.name}")
    try:
        _unpack(archive, dest, _Limits(archive, max_bytes, max_ratio))
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, RuntimeError, NotImplementedError) as e:
        raise DataError(f"cannot extract {archive} ({e}); delete it to download it again") from e
    return dest


def verify(data_dir=None) -> list[tuple[str, str, str]]:
    """Check every table file present in the data dir: (dataset, path, status) rows.

    status is "ok", "missing", "BAD hash <algo>:<got>, expected <algo>:<want>", or, for an
    archive that is absent while its extracted folder is present, "extracted (archive not kept)".
    """
    base = _data_root(data_dir)
    rows = []
    for name, files in DATA_HUB.items():
        for rf in files:
            path = base / rf.path
            if path.is_file():
                algo, want = parse_hash(rf.hash)
                got = file_hash(path, algo)
                status = "ok" if got == want else f"BAD hash {algo}:{got}, expected {rf.hash}"
            elif rf.extract_to and _find_extracted(rf, base):
                status = "extracted (archive not kept)"
            else:
                status = "missing"
            rows.append((name, rf.path, status))
    return rows
