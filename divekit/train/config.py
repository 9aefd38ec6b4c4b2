"""Typed training configuration.

One dataclass holds every setting of a run. Values are resolved in this order, later wins:
the dataclass defaults, the dataset's defaults, the model's defaults (the book's settings for
that model), a config file (`--config`, JSON or TOML), then command-line flags. The resolved
config is written to `config.json` in every run folder so the run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ..core.errors import ConfigError, did_you_mean
from ..ops.optim import OPTIMIZER_IMPLS, OPTIMIZERS
from ..ops.schedules import build_schedule

PRECISIONS = ("fp32", "bf16", "fp16")
AUGMENTATIONS = ("flip", "crop", "flip-crop")


@dataclass
class TrainConfig:
    recipe: str | None = None  # named settings from divekit.train.recipes, applied below config files and flags
    model: str = "softmax-regression"
    data: str = "digits"
    epochs: int = 10
    lr: float = 0.1
    batch_size: int = 256
    optimizer: str = "sgd"  # see divekit.ops.optim.OPTIMIZERS
    momentum: float = 0.0
    weight_decay: float = 0.0
    scheduler: str | None = None  # step | multistep | exponential | cosine | onecycle | plateau
    scheduler_args: dict[str, Any] = field(default_factory=dict)  # e.g. {"gamma": 0.5, "step_size": 3}
    warmup_epochs: float = 0.0  # linear warmup (cosine schedule)
    grad_clip: float | None = None  # clip the global gradient norm to this value
    resize: int | None = None  # resize square images to resize x resize
    augment: str | None = None  # training-set augmentation: flip | crop | flip-crop
    label_smoothing: float = 0.0  # classification: mix the one-hot target with a uniform distribution
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "fp32"  # fp32 | bf16 (autocast, CPU or GPU) | fp16 (autocast + gradient scaler, CUDA only)
    channels_last: bool = False  # NHWC memory layout for CNNs
    compile: bool = False  # torch.compile the model; its warm-up (compilation) is not counted in `seconds`
    optimizer_impl: str = "auto"  # torch optimizers: auto (torch's choice) | for-loop | foreach | fused
    data_dir: str | None = None  # where datasets are cached; default: $DIVEKIT_DATA or the user cache
    out: str | None = None  # run folder; default: runs/<model>-<data>-<time>
    time_limit: float | None = None  # seconds of training; the running epoch is cut short, evaluated, and training stops
    patience: int | None = None  # stop after this many epochs without improvement of `monitor`
    monitor: str | None = None  # metric for early stopping and the best checkpoint; default valid_loss, else test_loss
    eval_every: int = 1  # evaluate the held-out splits every N epochs (and always after the last)
    log_every: int = 50  # steps between progress-bar updates (each update reads the metrics once)
    model_args: dict[str, Any] = field(default_factory=dict)  # keyword overrides for create_model
    data_args: dict[str, Any] = field(default_factory=dict)  # dataset options, e.g. {"num_steps": 32}
    init_from: str | None = None  # fine-tuning: pretrained weights (a run folder or a weights file); see divekit.train.finetune
    head_lr_mult: float = 10.0  # fine-tuning: the new output layer trains at lr * head_lr_mult (book 14.2)
    freeze_body: bool = False  # fine-tuning: train only the output layer (at lr), the pretrained body stays fixed

    def validate(self) -> "TrainConfig":
        """Raise ConfigError naming the option if any value is out of range."""
        checks = [
            (self.epochs >= 1, "epochs", "must be at least 1"),
            (self.lr > 0, "lr", "must be positive"),
            (self.batch_size >= 1, "batch_size", "must be at least 1"),
            (self.momentum >= 0, "momentum", "must be >= 0"),
            (self.weight_decay >= 0, "weight_decay", "must be >= 0"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be positive"),
            (self.resize is None or self.resize >= 1, "resize", "must be a positive image size"),
            (self.patience is None or self.patience >= 1, "patience", "must be at least 1"),
            (self.time_limit is None or self.time_limit > 0, "time_limit", "must be positive"),
            (self.log_every >= 1, "log_every", "must be at least 1"),
            (self.eval_every >= 1, "eval_every", "must be at least 1"),
            (0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)"),
            (self.head_lr_mult > 0, "head_lr_mult", "must be positive"),
            (not self.freeze_body or bool(self.init_from), "freeze_body", "needs --init-from (pretrained weights to freeze)"),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ConfigError(f"--{name.replace('_', '-')} {why}, got {getattr(self, name)!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"--optimizer {self.optimizer!r} is not known.{did_you_mean(self.optimizer, OPTIMIZERS)} "
                f"Choose one of: {', '.join(OPTIMIZERS)}"
            )
        build_schedule(self.scheduler, self.epochs, self.warmup_epochs, **self.scheduler_args)  # raises if invalid
        if self.augment is not None and self.augment not in AUGMENTATIONS:
            raise ConfigError(f"--augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.optimizer_impl not in OPTIMIZER_IMPLS:
            raise ConfigError(f"--optimizer-impl must be one of {', '.join(OPTIMIZER_IMPLS)}, got {self.optimizer_impl!r}")
        if not (self.device in ("auto", "cpu", "mps", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with `changes` applied after type checks (unknown keys are an error)."""
        return dataclasses.replace(self, **coerce_fields(changes))


_HINTS = typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any, hint) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{name} cannot be empty")
    if args and type(None) in args:  # Optional[X]
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if hint is str:
        return str(value)
    return value


def coerce_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Type-check and convert `values` against TrainConfig's fields."""
    out = {}
    for key, value in values.items():
        key = key.replace("-", "_")
        if key not in _HINTS:
            raise ConfigError(f"unknown config key {key!r}.{did_you_mean(key, _HINTS)} Known keys: {', '.join(_HINTS)}")
        out[key] = _coerce(key, value, _HINTS[key])
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML config file into a dict of TrainConfig fields."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(values).__name__}")
    return coerce_fields(values)


def resolve(*layers: dict[str, Any]) -> TrainConfig:
    """Merge layers of settings (later wins) over the defaults, type-checking every value; the
    ranges are checked once, by `validate` when a run starts (divekit.train.api.fit)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in coerce_fields(layer).items():
            if key in ("model_args", "scheduler_args", "data_args"):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return TrainConfig(**merged)
