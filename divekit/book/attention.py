"""The attention chapter's experiments (book chapter 11): Nadaraya-Watson kernel regression, the
first attention model (book 11.2), and the figure of the sinusoidal positional encoding (book 11.6.3).

The layers themselves are in divekit.models.attention. Plots are drawn on matplotlib Figure
objects (no pyplot state, no display needed); matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.attention import PositionalEncoding


def positional_encoding_plot(path: str | Path, num_hiddens: int = 32, num_steps: int = 60) -> Path:
    """Columns 6-9 of the positional encoding P over positions 0..num_steps-1, the book's figure
    of the sinusoids' frequencies falling along the encoding dimension (book 11.6.3)."""
    from matplotlib.figure import Figure

    from ..core.plot import save_figure  # deferred: core.plot loads matplotlib, only when a plot is drawn

    P = PositionalEncoding(num_hiddens).P[0, :num_steps, :]  # (num_steps, num_hiddens)
    fig = Figure(figsize=(6, 2.5))
    ax = fig.add_subplot()
    for col in range(6, 10):
        ax.plot(torch.arange(num_steps), P[:, col], label=f"Col {col}")
    ax.set(xlabel="Row (position)", xlim=(0, num_steps - 1))
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


# Nadaraya-Watson kernel regression (book 11.2; the learnable-w version is from the 0.17 edition's 10.2)


class KernelRegressionData(NamedTuple):
    """The book's kernel-regression data set (see kernel_regression_data)."""

    x_train: torch.Tensor  # (n_train,) sorted inputs in [0, 5)
    y_train: torch.Tensor  # (n_train,) f(x_train) + noise
    x_test: torch.Tensor  # (n_test,) 0, 0.1, ..., 4.9
    y_truth: torch.Tensor  # (n_test,) f(x_test), noise-free


def nw_target(x: torch.Tensor) -> torch.Tensor:
    """The book's regression function f(x) = 2 sin(x) + x^0.8."""
    return 2 * torch.sin(x) + x**0.8


def kernel_regression_data(n_train: int = 50, noise: float = 0.5, seed: int = 0) -> KernelRegressionData:
    """The book's data: n_train sorted x uniform in [0, 5), y = f(x) + N(0, noise^2); test inputs
    arange(0, 5, 0.1) with the noise-free truth. Drawn from its own generator (global RNG untouched)."""
    g = torch.Generator().manual_seed(seed)
    x_train, _ = torch.sort(torch.rand(n_train, generator=g) * 5)
    y_train = nw_target(x_train) + noise * torch.randn(n_train, generator=g)
    x_test = torch.arange(0, 5, 0.1)
    return KernelRegressionData(x_train, y_train, x_test, nw_target(x_test))


def average_pooling(x_train: torch.Tensor, y_train: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """The baseline: every query is predicted as the mean of the training targets (n_queries,)."""
    return y_train.mean().expand(len(queries)).clone()


def nadaraya_watson(x_train: torch.Tensor, y_train: torch.Tensor, queries: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-parametric Nadaraya-Watson regression with a Gaussian kernel: the attention weights
    softmax(-(x - x_i)^2 / 2) over the training inputs (keys) and the weighted average of their
    targets (values). Returns (predictions (n_queries,), weights (n_queries, n_train))."""
    diffs = queries[:, None] - x_train[None, :]  # (n_queries, n_train)
    attention_weights = F.softmax(-(diffs**2) / 2, dim=1)
    return attention_weights @ y_train, attention_weights


class NWKernelRegression(nn.Module):
    """Parametric Nadaraya-Watson regression: the Gaussian kernel with a learnable width w,
    weights softmax(-((x - x_i) w)^2 / 2). `attention_weights` (n, m) are kept after each forward."""

    def __init__(self, w: float = 1.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([float(w)]))
        self.attention_weights: torch.Tensor | None = None

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """queries (n,), keys and values (n, m): query i attends to the m keys of row i -> (n,)."""
        diffs = queries[:, None] - keys  # (n, 1) - (n, m) -> (n, m)
        self.attention_weights = F.softmax(-((diffs * self.w) ** 2) / 2, dim=1)  # (n, m)
        # (n, 1, m) @ (n, m, 1) -> (n, 1, 1) -> (n,)
        return torch.bmm(self.attention_weights.unsqueeze(1), values.unsqueeze(-1)).reshape(-1)


def leave_one_out(t: torch.Tensor) -> torch.Tensor:
    """(n,) -> (n, n - 1): row i holds every entry but the i-th — the keys (or values) a training
    example attends to, so it cannot simply look up its own target."""
    n = len(t)
    keep = ~torch.eye(n, dtype=torch.bool)  # (n, n), False on the diagonal
    return t.repeat(n, 1)[keep].reshape(n, n - 1)  # (n, n) -> (n, n - 1)


def train_nw_regression(x_train: torch.Tensor, y_train: torch.Tensor, epochs: int = 5, lr: float = 0.5,
                        seed: int = 0, w_init: float | None = None) -> tuple[NWKernelRegression, list[float]]:
    """Fit w as the book does: w ~ U(0, 1) (or `w_init`), squared loss summed over the training set
    with leave-one-out keys, full-batch SGD (lr 0.5, 5 epochs). Returns the model and the loss per epoch.

    The loss depends on w only through w^2, so its gradient is proportional to w: a draw close to
    0 barely moves (the weights stay near uniform, i.e. average pooling); pass w_init=1 to start
    from the non-parametric kernel instead.
    """
    g = torch.Generator().manual_seed(seed)
    net = NWKernelRegression(float(torch.rand(1, generator=g)) if w_init is None else w_init)
    keys, values = leave_one_out(x_train), leave_one_out(y_train)  # (n, n - 1) each
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = ((net(x_train, keys, values) - y_train) ** 2 / 2).sum()  # the book's MSELoss(reduction="none"), summed
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return net, losses


def parametric_nadaraya_watson(net: NWKernelRegression, x_train: torch.Tensor, y_train: torch.Tensor,
                               queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions (n_queries,) and weights (n_queries, n_train) of a trained NWKernelRegression,
    every query attending to all training examples."""
    keys, values = x_train.repeat(len(queries), 1), y_train.repeat(len(queries), 1)  # (n_queries, n_train)
    with torch.no_grad():
        y_hat = net(queries, keys, values)
    return y_hat, net.attention_weights


def _regression_plot(data: KernelRegressionData, y_hat: torch.Tensor, title: str, path: Path) -> Path:
    """The truth, the predictions y_hat (n_test,) and the training points, as the book plots a fit."""
    from matplotlib.figure import Figure

    from ..core.plot import save_figure  # deferred: core.plot loads matplotlib, only when a plot is drawn

    fig = Figure(figsize=(3.5, 2.5))
    ax = fig.add_subplot()
    ax.plot(data.x_test, data.y_truth, label="Truth")
    ax.plot(data.x_test, y_hat, "--", label="Pred")
    ax.plot(data.x_train, data.y_train, "o", alpha=0.5, ms=3)
    ax.set(xlabel="x", ylabel="y", xlim=(0, 5), ylim=(-1, 5), title=title)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def _mse(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """The mean squared error, rounded for the demo's JSON."""
    return round(float(((y_hat - y) ** 2).mean()), 6)


def nadaraya_watson_demo(out: str | Path, seed: int = 0) -> dict:
    """Average pooling, non-parametric and parametric Nadaraya-Watson regression on the book's
    data (book 11.2): writes their fits and attention heatmaps to `out` and returns the test MSE
    of each against the noise-free f, the learned w, the training losses and the plot paths."""
    from ..core.plot import attention_heatmap  # deferred: core.plot loads matplotlib, only when a plot is drawn

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = kernel_regression_data(seed=seed)
    baseline = average_pooling(data.x_train, data.y_train, data.x_test)
    y_np, w_np = nadaraya_watson(data.x_train, data.y_train, data.x_test)
    net, losses = train_nw_regression(data.x_train, data.y_train, seed=seed)
    y_p, w_p = parametric_nadaraya_watson(net, data.x_train, data.y_train, data.x_test)
    labels = {"xlabel": "Sorted training inputs", "ylabel": "Sorted testing inputs"}
    return {
        "test_mse_average_pooling": _mse(baseline, data.y_truth),
        "test_mse_nonparametric": _mse(y_np, data.y_truth),
        "test_mse_parametric": _mse(y_p, data.y_truth),
        "learned_w": round(float(net.w.detach()), 4),
        "parametric_train_losses": [round(v, 4) for v in losses],
        "plots": {
            "average_pooling": str(_regression_plot(data, baseline, "average pooling", out / "nw_average_pooling.png")),
            "nonparametric": str(_regression_plot(data, y_np, "non-parametric", out / "nw_nonparametric.png")),
            "parametric": str(_regression_plot(data, y_p, "parametric", out / "nw_parametric.png")),
            "nonparametric_weights": str(attention_heatmap(w_np, out / "nw_nonparametric_weights.png", **labels)),
            "parametric_weights": str(attention_heatmap(w_p, out / "nw_parametric_weights.png", **labels)),
        },
    }
