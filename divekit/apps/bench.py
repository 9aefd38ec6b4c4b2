"""`divekit bench MODEL`: training and inference throughput with each speed switch.

    divekit bench lenet                      # synthetic Fashion-MNIST-shaped batches, no download
    divekit bench resnet18 --resize 96 --steps 5 --repeats 3
    divekit bench resnet18 --data fashion-mnist --switches fp32,bf16+channels_last,compile --json

Each switch is a TrainConfig setting (precision bf16/fp16, channels_last, torch.compile, the
optimizer's foreach/fused implementation); "a+b" combines switches. For every switch a fresh model
(same seed) runs `--warmup` steps that are not timed (torch.compile compiles there too, and its
time is reported apart), then `--repeats` timed runs of `--steps` steps of the trainer's own
`train_step` and of its evaluation step, the switches taking turns; throughput is examples (tokens,
for language models) per second, reported as mean ± standard deviation over the repeats. Batches come from the dataset's
loader (`--data`), or from a small synthetic set of random images of the dataset's shape passed
through the same loader (the default: no download, so it runs anywhere).
"""

from __future__ import annotations

import inspect
import os
import platform
import statistics
import time
from typing import Any, Iterator

import torch

from ..core.device import resolve_device
from ..core.errors import ConfigError, DivekitError, did_you_mean
from ..data.registry import load_dataset
from ..data.vision import image_classification
from ..models.registry import create_model
from ..ops.optim import OPTIMIZERS
from ..tasks.base import make_task
from ..train.api import resolve_config
from ..train.config import SPEED_SWITCHES as SWITCHES
from ..train.trainer import Trainer

# (channels, height, width, classes) of image datasets, for synthetic batches of their shape
IMAGE_SHAPES = {"fashion-mnist": (1, 28, 28, 10), "mnist": (1, 28, 28, 10), "digits": (1, 8, 8, 10)}


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what platform knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        name = None
    return name or platform.processor() or platform.machine() or "unknown cpu"


def hardware(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                            "torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if hasattr(os, "getloadavg"):
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)  # other jobs competing for the CPU
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def parse_switches(text: str | None, *, device: torch.device, images: bool, with_compile: bool,
                   fused_ok: bool) -> list[str]:
    """The switches to measure: the user's list (checked), or every one that applies here."""
    if text is None:
        names = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else []) + (["channels_last"] if images else [])
        names += ["foreach"] + (["fused"] if fused_ok else []) + (["compile"] if with_compile else [])
        return names
    names = [s.strip() for s in text.split(",") if s.strip()]
    for name in names:
        for part in name.split("+"):
            if part not in SWITCHES:
                raise ConfigError(f"--switches: unknown switch {part!r}.{did_you_mean(part, SWITCHES)} "
                                  f"Known: {', '.join(SWITCHES)} (combine with +)")
            if part == "channels_last" and not images:
                raise ConfigError("--switches channels_last applies to image batches (N, C, H, W); this data has none")
    return names


def overrides_of(switch: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in switch.split("+"):
        out.update(SWITCHES[part])
    return out


def synthetic_bundle(data: str, batch_size: int, resize: int | None, seed: int, device, batches: int = 4):
    """Random uint8 images (and labels) of `data`'s shape, through the same loader and transforms."""
    if data not in IMAGE_SHAPES:
        raise ConfigError(f"no synthetic inputs for dataset {data!r}: pass --data {data} to measure on its batches "
                          f"(synthetic shapes exist for {', '.join(IMAGE_SHAPES)})")
    c, h, w, k = IMAGE_SHAPES[data]
    g = torch.Generator().manual_seed(seed)
    n = batch_size * batches
    x = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    y = torch.randint(0, k, (n,), generator=g)
    return image_classification(f"synthetic-{data}", x, y, x[:batch_size], y[:batch_size], [str(i) for i in range(k)],
                                batch_size=batch_size, seed=seed, device=device, resize=resize)


def _cycle(loader) -> Iterator:
    while True:
        yield from loader


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(step, batches: Iterator, steps: int, device: torch.device) -> float:
    """Examples (the task's unit) per second over `steps` calls of step(batch) -> (sums, n)."""
    _sync(device)
    start, n = time.perf_counter(), 0
    for _ in range(steps):
        _, k = step(next(batches))
        n += k
    _sync(device)
    return n / (time.perf_counter() - start)


class _Candidate:
    """One switch's trainer (fresh model, same seed), warmed up, ready to be timed."""

    def __init__(self, model_name: str, cfg, data, warmup: int):
        torch.manual_seed(cfg.seed)
        self.trainer = trainer = Trainer(create_model(model_name, context=data.context, **cfg.model_args), data, cfg)
        self.row: dict[str, Any] = {}
        if cfg.compile:
            self.row["compile_seconds"] = round(trainer._warm_up(), 2)
        self.held_out = data.test or data.valid or data.train
        self.train_batches, self.eval_batches = _cycle(data.train), _cycle(self.held_out)
        self.train_rates: list[float] = []
        self.infer_rates: list[float] = []
        for _ in range(warmup):
            self.train_step(next(self.train_batches))
        for _ in range(warmup):
            self.infer_step(next(self.eval_batches))

    def train_step(self, batch):
        self.trainer.train_model.train()
        return self.trainer.train_step(batch)

    def infer_step(self, batch):
        return self.trainer.evaluate_batch(batch, self.held_out)

    def time_once(self, steps: int) -> None:
        device = self.trainer.device
        self.train_rates.append(_rate(self.train_step, self.train_batches, steps, device))
        self.infer_rates.append(_rate(self.infer_step, self.eval_batches, steps, device))

    def summary(self) -> dict[str, Any]:
        out = dict(self.row)
        for name, rates in (("train", self.train_rates), ("infer", self.infer_rates)):
            out[f"{name}_per_s"] = round(statistics.fmean(rates), 1)
            out[f"{name}_std"] = round(statistics.stdev(rates), 1) if len(rates) > 1 else 0.0
        return out


def _error(e: Exception) -> dict[str, str]:
    return {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}


def measure(model_name: str, configs: dict[str, Any], data, *, steps: int, warmup: int,
            repeats: int) -> list[dict[str, Any]]:
    """Train and inference throughput of each named config: mean and std over `repeats`.

    The repeats are interleaved (switch 1, 2, ..., then 1, 2, ... again), so a change in the load of
    a shared machine during the benchmark affects every switch alike rather than the last ones.
    A switch that fails (e.g. torch.compile without a C++ compiler) gets an "error" entry.
    """
    candidates: dict[str, _Candidate | dict] = {}
    for name, cfg in configs.items():
        try:
            candidates[name] = _Candidate(model_name, cfg, data, warmup)
        except DivekitError:
            raise
        except Exception as e:  # noqa: BLE001 - one switch failing must not lose the others
            candidates[name] = _error(e)
    for _ in range(repeats):
        for name, c in candidates.items():
            if isinstance(c, _Candidate):
                try:
                    c.time_once(steps)
                except Exception as e:  # noqa: BLE001
                    candidates[name] = _error(e)
    return [{"switch": name, **(c.summary() if isinstance(c, _Candidate) else c)} for name, c in candidates.items()]


def bench(model: str, *, data: str | None = None, steps: int = 20, warmup: int = 3, repeats: int = 3,
          batch_size: int | None = None, resize: int | None = None, device: str = "auto", switches: str | None = None,
          with_compile: bool = False, data_dir: str | None = None) -> dict[str, Any]:
    """Measure `model` with each switch; returns the JSON-able results (see module doc)."""
    for name, value in (("steps", steps), ("repeats", repeats)):
        if value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {warmup}")
    flags = {"model": model, "data": data, "batch_size": batch_size, "resize": resize, "device": device,
             "data_dir": data_dir}
    base = resolve_config(**flags)
    dev = resolve_device(base.device)
    synthetic = data is None
    if synthetic:
        bundle = synthetic_bundle(base.data, base.batch_size, base.resize, base.seed, dev)
    else:
        bundle = load_dataset(base.data, batch_size=base.batch_size, resize=base.resize, seed=base.seed, device=dev,
                              data_dir=base.data_dir, **base.data_args)
    first = next(iter(bundle.train))[0]
    images = first.dim() == 4 and first.is_floating_point()
    builder = OPTIMIZERS[base.optimizer]
    optimizer_class = builder.args[0] if getattr(builder, "args", None) else None
    fused_ok = optimizer_class is not None and "fused" in inspect.signature(optimizer_class.__init__).parameters
    names = parse_switches(switches, device=dev, images=images, with_compile=with_compile, fused_ok=fused_ok)
    configs = {name: base.replace(**overrides_of(name)) for name in names}
    results = measure(model, configs, bundle, steps=steps, warmup=warmup, repeats=repeats)
    fp32 = next((r for r in results if r["switch"] == "fp32" and "train_per_s" in r), None)
    for r in results:
        if fp32 and "train_per_s" in r:
            r["train_speedup"] = round(r["train_per_s"] / fp32["train_per_s"], 3)
            r["infer_speedup"] = round(r["infer_per_s"] / fp32["infer_per_s"], 3)

    return {
        "model": model, "data": base.data, "synthetic": synthetic, "batch_size": base.batch_size, "resize": base.resize,
        "input_shape": list(first.shape[1:]), "unit": make_task(bundle.task, base, bundle.context).unit,
        "optimizer": base.optimizer, "steps": steps, "warmup": warmup, "repeats": repeats,
        "hardware": hardware(dev), "results": results,
    }


def format_table(result: dict[str, Any]) -> str:
    hw, unit = result["hardware"], result["unit"]
    where = hw.get("gpu") or f"{hw['cpu']}, {hw['cores']} cores ({hw['torch_threads']} torch threads)"
    source = "synthetic " if result["synthetic"] else ""
    lines = [
        f"{result['model']} on {source}{result['data']} batches of {result['batch_size']} x "
        f"{'x'.join(map(str, result['input_shape']))}, {result['optimizer']}; {hw['device']}: {where}; "
        f"torch {hw['torch']}" + (f"; load average {hw['load_avg_1min']}" if "load_avg_1min" in hw else ""),
        f"{result['steps']} steps x {result['repeats']} repeats after {result['warmup']} warm-up steps, mean ± std",
        f"{'switch':<22s} {'train ' + unit + '/s':>18s} {'infer ' + unit + '/s':>18s} {'train':>7s} {'infer':>7s}",
    ]
    for r in result["results"]:
        if "error" in r:
            lines.append(f"{r['switch']:<22s} failed: {r['error']}")
            continue
        train = f"{r['train_per_s']:.0f} ± {r['train_std']:.0f}"
        infer = f"{r['infer_per_s']:.0f} ± {r['infer_std']:.0f}"
        speed = f"{r.get('train_speedup', float('nan')):6.2f}x {r.get('infer_speedup', float('nan')):6.2f}x"
        extra = f"  (compiled in {r['compile_seconds']:.1f} s, not timed)" if "compile_seconds" in r else ""
        lines.append(f"{r['switch']:<22s} {train:>18s} {infer:>18s} {speed}{extra}")
    return "\n".join(lines)
