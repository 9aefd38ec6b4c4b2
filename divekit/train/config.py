"""Typed training configuration.

One dataclass holds every setting of a run. Values are resolved in this order, later wins:
the dataclass defaults, the dataset's defaults, the model's defaults (the book's settings for
that model), a config file (`--config`, JSON or TOML), then command-line flags. The resolved
config is written to `config.json` in every run folder so the run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, did_you_mean
from ..ops.schedules import build_schedule

PRECISIONS = ("fp32", "bf16", "fp16")
AUGMENTATIONS = ("flip", "crop", "flip-crop", "resized-crop-flip")
# `divekit bench` switch -> the TrainConfig overrides it measures
SPEED_SWITCHES: dict[str, dict[str, Any]] = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "fp16": {"precision": "fp16"},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
    "foreach": {"optimizer_impl": "foreach"},
    "fused": {"optimizer_impl": "fused"},
}


def check_device(name: str) -> str:
    """`name` if it is a device divekit knows (auto, cpu, cuda, cuda:N, mps), else a ConfigError."""
    if not (name in ("auto", "cpu", "mps", "cuda") or re.fullmatch(r"cuda:\d+", name)):
        raise ConfigError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")
    return name


def setting(default: Any = dataclasses.MISSING, *, help: str, metavar: str | None = None, flag: str | None = None,
            **kwargs) -> Any:
    """A TrainConfig field with the help text (and metavar) of its `divekit train` flag; `flag` names
    a switch that turns a default-on bool off (plot -> --no-plot)."""
    metadata = {"help": help, **({"metavar": metavar} if metavar else {}), **({"flag": flag} if flag else {})}
    return field(default=default, metadata=metadata, **kwargs)


@dataclass
class TrainConfig:
    """Every setting of a run; each field is also a `divekit train` flag (`batch_size` -> `--batch-size`)."""

    recipe: str | None = setting(
        None, help="named complete settings, e.g. fast (see divekit/train/recipes.py); flags override them")
    model: str = setting("softmax-regression", help="model name (see `divekit list models`)")
    data: str = setting("digits", help="dataset name (see `divekit list datasets`); default: the model's or digits")
    epochs: int = setting(10, help="passes over the training set")
    lr: float = setting(0.1, help="learning rate")
    batch_size: int = setting(256, help="examples per minibatch")
    optimizer: str = setting("sgd", help="sgd, adam, adamw, rmsprop, adagrad, adadelta, or a from-scratch one: "
                             "sgd-scratch, momentum-scratch, adagrad-scratch, rmsprop-scratch, adadelta-scratch, "
                             "adam-scratch")
    momentum: float = setting(0.0, help="momentum of the optimizers that take one, in [0, 1)")
    weight_decay: float = setting(0.0, help="L2 penalty on the weights (>= 0)")
    scheduler: str | None = setting(
        None, help="learning-rate schedule: step, multistep, exponential, cosine, onecycle, plateau")
    scheduler_args: dict[str, Any] = setting(
        help="option of the schedule, e.g. gamma=0.5 or milestones=[5,8] (repeatable)", metavar="KEY=VALUE",
        default_factory=dict)
    warmup_epochs: float = setting(0.0, help="linear warmup before the cosine schedule")
    grad_clip: float | None = setting(None, help="clip the global gradient norm to this value")
    resize: int | None = setting(None, help="resize images to RESIZE x RESIZE")
    augment: str | None = setting(None, help="training-set augmentation for images: flip, crop, flip-crop or "
                                  "resized-crop-flip (book 14.13's for CIFAR-10)")
    label_smoothing: float = setting(0.0, help="classification: weight of the uniform target, e.g. 0.1")
    seed: int = setting(0, help="random seed (initialization, shuffling, dropout)")
    device: str = setting("auto", help="auto, cpu, cuda, cuda:N, mps")
    precision: str = setting(
        "fp32", help="fp32 (default), bf16 (autocast) or fp16 (autocast + gradient scaler, CUDA)")
    channels_last: bool = setting(False, help="NHWC memory layout for CNNs")
    compile: bool = setting(
        False, help="torch.compile the model (its compilation is not counted in the run's seconds)")
    optimizer_impl: str = setting("auto", help="torch optimizers: auto (default), for-loop, foreach or fused")
    data_dir: str | None = setting(
        None, help="dataset cache folder (default: $DIVEKIT_DATA or ~/.cache/divekit/data)")
    out: str | None = setting(None, help="run folder (default: runs/MODEL-DATA-TIME)")
    time_limit: float | None = setting(
        None, help="stop after this many seconds of training (the running epoch is cut short and evaluated)")
    patience: int | None = setting(None, help="early stopping after N epochs without improvement")
    monitor: str | None = setting(
        None, help="metric for early stopping and best.safetensors, e.g. test_acc (default: the loss)")
    eval_every: int = setting(1, help="evaluate the held-out splits every N epochs (and always after the last)")
    log_every: int = setting(50, help="steps between progress-bar updates (each update reads the metrics once)")
    plot: bool = setting(True, flag="--no-plot", help="--no-plot: do not draw curves.png at the end (nor import "
                         "matplotlib); metrics.json and metrics.csv are written either way")
    threads: int | None = setting(
        None, help="CPU threads for torch (default: $DIVEKIT_THREADS, else the physical cores this process may "
        "use, less those other programs keep busy); config.json's \"machine\" records the number used")
    model_args: dict[str, Any] = setting(
        help="keyword argument for the model factory (repeatable)", metavar="KEY=VALUE", default_factory=dict)
    data_args: dict[str, Any] = setting(
        help="dataset option, e.g. num_steps=64 or sampling=sequential (repeatable)", metavar="KEY=VALUE",
        default_factory=dict)
    init_from: str | None = setting(
        None, metavar="PATH", help="fine-tune: start from pretrained weights (a run folder, .safetensors, or a "
        ".pt/.pth state dict); the output layer is replaced for the new classes (see divekit.train.finetune)")
    head_lr_mult: float = setting(10.0, help="fine-tune: the output layer's lr is lr x this (default 10)")
    freeze_body: bool = setting(
        False, help="fine-tune: train only the new output layer; the pretrained body stays fixed")

    def validate(self) -> "TrainConfig":
        """Raise ConfigError naming the option if any value is out of range."""
        checks = [
            (self.epochs >= 1, "epochs", "must be at least 1"),
            (self.lr > 0, "lr", "must be positive"),
            (self.batch_size >= 1, "batch_size", "must be at least 1"),
            (0 <= self.momentum < 1, "momentum", "must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay", "must be >= 0"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be positive"),
            (self.resize is None or self.resize >= 1, "resize", "must be a positive image size"),
            (self.patience is None or self.patience >= 1, "patience", "must be at least 1"),
            (self.time_limit is None or self.time_limit > 0, "time_limit", "must be positive"),
            (self.log_every >= 1, "log_every", "must be at least 1"),
            (self.eval_every >= 1, "eval_every", "must be at least 1"),
            (self.threads is None or self.threads >= 1, "threads", "must be at least 1"),
            (0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)"),
            (self.head_lr_mult > 0, "head_lr_mult", "must be positive"),
            (not self.freeze_body or bool(self.init_from), "freeze_body",
             "needs --init-from (pretrained weights to freeze)"),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ConfigError(f"--{name.replace('_', '-')} {why}, got {getattr(self, name)!r}")
        # deferred: ops.optim loads torch, and `divekit --help` builds its flags from this module without it
        from ..ops.optim import OPTIMIZER_IMPLS, OPTIMIZERS

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
            raise ConfigError(
                f"--optimizer-impl must be one of {', '.join(OPTIMIZER_IMPLS)}, got {self.optimizer_impl!r}")
        check_device(self.device)
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


# the key of a run's config.json under which fit records what the machine chose (threads, wait policy):
# facts about that process, not settings, so a config read back leaves them out
MACHINE = "machine"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML config file into a dict of TrainConfig fields (a run's config.json too)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise ConfigError(f"config file {path} is not valid {kind}: {e}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(values).__name__}")
    values.pop(MACHINE, None)
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
