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


def _torch_sgd(params, lr, momentum=0.0, weight_decay=0.0):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _scratch_sgd(params, lr, momentum=0.0, weight_decay=0.0):
    if momentum or weight_decay:
        raise ConfigError("sgd-scratch is the book's plain SGD: use --optimizer sgd for momentum or weight decay")
    return SGD(params, lr=lr)


def _torch_adam(params, lr, momentum=0.0, weight_decay=0.0):
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _torch_adamw(params, lr, momentum=0.0, weight_decay=0.0):
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


# config name -> builder(params, lr, momentum, weight_decay)
OPTIMIZERS = {
    "sgd": _torch_sgd,
    "sgd-scratch": _scratch_sgd,
    "adam": _torch_adam,
    "adamw": _torch_adamw,
}


def build_optimizer(name: str, params, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
    """An optimizer by its config name (see OPTIMIZERS)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr=lr, momentum=momentum, weight_decay=weight_decay)
