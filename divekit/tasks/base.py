"""Tasks: how a batch becomes a loss and the metric sums the trainer accumulates.

A task's `step` returns the mean loss to backpropagate, a dict of metric *sums* over the batch
as 0-dim tensors (kept on the device: reading them would stall the loop), and the number of
examples. `summarize` turns totals over an epoch into the reported metrics. New kinds of
training (language models, seq2seq, detection ...) add a task, not a new trainer.

A task whose update is not one backward pass and one optimizer step (a GAN's alternating
updates of two networks) sets `manual_update` and does the update itself in `train_step`, with
the optimizer it asked for in `param_groups` (Lightning's manual optimization).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

from ..core.dist import unwrap
from ..models.rnn import detach_state
from ..models.seq2seq import masked_cross_entropy


class Task(ABC):
    name = "task"
    unit = "ex"  # what `n` counts, for throughput: examples (or tokens, for language models)
    manual_update = False  # True: the trainer calls train_step for the whole update (see module doc)
    evaluates = True  # False: the held-out splits are not evaluated (a GAN's losses there judge nothing)

    @classmethod
    def from_config(cls, config, context: dict | None = None) -> "Task":
        """The task with the options the training config (and the dataset's context) set for it."""
        return cls()

    def loss(self, model, outputs, targets) -> torch.Tensor:
        """The model's own `loss` method if it has one (the book's scratch models), else the default."""
        # looked up without nn.Module.__getattr__, whose miss path costs microseconds every step,
        # on the user's module (inside DistributedDataParallel or torch.compile)
        inner = unwrap(model)
        own = inner.__dict__.get("loss") or (inner.loss if hasattr(type(inner), "loss") else None)
        return own(outputs, targets) if callable(own) else self.default_loss(outputs, targets, model.training)

    @abstractmethod
    def default_loss(self, outputs, targets, training: bool) -> torch.Tensor:
        """The loss for models that do not bring their own (`training`: the model's mode)."""

    @abstractmethod
    def step(self, model, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        """(mean loss, metric sums as 0-dim tensors, number of examples) for one batch."""

    def summarize(self, totals: dict[str, float], n: int) -> dict[str, float]:
        return {k: v / n for k, v in totals.items()}

    def reset(self, loader) -> None:
        """Called before every pass over `loader` (a training epoch or an evaluation)."""

    def param_groups(self, model, config) -> list[dict] | None:
        """The optimizer's parameter groups for `model`, or None: all parameters at the config's lr."""
        return None

    def train_step(self, model, batch, optimizer) -> tuple[dict[str, torch.Tensor], int]:
        """A `manual_update` task's whole update on one batch (backward passes and optimizer steps);
        returns the metric sums and the number of examples, as `step` does."""
        raise NotImplementedError(f"task {self.name!r} does not make its own updates (manual_update is False)")


class Classification(Task):
    """Inputs -> class logits; cross-entropy loss; metrics loss and accuracy. A batch is the
    model's inputs followed by the class indices."""

    name = "classification"

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    @classmethod
    def from_config(cls, config, context=None) -> "Classification":
        return cls(label_smoothing=config.label_smoothing)

    def default_loss(self, logits, y, training):
        # label smoothing regularizes training; evaluation reports the plain cross-entropy
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing if training else 0.0)

    def step(self, model, batch):
        *inputs, y = batch  # (X, y), or several inputs, e.g. BERT's (tokens, segments, valid_lens, y)
        logits = model(*inputs)
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


class LanguageModel(Task):
    """Token sequences X (B, T) -> next-token logits (B, T, V) for targets Y (B, T); metrics loss
    (cross-entropy per token) and perplexity exp(loss).

    The model is called as `model(X, state)` and returns `(logits, state)`. When the loader's
    consecutive batches continue each other's rows (sequential partitioning, `loader.sequential`),
    the hidden state is carried from batch to batch, detached so backpropagation stops at the
    batch boundary (truncated BPTT); with random sampling each batch starts from a zero state.
    """

    name = "language-model"
    unit = "tok"

    def __init__(self):
        self.state, self.carry = None, False

    def reset(self, loader):
        self.state, self.carry = None, bool(getattr(loader, "sequential", False))

    def default_loss(self, logits, Y, training):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))  # (B*T, V), (B*T,)

    def step(self, model, batch):
        X, Y = batch[0], batch[1]
        state = detach_state(self.state) if self.carry and self.state is not None else None
        logits, state = model(X, state)
        if self.carry:
            self.state = state
        loss = self.loss(model, logits, Y)
        n = Y.numel()
        return loss, {"loss": loss.detach() * n}, n

    def summarize(self, totals, n):
        out = super().summarize(totals, n)
        out["ppl"] = perplexity(out["loss"])
        return out


class Seq2Seq(Task):
    """Source and target sentences -> target-token logits (teacher forcing); batches are
    (X, dec_X, X_valid_len, Y) as in divekit.models.encoder_decoder. The loss is cross-entropy
    averaged over the real target tokens: padding counts neither in the loss nor in the metrics
    (loss, token accuracy and perplexity per target token)."""

    name = "seq2seq"

    def __init__(self, pad: int):
        self.pad = pad

    @classmethod
    def from_config(cls, config, context=None) -> "Seq2Seq":
        if not context or "tgt_pad" not in context:
            raise ValueError("the seq2seq task needs the target padding index (context['tgt_pad']) from the dataset")
        return cls(pad=context["tgt_pad"])

    def default_loss(self, logits, Y, training):
        return masked_cross_entropy(logits, Y, self.pad)  # the mean over real tokens, not over B * T

    def step(self, model, batch):
        X, dec_X, X_valid_len, Y = batch
        logits = model(X, dec_X, X_valid_len)  # (B, T, V)
        loss = self.loss(model, logits, Y)
        real = Y != self.pad
        tokens = real.sum()
        correct = ((logits.detach().argmax(dim=-1) == Y) & real).sum()
        return loss, {"loss": loss.detach() * tokens, "acc": correct, "tokens": tokens}, Y.shape[0]

    def summarize(self, totals, n):
        tokens = max(totals.pop("tokens"), 1.0)
        out = {k: v / tokens for k, v in totals.items()}
        out["ppl"] = perplexity(out["loss"])
        return out


def perplexity(loss: float) -> float:
    """exp of the mean cross-entropy per token (capped: exp overflows a float past ~709)."""
    return math.exp(min(loss, 700.0))


TASKS: dict[str, type[Task]] = {t.name: t for t in (Classification, Regression, LanguageModel, Seq2Seq)}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a Task subclass available to datasets under its `name` (detection,
    segmentation, pretraining ... live beside their models and register themselves here)."""
    if cls.name in TASKS and TASKS[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} is registered twice")
    TASKS[cls.name] = cls
    return cls


def task_name(model, data) -> str:
    """The task a run trains with: the one the model's class names (`GAN.task = "gan"`: a generative
    model trains the same way on any images), else the dataset's (`DataBundle.task`)."""
    own = getattr(type(unwrap(model)), "task", None)
    return own if isinstance(own, str) else data.task


def make_task(name: str, config=None, context: dict | None = None) -> Task:
    """The task of a dataset (`DataBundle.task`), configured by the training config and the
    dataset's context (e.g. a padding index)."""
    if name not in TASKS:
        raise ValueError(f"no task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name].from_config(config, context)
