"""Saving and loading tensors and model parameters (book 6.6), as safetensors files.

The book uses torch.save / torch.load, which pickle: loading a pickle runs whatever code the file
names, so a downloaded .pt file can take over the machine. A safetensors file holds only raw
tensor bytes and a JSON header, so loading one never runs code; `load` and `load_params` read
nothing else and refuse pickles (and truncated files) with a DivekitError.

What `save` takes: a tensor, a list or tuple of them, or a dict with string keys whose values are
tensors, lists or dicts, nested to any depth. Each tensor is stored under its path joined by dots
('0' for the first list entry, 'layer.weight' for d['layer']['weight']), so other safetensors
tools see readable names; the header's `divekit.io` entry records the structure, and `load`
rebuilds lists as lists and nested dicts as nested dicts, keys in their original order. Tuples
come back as lists.

Writes are atomic: the file is written under a temporary name, flushed to disk and renamed over
the target, so a crash mid-write leaves the previous file intact and no half-written one.
"""

from __future__ import annotations

import json
import os
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Union

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import DivekitError

FORMAT_VERSION = 1
HEADER_KEY = "divekit.io"

# a tensor name in the file, or a list / dict of such trees
Tree = Union[str, list["Tree"], dict[str, "Tree"]]
Saveable = Union[torch.Tensor, list["Saveable"], tuple["Saveable", ...], dict[str, "Saveable"]]

# how pickles start: zip (torch.save's default since 1.6) and pickle protocols 2-5; only consulted
# for the error message once a file has failed to parse as safetensors
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _plain(t: torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(t, nn.parameter.UninitializedParameter):
        raise DivekitError(
            f"cannot save {name!r}: it belongs to a lazy layer that has not run yet. "
            "Run one forward pass, e.g. net(X), so its shape is known, then save."
        )
    if t.layout != torch.strided:
        raise DivekitError(f"cannot save {name!r}: only dense tensors can be saved, not {t.layout}; use .to_dense()")
    # a private contiguous CPU copy: safetensors refuses views and tensors sharing storage (tied weights)
    return t.detach().to("cpu", copy=True).contiguous()


def _flatten(obj: Saveable, name: str, tensors: dict[str, torch.Tensor]) -> Tree:
    """Put every tensor of `obj` into `tensors` under its dotted path; return the structure."""
    if isinstance(obj, torch.Tensor):
        if name in tensors:
            raise DivekitError(
                f"two entries would both be stored as {name!r} (a key with a dot clashes with a nested key); "
                "rename one of them"
            )
        tensors[name] = _plain(obj, name)
        return name
    prefix = f"{name}." if name else ""
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{prefix}{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        tree = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise DivekitError(f"cannot save the dict key {k!r} at {name or 'the top'}: keys must be strings")
            tree[k] = _flatten(v, f"{prefix}{k}", tensors)
        return tree
    raise DivekitError(
        f"cannot save {name or 'the object'} of type {type(obj).__name__}: "
        "only tensors and lists/tuples/dicts of tensors can be saved (convert numbers with torch.tensor)"
    )


def _unflatten(tree: Tree, tensors: dict[str, torch.Tensor]) -> Saveable:
    if isinstance(tree, str):
        return tensors[tree]
    if isinstance(tree, list):
        return [_unflatten(t, tensors) for t in tree]
    return {k: _unflatten(t, tensors) for k, t in tree.items()}


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write `path` atomically: `write(tmp)` fills a temporary file beside it, which is flushed to
    disk and renamed over `path`, so a crash at any point leaves the old file (or none) intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class BackgroundWriter:
    """Runs file writes on one background thread, at most one job at a time, so that training goes on
    while a checkpoint is serialized, fsynced and renamed into place.

    `submit` first waits for the previous job (a failed write raises there, in the caller's thread, an
    OSError as a DivekitError, and never more than one write is in flight); `wait` blocks until the last
    job is done; `close` also ends the thread. A job must write only data nothing else will change: a
    snapshot taken before submitting.
    """

    def __init__(self):
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def submit(self, job: Callable[[], Any]) -> None:
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="divekit-writer")
        self._pending = self._pool.submit(job)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            pending.result()
        except OSError as e:  # a full disk, a removed folder: one line for the user, not a thread's traceback
            where = f" {e.filename}" if e.filename else ""
            raise DivekitError(f"could not write{where}: {e.strerror or e}; the files of the epochs before it are "
                               "intact. Free some space (or fix the folder) and continue with --resume") from e

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file atomically (see atomic_write)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON atomically (see atomic_write)."""
    return write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def atomic_save_file(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    """Write a safetensors file atomically (see atomic_write)."""
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def save(obj: Saveable, path: str | Path) -> Path:
    """Write a tensor, or a (nested) list or dict of tensors, to a safetensors file atomically.

    The book's `torch.save(x, 'x-file')`, `torch.save([x, y], 'x-files')` and
    `torch.save(mydict, 'mydict')`, without pickle. dtypes and shapes are kept exactly.
    """
    tensors: dict[str, torch.Tensor] = {}
    tree = _flatten(obj, "" if isinstance(obj, (list, tuple, dict)) else "tensor", tensors)
    header = {"format": FORMAT_VERSION, "tree": tree}
    return atomic_save_file(tensors, Path(path), {HEADER_KEY: json.dumps(header)})


def read_safetensors(path: str | Path, key: str) -> tuple[dict[str, torch.Tensor], dict | None]:
    """The tensors and the JSON header entry `key` (None if absent) of a safetensors file.

    The file is opened once and never unpickled: a pickle (torch.save) file, a truncated or any
    other unreadable file raises DivekitError saying which it is.
    """
    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            header = (f.metadata() or {}).get(key)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return tensors, json.loads(header) if header is not None else None
    except (SafetensorError, OSError, ValueError) as e:
        error = e
    with open(path, "rb") as f:
        start = f.read(4)
    if start.startswith(_PICKLE_MAGIC):
        raise DivekitError(
            f"{path} is a pickle (torch.save) file, not safetensors; divekit never unpickles, since loading a "
            "pickle can run arbitrary code. If you trust the file, convert it once with "
            "divekit.core.io.save(torch.load(path, weights_only=True), new_path)."
        )
    raise DivekitError(f"{path} is corrupt or truncated: not a readable safetensors file ({error}).")


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """The tensors and the divekit header (None for a safetensors file written by other tools)."""
    if not path.is_file():
        raise DivekitError(f"no file at {path}: check the path (save it first with divekit.core.io.save)")
    return read_safetensors(path, HEADER_KEY)


def load(path: str | Path) -> Saveable:
    """Read what `save` wrote: a tensor, a list, or a (nested) dict of tensors, as it was saved.

    A safetensors file written by other tools comes back as a flat dict {name: tensor}.
    Anything else (a pickle, a truncated or corrupt file) raises DivekitError.
    """
    path = Path(path)
    tensors, header = _read(path)
    if header is None:
        return tensors
    if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
        raise DivekitError(f"{path} has a divekit.io header of an unknown format; expected format {FORMAT_VERSION}")
    try:
        return _unflatten(header["tree"], tensors)
    except (KeyError, TypeError, AttributeError):
        raise DivekitError(f"{path} is corrupt: its header names tensors the file does not hold") from None


def save_params(model: nn.Module, path: str | Path) -> Path:
    """Write model.state_dict() to a safetensors file atomically (the book's `torch.save(net.state_dict(), ...)`).

    Tied parameters are stored once per name (as copies, since safetensors refuses shared
    memory); load_params copies both into the one shared tensor, so the tie survives.
    """
    return save(model.state_dict(), path)


def load_params(model: nn.Module, path: str | Path) -> nn.Module:
    """Copy parameters (and buffers) saved by save_params into `model`, and return it.

    The file must hold exactly the model's state_dict keys, with the same shapes; a mismatch
    names the differing keys. Lazy layers that have not run yet take the saved shapes.
    """
    path = Path(path)
    state = load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DivekitError(f"{path} holds {type(state).__name__} data, not model parameters saved by save_params")
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(
        k
        for k in set(own) & set(state)
        if not isinstance(own[k], nn.parameter.UninitializedParameter) and own[k].shape != state[k].shape
    )
    if missing or unexpected or wrong:
        raise DivekitError(
            f"{path} does not fit {type(model).__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"different shapes {wrong[:5]}. Build the model with the same sizes as the one that was saved."
        )
    model.load_state_dict(state)
    return model
