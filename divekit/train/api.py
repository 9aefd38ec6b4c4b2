"""Entry points: `train(config)` for named models and datasets, `fit(model, data)` for your own.

`fit` prepares a run (the data, the model, fine-tuning, a preflight check, the run folder and the
standard callbacks), builds the Trainer, restores it from a checkpoint when resuming, and trains.
The run folder's files are listed in divekit.core.rundir.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from ..core import dist, host
from ..core.checkpoint import Checkpoint
from ..core.device import resolve_device, resolve_threads
from ..core.errors import ConfigError, DivekitError, did_you_mean
from ..core.io import write_json_atomic
from ..core.rundir import CONFIG, checkpoint_path
from ..data.registry import DataBundle, dataset_entry, load_dataset
from ..models.registry import MODELS, create_model
from ..tasks import Task, make_task, task_name
from .callbacks import Callback, CheckpointSaver, EarlyStopping, MetricsLogger, PlotCurves, ProgressBar, SampleGrid
from .config import MACHINE, TrainConfig, coerce_fields, read_config_file, resolve
from .finetune import prepare_finetune
from .recipes import recipe
from .trainer import Trainer, check_precision

# settings that may change when a run is resumed; the others define the run and stay fixed
RESUMABLE = {"epochs", "device", "data_dir", "log_every", "patience", "plot", "threads"}


@dataclass
class Result:
    """What a run produced: final metrics, the per-epoch history, the run folder and the model."""

    metrics: dict[str, float]
    history: list[dict[str, float]]
    run_dir: Path | None
    model: torch.nn.Module = field(repr=False)
    config: TrainConfig = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """The final figures as one JSON-able dict (what `--json` prints)."""
        out: dict[str, Any] = {"model": self.config.model, "data": self.config.data, "epochs": self.metrics.get("epoch")}
        out.update({k: round(v, 6) for k, v in self.metrics.items()  # every metric of every split
                    if k.startswith(("train_", "valid_", "test_")) and isinstance(v, (int, float))})
        out["seconds"] = self.metrics.get("seconds")
        out["run_dir"] = str(self.run_dir) if self.run_dir else None
        return out


def resolve_config(file: str | Path | None = None, **flags) -> TrainConfig:
    """Resolve a config: defaults < dataset defaults < model defaults < the model's defaults on that
    dataset (e.g. resnet18 on cifar10: book 14.1's settings) < config file < flags.

    `flags` with value None are ignored (unset command-line options).
    """
    flags = {k: v for k, v in flags.items() if v is not None}
    from_file = read_config_file(file) if file else {}
    user = {**from_file, **coerce_fields(flags)}
    if user.get("recipe"):
        user = {**coerce_fields(recipe(user["recipe"])), **user}
    if "model" not in user:
        raise ConfigError("no model given: name one, e.g. `divekit train softmax-regression` (see `divekit list models`)")
    entry = MODELS.get(user["model"])
    data = user.get("data") or entry.defaults.get("data") or TrainConfig.data
    data_defaults = dataset_entry(data).defaults
    return resolve(data_defaults, entry.defaults, entry.per_data.get(data, {}), {"data": data}, user)


def default_run_dir(cfg: TrainConfig) -> Path:
    kind, sep, path = cfg.data.partition(":")  # "folder:/home/me/photos" -> "folder-photos"
    data = f"{kind}-{Path(path).stem or 'data'}" if sep else cfg.data
    base = Path("runs") / f"{cfg.model}-{data}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path


def _json_safe(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, tuple):
            v = list(v)
        try:
            json.dumps(v)
        except TypeError:
            continue
        out[k] = v
    return out


def preflight(model: torch.nn.Module, data: DataBundle, cfg: TrainConfig, task: Task | None = None) -> None:
    """Run one example through the model (as the task will) before training, so a bad input shape
    fails at once with a message naming the model and dataset."""
    batch = next(iter(data.test or data.valid or data.train))
    device = resolve_device(cfg.device)
    one = tuple(t[:1].to(device) for t in batch)
    task = task or make_task(task_name(model, data), cfg, data.context)
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.no_grad():
            task.reset(data.train)
            _, sums, n = task.step(model, one)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        hint = " Choose another --resize." if data.context.get("in_shape") and one[0].dim() == 4 else ""
        raise ConfigError(
            f"model {cfg.model!r} cannot take inputs of shape {tuple(one[0].shape[1:])} from dataset {cfg.data!r}"
            f"{f' at --resize {cfg.resize}' if cfg.resize else ''}: {str(e).splitlines()[0]}.{hint}"
        ) from None
    finally:
        model.train(was_training)
    if cfg.monitor is not None:  # the metrics the run will report: f"{split}_{name}"
        names = task.summarize({k: float(v) for k, v in sums.items()}, n)
        known = [f"{split}_{name}" for split in data.loaders() for name in names]
        if cfg.monitor not in known:
            raise ConfigError(f"--monitor {cfg.monitor!r} is not a metric of this run."
                              f"{did_you_mean(cfg.monitor, known)} Choose one of: {', '.join(known)}")


def run_meta(cfg: TrainConfig, data: DataBundle, model_name: str, task: str | None = None) -> dict[str, Any]:
    """What a checkpoint records to rebuild its model without the training data (`task`: the one
    it trained with, when the model named its own)."""
    return {
        "model": model_name,
        "model_args": cfg.model_args,
        "data": cfg.data,
        "task": task or data.task,
        "classes": data.classes,
        "context": _json_safe(data.context),
        "config": cfg.to_dict(),
    }


def _model_name(model: torch.nn.Module | str, cfg: TrainConfig) -> str:
    """The model name a run records: the registry name for divekit's models, else the class name
    (a run of a custom module cannot be rebuilt by `load_run`, and its name says so)."""
    if isinstance(model, str):
        return model
    return cfg.model if type(model).__module__.startswith("divekit.") else type(model).__name__


def fit(
    model: torch.nn.Module | str,
    data: DataBundle | str,
    config: TrainConfig | dict[str, Any] | None = None,
    *,
    run_dir: str | Path | None = None,
    progress: bool = True,
    callbacks: Iterable[Callback] = (),
    task: Task | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    resume_from: Checkpoint | None = None,
) -> Result:
    """Train `model` (a module or a registered name) on `data` (a DataBundle or a registered name).

    Writes a run folder (see module doc) unless `run_dir=False`. `optimizer` replaces the one the
    config names (e.g. with per-group settings). Returns a Result.
    """
    cfg = (resolve(config) if isinstance(config, dict) else config or TrainConfig()).validate()  # the one check
    torch.set_num_threads(resolve_threads(cfg.threads))  # config.json's "machine" records the number used
    dist.join_if_launched(cfg.device)  # a script run by torchrun that did not set up torch.distributed itself
    torch.manual_seed(cfg.seed)
    data = prepare_data(data, cfg)
    name = _model_name(model, cfg)
    if isinstance(model, str):
        model = create_model(model, context=data.context, **cfg.model_args)
    params = None
    if cfg.init_from:  # fine-tuning: pretrained body, new head, per-group learning rates (divekit.train.finetune)
        params = prepare_finetune(model, data, cfg, load_weights=resume_from is None)
    check_precision(cfg)
    task = task or make_task(task_name(model, data), cfg, data.context)
    preflight(model, data, cfg, task)
    run_dir = prepare_run_dir(cfg, run_dir)
    cbs = standard_callbacks(cfg, data, name, run_dir, progress, task) + list(callbacks)

    trainer = Trainer(model, data, cfg, task=task, callbacks=cbs, optimizer=optimizer, params=params)
    if resume_from is not None:
        trainer.restore(resume_from)
    dist.seed_ranks()  # under torchrun: one random stream per rank (dropout), after the shared model init
    metrics = trainer.fit()
    return Result(metrics, trainer.history, run_dir, trainer.model, cfg)


def prepare_data(data: DataBundle | str, cfg: TrainConfig) -> DataBundle:
    """The DataBundle of a run: `data` itself, or the registered dataset it names, loaded with the
    config's batch size, resize, augmentation, seed, device and data options."""
    if not isinstance(data, str):
        return data
    with dist.main_first():  # under torchrun, rank 0 downloads and caches the dataset once
        return load_dataset(data, batch_size=cfg.batch_size, resize=cfg.resize, augment=cfg.augment, seed=cfg.seed,
                            device=resolve_device(cfg.device), data_dir=cfg.data_dir, **cfg.data_args)


def prepare_run_dir(cfg: TrainConfig, run_dir: str | Path | None | bool) -> Path | None:
    """The run folder (created, with config.json written), or None for `run_dir=False`. Under
    torchrun rank 0 names it and writes it."""
    if run_dir is False:
        return None
    if run_dir is None:
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    run_dir = Path(dist.broadcast_object(str(run_dir)))
    if dist.is_main():
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(run_dir / CONFIG, {**cfg.to_dict(), MACHINE: machine_choices()})
        except OSError as e:
            raise ConfigError(f"cannot write the run folder {run_dir}: {e.strerror or e}; choose another --out") from None
    return run_dir


def standard_callbacks(cfg: TrainConfig, data: DataBundle, name: str, run_dir: Path | None,
                       progress: bool, task: Task | None = None) -> list[Callback]:
    """The callbacks every run gets: progress bar, metrics files and checkpoints (with a run
    folder), curves (unless --no-plot), early stopping with --patience, and a GAN's samples after
    every epoch."""
    cbs: list[Callback] = [ProgressBar()] if progress else []
    if run_dir is not None:
        cbs += [MetricsLogger(run_dir), CheckpointSaver(run_dir, run_meta(cfg, data, name, task and task.name))]
        if task is not None and task.name == "gan":
            cbs.append(SampleGrid(run_dir, seed=cfg.seed, plot=cfg.plot))
    if cfg.plot:
        cbs.append(PlotCurves(run_dir, title=f"{name} on {data.name}"))
    if cfg.patience:
        cbs.append(EarlyStopping(cfg.patience))
    return cbs


def machine_choices() -> dict[str, Any]:
    """What this process chose from the machine rather than the config: the thread count (when the
    config leaves it to the machine), the OpenMP wait policy and the other programs' load at import
    (divekit.core.host). A resumed run chooses again."""
    return {"threads": torch.get_num_threads(), "omp_wait_policy": host.WAIT_POLICY or "torch's default",
            "busy_cores_at_import": round(host.BUSY_CORES, 2)}


def read_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise DivekitError(f"{run_dir} is not a divekit run folder: it has no {CONFIG}")
    return resolve(read_config_file(path))


def train(config: TrainConfig | None = None, *, progress: bool = True, callbacks: Iterable[Callback] = (),
          resume: str | Path | None = None, **overrides) -> Result:
    """Train a registered model on a registered dataset.

    `train(model="softmax-regression", data="fashion-mnist", epochs=10)` or `train(cfg)`.
    `resume=RUN_DIR` continues a run from its last checkpoint; only epochs, device, data_dir,
    log_every, patience, plot and threads may change then.
    """
    if resume is not None:
        run_dir = Path(resume)
        cfg = read_run_config(run_dir)
        changed = {k: v for k, v in coerce_fields({k: v for k, v in overrides.items() if v is not None}).items()
                   if getattr(cfg, k) != v}
        fixed = sorted(set(changed) - RESUMABLE)
        if fixed:
            raise ConfigError(f"cannot change {', '.join(fixed)} when resuming {run_dir}; "
                              f"only {', '.join(sorted(RESUMABLE))} may change (start a new run for the rest)")
        cfg = cfg.replace(**changed)
        ckpt = Checkpoint(checkpoint_path(run_dir, "last"))
        if ckpt.meta["trainer"]["epoch"] >= cfg.epochs:
            raise ConfigError(f"{run_dir} already finished {ckpt.meta['trainer']['epoch']} epochs; "
                              f"pass a larger --epochs to train further")
        return fit(cfg.model, cfg.data, cfg, run_dir=run_dir, progress=progress, callbacks=callbacks, resume_from=ckpt)
    cfg = config if config is not None else resolve_config(**overrides)
    return fit(cfg.model, cfg.data, cfg, progress=progress, callbacks=callbacks)


def load_run(run_dir: str | Path, which: str = "best", device: str = "cpu") -> tuple[torch.nn.Module, Checkpoint]:
    """Rebuild a run's model with its trained weights: `which` is 'best' or 'last'."""
    ckpt = Checkpoint(checkpoint_path(run_dir, which))
    meta = ckpt.meta
    if meta["model"] not in MODELS:
        raise DivekitError(f"{run_dir} was trained with a custom model {meta['model']!r}: build it yourself and use "
                           "Checkpoint(path).load_model(model)")
    model = create_model(meta["model"], context=meta["context"], **meta["model_args"])
    ckpt.load_model(model)
    return model.to(resolve_device(device)).eval(), ckpt
