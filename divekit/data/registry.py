"""The dataset registry: `list_datasets()`, `load_dataset(name, ...)` -> DataBundle.

Datasets register themselves where they are defined (`@register_dataset` in vision.py, text.py,
translation.py ...); `divekit/data/__init__.py` imports those modules. The user's own files are
*sources* named by a prefix, `csv:PATH` and `folder:PATH` (`@register_source`); `dataset_entry`
resolves a name of either kind, so the prefixes are handled here and nowhere else.

A DataBundle carries the loaders of a dataset's splits and the facts a model needs to be built
for it (`context`: number of classes, input shape ...), plus the kind of task, which tells the
trainer how a batch becomes a loss and metrics.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..core.errors import ConfigError, DataError
from ..core.registry import Entry, Registry, call_with_known
from .loader import TensorLoader

DATASETS = Registry("dataset")
register_dataset = DATASETS.register
SOURCES: dict[str, Entry] = {}  # prefix -> entry whose factory takes the path after "PREFIX:"


def register_source(prefix: str, *, defaults: dict[str, Any] | None = None, tags=(), example: str = "PATH"):
    """Decorator: datasets named `PREFIX:PATH` are built by `fn(PATH, **options)` with these
    training defaults (e.g. `csv:train.csv`, `folder:photos/`)."""

    def deco(fn):
        if prefix in SOURCES:
            raise ValueError(f"data source {prefix!r} is registered twice")
        SOURCES[prefix] = Entry(f"{prefix}:{example}", fn, dict(defaults or {}), tuple(tags))
        return fn

    return deco


def dataset_entry(name: str) -> Entry:
    """The registry entry of a dataset name or of a `PREFIX:PATH` source (its factory bound to PATH)."""
    prefix, sep, path = name.partition(":")
    if sep and prefix in SOURCES:
        source = SOURCES[prefix]
        if not path:
            raise ConfigError(f"--data {prefix}: needs a path after the colon, e.g. --data {source.name}")
        return Entry(name, functools.partial(source.factory, path), dict(source.defaults), source.tags)
    return DATASETS.get(name)


@dataclass
class DataBundle:
    """A dataset ready for training: loaders per split and what a model must know about it."""

    name: str
    task: str  # "classification" | "regression"
    train: TensorLoader
    test: TensorLoader | None = None
    valid: TensorLoader | None = None
    classes: list[str] | None = None
    context: dict[str, Any] = field(default_factory=dict)  # keyword facts for create_model
    transform: Any = None  # the deterministic input transform, for prediction on new inputs

    def loaders(self) -> dict[str, TensorLoader]:
        return {k: v for k, v in (("train", self.train), ("valid", self.valid), ("test", self.test)) if v is not None}


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of registered datasets matching a glob pattern."""
    return DATASETS.names(pattern)


def load_dataset(
    name: str,
    *,
    batch_size: int = 256,
    resize: int | None = None,
    augment: str | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    data_dir: str | None = None,
    **kwargs,
) -> DataBundle:
    """Load a registered dataset as in-memory loaders.

    `resize` and `augment` ("flip", "crop", "flip-crop": random left-right flips and/or random
    crops after zero padding by 1/14 of the side, 2 pixels at 28x28; "resized-crop-flip": book
    14.13's random square crop of 64-100% of the area resized back, then a flip; training split
    only) apply to image datasets; extra `kwargs` go to the dataset's factory.
    """
    entry = dataset_entry(name)
    overrides = dict(kwargs)
    if resize is not None:
        overrides["resize"] = resize
    if augment is not None:
        overrides["augment"] = augment
    context = dict(batch_size=batch_size, seed=seed, device=device, data_dir=data_dir)
    try:
        return call_with_known(entry.factory, context, overrides, f"dataset {name!r}")
    except ConfigError as e:
        for option in ("resize", "augment"):
            if option in overrides and f"'{option}'" in str(e):
                raise ConfigError(f"--{option} applies to image datasets; {name!r} has no images") from None
        raise


def tensor_bundle(name: str, task: str, X_train: torch.Tensor, y_train: torch.Tensor,
                  X_valid: torch.Tensor | None = None, y_valid: torch.Tensor | None = None, *, batch_size: int,
                  seed: int = 0, device: torch.device | str | None = None,
                  classes: Sequence[str] | None = None, heldout: str = "valid",
                  context: dict[str, Any] | None = None) -> DataBundle:
    """A DataBundle over feature tensors: X (N, F), y (N,) targets or class indices (or (N, 1)).

    The held-out tensors become the `heldout` split ("valid" or "test"). The context tells a model
    factory its input shape (F,) and its outputs: one for regression and binary classification
    (a logit), one per class for classification; `context` adds facts of the caller's.
    """
    if task not in ("regression", "classification", "binary-classification"):
        raise DataError(f"task must be regression, classification or binary-classification, got {task!r}")
    if heldout not in ("valid", "test"):
        raise DataError(f"the held-out split is 'valid' or 'test', got {heldout!r}")
    if task != "regression" and not classes:
        raise DataError("a classification bundle needs its class names")
    train = TensorLoader(X_train, y_train, batch_size=batch_size, shuffle=True, device=device, seed=seed)
    held = None
    if X_valid is not None:
        held = TensorLoader(X_valid, y_valid, batch_size=max(batch_size, 1024), device=device)
    facts: dict[str, Any] = {"in_shape": (X_train.shape[1],)}
    if task == "classification":
        facts["num_classes"] = len(classes)
    else:
        facts["num_outputs"] = 1
    return DataBundle(name, task, train, classes=list(classes) if classes else None,
                      context={**facts, **(context or {})}, **{heldout: held})
