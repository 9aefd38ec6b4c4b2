"""An autoregressive model of a noisy sine wave (book 9.1, "Working with Sequences").

The data are x_t = sin(0.01 t) + eps_t with eps_t ~ N(0, 0.2^2), t = 1..T. The model predicts x_t
from the tau values before it, x_{t-tau}, ..., x_{t-1}, with the book's MLP (Linear(tau, 10),
ReLU, Linear(10, 1), Xavier-uniform weights), trained with squared loss and Adam (lr 0.01, batch
16, 5 epochs) on the first n_train examples. Adam is the optimizer of the book's PyTorch MLP
version; the 1.0 edition swaps the MLP for plain linear regression trained with minibatch SGD.

Three ways to predict, as the book compares them:

- one-step: every input is observed data, so each prediction is one step ahead of the data;
- multi-step: from position n_train + tau on, every input is an earlier prediction, so the model
  runs on its own outputs until the end of the series and decays to a constant;
- k-step-ahead: from each window of tau observations, predict k steps into the future by feeding
  the predictions back in; the error grows quickly with k because errors compound.

Plots are drawn on matplotlib Figure objects, which render with Agg whatever pyplot's backend.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn
from matplotlib.figure import Figure

from ..core.errors import ConfigError
from ..core.plot import save_figure
from ..data.registry import tensor_bundle
from ..models.registry import create_model
from ..ops.init import apply_init, xavier_uniform_
from ..train.api import fit
from ..train.config import TrainConfig

K_STEPS = (1, 4, 16, 64)


class SineSeries(NamedTuple):
    time: torch.Tensor  # (T,) the time steps 1..T
    x: torch.Tensor  # (T,) the noisy sine
    features: torch.Tensor  # (T - tau, tau): row i holds x_i, ..., x_{i+tau-1} (0-based)
    labels: torch.Tensor  # (T - tau, 1): row i holds x_{i+tau}


def sine_series(T: int = 1000, tau: int = 4, noise: float = 0.2, seed: int = 0) -> SineSeries:
    """The book's data x_t = sin(0.01 t) + N(0, noise^2) for t = 1..T, with the autoregressive
    examples: T - tau rows of the tau previous values (features) and the value that follows (label).

    The noise is drawn from its own generator, so the global random state is left alone.
    """
    if tau < 1 or T <= tau:
        raise ConfigError(f"sine_series needs 1 <= tau < T, got tau={tau}, T={T}: use at least one feature and T > tau")
    g = torch.Generator().manual_seed(seed)
    time = torch.arange(1, T + 1, dtype=torch.float32)
    x = torch.sin(0.01 * time) + noise * torch.randn(T, generator=g)
    features = torch.stack([x[i : T - tau + i] for i in range(tau)], dim=1)  # (T - tau, tau)
    labels = x[tau:].reshape(-1, 1)  # (T - tau, 1)
    return SineSeries(time, x, features, labels)


def autoregressive_mlp(tau: int = 4, num_hiddens: int = 10, seed: int = 0) -> nn.Module:
    """The book's net: Linear(tau, 10), ReLU, Linear(10, 1), Xavier-uniform weights, torch's
    default biases. Seeded without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = create_model("mlp", in_shape=(tau,), num_outputs=1, num_hiddens=(num_hiddens,))
        g = torch.Generator().manual_seed(seed)
        apply_init(net, {nn.Linear: partial(xavier_uniform_, generator=g)}, bias=None)
    return net


def train_autoregressor(T: int = 1000, tau: int = 4, n_train: int = 600, epochs: int = 5, lr: float = 0.01,
                        batch_size: int = 16, seed: int = 0) -> tuple[nn.Module, SineSeries]:
    """Train the book's MLP with squared loss and Adam on the first n_train examples of
    `sine_series(T, tau, seed=seed)`; the rest are the test examples. Returns (model, series)."""
    if not 0 < n_train < T - tau:
        raise ConfigError(
            f"n_train must leave training and test examples among the T - tau = {T - tau}, got n_train={n_train}: "
            f"choose 0 < n_train < {T - tau}"
        )
    series = sine_series(T, tau, seed=seed)
    f, y = series.features, series.labels
    data = tensor_bundle("sine", "regression", f[:n_train], y[:n_train], f[n_train:], y[n_train:],
                         batch_size=batch_size, seed=seed, heldout="test")
    model = autoregressive_mlp(tau, seed=seed)
    cfg = TrainConfig(model="autoregressive-mlp", data="sine", epochs=epochs, lr=lr, batch_size=batch_size,
                      optimizer="adam", seed=seed, device="cpu", log_every=10_000)
    fit(model, data, cfg, run_dir=False, progress=False)
    return model.eval(), series


@torch.no_grad()
def multistep_predictions(model: nn.Module, x: torch.Tensor, tau: int, start: int) -> torch.Tensor:
    """x_hat (T,): the observations before index `start`, then from `start` on each x_hat_t =
    model(x_hat_{t-tau}, ..., x_hat_{t-1}), inputs being the model's own earlier predictions."""
    if not tau <= start <= len(x):
        raise ConfigError(f"multi-step prediction needs tau <= start <= T, got tau={tau}, start={start}, T={len(x)}")
    x_hat = x.clone()
    for t in range(start, len(x)):
        x_hat[t] = model(x_hat[t - tau : t].reshape(1, -1)).squeeze()  # (1, tau) -> (1, 1)
    return x_hat


@torch.no_grad()
def k_step_predictions(model: nn.Module, x: torch.Tensor, tau: int,
                       ks: tuple[int, ...] = K_STEPS) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """The book's k-step-ahead predictions: {k: (index, x_hat)}, x_hat[r] predicting x[index[r]].

    With K = max(ks) and n = T - tau - K + 1 windows, column j < tau of an (n, tau + K) table holds
    the observations x[j : j + n], and column j >= tau the model applied to columns j - tau .. j - 1,
    so column tau + k - 1 holds, for every window r, the prediction of x[r + tau + k - 1] made from
    x[r .. r + tau - 1] alone, k steps past the last observation.
    """
    if not ks or any(k < 1 for k in ks):
        raise ConfigError(f"k-step predictions need steps k >= 1, got ks={tuple(ks)}")
    K = max(ks)
    n = len(x) - tau - K + 1
    if n < 1:
        raise ConfigError(f"a series of T={len(x)} values has no window for {K}-step-ahead predictions with tau={tau}: "
                          f"use T >= tau + {K}, or smaller steps")
    table = torch.zeros(n, tau + K)
    for j in range(tau):
        table[:, j] = x[j : j + n]
    for j in range(tau, tau + K):
        table[:, j] = model(table[:, j - tau : j]).reshape(-1)  # (n, tau) -> (n, 1) -> (n,)
    return {k: (torch.arange(tau + k - 1, tau + k - 1 + n), table[:, tau + k - 1]) for k in ks}


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.reshape(-1) - b.reshape(-1)) ** 2).mean())


def autoregression_demo(out: Path, seed: int = 0, T: int = 1000, tau: int = 4, n_train: int = 600) -> dict:
    """Train the book's autoregressive MLP, write its two figures to `out` and return the errors.

    sequence_predictions.png: data, one-step and multi-step predictions (multi-step from example
    n_train, i.e. position n_train + tau of the series); k_step_predictions.png: the 1-, 4-, 16- and
    64-step-ahead predictions. Returned: one_step_test_mse and multistep_mse over the test examples,
    mse_{k}_step over every window, and the plot paths.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, s = train_autoregressor(T, tau, n_train, seed=seed)
    with torch.no_grad():
        one_step = model(s.features).reshape(-1)  # (T - tau,) predictions of x[tau:]
    start = n_train + tau
    multistep = multistep_predictions(model, s.x, tau, start)
    k_step = k_step_predictions(model, s.x, tau, K_STEPS)

    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    ax.plot(s.time, s.x, lw=0.8, color="0.6", label="data")
    ax.plot(s.time[tau:], one_step, label="1-step preds")
    ax.plot(s.time[start:], multistep[start:], label="multistep preds")
    ax.axvline(float(s.time[start]), color="k", ls=":", lw=0.8)
    ax.set(xlabel="time", ylabel="x", xlim=(1, T))
    ax.legend()
    fig.tight_layout()
    predictions_plot = save_figure(fig, out / "sequence_predictions.png")

    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    for k, (index, x_hat) in k_step.items():
        ax.plot(s.time[index], x_hat, label=f"{k}-step preds")
    ax.set(xlabel="time", ylabel="x", xlim=(5, T))
    ax.legend()
    fig.tight_layout()
    k_step_plot = save_figure(fig, out / "k_step_predictions.png")

    return {
        "one_step_test_mse": round(_mse(one_step[n_train:], s.labels[n_train:]), 6),
        "multistep_mse": round(_mse(multistep[start:], s.x[start:]), 6),
        **{f"mse_{k}_step": round(_mse(x_hat, s.x[index]), 6) for k, (index, x_hat) in k_step.items()},
        "plots": {"predictions": str(predictions_plot), "k_step": str(k_step_plot)},
    }
