"""Decoded tensors kept in the cache folder, so that each source is decoded once.

Decoding a dataset's files (gzipped idx files, a folder of JPEGs, a tar of binary records) takes from
half a second to minutes; reading the tensors back from one safetensors file takes tens of
milliseconds. An entry is keyed by what it was decoded from, in its present state (paths, sizes,
modification times, options) and by FORMAT: a source that changed gets a new entry, and a decoder
that changes what it produces bumps FORMAT, so that no entry an older decoder wrote is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import torch

from ..core.errors import DivekitError
from ..core.io import atomic_save_file, read_safetensors
from . import hub

FORMAT = 2  # 1: the entries of divekit 0.1's first decoders (keyed without a format)
HEADER_KEY = "divekit.decoded"

Tensors = dict[str, torch.Tensor]


def stamp(path: str | Path) -> tuple[str, int, int]:
    """A file's identity for a cache key: its resolved path, size and modification time."""
    path = Path(path)
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def entry_path(folder: str, name: str, key: Any) -> Path:
    """cache_dir()/folder/NAME-DIGEST.safetensors, the digest over FORMAT and the JSON of `key`."""
    digest = hashlib.sha1(json.dumps([FORMAT, key]).encode()).hexdigest()[:16]
    return hub.cache_dir() / folder / f"{name}-{digest}.safetensors"


def decoded(folder: str, name: str, key: Any, build: Callable[[], tuple[Tensors, dict]],
            valid: Callable[[Tensors, dict], bool] = lambda tensors, header: True,
            cache: bool = True) -> tuple[Tensors, dict]:
    """The tensors and JSON header that `build()` decodes, read from the cache entry for `key` when it
    holds a readable one that `valid` accepts; otherwise built and written (atomically) for next time.

    A truncated, foreign or invalid entry is rebuilt; a cache folder that cannot be written only means
    decoding every time. `cache=False` neither reads nor writes.
    """
    path = None
    if cache:
        # an unreadable entry (or an unusable cache folder) means decoding, below
        with contextlib.suppress(DivekitError, KeyError, TypeError, ValueError, OSError):
            path = entry_path(folder, name, key)
            if path.is_file():
                tensors, header = read_safetensors(path, HEADER_KEY)
                if header is not None and valid(tensors, header):
                    return tensors, header
    tensors, header = build()
    if path is not None:
        with contextlib.suppress(OSError, DivekitError):  # a read-only cache: decode every time
            path.parent.mkdir(exist_ok=True)
            atomic_save_file(tensors, path, {HEADER_KEY: json.dumps(header)})
    return tensors, header
