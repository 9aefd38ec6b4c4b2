"""Optimizers written from scratch (book chapter 12), as torch.optim.Optimizer subclasses.

Being Optimizer subclasses they plug into the trainer and its checkpoints like torch's own;
each `step` is the book's update written out by hand, and tests compare it with torch.optim.
"""

from __future__ import annotations

import torch

from .errors import ConfigError


class SGD(torch.optim.Optimizer):
    """Minibatch stochastic gradient descent: w <- w - lr * grad (book 3.4)."""

    def __init__(self, params, lr: float):
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p -= group["lr"] * p.grad
        return loss


def build_optimizer(name: str, params, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
    """An optimizer by config name: sgd, sgd-scratch, adam, adamw."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "sgd-scratch":
        if momentum or weight_decay:
            raise ConfigError("sgd-scratch is the book's plain SGD: use --optimizer sgd for momentum or weight decay")
        return SGD(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}")
