"""Callbacks: the base class with the trainer's hooks, and the standard ones: progress bar,
metrics files, checkpoints, early stopping, curves, a generative model's samples.

Every callback that writes files does so only on the main process (rank 0).
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core import dist
from ..core.checkpoint import checkpoint_payload, weights_only, write_checkpoint
from ..core.io import BackgroundWriter, write_json_atomic, write_text_atomic
from ..core.rundir import BEST, CURVES, LAST, METRICS, METRICS_CSV, SAMPLE_POINTS, sample_grid_path
from .config import TrainConfig

if TYPE_CHECKING:  # the trainer imports this module; the hooks' annotations only name its class
    from .trainer import Trainer


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where figures can be shown in the cell). A kernel has imported
    IPython already; elsewhere it is not imported (~250 ms) just to ask."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"

def monitor_name(config: TrainConfig, metrics: dict[str, float]) -> str | None:
    """The metric that early stopping, the best checkpoint and plateau schedules watch."""
    if config.monitor:
        return config.monitor
    return next((m for m in ("valid_loss", "test_loss", "train_loss") if m in metrics), None)


class StopTraining(Exception):
    """Raised by a callback to end training after the current epoch."""


class Callback:
    """Base class: override the hooks you need. Hooks receive the trainer."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...
    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None: ...
    def on_step_end(self, trainer: "Trainer", step: int) -> None: ...
    def on_log(self, trainer: "Trainer", logs: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...
    def on_fit_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...
    def teardown(self, trainer: "Trainer") -> None:
        """Always called when fit() leaves, also after an error: release what the callback holds."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def monitor_mode(name: str) -> str:
    """'max' for accuracies, 'min' for losses and errors."""
    return "max" if name.endswith(("acc", "accuracy", "bleu", "map", "iou")) else "min"


class ProgressBar(Callback):
    """A tqdm bar per epoch with live loss, accuracy (or perplexity) and examples/s (tokens/s for
    language models), on the main process only."""

    def __init__(self):
        self.bar = None

    def on_epoch_start(self, trainer, epoch):
        if dist.is_main():
            self.bar = tqdm(total=len(trainer.data.train), desc=f"epoch {epoch + 1}/{trainer.config.epochs}",
                            unit="batch", leave=True, dynamic_ncols=True)

    def on_step_end(self, trainer, step):
        if self.bar is not None:
            self.bar.update(1)

    def on_log(self, trainer, logs):
        if self.bar is not None:
            shown = {k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "acc", "ppl", "loss_d", "loss_g")}
            shown[f"{trainer.task.unit}/s"] = f"{logs['per_s']:.0f}"
            self.bar.set_postfix(shown, refresh=False)

    def on_epoch_end(self, trainer, metrics):
        if self.bar is not None:
            shown = {k: f"{v:.4g}" for k, v in metrics.items()
                     if k.endswith(("_loss", "_acc", "_ppl", "_loss_d", "_loss_g"))}
            self.bar.set_postfix(shown)
            self.bar.close()
            self.bar = None

    def on_fit_end(self, trainer, metrics):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsLogger(Callback):
    """Writes the per-epoch history as metrics.json and metrics.csv in the run folder (core.rundir)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)

    def on_epoch_end(self, trainer, metrics):
        if not dist.is_main():
            return
        history = trainer.history
        write_json_atomic(self.run_dir / METRICS, history)
        columns = list(dict.fromkeys(k for h in history for k in h))
        table = io.StringIO()
        w = csv.DictWriter(table, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(history)
        write_text_atomic(self.run_dir / METRICS_CSV, table.getvalue())


class CheckpointSaver(Callback):
    """After every epoch: the last checkpoint, and the best one by the monitored metric.

    The epoch's weights, optimizer and RNG state are copied when it ends; serializing, fsyncing and
    renaming the files then runs on a background thread while the next epoch trains (`background`).
    Before the next epoch's checkpoint, at the end of fit and when fit leaves through an error, the
    pending write is waited for, so each file on disk is always a whole, resumable checkpoint of one
    finished epoch.
    """

    def __init__(self, run_dir: str | Path, meta: dict[str, Any], background: bool = True):
        self.run_dir = Path(run_dir)
        self.meta = meta  # what is needed to rebuild the model: config, context, classes ...
        self.best: float | None = None
        self.writer = BackgroundWriter() if background else None

    def on_epoch_end(self, trainer, metrics):
        monitor = monitor_name(trainer.config, metrics)
        value = metrics.get(monitor) if monitor else None
        improved = value is not None and math.isfinite(value) and (
            self.best is None or (value > self.best if monitor_mode(monitor) == "max" else value < self.best)
        )
        if improved:
            self.best = value
        if not dist.is_main():
            return
        meta = {**self.meta, "trainer": trainer.state_dict(), "monitor": monitor}
        last = checkpoint_payload(trainer.model, trainer.optimizer, meta)
        best = weights_only(last) if improved else None  # the same snapshot: the weights are copied once

        def write():
            write_checkpoint(self.run_dir / LAST, last)
            if best is not None:
                write_checkpoint(self.run_dir / BEST, best)

        if self.writer is None:
            write()
        else:
            self.writer.submit(write)

    def on_fit_end(self, trainer, metrics):
        if self.writer is not None:
            self.writer.wait()

    def teardown(self, trainer):
        if self.writer is not None:
            self.writer.close()

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state.get("best")


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved for `patience` epochs."""

    def __init__(self, patience: int, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best: float | None = None
        self.wait = 0

    def on_epoch_end(self, trainer, metrics):
        monitor = monitor_name(trainer.config, metrics)
        value = metrics.get(monitor)
        if value is None:
            return
        sign = 1 if monitor_mode(monitor) == "max" else -1
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            if dist.is_main():
                print(f"early stopping: {monitor} has not improved for {self.patience} epochs (best {self.best:.4g})")
            raise StopTraining

    def state_dict(self):
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state):
        self.best, self.wait = state.get("best"), state.get("wait", 0)


class PlotCurves(Callback):
    """Saves curves.png in the run folder at the end of training; in Jupyter also redraws the figure
    live in the cell after an epoch, at most every `live_every_s` seconds (a redraw costs ~0.3 s, so
    a run of many quick epochs is not slowed down by its plot), and once more at the end.

    Importing matplotlib and drawing cost ~0.5 s, so outside a notebook the figure is drawn once, when
    training ends (metrics.csv, written every epoch, holds the same curves meanwhile).
    """

    def __init__(self, run_dir: str | Path | None, title: str = "", live: bool | None = None,
                 live_every_s: float = 1.0):
        self.run_dir = Path(run_dir) if run_dir else None
        self.title = title
        self.live = in_notebook() if live is None else live
        self.live_every_s = live_every_s
        self._handle = None
        self._drawn_at = -math.inf

    def _draw(self, trainer, save: bool) -> None:
        if not dist.is_main() or not trainer.history or not (self.live or (save and self.run_dir)):
            return
        import matplotlib.pyplot as plt  # deferred: matplotlib costs ~400 ms at start-up

        from ..core.plot import curves_figure, save_figure

        fig = curves_figure(trainer.history, self.title)
        self._drawn_at = time.monotonic()
        if self.live:
            from IPython.display import display

            if self._handle is None:
                self._handle = display(fig, display_id=True)
            else:
                self._handle.update(fig)
        if save and self.run_dir is not None:
            save_figure(fig, self.run_dir / CURVES)
        plt.close(fig)

    def on_epoch_end(self, trainer, metrics):
        if self.live and time.monotonic() - self._drawn_at >= self.live_every_s:
            self._draw(trainer, save=False)

    def on_fit_end(self, trainer, metrics):
        self._draw(trainer, save=True)


class SampleGrid(Callback):
    """A generative model's samples (`model.sample`) after every epoch, from the same noise each time
    (its own generator seeded with `seed`, so the run's random stream is untouched): images are saved
    as a grid, samples/epoch_NNN.png in the run folder; 2-D points (the toy GAN) are kept and drawn
    beside the real data at a few epochs as samples.png when training ends (unless `plot` is off).

    The kept points are the callback's state, saved in checkpoints, so the plot of a resumed run
    also shows the epochs before the resume."""

    def __init__(self, run_dir: str | Path, num: int = 64, seed: int = 0, plot: bool = True, panels: int = 4,
                 num_points: int = 500):
        self.run_dir, self.num, self.seed, self.plot, self.panels = Path(run_dir), num, seed, plot, panels
        self.num_points = num_points
        self.points: dict[int, Any] = {}  # epoch -> generated points (N, 2)

    @staticmethod
    def _is_points(trainer) -> bool:
        return len(trainer.data.context.get("in_shape", ())) == 1  # 2-D data: many points, not a grid

    def _sample(self, trainer) -> torch.Tensor:
        num = self.num_points if self._is_points(trainer) else self.num
        return trainer.model.sample(num, torch.Generator().manual_seed(self.seed)).float().cpu()

    def on_epoch_end(self, trainer, metrics):
        if not dist.is_main():
            return
        samples = self._sample(trainer)
        if samples.dim() == 4:  # (N, C, H, W) images in [0, 1]
            from ..core.plot import save_image_grid  # deferred: matplotlib costs ~400 ms at start-up

            save_image_grid(samples.numpy(), sample_grid_path(self.run_dir, int(metrics["epoch"])))
        elif samples.dim() == 2 and samples.shape[1] == 2:
            self.points[int(metrics["epoch"])] = samples.numpy()

    def on_fit_end(self, trainer, metrics):
        if not (dist.is_main() and self.plot and self.points):
            return
        from ..core.plot import points_figure, save_figure

        epochs = sorted(self.points)
        picked = sorted({epochs[round(i * (len(epochs) - 1) / max(self.panels - 1, 1))] for i in range(self.panels)})
        real = trainer.data.train.tensors[0][:1000].float().cpu().numpy()
        fig = points_figure(real, {f"epoch {e}": self.points[e] for e in picked})
        save_figure(fig, self.run_dir / SAMPLE_POINTS)

    def state_dict(self):
        # JSON (checkpoint metadata): epoch -> [[x, y], ...], 4 decimals, plenty for a scatter plot
        return {"points": {str(e): np.round(p.astype(np.float64), 4).tolist() for e, p in self.points.items()}}

    def load_state_dict(self, state):
        self.points = {int(e): np.asarray(p, dtype=np.float32) for e, p in state.get("points", {}).items()}
