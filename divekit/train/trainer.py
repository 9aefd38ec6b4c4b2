"""The trainer: one loop that reads top to bottom, extended through a fixed list of hooks.

Hooks, called on every callback in order: on_fit_start, on_epoch_start, on_step_end, on_log,
on_epoch_end, on_fit_end. A callback may raise StopTraining to end training early (the callbacks
after it still run for that epoch) and may carry state (`state_dict` / `load_state_dict`) that is
saved in checkpoints; checkpoint savers run after every other callback.

Metrics stay on the device as tensors during an epoch; they are read only every `log_every`
steps (for the progress bar and the NaN check) and at the end of the epoch.

Under torch.distributed (e.g. `torchrun`) the trainer steps a DistributedDataParallel wrapper of
the model, so gradients are averaged over the processes in backward; `self.model` stays the plain
module (checkpoints keep its key names), metrics are summed over the processes, and only rank 0
writes files. With `config.compile` it steps a torch.compile'd model, compiled on one batch
before the clock starts.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Iterable

import torch

from ..core import dist
from ..core.device import resolve_device
from ..core.errors import ConfigError, DivekitError, TrainingDiverged
from ..data.registry import DataBundle
from ..ops.optim import build_optimizer
from ..ops.schedules import build_schedule
from ..tasks import Task, make_task, task_name
from .callbacks import Callback, CheckpointSaver, StopTraining, monitor_mode, monitor_name
from .config import TrainConfig


def check_precision(config: TrainConfig) -> torch.device:
    """The run's device, after checking that it supports the configured precision."""
    device = resolve_device(config.device)
    if config.precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"--precision fp16 needs a CUDA GPU (it relies on a gradient scaler); use bf16 on {device.type}")
    return device


class Trainer:
    """Trains `model` on `data` with `config`; `fit()` returns the last epoch's metrics.

    The optimizer is `optimizer` if given, else the config's over `params` (parameter groups, as
    fine-tuning makes), the task's parameter groups (a GAN's two networks) or all of the model's
    parameters. A task with `manual_update` makes each step's update itself (`Task.train_step`).
    `restore(checkpoint)` continues a run from its last checkpoint."""

    def __init__(
        self,
        model: torch.nn.Module,
        data: DataBundle,
        config: TrainConfig,
        *,
        task: Task | None = None,
        callbacks: Iterable[Callback] = (),
        optimizer: torch.optim.Optimizer | None = None,
        params: Iterable[Any] | None = None,
    ):
        self.config = config
        self.device = check_precision(config)
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
        # building a torch.autocast costs ~10 us a step, so fp32 gets a no-op context
        self.autocast = (lambda: torch.autocast(self.device.type, dtype=dtype)) if dtype else contextlib.nullcontext
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.data = data
        self.task = task or make_task(task_name(model, data), config, data.context)
        if self.task.manual_update and (self.scaler is not None or config.grad_clip is not None or dist.is_distributed()):
            raise ConfigError(f"the {self.task.name} task makes its own updates: it runs without --grad-clip, "
                              "fp16 and torch.distributed (use bf16 or fp32 on one process)")
        if params is None and optimizer is None:
            params = self.task.param_groups(self.model, config)
        # the one place an optimizer is built: over `params` (e.g. fine-tuning's per-group rates) or all parameters
        self.optimizer = optimizer or build_optimizer(
            config.optimizer, self.model.parameters() if params is None else params, lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay, impl=config.optimizer_impl,
        )
        # the modules the loop calls: training goes through DistributedDataParallel (gradients
        # averaged over processes) when distributed; both are compiled with config.compile
        self.train_model = dist.data_parallel(self.model, self.device)
        self.eval_model = self.model
        if config.compile:
            self.train_model = torch.compile(self.train_model)
            self.eval_model = torch.compile(self.model) if self.train_model is not self.model else self.train_model
        self.compile_seconds = 0.0  # torch.compile's warm-up, not counted in `seconds`
        for group in self.optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])  # schedules scale each group's base rate
        schedule_args = dict(config.scheduler_args)
        if config.scheduler == "plateau" and config.monitor and "mode" not in schedule_args:
            schedule_args["mode"] = monitor_mode(config.monitor)  # --monitor valid_acc: decay when it stops rising
        self.schedule = build_schedule(config.scheduler, config.epochs, config.warmup_epochs, **schedule_args)
        # checkpoint savers last (as Lightning orders them), so that the state every other callback
        # keeps (early stopping's count, a GAN's sample points) is saved as of the epoch just ended
        self.callbacks = sorted(callbacks, key=lambda cb: isinstance(cb, CheckpointSaver))
        self.history: list[dict[str, float]] = []
        self.epoch = 0  # epochs completed
        self.seconds = 0.0  # training + evaluation time over all sessions of this run (resume included)
        self._deadline, self._out_of_time = math.inf, False  # --time-limit, set when fit() starts

    # -- the loop -----------------------------------------------------------------------------

    def fit(self) -> dict[str, float]:
        """Train until config.epochs (or early stopping, or --time-limit); returns the last epoch's metrics."""
        try:
            metrics = self._fit()
        except BaseException as error:  # e.g. the checkpoint of the last finished epoch is still written out
            for failure in self._teardown():
                error.add_note(f"and while finishing the run's files: {type(failure).__name__}: {failure}")
            raise
        failures = self._teardown()
        if failures:
            raise failures[0]
        return metrics

    def _teardown(self) -> list[Exception]:
        """Every callback's teardown, each even if one before it failed; returns the failures."""
        failures = []
        for cb in self.callbacks:
            if hasattr(cb, "teardown"):  # a callback need not derive from Callback
                try:
                    cb.teardown(self)
                except Exception as e:
                    failures.append(e)
        return failures

    def _fit(self) -> dict[str, float]:
        self._call("on_fit_start")
        if self.config.compile and self.epoch < self.config.epochs:
            self.compile_seconds = self._warm_up()
            if dist.is_main():
                print(f"torch.compile: {self.compile_seconds:.1f} s of compilation (not counted in the run's seconds)")
        self._deadline = time.perf_counter() + self.config.time_limit if self.config.time_limit else math.inf
        self._out_of_time = False
        with contextlib.suppress(StopTraining):  # a callback ended training early
            while self.epoch < self.config.epochs and not self._out_of_time:
                start = time.perf_counter()
                self._call("on_epoch_start", self.epoch)
                metrics = {"epoch": self.epoch + 1, **self.train_epoch(self.epoch)}
                last = self.epoch + 1 == self.config.epochs or self._out_of_time
                if self.task.evaluates and (last or (self.epoch + 1) % self.config.eval_every == 0):
                    for split, loader in self.data.loaders().items():
                        if split != "train":
                            metrics.update({f"{split}_{k}": v for k, v in self.evaluate(loader).items()})
                metrics["lr"] = self.optimizer.param_groups[0]["lr"]
                self.seconds += time.perf_counter() - start
                metrics["seconds"] = round(self.seconds, 3)
                self.history.append(metrics)
                self.epoch += 1
                if self.schedule is not None:
                    self.schedule.on_epoch_end(metrics.get(monitor_name(self.config, metrics)))
                self._call("on_epoch_end", metrics)
        final = self.history[-1] if self.history else {}
        self._call("on_fit_end", final)
        return final

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training data; returns train_* metrics."""
        loader, cfg = self.data.train, self.config
        self.train_model.train()
        loader.set_epoch(epoch)
        self.task.reset(loader)
        steps = len(loader)
        sums: dict[str, list[torch.Tensor]] = {}  # metric -> per-step sums (0-dim tensors on the device)
        counts: list[int] = []
        self._epoch_start = time.perf_counter()
        schedule = self.schedule
        if schedule is not None and not schedule.per_step:
            self._set_lr(schedule.factor(epoch, 0, steps))
        for step, batch in enumerate(loader):
            if schedule is not None and schedule.per_step:
                self._set_lr(schedule.factor(epoch, step, steps))
            batch_sums, n = self.train_step(batch)
            for k, v in batch_sums.items():
                sums.setdefault(k, []).append(v)
            counts.append(n)
            self._call("on_step_end", step)
            out_of_time = time.perf_counter() > self._deadline
            if dist.is_distributed() and self._deadline < math.inf:  # all ranks must stop at the same step
                out_of_time = (step + 1) % cfg.log_every == 0 and dist.any_rank(out_of_time, self.device)
            if (step + 1) % cfg.log_every == 0 or step + 1 == steps or out_of_time:
                self._call("on_log", self._running(epoch, step, sums, counts))
            if out_of_time:  # --time-limit: this epoch ends here, is evaluated, and training stops
                self._out_of_time = True
                break
        dist.sync_buffers(self.model)  # every rank evaluates (and rank 0 saves) rank 0's batch-norm statistics
        return {f"train_{k}": v for k, v in self._reduce(sums, counts).items()}

    def train_step(self, batch) -> tuple[dict[str, torch.Tensor], int]:
        """One optimizer step on `batch`; returns the task's metric sums and its number of examples."""
        opt, cfg = self.optimizer, self.config
        if self.task.manual_update:  # e.g. a GAN's two alternating updates
            with self.autocast():
                return self.task.train_step(self.train_model, batch, opt)
        loss, batch_sums, n = self._forward(batch, self.train_model)
        opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            opt.step()
        else:  # fp16: scale the loss so small gradients do not underflow, unscale before clipping
            self.scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                self.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.scaler.step(opt)
            self.scaler.update()
        return batch_sums, n

    @torch.no_grad()
    def evaluate(self, loader) -> dict[str, float]:
        """Average task metrics over `loader` in eval mode (dropout off, batch norm frozen)."""
        was_training = self.model.training
        self.eval_model.eval()
        self.task.reset(loader)
        totals: dict[str, torch.Tensor] = {}
        n = 0
        for batch in loader:
            _, batch_sums, k = self._forward(batch, self.eval_model)
            for name, v in batch_sums.items():
                totals[name] = totals.get(name, 0) + v
            n += k
        self.eval_model.train(was_training)
        return self._summarize(totals, n) if n else {}

    # -- helpers ------------------------------------------------------------------------------

    def _forward(self, batch, model: torch.nn.Module):
        """task.step of `model` under the configured precision and memory format."""
        if self.config.channels_last and batch[0].dim() == 4 and batch[0].is_floating_point():
            batch = (batch[0].contiguous(memory_format=torch.channels_last), *batch[1:])
        with self.autocast():
            return self.task.step(model, batch)

    def _warm_up(self) -> float:
        """Seconds to compile (torch.compile) the training and evaluation steps on one batch each.

        Runs forward and backward without an optimizer step, then puts back the batch-norm
        statistics, the gradients (none) and the random state, so the run is the one it would be
        without the warm-up.
        """
        start = time.perf_counter()
        buffers = [b.detach().clone() for b in self.model.buffers()]
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        self.train_model.train()
        self.task.reset(self.data.train)
        loss, _, _ = self._forward(next(iter(self.data.train)), self.train_model)
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        self.optimizer.zero_grad(set_to_none=True)
        held_out = [loader for split, loader in self.data.loaders().items() if split != "train"]
        if held_out:
            self.evaluate_batch(next(iter(held_out[0])), held_out[0])
        with torch.no_grad():
            for b, saved in zip(self.model.buffers(), buffers):
                b.copy_(saved)
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
            torch.cuda.synchronize()
        return time.perf_counter() - start

    @torch.no_grad()
    def evaluate_batch(self, batch, loader) -> tuple[dict[str, torch.Tensor], int]:
        """The task's metric sums on one batch in eval mode (what `evaluate` does per batch)."""
        was_training = self.model.training
        self.eval_model.eval()
        self.task.reset(loader)
        _, batch_sums, n = self._forward(batch, self.eval_model)
        self.eval_model.train(was_training)
        return batch_sums, n

    def _running(self, epoch: int, step: int, sums, counts) -> dict[str, float]:
        """Metrics so far this epoch (one host read); raises TrainingDiverged on NaN/inf loss."""
        done = step + 1
        losses = torch.stack(sums["loss"]).float().cpu()
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0])
            raise TrainingDiverged(
                f"the training loss became {losses[bad].item()} at epoch {epoch + 1}, step {bad + 1} "
                f"(lr={self.optimizer.param_groups[0]['lr']:g}). Try a smaller --lr, --grad-clip, or check the data "
                "for NaN values. The last good checkpoint (end of the previous epoch) was kept."
            )
        n = sum(counts[:done])
        logs = self.task.summarize({k: float(torch.stack(v).sum()) for k, v in sums.items()}, n)
        elapsed = time.perf_counter() - self._epoch_start
        return {"epoch": epoch + 1, "step": done, "steps": len(self.data.train),
                "per_s": n * dist.world_size() / max(elapsed, 1e-9), **logs}  # examples (or tokens) per second

    def _summarize(self, totals: dict[str, torch.Tensor], n: int) -> dict[str, float]:
        """Sum metric totals over all processes (one host read) and turn them into averages."""
        names = sorted(totals)
        device = totals[names[0]].device
        packed = torch.stack([totals[k].float() for k in names] + [torch.tensor(float(n), device=device)])
        values = dist.all_reduce_sum(packed).tolist()
        return self.task.summarize(dict(zip(names, values[:-1])), int(values[-1]))

    def _reduce(self, sums, counts) -> dict[str, float]:
        if not counts:
            raise DivekitError(f"the training split yields no batch (batch size {self.config.batch_size} with "
                               "drop_last, or no examples): lower --batch-size")
        out = self._summarize({k: torch.stack(v).sum() for k, v in sums.items()}, sum(counts))
        if not math.isfinite(out["loss"]):
            raise TrainingDiverged(f"the training loss is {out['loss']} after epoch {self.epoch + 1}; try a smaller --lr")
        return out

    def _set_lr(self, factor: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def _call(self, hook: str, *args) -> None:
        stop = None
        for cb in self.callbacks:
            try:
                getattr(cb, hook)(self, *args)
            except StopTraining as e:  # the callbacks after it still see this epoch: the checkpoint is written
                stop = e
        if stop is not None:
            raise stop

    def state_dict(self) -> dict[str, Any]:
        """JSON-able trainer state for checkpoints (weights and optimizer go in as tensors)."""
        return {
            "epoch": self.epoch,
            "seconds": self.seconds,
            "history": self.history,
            "schedule": self.schedule.state_dict() if self.schedule is not None else {},
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
        }

    def restore(self, checkpoint) -> None:
        """Continue from a run's last checkpoint (core.checkpoint.Checkpoint): weights, optimizer,
        schedule, history, callbacks' state and the random state, as they were after its last epoch."""
        checkpoint.load_model(self.model)
        checkpoint.load_optimizer(self.optimizer)
        self.load_state_dict(checkpoint.meta["trainer"])
        checkpoint.restore_rng()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.seconds, self.history = state["epoch"], state["seconds"], list(state["history"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state.get("schedule") or {})
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        saved = state.get("callbacks", {})
        for cb in self.callbacks:
            if type(cb).__name__ in saved:
                cb.load_state_dict(saved[type(cb).__name__])
