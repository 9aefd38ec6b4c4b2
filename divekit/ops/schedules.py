"""Learning-rate schedules (book 12.11), written as plain functions of training progress.

A schedule maps progress `t` (in epochs, fractional within an epoch) to a factor that multiplies
each parameter group's base learning rate, so groups with different rates (a fine-tuned body and a
new head) keep their ratio. Time-based schedules are stateless, which makes resuming exact;
reduce-on-plateau keeps a little state (saved in checkpoints). Tests check each against its
torch.optim.lr_scheduler counterpart.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..core.errors import ConfigError


class Schedule:
    """Base: `factor(epoch, step, steps_per_epoch)`; `on_epoch_end(metric)` for metric-driven ones."""

    per_step = False  # True: changes within an epoch; False: constant within an epoch

    def factor(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        return 1.0

    def on_epoch_end(self, metric: float | None) -> None:
        """Called after each epoch with the monitored metric (used by plateau)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


class Step(Schedule):
    """lr * gamma^floor(epoch / step_size) (torch StepLR stepped once per epoch)."""

    def __init__(self, step_size: int = 10, gamma: float = 0.1):
        if step_size < 1 or not 0 < gamma <= 1:
            raise ConfigError(f"step schedule needs step_size >= 1 and 0 < gamma <= 1, got {step_size}, {gamma}")
        self.step_size, self.gamma = step_size, gamma

    def factor(self, epoch, step, steps_per_epoch):
        return self.gamma ** (epoch // self.step_size)


class MultiStep(Schedule):
    """lr * gamma^(number of milestones passed) (torch MultiStepLR); milestones are epochs."""

    def __init__(self, milestones: Sequence[int] = (30, 60), gamma: float = 0.1):
        if not 0 < gamma <= 1 or any(m < 1 for m in milestones):
            raise ConfigError(f"multistep needs milestones >= 1 and 0 < gamma <= 1, got {list(milestones)}, {gamma}")
        self.milestones, self.gamma = sorted(milestones), gamma

    def factor(self, epoch, step, steps_per_epoch):
        return self.gamma ** sum(epoch >= m for m in self.milestones)


class Exponential(Schedule):
    """lr * gamma^epoch (torch ExponentialLR)."""

    def __init__(self, gamma: float = 0.9):
        if not 0 < gamma <= 1:
            raise ConfigError(f"exponential schedule needs 0 < gamma <= 1, got {gamma}")
        self.gamma = gamma

    def factor(self, epoch, step, steps_per_epoch):
        return self.gamma**epoch


class Cosine(Schedule):
    """Linear warmup from 0 over `warmup_epochs`, then cosine decay to `final` x lr at the end.

    Updated every step. Without warmup it equals torch's CosineAnnealingLR(T_max=epochs,
    eta_min=final*lr) at the start of every epoch.
    """

    per_step = True

    def __init__(self, epochs: int, warmup_epochs: float = 0.0, final: float = 0.0):
        if not 0 <= warmup_epochs < epochs:
            raise ConfigError(f"--warmup-epochs must be in [0, epochs={epochs}), got {warmup_epochs}")
        self.epochs, self.warmup, self.final = epochs, warmup_epochs, final

    def factor(self, epoch, step, steps_per_epoch):
        t = epoch + step / steps_per_epoch
        if t < self.warmup:
            return t / self.warmup
        progress = (t - self.warmup) / (self.epochs - self.warmup)
        return self.final + (1 - self.final) * (1 + math.cos(math.pi * progress)) / 2


class OneCycle(Schedule):
    """Smith's one-cycle policy, torch OneCycleLR's cosine variant: from lr/div_factor up to lr over
    pct_start of the steps, then down to lr/(div_factor*final_div_factor)."""

    per_step = True

    def __init__(self, epochs: int, pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4):
        if not 0 < pct_start < 1:
            raise ConfigError(f"onecycle needs 0 < pct_start < 1, got {pct_start}")
        self.epochs, self.pct_start = epochs, pct_start
        self.start, self.end = 1 / div_factor, 1 / (div_factor * final_div_factor)

    @staticmethod
    def _cos(a: float, b: float, frac: float) -> float:
        return b + (a - b) * (1 + math.cos(math.pi * frac)) / 2

    def factor(self, epoch, step, steps_per_epoch):
        total = self.epochs * steps_per_epoch
        i = epoch * steps_per_epoch + step
        peak = self.pct_start * total - 1  # the step at which lr reaches its maximum, as in torch
        if i <= peak:
            return self._cos(self.start, 1.0, i / peak)
        return self._cos(1.0, self.end, (i - peak) / (total - 1 - peak))


class Plateau(Schedule):
    """Multiply lr by `factor` when the monitored metric has not improved (by a relative threshold)
    for `patience` epochs (torch ReduceLROnPlateau). `mode` "min" watches a loss, "max" an
    accuracy; the trainer sets it from --monitor."""

    def __init__(self, factor: float = 0.1, patience: int = 2, threshold: float = 1e-4, min_factor: float = 0.0,
                 mode: str = "min"):
        if not 0 < factor < 1 or patience < 0:
            raise ConfigError(f"plateau needs 0 < factor < 1 and patience >= 0, got {factor}, {patience}")
        if mode not in ("min", "max"):
            raise ConfigError(f"plateau mode must be min (a loss) or max (an accuracy), got {mode!r}")
        self.decay, self.patience, self.threshold, self.min_factor = factor, patience, threshold, min_factor
        self.mode = mode
        self.scale, self.best, self.bad_epochs = 1.0, self._worst(), 0

    def _worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def factor(self, epoch, step, steps_per_epoch):
        return self.scale

    def on_epoch_end(self, metric):
        if metric is None:
            return
        if self.mode == "min":
            improved = metric < self.best * (1 - self.threshold)
        else:
            improved = metric > self.best * (1 + self.threshold)
        if improved:
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale, self.bad_epochs = max(self.scale * self.decay, self.min_factor), 0

    def state_dict(self):
        return {"scale": self.scale, "best": self.best if math.isfinite(self.best) else None, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        self.scale, self.bad_epochs = state["scale"], state["bad_epochs"]
        self.best = self._worst() if state["best"] is None else state["best"]


SCHEDULES = {"step": Step, "multistep": MultiStep, "exponential": Exponential, "cosine": Cosine,
             "onecycle": OneCycle, "plateau": Plateau}


def build_schedule(name: str | None, epochs: int, warmup_epochs: float = 0.0, **args) -> Schedule | None:
    """A schedule by config name, or None. `args` are the schedule's own options (gamma, ...)."""
    if name is None:
        if warmup_epochs:
            raise ConfigError("--warmup-epochs needs a schedule: use --scheduler cosine")
        return None
    if name not in SCHEDULES:
        raise ConfigError(f"unknown --scheduler {name!r}; known: {', '.join(SCHEDULES)}")
    cls = SCHEDULES[name]
    if cls in (Cosine, OneCycle):
        args["epochs"] = epochs
    if cls is Cosine:
        args["warmup_epochs"] = warmup_epochs
    elif warmup_epochs:
        raise ConfigError(f"--warmup-epochs applies to the cosine schedule, not {name!r}")
    try:
        return cls(**args)
    except TypeError as e:
        raise ConfigError(f"--scheduler {name}: {e}") from None
