"""The dataset registry: `list_datasets()`, `load_dataset(name, ...)` -> DataBundle.

A DataBundle carries the loaders of a dataset's splits and the facts a model needs to be built
for it (`context`: number of classes, input shape ...), plus the kind of task, which tells the
trainer how a batch becomes a loss and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..core.errors import ConfigError, DataError
from ..core.registry import Registry, call_with_known
from . import hub
from .loader import TensorLoader, stratified_subset
from .synthetic import synthetic_linear
from .transforms import image_transform, random_crop, random_hflip, to_float
from .transforms import resize as resize_fn
from .vision import FASHION_MNIST_CLASSES, MNIST_CLASSES, load_digits_tensors, load_idx_set

DATASETS = Registry("dataset")
register_dataset = DATASETS.register


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
    crops after zero padding by 1/14 of the side, 2 pixels at 28x28; training split only) apply to
    image datasets; extra `kwargs` go to
    the dataset's factory.
    """
    if name.startswith("folder:"):  # the user's own images, one sub-folder per class
        from .folder import load_folder_dataset

        return load_folder_dataset(name, batch_size=batch_size, resize=resize, augment=augment, seed=seed,
                                   device=device, **kwargs)
    if name.startswith("csv:"):  # the user's own table (divekit.data.csv_data)
        from .csv_data import csv_entry

        entry = csv_entry(name)
    else:
        entry = DATASETS.get(name)
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
    if augment in ("flip", "flip-crop"):
        train_fns.append(random_hflip())
    train = TensorLoader(x_train, y_train, batch_size=batch_size, shuffle=True, transform=image_transform(*train_fns),
                         device=device, seed=seed)
    test = TensorLoader(x_test, y_test, batch_size=batch_size, transform=transform, device=device)
    context = {"num_classes": len(classes), "in_shape": (x_train.shape[1], h, w)}
    return DataBundle(name, "classification", train, test, classes=list(classes), context=context, transform=transform)


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


@register_dataset("digits", defaults={"batch_size": 64, "epochs": 20}, tags=("image", "embedded"))
def digits(*, batch_size, seed, device, resize=None, augment=None):
    """scikit-learn's 8x8 handwritten digits (1,797 images), bundled: works with no network or cache."""
    return image_classification(
        "digits", *load_digits_tensors(), MNIST_CLASSES, batch_size=batch_size, seed=seed, device=device, resize=resize,
        augment=augment,
    )


def _train_subset(tensors, num_train: int | None, seed: int):
    """(x_train, y_train, x_test, y_test) with the training split cut to `num_train` examples,
    balanced over the classes and drawn with `seed` (the `num_train` data option: few-label runs)."""
    if num_train is None:
        return tensors
    x_train, y_train, *test = tensors
    keep = stratified_subset(y_train, int(num_train), seed)
    return (x_train[keep], y_train[keep], *test)


@register_dataset("fashion-mnist", defaults={"batch_size": 256, "epochs": 10}, tags=("image",))
def fashion_mnist(*, batch_size, seed, device, data_dir=None, resize=None, augment=None, num_train=None, subset_seed=0):
    """Zalando's Fashion-MNIST: 60,000 + 10,000 28x28 grayscale images of 10 kinds of clothing."""
    tensors = load_idx_set(tuple(hub.fetch("fashion-mnist", data_dir)))
    tensors = _train_subset(tensors, num_train, subset_seed)
    return image_classification(
        "fashion-mnist", *tensors, FASHION_MNIST_CLASSES, batch_size=batch_size, seed=seed, device=device, resize=resize,
        augment=augment,
    )


@register_dataset("mnist", defaults={"batch_size": 256, "epochs": 10}, tags=("image",))
def mnist(*, batch_size, seed, device, data_dir=None, resize=None, augment=None, num_train=None, subset_seed=0):
    """LeCun's MNIST handwritten digits: 60,000 + 10,000 28x28 grayscale images."""
    tensors = load_idx_set(tuple(hub.fetch("mnist", data_dir)))
    tensors = _train_subset(tensors, num_train, subset_seed)
    return image_classification(
        "mnist", *tensors, MNIST_CLASSES, batch_size=batch_size, seed=seed, device=device, resize=resize,
        augment=augment,
    )


@register_dataset("synthetic-linear", defaults={"batch_size": 10, "epochs": 3, "lr": 0.03}, tags=("regression",))
def synthetic_linear_data(*, batch_size, seed, device, w=(2.0, -3.4), b=4.2, noise=0.01):
    """The book's y = Xw + b + noise (w = [2, -3.4], b = 4.2), 1,000 training and 1,000 test examples."""
    x_tr, y_tr, x_te, y_te, w_t, b = synthetic_linear(w, b, noise, seed=seed)
    train = TensorLoader(x_tr, y_tr, batch_size=batch_size, shuffle=True, device=device, seed=seed)
    test = TensorLoader(x_te, y_te, batch_size=batch_size, device=device)
    context = {"in_shape": (len(w_t),), "num_outputs": 1, "true_w": w_t, "true_b": b}
    return DataBundle("synthetic-linear", "regression", train, test, context=context)


def load_airfoil(data_dir=None) -> tuple[torch.Tensor, torch.Tensor]:
    """NASA's airfoil self-noise data (1,503 rows): 5 features and the sound level, every column
    standardized over the whole file as the book does (book 12.5)."""
    import numpy as np

    (path,) = hub.fetch("airfoil", data_dir)
    try:
        table = np.genfromtxt(path, dtype=np.float32, delimiter="\t")
    except ValueError as e:
        raise DataError(f"{path} is not the tab-separated airfoil table ({e}); delete it and download it again") from None
    if table.ndim != 2 or table.shape[1] != 6 or np.isnan(table).any():
        raise DataError(f"{path} should hold 6 numeric tab-separated columns per row, got shape {table.shape}; "
                        "delete it and download it again")
    table = (table - table.mean(axis=0)) / table.std(axis=0)
    data = torch.from_numpy(table)
    return data[:, :-1], data[:, -1:]


@register_dataset("airfoil", defaults={"batch_size": 10, "epochs": 2, "lr": 0.05}, tags=("regression",))
def airfoil(*, batch_size, seed, device, data_dir=None):
    """Airfoil self-noise, the book's optimization testbed: the first 1,500 rows, training loss only (book 12.5)."""
    x, y = load_airfoil(data_dir)
    train = TensorLoader(x[:1500], y[:1500], batch_size=batch_size, shuffle=True, device=device, seed=seed)
    return DataBundle("airfoil", "regression", train, context={"in_shape": (5,), "num_outputs": 1})


@register_dataset("time-machine", defaults={"batch_size": 32, "epochs": 50}, tags=("text",))
def time_machine(*, batch_size, seed, device, data_dir=None, num_steps=32, sampling="random", token="char",
                 heldout=0.1, max_tokens=None):
    """H. G. Wells' The Time Machine for language models, by character (default) or word.

    The book's preprocessing (lowercase letters and spaces); the last `heldout` of the text is held
    out for perplexity."""
    from .text import language_model_bundle, load_corpus

    corpus, vocab = load_corpus("time-machine", token=token, data_dir=data_dir, max_tokens=max_tokens)
    return language_model_bundle("time-machine", corpus, vocab, batch_size=batch_size, num_steps=num_steps,
                                 sampling=sampling, heldout=heldout, seed=seed, device=device, level=token)


@register_dataset("ptb", defaults={"batch_size": 32, "epochs": 10}, tags=("text",))
def ptb(*, batch_size, seed, device, data_dir=None, num_steps=35, sampling="random", objective="lm", **bert_args):
    """The Penn Treebank for word-level language models: 10,000 words, its own valid and test texts.

    Mikolov's preprocessing, <eos> at the end of every sentence. objective="bert" (bert-small's
    default): BERT pretraining pairs instead, see divekit.data.bert.ptb_pretraining_bundle."""
    from .text import language_model_bundle, load_corpus

    if objective == "bert":
        from .bert import ptb_pretraining_bundle

        return ptb_pretraining_bundle(batch_size=batch_size, seed=seed, device=device, data_dir=data_dir, **bert_args)
    if objective != "lm" or bert_args:
        raise ConfigError(f"ptb: objective is 'lm' (language model) or 'bert'; got {objective!r}"
                          + (f" with BERT-only options {', '.join(map(repr, bert_args))}" if bert_args else ""))

    corpus, vocab = load_corpus("ptb", data_dir=data_dir)
    valid, _ = load_corpus("ptb", split="valid", data_dir=data_dir, vocab=vocab)
    test, _ = load_corpus("ptb", split="test", data_dir=data_dir, vocab=vocab)
    return language_model_bundle("ptb", corpus, vocab, batch_size=batch_size, num_steps=num_steps, sampling=sampling,
                                 seed=seed, device=device, valid_corpus=valid, test_corpus=test, level="word")

from . import (
    bert,  # noqa: E402,F401  (registers wikitext-2, ptb-bshift, snli-bert and the BERT tasks)
    binary,  # noqa: E402,F401  (registers hours-to-pass and breast-cancer)
    detection,  # noqa: E402,F401  (registers banana-detection, bananas-synthetic and the detection task)
    segmentation,  # noqa: E402,F401  (registers voc2012 and shapes-segmentation)
    translation,  # noqa: E402,F401  (registers "fra-eng"; imports DataBundle and register_dataset from here)
)
