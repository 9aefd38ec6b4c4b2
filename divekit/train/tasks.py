"""Tasks: how a batch becomes a loss and the metric sums the trainer accumulates.

A task's `step` returns the mean loss to backpropagate, a dict of metric *sums* over the batch
as 0-dim tensors (kept on the device: reading them would stall the loop), and the number of
examples. `summarize` turns totals over an epoch into the reported metrics. New kinds of
training (language models, seq2seq, detection ...) add a task, not a new trainer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F


class Task(ABC):
    name = "task"

    @classmethod
    def from_config(cls, config) -> "Task":
        """The task with the options the training config sets for it."""
        return cls()

    def loss(self, model, outputs, targets) -> torch.Tensor:
        """The model's own `loss` method if it has one (the book's scratch models), else the default."""
        # looked up without nn.Module.__getattr__, whose miss path costs microseconds every step
        own = model.__dict__.get("loss") or (model.loss if hasattr(type(model), "loss") else None)
        return own(outputs, targets) if callable(own) else self.default_loss(outputs, targets, model.training)

    @abstractmethod
    def default_loss(self, outputs, targets, training: bool) -> torch.Tensor:
        """The loss for models that do not bring their own (`training`: the model's mode)."""

    @abstractmethod
    def step(self, model, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        """(mean loss, metric sums as 0-dim tensors, number of examples) for one batch."""

    def summarize(self, totals: dict[str, float], n: int) -> dict[str, float]:
        return {k: v / n for k, v in totals.items()}


class Classification(Task):
    """Inputs -> class logits; cross-entropy loss; metrics loss and accuracy."""

    name = "classification"

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    @classmethod
    def from_config(cls, config) -> "Classification":
        return cls(label_smoothing=config.label_smoothing)

    def default_loss(self, logits, y, training):
        # label smoothing regularizes training; evaluation reports the plain cross-entropy
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing if training else 0.0)

    def step(self, model, batch):
        X, y = batch[0], batch[1]
        logits = model(X)
        loss = self.loss(model, logits, y)
        n = y.shape[0]
        correct = (logits.detach().argmax(dim=1) == y).sum()
        return loss, {"loss": loss.detach() * n, "acc": correct}, n


class Regression(Task):
    """Inputs -> real outputs; squared-error loss; metric loss (the model's loss, averaged)."""

    name = "regression"

    def default_loss(self, y_hat, y, training):
        return F.mse_loss(y_hat, y.reshape(y_hat.shape))

    def step(self, model, batch):
        X, y = batch[0], batch[1]
        y_hat = model(X)
        loss = self.loss(model, y_hat, y)
        n = y.shape[0]
        return loss, {"loss": loss.detach() * n}, n


TASKS = {t.name: t for t in (Classification, Regression)}


def make_task(name: str, config=None) -> Task:
    """The task of a dataset (`DataBundle.task`), configured by the training config if given."""
    if name not in TASKS:
        raise ValueError(f"no task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name].from_config(config) if config is not None else TASKS[name]()
