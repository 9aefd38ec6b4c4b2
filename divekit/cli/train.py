"""`divekit train MODEL [--FLAG VALUE ...]`: one flag per TrainConfig field, plus the run options."""

from __future__ import annotations

import dataclasses
import typing

from ..core.errors import ConfigError
from ..train.config import TrainConfig
from .common import key_value, print_json

DICT_FIELDS = ("model_args", "data_args", "scheduler_args")  # repeatable --model-arg KEY=VALUE ...


def _flag_type(hint) -> type:
    """The value type of a field's type hint: `int | None` -> int."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint):  # Optional[X]
        hint = args[0]
    return typing.get_origin(hint) or hint


def add_config_flags(parser) -> None:
    """One flag per TrainConfig field but `model` (the positional): `batch_size` -> --batch-size,
    bools -> switches (the metadata's `flag`, e.g. --no-plot, for a field that defaults to True),
    dict fields -> repeatable --model-arg KEY=VALUE. Unset flags are None."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "model":
            continue
        kind = _flag_type(hints[f.name])
        options = {"dest": f.name, "help": f.metadata["help"]}
        if "metavar" in f.metadata:
            options["metavar"] = f.metadata["metavar"]
        if kind is dict:
            parser.add_argument(f"--{f.name.removesuffix('s').replace('_', '-')}", type=key_value, action="append",
                                **options)
        elif kind is bool:  # a switch: --channels-last sets True; a default-on field's --no-plot sets False
            off = f.metadata.get("flag", "").startswith("--no-")
            parser.add_argument(f.metadata["flag"] if off else f"--{f.name.replace('_', '-')}",
                                action="store_false" if off else "store_true", default=None, **options)
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, **options)


def add_parser(sub) -> None:
    """Register `divekit train`."""
    t = sub.add_parser("train", help="train a model on a dataset", description="Train MODEL on a dataset.")
    t.add_argument("model", nargs="?", help=TrainConfig.__dataclass_fields__["model"].metadata["help"])
    add_config_flags(t)
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.add_argument("--config", metavar="FILE", help="JSON or TOML file of settings (flags override it)")
    t.add_argument("--target", metavar="COLUMN", help="--data csv:PATH: the column to predict")
    t.add_argument("--features", metavar="A,B,C", help="--data csv:PATH: the input columns (default: all but the "
                   "target and the id column)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the final metrics as JSON on the last line")


def config_flags(args) -> dict:
    """The TrainConfig fields given on the command line (None: not given)."""
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    for name in DICT_FIELDS:
        flags[name] = dict(flags[name]) if flags[name] else None
    table = {k: v for k, v in (("target", args.target), ("features", args.features)) if v is not None}
    if table:  # --data csv:PATH options
        flags["data_args"] = {**(flags["data_args"] or {}), **table}
    return flags


def run(args) -> int:
    """Train, then print the final figures (or one JSON object with --json)."""
    # deferred for start-up time: the trainer imports torch and every model
    from ..core import dist
    from ..train.api import resolve_config, train

    flags = config_flags(args)
    if args.resume:
        if args.config:
            raise ConfigError("--config cannot be combined with --resume: the run folder holds the config")
        result = train(resume=args.resume, progress=not args.no_progress, **flags)
    else:
        result = train(resolve_config(args.config, **flags), progress=not args.no_progress)
    summary = result.summary()
    if not dist.is_main():  # under torchrun, rank 0 reports
        return 0
    if args.json:
        print_json(summary)
    else:
        figures = "  ".join(f"{k} {v:.4f}" for k, v in summary.items() if k.endswith(("_loss", "_acc")))
        print(f"{summary['model']} on {summary['data']}, {summary['epochs']} epochs, {summary['seconds']:.1f} s: "
              f"{figures}")
        print(f"run folder: {summary['run_dir']}")
    return 0
